"""`python -m tuner memory`: corner configurations, given configs, real measurements, clear errors."""

import textwrap

import pytest
import yaml

from models import build_model, count_parameters
from tests.conftest import ROOT, TINY_SPACE
from tuner.cli import main
from tuner.commands.memory import corner_configs
from tuner.config.space import load_space


def test_corners_take_every_range_and_numeric_choice_at_its_ends():
    smallest, largest, warm = corner_configs(load_space(ROOT / "search_spaces" / "fivarnet.yaml"))[:3]
    assert (smallest.label, largest.label, warm.label) == ("smallest", "largest", "warm start 1")
    low, high = smallest.config.model, largest.config.model
    assert (low.feature_cascades, low.feature_chans, low.sens_chans, low.attention) == (2, 6, 4, "none")
    assert (high.feature_cascades, high.feature_chans, high.sens_chans, high.attention) == (5, 12, 8, "lska")
    assert high.attention_kernel == 11
    assert smallest.config.train.lr < largest.config.train.lr


def test_memory_measures_the_space_and_a_given_config(tmp_path, capsys):
    given = tmp_path / "wide.yaml"
    given.write_text(yaml.safe_dump({"model": {"name": "varnet", "num_cascades": 2, "chans": 8, "pools": 2,
                                               "sens_chans": 2, "sens_pools": 2}}))
    assert main(["memory", str(TINY_SPACE), "--shape", "2,32,24", "--config", str(given)]) == 0
    out = capsys.readouterr().out
    assert "a synthetic 2x32x24 slice, budget 8 GB" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith(("smallest", "largest", "wide"))}
    assert set(rows) == {"smallest", "largest", "wide"}
    wide = build_model({"name": "varnet", "num_cascades": 2, "chans": 8, "pools": 2, "sens_chans": 2,
                        "sens_pools": 2})
    assert f"{count_parameters(wide) / 1e6:.2f}M" in rows["wide"]
    for line in rows.values():
        assert line.count(" MB") == 2 and ">" not in line


def test_a_budget_too_small_for_anything_says_so(capsys):
    # A slice large enough that a step needs tens of MB: far past the 1 MB budget and its 2 MB safety limit,
    # so the CPU's allocator slack (reused heap pages, about 1 MB) cannot hide it.
    assert main(["memory", str(TINY_SPACE), "--shape", "2,256,192", "--budget", "0.001"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("smallest", "largest"))]
    assert len(rows) == 2
    assert all(line.count("> 1 MB") == 2 for line in rows)


@pytest.mark.parametrize("argv, message", [
    (["memory", str(TINY_SPACE), "--shape", "2,32"], "--shape: expected three positive integers"),
    (["memory", str(TINY_SPACE), "--shape", "2,0,32"], "--shape: expected three positive integers"),
    (["memory"], "memory: name a search-space YAML, or give --config"),
    (["memory", str(TINY_SPACE), "--budget", "-1"], "--budget: expected a positive number"),
])
def test_bad_arguments_are_one_line_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_bad_config_file_names_itself(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent("""\
        model: {name: varnet, num_cascades: 0}
    """))
    assert main(["memory", "--config", str(bad), "--shape", "2,32,24"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "num_cascades" in err


@pytest.mark.parametrize("name, parameters", [("fivarnet_2025", 67_625_464), ("varnet_12_18_8", 29_936_966)])
def test_the_shipped_reference_configs_build_as_stated(name, parameters):
    from tuner.commands.memory import load_config_file
    from tuner.config.trial import count_parameters_of

    named = load_config_file(ROOT / "search_spaces" / "configs" / f"{name}.yaml")
    assert named.label == name
    assert count_parameters_of(named.config) == parameters


def test_a_trials_config_yaml_is_accepted_as_written(tmp_path, capsys):
    """What trials and finalize log as config.yaml (model, train and augment sections) is what --config reads."""
    from tuner.config.trial import TrialConfig

    config = TrialConfig.from_flat({"model.name": "varnet", "model.num_cascades": 1, "model.chans": 2,
                                    "model.pools": 2, "model.sens_chans": 2, "model.sens_pools": 2,
                                    "augment.compression.method": "scc",
                                    "augment.compression.num_virtual_coils": 2})
    written = tmp_path / "config.yaml"
    written.write_text(yaml.safe_dump(config.as_dict(), sort_keys=False))
    assert main(["memory", "--config", str(written), "--shape", "4,32,24"]) == 0
    assert any(line.startswith("config ") for line in capsys.readouterr().out.splitlines())
    written.write_text(yaml.safe_dump({**config.as_dict(), "extra": {}}))
    assert main(["memory", "--config", str(written), "--shape", "4,32,24"]) == 2
    assert "unknown top-level key 'extra' (expected model, train, augment)" in capsys.readouterr().err
