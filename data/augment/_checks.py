"""Validation helpers for the augmentation configs, and a builder from plain mappings (YAML).

Each helper raises a ValueError whose message starts with the key it checked ("p_max: expected
..."); :func:`build` prefixes the section path, so an error from a YAML file reads
"augment.mraugment.schedule.p_max: expected ...".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def is_number(value: object) -> bool:
    """True for a finite int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(key: str, value: object, low: float, high: float, *, open_low: bool = False) -> float:
    """``value`` as a float in [low, high] ((low, high] with ``open_low``)."""
    inside = is_number(value) and (low < value if open_low else low <= value) and value <= high
    if not inside:
        bracket = "(" if open_low else "["
        raise ValueError(f"{key}: expected a number in {bracket}{low}, {high}], got {value!r}")
    return float(value)


def integer(key: str, value: object, minimum: int) -> int:
    """``value`` as an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def flag(key: str, value: object) -> bool:
    """``value`` as a bool (true/false only, not 0/1)."""
    if not isinstance(value, bool):
        raise ValueError(f"{key}: expected true or false, got {value!r}")
    return value


def choice(key: str, value: object, options: tuple[str, ...]) -> str:
    """``value`` as one of ``options``."""
    if value not in options:
        raise ValueError(f"{key}: expected one of {list(options)}, got {value!r}")
    return str(value)


def sequence(key: str, value: object, length: int | None = None) -> tuple:
    """``value`` (a list or tuple, of ``length`` items if given) as a tuple."""
    if not isinstance(value, (list, tuple)) or (length is not None and len(value) != length):
        size = f"{length} items" if length is not None else "items"
        raise ValueError(f"{key}: expected a list of {size}, got {value!r}")
    return tuple(value)


def build(cls: type[T], raw: object, path: str) -> T:
    """Build the frozen dataclass ``cls`` from a mapping, recursing into dataclass-valued fields.

    Unknown keys and invalid values raise ValueError naming ``path.key``. Absent keys keep defaults.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path}: expected a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(raw) - set(fields), key=str)
    if unknown:
        raise ValueError(f"{path}.{unknown[0]}: unknown key (expected one of {list(fields)})")
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        default = fields[key].default
        if dataclasses.is_dataclass(default):
            kwargs[key] = build(type(default), value, f"{path}.{key}")
        else:
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ValueError(f"{path}.{exc}") from None
