"""GPU check: run every CUDA code path of varnet-tuner on a card and print one table of results and figures.

    python benchmarks/gpu_check.py                       # on a machine with an NVIDIA GPU
    python benchmarks/gpu_check.py --data DEMO_ROOT      # demo data written elsewhere (`tuner demo-data`)
    python benchmarks/gpu_check.py --device cpu --small  # the same paths on the CPU at toy sizes

It needs the project, torch, numpy, h5py, scipy and pyyaml, and no Ray, MLflow or Optuna (the training,
probe, memory and reconstruct paths it runs import none of them); nilearn only to simulate the demo
data when --data is not given. Checked, in order:

- the device: resolved with its index, its name, memory and bf16 support;
- `Trainer` epochs on the demo data under bf16 and under fp16 (gradient scaling), the fp16 state
  saved, loaded onto the CPU and resumed on the card (scaler scale and the card's RNG restored);
- validation SSIM computed on the card equals the CPU reference (`tuner.train.metrics.leaderboard_ssim`);
- a trial's per-category figures drawn from the model on the card, their SSIM the validation one;
- augmentation on the card: mask augmentation, duplication, MRAugment, the readout crop and GCC with
  loader workers, pinned memory and persistent workers, and the card's preparation against the CPU's;
- the memory probe under the cap: the 2025 FI-VarNet on a full-size slice fitted by turning
  checkpointing on, and found infeasible under a budget it cannot meet (a real CUDA OOM);
- `tuner memory` rows for both reference configs at full size;
- `tuner reconstruct` of the demo leaderboard split on the card, and on the CPU from the same
  checkpoint, both scored by `tuner evaluate`;
- with --compile, `train.compile` (default and reduce-overhead, which replays CUDA graphs).

On a machine without CUDA it says so and stops, unless --device cpu asks for the CPU run.
"""

from __future__ import annotations

import argparse
import io
import math
import multiprocessing
import sys
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import default_collate

from tuner.commands.memory import NamedConfig, SliceSource, load_config_file, memory_report
from tuner.config.space import load_space
from tuner.config.trial import TrialConfig
from tuner.search.placement import packed_trials
from tuner.train import devices
from tuner.train.engine import Trainer, autocast
from tuner.train.figures import reconstruct_slice, showcase_slices, slice_figure_png
from tuner.train.loaders import TrialData
from tuner.train.memory import GIB, format_bytes
from tuner.train.metrics import leaderboard_ssim, leaderboard_ssim_batch
from tuner.train.probe import OutOfBudget, fit_to_budget, synthetic_batch, warm_up

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "search_spaces" / "configs"
FULL_SIZE = (16, 768, 396)
SMALL_SIZE = (4, 64, 48)
ALWAYS = {"kind": "constant", "p_max": 1.0}
EVERY_AUGMENTATION = {
    "augment.mask.enabled": True, "augment.mask.schedule.p_max": 1.0,
    "augment.duplication.enabled": True,
    "augment.mraugment.enabled": True, "augment.mraugment.schedule.p_max": 1.0,
    "augment.compression.method": "gcc", "augment.compression.num_virtual_coils": 4,
}
HEAVY_MODULES = ("ray", "mlflow", "optuna", "nilearn")


@dataclass
class Row:
    check: str
    result: str  # PASS, FAIL or "ran" (the CPU run: figures only, the card's expectations not asserted)
    figures: str


@dataclass(frozen=True)
class Setup:
    device: torch.device
    data: Path
    small: bool
    work: Path

    @property
    def on_card(self) -> bool:
        return self.device.type == "cuda"

    @property
    def slice_shape(self) -> tuple[int, int, int]:
        return SMALL_SIZE if self.small else FULL_SIZE


def demo_model(setup: Setup, extra: dict[str, Any] | None = None) -> TrialConfig:
    """The default space's first warm-start point (the 2025 model scaled to demo size), with `extra` keys;
    with --small a toy FI-VarNet of the same options on a few slices per epoch."""
    spec = load_space(ROOT / "search_spaces" / "fivarnet.yaml")
    point = {**spec.search.points_to_evaluate[0], **(extra or {})}
    if setup.small:
        point.update({"model.feature_cascades": 1, "model.feature_chans": 4, "model.unet_chans": 4,
                      "model.image_chans": 4, "model.sens_chans": 2, "train.train_slices_per_epoch": 4,
                      "train.val_slices": 4})
    return spec.trial_config(point)


def reference(name: str, setup: Setup) -> TrialConfig:
    """A shipped reference config; with --small its model shrunk to toy size (same family and options)."""
    config = load_config_file(CONFIGS / f"{name}.yaml").config
    if not setup.small:
        return config
    small = {"fivarnet_2025": {"feature_cascades": 2, "image_cascades": 1, "unet_chans": 4, "image_chans": 4,
                               "sens_chans": 2, "attention_cascades": 1},
             "varnet_12_18_8": {"num_cascades": 2, "chans": 4, "sens_chans": 2}}[name]
    return TrialConfig.from_dict({**config.as_dict(), "model": {**config.as_dict()["model"], **small}})


def timed_epochs(trainer: Trainer, data: TrialData, epochs: int) -> tuple[list[Any], float]:
    """Train `epochs` epochs; returns the results and the training slices per second of the last one."""
    results = []
    for _ in range(epochs):
        results.append(trainer.run_epoch(data.train_loader(trainer.epoch, trainer.val_losses), data.val_loader()))
    return results, data.slices_per_epoch / results[-1].train_seconds


def check_device(setup: Setup) -> Row:
    device = setup.device
    if not setup.on_card:
        return Row("device", "ran", f"{device}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    ok = device.index is not None
    card_gib = devices.smallest_card_bytes() / GIB
    figures = (f"{devices.device_name(device)}, {format_bytes(devices.total_memory(device))}, "
               f"bf16 {'native' if devices.supports_bf16(device) else 'no'}, torch {torch.__version__}, "
               f"CUDA {torch.version.cuda}; smallest card {card_gib:.1f} GiB: a search packs "
               f"{packed_trials(card_gib, 8.0)} trials of 8 GB on it")
    return Row("device", _verdict(ok, setup), figures)


def check_train(setup: Setup, precision: str) -> Row:
    config = demo_model(setup, {"train.mixed_precision": precision})
    data = TrialData(setup.data, config.train, config.augment, device=setup.device)
    trainer = Trainer(config, total_epochs=3, device=setup.device)
    results, rate = timed_epochs(trainer, data, 2)
    finite = all(math.isfinite(r.train_loss) and 0 < r.val.overall <= 1 for r in results)
    figures = (f"{trainer.config.short_name()}: {rate:.1f} train slices/s, val {results[-1].val_seconds:.2f} s, "
               f"val SSIM {results[-1].val.overall:.4f}, peak {results[-1].peak_memory_mb:.0f} MiB")
    ok = finite
    if precision == "fp16":
        scale = trainer.scaler.get_scale()
        state = _through_a_file(trainer.state_dict(), setup.work / "fp16_state.pt")
        resumed = Trainer(config, total_epochs=3, device=setup.device)
        resumed.load_state_dict(state)
        same_rng = _same_rng(devices.rng_state(setup.device), state["rng"])
        more, _ = timed_epochs(resumed, data, 1)
        ok = ok and resumed.scaler.get_scale() == scale and same_rng and math.isfinite(more[0].train_loss)
        figures += f"; scale {scale:g} and RNG {'restored' if same_rng else 'NOT restored'} on resume"
    if setup.on_card:
        torch.save({"epoch": trainer.epoch, "model": trainer.model.state_dict(), "config": config.as_dict()},
                   setup.work / f"{precision}_best.pt")
    return Row(f"train {precision}", _verdict(ok, setup), figures)


def check_validation_ssim(setup: Setup) -> Row:
    config = demo_model(setup)
    trainer = Trainer(config, total_epochs=1, device=setup.device)
    data = TrialData(setup.data, config.train, device=setup.device)
    worst, slices = 0.0, 0
    with torch.no_grad():
        for batch in data.val_loader():
            prepared = trainer.prepare_eval(batch, setup.device)
            output = trainer.forward(prepared).float()
            on_device = leaderboard_ssim_batch(output, prepared.target, prepared.max_value, prepared.organs)
            for i, organ in enumerate(prepared.organs):
                cpu = leaderboard_ssim(output[i].cpu().numpy(), prepared.target[i].cpu().numpy(),
                                       float(prepared.max_value[i]), organ)
                worst = max(worst, abs(float(on_device[i]) - cpu))
                slices += 1
    return Row("val SSIM on device", "PASS" if worst <= 1e-6 else "FAIL",
               f"{slices} slices, largest |device - CPU reference| {worst:.1e} (<= 1e-6)")


def check_figures(setup: Setup) -> Row:
    """A trial's per-category figures drawn from the model on the device: the same SSIM as validation scores."""
    config = demo_model(setup)
    trainer = Trainer(config, total_epochs=1, device=setup.device)
    data = TrialData(setup.data, config.train, device=setup.device)
    worst, sizes = 0.0, []
    for index in showcase_slices(data.val).values():
        sample = data.val[index]
        images = reconstruct_slice(trainer, sample)
        sizes.append(len(slice_figure_png(images, images.category)))
        with torch.no_grad():
            prepared = trainer.prepare_eval(default_collate([sample]), setup.device)
            with autocast(setup.device, trainer.autocast_dtype):
                output = trainer.forward(prepared).float()
            scored = leaderboard_ssim_batch(output, prepared.target, prepared.max_value, prepared.organs)
        worst = max(worst, abs(images.ssim - float(scored[0])))
    return Row("figures on device", _verdict(worst <= 1e-6 and min(sizes) > 10_000, setup),
               f"{len(sizes)} categories, PNGs of {min(sizes) // 1000}-{max(sizes) // 1000} kB; largest |figure SSIM - "
               f"validation SSIM| {worst:.1e}")


def check_augmentation(setup: Setup) -> Row:
    probe = TrialData(setup.data, demo_model(setup).train).largest_batch()
    rows, target_rows = probe.kspace.shape[2], probe.target.shape[1]
    config = demo_model(setup, {**EVERY_AUGMENTATION, "augment.crop.height": (rows + target_rows) // 2})
    data = TrialData(setup.data, config.train, config.augment, device=setup.device)
    trainer = Trainer(config, total_epochs=2, device=setup.device)
    results, rate = timed_epochs(trainer, data, 2)
    loader = data.train_loader(trainer.epoch)
    batch = next(iter(loader))
    on_device = trainer.prepare_train(batch, setup.device)
    on_cpu = trainer.prepare_train(batch, torch.device("cpu"))
    scale = float(on_cpu.masked_kspace.abs().max())
    gap = float((on_device.masked_kspace.cpu() - on_cpu.masked_kspace).abs().max()) / scale
    ok = all(math.isfinite(r.train_loss) for r in results) and gap < 1e-4
    figures = (f"{rate:.1f} train slices/s, {data.workers} workers, pinned {loader.pin_memory}, "
               f"persistent {loader.persistent_workers}; device vs CPU preparation: largest gap {gap:.1e} of max")
    return Row("augmentation on device", _verdict(ok, setup), figures)


def check_probe(setup: Setup, budget_gb: float, expect: str) -> Row:
    """The probe of the 2025 model (checkpointing off in its config) in a fresh process, as a trial runs it."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        outcome = pool.submit(probe_in_fresh_process, str(setup.device), setup.small, setup.slice_shape,
                              budget_gb).result()
    if expect == "fits with checkpointing":
        ok = outcome["fits"] and outcome["checkpointing"]
        figures = (f"budget {budget_gb:g} GB: checkpointing turned {'on' if outcome['checkpointing'] else 'off'}, "
                   f"peak {outcome.get('peak', '-')}, step {outcome.get('seconds', '-')}")
    else:
        ok = not outcome["fits"]
        figures = f"budget {budget_gb:g} GB: {outcome['reason']}"
    return Row(f"probe: {expect}", _verdict(ok, setup), figures)


def probe_in_fresh_process(device_name: str, small: bool, shape: tuple[int, int, int],
                           budget_gb: float) -> dict[str, Any]:
    device = devices.resolve_device(device_name)
    setup = Setup(device, Path(), small, Path())
    config = reference("fivarnet_2025", setup)
    config = TrialConfig.from_dict({**config.as_dict(), "model": {**config.as_dict()["model"], "checkpointing": False}})
    warm_up(device)  # as a trial does: one-time library allocations are not the configuration's
    try:
        trainer, step = fit_to_budget(config, 1, synthetic_batch(shape, 1), int(budget_gb * GIB), True, device)
    except OutOfBudget as exc:
        return {"fits": False, "reason": str(exc)}
    return {"fits": True, "checkpointing": trainer.config.model.checkpointing,
            "peak": format_bytes(step.peak_bytes), "seconds": f"{step.seconds:.2f} s"}


def check_memory_rows(setup: Setup) -> Row:
    out = io.StringIO()
    configs = [load_config_file(CONFIGS / f"{name}.yaml") for name in ("fivarnet_2025", "varnet_12_18_8")]
    if setup.small:
        configs = [NamedConfig(named.label, reference(named.label, setup)) for named in configs]
    rows = memory_report(configs, SliceSource(setup.slice_shape, None), 8.0, out)
    fivarnet, varnet = rows
    ok = fivarnet.checkpointed is not None and varnet.checkpointed is not None
    if setup.on_card:
        ok = ok and fivarnet.plain is None  # the 2025 model needs checkpointing to fit 8 GB at full size
    print(out.getvalue())
    figures = "; ".join(f"{row.label}: {_peak(row.plain)} / {_peak(row.checkpointed)} (no ckpt / ckpt)"
                        for row in rows)
    return Row("tuner memory rows", _verdict(ok, setup), figures)


def check_reconstruct(setup: Setup) -> Row:
    from tuner.commands.evaluate import evaluate
    from tuner.commands.reconstruct import ReconstructOptions, run_reconstruct

    checkpoint = setup.work / "bf16_best.pt"
    if not checkpoint.exists():
        config = demo_model(setup)
        trainer = Trainer(config, total_epochs=1, device=setup.device)
        timed_epochs(trainer, TrialData(setup.data, config.train, device=setup.device), 1)
        torch.save({"epoch": 1, "model": trainer.model.state_dict(), "config": config.as_dict()}, checkpoint)
    scores, rates = {}, {}
    for where in dict.fromkeys((setup.device.type, "cpu")):
        out = setup.work / f"recon_{where}"
        result = run_reconstruct(ReconstructOptions(model=str(checkpoint), data=setup.data, out=out, device=where),
                                 io.StringIO())
        scores[where] = evaluate(out, setup.data).summary.overall
        rates[where] = result.slices / result.file_seconds
    values = list(scores.values())
    ok = all(0 < v <= 1 for v in values) and max(values) - min(values) < 0.01
    figures = ", ".join(f"{where}: {rates[where]:.1f} slices/s, SSIM {scores[where]:.4f}" for where in scores)
    return Row("reconstruct", _verdict(ok, setup), figures)


def check_compile(setup: Setup) -> Row:
    rates = {}
    for mode in ("off", "default", "reduce-overhead"):
        config = demo_model(setup, {"train.compile": mode})
        data = TrialData(setup.data, config.train, device=setup.device)
        trainer = Trainer(config, total_epochs=3, device=setup.device)
        start = time.perf_counter()
        results, rates[mode] = timed_epochs(trainer, data, 2)
        if not all(math.isfinite(r.train_loss) for r in results):
            return Row("compile", "FAIL", f"{mode}: loss {results[-1].train_loss}")
        rates[f"{mode} first"] = time.perf_counter() - start
    figures = ", ".join(f"{mode} {rates[mode]:.1f} slices/s (2 epochs {rates[mode + ' first']:.0f} s)"
                        for mode in ("off", "default", "reduce-overhead"))
    return Row("compile", _verdict(True, setup), figures)


def _verdict(ok: bool, setup: Setup) -> str:
    if not setup.on_card:
        return "ran"
    return "PASS" if ok else "FAIL"


def _peak(step: Any) -> str:
    return "> 8 GB" if step is None else format_bytes(step.peak_bytes)


def _through_a_file(state: dict[str, Any], path: Path) -> dict[str, Any]:
    """Save a state and load it back onto the CPU, as a resumed trial does."""
    torch.save(state, path)
    return torch.load(path, map_location="cpu", weights_only=True)


def _same_rng(now: dict[str, Any], saved: dict[str, Any]) -> bool:
    return all(torch.equal(now[key], saved[key]) for key in ("torch", "cuda") if key in saved)


def demo_root(given: Path | None) -> Path:
    if given is not None:
        return given
    from tuner.commands.demo_data import demo_spec, ensure_demo_data

    try:
        return ensure_demo_data(demo_spec({}))[0]
    except ImportError as exc:
        raise SystemExit(f"simulating the demo data needs nilearn ({exc}); write it where nilearn is installed "
                         f"(`python -m tuner demo-data --out DIR`) and pass --data DIR") from None


def run_checks(setup: Setup, compile_too: bool) -> list[Row]:
    checks: list[tuple[str, Callable[[], Row]]] = [
        ("device", lambda: check_device(setup)),
        ("train bf16", lambda: check_train(setup, "bf16")),
        ("train fp16", lambda: check_train(setup, "fp16")),
        ("val SSIM on device", lambda: check_validation_ssim(setup)),
        ("figures on device", lambda: check_figures(setup)),
        ("augmentation on device", lambda: check_augmentation(setup)),
        ("probe: fits with checkpointing", lambda: check_probe(setup, 8.0 if not setup.small else 64.0,
                                                                "fits with checkpointing")),
        ("probe: infeasible", lambda: check_probe(setup, 2.0 if not setup.small else 0.01, "infeasible")),
        ("tuner memory rows", lambda: check_memory_rows(setup)),
        ("reconstruct", lambda: check_reconstruct(setup)),
    ]
    if compile_too:
        checks.append(("compile", lambda: check_compile(setup)))
    rows = []
    for name, check in checks:
        start = time.perf_counter()
        try:
            row = check()
        except Exception as exc:
            traceback.print_exc()
            row = Row(name, "FAIL", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        row.figures += f"  [{time.perf_counter() - start:.0f} s]"
        rows.append(row)
        print(f"{row.result:4}  {row.check}: {row.figures}", flush=True)
    return rows


def print_table(rows: list[Row], setup: Setup) -> None:
    where = devices.device_name(setup.device) if setup.on_card else "the CPU"
    print("\n| check | result | figures |\n|---|---|---|")
    for row in rows:
        print(f"| {row.check} | {row.result} | {row.figures} |")
    heavy = [name for name in HEAVY_MODULES if name in sys.modules]
    print(f"\nrun on {where}; modules not needed that were imported: {', '.join(heavy) or 'none'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="demo data root (default: simulate it; needs nilearn)")
    parser.add_argument("--device", help="cuda (default) or cpu; cpu runs the same paths without verdicts")
    parser.add_argument("--small", action="store_true", help="toy model and slice sizes (for a CPU run)")
    parser.add_argument("--compile", action="store_true", help="also time train.compile (minutes on a card)")
    args = parser.parse_args(argv)
    if args.device is None and not torch.cuda.is_available():
        print("verdict: NOT CHECKED: no CUDA device is available to torch here (pass --device cpu for a CPU run "
              "of the same paths)")
        return 0
    device = devices.resolve_device(args.device or "cuda")
    with tempfile.TemporaryDirectory() as work:
        setup = Setup(device, demo_root(args.data), args.small, Path(work))
        print(f"GPU check on {devices.device_name(device)}, data {setup.data}, slice {setup.slice_shape}", flush=True)
        rows = run_checks(setup, args.compile)
    print_table(rows, setup)
    failed = [row.check for row in rows if row.result == "FAIL"]
    if failed:
        print(f"verdict: FAILED: {', '.join(failed)}")
        return 1
    print("verdict: every check passed" if setup.on_card else "verdict: every path ran on the CPU (figures only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
