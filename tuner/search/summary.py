"""The console summary a search ends with, and `tuner report` prints again."""

from __future__ import annotations

from typing import TextIO

from tuner.contract import INTERRUPTED
from tuner.search.record import SearchRecord
from tuner.tracking.runs import ui_command


def print_summary(record: SearchRecord, out: TextIO) -> None:
    """The trial table, the best configuration and what to run next, as the search ends with."""
    best = record.best_trial()
    print("", file=out)
    for trial in record.trials:
        value = "   -  " if trial.val_ssim is None else f"{trial.val_ssim:.4f}"
        print(f"  {trial.name}  {value}  {trial.status:<14} epochs {trial.epochs}", file=out)
    if best is None:
        print("no trial produced a validation SSIM", file=out)
        return
    print(f"\nbest trial: {best.name}  val SSIM {best.val_ssim:.4f} after {best.epochs} epochs", file=out)
    for key, value in sorted(best.config.items()):
        print(f"    {key}: {value}", file=out)
    print(f"\ncompare trials:  {ui_command(record.tracking_uri, record.experiment_id)}", file=out)
    if record.status == INTERRUPTED:
        print(f"search interrupted; continue it:  python -m tuner search --name {record.name} --resume", file=out)
    else:
        print(f"final training:  python -m tuner finalize --search {record.name}", file=out)
