"""Direct inference (App. G.2, Table 4): the full observation mask as the only context.

``x̂ = D_θ(δ, M ⊙ x_δ, M)`` — AmbientDiff's way, and the "M_ctx = M" row of Table 4: the model
sees a mask denser than any context it was trained on.
"""

from __future__ import annotations

import torch

from incdyn.models.denoiser import Denoiser
from incdyn.models.samplers.forward import merge_observed, noised


@torch.no_grad()
def direct_impute(
    denoiser: Denoiser,
    x_obs: torch.Tensor,
    mask: torch.Tensor,
    *,
    generator: torch.Generator,
    t: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Impute ``(B, C, T, H, W)`` fields with one network call; mask bool ``(B, T, H, W)``.

    Returns ``(imputed, spread)``; the spread is 0 everywhere (no ensemble).
    """
    known = torch.where(mask.unsqueeze(1), x_obs, torch.zeros_like(x_obs))
    x_t, tt = noised(denoiser, known, denoiser.schedule.t_min if t is None else t, generator)
    pred = denoiser(x_t, mask, tt)
    return merge_observed(x_obs, mask, pred, torch.zeros_like(x_obs))
