"""The corrected TPE searcher, driven the way Ray Tune drives it: suggest, results, completion."""

import textwrap

import pytest
from optuna.trial import FixedTrial, TrialState
from ray.tune.search import Searcher

from tuner.config.space import load_space
from tuner.search.searcher import SearchSpaceSearcher

SPACE = """
name: s
model:
  name: varnet
  num_cascades: {choice: [1, 2]}
  chans: {choice: [2, 4]}
  pools: 2
  sens_chans: {choice: [2, 3]}
  sens_pools: 2
train:
  lr: 1.0e-3
search: {num_samples: 20, seed: 7}
asha: {max_epochs: 3, grace_period: 1, reduction_factor: 2}
"""


def _spec(tmp_path, text=SPACE):
    path = tmp_path / "space.yaml"
    path.write_text(textwrap.dedent(text))
    return load_space(path)


def _score(config):
    """A deterministic stand-in for a trained model's SSIM: depends only on the configuration."""
    return 0.5 + 0.1 * config["model.num_cascades"] + 0.01 * config["model.chans"] + 0.001 * config["model.sens_chans"]


def _run(searcher, trial_id, config, epochs):
    for epoch in range(1, epochs):
        searcher.on_trial_result(trial_id, {"val_ssim": _score(config) - 0.1 / epoch, "epoch": epoch,
                                            "training_iteration": epoch})
    final = {"val_ssim": _score(config) - 0.1 / epochs, "epoch": epochs, "training_iteration": epochs}
    searcher.on_trial_complete(trial_id, result=final)


def test_early_stopped_trials_are_pruned_with_their_curve(tmp_path):
    searcher = SearchSpaceSearcher(_spec(tmp_path))
    full = searcher.suggest("full")
    _run(searcher, "full", full, epochs=3)
    stopped = searcher.suggest("stopped")
    _run(searcher, "stopped", stopped, epochs=2)
    trials = searcher.study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert trials[0].value == pytest.approx(_score(full) - 0.1 / 3)
    # The stopping result never passed through on_trial_result; it must still be the last step.
    assert trials[1].intermediate_values == pytest.approx({1: _score(stopped) - 0.1, 2: _score(stopped) - 0.05})
    assert trials[1].value == pytest.approx(_score(stopped) - 0.05)


def test_failed_trials_are_failed(tmp_path):
    searcher = SearchSpaceSearcher(_spec(tmp_path))
    searcher.suggest("boom")
    searcher.on_trial_complete("boom", result=None, error=True)
    assert searcher.study.get_trials()[0].state == TrialState.FAIL


def test_no_configuration_is_trained_twice_and_the_space_runs_out(tmp_path):
    searcher = SearchSpaceSearcher(_spec(tmp_path))
    suggested = []
    for i in range(20):
        config = searcher.suggest(f"t{i}")
        if config == Searcher.FINISHED:
            break
        assert config is not None
        suggested.append(config)
        _run(searcher, f"t{i}", config, epochs=3)
    keys = [tuple(sorted(c.items())) for c in suggested]
    assert len(keys) == len(set(keys)) == 8, "all 2x2x2 configurations, each exactly once"
    assert searcher.duplicates, "TPE proposed repeats, which were skipped"
    # Each repeat was told its original's outcome, so the study agrees with what was trained.
    values = {repr(sorted(c.items())): _score(c) - 0.1 / 3 for c in suggested}
    for trial in searcher.study.get_trials():
        assert trial.state == TrialState.COMPLETE
        sampled = searcher._spec.sample(FixedTrial(trial.params))
        assert trial.value == pytest.approx(values[repr(sorted(sampled.items()))])


def test_a_repeat_of_a_running_trial_waits(tmp_path):
    spec = _spec(tmp_path, SPACE.replace("{choice: [1, 2]}", "1").replace("{choice: [2, 4]}", "2")
                 .replace("{choice: [2, 3]}", "{choice: [2]}"))
    searcher = SearchSpaceSearcher(spec)
    assert searcher.suggest("only") is not None
    assert searcher.suggest("again") is None, "the only configuration is still training"
    _run(searcher, "only", searcher._spec.sample(FixedTrial({"model.sens_chans": 2})), epochs=3)
    assert searcher.suggest("after") == Searcher.FINISHED


def _suggestions(spec, count):
    searcher = SearchSpaceSearcher(spec)
    out = []
    for i in range(count):
        config = searcher.suggest(f"t{i}")
        out.append(config)
        _run(searcher, f"t{i}", config, epochs=3)
    return out


def test_same_space_and_seed_give_the_same_sequence(tmp_path):
    text = SPACE.replace("lr: 1.0e-3", "lr: {loguniform: [1.0e-4, 1.0e-2]}")
    spec = _spec(tmp_path, text)
    first, second = _suggestions(spec, 12), _suggestions(spec, 12)
    assert first == second
    other = _suggestions(spec.replace(seed=8), 12)
    assert other != first


def test_warm_start_points_run_first(tmp_path):
    text = SPACE.replace("search: {num_samples: 20, seed: 7}", textwrap.dedent("""\
        search:
          num_samples: 20
          seed: 7
          points_to_evaluate: [{model: {num_cascades: 2, chans: 4, sens_chans: 3}}]"""))
    searcher = SearchSpaceSearcher(_spec(tmp_path, text))
    first = searcher.suggest("t0")
    assert (first["model.num_cascades"], first["model.chans"], first["model.sens_chans"]) == (2, 4, 3)


def test_an_infeasible_trial_is_pruned_without_a_value_and_never_retried(tmp_path):
    from tuner.search.trainable import infeasible_result

    spec = _spec(tmp_path, SPACE.replace("{choice: [1, 2]}", "1").replace("{choice: [2, 4]}", "2"))
    repeats = []
    searcher = SearchSpaceSearcher(spec, on_repeat=lambda repeat, all_repeats: repeats.append(repeat))
    first = searcher.suggest("big")
    result = {**infeasible_result(0, "out of memory"), "training_iteration": 1}
    searcher.on_trial_result("big", result)
    searcher.on_trial_complete("big", result=result)
    trial = searcher.study.get_trials()[0]
    assert trial.state == TrialState.PRUNED and trial.intermediate_values == {}
    # TPE ranks a value-less pruned trial below every scored one; here it may propose it again.
    second = searcher.suggest("next")
    assert second != first
    _run(searcher, "next", second, epochs=3)
    assert searcher.suggest("more") == Searcher.FINISHED
    assert repeats and {r.repeats_trial for r in repeats} <= {"t001", "t002"}
    assert all(r.outcome == "reused" for r in repeats)
    assert [r.repeats_trial for r in searcher.duplicates] == [r.repeats_trial for r in repeats]
