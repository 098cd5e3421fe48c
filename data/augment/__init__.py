"""Training-time augmentation and preprocessing of multi-coil slices (docs/augmentation.md).

- :class:`ProbabilitySchedule`: when an augmenter fires (constant, linear, exponential, plateau).
- Mask augmentation (fastMRI families) and duplication per acceleration with a :class:`MaskBank`.
- MRAugment-style geometric augmentation of the coil images (:mod:`.image`).
- Coil compression (SCC, GCC) and readout field-of-view cropping (:mod:`.coils`).
- :class:`SliceAugmenter`: all of it, configured by an :class:`AugmentConfig`, as the transform of
  an ``SNUSliceDataset``.

Plain NumPy / SciPy / PyTorch / h5py, like the rest of ``data``.
"""

from .augmenter import DuplicatedSlices, SliceAugmenter
from .bank import DuplicatedIndex, MaskBank, build_mask_bank
from .coils import compress_coils, crop_readout, gcc_matrices, scc_matrix
from .config import (
    COMPRESSION_METHODS,
    AugmentConfig,
    CompressionConfig,
    CropConfig,
    DuplicationConfig,
    MaskAugmentConfig,
    MRAugmentConfig,
)
from .image import ImageTransform, augment_slice, draw_image_transform, transform_images
from .mask_aug import (
    draw_family_mask,
    is_fully_sampled,
    require_fully_sampled,
    unsampled_columns,
)
from .schedule import SCHEDULE_KINDS, ProbabilitySchedule

__all__ = [
    "COMPRESSION_METHODS",
    "SCHEDULE_KINDS",
    "AugmentConfig",
    "CompressionConfig",
    "CropConfig",
    "DuplicatedIndex",
    "DuplicatedSlices",
    "DuplicationConfig",
    "ImageTransform",
    "MRAugmentConfig",
    "MaskAugmentConfig",
    "MaskBank",
    "ProbabilitySchedule",
    "SliceAugmenter",
    "augment_slice",
    "build_mask_bank",
    "compress_coils",
    "crop_readout",
    "draw_family_mask",
    "draw_image_transform",
    "gcc_matrices",
    "is_fully_sampled",
    "require_fully_sampled",
    "scc_matrix",
    "transform_images",
    "unsampled_columns",
]
