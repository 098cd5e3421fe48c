"""`python -m tuner report [NAME]`: a search's trial table and best configuration, and its plots in a folder.

The plots and `summary.md` are the ones the search logs to its parent MLflow run, drawn again from
the trial runs in the store (so a running search can be reported on too).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from tuner.contract import RECORD_FILE, SPACE_FILE, SearchError
from tuner.search.record import SearchRecord, find_search

REPORT_DIR = "report"


def main(args: argparse.Namespace) -> int:
    report(args.storage.resolve(), args.name, args.out)
    return 0


def report(storage: Path, name: str | None, out_dir: Path | None, out: TextIO = sys.stdout) -> list[Path]:
    """Print search `name`'s summary (default: the latest search in `storage`) and write its plots into
    `out_dir` (default `<storage>/<name>/report`); returns the files written."""
    search_dir = find_search(storage, name, "NAME", finished=False)
    record = SearchRecord.load(search_dir / RECORD_FILE)
    # MLflow and the plotting stack are imported once the search is known to exist.
    from tuner.config.space import load_space
    from tuner.search.plots import PLOT_FILES
    from tuner.search.report import SUMMARY_FILE, write_report
    from tuner.search.summary import print_summary
    from tuner.tracking.runs import open_store

    folder = (out_dir or search_dir / REPORT_DIR).resolve()
    ours = {*PLOT_FILES, SUMMARY_FILE}
    if folder.exists() and (not folder.is_dir() or any(p.name not in ours for p in folder.iterdir())):
        raise SearchError(f"--out {folder}: expected a new or empty folder, or an earlier report's (it holds other "
                          f"files, which a report must not overwrite)")
    open_store(record.tracking_uri)
    folder.mkdir(parents=True, exist_ok=True)
    paths = write_report(record, load_space(search_dir / SPACE_FILE), folder)
    print(f"search {record.name}: {record.status}", file=out)
    if record.trials:
        print_summary(record, out)
    else:  # still running, or stopped before its record listed the trials: what the trial runs say so far
        print((folder / SUMMARY_FILE).read_text(), file=out)
    print(f"\nplots and summary: {folder}", file=out)
    for path in paths:
        print(f"  {path.name}", file=out)
    return paths
