"""The on-disk record of a search (`<storage>/<name>/search.json`): what finalize and users read back."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from data import validation as check
from data.atomic import atomic_path
from tuner.contract import RECORD_FILE, RUNNING, SearchError


@dataclass
class TrialSummary:
    """How one trial ended: its status, epochs trained, last validation SSIM and full flat config."""

    name: str
    trial_id: str
    status: str
    epochs: int
    val_ssim: float | None
    config: dict[str, Any]
    nodes: list[str] = field(default_factory=list)  # Ray nodes that trained it, first to last


@dataclass
class SearchRecord:
    """Everything needed to find a search's data, store, runs and winner again.

    `expected_trials` is what a search that ran to its end produces: the number of samples, or fewer
    when the space holds fewer distinct configurations (none is trained twice).
    """

    name: str
    space: str
    space_name: str
    model: str
    data_root: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    max_epochs: int
    finalize_epochs: int
    expected_trials: int
    started: float
    status: str = RUNNING
    mask_bank: str | None = None  # the bank mask duplication draws from; None: built from the training files
    finished: float | None = None
    best: str | None = None
    trials: list[TrialSummary] = field(default_factory=list)

    def best_trial(self) -> TrialSummary | None:
        return next((t for t in self.trials if t.name == self.best), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> "SearchRecord":
        try:
            raw = json.loads(path.read_text())
            raw["trials"] = [TrialSummary(**t) for t in raw.get("trials", [])]
            return cls(**raw)
        except (OSError, ValueError, TypeError) as exc:
            raise SearchError(f"{path}: not a readable search record ({exc})") from None


def find_search(storage: Path, name: str | None, flag: str, *, finished: bool) -> Path:
    """The folder of search `name` (given by option `flag`) under `storage`, or with no name the most recently
    started one (`finished`: of those with a best trial). SearchError when there is none."""
    if name is not None:
        try:
            check.plain_name(flag, name)
        except ValueError as exc:
            raise SearchError(str(exc)) from None
        path = storage / name
        if not (path / RECORD_FILE).exists():
            raise SearchError(f"{path}: no search record ({RECORD_FILE}) there")
        return path
    records = {path.parent: SearchRecord.load(path) for path in storage.glob(f"*/{RECORD_FILE}")}
    candidates = [folder for folder, record in records.items() if record.best is not None or not finished]
    if not candidates:
        what = "finished search with a best trial" if finished else "search"
        raise SearchError(f"{storage}: no {what}; run `python -m tuner search` first")
    return max(candidates, key=lambda folder: records[folder].started)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically: a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w") as handle:
        json.dump(data, handle, indent=2, default=str)
