"""DINEOF: gap filling by iterative truncated-EOF reconstruction (Beckers & Rixen 2003;
Alvera-Azcárate et al. 2005), the standard method of oceanography and meteorology.

Per channel, the ``(time × space)`` matrix of anomalies (observed values minus their mean) is
filled with zeros at the gaps; then, for ``k = 1, 2, …`` modes, the gaps are replaced by the
rank-``k`` SVD reconstruction until they stop changing. The number of modes is chosen by
cross-validation: a seeded share of the observed points is withheld, and the ``k`` whose
reconstruction fits them best is kept — the smallest ``k`` within 1 % of the lowest error, so
that modes which only fit round-off are not added (the search stops once ``patience`` mode counts
in a row have not lowered the error by 1 %). The final reconstruction uses every observed point
with that ``k``.

A point never observed in a sample's frames has no time series to reconstruct (a column of
zeros stays zero): it gets the channel mean. DINEOF therefore fills gaps that move over time
(clouds) and cannot fill a gap that stays in place for the whole window (a static mask).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CV_TOL = 1e-6  # convergence of the reconstructions tried during the mode search
CV_ITER = 300  # most iterations per mode count during the search
GAIN = 1e-2  # a mode count must lower the cross-validation error by this share to count


@dataclass(frozen=True)
class DineofResult:
    """A filled ``(T, S)`` matrix, the modes kept, and the cross-validation error per mode count."""

    filled: np.ndarray
    modes: int
    cv_error: dict[int, float]


GRAM_MIN = 64  # from this many frames and points on, the rank-k part comes from the Gram matrix


def _rank_k(work: np.ndarray, k: int) -> np.ndarray:
    """The best rank-``k`` approximation of ``work`` ``(T, S)`` (its truncated SVD).

    A window's small matrix takes the SVD itself. A record's matrix (both sides at least
    ``GRAM_MIN``) projects onto the leading ``k`` eigenvectors of the Gram matrix of its
    shorter side — the same subspace, without computing every singular vector on every
    iteration (DINEOF's own code uses a Lanczos solver for the same reason)."""
    if min(work.shape) < GRAM_MIN:
        u, s, vt = np.linalg.svd(work, full_matrices=False)
        return (u[:, :k] * s[:k]) @ vt[:k]
    if work.shape[0] <= work.shape[1]:
        _, vecs = np.linalg.eigh(work @ work.T)
        lead = vecs[:, ::-1][:, :k]
        return lead @ (lead.T @ work)
    _, vecs = np.linalg.eigh(work.T @ work)
    lead = vecs[:, ::-1][:, :k]
    return (work @ lead) @ lead.T


def _reconstruct(
    anomaly: np.ndarray, known: np.ndarray, start: np.ndarray, k: int, tol: float, max_iter: int
) -> np.ndarray:
    """Iterate ``gaps ← rank-k SVD reconstruction`` from ``start`` until the gaps' relative
    change is below ``tol``; returns the last rank-``k`` reconstruction (Beckers & Rixen 2003)."""
    work = np.where(known, anomaly, start)
    recon = work
    for _ in range(max_iter):
        recon = _rank_k(work, k)
        new = np.where(known, anomaly, recon)
        change = np.linalg.norm((new - work)[~known])
        scale = max(np.linalg.norm(new[~known]), np.finfo(float).tiny)
        work = new
        if change <= tol * scale:
            break
    return recon


def dineof_matrix(
    x: np.ndarray,
    *,
    rng: np.random.Generator,
    max_modes: int | None = None,
    cv_fraction: float = 0.1,
    patience: int = 3,
    tol: float = 1e-8,
    cv_tol: float = CV_TOL,
    max_iter: int = 500,
) -> DineofResult:
    """Fill the NaN entries of a ``(T, S)`` matrix (time × space) by DINEOF.

    Args:
        x: the field, NaN where unobserved; columns with no observation are filled with the mean.
        rng: draws the cross-validation points.
        max_modes: most EOF modes tried (default ``min(T, S) - 1``).
        cv_fraction: share of the observed points withheld to choose the mode count.
        patience: mode counts in a row with a rising cross-validation error that end the search.
        tol: relative change of the gaps that ends the final reconstruction.
        cv_tol: the same for the reconstructions tried during the mode search.
        max_iter: most SVD iterations per mode count.
    """
    known = np.isfinite(x)
    if not known.any():
        raise ValueError("dineof: the matrix has no observed value")
    mean = float(x[known].mean())
    anomaly = np.where(known, x - mean, 0.0)
    if known.all():
        return DineofResult(x.astype(np.float64), 0, {})
    cols = known.any(axis=0)  # points observed at least once
    a, kn = anomaly[:, cols], known[:, cols]
    limit = min(a.shape) - 1 if max_modes is None else min(max_modes, min(a.shape))
    limit = max(limit, 1)
    observed = np.flatnonzero(kn)
    n_cv = round(cv_fraction * observed.size)
    cv_error: dict[int, float] = {}
    best = 1
    if n_cv >= 1 and observed.size - n_cv >= 1:
        cv = np.zeros(kn.shape, bool)
        cv.flat[rng.choice(observed, n_cv, replace=False)] = True
        train = kn & ~cv
        start, stale = np.zeros_like(a), 0
        for k in range(1, limit + 1):
            start = _reconstruct(a, train, start, k, cv_tol, min(max_iter, CV_ITER))
            error = float(np.sqrt(np.mean((start[cv] - a[cv]) ** 2)))
            better = not cv_error or error < (1 - GAIN) * min(cv_error.values())
            stale = 0 if better else stale + 1
            cv_error[k] = error
            if stale >= patience:
                break
        lowest = min(cv_error.values())
        best = min(k for k, e in cv_error.items() if e <= (1 + GAIN) * lowest)
    recon = _reconstruct(a, kn, np.zeros_like(a), best, tol, max_iter)
    out = np.full(x.shape, mean)
    out[:, cols] = mean + np.where(kn, a, recon)
    return DineofResult(np.where(known, x, out), best, cv_error)


def dineof(
    values: np.ndarray, mask: np.ndarray, *, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Impute one sample, channel by channel: values ``(T, C, H, W)``, mask bool ``(T, H, W)``.

    Observed points are returned unchanged; a sample with no observation gives zeros, as the
    other baselines do. ``rng`` draws the cross-validation points (default: a generator seeded
    with 0, so that a baseline run is reproducible).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    t, c, h, w = values.shape
    if not mask.any():
        return np.zeros_like(values)
    out = np.empty_like(values)
    for ch in range(c):
        x = np.where(mask, values[:, ch], np.nan).reshape(t, h * w).astype(np.float64)
        out[:, ch] = dineof_matrix(x, rng=rng).filled.reshape(t, h, w)
    return out
