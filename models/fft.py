"""Complex arithmetic, centred FFTs and the coil expand/reduce operators.

Complex tensors are real tensors with a trailing (re, im) axis of size 2, the layout fastMRI uses.
All FFT helpers compute in float32 whatever the input dtype: under CUDA autocast the surrounding
convolutions produce fp16/bf16, and half-precision FFTs are unsupported for non-power-of-2 sizes
(and would lose too much precision on k-space anyway).
"""

import torch


def _check_complex(x: torch.Tensor) -> None:
    if x.shape[-1] != 2:
        raise ValueError(f"expected a trailing complex axis of size 2, got shape {tuple(x.shape)}")


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D FFT over axes (-3, -2) of a (..., H, W, 2) tensor; float32 result."""
    _check_complex(x)
    z = torch.view_as_complex(x.float().contiguous())
    z = torch.fft.ifftshift(z, dim=(-2, -1))
    z = torch.fft.fft2(z, dim=(-2, -1), norm="ortho")
    return torch.view_as_real(torch.fft.fftshift(z, dim=(-2, -1)))


def ifft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D inverse FFT over axes (-3, -2) of a (..., H, W, 2) tensor; float32."""
    _check_complex(x)
    z = torch.view_as_complex(x.float().contiguous())
    z = torch.fft.ifftshift(z, dim=(-2, -1))
    z = torch.fft.ifft2(z, dim=(-2, -1), norm="ortho")
    return torch.view_as_real(torch.fft.fftshift(z, dim=(-2, -1)))


def complex_mul(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Elementwise complex product of two broadcastable (..., 2) tensors."""
    _check_complex(x)
    _check_complex(y)
    re = x[..., 0] * y[..., 0] - x[..., 1] * y[..., 1]
    im = x[..., 0] * y[..., 1] + x[..., 1] * y[..., 0]
    return torch.stack((re, im), dim=-1)


def complex_conj(x: torch.Tensor) -> torch.Tensor:
    """Complex conjugate of a (..., 2) tensor."""
    _check_complex(x)
    return torch.stack((x[..., 0], -x[..., 1]), dim=-1)


def complex_abs(x: torch.Tensor) -> torch.Tensor:
    """Magnitude of a (..., 2) tensor -> (...)."""
    _check_complex(x)
    return (x**2).sum(dim=-1).sqrt()


def rss(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Root-sum-of-squares of a real tensor along `dim`."""
    return (x**2).sum(dim=dim).sqrt()


def sens_expand(image: torch.Tensor, sens_maps: torch.Tensor) -> torch.Tensor:
    """Coil-combined image (B, 1, H, W, 2) -> multi-coil k-space (B, C, H, W, 2) via S_c and FFT."""
    return fft2c(complex_mul(image.float(), sens_maps.float()))


def sens_reduce(kspace: torch.Tensor, sens_maps: torch.Tensor) -> torch.Tensor:
    """Multi-coil k-space (B, C, H, W, 2) -> coil-combined image (B, 1, H, W, 2) via iFFT and conj(S_c)."""
    coil_images = ifft2c(kspace)
    return complex_mul(coil_images, complex_conj(sens_maps.float())).sum(dim=1, keepdim=True)


def rss_image(kspace: torch.Tensor) -> torch.Tensor:
    """Multi-coil k-space (B, C, H, W, 2) -> root-sum-of-squares magnitude image (B, H, W), float32."""
    return rss(complex_abs(ifft2c(kspace)), dim=1)


def complex_to_channels(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W, 2) -> (B, 2C, H, W) with all real parts first, then all imaginary parts."""
    b, c, h, w, _ = x.shape
    return x.permute(0, 4, 1, 2, 3).reshape(b, 2 * c, h, w)


def channels_to_complex(x: torch.Tensor) -> torch.Tensor:
    """Inverse of `complex_to_channels`: (B, 2C, H, W) -> (B, C, H, W, 2)."""
    b, c2, h, w = x.shape
    if c2 % 2:
        raise ValueError(f"expected an even channel count, got {c2}")
    return x.reshape(b, 2, c2 // 2, h, w).permute(0, 2, 3, 4, 1).contiguous()
