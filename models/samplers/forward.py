"""The pieces every sampler shares: the noised input at a small time, one chunked network pass
over a batch of context masks, and the merge of an estimate with the observed points.

``output = M ⊙ x_obs + (1 − M) ⊙ x̂`` (Sec. 3.3): observed points are the data, bit for bit,
and their spread is 0.
"""

from __future__ import annotations

import torch

from incdyn.models.denoiser import Denoiser


def noised(
    denoiser: Denoiser, x: torch.Tensor, t: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_t, t)`` with ``x_t = α_t x + σ_t ε`` for a batch ``(N, C, T, H, W)``; ``t`` as ``(N,)``."""
    tt = torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype)
    eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    schedule = denoiser.schedule
    return schedule.alpha(tt)[0] * x + schedule.sigma(tt)[0] * eps, tt


# Most grid points (rows × H × W) in one network forward when the caller sets no other bound:
# the activations of a forward grow with it, and past about this size the network's per-point
# cost rises on a CPU (measured by the benchmark suite's chunk scan, item 8).
MAX_NETWORK_POINTS = 98304


def chunk_rows(rows: int, points_per_row: int, max_batch: int, max_points: int) -> int:
    """Rows per network forward: at most ``max_batch`` rows and ``max_points`` grid points (at
    least one row), spread evenly over the fewest forwards those bounds allow."""
    if max_batch < 1:
        raise ValueError(f"max_batch={max_batch} must be >= 1")
    if max_points < 1:
        raise ValueError(f"max_points={max_points} must be >= 1")
    cap = max(1, min(max_batch, max_points // max(points_per_row, 1)))
    forwards = -(-rows // cap) if rows else 1
    return max(1, -(-rows // forwards))


def denoise_chunked(
    denoiser: Denoiser,
    x_t: torch.Tensor,
    ctx: torch.Tensor,
    t: torch.Tensor | float,
    max_batch: int,
    max_points: int = MAX_NETWORK_POINTS,
) -> torch.Tensor:
    """``D_θ(t, ctx ⊙ x_t, ctx)`` for ``N`` rows, in network forwards of at most ``max_batch``
    rows and ``max_points`` grid points (rows × H × W; at least one row per forward).

    ``x_t``: ``(N, C, T, H, W)``; ``ctx``: bool ``(N, T, H, W)``; ``t``: ``(N,)`` or one time.
    """
    size = chunk_rows(x_t.shape[0], x_t.shape[-2] * x_t.shape[-1], max_batch, max_points)
    if not torch.is_tensor(t):
        t = torch.full((x_t.shape[0],), float(t), device=x_t.device, dtype=x_t.dtype)
    return torch.cat(
        [
            denoiser(x_t[i : i + size], ctx[i : i + size], t[i : i + size])
            for i in range(0, x_t.shape[0], size)
        ]
    )


def merge_observed(
    x_obs: torch.Tensor, mask: torch.Tensor, estimate: torch.Tensor, spread: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Observed points from ``x_obs`` (spread 0), the rest from ``estimate`` (and ``spread``).

    ``x_obs``, ``estimate``, ``spread``: ``(..., C, T, H, W)``; ``mask``: bool ``(..., T, H, W)``.
    """
    observed = mask.unsqueeze(-4).expand_as(x_obs)
    return (
        torch.where(observed, x_obs, estimate),
        torch.where(observed, torch.zeros_like(spread), spread),
    )


def ensemble_stats(preds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation over the members (dim 1) of ``(B, K, C, T, H, W)``."""
    return preds.mean(dim=1), preds.std(dim=1, unbiased=False)
