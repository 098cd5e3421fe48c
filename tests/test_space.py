"""Search-space YAML: the shipped spaces load, bad files are rejected by key before anything starts."""

import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest

from tuner.config.space import load_space
from tuner.contract import SpecError

ROOT = Path(__file__).resolve().parents[1]
SPACES = sorted((ROOT / "search_spaces").glob("*.yaml"))

GOOD = """
name: demo
model:
  name: fivarnet
  feature_cascades: {int: [1, 3]}
  image_cascades: 1
  feature_chans: {choice: [4, 8]}
  unet_chans: 8
  image_chans: 8
  sens_chans: 4
  attention: {choice: [none, lska, lka]}
  attention_kernel: {choice: [7, 11], when: {attention: [lska, lka]}}
train:
  lr: {loguniform: [1.0e-4, 1.0e-2]}
  optimizer: adam
search: {num_samples: 3, seed: 1, points_to_evaluate: [{model: {attention: lska, attention_kernel: 11}}]}
asha: {max_epochs: 4, grace_period: 2, reduction_factor: 2}
finalize: {epochs: 7}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("path", SPACES, ids=[p.name for p in SPACES])
def test_shipped_spaces_load(path):
    spec = load_space(path)
    assert spec.params, "a shipped space should search something"
    assert spec.search.num_samples >= 1


def test_a_valid_space_parses_fully(tmp_path):
    spec = load_space(_write(tmp_path, GOOD))
    assert spec.name == "demo" and spec.model_name == "fivarnet"
    assert [p.key for p in spec.params] == ["model.feature_cascades", "model.feature_chans", "model.attention",
                                            "model.attention_kernel", "train.lr"]
    assert spec.fixed["train.optimizer"] == "adam"
    assert spec.asha.max_epochs == 4 and spec.finalize_epochs == 7
    assert spec.search.points_to_evaluate == ({"model.attention": "lska", "model.attention_kernel": 11},)


def test_conditional_key_exists_only_where_its_condition_holds(tmp_path):
    spec = load_space(_write(tmp_path, GOOD))
    base = {"model.feature_cascades": 2, "model.feature_chans": 4, "train.lr": 1e-3}
    plain = spec.sample(optuna.trial.FixedTrial({**base, "model.attention": "none"}))
    assert "model.attention_kernel" not in plain
    lka = spec.sample(optuna.trial.FixedTrial({**base, "model.attention": "lka", "model.attention_kernel": 11}))
    assert lka["model.attention_kernel"] == 11
    config = spec.trial_config(lka)
    assert config.model.attention == "lka" and config.train.optimizer == "adam"
    assert config.short_name() == "fivarnet 2+1 f4 u8 i8 s4 lka11"


def test_the_space_size_counts_conditional_branches_and_null_choices(tmp_path):
    text = GOOD.replace("feature_cascades: {int: [1, 3]}", "feature_cascades: {int: [4, 5]}").replace(
        "lr: {loguniform: [1.0e-4, 1.0e-2]}", "lr: 1.0e-3").replace(
        "  image_cascades: 1\n", "  image_cascades: 1\n  attention_cascades: {choice: [null, 2]}\n")
    spec = load_space(_write(tmp_path, text))
    # 2 cascade counts x 2 attention_cascades x 2 feature widths x (none + lska x 2 kernels + lka x 2 kernels)
    assert spec.count_configurations(limit=1000) == 2 * 2 * 2 * 5
    assert spec.count_configurations(limit=7) == 7
    assert load_space(_write(tmp_path, GOOD)).count_configurations(limit=50) == 50, "a float range is endless"


def test_cli_overrides_replace_settings(tmp_path):
    spec = load_space(_write(tmp_path, GOOD)).replace(num_samples=9, seed=5, max_epochs=1, data_root=tmp_path)
    assert (spec.search.num_samples, spec.search.seed, spec.asha.max_epochs) == (9, 5, 1)
    assert spec.asha.grace_period == 1, "the grace period may not exceed the epochs"
    assert spec.data_root == tmp_path.resolve()


BAD = [
    ("serach: {num_samples: 2}", "serach: unknown key"),
    ("model: {featur_cascades: 3}", "model: fivarnet.featur_cascades: unknown key"),
    ("model: {feature_cascades: {int: [4, 2]}}", "model.feature_cascades.int: expected low < high"),
    ("train: {lr: {loguniform: [0, 1.0e-3]}}", "train.lr.loguniform: a log range needs low > 0"),
    ("model: {attention: {choice: [none, lsk]}}", "model.attention: the value 'lsk' is not valid"),
    ("model: {attention_kernel: {choice: [7], when: {atention: [lska]}}}", "model.attention_kernel.when"),
    ("model: {feature_chans: {choice: [4, 8], step: 2}}", "model.feature_chans.step: unknown key"),
    ("train: {optimizer: sgd}", "train.optimizer: expected one of"),
    ("train: {momentum: 0.9}", "train.momentum: unknown key"),
    ("asha: {max_epochs: 2, grace_period: 3}", "asha.grace_period"),
    ("asha: {reduction_factor: 1}", "asha.reduction_factor"),
    ("search: {num_samples: 0}", "search.num_samples"),
    ("search: {points_to_evaluate: [{model: {feature_chans: 5}}]}", "points_to_evaluate[0].model.feature_chans"),
    ("model: {name: resnet}", "model.name"),
    ("finalize: {epochs: -1}", "finalize.epochs"),
]


@pytest.mark.parametrize("patch,message", BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_bad_spaces_name_the_key(tmp_path, patch, message):
    import yaml

    raw = yaml.safe_load(GOOD)
    for section, values in yaml.safe_load(patch).items():
        if isinstance(raw.get(section), dict) and isinstance(values, dict) and section != "search":
            raw[section] = {**raw[section], **values}
        else:
            raw[section] = values
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError) as info:
        load_space(path)
    assert str(info.value).startswith(str(path)), "the error names the file"
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_not_yaml_and_missing_file(tmp_path):
    with pytest.raises(SpecError, match="not valid YAML"):
        load_space(_write(tmp_path, "model: [unclosed"))
    with pytest.raises(SpecError, match="no such search-space file"):
        load_space(tmp_path / "absent.yaml")


def test_a_key_written_twice_is_an_error_not_the_last_value(tmp_path):
    """PyYAML alone would silently search the second `lr`."""
    with pytest.raises(SpecError, match=r"duplicate key 'lr'.*line 4"):
        load_space(_write(tmp_path, "model: {name: varnet}\ntrain:\n  lr: 0.001\n  lr: 0.01\n"))


def test_cli_rejects_a_bad_space_before_ray_or_mlflow_start(tmp_path):
    bad = _write(tmp_path, GOOD.replace("optimizer: adam", "optimizer: sgd"))
    probe = ("import sys; from tuner.cli import main; rc = main(['search', sys.argv[1]]); "
             "print('ray imported' if 'ray' in sys.modules else 'no ray'); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", probe, str(bad)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith(f"error: {bad}: train.optimizer: expected one of")
    assert proc.stdout.strip() == "no ray"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.yaml"], "nothing may be written"


@pytest.mark.parametrize("name", ["../x", "/tmp/abs", "a/b", "", ".hidden", "with space"])
def test_a_search_name_is_a_plain_folder_name(tmp_path, capsys, name):
    """`--name ../x` or an absolute path would put the search outside --storage: refused, nothing written."""
    from tuner.cli import main

    space = _write(tmp_path, GOOD)
    assert main(["search", str(space), "--name", name, "--storage", str(tmp_path / "runs")]) == 2
    assert "--name: expected a plain name" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "x").exists()
    assert main(["finalize", "--search", name, "--storage", str(tmp_path / "runs")]) == 2
    assert "--search: expected a plain name" in capsys.readouterr().err
