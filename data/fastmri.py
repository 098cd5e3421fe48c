"""The fastMRI multicoil format: one h5 file per volume, a per-slice dataset with on-the-fly masks.

Layout: ``ROOT/multicoil_{split}/*.h5`` (fastMRI's own names: train, val, test, challenge), or a
plain ``ROOT/{split}/*.h5``. Each file holds::

    kspace              (S, C, H, W) complex   fully sampled (train/val), undersampled (test/challenge)
    reconstruction_rss  (S, h, w) float        RSS target, already cropped to the recon matrix;
                                               absent in test/challenge files
    mask                (W,) 0/1               only in test/challenge files: the k-space's sampling
    ismrmrd_header      XML bytes              encoded / recon matrix, acquired phase-encode columns
    attrs               max (SSIM data range), acquisition, norm, patient_id, ...

Fully sampled volumes get a generated mask per (file, slice), seeded from the dataset's seed, the
file name and the slice index, so the same slice always gets the same mask (repeatable validation).
Columns outside the acquired phase-encode range (k-space zero padding, from the header) are never
marked sampled, as in fastMRI.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zlib
from pathlib import Path
from typing import NamedTuple, Sequence

import h5py
import numpy as np
from torch.utils.data import Dataset

from .category import ACCELERATIONS, Category, named_organ
from .errors import DataFormatError
from .masks import MASK_KINDS, make_mask, nominal_acceleration
from .snu import (
    RawSlice,
    SliceTransform,
    VarNetSample,
    checked_data_range,
    checked_mask,
    h5_dataset,
    open_h5,
    require_finite,
    to_sample,
)


class IsmrmrdHeader(NamedTuple):
    """What the readers use of a file's ISMRMRD XML header (first encoding)."""

    encoded_shape: tuple[int, int, int]  # encodedSpace matrix (x readout, y phase-encode, z)
    recon_shape: tuple[int, int, int]  # reconSpace matrix (x, y, z): the target's crop
    acquired_columns: tuple[int, int] | None  # [start, stop) of acquired phase-encode columns


def _child(element: ET.Element, name: str) -> ET.Element | None:
    # Match on the local name so that headers with and without the ISMRMRD namespace both parse.
    return next((c for c in element if c.tag.rsplit("}", 1)[-1] == name), None)


def _find(element: ET.Element, path: str) -> ET.Element | None:
    for name in path.split("/"):
        found = _child(element, name)
        if found is None:
            return None
        element = found
    return element


def _int_at(root: ET.Element, path: str) -> int | None:
    element = _find(root, path)
    if element is None:
        return None
    try:
        return int(float((element.text or "").strip()))
    except (ValueError, OverflowError):  # not a number, or inf
        return None


def parse_ismrmrd_header(xml: bytes | str, source: str = "ismrmrd_header") -> IsmrmrdHeader:
    """Parse the matrix sizes and acquired column range of an ISMRMRD header; ``source`` names it in errors."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise DataFormatError(f"{source}: not valid XML ({exc})") from None
    shapes = []
    for space in ("encodedSpace", "reconSpace"):
        size = [_int_at(root, f"encoding/{space}/matrixSize/{axis}") for axis in "xyz"]
        if any(n is None or n < 1 for n in size):
            raise DataFormatError(
                f"{source}: expected positive integers at encoding/{space}/matrixSize/{{x,y,z}}, got {size}"
            )
        shapes.append(tuple(size))
    # fastMRI's rule: the acquired lines are centred on the encoded matrix's middle column.
    center = _int_at(root, "encoding/encodingLimits/kspace_encoding_step_1/center")
    maximum = _int_at(root, "encoding/encodingLimits/kspace_encoding_step_1/maximum")
    acquired = None
    if center is not None and maximum is not None:
        start = shapes[0][1] // 2 - center
        acquired = (start, start + maximum + 1)
    return IsmrmrdHeader(shapes[0], shapes[1], acquired)


class _Volume(NamedTuple):
    path: Path
    num_slices: int
    shape: tuple[int, int, int]  # (C, H, W) of every slice
    has_target: bool
    recon_shape: tuple[int, int]  # (h, w) of the output: the target's, else the header's recon matrix
    max_value: float  # NaN without a target
    organ: str
    stored_mask: np.ndarray | None  # (W,) bool, test/challenge files only
    stored_acceleration: int | None  # nominal acceleration of the stored mask
    acquired: np.ndarray  # (W,) bool: columns a generated mask may sample


def organ_of(fname: str | Path) -> str:
    """fastMRI names brain volumes "file_brain_AXT2_...h5"; knee volumes are "file1000001.h5"."""
    return named_organ(fname) or "knee"


def _header_xml(raw: object, path: Path) -> bytes | str:
    # Stored as a scalar string dataset; some writers wrap it in a one-element array.
    if isinstance(raw, np.ndarray) and raw.size == 1:
        raw = raw.reshape(())[()]
    if not isinstance(raw, (bytes, str)):
        raise DataFormatError(f"{path}: 'ismrmrd_header' must be an XML string, got {type(raw).__name__}")
    return raw


def _max_attr(f: h5py.File, path: Path, target: h5py.Dataset) -> float:
    # fastMRI stores the volume's target maximum as attribute 'max'; compute it where it is missing.
    return checked_data_range(f.attrs["max"] if "max" in f.attrs else target[()].max(), path)


def _read_volume(path: Path) -> _Volume:
    with open_h5(path) as f:
        kspace = h5_dataset(f, "kspace", path)
        if kspace.ndim != 4 or kspace.dtype.kind != "c" or 0 in kspace.shape:
            raise DataFormatError(
                f"{path}: 'kspace' must be non-empty complex (slices, coils, H, W), "
                f"got {kspace.dtype} with shape {kspace.shape}"
            )
        num_slices, coils, height, width = (int(n) for n in kspace.shape)
        header = None
        if "ismrmrd_header" in f:
            raw = h5_dataset(f, "ismrmrd_header", path)[()]
            header = parse_ismrmrd_header(_header_xml(raw, path), f"{path}: ismrmrd_header")
        stored_mask = checked_mask(h5_dataset(f, "mask", path)[()], width, path) if "mask" in f else None

        has_target = "reconstruction_rss" in f
        if has_target:
            target = h5_dataset(f, "reconstruction_rss", path)
            if target.ndim != 3 or target.dtype.kind != "f" or target.shape[0] != num_slices:
                raise DataFormatError(
                    f"{path}: 'reconstruction_rss' must be real floating ({num_slices}, h, w), "
                    f"got {target.dtype} with shape {target.shape}"
                )
            recon_shape = (int(target.shape[1]), int(target.shape[2]))
            max_value = _max_attr(f, path, target)
        elif stored_mask is None:
            raise DataFormatError(f"{path}: neither 'reconstruction_rss' (a target) nor 'mask' (test data)")
        elif header is None:
            raise DataFormatError(f"{path}: test data without 'ismrmrd_header' leaves the output size unknown")
        else:
            recon_shape, max_value = header.recon_shape[:2], float("nan")

    acquired = np.ones(width, dtype=bool)
    if header is not None and header.acquired_columns is not None:
        start, stop = header.acquired_columns
        if not 0 <= start < stop <= width:
            raise DataFormatError(
                f"{path}: ismrmrd_header's acquired columns [{start}, {stop}) do not fit the k-space width {width}"
            )
        acquired[:start] = acquired[stop:] = False
    stored_acceleration = None if stored_mask is None else nominal_acceleration(stored_mask, ACCELERATIONS)
    return _Volume(path, num_slices, (coils, height, width), has_target, recon_shape, max_value,
                   organ_of(path), stored_mask, stored_acceleration, acquired)


class FastMRISliceDataset(Dataset):
    """All slices of one fastMRI multicoil split, each item a :class:`VarNetSample`.

    Fully sampled volumes are masked with a ``mask_kind`` mask whose acceleration is drawn per slice
    from ``accelerations`` (paired with ``center_fractions``); volumes with a stored ``mask`` use it.
    Without a target (test/challenge files) ``target`` is an empty (0, 0) tensor and ``max_value``
    NaN; :meth:`recon_shape` gives the output size. Files are validated on construction (a
    :class:`DataFormatError` names the first bad file) and read lazily per item. ``transform`` is
    called per item as in :class:`data.snu.SNUSliceDataset`, with the slice's mask (generated or
    stored) before it is applied.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        mask_kind: str = "equispaced",
        accelerations: Sequence[int] = ACCELERATIONS,
        center_fractions: Sequence[float] = (0.08, 0.08),
        seed: int = 0,
        transform: SliceTransform | None = None,
    ):
        self.transform = transform
        if mask_kind not in MASK_KINDS:
            raise ValueError(f"mask_kind must be one of {MASK_KINDS}, got {mask_kind!r}")
        if not accelerations or any(acc not in ACCELERATIONS for acc in accelerations):
            raise ValueError(f"accelerations must be a non-empty selection of {ACCELERATIONS}, got {accelerations!r}")
        if len(center_fractions) != len(accelerations) or not all(0 < cf < 1 for cf in center_fractions):
            raise ValueError(
                f"center_fractions must give one fraction in (0, 1) per acceleration {tuple(accelerations)}, "
                f"got {center_fractions!r}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        self._mask_kind = mask_kind
        self._masks = list(zip(accelerations, center_fractions, strict=True))

        directory = next((d for d in (Path(root) / f"multicoil_{split}", Path(root) / split) if d.is_dir()), None)
        if directory is None:
            raise DataFormatError(f"{root}: no multicoil_{split}/ or {split}/ directory (expected the fastMRI layout)")
        paths = sorted(directory.glob("*.h5"))
        if not paths:
            raise DataFormatError(f"{directory}: no .h5 files")
        self._volumes = [_read_volume(path) for path in paths]
        # (file, slice, index into self._masks, mask seed); the last two unused with a stored mask.
        self._index: list[tuple[int, int, int, int]] = []
        for file_idx, volume in enumerate(self._volumes):
            name_hash = zlib.crc32(volume.path.name.encode())
            for slice_idx in range(volume.num_slices):
                rng = np.random.default_rng([seed, name_hash, slice_idx])
                choice = int(rng.integers(len(self._masks)))
                self._index.append((file_idx, slice_idx, choice, int(rng.integers(2**31))))

    @property
    def files(self) -> list[Path]:
        """The volume files, in dataset order."""
        return [volume.path for volume in self._volumes]

    @property
    def categories(self) -> list[str]:
        """The category ("knee_x4", ...) of every slice, in dataset order."""
        return [self._category(file_idx, choice) for file_idx, _, choice, _ in self._index]

    def _category(self, file_idx: int, choice: int) -> str:
        volume = self._volumes[file_idx]
        return str(Category(volume.organ, volume.stored_acceleration or self._masks[choice][0]))

    @property
    def value_arrays(self) -> list[tuple[Path, str]]:
        """Every (file, dataset key) holding measured values: k-space and, where present, targets."""
        return [(volume.path, key) for volume in self._volumes
                for key in ("kspace", "reconstruction_rss")[:1 + volume.has_target]]

    def largest_slice(self) -> int:
        """Index of a slice of the largest (coils x height x width) shape: a step's memory worst case."""
        file_idx = max(range(len(self._volumes)), key=lambda i: int(np.prod(self._volumes[i].shape)))
        first = sum(volume.num_slices for volume in self._volumes[:file_idx])
        return first + self._volumes[file_idx].num_slices // 2

    def recon_shape(self, i: int) -> tuple[int, int]:
        """The (h, w) output size of slice ``i``: its target's, else its header's recon matrix."""
        return self._volumes[self._index[i][0]].recon_shape

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> VarNetSample:
        if not -len(self) <= i < len(self):
            raise IndexError(f"slice index {i} out of range for {len(self)} slices")
        file_idx, slice_idx, choice, mask_seed = self._index[i]
        volume = self._volumes[file_idx]
        with h5py.File(volume.path, "r") as f:
            kspace = require_finite(f["kspace"][slice_idx], volume.path, f"kspace slice {slice_idx}")
            target = (require_finite(f["reconstruction_rss"][slice_idx], volume.path, f"reconstruction_rss slice "
                                     f"{slice_idx}") if volume.has_target else np.zeros((0, 0), np.float32))
        if volume.stored_mask is not None:
            mask = volume.stored_mask.copy()  # a transform may change it in place
        else:
            acceleration, center_fraction = self._masks[choice]
            mask = make_mask(self._mask_kind, volume.shape[2], acceleration, center_fraction, mask_seed)
            mask &= volume.acquired
        raw = RawSlice(kspace, mask, target, volume.max_value, self._category(file_idx, choice))
        if self.transform is not None:
            raw = self.transform(raw, i % len(self))
        return to_sample(raw, volume.path.name, slice_idx)
