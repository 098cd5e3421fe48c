"""The one validation kit: models, augmentation, trial configs and search spaces check values with it.

Every check takes the dotted key it checks and raises ValueError "<key>: expected <what>, got <value>"
on a bad value, else returns the value in its canonical type (a numpy integer from a sampler becomes
an int, a YAML list a tuple). Callers at the user's boundary (the YAML loader, the CLI) prefix the
file and turn the ValueError into their `UserError`; nothing here knows about files.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


def require(ok: bool, key: str, expected: str, value: object) -> None:
    """A check of its own: raise "<key>: expected <expected>, got <value>" unless `ok`."""
    if not ok:
        raise ValueError(f"{key}: expected {expected}, got {value!r}")


def is_number(value: object) -> bool:
    """True for a finite int or float that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def number(key: str, value: object, low: float, high: float, *, open_low: bool = False) -> float:
    """`value` as a float in [low, high] ((low, high] with `open_low`)."""
    inside = is_number(value) and (low < value if open_low else low <= value) and value <= high  # type: ignore[operator]
    require(inside, key, f"a number in {'(' if open_low else '['}{low}, {high}]", value)
    return float(value)  # type: ignore[arg-type]


def integer(key: str, value: object, low: int, high: int | None = None, *, optional: bool = False) -> int | None:
    """`value` as an int in [low, high] (no upper bound when `high` is None); None passes when `optional`."""
    if optional and value is None:
        return None
    expected = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    integral = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    inside = integral and low <= value and (high is None or value <= high)  # type: ignore[operator]
    require(inside, key, expected + (" or None" if optional else ""), value)
    return int(value)  # type: ignore[call-overload]


def flag(key: str, value: object) -> bool:
    """`value` as a bool (true/false only, not 0/1)."""
    require(isinstance(value, bool), key, "true or false", value)
    return bool(value)


def choice(key: str, value: object, options: Sequence[T]) -> T:
    """The option equal to `value`; True and 7.0 are not taken for the options 1 and 7."""
    matches = [option for option in options if not isinstance(value, (bool, float)) and value == option]
    require(bool(matches), key, f"one of {list(options)}", value)
    return matches[0]


def sequence(key: str, value: object, length: int | None = None) -> tuple:
    """`value` (a list or tuple, of `length` items if given) as a tuple."""
    ok = isinstance(value, (list, tuple)) and (length is None or len(value) == length)
    require(ok, key, f"a list of {length} items" if length is not None else "a list", value)
    return tuple(value)  # type: ignore[arg-type]


def plain_name(key: str, value: object) -> str:
    """A name that is safe as one folder name: letters, digits, '.', '_' and '-', not starting with '.' or '-'."""
    ok = isinstance(value, str) and _PLAIN_NAME.fullmatch(value) is not None
    require(ok, key, "a plain name (letters, digits, '.', '_', '-'; no path separators)", value)
    return str(value)


def mapping(key: str, value: object) -> dict[str, Any]:
    """`value` as a dict; an absent section (None) is an empty one."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}: expected a mapping, got {type(value).__name__}")
    return dict(value)


def no_unknown(values: Mapping[str, Any], known: Sequence[str], prefix: str) -> None:
    """Raise "<prefix><key>: unknown key (expected one of [...])" for the first key not in `known`."""
    unknown = sorted(set(values) - set(known), key=str)
    if unknown:
        raise ValueError(f"{prefix}{unknown[0]}: unknown key (expected one of {list(known)})")


def build(cls: type[T], raw: object, path: str) -> T:
    """The frozen dataclass `cls` from a mapping, recursing into dataclass-valued fields.

    Unknown keys and invalid values raise ValueError naming `path.key`; absent keys keep defaults.
    """
    values = mapping(path, raw)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    no_unknown(values, list(fields), f"{path}.")
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        default = fields[key].default
        kwargs[key] = build(type(default), value, f"{path}.{key}") if dataclasses.is_dataclass(default) else value
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ValueError(f"{path}.{exc}") from None
