"""The data-matching denoiser ``D_θ(t, M_ctx ⊙ x_t, M_ctx)`` (paper Eq. 1, App. C.3).

Wraps a backbone: the network input is the channel concatenation ``[M_ctx ⊙ x_t, M_ctx]``
(2C channels in, C out) and the noise label of ``t``; the output is the clean-data estimate
(x0-prediction — noise at unobserved points is unknowable, so noise matching cannot be trained).
"""

from __future__ import annotations

import torch
from torch import nn

from incdyn.models.schedule import VPSchedule


class Denoiser(nn.Module):
    """x0-predicting denoiser over fields ``(B, C, T, H, W)``."""

    def __init__(self, backbone: nn.Module, schedule: VPSchedule) -> None:
        super().__init__()
        self.backbone = backbone
        self.schedule = schedule

    def forward(self, x_t: torch.Tensor, ctx: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t ``(B, C, T, H, W)``, ctx bool ``(B, T, H, W)``, t ``(B,)`` → ``(B, C, T, H, W)``."""
        m = ctx.unsqueeze(1).to(x_t.dtype).expand_as(x_t)
        inputs = torch.cat([m * x_t, m], dim=1)
        return self.backbone(inputs, self.schedule.noise_label(t).to(x_t.dtype))
