"""The mask bank (training-file masks by organ, acceleration and width) and duplication indexing."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..category import ACCELERATIONS, Category, category_of
from ..errors import DataFormatError
from ..masks import make_mask
from ..snu import read_kspace_header

# The challenge's masks: equispaced with 8 % of the columns as the centre block (docs/masks.md).
FALLBACK_KIND = "equispaced"
FALLBACK_CENTER_FRACTION = 0.08
_KEY = re.compile(r"([a-z]+)_x(\d+)_w(\d+)")

GroupKey = tuple[str, int, int]  # (organ, acceleration, width)


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

        Written atomically (``data.atomic.atomic_path``), so ``path`` is never half written; an
        existing ``path`` is a FileExistsError unless ``overwrite``.
        """
        path = Path(path)
        arrays = {f"{Category(o, a)}_w{w}": m.astype(np.uint8) for (o, a, w), m in self._groups.items()}
        # Through an open file: given a name, np.savez would append ".npz" to the temporary one.
        with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
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
        mask = read_kspace_header(path).mask
        organ, acceleration = Category.parse(category_of(path.name, mask))
        grouped.setdefault((organ, acceleration, mask.size), []).append(mask)
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

