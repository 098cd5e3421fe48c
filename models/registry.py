"""Model registry: name -> config dataclass -> torch module."""

import dataclasses
from collections.abc import Mapping
from typing import Any

from torch import nn

from data import validation as check
from models.config import FIVarNetConfig, VarNetConfig
from models.fivarnet import FIVarNet
from models.varnet import VarNet

ModelConfig = VarNetConfig | FIVarNetConfig

MODEL_CONFIGS: dict[str, type] = {VarNetConfig.NAME: VarNetConfig, FIVarNetConfig.NAME: FIVarNetConfig}
_MODEL_CLASSES: dict[type, type[nn.Module]] = {VarNetConfig: VarNet, FIVarNetConfig: FIVarNet}


def parse_config(config: Mapping[str, Any]) -> ModelConfig:
    """{"name": ..., field: value, ...} -> the validated config dataclass; ValueError on any problem."""
    values = dict(config)
    if "name" not in values:
        raise ValueError(f"model config: missing 'name'; known names: {sorted(MODEL_CONFIGS)}")
    name = values.pop("name")
    if name not in MODEL_CONFIGS:
        raise ValueError(f"model config: unknown name {name!r}; known names: {sorted(MODEL_CONFIGS)}")
    config_type = MODEL_CONFIGS[name]
    check.no_unknown(values, [field.name for field in dataclasses.fields(config_type)], f"{name}.")
    return config_type(**values)


def config_dict(config: ModelConfig) -> dict[str, Any]:
    """The inverse of `parse_config`: {"name": ..., field: value, ...}, every field included."""
    return {"name": config.NAME, **dataclasses.asdict(config)}


def build_model(config: Mapping[str, Any] | ModelConfig) -> nn.Module:
    """Build the module for a config mapping (see `parse_config`) or an already validated config dataclass."""
    if not isinstance(config, (VarNetConfig, FIVarNetConfig)):
        config = parse_config(config)
    return _MODEL_CLASSES[type(config)](**dataclasses.asdict(config))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters; a parameter shared by several submodules counts once."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
