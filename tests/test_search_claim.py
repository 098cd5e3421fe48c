"""A search's folder is claimed only when the search can start, and a name is freed by a search that never ran a
trial (real files, a real sqlite MLflow store; no Ray needed before the first trial)."""

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import TINY_SPACE
from tuner.config.space import load_space
from tuner.contract import COMPLETED, FAILED, RUNNING, SearchError
from tuner.search.driver import SearchOptions, _start_record
from tuner.search.record import SearchRecord, TrialSummary
from tuner.search.storage import SearchStorage


def _options(tmp_path, tiny_data, name="s"):
    return SearchOptions(name=name, storage=SearchStorage(tmp_path / "runs"), data_root=tiny_data,
                         tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_a_search_that_failed_before_its_first_trial_leaves_its_name_free(tmp_path, tiny_data):
    options = _options(tmp_path, tiny_data)
    record, parent = _start_record(load_space(TINY_SPACE), options, options.storage.local / "s")
    record.status = FAILED
    record.save(options.storage.local / "s" / "search.json")
    again, _ = _start_record(load_space(TINY_SPACE), options, options.storage.local / "s")
    assert again.status == RUNNING and again.parent_run_id != record.parent_run_id


def test_a_search_that_ran_trials_keeps_its_name(tmp_path, tiny_data):
    options = _options(tmp_path, tiny_data)
    record, _ = _start_record(load_space(TINY_SPACE), options, options.storage.local / "s")
    record.status = FAILED
    record.trials = [TrialSummary("t0", "id0", COMPLETED, 1, 0.5, {})]
    record.save(options.storage.local / "s" / "search.json")
    with pytest.raises(SearchError, match="already exists"):
        _start_record(load_space(TINY_SPACE), options, options.storage.local / "s")
    assert SearchRecord.load(options.storage.local / "s" / "search.json").trials, "the earlier search is untouched"


def test_a_start_that_fails_undoes_its_claim_and_ends_its_parent_run(tmp_path, tiny_data):
    """The store's artifact folder is a file, so logging the space to the new parent run fails."""
    (tmp_path / "mlartifacts").write_text("in the way")
    options = _options(tmp_path, tiny_data)
    with pytest.raises(OSError):
        _start_record(load_space(TINY_SPACE), options, options.storage.local / "s")
    assert not (options.storage.local / "s").exists()
    client = MlflowClient(options.tracking_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [(run.info.run_name, run.info.status) for run in runs] == [("s", "FAILED")]
