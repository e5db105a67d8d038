"""VP diffusion schedule of the paper's release (the noising of Eq. 1).

``α(t) = exp(−¼ t² (β_max − β_min) − ½ t β_min)``, ``σ(t) = √(1 − α²)``, ``t ~ U[t_min, 1]``.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator


class VPSchedule(BaseModel):
    """Variance-preserving schedule.

    Attributes:
        beta_min: β at t = 0.
        beta_max: β at t = 1.
        t_min: smallest diffusion time used in training and single-step inference (δ).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    beta_min: float = Field(0.1, ge=0.0)
    beta_max: float = Field(20.0, gt=0.0)
    t_min: float = Field(1e-3, gt=0.0, lt=1.0)  # δ of single-step inference

    @model_validator(mode="after")
    def _ordered(self) -> VPSchedule:
        if not self.beta_min < self.beta_max:
            raise ValueError(
                f"schedule needs beta_min < beta_max, got {self.beta_min}, {self.beta_max}"
            )
        return self

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(-0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(1.0 - self.alpha(t) ** 2)

    def noise_label(self, t: torch.Tensor) -> torch.Tensor:
        """EDM-style conditioning ``c_noise = ¼ log(σ/α)`` of the equivalent VE noise level."""
        return 0.25 * torch.log(self.sigma(t) / self.alpha(t))

    def sample_t(self, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """Training times ``t ~ U[t_min, 1]``, shape ``(n,)``."""
        u = torch.rand(n, generator=generator, device=device)
        return self.t_min + (1.0 - self.t_min) * u
