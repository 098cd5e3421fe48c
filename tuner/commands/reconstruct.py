"""`python -m tuner reconstruct`: run a trained model over a folder of k-space files and write the images.

Inputs (the first layout that applies, `data.layout.find_submission_files`):

- the SNU leaderboard layout `DATA/acc{4,8}/kspace/<name>.h5` (or `DATA/leaderboard/acc{4,8}/...`),
  written to `OUT/acc{4,8}/<name>.h5`, as the challenge expects a submission;
- `DATA/kspace/*.h5`, else `DATA/*.h5` (e.g. `ROOT/val/kspace`), written to `OUT/<name>.h5`.

Each k-space file holds `kspace` (slices, coils, H, W) complex and `mask` (W,); the mask is applied
as in training (a no-op on k-space that is already undersampled). Each output holds `reconstruction`
(slices, h, w) float32: the model output cropped to the target size, the `image_label` size of the
matching `../image/<name>.h5` if there is one, else 384 x 384 (no larger than the model output).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

import h5py
import numpy as np
import torch
from torch.utils.data import default_collate
from tqdm import tqdm

from data import DataFormatError
from data.atomic import atomic_path
from data.batch import BatchPreparation
from data.category import category_of
from data.errors import UserError
from data.layout import SubmissionFile, find_submission_files, submission_layouts
from data.snu import RawSlice, read_image_header, read_kspace_header, require_finite, to_sample
from tuner.commands.model_source import load_model
from tuner.train import devices
from tuner.train.engine import autocast, autocast_dtype, cropped_output

SUBMISSION_SHAPE = (384, 384)
CHALLENGE_LIMIT_SECONDS = 3600  # the challenge's limit for reconstructing its leaderboard set
RECON_KEY = "reconstruction"


class ReconstructError(UserError):
    """Reconstruction cannot run as asked (output folder taken, device missing); the message says why."""


@dataclass(frozen=True)
class ReconstructOptions:
    """What `reconstruct` is asked to do (the CLI's options), checked on construction."""

    model: str
    data: Path
    out: Path
    batch_size: int = 1
    device: str | None = None  # "cpu" or "cuda"; None: CUDA where available
    storage: Path = Path("tuner_runs")
    tracking_uri: str | None = None  # for MLflow URIs; None: as `search` resolves it

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ReconstructError(f"--batch-size: expected a positive integer, got {self.batch_size}")
        if self.device not in (None, "cpu", "cuda"):
            raise ReconstructError(f"--device: expected cpu or cuda, got {self.device!r}")


@dataclass(frozen=True)
class KspaceFile:
    """One input file, validated: where its output goes (relative to OUT) and the crop size."""

    path: Path
    output: Path
    num_slices: int
    mask: np.ndarray  # (W,) bool
    target_shape: tuple[int, int]
    category: str  # brain_x4 ...: from the name, else organ brain and the mask's acceleration


@dataclass(frozen=True)
class ReconstructResult:
    """How much was reconstructed and how long it took."""

    files: int
    slices: int
    seconds: float  # the whole command: checks, model loading, reading, inference, writing
    file_seconds: float  # reading, inference and writing only
    leaderboard: bool


def main(args: argparse.Namespace) -> int:
    run_reconstruct(ReconstructOptions(model=args.model, data=args.data, out=args.out, batch_size=args.batch_size,
                                       device=args.device, storage=args.storage.resolve(),
                                       tracking_uri=args.tracking_uri), sys.stdout)
    return 0


def run_reconstruct(options: ReconstructOptions, out: TextIO) -> ReconstructResult:
    """Validate everything, load the model, then reconstruct file by file with one progress line each."""
    start = time.perf_counter()
    device = devices.resolve_device(options.device)
    inputs, leaderboard = find_kspace_files(options.data)
    _check_output_dir(options.out)
    loaded = load_model(options.model, options.storage, options.tracking_uri)
    print(f"model: {loaded.describe()}", file=out)
    print(f"{len(inputs)} files, {sum(f.num_slices for f in inputs)} slices from {options.data} "
          f"({'leaderboard layout' if leaderboard else 'one output per file'}) -> {options.out}, on {device}",
          file=out, flush=True)
    options.out.mkdir(parents=True, exist_ok=True)
    model = loaded.model.to(device)
    dtype = autocast_dtype(loaded.mixed_precision, device)
    # A model trained on cropped or coil-compressed slices must see its inputs prepared the same way.
    prepare = BatchPreparation(loaded.config.augment if loaded.config is not None else None, train=False)
    file_seconds = 0.0
    # On a terminal a bar with the ETA of the whole set (disable=None: off when stderr is a log or pipe,
    # where the per-file lines are the progress).
    with tqdm(total=sum(f.num_slices for f in inputs), unit="slice", desc="reconstruct", file=sys.stderr,
              disable=None, leave=False, dynamic_ncols=True) as bar:
        for item in inputs:
            file_start = time.perf_counter()
            recon = reconstruct_file(model, item, options.batch_size, device, dtype, prepare, bar.update)
            _write_reconstruction(options.out / item.output, recon)
            file_seconds += time.perf_counter() - file_start
            bar.write(f"  {item.output}  {item.num_slices} slices -> {tuple(recon.shape)}  "
                      f"{time.perf_counter() - file_start:.1f} s", file=out)
    result = ReconstructResult(len(inputs), sum(f.num_slices for f in inputs), time.perf_counter() - start,
                               file_seconds, leaderboard)
    print(_summary(result), file=out)
    return result


@torch.no_grad()
def reconstruct_file(model: torch.nn.Module, item: KspaceFile, batch_size: int, device: torch.device,
                     dtype: torch.dtype | None, prepare: BatchPreparation,
                     on_slices: Callable[[int], object] | None = None) -> np.ndarray:
    """All slices of one file in eval mode, under autocast to `dtype` (None: float32): `(S, h, w)` float32.

    `prepare` does what validation did to the model's inputs (crop and coil compression, if its
    training config had them, and the mask), on `device`; `on_slices(n)` hears of every batch done.
    """
    model.eval()
    # Only the target's shape matters outside training: it sets the crop and the output size.
    target = np.zeros(item.target_shape, np.float32)
    slices = []
    with h5py.File(item.path, "r") as f:
        for first in range(0, item.num_slices, batch_size):
            kspace = require_finite(f["kspace"][first:first + batch_size], item.path,
                                    f"kspace slices {first}..{min(first + batch_size, item.num_slices) - 1}")
            samples = [to_sample(RawSlice(k, item.mask, target, 1.0, item.category), item.path.name, first + i)
                       for i, k in enumerate(kspace)]
            batch = prepare(default_collate(samples), device)
            with autocast(device, dtype):
                output = cropped_output(model, batch.masked_kspace, batch.mask, item.target_shape)
            slices.append(output.float().cpu().numpy())
            if on_slices is not None:
                on_slices(len(samples))
    return np.concatenate(slices)


def find_kspace_files(data: Path) -> tuple[list[KspaceFile], bool]:
    """Every input file of `data`, validated, and whether `data` is in the leaderboard layout."""
    if not data.is_dir():
        raise DataFormatError(f"--data {data}: no such directory")
    found = find_submission_files(data, "kspace")
    if not found:
        raise DataFormatError(f"--data {data}: no k-space files (expected {submission_layouts('kspace')})")
    return [_kspace_file(item) for item in found], found[0].acceleration is not None


def _kspace_file(found: SubmissionFile) -> KspaceFile:
    header = read_kspace_header(found.path)
    image = found.beside("image")
    if image.is_file():
        target_shape = read_image_header(image, header.num_slices).shape
    else:
        target_shape = (min(SUBMISSION_SHAPE[0], header.shape[1]), min(SUBMISSION_SHAPE[1], header.shape[2]))
    category = category_of(found.path.name, header.mask, organ_default="brain")
    return KspaceFile(found.path, found.submission, header.num_slices, header.mask, target_shape, category)


def _check_output_dir(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ReconstructError(f"--out {out}: already exists and is not an empty directory; choose a new one")


def _write_reconstruction(path: Path, recon: np.ndarray) -> None:
    """Write `reconstruction` (S, h, w) as float32 to `path` atomically: no half-written outputs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset(RECON_KEY, data=recon.astype(np.float32))


def _summary(result: ReconstructResult) -> str:
    line = (f"reconstructed {result.files} files, {result.slices} slices in {result.file_seconds:.1f} s "
            f"({result.slices / result.file_seconds:.2f} slices/s); {result.seconds:.1f} s in all with model loading")
    if result.leaderboard:
        # The limit applies to the whole reconstruction run, so the total is what is compared.
        verdict = "within" if result.seconds <= CHALLENGE_LIMIT_SECONDS else "OVER"
        line += (f", {verdict} the challenge's {CHALLENGE_LIMIT_SECONDS} s limit for its leaderboard set "
                 f"({100 * result.seconds / CHALLENGE_LIMIT_SECONDS:.1f} %)")
    return line
