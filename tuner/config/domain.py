"""A searched value of a search space: its domain (choice, int, uniform, loguniform) and when it exists.

In the YAML a searched value is a mapping with one domain kind, e.g. `{int: [4, 12], step: 2}`, and an
optional `when: {other_key: [values...]}`; a plain value is fixed. See `tuner/config/space.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from data import validation as check
from tuner.contract import SpecError

DOMAIN_KINDS = ("choice", "int", "uniform", "loguniform")


@dataclass(frozen=True)
class Param:
    """One searched value: its flat key ("model.chans"), its domain and the condition for it to exist."""

    key: str
    kind: str
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    step: int = 1
    log: bool = False
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    def suggest(self, trial: Any) -> Any:
        """Draw this value from an Optuna trial (define-by-run)."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=self.step, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, log=self.kind == "loguniform")

    def values(self) -> tuple[Any, ...] | None:
        """Every value of a finite domain (choices, int ranges); None for a float range."""
        if self.kind == "choice":
            return self.choices
        if self.kind == "int":
            return tuple(range(int(self.low), int(self.high) + 1, self.step))
        return None

    def corners(self) -> tuple[Any, ...]:
        """The values that bound the domain: every choice, or both ends of a range."""
        if self.kind == "choice":
            return self.choices
        if self.kind == "int":
            return (int(self.low), int(self.low + ((self.high - self.low) // self.step) * self.step))
        return (self.low, self.high)

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int":
            return float(value).is_integer() and self.low <= value <= self.high and (value - self.low) % self.step == 0
        return self.low <= value <= self.high

    def active(self, config: Mapping[str, Any]) -> bool:
        return all(config.get(key) in allowed for key, allowed in self.when.items())


def parse_param(key: str, raw: Mapping[str, Any], fixed: Mapping[str, Any], earlier: Sequence[Param]) -> Param:
    """A searched value from its YAML mapping; `when` may name fixed keys and params defined before it."""
    kinds = [k for k in DOMAIN_KINDS if k in raw]
    if len(kinds) != 1:
        raise SpecError(f"{key}: expected exactly one of {list(DOMAIN_KINDS)} (a fixed value is written plainly)")
    kind = kinds[0]
    check.no_unknown(raw, (kind, "when", "step", "log") if kind == "int" else (kind, "when"), f"{key}.")
    body = raw[kind]
    when = _parse_when(key, raw.get("when", {}), fixed, earlier)
    if kind == "choice":
        if not isinstance(body, list) or not body:
            raise SpecError(f"{key}.choice: expected a non-empty list of values")
        if len(set(map(repr, body))) != len(body):
            raise SpecError(f"{key}.choice: values must be distinct, got {body}")
        return Param(key, kind, choices=tuple(body), when=when)
    if not (isinstance(body, list) and len(body) == 2 and all(check.is_number(v) for v in body)):
        raise SpecError(f"{key}.{kind}: expected [low, high] numbers, got {body!r}")
    low, high = body
    if not low < high:
        raise SpecError(f"{key}.{kind}: expected low < high, got [{low}, {high}]")
    log = kind == "loguniform" or raw.get("log", False) is True
    if log and low <= 0:
        raise SpecError(f"{key}.{kind}: a log range needs low > 0, got {low}")
    if kind == "int":
        step = raw.get("step", 1)
        if not all(isinstance(v, int) for v in (low, high, step)) or step < 1 or (log and step != 1):
            raise SpecError(f"{key}.int: expected integer bounds and an integer step >= 1 (step 1 with log)")
        return Param(key, kind, low=low, high=high, step=step, log=log, when=when)
    return Param(key, kind, low=float(low), high=float(high), log=log, when=when)


def _parse_when(key: str, raw: Any, fixed: Mapping[str, Any], earlier: Sequence[Param]) -> dict[str, tuple]:
    known = set(fixed) | {p.key for p in earlier}
    parts = key.split(".")[:-1]
    out: dict[str, tuple] = {}
    for other, allowed in check.mapping(f"{key}.when", raw).items():
        # Relative to the key's own part first, then outwards: augment.mraugment.schedule.p_max may
        # say `when: {enabled: [true]}` or `{mraugment.enabled: [true]}`; a full key works too.
        candidates = [".".join([*parts[:depth], other]) for depth in range(len(parts), 0, -1)] + [other]
        other_key = next((c for c in candidates if c in known), None)
        if other_key is None:
            raise SpecError(f"{key}.when: {other!r} must name a key defined above it")
        out[other_key] = tuple(allowed) if isinstance(allowed, list) else (allowed,)
    return out
