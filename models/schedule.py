"""VP diffusion schedule of the paper's release (METHOD.md "Training", Eq. 1).

``α(t) = exp(−¼ t² (β_max − β_min) − ½ t β_min)``, ``σ(t) = √(1 − α²)``, ``t ~ U[t_min, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class VPSchedule:
    """Variance-preserving schedule.

    Attributes:
        beta_min: β at t = 0.
        beta_max: β at t = 1.
        t_min: smallest diffusion time used in training and single-step inference (δ).
    """

    beta_min: float = 0.1
    beta_max: float = 20.0
    t_min: float = 1e-3

    def __post_init__(self) -> None:
        if not 0 <= self.beta_min < self.beta_max:
            raise ValueError(f"schedule needs 0 <= beta_min < beta_max, got {self}")
        if not 0 < self.t_min < 1:
            raise ValueError(f"schedule t_min={self.t_min} must lie in (0, 1)")

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
