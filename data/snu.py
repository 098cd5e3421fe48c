"""The SNU FastMRI Challenge train/val layout: file naming, validation and a per-slice dataset.

Layout (DESIGN 4)::

    ROOT/{train,val}/kspace/{brain,knee}_acc{4,8}_{N}.h5   kspace (S, C, H, W) complex, mask (W,) 0/1
    ROOT/{train,val}/image/<same name>.h5                   image_label (S, h, w) float, attrs["max"] > 0

The k-space in these sets is fully sampled. A sample carries it as stored, with the file's mask beside
it: the mask is applied where the batch meets the model (``data.batch``), after any augmentation that
needs the fully sampled data, on the device the model runs on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, NamedTuple, TypeVar

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import DataFormatError
from .masks import nominal_acceleration

ORGANS = ("brain", "knee")
ACCELERATIONS = (4, 8)
CATEGORIES = tuple(f"{organ}_x{acc}" for organ in ORGANS for acc in ACCELERATIONS)
_ACC_TOKEN = re.compile(r"acc(\d+)")
T = TypeVar("T")
# The length of an encoded geometric transform (``data.augment.ImageTransform.to_vector``); all zeros: none.
IMAGE_TRANSFORM_SIZE = 8


class RawSlice(NamedTuple):
    """One slice as read, before it becomes a tensor sample; what a dataset's ``transform`` receives and returns."""

    kspace: np.ndarray  # (C, H, W) complex, as stored (fully sampled in train/val sets)
    mask: np.ndarray  # (W,) bool: the columns the model may see
    target: np.ndarray  # (h, w) float
    max_value: float  # SSIM data range
    category: str  # one of CATEGORIES
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
    category: str  # one of CATEGORIES
    fname: str  # k-space file name, e.g. "brain_acc4_3.h5"
    slice_idx: int
    image_transform: torch.Tensor  # (IMAGE_TRANSFORM_SIZE,) float64 geometric augmentation; zeros: none


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


def category_of(fname: str | Path, mask: np.ndarray, organ_default: str | None = None) -> str:
    """Category ("brain_x4", ...) of a file from its name, else its mask density / ``organ_default``.

    The name's tokens (split on "_" and "-") give the organ ("brain"/"knee") and acceleration
    ("acc4"/"acc8"); a name without an acceleration token is classified from ``mask`` by
    ``masks.nominal_acceleration`` (plain W / sampled would call an equispaced R 8 mask R 4).
    """
    name = Path(fname).name
    tokens = re.split(r"[_\-.]", Path(name).stem.lower())
    organs = [t for t in tokens if t in ORGANS]
    accs = [int(m.group(1)) for t in tokens if (m := _ACC_TOKEN.fullmatch(t))]
    if len(organs) > 1 or len(accs) > 1:
        raise DataFormatError(f"{name}: file name names more than one organ or acceleration")
    if organs:
        organ = organs[0]
    elif organ_default is not None:
        organ = organ_default
    else:
        raise DataFormatError(
            f"{name}: file name names no organ ({' or '.join(ORGANS)}) and no organ_default was given"
        )
    if accs:
        acc = accs[0]
        if acc not in ACCELERATIONS:
            raise DataFormatError(f"{name}: acceleration acc{acc} is not one of {ACCELERATIONS}")
    else:
        try:
            acc = nominal_acceleration(mask, ACCELERATIONS)
        except ValueError as exc:
            raise DataFormatError(f"{name}: cannot infer the acceleration from the mask: {exc}") from None
    return f"{organ}_x{acc}"


class _FileInfo(NamedTuple):
    kspace_path: Path
    image_path: Path
    num_slices: int
    shape: tuple[int, int, int]  # (C, H, W) of every slice
    mask: np.ndarray  # (W,) float32 0/1
    max_value: float
    category: str


def h5_dataset(f: h5py.File, key: str, path: Path) -> h5py.Dataset:
    """The dataset `key` of an open h5 file, or a DataFormatError naming the file and the keys it has."""
    item = f.get(key)
    if not isinstance(item, h5py.Dataset):
        raise DataFormatError(f"{path}: missing dataset '{key}' (found keys {sorted(f.keys())})")
    return item


def _check_kspace_file(path: Path) -> tuple[int, tuple[int, int, int], np.ndarray]:
    with h5py.File(path, "r") as f:
        kspace = h5_dataset(f, "kspace", path)
        if kspace.ndim != 4 or kspace.dtype.kind != "c":
            raise DataFormatError(
                f"{path}: 'kspace' must be complex (slices, coils, H, W), "
                f"got {kspace.dtype} with shape {kspace.shape}"
            )
        if 0 in kspace.shape:
            raise DataFormatError(f"{path}: 'kspace' is empty, shape {kspace.shape}")
        mask = h5_dataset(f, "mask", path)[()]
        shape = tuple(int(n) for n in kspace.shape)
    num_slices = shape[0]
    return num_slices, (shape[1], shape[2], shape[3]), checked_mask(mask, shape[-1], path).astype(np.float32)


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


def _check_image_file(path: Path, num_slices: int) -> float:
    with h5py.File(path, "r") as f:
        label = h5_dataset(f, "image_label", path)
        if label.ndim != 3 or label.dtype.kind != "f":
            raise DataFormatError(
                f"{path}: 'image_label' must be real floating (slices, h, w), "
                f"got {label.dtype} with shape {label.shape}"
            )
        if label.shape[0] != num_slices:
            raise DataFormatError(
                f"{path}: 'image_label' has {label.shape[0]} slices, its k-space file has {num_slices}"
            )
        if "max" not in f.attrs:
            raise DataFormatError(f"{path}: missing file attribute 'max' (the SSIM data range)")
        return checked_data_range(f.attrs["max"], path)


def checked_data_range(value: object, path: Path) -> float:
    """A file's SSIM data range ('max') as a float, or a DataFormatError: one finite number > 0."""
    array = np.asarray(value)
    if array.size != 1 or array.dtype.kind not in "iuf":
        raise DataFormatError(f"{path}: attribute 'max' must be one number, got {array!r}")
    max_value = float(array.reshape(()))
    if not np.isfinite(max_value) or max_value <= 0:
        raise DataFormatError(f"{path}: attribute 'max' must be finite and > 0, got {max_value}")
    return max_value


def _open_checked(check: Callable[..., T], path: Path, *args: object) -> T:
    # h5py reports unreadable or truncated files as OSError.
    try:
        return check(path, *args)
    except OSError as exc:
        raise DataFormatError(f"{path}: not a readable HDF5 file ({exc})") from exc


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
            num_slices, shape, mask = _open_checked(_check_kspace_file, kspace_path)
            max_value = _open_checked(_check_image_file, image_path, num_slices)
            category = category_of(kspace_path.name, mask, organ_default)
            self._infos.append(
                _FileInfo(kspace_path, image_path, num_slices, shape, mask, max_value, category)
            )
        self._index = [
            (file_idx, slice_idx)
            for file_idx, info in enumerate(self._infos)
            for slice_idx in range(info.num_slices)
        ]

    @property
    def files(self) -> list[Path]:
        """The k-space files, in dataset order."""
        return [info.kspace_path for info in self._infos]

    @property
    def categories(self) -> list[str]:
        """The category of every slice, in dataset order."""
        return [self._infos[file_idx].category for file_idx, _ in self._index]

    def largest_slice(self) -> int:
        """Index of a slice of the largest (coils x height x width) shape: a step's memory worst case."""
        file_idx = max(range(len(self._infos)), key=lambda i: int(np.prod(self._infos[i].shape)))
        return self._index.index((file_idx, self._infos[file_idx].num_slices // 2))

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> VarNetSample:
        if not -len(self) <= i < len(self):
            raise IndexError(f"slice index {i} out of range for {len(self)} slices")
        file_idx, slice_idx = self._index[i]
        info = self._infos[file_idx]
        with h5py.File(info.kspace_path, "r") as f:
            kspace = f["kspace"][slice_idx]
        with h5py.File(info.image_path, "r") as f:
            target = f["image_label"][slice_idx]
        raw = RawSlice(kspace, info.mask.astype(bool), target, info.max_value, info.category)
        if self.transform is not None:
            raw = self.transform(raw, i % len(self))
        return to_sample(raw, info.kspace_path.name, slice_idx)
