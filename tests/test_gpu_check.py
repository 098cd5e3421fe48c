"""benchmarks/gpu_check.py runs to the end on a machine without CUDA: a clear verdict, or (--device cpu) every
path it runs on a card, run on the CPU, without importing Ray, MLflow, Optuna or nilearn."""

import subprocess
import sys

from tests.conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def test_without_cuda_it_says_nothing_was_checked():
    result = run()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("verdict: NOT CHECKED: no CUDA device")


def test_every_gpu_path_runs_on_the_cpu_without_the_search_stack(tiny_data):
    result = run("--device", "cpu", "--small", "--data", str(tiny_data))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and not line.startswith("| check")]
    checks = {line.split(" | ")[0][2:]: line.split(" | ")[1] for line in rows}
    assert set(checks) == {"device", "train bf16", "train fp16", "val SSIM on device", "figures on device",
                           "augmentation on device",
                           "probe: fits with checkpointing", "probe: infeasible", "tuner memory rows", "reconstruct"}
    assert checks.pop("val SSIM on device") == "PASS", "the device SSIM equals the CPU reference on any device"
    assert set(checks.values()) == {"ran"}
    assert "modules not needed that were imported: none" in result.stdout
    assert "RNG restored on resume" in result.stdout and "does not fit the 10 MB budget" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "verdict: every path ran on the CPU (figures only)"
