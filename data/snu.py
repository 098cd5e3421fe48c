"""The SNU FastMRI Challenge train/val layout: file naming, validation and a per-slice dataset.

Layout (docs/data-formats.md)::

    ROOT/{train,val}/kspace/{brain,knee}_acc{4,8}_{N}.h5   kspace (S, C, H, W) complex, mask (W,) 0/1
    ROOT/{train,val}/image/<same name>.h5                   image_label (S, h, w) float, attrs["max"] > 0

The k-space in these sets is fully sampled. A sample carries it as stored, with the file's mask beside
it: the mask is applied where the batch meets the model (``data.batch``), after any augmentation that
needs the fully sampled data, on the device the model runs on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, NamedTuple

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from .category import ORGANS, category_of
from .errors import DataFormatError

_KIND_NAMES = {"c": "complex", "f": "real floating"}  # numpy dtype kinds, as errors name them

# The length of an encoded geometric transform (``data.augment.ImageTransform.to_vector``); all zeros: none.
IMAGE_TRANSFORM_SIZE = 8


class RawSlice(NamedTuple):
    """One slice as read, before it becomes a tensor sample; what a dataset's ``transform`` receives and returns."""

    kspace: np.ndarray  # (C, H, W) complex, as stored (fully sampled in train/val sets)
    mask: np.ndarray  # (W,) bool: the columns the model may see
    target: np.ndarray  # (h, w) float
    max_value: float  # SSIM data range
    category: str  # one of data.category.CATEGORIES
    image_transform: np.ndarray = np.zeros(IMAGE_TRANSFORM_SIZE)  # still to apply on the device


# (slice, index of the item) -> slice
SliceTransform = Callable[[RawSlice, int], RawSlice]


class VarNetSample(NamedTuple):
    """One slice for a VarNet. torch's default collate batches it field by field.

    ``kspace`` is not masked yet: ``data.batch.BatchPreparation`` applies ``image_transform`` (when not
    all zeros) and then ``mask`` on the model's device, so augmentation that needs the fully sampled
    k-space runs there and the model only ever sees masked k-space.
    """

    kspace: torch.Tensor  # (C, H, W, 2) float32 (re, im), as stored
    mask: torch.Tensor  # (1, 1, W, 1) bool
    target: torch.Tensor  # (h, w) float32
    max_value: float  # SSIM data range of the file
    category: str  # one of data.category.CATEGORIES
    fname: str  # k-space file name, e.g. "brain_acc4_3.h5"
    slice_idx: int
    image_transform: torch.Tensor  # (IMAGE_TRANSFORM_SIZE,) float64 geometric augmentation; zeros: none


def require_finite(values: np.ndarray, path: Path, what: str) -> np.ndarray:
    """`values` unchanged, or a DataFormatError naming the file when any is NaN or infinite.

    A non-finite value makes every loss, SSIM and reconstruction that touches it NaN, which would
    otherwise surface as a crashed trial or a NaN score far from its cause.
    """
    if not np.isfinite(values).all():
        raise DataFormatError(f"{path}: {what} holds NaN or infinite values")
    return values


def require_finite_arrays(arrays: Iterable[tuple[Path, str]]) -> int:
    """Read every (file, dataset key) in `arrays` one slice at a time; the bytes read, or the first
    non-finite slice as a DataFormatError naming the file, key and slice.

    The readers check each slice as they read it; this reads everything once up front, so that a bad
    value deep in a large set is found before days of training, not when an epoch first reaches it.
    """
    scanned = 0
    for path, key in arrays:
        with open_h5(path) as f:
            values = h5_dataset(f, key, path)
            for slice_idx in range(values.shape[0]):
                scanned += require_finite(values[slice_idx], path, f"{key} slice {slice_idx}").nbytes
    return scanned


def to_sample(raw: RawSlice, fname: str, slice_idx: int) -> VarNetSample:
    """The tensor sample of a slice (k-space as complex64, mask as bool)."""
    mask = np.asarray(raw.mask, dtype=bool)
    return VarNetSample(
        kspace=torch.view_as_real(torch.from_numpy(np.asarray(raw.kspace, dtype=np.complex64))).contiguous(),
        mask=torch.from_numpy(mask).reshape(1, 1, -1, 1),
        target=torch.from_numpy(np.ascontiguousarray(raw.target, dtype=np.float32)),
        max_value=float(raw.max_value),
        category=raw.category,
        fname=fname,
        slice_idx=slice_idx,
        image_transform=torch.as_tensor(np.asarray(raw.image_transform, dtype=np.float64)),
    )


class KspaceHeader(NamedTuple):
    """What the readers need of an SNU k-space file without reading its k-space."""

    num_slices: int
    shape: tuple[int, int, int]  # (C, H, W) of every slice
    mask: np.ndarray  # (W,) bool


class ImageHeader(NamedTuple):
    """What the readers need of an SNU image file without reading its images."""

    num_slices: int
    shape: tuple[int, int]  # (h, w) of every slice
    max_value: float  # SSIM data range, the file attribute 'max'


class _FileInfo(NamedTuple):
    kspace_path: Path
    image_path: Path
    kspace: KspaceHeader
    max_value: float
    category: str


@contextmanager
def open_h5(path: Path) -> Iterator[h5py.File]:
    """``path`` open for reading; an unreadable or truncated file is a DataFormatError naming it."""
    # h5py reports unreadable or truncated files as OSError, on opening or on reading a dataset.
    try:
        with h5py.File(path, "r") as f:
            yield f
    except OSError as exc:
        raise DataFormatError(f"{path}: not a readable HDF5 file ({exc})") from exc


def h5_dataset(f: h5py.File, key: str, path: Path) -> h5py.Dataset:
    """The dataset `key` of an open h5 file, or a DataFormatError naming the file and the keys it has."""
    item = f.get(key)
    if not isinstance(item, h5py.Dataset):
        raise DataFormatError(f"{path}: missing dataset '{key}' (found keys {sorted(f.keys())})")
    return item


def _h5_array(f: h5py.File, key: str, path: Path, axes: str, kind: str) -> h5py.Dataset:
    # A non-empty dataset with one axis per name in `axes` and dtype kind `kind` ("c" or "f").
    item = h5_dataset(f, key, path)
    if item.ndim != len(axes.split(", ")) or item.dtype.kind != kind:
        raise DataFormatError(f"{path}: '{key}' must be {_KIND_NAMES[kind]} ({axes}), "
                              f"got {item.dtype} with shape {item.shape}")
    if 0 in item.shape:
        raise DataFormatError(f"{path}: '{key}' is empty, shape {item.shape}")
    return item


def read_kspace_header(path: Path) -> KspaceHeader:
    """The header of a k-space file (``kspace`` (S, C, H, W) complex, ``mask`` (W,) 0/1), checked.

    Anything missing, misshapen or unreadable is a one-line DataFormatError naming the file.
    """
    with open_h5(path) as f:
        kspace = _h5_array(f, "kspace", path, "slices, coils, H, W", "c")
        num_slices, coils, height, width = (int(n) for n in kspace.shape)
        mask = checked_mask(h5_dataset(f, "mask", path)[()], width, path)
    return KspaceHeader(num_slices, (coils, height, width), mask)


def checked_mask(mask: np.ndarray, width: int, path: Path) -> np.ndarray:
    """A stored column mask as (width,) bool, or a DataFormatError saying what is wrong with it."""
    mask = np.squeeze(mask)
    if mask.ndim != 1 or mask.shape[0] != width:
        raise DataFormatError(
            f"{path}: 'mask' must have shape ({width},) to match the k-space width, got {mask.shape}"
        )
    if mask.dtype.kind not in "biuf" or not np.isin(mask, (0, 1)).all():
        raise DataFormatError(f"{path}: 'mask' must hold only 0 and 1, got dtype {mask.dtype}")
    if not mask.any():
        raise DataFormatError(f"{path}: 'mask' samples no column")
    return mask.astype(bool)


def read_image_header(path: Path, num_slices: int | None = None) -> ImageHeader:
    """The header of an image file (``image_label`` (S, h, w) float, attribute ``max`` > 0), checked.

    ``num_slices``, if given, is its k-space file's S, which ``image_label`` must match. Anything
    missing, misshapen or unreadable is a one-line DataFormatError naming the file.
    """
    with open_h5(path) as f:
        label = _h5_array(f, "image_label", path, "slices, h, w", "f")
        if num_slices is not None and label.shape[0] != num_slices:
            raise DataFormatError(
                f"{path}: 'image_label' has {label.shape[0]} slices, its k-space file has {num_slices}"
            )
        if "max" not in f.attrs:
            raise DataFormatError(f"{path}: missing file attribute 'max' (the SSIM data range)")
        max_value = checked_data_range(f.attrs["max"], path)
        slices, height, width = (int(n) for n in label.shape)
    return ImageHeader(slices, (height, width), max_value)


def checked_data_range(value: object, path: Path) -> float:
    """A file's SSIM data range ('max') as a float, or a DataFormatError: one finite number > 0."""
    array = np.asarray(value)
    if array.size != 1 or array.dtype.kind not in "iuf":
        raise DataFormatError(f"{path}: attribute 'max' must be one number, got {array!r}")
    max_value = float(array.reshape(()))
    if not np.isfinite(max_value) or max_value <= 0:
        raise DataFormatError(f"{path}: attribute 'max' must be finite and > 0, got {max_value}")
    return max_value


class SNUSliceDataset(Dataset):
    """All slices of ``root/split`` in the SNU layout, each item a :class:`VarNetSample`.

    Every file is validated on construction (a :class:`DataFormatError` names the first bad file);
    slices are read lazily, opening the files per item, so the dataset is safe to use from
    DataLoader worker processes.

    ``transform`` (e.g. ``data.augment.SliceAugmenter``), if given, is called per item as
    ``transform(RawSlice, index)``, arrays as stored, with the item's non-negative index, and returns
    the slice to use. The dataset knows no epoch: a transform that depends on it holds it itself
    (``SliceAugmenter.set_epoch``). The attribute may be replaced.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        organ_default: str | None = None,
        transform: SliceTransform | None = None,
    ):
        self.transform = transform
        if organ_default is not None and organ_default not in ORGANS:
            raise ValueError(f"organ_default must be one of {ORGANS} or None, got {organ_default!r}")
        base = Path(root) / split
        kspace_dir, image_dir = base / "kspace", base / "image"
        for directory in (kspace_dir, image_dir):
            if not directory.is_dir():
                raise DataFormatError(f"{directory}: directory not found (expected the SNU layout)")
        kspace_paths = sorted(kspace_dir.glob("*.h5"))
        if not kspace_paths:
            raise DataFormatError(f"{kspace_dir}: no .h5 files")

        self._infos: list[_FileInfo] = []
        for kspace_path in kspace_paths:
            image_path = image_dir / kspace_path.name
            if not image_path.is_file():
                raise DataFormatError(f"{kspace_path}: no image pair, expected {image_path}")
            header = read_kspace_header(kspace_path)
            max_value = read_image_header(image_path, header.num_slices).max_value
            category = category_of(kspace_path.name, header.mask, organ_default)
            self._infos.append(_FileInfo(kspace_path, image_path, header, max_value, category))
        self._index = [
            (file_idx, slice_idx)
            for file_idx, info in enumerate(self._infos)
            for slice_idx in range(info.kspace.num_slices)
        ]

    @property
    def files(self) -> list[Path]:
        """The k-space files, in dataset order."""
        return [info.kspace_path for info in self._infos]

    @property
    def categories(self) -> list[str]:
        """The category of every slice, in dataset order."""
        return [self._infos[file_idx].category for file_idx, _ in self._index]

    @property
    def value_arrays(self) -> list[tuple[Path, str]]:
        """Every (file, dataset key) holding measured values: k-space and targets."""
        return [pair for info in self._infos
                for pair in ((info.kspace_path, "kspace"), (info.image_path, "image_label"))]

    def largest_slice(self) -> int:
        """Index of a slice of the largest (coils x height x width) shape: a step's memory worst case."""
        file_idx = max(range(len(self._infos)), key=lambda i: int(np.prod(self._infos[i].kspace.shape)))
        return self._index.index((file_idx, self._infos[file_idx].kspace.num_slices // 2))

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> VarNetSample:
        if not -len(self) <= i < len(self):
            raise IndexError(f"slice index {i} out of range for {len(self)} slices")
        file_idx, slice_idx = self._index[i]
        info = self._infos[file_idx]
        with h5py.File(info.kspace_path, "r") as f:
            kspace = require_finite(f["kspace"][slice_idx], info.kspace_path, f"kspace slice {slice_idx}")
        with h5py.File(info.image_path, "r") as f:
            target = require_finite(f["image_label"][slice_idx], info.image_path, f"image_label slice {slice_idx}")
        # A copy: a transform may change the mask in place.
        raw = RawSlice(kspace, info.kspace.mask.copy(), target, info.max_value, info.category)
        if self.transform is not None:
            raw = self.transform(raw, i % len(self))
        return to_sample(raw, info.kspace_path.name, slice_idx)
