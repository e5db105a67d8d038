"""Magnitude-preserving primitives of EDM2 (Karras et al. 2024, "Analyzing and Improving the
Training Dynamics of Diffusion Models", App. B); equation numbers refer to that paper.

Each primitive keeps the expected RMS magnitude of unit-magnitude, uncorrelated inputs at 1, so
activations neither grow nor shrink with depth and no normalisation layers with learned scales
are needed. Written for 2-D feature maps ``(B, C, H, W)`` and embeddings ``(B, C)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SILU_RMS = 0.596  # E[silu(z)^2]^(1/2) for z ~ N(0, 1), the divisor of Eq. 81


# Pixel norm (activations, dim=1) and weight norm (Eq. 47's w/‖w‖, all dims but the first):
# rescale to unit RMS over `dim`, i.e. divide by ‖x‖/√N (+ eps).
def normalize(
    x: torch.Tensor, dim: int | tuple[int, ...] | None = None, eps: float = 1e-4
) -> torch.Tensor:
    """Return ``x`` scaled to unit RMS magnitude over ``dim`` (default: all dims but the first)."""
    if dim is None:
        dim = tuple(range(1, x.ndim))
    norm = torch.linalg.vector_norm(x, dim=dim, keepdim=True, dtype=torch.float32)
    norm = torch.add(eps, norm, alpha=math.sqrt(norm.numel() / x.numel()))
    return x / norm.to(x.dtype)


# Magnitude-preserving SiLU (Eq. 81): silu(x) / 0.596.
def mp_silu(x: torch.Tensor) -> torch.Tensor:
    """SiLU scaled to unit output RMS for unit-variance Gaussian input."""
    return F.silu(x) / SILU_RMS


# Magnitude-preserving sum (Eq. 88): lerp(a, b, t) / √((1−t)² + t²).
def mp_sum(a: torch.Tensor, b: torch.Tensor, t: float = 0.5) -> torch.Tensor:
    """Blend ``a`` and ``b`` with weight ``t`` on ``b``, keeping unit magnitude."""
    scale = 1.0 / math.sqrt((1.0 - t) ** 2 + t**2)
    return torch.add(a * ((1.0 - t) * scale), b, alpha=t * scale)


def mp_sum_weights(t: float) -> tuple[float, float]:
    """The factors ``(w_a, w_b)`` with ``mp_sum(a, b, t) = w_a·a + w_b·b`` (to fold into convs)."""
    scale = 1.0 / math.sqrt((1.0 - t) ** 2 + t**2)
    return (1.0 - t) * scale, t * scale


# Magnitude-preserving concatenation (Eq. 103): each part weighted by t and its channel count.
def mp_cat(a: torch.Tensor, b: torch.Tensor, dim: int = 1, t: float = 0.5) -> torch.Tensor:
    """Concatenate along ``dim`` so that ``b`` contributes a fraction ``t`` of the magnitude."""
    na, nb = a.shape[dim], b.shape[dim]
    c = math.sqrt((na + nb) / ((1.0 - t) ** 2 + t**2))
    wa = c / math.sqrt(na) * (1.0 - t)
    wb = c / math.sqrt(nb) * t
    # Equal halves at t = 1/2 give wa = wb = 1: skip the two full-tensor multiplications.
    if abs(wa - 1.0) > 1e-6:
        a = a * wa
    if abs(wb - 1.0) > 1e-6:
        b = b * wb
    return torch.cat([a, b], dim=dim)


class MPConv(nn.Module):
    """Magnitude-preserving convolution or linear layer (Eq. 47) with forced weight
    normalisation (Eq. 66): in training mode every forward first rescales the stored weight
    rows to unit RMS in place, then uses ``normalize(w)·gain/√fan_in`` so that unit-magnitude
    input gives unit-magnitude output; the gradient is thereby orthogonal to the weight.

    Args:
        in_channels: input channels (features for a linear layer).
        out_channels: output channels.
        kernel: ``()`` for a linear layer on ``(B, in)``, ``(k, k)`` for a 2-D convolution on
            ``(B, in, H, W)`` with "same" padding (odd ``k``).
        padding_mode: ``"zeros"`` or ``"circular"`` (periodic domains); convolution only.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, ...] = (),
        padding_mode: str = "zeros",
    ):
        super().__init__()
        if len(kernel) not in (0, 2) or any(k % 2 == 0 for k in kernel):
            raise ValueError(f"kernel must be () or (k, k) with odd k, got {kernel!r}")
        if padding_mode not in ("zeros", "circular"):
            raise ValueError(f"padding_mode must be 'zeros' or 'circular', got {padding_mode!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.padding_mode = padding_mode
        self.pad = kernel[0] // 2 if kernel else 0
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, *kernel))

    def normalized_weight(self, gain: float | torch.Tensor = 1.0) -> torch.Tensor:
        """The weight as used, ``normalize(w)·gain/√fan_in``; ``gain`` is a float or a tensor
        that broadcasts against the weight (e.g. ``(out_channels, 1)`` for per-row gains)."""
        w = self.weight
        dims = tuple(range(1, w.ndim))
        eps_norm = 1e-4 * math.sqrt(w[0].numel())  # normalize's eps on the RMS, as a norm
        if self.training:
            with torch.no_grad():  # forced weight normalisation (Eq. 66): w ← normalize(w)
                norm = torch.linalg.vector_norm(w, dim=dims, keepdim=True)
                w.mul_(math.sqrt(w[0].numel()) / (norm + eps_norm))
        # normalize(w)·gain/√fan_in = w·gain/(‖w‖ + eps·√fan_in), differentiated through ‖w‖
        # so that the gradient is projected as in Eq. 47; one pass over the weight each way.
        norm = torch.linalg.vector_norm(w, dim=dims, keepdim=True)
        return w * (gain / (norm + eps_norm))

    def forward(self, x: torch.Tensor, gain: float | torch.Tensor = 1.0) -> torch.Tensor:
        w = self.normalized_weight(gain).to(x.dtype)
        if w.ndim == 2:
            return x @ w.t()
        if self.pad == 0:
            return F.conv2d(x, w)
        if self.padding_mode == "circular":
            return F.conv2d(WrapPad.apply(x, self.pad), w)
        return F.conv2d(x, w, padding=self.pad)

    def extra_repr(self) -> str:
        kernel = tuple(self.weight.shape[2:])
        return f"{self.in_channels}, {self.out_channels}, kernel={kernel}, {self.padding_mode}"


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    channels_last = x.stride(1) == 1 and x.shape[1] > 1
    return torch.channels_last if channels_last else torch.contiguous_format


class WrapPad(torch.autograd.Function):
    """Periodic padding of H and W by ``p ≤ min(H, W)``: ``F.pad(x, (p,) * 4, "circular")``
    for ``(B, C, H, W)``, but it keeps the ``channels_last`` layout and its backward folds the
    halo back in place; with the following conv about 3× cheaper on CPU than ``F.pad``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: int) -> torch.Tensor:
        b, c, h, w = x.shape
        ctx.p = p
        shape = (b, c, h + 2 * p, w + 2 * p)
        out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=_memory_format(x))
        out[:, :, p:-p, p:-p] = x
        out[:, :, :p, p:-p] = x[:, :, -p:]
        out[:, :, -p:, p:-p] = x[:, :, :p]
        out[:, :, :, :p] = out[:, :, :, -2 * p : -p]
        out[:, :, :, -p:] = out[:, :, :, p : 2 * p]
        return out

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, None]:
        p = ctx.p
        gx = g[:, :, p:-p, p:-p].clone(memory_format=_memory_format(g))
        gx[:, :, :p] += g[:, :, -p:, p:-p]  # halo rows and columns go back where they came from
        gx[:, :, -p:] += g[:, :, :p, p:-p]
        gx[:, :, :, :p] += g[:, :, p:-p, -p:]
        gx[:, :, :, -p:] += g[:, :, p:-p, :p]
        gx[:, :, :p, :p] += g[:, :, -p:, -p:]  # and the corners
        gx[:, :, :p, -p:] += g[:, :, -p:, :p]
        gx[:, :, -p:, :p] += g[:, :, :p, -p:]
        gx[:, :, -p:, -p:] += g[:, :, :p, :p]
        return gx, None


class MPFourier(nn.Module):
    """Magnitude-preserving Fourier features (Eq. 75): ``√2·cos(2π(f·x + φ))`` with fixed random
    frequencies ``f ~ N(0, bandwidth²)`` and phases ``φ ~ U[0, 1)``, drawn once from ``seed``
    and stored as buffers (so they travel in the ``state_dict``). Maps ``(B,)`` to ``(B, N)``.
    """

    def __init__(self, num_channels: int, bandwidth: float = 1.0, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("freqs", 2 * math.pi * torch.randn(num_channels, generator=gen))
        self.register_buffer("phases", 2 * math.pi * torch.rand(num_channels, generator=gen))
        self.freqs.mul_(bandwidth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.outer(x.to(torch.float32), self.freqs.to(torch.float32)) + self.phases
        return (y.cos() * math.sqrt(2)).to(x.dtype)
