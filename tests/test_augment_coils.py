"""Readout cropping and coil compression (SCC, GCC) on simulated multi-coil k-space."""

import numpy as np
import pytest
import scipy.linalg

from data.augment import compress_coils, crop_readout, gcc_matrices, scc_matrix
from data.transforms import center_crop, fft2c, ifft2c, rss

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


def energy(x: np.ndarray) -> float:
    return float(np.sum(np.abs(x.astype(np.complex128)) ** 2))


def hybrid(kspace: np.ndarray) -> np.ndarray:
    """Image along the readout axis, k-space along the columns (energy-preserving)."""
    return np.fft.fftshift(np.fft.ifft(np.fft.ifftshift(kspace, axes=-2), axis=-2, norm="ortho"), axes=-2)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return simulate()


def equispaced_mask() -> np.ndarray:
    mask = np.zeros(WIDTH, dtype=bool)
    mask[1::4] = True
    mask[29:35] = True
    return mask


def test_crop_readout_equals_the_crop_of_the_image(data):
    kspace = data[0]
    for height, start in ((64, None), (63, None), (50, 3)):
        cropped = crop_readout(kspace, height, start)
        assert cropped.shape == (COILS, height, WIDTH) and cropped.dtype == np.complex64
        first = (HEIGHT - height) // 2 if start is None else start
        assert np.allclose(ifft2c(cropped), ifft2c(kspace)[:, first : first + height], atol=1e-4)
    assert np.allclose(ifft2c(crop_readout(kspace, 64)), center_crop(ifft2c(kspace), (64, WIDTH)), atol=1e-4)
    # Column-wise, so it commutes with the column mask and keeps unsampled columns exactly zero.
    mask = equispaced_mask()
    assert np.allclose(crop_readout(kspace * mask, 64), crop_readout(kspace, 64) * mask, atol=1e-5)
    assert np.all(crop_readout(kspace * mask, 64)[..., ~mask] == 0)
    with pytest.raises(ValueError, match="height"):
        crop_readout(kspace, HEIGHT + 1)
    with pytest.raises(ValueError, match="start"):
        crop_readout(kspace, 64, 65)


@pytest.mark.parametrize("method", ["scc", "gcc"])
def test_compressing_to_all_coils_is_unitary(data, method):
    kspace = data[0]
    out = compress_coils(kspace, method, COILS, equispaced_mask())
    assert out.shape == kspace.shape and out.dtype == np.complex64
    assert energy(out) == pytest.approx(energy(kspace), rel=1e-5)
    assert np.allclose(rss(ifft2c(out)), rss(ifft2c(kspace)), rtol=1e-3, atol=1e-4 * rss(ifft2c(kspace)).max())


def test_compression_matrices_have_orthonormal_rows(data):
    kspace = data[0]
    scc = scc_matrix(kspace, 8)
    gcc = gcc_matrices(kspace, 8)
    assert scc.shape == (8, COILS) and gcc.shape == (HEIGHT, 8, COILS)
    assert np.allclose(scc @ scc.conj().T, np.eye(8), atol=1e-10)
    assert np.allclose(gcc @ np.conj(np.swapaxes(gcc, -1, -2)), np.eye(8), atol=1e-10)


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
    assert energy(np.tensordot(scc, clean, axes=(1, 0))) / energy(clean) >= 0.99
    assert energy(gcc @ np.swapaxes(hybrid(clean), 0, 1)) / energy(clean) >= 0.99
    # Calibrating on the sampled columns only keeps nearly as much as calibrating on all of them.
    assert energy(compress_coils(noisy, "gcc", 8, mask)) / energy(noisy) >= gcc_energy - 0.01


def test_gcc_applies_each_rows_matrix_in_the_centred_hybrid_domain(data):
    def by_definition(kspace: np.ndarray, matrices: np.ndarray) -> np.ndarray:
        rows = np.swapaxes(matrices @ np.swapaxes(hybrid(kspace), 0, 1), 0, 1)  # image row x mixed by matrix x
        return np.fft.fftshift(np.fft.fft(np.fft.ifftshift(rows, axes=-2), axis=-2, norm="ortho"), axes=-2)

    kspace, mask = data[0], equispaced_mask()
    expected = by_definition(kspace, gcc_matrices(kspace, 8, mask, window=3))
    assert np.allclose(compress_coils(kspace, "gcc", 8, mask, window=3), expected, atol=1e-4)
    odd = kspace[:, :-1]  # an odd number of rows shifts differently
    assert np.allclose(compress_coils(odd, "gcc", 8), by_definition(odd, gcc_matrices(odd, 8)), atol=1e-4)


def test_gcc_neighbours_are_aligned(data):
    matrices = gcc_matrices(data[0], 8)
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
        assert np.all(out[..., ~mask] == 0)
    assert compress_coils(kspace, "none", 8) is kspace
    with pytest.raises(ValueError, match="method"):
        compress_coils(kspace, "pca", 8)
    with pytest.raises(ValueError, match="num_virtual"):
        compress_coils(kspace, "scc", COILS + 1)
    with pytest.raises(ValueError, match="columns"):
        compress_coils(kspace, "gcc", 8, np.zeros(WIDTH, dtype=bool))
    with pytest.raises(ValueError, match="window"):
        gcc_matrices(kspace, 8, window=0)
