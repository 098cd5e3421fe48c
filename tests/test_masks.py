"""Column masks: hand-computed cases, reproducibility, and agreement with fastMRI's mask functions."""

import numpy as np
import pytest
import torch
from fastmri.data import subsample

from data.masks import (
    MASK_KINDS,
    center_mask,
    center_run,
    make_mask,
    mask_acceleration,
    nominal_acceleration,
)

# fastMRI classes whose masks are a deterministic function of the offset.
FASTMRI_OFFSET_FUNCS = {
    "equispaced": subsample.EquiSpacedMaskFunc,
    "equispaced_fraction": subsample.EquispacedMaskFractionFunc,
    "magic": subsample.MagicMaskFunc,
    "magic_fraction": subsample.MagicMaskFractionFunc,
}
SEEDS = range(40)


def _fastmri_mask(kind: str, num_cols: int, acc: int, cf: float, offset: int) -> np.ndarray:
    func = FASTMRI_OFFSET_FUNCS[kind]([cf], [acc])
    mask, _ = func((1, num_cols, 1), offset=offset)
    return mask.numpy().reshape(-1).astype(bool)


@pytest.mark.parametrize(
    ("num_cols", "num_low", "expected"),
    [(10, 3, [4, 5, 6]), (10, 2, [4, 5]), (11, 2, [5, 6]), (11, 3, [4, 5, 6]), (8, 0, [])],
)
def test_center_block_position(num_cols, num_low, expected):
    assert np.flatnonzero(center_mask(num_cols, num_low)).tolist() == expected


def test_center_uses_python_rounding():
    # round(10 * 0.25) == 2 (half to even), so the block is columns 4 and 5, not 3 to 5.
    for seed in SEEDS:
        mask = make_mask("equispaced", 10, 10, 0.25, seed)
        assert mask[4:6].all()
        assert mask.sum() <= 3


def test_equispaced_396_at_r4_has_123_columns_for_every_offset():
    offsets = set()
    for seed in SEEDS:
        mask = make_mask("equispaced", 396, 4, 0.08, seed)
        assert mask.dtype == bool and mask.shape == (396,)
        assert mask.sum() == 123  # 99 on the grid + 32 centre lines, 8 of them on the grid
        assert mask[182:214].all()  # n_low = round(31.68) = 32 from (396 - 32 + 1) // 2 = 182
        offsets.add(int(np.flatnonzero(mask)[0]))
    assert offsets == {0, 1, 2, 3}


@pytest.mark.parametrize(("num_cols", "acc"), [(396, 8), (392, 4), (320, 8), (97, 4), (48, 8)])
def test_equispaced_spacing_outside_center(num_cols, acc):
    num_low = round(num_cols * 0.08)
    center = center_mask(num_cols, num_low)
    for seed in range(5):
        mask = make_mask("equispaced", num_cols, acc, 0.08, seed)
        offset = int(np.flatnonzero(mask)[0])
        assert offset < acc
        grid = np.zeros(num_cols, dtype=bool)
        grid[offset::acc] = True
        assert np.array_equal(mask, grid | center)


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_same_seed_same_mask_and_seeds_differ(kind):
    masks = [make_mask(kind, 368, 4, 0.08, seed) for seed in SEEDS]
    assert all(np.array_equal(m, make_mask(kind, 368, 4, 0.08, s)) for s, m in zip(SEEDS, masks))
    assert len({m.tobytes() for m in masks}) > 1


@pytest.mark.parametrize("kind", sorted(FASTMRI_OFFSET_FUNCS))
@pytest.mark.parametrize(("num_cols", "acc", "cf"), [(396, 4, 0.08), (396, 8, 0.08), (368, 8, 0.04), (97, 4, 0.08)])
def test_offset_families_match_fastmri(kind, num_cols, acc, cf):
    """Each mask is one of fastMRI's masks for some offset (the offsets are drawn differently)."""
    max_offset = 64  # above every offset range here; out-of-range offsets just give other masks
    reference = {_fastmri_mask(kind, num_cols, acc, cf, o).tobytes() for o in range(max_offset)}
    ours = {make_mask(kind, num_cols, acc, cf, seed).tobytes() for seed in SEEDS}
    assert ours <= reference
    assert len(ours) > 1


def test_equispaced_offset_range_matches_fastmri():
    ours = {make_mask("equispaced", 396, 8, 0.08, seed).tobytes() for seed in range(200)}
    reference = {_fastmri_mask("equispaced", 396, 8, 0.08, o).tobytes() for o in range(8)}
    assert ours == reference


def test_fraction_families_hit_the_target_line_count():
    for kind in ("equispaced_fraction", "magic_fraction"):
        for acc in (4, 8):
            counts = [make_mask(kind, 396, acc, 0.08, seed).sum() for seed in range(10)]
            assert all(abs(c - 396 / acc) <= 0.1 * 396 / acc for c in counts), (kind, acc, counts)


@pytest.mark.parametrize("acc", [4, 8])
def test_random_matches_fastmri_center_and_density(acc):
    num_cols, cf = 396, 0.08
    func = subsample.RandomMaskFunc([cf], [acc])
    ours = np.array([make_mask("random", num_cols, acc, cf, seed) for seed in range(300)])
    theirs = np.array(
        [func((1, num_cols, 1), seed=seed)[0].numpy().reshape(-1) for seed in range(300)]
    ).astype(bool)
    assert ours[:, 182:214].all() and theirs[:, 182:214].all()
    expected = num_cols / acc
    assert abs(ours.sum(1).mean() - expected) < 0.03 * expected
    assert abs(theirs.sum(1).mean() - expected) < 0.03 * expected


def test_center_run():
    assert center_run(np.array([0, 1, 1, 1, 0, 1])) == (1, 3)
    assert center_run(np.array([1, 1, 0, 0, 1, 1])) == (3, 0)  # centre column 3 not sampled
    assert center_run(np.ones(7)) == (0, 7)
    mask = make_mask("equispaced", 396, 4, 0.08, 0)
    start, length = center_run(torch.from_numpy(mask).reshape(1, 1, -1, 1))
    assert start <= 182 and start + length >= 214 and length <= 34


def test_mask_acceleration():
    assert mask_acceleration(make_mask("equispaced", 396, 4, 0.08, 3)) == pytest.approx(396 / 123)
    assert mask_acceleration(torch.ones(1, 1, 10, 1)) == 1.0
    with pytest.raises(ValueError, match="no column"):
        mask_acceleration(np.zeros(8))
    with pytest.raises(ValueError, match="1-D"):
        mask_acceleration(np.ones((2, 8)))


@pytest.mark.parametrize("kind", sorted(FASTMRI_OFFSET_FUNCS))
def test_nominal_acceleration_recovers_r(kind):
    for num_cols in (396, 392, 320, 480, 96, 48):
        for acc in (4, 8):
            for seed in range(5):
                mask = make_mask(kind, num_cols, acc, 0.08, seed)
                assert nominal_acceleration(mask, (4, 8)) == acc, (num_cols, acc, seed)


def test_nominal_acceleration_is_not_the_rounded_density():
    mask = make_mask("equispaced", 396, 8, 0.08, 0)
    assert mask_acceleration(mask) < 6  # nearer 4 than 8 ...
    assert nominal_acceleration(mask, (4, 8)) == 8  # ... yet the mask is an R 8 mask


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"kind": "poisson"}, "kind"),
        ({"num_cols": 0}, "num_cols"),
        ({"num_cols": 64.0}, "num_cols"),
        ({"acceleration": 0}, "acceleration"),
        ({"acceleration": True}, "acceleration"),
        ({"center_fraction": 1.0}, "center_fraction"),
        ({"center_fraction": -0.1}, "center_fraction"),
        ({"center_fraction": "0.08"}, "center_fraction"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, name):
    args = {"kind": "equispaced", "num_cols": 64, "acceleration": 4, "center_fraction": 0.08, "seed": 0}
    with pytest.raises(ValueError, match=name):
        make_mask(**{**args, **kwargs})
