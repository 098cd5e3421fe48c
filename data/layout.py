"""Which format a data root holds, and the per-slice dataset for one of its splits.

Two layouts are accepted (docs/data-formats.md)::

    snu      ROOT/{train,val}/kspace/*.h5 and ROOT/{train,val}/image/*.h5      (data.snu)
    fastmri  ROOT/multicoil_{train,val,...}/*.h5, or ROOT/{train,val,...}/*.h5  (data.fastmri)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, NamedTuple

from .errors import DataFormatError
from .fastmri import FastMRISliceDataset
from .snu import SNUSliceDataset

Layout = Literal["snu", "fastmri"]
_SNU_SPLITS = ("train", "val")
_FASTMRI_SPLITS = ("train", "val", "test", "challenge")
_EXPECTED = (
    "expected the SNU layout ROOT/{train,val}/{kspace,image}/*.h5 "
    "or the fastMRI layout ROOT/multicoil_{train,val}/*.h5 (or ROOT/{train,val}/*.h5)"
)
_SHOWN = 8  # entries named in an error, per directory level
# The SNU leaderboard set's folders and the acceleration each stands for.
LEADERBOARD_FOLDERS = {"acc4": 4, "acc8": 8}
FileKind = Literal["kspace", "image"]


def _names(directory: Path) -> list[str]:
    entries = sorted(directory.iterdir(), key=lambda p: p.name)
    names = [p.name + "/" if p.is_dir() else p.name for p in entries[:_SHOWN]]
    return names + ([f"... {len(entries) - _SHOWN} more"] if len(entries) > _SHOWN else [])


def _describe(root: Path) -> str:
    """What ``root`` holds, two levels deep and abbreviated, for one-line errors."""
    top = _names(root)
    if not top:
        return "an empty directory"
    parts = []
    for name in top:
        inner = _names(root / name) if name.endswith("/") else []
        parts.append(f"{name} [{', '.join(inner)}]" if inner else name)
    return ", ".join(parts)


def detect_layout(root: str | Path) -> Layout:
    """"snu" or "fastmri" from the directory structure of ``root``; else a one-line DataFormatError."""
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(f"{root}: {'not a directory' if root.exists() else 'no such directory'}; {_EXPECTED}")
    snu = any((root / split / "kspace").is_dir() for split in _SNU_SPLITS)
    fastmri = any(p.is_dir() for p in root.glob("multicoil_*")) or any(
        (root / split).is_dir() and any((root / split).glob("*.h5")) for split in _FASTMRI_SPLITS
    )
    if snu and fastmri:
        raise DataFormatError(f"{root}: holds both layouts (found {_describe(root)}); keep one per data root")
    if snu:
        return "snu"
    if fastmri:
        return "fastmri"
    raise DataFormatError(f"{root}: not a data root (found {_describe(root)}); {_EXPECTED}")


def open_split(root: str | Path, split: str, **options: Any) -> SNUSliceDataset | FastMRISliceDataset:
    """The per-slice dataset of ``split`` under ``root``, in its detected layout.

    ``options`` go to the dataset's constructor: ``transform`` for both layouts; ``organ_default``
    for SNU roots; ``mask_kind``, ``accelerations``, ``center_fractions`` and ``seed`` for fastMRI.
    """
    if detect_layout(root) == "snu":
        return SNUSliceDataset(root, split, **options)
    return FastMRISliceDataset(root, split, **options)


class SubmissionFile(NamedTuple):
    """A file to reconstruct or to score, and where its reconstruction stands in a submission folder."""

    path: Path  # the .h5 file
    submission: Path  # relative to the submission folder: "acc4/<name>" in the leaderboard layout, else "<name>"
    acceleration: int | None  # the one its leaderboard folder stands for; None outside that layout

    def beside(self, kind: FileKind) -> Path:
        """The file of the other kind with the same name: ``<folder>/../<kind>/<name>``."""
        return self.path.parent.parent / kind / self.path.name


def find_submission_files(data: Path, kind: FileKind) -> list[SubmissionFile]:
    """The ``kind`` files under ``data`` (sorted per folder; none: empty), by the first layout that applies.

    - leaderboard: ``data/acc{4,8}/<kind>/*.h5``, or ``data/leaderboard/acc{4,8}/<kind>/*.h5``;
    - else ``data/<kind>/*.h5``, else ``data/*.h5`` (e.g. ``ROOT/val/kspace`` itself).
    """
    root = data / "leaderboard" if (data / "leaderboard").is_dir() else data
    folders = {name: acc for name, acc in LEADERBOARD_FOLDERS.items() if (root / name / kind).is_dir()}
    if folders:
        return [SubmissionFile(path, Path(name) / path.name, acc)
                for name, acc in folders.items() for path in sorted((root / name / kind).glob("*.h5"))]
    folder = data / kind if (data / kind).is_dir() else data
    return [SubmissionFile(path, Path(path.name), None) for path in sorted(folder.glob("*.h5"))]


def submission_layouts(kind: FileKind) -> str:
    """The layouts :func:`find_submission_files` accepts, in words, for an error that found none."""
    return f"acc4/{kind}/*.h5 and acc8/{kind}/*.h5, leaderboard/acc{{4,8}}/{kind}/*.h5, {kind}/*.h5 or *.h5"
