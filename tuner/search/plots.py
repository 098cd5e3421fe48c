"""Pictures and a Markdown table of a search from its trials' per-epoch validation SSIM.

Pure matplotlib on the Agg canvas: each plot is its own `Figure`, never registered with pyplot, so nothing global
is touched, no display is needed, and a figure is freed as soon as it is saved and dropped.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from tuner.contract import COMPLETED, FAILED, INFEASIBLE, INTERRUPTED, RUNNING, SCORED, STOPPED_EARLY


@dataclass(frozen=True)
class TrialCurve:
    """One trial of a search as the plots need it: its name (e.g. "t003"), status (a `tuner.contract` status),
    flat sampled parameters (e.g. {"model.chans": 12, "train.lr": 1e-3}) and (epoch, val SSIM) pairs in epoch
    order, epochs counted from 1 (empty when it reported none)."""

    name: str
    status: str
    config: dict[str, Any]
    val_ssim: list[tuple[int, float]]

    @property
    def final_ssim(self) -> float | None:
        """The last reported validation SSIM; None when the trial reported no epoch or its last SSIM is NaN."""
        if not self.val_ssim:
            return None
        value = float(self.val_ssim[-1][1])
        return None if math.isnan(value) else value


PLOT_FILES: tuple[str, ...] = ("optimization_history.png", "learning_curves.png", "param_importances.png",
                               "parallel_coordinates.png")

# 8 x 4.5 inches at 120 dpi: every PNG is 960 x 540 pixels.
_FIGSIZE = (8.0, 4.5)
_DPI = 120
_STATUS_COLOURS = {COMPLETED: "tab:green", STOPPED_EARLY: "tab:orange", FAILED: "tab:red", INFEASIBLE: "tab:purple",
                   INTERRUPTED: "tab:gray", RUNNING: "tab:blue"}
_LEGEND_MAX = 10  # more trials than this and the learning-curve legend names only the best one
_UNSET_Y = -0.12  # where a trial without a value for a numeric parameter meets that parameter's axis
_UNSET = "-"  # a missing value in the table; in a plot, a lone dash is too easy to miss
_PLOT_UNSET = "(unset)"


def write_search_plots(curves: Sequence[TrialCurve], importances: Mapping[str, float] | None, folder: Path,
                       title: str) -> list[Path]:
    """Write the four PNGs of PLOT_FILES (960 x 540 pixels each) into `folder`, created if missing, from the
    trials in start order and the parameter importances (name -> weight, any scale); returns their paths in
    PLOT_FILES order. Trials without an SSIM are left out of the SSIM plots (and counted in the history's title)."""
    folder.mkdir(parents=True, exist_ok=True)
    best = _best(curves)
    figures = (_history(curves, title), _learning_curves(curves, best, title), _importances(importances, title),
               _parallel_coordinates(curves, best, title))
    paths = [folder / name for name in PLOT_FILES]
    for path, figure in zip(paths, figures, strict=True):
        figure.savefig(path, dpi=_DPI)
    return paths


def summary_markdown(curves: Sequence[TrialCurve], title: str, best: str | None) -> str:
    """A Markdown document: a `title` heading, a count of trials per status, then a table of the trials sorted by
    final SSIM (best first, trials without one last) with columns trial, status, epochs, val SSIM (4 decimals,
    "-" when none) and one per parameter that varies across trials; the parameters every trial shares follow as
    "Same for every trial: k=v, ...". The trial named `best` is in bold and marked "(best)"."""
    lines = [f"# {title}", ""]
    if not curves:
        return "\n".join([*lines, "No trials.", ""])
    counts = Counter(curve.status for curve in curves)
    lines += [f"{len(curves)} trials: " + ", ".join(f"{n} {status}" for status, n in counts.items()), ""]
    varying, same = _split_params(curves)
    lines += ["| " + " | ".join(["trial", "status", "epochs", "val SSIM", *varying]) + " |",
              "|" + "---|" * (4 + len(varying))]
    # Stable: trials with equal SSIM (or none) keep their start order.
    for curve in sorted(curves, key=lambda c: (c.final_ssim is None, -(c.final_ssim or 0.0))):
        name = f"**{curve.name}** (best)" if curve.name == best else curve.name
        ssim = _UNSET if curve.final_ssim is None else f"{curve.final_ssim:.4f}"
        epochs = str(curve.val_ssim[-1][0]) if curve.val_ssim else "0"
        cells = [name, curve.status, epochs, ssim, *(_text(curve.config.get(key)) for key in varying)]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    if same:
        lines += ["", "Same for every trial: " + ", ".join(f"{k}={_text(v)}" for k, v in same.items())]
    return "\n".join([*lines, ""])


def _best(curves: Sequence[TrialCurve]) -> str | None:
    # The driver's rule: a trial's last SSIM, and trials that trained to the end rank above stopped ones.
    scored = [c for c in curves if c.status in SCORED and c.final_ssim is not None]
    return max(scored, key=lambda c: (c.status == COMPLETED, c.final_ssim)).name if scored else None


def _figure(title: str) -> tuple[Figure, Axes]:
    figure = Figure(figsize=_FIGSIZE, dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_title(title)
    return figure, axes


def _message(figure: Figure, axes: Axes, text: str) -> Figure:
    axes.set_axis_off()
    axes.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=12, transform=axes.transAxes)
    return figure


def _history(curves: Sequence[TrialCurve], title: str) -> Figure:
    points = [(order, c) for order, c in enumerate(curves, start=1) if c.final_ssim is not None]
    missing = len(curves) - len(points)
    note = f" ({missing} trial{'s' * (missing != 1)} without SSIM not shown)" if missing else ""
    figure, axes = _figure(f"{title}: final val SSIM per trial{note}")
    if not points:
        return _message(figure, axes, "No trial has reported a validation SSIM yet.")
    for status in dict.fromkeys(c.status for _, c in points):
        xs = [order for order, c in points if c.status == status]
        ys = [c.final_ssim for _, c in points if c.status == status]
        axes.scatter(xs, ys, color=_STATUS_COLOURS.get(status, "black"), label=status, zorder=3)
    # Carried on to the last trial started, so trials without an SSIM still read as "no improvement".
    running_best = np.maximum.accumulate([c.final_ssim for _, c in points])
    axes.step([order for order, _ in points] + [len(curves)], [*running_best, running_best[-1]], where="post",
              color="black", lw=1.2, label="best so far")
    axes.set_xlim(0.5, len(curves) + 0.5)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("trial (start order)")
    axes.set_ylabel("val SSIM")
    axes.legend(fontsize="small", loc="lower right")
    return figure


def _learning_curves(curves: Sequence[TrialCurve], best: str | None, title: str) -> Figure:
    figure, axes = _figure(f"{title}: val SSIM per epoch")
    drawn = [(c, [(e, v) for e, v in c.val_ssim if not math.isnan(v)]) for c in curves]
    drawn = [(c, points) for c, points in drawn if points]
    if not drawn:
        return _message(figure, axes, "No trial has reported a validation SSIM yet.")
    many = len(drawn) > _LEGEND_MAX
    palette = colormaps["tab10"]
    ends = {STOPPED_EARLY: ("x", "stopped by ASHA"), COMPLETED: ("o", "completed")}
    for index, (curve, points) in enumerate(drawn):
        epochs, values = zip(*points, strict=True)
        is_best = curve.name == best
        colour = "tab:red" if many and is_best else "silver" if many else palette(index % 10)
        label = f"{curve.name} (best)" if is_best else None if many else curve.name
        axes.plot(epochs, values, color=colour, lw=2.5 if is_best else 1.2, label=label, zorder=3 if is_best else 2)
        if curve.status in ends:
            axes.plot(epochs[-1], values[-1], ends[curve.status][0], color=colour, ms=7, mew=2, zorder=4)
    handles, _ = axes.get_legend_handles_labels()
    handles += [Line2D([], [], color="black", marker=marker, ls="none", mew=2, label=meaning)
                for status, (marker, meaning) in ends.items() if any(c.status == status for c, _ in drawn)]
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch")
    axes.set_ylabel("val SSIM")
    if handles:
        figure.legend(handles=handles, loc="outside right upper", fontsize="small")
    return figure


def _importances(importances: Mapping[str, float] | None, title: str) -> Figure:
    figure, axes = _figure(f"{title}: parameter importances")
    # Ascending, because barh draws the first bar at the bottom.
    items = sorted(((k, v) for k, v in (importances or {}).items() if math.isfinite(v)), key=lambda kv: kv[1])
    if not items:
        # With fewer, an importance evaluator has no variance to attribute.
        return _message(figure, axes, "Parameter importances need at least 2 finished trials with differing "
                                      "parameters.")
    names, values = zip(*items, strict=True)
    bars = axes.barh(range(len(items)), values, color="tab:blue")
    axes.bar_label(bars, fmt="%.3f", padding=3, fontsize="small")
    axes.set_yticks(range(len(items)), labels=names)
    axes.set_xlim(0, max(values) * 1.15 or 1.0)  # room for the value labels
    axes.set_xlabel("importance for val SSIM")
    return figure


def _parallel_coordinates(curves: Sequence[TrialCurve], best: str | None, title: str) -> Figure:
    figure, axes = _figure(f"{title}: parameters and val SSIM")
    scored = [c for c in curves if c.final_ssim is not None]
    varying, _ = _split_params(scored)
    if len(scored) < 2 or not varying:
        return _message(figure, axes, "A parallel-coordinates plot needs at least 2 trials with a val SSIM whose "
                                      "parameters differ.")
    ssims = [c.final_ssim for c in scored]
    columns = [_scale(name, [c.config.get(name) for c in scored]) for name in varying]
    columns.append(_scale("val SSIM", ssims, digits=".4f"))
    low, high = min(ssims), max(ssims)
    # A colour scale needs a span; equal SSIMs all take its middle.
    norm = Normalize(low - 1e-6, high + 1e-6) if low == high else Normalize(low, high)
    cmap = colormaps["viridis"]
    # Best drawn last, so on top.
    for i in sorted(range(len(scored)), key=lambda i: ssims[i]):
        is_best = scored[i].name == best
        axes.plot(range(len(columns)), [column[0][i] for column in columns], color=cmap(norm(ssims[i])),
                  lw=2.8 if is_best else 1.3, alpha=1.0 if is_best else 0.8, zorder=3 if is_best else 2)
    for x, (_, ticks, _) in enumerate(columns):
        axes.axvline(x, color="black", lw=0.8, zorder=1)
        for y, text in ticks:
            axes.text(x + 0.03, y, text, fontsize=7, va="center", zorder=5,
                      bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1})
    axes.set_xticks(range(len(columns)), labels=[label for _, _, label in columns], fontsize=8)
    axes.set_yticks([])
    unset = any(y == _UNSET_Y for ys, _, _ in columns for y in ys)
    axes.set_ylim(_UNSET_Y - 0.06 if unset else -0.06, 1.06)
    axes.set_xlim(-0.15, len(columns) - 0.4)
    axes.spines[:].set_visible(False)
    figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, label="val SSIM")
    return figure


def _scale(name: str, values: list[Any], digits: str = ".3g") -> tuple[list[float], list[tuple[float, str]], str]:
    """Positions in [0, 1] of one parameter's values, the axis ticks (position, text) and the axis label."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        low, high = min(present), max(present)
        leaf = name.rsplit(".", 1)[-1]
        log = low > 0 and (leaf == "lr" or leaf.endswith("_lr") or "learning_rate" in leaf or high > 100 * low)
        transform = math.log10 if log else float
        span = transform(high) - transform(low)
        ys = [_UNSET_Y if v is None else (transform(v) - transform(low)) / span if span else 0.5 for v in values]
        ticks = [(0.0, format(low, digits)), (1.0, format(high, digits))] if span else [(0.5, format(low, digits))]
        if None in values:
            ticks.append((_UNSET_Y, _PLOT_UNSET))
        return ys, ticks, _wrap(name) + ("\n(log)" if log else "")
    texts = [_PLOT_UNSET if v is None else _text(v) for v in values]
    categories = sorted(set(texts))
    step = 1.0 / (len(categories) - 1) if len(categories) > 1 else 0.0
    position = {text: (index * step if step else 0.5) for index, text in enumerate(categories)}
    return [position[text] for text in texts], [(y, text) for text, y in position.items()], _wrap(name)


def _split_params(curves: Sequence[TrialCurve]) -> tuple[list[str], dict[str, Any]]:
    """The parameter names whose values differ across `curves` (sorted), and the others with their one value."""
    values = {key: [c.config.get(key) for c in curves] for key in sorted({k for c in curves for k in c.config})}
    # repr tells True from 1 and survives unhashable values such as lists.
    varying = [key for key, column in values.items() if len({repr(v) for v in column}) > 1]
    return varying, {key: column[0] for key, column in values.items() if key not in varying}


def _text(value: Any) -> str:
    if value is None:
        return _UNSET
    if isinstance(value, bool):
        return str(value).lower()  # as the search-space YAML writes it
    if isinstance(value, float):
        return format(value, ".4g")
    return str(value)


def _wrap(name: str, width: int = 14) -> str:
    """A dotted parameter name broken after dots into lines of about `width` characters, for narrow axis labels."""
    lines = [""]
    for part in name.split("."):
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append("")
        lines[-1] += part + "."
    return "\n".join(lines)[:-1]
