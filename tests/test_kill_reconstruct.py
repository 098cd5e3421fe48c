"""kill -9 of `reconstruct` while it writes an output file: no half-written file is ever visible under a final name,
and a second run refuses the folder instead of overwriting what the first one wrote (a real process, a real SIGKILL)."""

import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import torch

from models import build_model
from tuner.cli import main
from tuner.config.trial import TrialConfig

TINY = {"model.name": "varnet", "model.num_cascades": 1, "model.chans": 2, "model.pools": 2, "model.sens_chans": 2,
        "model.sens_pools": 2}
COPIES = 40  # input files: each output is a chance for the kill to land while its temporary file exists


def _kill_while_writing(command: list[str], out, cwd) -> bool:
    """Run `command`, SIGKILL it as soon as a temporary output file shows in `out`; True when the kill landed
    while one existed (it is still there afterwards: a finished write renames it away)."""
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if out.is_dir() and any(name.endswith(".tmp") for name in os.listdir(out)):
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.0005)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode == -signal.SIGKILL and any(name.endswith(".tmp") for name in os.listdir(out))


def test_reconstruct_killed_mid_write_leaves_only_whole_files_under_final_names(tmp_path, tiny_data, capsys):
    data = tmp_path / "in"
    source = sorted((tiny_data / "val" / "kspace").glob("*.h5"))[0]
    (data / "kspace").mkdir(parents=True)
    for i in range(COPIES):
        shutil.copyfile(source, data / "kspace" / f"brain_acc4_{i}.h5")
    config = TrialConfig.from_flat(TINY)
    model = tmp_path / "best.pt"
    torch.save({"model": build_model(config.model).state_dict(), "config": config.as_dict()}, model)
    clean = tmp_path / "clean"
    assert main(["reconstruct", "--model", str(model), "--data", str(data), "--out", str(clean)]) == 0
    expected = h5py.File(clean / "brain_acc4_0.h5", "r")["reconstruction"][()]

    for attempt in range(3):  # the poll can miss a write that is over within its interval; rarely three times
        out = tmp_path / f"killed{attempt}"
        command = [sys.executable, "-m", "tuner", "reconstruct", "--model", str(model), "--data", str(data),
                   "--out", str(out)]
        if _kill_while_writing(command, out, tmp_path):
            break
    else:
        raise AssertionError("no kill landed while an output was being written in three runs")

    finals = [name for name in os.listdir(out) if not name.startswith(".")]
    assert all(name.endswith(".h5") for name in finals) and len(finals) < COPIES
    for name in finals:
        with h5py.File(out / name, "r") as f:
            np.testing.assert_array_equal(f["reconstruction"][()], expected)

    before = {name: (out / name).stat().st_mtime_ns for name in os.listdir(out)}
    capsys.readouterr()
    assert main(["reconstruct", "--model", str(model), "--data", str(data), "--out", str(out)]) == 2
    assert "already exists and is not an empty directory" in capsys.readouterr().err
    assert {name: (out / name).stat().st_mtime_ns for name in os.listdir(out)} == before
