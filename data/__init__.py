"""Data for varnet-tuner: SNU and fastMRI readers, layout detection, masks, transforms, demo simulator.

Plain NumPy / PyTorch / h5py; nothing here imports Ray, MLflow, Optuna, ``tuner`` or ``models``.
"""

from .atomic import atomic_path
from .augment import AugmentConfig, MaskBank, ProbabilitySchedule, SliceAugmenter, build_mask_bank
from .category import CATEGORIES, Category, category_of
from .demo import DemoSpec, ensure_demo_dataset, write_demo_dataset
from .errors import DataFormatError
from .fastmri import FastMRISliceDataset, parse_ismrmrd_header
from .layout import detect_layout, find_submission_files, open_split
from .masks import MASK_KINDS, center_run, make_mask, mask_acceleration, nominal_acceleration
from .snu import SNUSliceDataset, VarNetSample, read_image_header, read_kspace_header
from .transforms import center_crop, crop_or_pad

__all__ = [
    "CATEGORIES",
    "MASK_KINDS",
    "AugmentConfig",
    "Category",
    "DataFormatError",
    "DemoSpec",
    "FastMRISliceDataset",
    "MaskBank",
    "ProbabilitySchedule",
    "SNUSliceDataset",
    "SliceAugmenter",
    "VarNetSample",
    "atomic_path",
    "build_mask_bank",
    "category_of",
    "center_crop",
    "center_run",
    "crop_or_pad",
    "detect_layout",
    "ensure_demo_dataset",
    "find_submission_files",
    "make_mask",
    "mask_acceleration",
    "nominal_acceleration",
    "open_split",
    "parse_ismrmrd_header",
    "read_image_header",
    "read_kspace_header",
    "write_demo_dataset",
]
