"""The search plots and summary: four real, non-blank PNGs of a fixed size for any set of trials, and a Markdown
table ranked by validation SSIM that shows only the parameters that differ."""

import math

import numpy as np
import pytest
from PIL import Image

from tuner.search.plots import PLOT_FILES, TrialCurve, summary_markdown, write_search_plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# 8 x 4.5 inches at 120 dpi.
WIDTH, HEIGHT = 960, 540


def _curve(name, status, ssims, chans=8, lr=1e-3, attention="lska", share=True):
    config = {"model.name": "varnet", "model.chans": chans, "train.lr": lr, "model.attention": attention,
              "model.share_encoder": share}
    return TrialCurve(name, status, config, [(epoch, value) for epoch, value in enumerate(ssims, start=1)])


def _six_trials():
    return [
        _curve("t000", "completed", [0.80, 0.85, 0.88, 0.90], chans=12, lr=1e-3, attention="lska", share=True),
        _curve("t001", "stopped early", [0.70, 0.74], chans=6, lr=5e-4, attention="none", share=False),
        _curve("t002", "completed", [0.78, 0.84, 0.87, 0.91], chans=8, lr=3e-3, attention="lka", share=True),
        _curve("t003", "stopped early", [0.72, 0.75], chans=6, lr=4e-3, attention="lka", share=False),
        _curve("t004", "failed", [], chans=12, lr=2e-3, attention="none", share=True),
        _curve("t005", "infeasible", [], chans=12, lr=5e-3, attention="lska", share=False),
    ]


IMPORTANCES = {"train.lr": 0.55, "model.chans": 0.25, "model.attention": 0.15, "model.share_encoder": 0.05}


def _assert_four_pngs(paths, folder):
    assert [path.name for path in paths] == list(PLOT_FILES)
    assert sorted(p.name for p in folder.iterdir()) == sorted(PLOT_FILES)
    for path in paths:
        assert path.parent == folder
        assert path.read_bytes()[:8] == PNG_SIGNATURE, path.name
        with Image.open(path) as image:
            assert image.size == (WIDTH, HEIGHT), path.name
            pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
        assert pixels.var() > 0, f"{path.name} is blank"


def test_final_ssim_is_the_last_reported_value_and_none_without_epochs_or_when_nan():
    assert _curve("a", "completed", [0.5, 0.7]).final_ssim == 0.7
    assert _curve("a", "failed", []).final_ssim is None
    assert _curve("a", "completed", [0.5, math.nan]).final_ssim is None


def test_plot_files_are_the_four_named_pngs():
    assert PLOT_FILES == ("optimization_history.png", "learning_curves.png", "param_importances.png",
                          "parallel_coordinates.png")


def test_six_trials_give_four_real_pngs_of_the_figure_size_in_a_created_folder(tmp_path):
    """Stopped, failed (no epochs) and infeasible trials; ints, a log-range float, a string and a bool vary."""
    folder = tmp_path / "plots" / "nested"
    paths = write_search_plots(_six_trials(), IMPORTANCES, folder, "six trials")
    _assert_four_pngs(paths, folder)


@pytest.mark.parametrize("case", ["no curves", "one curve", "none with ssim", "all nan", "same ssim", "fifty"])
def test_edge_cases_still_write_four_valid_pngs_with_no_importances(tmp_path, case):
    """Nothing to plot, one point, no SSIM at all, NaN SSIMs, equal SSIMs, and many trials (a short legend)."""
    curves = {
        "no curves": [],
        "one curve": [_curve("t000", "completed", [0.8])],
        "none with ssim": [_curve("t000", "failed", []), _curve("t001", "running", [], chans=4)],
        "all nan": [_curve("t000", "completed", [math.nan]), _curve("t001", "stopped early", [0.5, math.nan])],
        "same ssim": [_curve("t000", "completed", [0.8], chans=4), _curve("t001", "completed", [0.8], chans=6)],
        "fifty": [_curve(f"t{i:03d}", ("completed", "stopped early", "failed")[i % 3],
                         [] if i % 3 == 2 else [0.5 + 0.004 * i + 0.01 * e for e in range(1 + i % 4)],
                         chans=4 + i % 5, lr=10 ** (-4 + i / 25), attention=("lka", "lska", None)[i % 3],
                         share=bool(i % 2))
                  for i in range(50)],
    }[case]
    importances = {} if case == "one curve" else None
    _assert_four_pngs(write_search_plots(curves, importances, tmp_path, case), tmp_path)


def test_a_conditional_parameter_missing_from_some_trials_still_plots(tmp_path):
    """A parameter sampled only under some condition is absent from other trials' configs."""
    curves = [_curve("t000", "completed", [0.8]), _curve("t001", "completed", [0.9], chans=4),
              _curve("t002", "completed", [0.85], chans=6)]
    curves[0].config["model.attention_kernel"] = 7
    curves[1].config["model.attention_kernel"] = 11
    _assert_four_pngs(write_search_plots(curves, None, tmp_path, "conditional"), tmp_path)


def _table_rows(markdown):
    return [line for line in markdown.splitlines() if line.startswith("| ")]


def test_summary_ranks_trials_by_final_ssim_with_the_unscored_last_in_start_order():
    rows = _table_rows(summary_markdown(_six_trials(), "six trials", best="t002"))
    names = [row.split("|")[1].strip() for row in rows[1:]]
    assert names == ["**t002** (best)", "t000", "t003", "t001", "t004", "t005"]


def test_summary_shows_ssim_to_four_decimals_and_a_dash_without_one():
    rows = _table_rows(summary_markdown(_six_trials(), "six trials", best="t002"))
    cells = {row.split("|")[1].strip(): [cell.strip() for cell in row.split("|")[2:-1]] for row in rows[1:]}
    assert cells["t000"][:3] == ["completed", "4", "0.9000"]
    assert cells["t004"][:3] == ["failed", "0", "-"]


def test_summary_has_a_column_per_varying_parameter_and_lists_the_constant_ones_once():
    markdown = summary_markdown(_six_trials(), "six trials", best="t002")
    assert markdown.startswith("# six trials\n")
    header = [cell.strip() for cell in _table_rows(markdown)[0].split("|")[1:-1]]
    assert header == ["trial", "status", "epochs", "val SSIM", "model.attention", "model.chans",
                      "model.share_encoder", "train.lr"]
    assert "model.name" not in header
    assert "Same for every trial: model.name=varnet" in markdown
    assert markdown.count("model.name") == 1


def test_summary_marks_only_the_named_best_trial():
    markdown = summary_markdown(_six_trials(), "six trials", best="t000")
    assert markdown.count("(best)") == 1
    assert "| **t000** (best) |" in markdown
    assert "(best)" not in summary_markdown(_six_trials(), "six trials", best=None)


def test_summary_of_no_trials_is_a_heading_and_a_note():
    assert summary_markdown([], "empty", best=None) == "# empty\n\nNo trials.\n"
