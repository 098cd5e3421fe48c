"""The leaderboard metric against independent implementations: OpenCV morphology (what the challenge
runs) and scikit-image's SSIM with the same window, constants and data range."""

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import structural_similarity

from tuner.train.loss import LeaderboardLoss
from tuner.train.metrics import (
    ROI_THRESHOLDS,
    SSIMAccumulator,
    leaderboard_roi,
    leaderboard_ssim,
    leaderboard_ssim_batch,
)


def _phantom(rng: np.random.Generator, shape=(96, 80), scale=3e-4) -> np.ndarray:
    """An MRI-like slice: a smooth blob touching the image border, with texture, at challenge intensities."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    blob = ((yy - shape[0] * 0.45) / (shape[0] * 0.4)) ** 2 + ((xx - shape[1] * 0.3) / (shape[1] * 0.35)) ** 2 < 1
    texture = ndimage.gaussian_filter(rng.random(shape), 2)
    image = blob * (0.5 + texture) * scale + rng.random(shape) * 1e-5
    image[40:44, 30:60] = 0  # a dark gap that the ROI closing must fill
    return image.astype(np.float32)


def _opencv_roi(target: np.ndarray, organ: str) -> np.ndarray:
    mask = np.zeros(target.shape)
    mask[target > ROI_THRESHOLDS[organ]] = 1
    kernel = np.ones((3, 3), np.uint8)
    mask = cv2.erode(mask, kernel, iterations=1)
    mask = cv2.dilate(mask, kernel, iterations=15)
    return cv2.erode(mask, kernel, iterations=14)


@pytest.mark.parametrize("organ", ["brain", "knee"])
def test_roi_matches_opencv(organ):
    rng = np.random.default_rng(1)
    target = _phantom(rng)
    ours = leaderboard_roi(torch.from_numpy(target).double(), organ).numpy()
    expected = _opencv_roi(target, organ)
    assert 0.1 < expected.mean() < 0.9, "the phantom should give a non-trivial ROI"
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize("organ", ["brain", "knee"])
def test_leaderboard_ssim_matches_skimage(organ):
    rng = np.random.default_rng(2)
    target = _phantom(rng)
    recon = target + rng.normal(0, 2e-5, target.shape).astype(np.float32)
    max_value = float(target.max())
    roi = _opencv_roi(target, organ)
    expected = structural_similarity(
        recon * roi, target * roi, win_size=7, gaussian_weights=False, use_sample_covariance=True,
        K1=0.01, K2=0.03, data_range=max_value,
    )
    ours = leaderboard_ssim(recon, target, max_value, organ)
    assert ours == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert 0.3 < ours < 0.999


def test_ssim_is_one_for_a_perfect_recon_and_drops_with_noise():
    rng = np.random.default_rng(3)
    target = _phantom(rng)
    max_value = float(target.max())
    assert leaderboard_ssim(target, target, max_value, "brain") == pytest.approx(1.0)
    noisy = [leaderboard_ssim(target + rng.normal(0, s, target.shape), target, max_value, "brain")
             for s in (1e-6, 1e-5, 5e-5)]
    assert noisy[0] > noisy[1] > noisy[2]


def test_accumulator_averages_like_the_leaderboard():
    acc = SSIMAccumulator()
    for value in (0.9, 0.8, 0.7):
        acc.add("brain_x4", value)
    acc.add("knee_x4", 0.6)
    acc.add("brain_x8", 0.5)
    summary = acc.summary()
    assert summary.per_category == pytest.approx({"brain_x4": 0.8, "knee_x4": 0.6, "brain_x8": 0.5})
    # Slices of one acceleration are pooled across organs, then the two accelerations are averaged.
    assert summary.per_acceleration == pytest.approx({4: 0.75, 8: 0.5})
    assert summary.overall == pytest.approx(0.625)
    assert summary.slices == 5
    with pytest.raises(ValueError, match="category"):
        acc.add("liver_x4", 0.1)


def test_loss_is_zero_at_the_target_and_its_gradient_points_towards_it():
    rng = np.random.default_rng(4)
    target = torch.from_numpy(np.stack([_phantom(rng), _phantom(rng, scale=1e-4)]))
    max_values = target.amax(dim=(-2, -1))
    loss_fn = LeaderboardLoss(ssim_weight=1.0, l1_weight=1.0)
    organs = ["brain", "knee"]
    assert loss_fn(target.clone(), target, max_values, organs).item() == pytest.approx(0.0, abs=1e-6)
    output = (target + 3e-5 * torch.randn_like(target)).requires_grad_(True)
    loss = loss_fn(output, target, max_values, organs)
    loss.backward()
    assert loss.item() > 0.01
    with torch.no_grad():
        stepped = output - 1e-9 * output.grad / output.grad.abs().max()
        assert loss_fn(stepped, target, max_values, organs).item() < loss.item()


def test_the_batched_device_ssim_equals_the_per_slice_reference():
    """Validation scores a whole batch where it was computed (`leaderboard_ssim_batch`); it must give the
    reference's number for every slice, to 1e-6, whatever the organ, data range and input precision."""
    rng = np.random.default_rng(3)
    targets = rng.random((4, 48, 40)) * 3e-4
    targets[:, :6] = 0  # background, so the ROI has an edge
    recons = (targets + rng.normal(0, 2e-5, targets.shape)).astype(np.float32)
    organs, max_values = ["brain", "knee", "knee", "brain"], np.array([3e-4, 4e-4, 2.5e-4, 1e-3])
    batched = leaderboard_ssim_batch(torch.from_numpy(recons), torch.from_numpy(targets.astype(np.float32)),
                                     torch.from_numpy(max_values), organs)
    assert batched.dtype == torch.float64 and batched.shape == (4,)
    for i, organ in enumerate(organs):
        reference = leaderboard_ssim(recons[i], targets[i].astype(np.float32), float(max_values[i]), organ)
        assert abs(float(batched[i]) - reference) <= 1e-6
    with pytest.raises(ValueError, match=r"equal \(B, h, w\) shapes"):
        leaderboard_ssim_batch(torch.zeros(2, 8, 8), torch.zeros(2, 8, 9), torch.ones(2), ["brain"] * 2)
