"""Fourier neural operator backbone (Li et al. 2020; paper App. G.2, Table 5) with the UNet's
interface: ``[M_ctx ⊙ x_t, M_ctx]`` of shape ``(B, 2C, T, H, W)`` in, ``(B, C, T, H, W)`` out.

As in the UNet the T frames are folded into channels and the operator acts over (H, W). The
diffusion time enters as extra input channels (the paper: "we concatenate diffusion time
embeddings along the channel dimension"): Fourier features of the noise label, a small MLP, the
result broadcast over the grid. Then a pointwise lift to ``width`` channels, ``layers`` Fourier
layers ``v ← GELU(K v + W v)`` (K: spectral convolution keeping the ``modes`` lowest frequencies
in each direction, W: pointwise linear skip; no GELU after the last), and a pointwise two-layer
projection whose output layer starts at zero, so the initial output is exactly 0. No grid
coordinates are appended, so with circular padding the map commutes with periodic shifts.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from incdyn.models.backbones.mp_layers import MPFourier

PADDING_MODES = ("zeros", "circular")
TIME_FEATURES = 32  # Fourier features of the noise label
TIME_CHANNELS = 16  # time-embedding channels concatenated to the input


class SpectralConv2d(nn.Module):
    """``(B, cin, H, W) → (B, cout, H, W)``: multiply the lowest ``modes`` frequencies of the
    2-D real FFT by learned complex matrices, zero the rest (clipped to the grid at run time)."""

    def __init__(self, cin: int, cout: int, modes: int):
        super().__init__()
        self.modes = modes
        scale = 1.0 / math.sqrt(2 * cin)  # each of re, im: unit output variance per kept mode
        # (2 row bands: positive and negative frequencies along H; real and imaginary parts)
        self.weight = nn.Parameter(scale * torch.randn(2, cin, cout, modes, modes, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        mh = min(self.modes, h // 2)  # rows 0..mh-1 and -mh..-1 never overlap
        mw = min(self.modes, w // 2 + 1)
        xf = torch.fft.rfft2(x.float(), norm="ortho")
        weight = torch.view_as_complex(self.weight[..., :mh, :mw, :].contiguous())
        out = xf.new_zeros(b, weight.shape[2], h, w // 2 + 1)
        out[:, :, :mh, :mw] = torch.einsum("bixy,ioxy->boxy", xf[:, :, :mh, :mw], weight[0])
        if mh > 0:
            out[:, :, h - mh :, :mw] = torch.einsum(
                "bixy,ioxy->boxy", xf[:, :, h - mh :, :mw], weight[1]
            )
        return torch.fft.irfft2(out, s=(h, w), norm="ortho").to(x.dtype)


class FNO(nn.Module):
    """FNO over (H, W) with the frames folded into channels.

    Args:
        channels: physical channels ``C`` of the field.
        frames: frames ``T`` of the field (fixed: they are folded into channels).
        width: channels of the Fourier layers.
        modes: frequencies kept per direction (and sign, along H) in every spectral convolution;
            clipped to what the grid holds.
        layers: Fourier layers.
        padding_mode: ``"circular"`` (periodic domains: the FFT's own periodicity) or
            ``"zeros"`` (non-periodic: H and W are zero-padded by an eighth at the far end, the
            output cropped back).
    """

    def __init__(
        self,
        *,
        channels: int,
        frames: int,
        width: int = 64,
        modes: int = 12,
        layers: int = 4,
        padding_mode: str = "circular",
    ):
        super().__init__()
        for name, value in (
            ("channels", channels),
            ("frames", frames),
            ("width", width),
            ("modes", modes),
            ("layers", layers),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        self.channels, self.frames, self.padding_mode = channels, frames, padding_mode
        self.time_fourier = MPFourier(TIME_FEATURES)
        self.time_mlp = nn.Sequential(
            nn.Linear(TIME_FEATURES, width), nn.GELU(), nn.Linear(width, TIME_CHANNELS)
        )
        self.lift = nn.Conv2d(2 * channels * frames + TIME_CHANNELS, width, 1)
        self.spectral = nn.ModuleList(SpectralConv2d(width, width, modes) for _ in range(layers))
        self.pointwise = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(layers))
        self.project = nn.Conv2d(width, 2 * width, 1)
        self.out = nn.Conv2d(2 * width, channels * frames, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, noise_label: torch.Tensor) -> torch.Tensor:
        """x: (B, 2C, T, H, W) = [ctx ⊙ x_t, ctx mask]; noise_label: (B,);
        returns (B, C, T, H, W) clean-data estimate."""
        want = f"(B, {2 * self.channels}, {self.frames}, H, W)"
        if x.ndim != 5 or x.shape[1] != 2 * self.channels or x.shape[2] != self.frames:
            raise ValueError(f"x must be {want}; got shape {tuple(x.shape)}")
        b, _, _, hh, ww = x.shape
        if noise_label.shape != (b,):
            raise ValueError(f"noise_label must have shape ({b},); got {tuple(noise_label.shape)}")
        emb = self.time_mlp(self.time_fourier(noise_label.to(x.dtype)))
        v = torch.cat(
            [x.reshape(b, -1, hh, ww), emb[:, :, None, None].expand(-1, -1, hh, ww)], dim=1
        )
        if self.padding_mode == "zeros":
            v = F.pad(v, (0, -(-ww // 8), 0, -(-hh // 8)))
        v = self.lift(v)
        for i, (spectral, pointwise) in enumerate(zip(self.spectral, self.pointwise, strict=True)):
            v = spectral(v) + pointwise(v)
            if i < len(self.spectral) - 1:
                v = F.gelu(v)
        v = self.out(F.gelu(self.project(v)))
        return v[:, :, :hh, :ww].reshape(b, self.channels, self.frames, hh, ww)
