"""The probability schedule shared by every random augmenter.

Epochs count from 0: ``epoch`` is the index of the epoch about to be trained, i.e. the number of
epochs already completed (the engine's ``Trainer.epoch`` before ``run_epoch``), and
``val_losses[i]`` is the validation loss measured after epoch i.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from data import validation as check

SCHEDULE_KINDS = ("constant", "linear", "exponential", "plateau")


@dataclasses.dataclass(frozen=True)
class ProbabilitySchedule:
    """Probability that an augmenter fires at an epoch; 0 for every epoch before ``delay``.

    With t = epoch - delay >= 0 and T = ``ramp_epochs``:

    - ``constant``: p = p_max.
    - ``linear``: p = p_max * min(t / T, 1).
    - ``exponential`` (MRAugment's form, Fabian et al. 2021, with c = exp_decay / T):
      p = p_max * (1 - exp(-c t)) / (1 - exp(-c T)) for t < T, then p_max. A fast rise that
      flattens towards p_max; larger ``exp_decay`` rises faster, and it tends to ``linear`` as
      ``exp_decay`` tends to 0.
    - ``plateau``: p = min(p_max, step * n), n = number of validation-loss plateaus so far. Walking
      through ``val_losses`` in order, a loss that is not below the best so far by more than
      ``min_delta`` counts as stale; every ``patience`` consecutive stale losses make one plateau
      (and restart the count). So p only steps up once training stops improving.

    Every kind is a pure function of (epoch, val_losses), so a resumed run sees the same values.
    """

    kind: str = "constant"
    p_max: float = 0.5
    delay: int = 0
    ramp_epochs: int = 10
    exp_decay: float = 5.0
    patience: int = 2
    step: float = 0.1
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        check.choice("kind", self.kind, SCHEDULE_KINDS)
        object.__setattr__(self, "p_max", check.number("p_max", self.p_max, 0.0, 1.0))
        check.integer("delay", self.delay, 0)
        check.integer("ramp_epochs", self.ramp_epochs, 1)
        object.__setattr__(
            self, "exp_decay", check.number("exp_decay", self.exp_decay, 0.0, 100.0, open_low=True)
        )
        check.integer("patience", self.patience, 1)
        object.__setattr__(self, "step", check.number("step", self.step, 0.0, 1.0, open_low=True))
        object.__setattr__(self, "min_delta", check.number("min_delta", self.min_delta, 0.0, math.inf))

    def probability(self, epoch: int, val_losses: Sequence[float] = ()) -> float:
        """The probability in [0, p_max] for ``epoch`` given the validation losses so far."""
        check.integer("epoch", epoch, 0)
        if epoch < self.delay:
            return 0.0
        t = epoch - self.delay
        if self.kind == "constant":
            return self.p_max
        if self.kind == "linear":
            return self.p_max * min(t / self.ramp_epochs, 1.0)
        if self.kind == "exponential":
            if t >= self.ramp_epochs:
                return self.p_max
            c = self.exp_decay / self.ramp_epochs
            return self.p_max * -math.expm1(-c * t) / -math.expm1(-c * self.ramp_epochs)
        return min(self.p_max, self.step * self.plateaus(val_losses))

    def plateaus(self, val_losses: Sequence[float]) -> int:
        """How many plateaus of ``patience`` stale losses ``val_losses`` holds (see ``plateau``)."""
        best, stale, count = math.inf, 0, 0
        for loss in val_losses:
            # A NaN loss compares False, so it counts as stale rather than as an improvement.
            if loss < best - self.min_delta:
                best, stale = loss, 0
                continue
            stale += 1
            if stale == self.patience:
                count, stale = count + 1, 0
        return count
