"""The VarNet family as plain torch.nn modules, built from validated configs.

    model = build_model({"name": "varnet", "num_cascades": 4, "chans": 8})
    image = model(masked_kspace, mask)   # (B, C, H, W, 2) float32, (B, 1, 1, W, 1) bool -> (B, H, W)
"""

from models.config import FIVARNET_2025, FIVarNetConfig, VarNetConfig
from models.fivarnet import FIVarNet
from models.registry import (
    MODEL_CONFIGS,
    ModelConfig,
    build_model,
    config_dict,
    count_parameters,
    parse_config,
)
from models.varnet import VarNet

__all__ = [
    "FIVARNET_2025",
    "MODEL_CONFIGS",
    "FIVarNet",
    "FIVarNetConfig",
    "ModelConfig",
    "VarNet",
    "VarNetConfig",
    "build_model",
    "config_dict",
    "count_parameters",
    "parse_config",
]
