"""The mask bank (training-file masks by organ, acceleration and width) and duplication indexing."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from ..errors import DataFormatError
from ..masks import make_mask
from ..snu import ACCELERATIONS, category_of

# The challenge's masks: equispaced with 8 % of the columns as the centre block (DESIGN 4).
FALLBACK_KIND = "equispaced"
FALLBACK_CENTER_FRACTION = 0.08
_CATEGORY = re.compile(r"([a-z]+)_x(\d+)")
_KEY = re.compile(r"([a-z]+)_x(\d+)_w(\d+)")

GroupKey = tuple[str, int, int]  # (organ, acceleration, width)


def split_category(category: str) -> tuple[str, int]:
    """("brain", 4) from "brain_x4"."""
    match = _CATEGORY.fullmatch(category)
    if match is None:
        raise ValueError(f"category: expected '<organ>_x<acceleration>' like 'brain_x4', got {category!r}")
    return match.group(1), int(match.group(2))


class MaskBank:
    """Column masks grouped by (organ, acceleration, width), each group an array (n, width) of bool.

    :meth:`draw` picks uniformly among a group's masks (one per training file, so common masks
    come up as often as they occur). A group that does not exist, e.g. a width no training file
    of that organ and acceleration has, falls back to a freshly generated challenge mask:
    ``equispaced`` at that width and acceleration with centre fraction 0.08 and a random offset.
    Resampling a mask of another width would change its spacing or its centre block, so the bank
    does not do that. An empty bank therefore generates every mask.
    """

    def __init__(self, groups: Mapping[GroupKey, np.ndarray] | None = None):
        self._groups: dict[GroupKey, np.ndarray] = {}
        for (organ, acceleration, width), masks in (groups or {}).items():
            masks = np.asarray(masks)
            if masks.ndim != 2 or masks.shape[1] != width or masks.shape[0] == 0:
                raise ValueError(f"mask group {(organ, acceleration, width)}: expected shape (n, {width}), "
                                 f"got {masks.shape}")
            self._groups[(str(organ), int(acceleration), int(width))] = masks.astype(bool)

    def keys(self) -> list[GroupKey]:
        """The (organ, acceleration, width) groups held, sorted."""
        return sorted(self._groups)

    def masks(self, organ: str, acceleration: int, width: int) -> np.ndarray:
        """The group's masks (n, width) bool; n = 0 when the bank has no such group."""
        return self._groups.get((organ, acceleration, width), np.zeros((0, width), dtype=bool)).copy()

    def __len__(self) -> int:
        return sum(len(masks) for masks in self._groups.values())

    def draw(self, organ: str, acceleration: int, width: int, rng: np.random.Generator) -> np.ndarray:
        """One mask (width,) bool of the group, or the generated fallback (see the class docstring)."""
        masks = self._groups.get((organ, acceleration, width))
        if masks is None:
            seed = int(rng.integers(2**31))
            return make_mask(FALLBACK_KIND, width, acceleration, FALLBACK_CENTER_FRACTION, seed)
        return masks[int(rng.integers(len(masks)))].copy()

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the bank to ``path`` as npz (one uint8 array per group, key "brain_x4_w396").

        Written to a temporary file in the same directory first, then moved into place, so ``path``
        is never half written; an existing ``path`` is a FileExistsError unless ``overwrite``.
        """
        path = Path(path)
        arrays = {f"{o}_x{a}_w{w}": m.astype(np.uint8) for (o, a, w), m in self._groups.items()}
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)  # mkstemp creates it private
            if overwrite:
                os.replace(tmp, path)
            else:
                # A hard link never replaces an existing file, so two writers cannot clobber each other.
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise FileExistsError(f"{path}: exists; pass overwrite=True to replace it") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def load(cls, path: str | Path) -> MaskBank:
        """Read a bank written by :meth:`save`; a malformed file is a :class:`DataFormatError`."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
        except (OSError, ValueError) as exc:
            raise DataFormatError(f"{path}: not a readable mask bank ({exc})") from None
        groups = {}
        for key, masks in arrays.items():
            match = _KEY.fullmatch(key)
            if match is None or masks.ndim != 2 or masks.shape[1] != int(match.group(3)):
                raise DataFormatError(f"{path}: unexpected entry {key!r} with shape {masks.shape}")
            groups[(match.group(1), int(match.group(2)), int(match.group(3)))] = masks
        return cls(groups)


def build_mask_bank(kspace_files: Iterable[str | Path]) -> MaskBank:
    """Group the ``mask`` (W,) of each SNU k-space file by its category (from the name) and width."""
    grouped: dict[GroupKey, list[np.ndarray]] = {}
    for path in sorted(Path(p) for p in kspace_files):
        try:
            with h5py.File(path, "r") as f:
                item = f.get("mask")
                if not isinstance(item, h5py.Dataset):
                    raise DataFormatError(f"{path}: missing dataset 'mask'")
                mask = np.squeeze(item[()])
        except OSError as exc:
            raise DataFormatError(f"{path}: not a readable HDF5 file ({exc})") from None
        if mask.ndim != 1 or not np.isin(mask, (0, 1)).all() or not mask.any():
            raise DataFormatError(f"{path}: 'mask' must be a non-empty 1-D 0/1 array, got shape {mask.shape}")
        organ, acceleration = split_category(category_of(path.name, mask))
        grouped.setdefault((organ, acceleration, mask.size), []).append(mask.astype(bool))
    return MaskBank({key: np.stack(masks) for key, masks in grouped.items()})


class DuplicatedIndex:
    """Item i of a duplicated epoch -> (slice index, acceleration), copy-major.

    Items [0, n) are every slice at ``accelerations[0]``, [n, 2n) every slice at
    ``accelerations[1]``, and so on; a shuffling sampler mixes them.
    """

    def __init__(self, num_slices: int, accelerations: Sequence[int] = ACCELERATIONS):
        if isinstance(num_slices, bool) or not isinstance(num_slices, int) or num_slices < 0:
            raise ValueError(f"num_slices: expected an integer >= 0, got {num_slices!r}")
        if not accelerations or len(set(accelerations)) != len(accelerations):
            raise ValueError(f"accelerations: expected distinct values, got {accelerations!r}")
        self.num_slices = num_slices
        self.accelerations = tuple(int(a) for a in accelerations)

    def __len__(self) -> int:
        return self.num_slices * len(self.accelerations)

    def __getitem__(self, i: int) -> tuple[int, int]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} out of range for {len(self)} items")
        copy, slice_index = divmod(i % len(self), self.num_slices)
        return slice_index, self.accelerations[copy]

