"""`python -m tuner masks build`: collect a data root's masks into a bank file for mask duplication."""

from __future__ import annotations

import argparse

from data import DataFormatError
from data.augment import build_mask_bank
from data.snu import SNUSliceDataset


def build(args: argparse.Namespace) -> int:
    """Write the masks of `args.split` of `args.data`, by organ, acceleration and width, to a new .npz file."""
    out = args.out if args.out.suffix == ".npz" else args.out.with_name(args.out.name + ".npz")
    if out.exists():
        raise DataFormatError(f"{out}: exists; choose another --out (a mask bank is never overwritten)")
    bank = build_mask_bank(SNUSliceDataset(args.data, args.split).files)
    bank.save(out)
    print(f"wrote {out}: {len(bank)} masks")
    for organ, acceleration, width in bank.keys():
        print(f"  {organ} x{acceleration} width {width}: {len(bank.masks(organ, acceleration, width))}")
    return 0
