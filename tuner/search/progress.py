"""Progress lines from trials to the driver's console, wherever on the cluster the trials run.

A trial's worker process prints nowhere the user looks (Ray does not forward worker output here,
on purpose: it is mostly noise), so trials post their lines to a small named Ray actor that the
driver starts, and a Tune callback prints what has arrived each time Tune's loop turns. Both sides
find the actor by name: Tune pickles its callbacks with the experiment, and a resumed search starts
a new actor of the same name.
"""

from __future__ import annotations

import time
from typing import Any

import ray
from ray import tune


@ray.remote(num_cpus=0)
class ProgressBoard:
    """Lines posted by trials, handed to the driver in arrival order."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def post(self, line: str) -> None:
        self._lines.append(line)

    def take(self) -> list[str]:
        lines, self._lines = self._lines, []
        return lines


def board_name(search: str) -> str:
    return f"varnet-tuner-progress-{search}"


def find_board(name: str | None) -> Any:
    """The board of `name` from any process of the search, or None when there is none."""
    if name is None:
        return None
    try:
        return ray.get_actor(name)
    except ValueError:
        return None


class ProgressPrinter(tune.Callback):
    """Starts the board when the experiment starts (new or resumed) and holds it, since a named actor lives
    only while its creator holds a handle; prints its lines as Tune's loop turns, and once more at the end."""

    def __init__(self, name: str, every_s: float = 1.0) -> None:
        self.name = name
        self.every_s = every_s
        self._last = 0.0
        self._board: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_board": None}  # Tune pickles its callbacks; a handle is this run's only

    def setup(self, **info: Any) -> None:
        self._board = ProgressBoard.options(name=self.name, get_if_exists=True).remote()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        # Tune's loop turns many times a second; one round trip to the board a second is plenty.
        if time.monotonic() - self._last >= self.every_s:
            self._last = time.monotonic()
            self._print()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._print()

    def _print(self) -> None:
        if self._board is None:
            return
        try:
            lines = ray.get(self._board.take.remote(), timeout=10)
        except (ray.exceptions.RayError, TimeoutError):
            return  # progress is a courtesy; an answer that did not come is not worth stopping the search
        for line in lines:
            print(line, flush=True)
