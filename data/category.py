"""Slice categories: an organ and an acceleration, written "brain_x4", and how a file name gives them.

Training, validation, the mask bank and the leaderboard score all average or group slices by
category, so this is the one place that writes, parses and infers one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import DataFormatError
from .masks import nominal_acceleration

ORGANS = ("brain", "knee")
ACCELERATIONS = (4, 8)
_TEXT = re.compile(r"([a-z]+)_x(\d+)")
_ACC_TOKEN = re.compile(r"acc(\d+)")


class Category(NamedTuple):
    """An organ (one of ORGANS) and an acceleration; ``str()`` writes it as "brain_x4"."""

    organ: str
    acceleration: int

    def __str__(self) -> str:
        return f"{self.organ}_x{self.acceleration}"

    @classmethod
    def parse(cls, text: str) -> Category:
        """Category("brain", 4) from "brain_x4"; a ValueError for anything else."""
        match = _TEXT.fullmatch(text)
        if match is None or match.group(1) not in ORGANS:
            raise ValueError(f"category: expected '<organ>_x<acceleration>' with organ {' or '.join(ORGANS)}, "
                             f"like 'brain_x4', got {text!r}")
        return cls(match.group(1), int(match.group(2)))


CATEGORIES = tuple(str(Category(organ, acc)) for organ in ORGANS for acc in ACCELERATIONS)


def _tokens(fname: str | Path) -> list[str]:
    return re.split(r"[_\-.]", Path(fname).stem.lower())


def named_organ(fname: str | Path) -> str | None:
    """The organ a file name states as a token ("brain_acc4_3.h5": "brain"), None if it states none.

    Tokens are the name's stem split on "_", "-" and "."; a name stating two organs is a DataFormatError.
    """
    organs = [t for t in _tokens(fname) if t in ORGANS]
    if len(organs) > 1:
        raise DataFormatError(f"{Path(fname).name}: file name names more than one organ")
    return organs[0] if organs else None


def named_acceleration(fname: str | Path) -> int | None:
    """The acceleration a file name states as a token ("brain_acc4_3.h5": 4), None if it states none.

    A name stating two, or one not in ACCELERATIONS, is a DataFormatError.
    """
    name = Path(fname).name
    accs = [int(m.group(1)) for t in _tokens(fname) if (m := _ACC_TOKEN.fullmatch(t))]
    if len(accs) > 1:
        raise DataFormatError(f"{name}: file name names more than one acceleration")
    if accs and accs[0] not in ACCELERATIONS:
        raise DataFormatError(f"{name}: acceleration acc{accs[0]} is not one of {ACCELERATIONS}")
    return accs[0] if accs else None


def category_of(fname: str | Path, mask: np.ndarray, organ_default: str | None = None) -> str:
    """Category ("brain_x4", ...) of a file from its name, else its mask (W,) / ``organ_default``.

    The organ is :func:`named_organ`, else ``organ_default``; the acceleration :func:`named_acceleration`,
    else the mask's by ``masks.nominal_acceleration`` (plain W / sampled would call an equispaced R 8
    mask R 4).
    """
    name = Path(fname).name
    organ = named_organ(name) or organ_default
    if organ is None:
        raise DataFormatError(
            f"{name}: file name names no organ ({' or '.join(ORGANS)}) and no organ_default was given"
        )
    acc = named_acceleration(name)
    if acc is None:
        try:
            acc = nominal_acceleration(mask, ACCELERATIONS)
        except ValueError as exc:
            raise DataFormatError(f"{name}: cannot infer the acceleration from the mask: {exc}") from None
    return str(Category(organ, acc))
