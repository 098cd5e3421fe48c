"""Data for varnet-tuner: SNU and fastMRI readers, layout detection, masks, transforms, demo simulator.

Plain NumPy / PyTorch / h5py; nothing here imports Ray, MLflow, Optuna, ``tuner`` or ``models``.
"""

from .augment import AugmentConfig, MaskBank, ProbabilitySchedule, SliceAugmenter, build_mask_bank
from .demo import DemoSpec, ensure_demo_dataset, write_demo_dataset
from .errors import DataFormatError
from .fastmri import FastMRISliceDataset, parse_ismrmrd_header
from .layout import detect_layout, open_split
from .masks import MASK_KINDS, center_run, make_mask, mask_acceleration, nominal_acceleration
from .snu import CATEGORIES, SNUSliceDataset, VarNetSample, category_of
from .transforms import center_crop, crop_or_pad

__all__ = [
    "CATEGORIES",
    "MASK_KINDS",
    "AugmentConfig",
    "DataFormatError",
    "DemoSpec",
    "FastMRISliceDataset",
    "MaskBank",
    "ProbabilitySchedule",
    "SNUSliceDataset",
    "SliceAugmenter",
    "VarNetSample",
    "build_mask_bank",
    "category_of",
    "center_crop",
    "center_run",
    "crop_or_pad",
    "detect_layout",
    "ensure_demo_dataset",
    "make_mask",
    "mask_acceleration",
    "nominal_acceleration",
    "open_split",
    "parse_ismrmrd_header",
    "write_demo_dataset",
]
