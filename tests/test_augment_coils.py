"""Readout cropping and coil compression (SCC, GCC) on simulated multi-coil k-space (torch tensors;
equivalence with the NumPy reference is in test_augment_torch_equivalence.py)."""

import numpy as np
import pytest
import scipy.linalg
import torch

from data.augment import compress_coils, crop_readout, gcc_matrices, scc_matrix
from data.transforms import center_crop, fft2c, fftc, ifft2c, rss

COILS, HEIGHT, WIDTH = 16, 128, 64


def simulate(seed: int = 0, noise: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, noise-free) k-space (16, 128, 64): an object in the central half of the readout FOV
    (2x oversampling), 16 loop coils on a ring with smooth fall-off and phase, complex noise of std
    ``noise`` x the mean object intensity in every coil (image SNR about 50 at 0.02)."""
    rng = np.random.default_rng(seed)
    r, c = np.meshgrid(np.arange(HEIGHT) - (HEIGHT - 1) / 2, np.arange(WIDTH) - (WIDTH - 1) / 2, indexing="ij")
    inside = (r / (0.22 * HEIGHT)) ** 2 + (c / (0.42 * WIDTH)) ** 2 < 1
    anatomy = inside * (1 + 0.5 * np.cos(r / 5) * np.sin(c / 4)) * np.exp(1j * (0.02 * r + 0.03 * c))
    angles = 2 * np.pi * (np.arange(COILS) + rng.uniform(-0.2, 0.2, COILS)) / COILS
    centres = np.stack([0.3 * HEIGHT * np.sin(angles), 0.55 * WIDTH * np.cos(angles)], axis=1)
    radius = 0.3 * WIDTH
    dist2 = (r - centres[:, :1, None]) ** 2 + (c - centres[:, 1:, None]) ** 2
    phase = rng.uniform(0, 2 * np.pi, (COILS, 1, 1)) + 0.005 * (r - centres[:, :1, None])
    sens = radius**3 / (radius**2 + dist2) ** 1.5 * np.exp(1j * phase)
    clean = fft2c(sens * anatomy)
    sigma = noise * float(np.abs(anatomy[inside]).mean() * rss(sens).mean())
    noisy = clean + sigma / np.sqrt(2) * (rng.standard_normal(clean.shape) + 1j * rng.standard_normal(clean.shape))
    return noisy.astype(np.complex64), clean.astype(np.complex64)


def energy(x: torch.Tensor) -> float:
    return float(x.to(torch.complex128).abs().square().sum())


def hybrid(kspace: torch.Tensor) -> torch.Tensor:
    """Image along the readout axis, k-space along the columns (energy-preserving)."""
    return fftc(kspace, (-2,), inverse=True)


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    noisy, clean = simulate()
    return torch.from_numpy(noisy), torch.from_numpy(clean)


def equispaced_mask() -> torch.Tensor:
    mask = torch.zeros(WIDTH, dtype=torch.bool)
    mask[1::4] = True
    mask[29:35] = True
    return mask


def test_crop_readout_equals_the_crop_of_the_image(data):
    kspace = data[0]
    for height, start in ((64, None), (63, None), (50, 3)):
        cropped = crop_readout(kspace, height, start)
        assert cropped.shape == (COILS, height, WIDTH) and cropped.dtype == torch.complex64
        first = (HEIGHT - height) // 2 if start is None else start
        torch.testing.assert_close(ifft2c(cropped), ifft2c(kspace)[:, first : first + height], rtol=0, atol=1e-4)
    torch.testing.assert_close(ifft2c(crop_readout(kspace, 64)), center_crop(ifft2c(kspace), (64, WIDTH)),
                               rtol=0, atol=1e-4)
    # Column-wise, so it commutes with the column mask and keeps unsampled columns exactly zero.
    mask = equispaced_mask()
    torch.testing.assert_close(crop_readout(kspace * mask, 64), crop_readout(kspace, 64) * mask, rtol=0, atol=1e-5)
    assert torch.all(crop_readout(kspace * mask, 64)[..., ~mask] == 0)
    with pytest.raises(ValueError, match="height"):
        crop_readout(kspace, HEIGHT + 1)
    with pytest.raises(ValueError, match="start"):
        crop_readout(kspace, 64, 65)


@pytest.mark.parametrize("method", ["scc", "gcc"])
def test_compressing_to_all_coils_is_unitary(data, method):
    kspace = data[0]
    out = compress_coils(kspace, method, COILS, equispaced_mask())
    assert out.shape == kspace.shape and out.dtype == torch.complex64
    assert energy(out) == pytest.approx(energy(kspace), rel=1e-5)
    image = rss(ifft2c(kspace))
    torch.testing.assert_close(rss(ifft2c(out)), image, rtol=1e-3, atol=1e-4 * float(image.max()))


def test_compression_matrices_have_orthonormal_rows(data):
    kspace = data[0]
    scc = scc_matrix(kspace, 8)
    gcc = gcc_matrices(kspace, 8)
    assert scc.shape == (8, COILS) and gcc.shape == (HEIGHT, 8, COILS)
    assert scc.dtype == gcc.dtype == torch.complex128
    eye = torch.eye(8, dtype=torch.complex128)
    torch.testing.assert_close(scc @ scc.mH, eye, rtol=0, atol=1e-10)
    torch.testing.assert_close(gcc @ gcc.mH, eye.expand(HEIGHT, 8, 8), rtol=0, atol=1e-10)


def test_energy_kept_when_compressing_16_to_8_coils(data):
    """Stated levels at image SNR ~50: SCC keeps >= 97 % of the energy, GCC >= 98.5 %, both >= 99 % of
    the noise-free signal (what is lost is mostly noise); GCC keeps at least as much as SCC."""
    noisy, clean = data
    mask = equispaced_mask()
    scc_energy = energy(compress_coils(noisy, "scc", 8)) / energy(noisy)
    gcc_energy = energy(compress_coils(noisy, "gcc", 8, window=1)) / energy(noisy)
    assert scc_energy >= 0.97 and gcc_energy >= 0.985
    # Per readout row GCC's principal components are optimal, so with the full data and a window of
    # one row it can only keep more than the single SCC matrix.
    assert gcc_energy >= scc_energy
    scc = scc_matrix(noisy, 8, mask)
    gcc = gcc_matrices(noisy, 8, mask)
    clean128 = clean.to(torch.complex128)
    assert energy(torch.tensordot(scc, clean128, dims=([1], [0]))) / energy(clean) >= 0.99
    assert energy(gcc @ hybrid(clean128).transpose(0, 1)) / energy(clean) >= 0.99
    # Calibrating on the sampled columns only keeps nearly as much as calibrating on all of them.
    assert energy(compress_coils(noisy, "gcc", 8, mask)) / energy(noisy) >= gcc_energy - 0.01


def test_gcc_applies_each_rows_matrix_in_the_centred_hybrid_domain(data):
    def by_definition(kspace: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
        # Image row x mixed by matrix x.
        rows = (matrices @ hybrid(kspace.to(torch.complex128)).transpose(0, 1)).transpose(0, 1)
        return fftc(rows, (-2,)).to(torch.complex64)

    kspace, mask = data[0], equispaced_mask()
    expected = by_definition(kspace, gcc_matrices(kspace, 8, mask, window=3))
    torch.testing.assert_close(compress_coils(kspace, "gcc", 8, mask, window=3), expected, rtol=0, atol=1e-4)
    odd = kspace[:, :-1]  # an odd number of rows shifts differently
    expected = by_definition(odd, gcc_matrices(odd, 8))
    torch.testing.assert_close(compress_coils(odd, "gcc", 8), expected, rtol=0, atol=1e-4)


def test_gcc_neighbours_are_aligned(data):
    matrices = gcc_matrices(data[0], 8).numpy()
    rng = np.random.default_rng(1)
    for x in list(range(HEIGHT // 2 + 1, HEIGHT // 2 + 20)) + list(range(HEIGHT // 2 - 20, HEIGHT // 2)):
        neighbour = matrices[x - 1] if x > HEIGHT // 2 else matrices[x + 1]  # aligned outwards from the centre
        aligned = np.linalg.norm(matrices[x] - neighbour)
        # Every unitary mix of row x's virtual coils near the identity lies farther away (Procrustes optimum).
        generator = rng.standard_normal((8, 8)) + 1j * rng.standard_normal((8, 8))
        q = scipy.linalg.expm(0.02j * (generator + generator.conj().T))
        assert aligned <= np.linalg.norm(q @ matrices[x] - neighbour) + 1e-9
        # Unaligned principal components carry arbitrary phases: about sqrt(2) per virtual coil apart.
        assert aligned < 0.6 * np.sqrt(8)


def test_compression_commutes_with_the_mask_and_validates(data):
    kspace = data[0]
    mask = equispaced_mask()
    for method in ("scc", "gcc"):
        out = compress_coils(kspace * mask, method, 8, mask)
        assert torch.all(out[..., ~mask] == 0)
    assert compress_coils(kspace, "none", 8) is kspace
    with pytest.raises(ValueError, match="method"):
        compress_coils(kspace, "pca", 8)
    with pytest.raises(ValueError, match="num_virtual"):
        compress_coils(kspace, "scc", COILS + 1)
    with pytest.raises(ValueError, match="columns"):
        compress_coils(kspace, "gcc", 8, torch.zeros(WIDTH, dtype=torch.bool))
    with pytest.raises(ValueError, match="window"):
        gcc_matrices(kspace, 8, window=0)
