"""Data for varnet-tuner: SNU challenge reader, fastMRI masks, array transforms, demo-data simulator.

Plain NumPy / PyTorch / h5py; nothing here imports Ray, MLflow, Optuna, ``tuner`` or ``models``.
"""

from .demo import DemoSpec, ensure_demo_dataset, write_demo_dataset
from .errors import DataFormatError
from .masks import MASK_KINDS, center_run, make_mask, mask_acceleration, nominal_acceleration
from .snu import CATEGORIES, SNUSliceDataset, VarNetSample, category_of
from .transforms import center_crop, crop_or_pad

__all__ = [
    "CATEGORIES",
    "MASK_KINDS",
    "DataFormatError",
    "DemoSpec",
    "SNUSliceDataset",
    "VarNetSample",
    "category_of",
    "center_crop",
    "center_run",
    "crop_or_pad",
    "ensure_demo_dataset",
    "make_mask",
    "mask_acceleration",
    "nominal_acceleration",
    "write_demo_dataset",
]
