"""Progress inside an epoch: at most one line per interval, none for an epoch shorter than it, honest ETAs,
and a malformed interval setting is a one-line error."""

import pytest

from tuner.contract import SpecError
from tuner.train.progress import PROGRESS_ENV, ProgressLines, format_duration, progress_interval_s


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lines_come_at_most_once_per_interval_with_slices_rate_loss_and_eta():
    clock, notes = Clock(), []
    progress = ProgressLines(notes.append, interval_s=30.0, clock=clock)
    progress.begin(epoch=2, total_epochs=5, slices=100)
    for _ in range(99):  # 2 s per slice: a line at 30 s, 60 s, ... and never for the epoch's last slice
        clock.now += 2.0
        progress.advance(1, loss=0.5)
    assert [note.done for note in notes] == [15, 30, 45, 60, 75, 90]
    first = notes[0]
    assert first.seconds_per_slice == pytest.approx(2.0)
    assert first.eta_s == pytest.approx(170.0)
    assert first.step == 100 + 15  # slices trained in the run so far: epoch 2 starts after 100
    assert first.line() == "epoch 2/5  15/100 slices  2.00 s/slice  loss 0.5000  epoch ETA 2 min 50 s"
    assert first.metrics() == {"slices_per_second": pytest.approx(0.5), "train_loss_running": 0.5}


def test_an_epoch_shorter_than_the_interval_prints_nothing():
    clock, notes = Clock(), []
    progress = ProgressLines(notes.append, interval_s=30.0, clock=clock)
    progress.begin(1, 1, 10)
    for _ in range(10):
        clock.now += 2.9
        progress.advance(1, 0.1)
    assert notes == []


@pytest.mark.parametrize("text", ["0", "-3", "soon", "nan"])
def test_a_malformed_interval_is_one_line_naming_the_setting(monkeypatch, text):
    monkeypatch.setenv(PROGRESS_ENV, text)
    with pytest.raises(SpecError, match=f"^{PROGRESS_ENV}: expected a positive number of seconds, got '{text}'$"):
        progress_interval_s()


def test_durations_read_as_a_person_would_say_them():
    assert [format_duration(s) for s in (4.2, 284, 7500)] == ["4 s", "4 min 44 s", "2 h 05 min"]
