"""Ray Tune's OptunaSearch (TPE), corrected in the ways that matter with ASHA, small spaces and a memory budget.

1. A trial that ASHA stopped before the last epoch is told to Optuna as PRUNED with its last value as
   an intermediate value at its last epoch. Stock OptunaSearch tells it COMPLETE with that early,
   worse value, so TPE would learn from truncated curves as if they were finished.
2. A configuration that this search already trained is never trained again. TPE happily re-samples
   identical points in categorical spaces; `suggest` detects that, tells Optuna the earlier trial's
   outcome for the repeat (a real observation of that point) and asks again. When only repeats come
   back the space is exhausted and the search ends.
3. A trial that ran out of memory (reported with `infeasible` set) is PRUNED with no value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from tuner.config.space import SearchSpace
from tuner.contract import INFEASIBLE_FLAG, METRIC, MODE

MAX_ASKS_PER_SUGGESTION = 64


@dataclass(frozen=True)
class Duplicate:
    """A configuration TPE proposed again, and what the searcher did instead of training it twice.

    `outcome` is "reused" (Optuna was told the earlier trial's result for the repeat) or "pending" (the
    earlier trial was still training, so the repeat was told FAIL); either way a new sample was asked for.
    """

    optuna_number: int
    repeats_trial: str  # the earlier trial's name, t001, t002, ...
    config: str
    outcome: str


# Called with each repeat and the full list so far; must pickle (Tune checkpoints the searcher).
RepeatListener = Callable[[Duplicate, list[Duplicate]], None]


def trial_label(number: int) -> str:
    """t001, t002, ...: Tune numbers the trials it creates from 1 in the order the searcher suggests them."""
    return f"t{number:03d}"


class SearchSpaceSearcher(OptunaSearch):
    """TPE over a `SearchSpace`, with early-stopped trials PRUNED and repeated configurations skipped."""

    def __init__(self, spec: SearchSpace, on_repeat: RepeatListener | None = None) -> None:
        super().__init__(
            space=spec.sample, metric=METRIC, mode=MODE,
            points_to_evaluate=[dict(p) for p in spec.search.points_to_evaluate] or None,
            # Trials run concurrently when packed or on a cluster: the constant liar scores the ones still
            # running as the worst so far, so that TPE does not propose the same region to each of them.
            sampler=optuna.samplers.TPESampler(seed=spec.search.seed, n_startup_trials=spec.search.startup_trials,
                                               constant_liar=True),
        )
        self._spec = spec
        self._max_epochs = spec.asha.max_epochs
        self._trial_of_config: dict[str, str] = {}
        self._label: dict[str, str] = {}
        self._reported_steps: dict[str, set[int]] = {}
        self.duplicates: list[Duplicate] = []
        self._on_repeat = on_repeat

    @property
    def study(self) -> optuna.Study:
        return self._ot_study

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        for _ in range(MAX_ASKS_PER_SUGGESTION):
            ot_trial = self._ot_study.ask()
            params = self._suggest_from_define_by_run_func(self._space, ot_trial)
            key = self._spec.config_key(params)
            earlier = self._trial_of_config.get(key)
            if earlier is None:
                self._ot_trials[trial_id] = ot_trial
                self._trial_of_config[key] = trial_id
                self._label[trial_id] = trial_label(len(self._trial_of_config))
                self._reported_steps[trial_id] = set()
                return params
            reused = self._tell_as_repeat(ot_trial, self._ot_trials[earlier])
            self.duplicates.append(Duplicate(ot_trial.number, self._label[earlier], key,
                                             "reused" if reused else "pending"))
            if self._on_repeat is not None:
                self._on_repeat(self.duplicates[-1], list(self.duplicates))
            if not reused:
                return None  # the original is still training; ask again once it has a result
        return Searcher.FINISHED

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if result.get(INFEASIBLE_FLAG):
            return  # no SSIM to learn from; on_trial_complete prunes it
        super().on_trial_result(trial_id, result)
        self._reported_steps[trial_id].add(result["training_iteration"])

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return super().on_trial_complete(trial_id, result, error)
        if result and not error and result.get(INFEASIBLE_FLAG):
            # Pruned without a value ranks below every scored trial in TPE, steering it away from
            # configurations too large for the budget; a FAIL would teach it nothing.
            self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.PRUNED)
            self._completed_trials.add(trial_id)
            return
        if result and not error and result.get(METRIC) is not None:
            ot_trial = self._ot_trials[trial_id]
            step = result["training_iteration"]
            # The result that triggered the stop never reached on_trial_result.
            if step not in self._reported_steps[trial_id]:
                ot_trial.report(result[METRIC], step)
                self._reported_steps[trial_id].add(step)
            if result.get("epoch", self._max_epochs) < self._max_epochs:
                self._ot_study.tell(ot_trial, state=TrialState.PRUNED)
                self._completed_trials.add(trial_id)
                return
        super().on_trial_complete(trial_id, result, error)

    def _tell_as_repeat(self, repeat: Any, original: Any) -> bool:
        """Give the repeat the original's outcome; False while the original has none yet."""
        frozen = next(t for t in self._ot_study.get_trials(deepcopy=False) if t.number == original.number)
        if frozen.state == TrialState.RUNNING:
            self._ot_study.tell(repeat, state=TrialState.FAIL)
            return False
        for step, value in frozen.intermediate_values.items():
            repeat.report(value, step)
        if frozen.state == TrialState.COMPLETE:
            self._ot_study.tell(repeat, frozen.value)
        else:
            self._ot_study.tell(repeat, state=frozen.state)
        return True
