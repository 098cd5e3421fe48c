"""Probability schedules (hand-computed values of every kind) and the augmentation config's validation."""

import dataclasses

import pytest

from data.augment import (
    AugmentConfig,
    CompressionConfig,
    MaskAugmentConfig,
    MRAugmentConfig,
    ProbabilitySchedule,
)


def probabilities(schedule: ProbabilitySchedule, epochs: range) -> list[float]:
    return [schedule.probability(e) for e in epochs]


def test_constant_is_zero_before_the_delay_then_p_max():
    schedule = ProbabilitySchedule(kind="constant", p_max=0.5, delay=2)
    assert probabilities(schedule, range(5)) == [0.0, 0.0, 0.5, 0.5, 0.5]
    assert schedule.probability(100) == 0.5


def test_linear_ramp():
    schedule = ProbabilitySchedule(kind="linear", p_max=0.6, delay=1, ramp_epochs=4)
    assert probabilities(schedule, range(8)) == pytest.approx([0, 0, 0.15, 0.3, 0.45, 0.6, 0.6, 0.6])


def test_exponential_ramp_is_mraugments_form():
    # p = 0.6 (1 - exp(-1.25 t)) / (1 - exp(-5)), c = exp_decay / ramp_epochs = 5 / 4, t = epoch - 1.
    schedule = ProbabilitySchedule(kind="exponential", p_max=0.6, delay=1, ramp_epochs=4, exp_decay=5.0)
    expected = [0.0, 0.0, 0.431001185, 0.554485092, 0.589863824, 0.6, 0.6]
    assert probabilities(schedule, range(7)) == pytest.approx(expected, abs=1e-9)


def test_exponential_rises_faster_than_linear_and_tends_to_it_for_small_decay():
    fast = ProbabilitySchedule(kind="exponential", p_max=1.0, ramp_epochs=10, exp_decay=5.0)
    slow = ProbabilitySchedule(kind="exponential", p_max=1.0, ramp_epochs=10, exp_decay=1e-6)
    linear = ProbabilitySchedule(kind="linear", p_max=1.0, ramp_epochs=10)
    for epoch in range(1, 10):
        assert fast.probability(epoch) > linear.probability(epoch)
        assert slow.probability(epoch) == pytest.approx(linear.probability(epoch), abs=1e-6)


def test_plateau_steps_up_after_patience_stale_losses():
    schedule = ProbabilitySchedule(kind="plateau", p_max=0.6, patience=2, step=0.25)
    losses = [1.0, 0.9, 0.95, 0.92, 0.8, 0.85, 0.85, 0.85, 0.86]
    # Stale runs: (0.95, 0.92) -> plateau 1; (0.85, 0.85) -> 2; (0.85, 0.86) -> 3, capped at p_max.
    expected = {0: 0.0, 3: 0.0, 4: 0.25, 6: 0.25, 7: 0.5, 8: 0.5, 9: 0.6}
    for epoch, p in expected.items():
        assert schedule.probability(epoch, losses[:epoch]) == pytest.approx(p), epoch
    assert [schedule.plateaus(losses[:n]) for n in (4, 7, 9)] == [1, 2, 3]


def test_plateau_min_delta_delay_and_nan():
    losses = [1.0, 0.97, 0.96]
    assert ProbabilitySchedule(kind="plateau", patience=2).plateaus(losses) == 0
    assert ProbabilitySchedule(kind="plateau", patience=2, min_delta=0.05).plateaus(losses) == 1
    delayed = ProbabilitySchedule(kind="plateau", patience=1, step=0.1, delay=5)
    assert delayed.probability(3, [1.0, 1.0, 1.0]) == 0.0  # two plateaus, but before the delay
    assert delayed.probability(5, [1.0, 1.0, 1.0, 0.5, 0.6]) == pytest.approx(0.3)
    assert ProbabilitySchedule(kind="plateau", patience=2).plateaus([1.0, float("nan"), float("nan")]) == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "cosine"}, "kind: expected one of"),
        ({"p_max": 1.5}, "p_max: expected a number in"),
        ({"p_max": "0.5"}, "p_max"),
        ({"delay": -1}, "delay: expected an integer >= 0"),
        ({"ramp_epochs": 0}, "ramp_epochs"),
        ({"exp_decay": 0.0}, "exp_decay"),
        ({"patience": 1.5}, "patience"),
        ({"step": 0.0}, "step"),
        ({"min_delta": -0.1}, "min_delta"),
    ],
)
def test_schedule_validation_names_the_key(fields, message):
    with pytest.raises(ValueError, match=message):
        ProbabilitySchedule(**fields)


def test_schedule_rejects_a_negative_epoch():
    with pytest.raises(ValueError, match="epoch"):
        ProbabilitySchedule().probability(-1)


def test_defaults_are_off_frozen_and_round_trip_through_from_dict():
    config = AugmentConfig()
    assert not config.mask.enabled and not config.mraugment.enabled and not config.duplication.enabled
    assert config.compression.method == "none" and config.crop.height is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.crop = None  # type: ignore[misc]
    assert AugmentConfig.from_dict(config.to_dict()) == config
    assert AugmentConfig.from_dict(None) == config


def test_from_dict_builds_nested_sections_and_lists():
    raw = {
        "mask": {"enabled": True, "kinds": ["random", "magic"], "weights": [3, 1],
                 "center_fraction": [0.06, 0.08], "schedule": {"kind": "linear", "ramp_epochs": 5}},
        "mraugment": {"enabled": True, "max_translation": [0.1, 0.1], "padding": "zero"},
        "compression": {"method": "gcc", "num_virtual_coils": 6},
        "crop": {"height": 384},
        "duplication": {"enabled": True, "keep_own_mask": False},
    }
    config = AugmentConfig.from_dict(raw)
    assert config.mask.kinds == ("random", "magic") and config.mask.weights == (3.0, 1.0)
    assert config.mask.center_fraction == (0.06, 0.08)
    assert config.mask.schedule == ProbabilitySchedule(kind="linear", ramp_epochs=5)
    assert config.mraugment.max_translation == (0.1, 0.1) and config.mraugment.padding == "zero"
    assert config.compression == CompressionConfig(method="gcc", num_virtual_coils=6)
    assert config.crop.height == 384 and not config.duplication.keep_own_mask
    hash(config)  # frozen and built of tuples: usable as a key


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"mraugment": {"max_rotation_deg": 270}}, r"augment\.mraugment\.max_rotation_deg: expected"),
        ({"mraugment": {"schedule": {"p_max": 2}}}, r"augment\.mraugment\.schedule\.p_max: expected"),
        ({"mraugment": {"rotaton": 1.0}}, r"augment\.mraugment\.rotaton: unknown key"),
        ({"mask": {"kinds": ["poisson"]}}, r"augment\.mask\.kinds: expected distinct names"),
        ({"mask": {"weights": [1, 1]}}, r"augment\.mask\.weights: expected a list of 5"),
        ({"mask": {"weights": [0, 0, 0, 0, 0]}}, r"augment\.mask\.weights: expected at least one positive"),
        ({"mask": {"center_fraction": [0.08, 0.04]}}, r"augment\.mask\.center_fraction"),
        ({"mask": {"enabled": 1}}, r"augment\.mask\.enabled: expected true or false"),
        ({"compression": {"method": "pca"}}, r"augment\.compression\.method: expected one of"),
        ({"compression": {"num_virtual_coils": 0}}, r"augment\.compression\.num_virtual_coils"),
        ({"crop": {"height": 0}}, r"augment\.crop\.height"),
        ({"crop": 384}, r"augment\.crop: expected a mapping"),
        ({"cropping": {}}, r"augment\.cropping: unknown key"),
    ],
)
def test_from_dict_errors_name_the_full_key(raw, message):
    with pytest.raises(ValueError, match=message):
        AugmentConfig.from_dict(raw)


def test_direct_construction_is_validated_too():
    with pytest.raises(ValueError, match="max_shear_deg"):
        MRAugmentConfig(max_shear_deg=60.0)
    with pytest.raises(ValueError, match="schedule: expected a ProbabilitySchedule"):
        MaskAugmentConfig(schedule={"kind": "linear"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mraugment: expected a MRAugmentConfig"):
        AugmentConfig(mraugment=MaskAugmentConfig())  # type: ignore[arg-type]
