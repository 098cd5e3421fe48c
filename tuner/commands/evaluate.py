"""`python -m tuner evaluate`: score a folder of reconstructions with the challenge's leaderboard SSIM.

Targets and matching, in D = `DATA/<split>` with `--split`, else `DATA` (the first layout that applies,
`data.layout.find_submission_files`):

- leaderboard: `D/acc{4,8}/image/<name>` (or `D/leaderboard/acc{4,8}/image/<name>`) is scored against
  `RECON/acc{4,8}/<name>`; the organ comes from the name (`brain_test1.h5`), the acceleration from
  the `acc4`/`acc8` folder.
- otherwise the targets are `D/image/*.h5`, else `D/*.h5`; each `<name>` is scored against
  `RECON/<name>`, its category read as training reads it: `data.category.category_of` of the name (organ,
  `accN`) and the mask of the k-space file `../kspace/<name>` beside the target folder (the
  reconstruction's input, so it must be there).

Every target needs its reconstruction (`reconstruction`, slices x h x w, the target's slice count and
size); reconstructions without a target are not scored. Per slice the score is the leaderboard SSIM
with the file's `max` as data range; slices are averaged per acceleration, and the score is the mean
of the acc4 and acc8 averages (`tuner.train.metrics`).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import h5py

from data import DataFormatError
from data.category import ORGANS, Category, category_of, named_organ
from data.errors import UserError
from data.layout import SubmissionFile, find_submission_files, submission_layouts
from data.snu import read_image_header, read_kspace_header, require_finite
from tuner.commands.reconstruct import RECON_KEY
from tuner.search.record import write_json
from tuner.train.metrics import SSIMAccumulator, SSIMSummary, leaderboard_ssim


class EvaluateError(UserError):
    """A reconstruction is missing or does not fit its target; the message names the file."""


@dataclass(frozen=True)
class Match:
    """A target file, the reconstruction scored against it, and the category it counts for."""

    target: Path
    recon: Path
    category: str


@dataclass(frozen=True)
class Evaluation:
    """The leaderboard scores, slices counted per category, and what was not scored."""

    summary: SSIMSummary
    slices_per_category: dict[str, int]
    files: int
    unscored: list[Path]  # reconstructions without a target


def main(args: argparse.Namespace) -> int:
    """Score `--recon` against `--data`'s targets, print the table, and write `--json` (a new file) if asked."""
    if args.json is not None and args.json.exists():
        raise EvaluateError(f"--json {args.json}: already exists; choose a new file")
    result = evaluate(args.recon, args.data, args.split)
    report(result, sys.stdout)
    if args.json is not None:
        write_scores(args.json, result, args.recon, args.data)
        print(f"scores written to {args.json}")
    return 0


def match_files(recon: Path, data: Path, split: str | None = None) -> list[Match]:
    """Every target of `data` with its reconstruction path and category, by the rules in the module docstring."""
    data = data / split if split else data
    if not data.is_dir():
        raise DataFormatError(f"--data {data}: no such directory")
    targets = find_submission_files(data, "image")
    if not targets:
        raise DataFormatError(f"--data {data}: no targets (expected {submission_layouts('image')}; for a "
                              "train/val root give --split val)")
    return [Match(target.path, recon / target.submission, _category(target)) for target in targets]


def evaluate(recon: Path, data: Path, split: str | None = None) -> Evaluation:
    """Check every reconstruction against its target first, then score all slices."""
    if not recon.is_dir():
        raise EvaluateError(f"--recon {recon}: no such directory")
    matches = match_files(recon, data, split)
    max_values = [_check_pair(m) for m in matches]
    scores = SSIMAccumulator()
    slices: Counter[str] = Counter()
    for match, max_value in zip(matches, max_values, strict=True):
        organ = Category.parse(match.category).organ
        with h5py.File(match.target, "r") as t, h5py.File(match.recon, "r") as r:
            targets = require_finite(t["image_label"][()], match.target, "image_label")
            recons = require_finite(r[RECON_KEY][()], match.recon, RECON_KEY)
        for target, image in zip(targets, recons, strict=True):
            scores.add(match.category, leaderboard_ssim(image, target, max_value, organ))
        slices[match.category] += len(targets)
    scored = {m.recon.resolve() for m in matches}
    unscored = sorted(p for p in recon.rglob("*.h5") if p.resolve() not in scored)
    return Evaluation(scores.summary(), dict(sorted(slices.items())), len(matches), unscored)


def report(result: Evaluation, out: TextIO) -> None:
    """The score table: per category, per acceleration, overall."""
    summary = result.summary
    print(f"{'':<10} {'slices':>6}  SSIM", file=out)
    for category, value in summary.per_category.items():
        print(f"{category:<10} {result.slices_per_category[category]:>6}  {value:.6f}", file=out)
    for acc, value in summary.per_acceleration.items():
        count = sum(n for c, n in result.slices_per_category.items() if Category.parse(c).acceleration == acc)
        print(f"{f'x{acc}':<10} {count:>6}  {value:.6f}", file=out)
    print(f"{'overall':<10} {summary.slices:>6}  {summary.overall:.6f}  (mean of the accelerations; "
          f"{result.files} files)", file=out)
    if result.unscored:
        print(f"not scored (no target): {', '.join(str(p) for p in result.unscored)}", file=out)


def scores_json(result: Evaluation, recon: Path, data: Path) -> dict[str, Any]:
    summary = result.summary
    return {"overall": summary.overall,
            "per_acceleration": {f"x{acc}": v for acc, v in summary.per_acceleration.items()},
            "per_category": summary.per_category, "slices": summary.slices,
            "slices_per_category": result.slices_per_category, "files": result.files,
            "recon": str(recon.resolve()), "data": str(data.resolve())}


def write_scores(path: Path, result: Evaluation, recon: Path, data: Path) -> None:
    """Write the scores as JSON, atomically."""
    write_json(path, scores_json(result, recon, data))


def _check_pair(match: Match) -> float:
    """The target's `max`, once the reconstruction is known to exist with the target's slices and size."""
    num_slices, shape, max_value = read_image_header(match.target)
    if not match.recon.is_file():
        raise EvaluateError(f"{match.recon}: missing reconstruction of {match.target}")
    try:
        with h5py.File(match.recon, "r") as f:
            recon = f.get(RECON_KEY)
            got = (recon.dtype.kind, tuple(recon.shape)) if isinstance(recon, h5py.Dataset) else None
    except OSError as exc:
        raise EvaluateError(f"{match.recon}: not a readable HDF5 file ({exc})") from None
    if got is None or got[0] != "f" or len(got[1]) != 3:
        raise EvaluateError(f"{match.recon}: expected '{RECON_KEY}' float (slices, h, w), got {got}")
    if got[1][0] != num_slices:
        raise EvaluateError(f"{match.recon}: {got[1][0]} slices, its target {match.target} has {num_slices}")
    if got[1][1:] != shape:
        raise EvaluateError(f"{match.recon}: slices of {got[1][1]}x{got[1][2]}, its target {match.target} "
                            f"has {shape[0]}x{shape[1]}")
    return max_value


def _category(target: SubmissionFile) -> str:
    """In the leaderboard layout: the organ of the name, the folder's acceleration; else as training reads it."""
    if target.acceleration is not None:
        organ = named_organ(target.path)
        if organ is None:
            raise DataFormatError(f"{target.path}: expected the file name to name one organ ({' or '.join(ORGANS)})")
        return str(Category(organ, target.acceleration))
    kspace = target.beside("kspace")
    if not kspace.is_file():
        raise DataFormatError(f"{target.path}: no k-space file {kspace} to read the category from (as training does)")
    return category_of(target.path.name, read_kspace_header(kspace).mask)
