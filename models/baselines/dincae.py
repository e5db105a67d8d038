"""DINCAE-style learned baseline: a U-Net fed the gappy field that returns a mean and an error
variance per point (Barth et al. 2020, GMD 13, "DINCAE 1.0"; Barth et al. 2022, GMD 15,
"DINCAE 2.0").

As in DINCAE the network's input is the field with its gaps set to 0 plus the observation mask
(here every frame of the window, so neighbouring times are seen too), and it is trained on the
gappy data alone: extra observed points are hidden from its input by transplanting the gap
pattern of another sample of the batch (the input mask is ``mask & donor``, the donor being the
batch's masks rolled by a seeded shift; with one sample, the frames rolled by one), and the loss
is the Gaussian negative log-likelihood ``½ (log σ² + (x − μ)² / σ²) + ½ log 2π`` of every
observed value of the target (those hidden from the input included) under the network's two
heads, the mean ``μ`` and the log-variance ``log σ²`` (clamped to ``[LOGVAR_MIN, LOGVAR_MAX]``).

The network is incdyn's UNet (:class:`~incdyn.models.backbones.unet.UNet`) with the options of
the experiment's backbone and two outputs per channel; it has no diffusion time, so its noise
label is a constant 0. Values are in the store's normalised units, as the diffusion model's.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from incdyn.models.backbones.options import UNetSpec
from incdyn.models.backbones.unet import UNet

LOGVAR_MIN, LOGVAR_MAX = -9.0, 5.0  # σ from about 0.011 to 12 training standard deviations
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class DincaeNet(nn.Module):
    """``(x, mask) → (μ, log σ²)`` over fields ``(B, C, T, H, W)`` with masks ``(B, T, H, W)``."""

    def __init__(self, backbone: UNetSpec | dict[str, Any], *, channels: int, frames: int):
        super().__init__()
        spec = UNetSpec.model_validate(backbone)
        self.channels = channels
        self.net = UNet(
            channels=channels, frames=frames, outputs=2, **spec.model_dump(exclude={"name"})
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = mask.unsqueeze(1).expand_as(x)
        values = torch.where(m, x, torch.zeros_like(x))  # gaps (NaN or not) set to 0
        inputs = torch.cat([values, m.to(x.dtype)], dim=1)
        out = self.net(inputs, torch.zeros(x.shape[0], device=x.device, dtype=x.dtype))
        mean, logvar = out.split(self.channels, dim=1)
        return mean, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)


def build_dincae(
    backbone: UNetSpec | dict[str, Any], *, channels: int, frames: int, seed: int | None = None
) -> DincaeNet:
    """The network; with ``seed`` its initial weights are a function of the seed alone (drawn
    inside ``torch.random.fork_rng``, the caller's global RNG left as it was)."""
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        return DincaeNet(backbone, channels=channels, frames=frames)


def transplant_mask(mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The input mask of a training step: ``mask`` ``(B, T, H, W)`` with the gaps of a donor
    transplanted, the donor being another sample's mask (the batch rolled by a shift drawn
    from ``generator`` in ``1 … B−1``); with one sample, the previous frame's mask; with one
    sample of one frame, nothing is hidden."""
    b, t = mask.shape[:2]
    if b > 1:
        shift = int(torch.randint(1, b, (1,), generator=generator, device=generator.device))
        donor = mask.roll(shift, dims=0)
    elif t > 1:
        donor = mask.roll(1, dims=1)
    else:
        return mask
    return mask & donor


def gaussian_nll(
    mean: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor, points: torch.Tensor
) -> torch.Tensor:
    """Mean Gaussian negative log-likelihood of ``target`` at the True ``points`` ``(B, T, H, W)``
    (shared by the channels) under ``N(mean, exp(logvar))``; 0 when there is no point."""
    sel = points.unsqueeze(1).expand_as(target)
    safe = torch.where(sel, target, mean.detach())  # NaN-free: no NaN gradient anywhere
    nll = 0.5 * (logvar + (safe - mean) ** 2 * torch.exp(-logvar)) + HALF_LOG_2PI
    n = sel.sum()
    return (nll * sel).sum() / n.clamp(min=1)


def dincae_loss(
    model: nn.Module, x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """One training step's loss: the input is ``x`` under the transplanted mask, the target
    every observed point of ``x`` (:func:`gaussian_nll`)."""
    mean, logvar = model(x, transplant_mask(mask, generator))
    return gaussian_nll(mean, logvar, x, mask)


@torch.no_grad()
def dincae_impute(
    model: nn.Module, x: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The imputation (observed points kept as observed, the mean elsewhere) and the predicted
    error variance ``σ²`` (at every point, the observed ones included), ``(B, C, T, H, W)``."""
    mean, logvar = model(x, mask)
    observed = mask.unsqueeze(1).expand_as(x)
    return torch.where(observed, x, mean), torch.exp(logvar)
