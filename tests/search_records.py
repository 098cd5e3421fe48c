"""A finished search's folder as the driver leaves it, without running one: for finalize's tests."""

import time
from pathlib import Path

import yaml

from tuner.contract import COMPLETED
from tuner.search.record import SearchRecord, TrialSummary
from tuner.tracking.runs import Run, ensure_experiment


def one_trial_search(storage: Path, data_root: Path, flat: dict, resources: dict | None = None,
                     tracking_uri: str | None = None) -> SearchRecord:
    """`storage/s/search.json` with one completed best trial of config `flat`, a real parent run in a sqlite
    store (beside `storage` unless given), and the space file it names."""
    storage.mkdir(parents=True, exist_ok=True)
    uri = tracking_uri or f"sqlite:///{storage.parent / 'mlflow.db'}"
    experiment = ensure_experiment(uri, "finalize-tests")
    space = storage / "space.yaml"
    space.write_text(yaml.safe_dump({"name": "s", "model": {"name": flat["model.name"]},
                                     "resources": resources or {}}))
    record = SearchRecord(name="s", space=str(space), space_name="s", model=flat["model.name"],
                          data_root=str(data_root), tracking_uri=uri, experiment_id=experiment,
                          parent_run_id=Run.start(uri, experiment, name="s").run_id, max_epochs=1,
                          finalize_epochs=2, expected_trials=1, started=time.time(), status=COMPLETED, best="t0",
                          trials=[TrialSummary("t0", "id0", COMPLETED, 1, 0.5, flat)])
    record.save(storage / "s" / "search.json")
    return record
