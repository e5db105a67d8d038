"""Impute the validation and test splits with a trained DINCAE-style baseline (Barth et al. 2020,
2022) and score it as every method is scored, plus its Gaussian error variance.

The imputation is the network's mean, observed points kept as observed and NaN outside the
domain; it feeds the same :class:`~incdyn.datasets.metrics.squared_error.SquaredError` (truth:
``test_mse``, ``test_mse_unobserved``) and
:class:`~incdyn.datasets.metrics.heldout.HeldoutError` (a second pass with the held-out points
removed from the input: ``test_heldout_mse``) as the other methods, and the validation split's
give ``val_mse``, ``val_mse_unobserved``, ``val_heldout_mse``.

Its predicted variance is scored under the ensemble verification's names
(:class:`~incdyn.datasets.metrics.gaussian_scores.GaussianScores`, training-std units): at the
test split's unobserved truth points ``test_crps``, ``test_coverage_90``, ``test_coverage_50``,
``test_spread_skill``; at held-out points ``*_heldout`` (``val_`` and ``test_``). As for the
diffusion methods, the validation held-out points fit the split-conformal inflation of ``σ``
(:mod:`~incdyn.platform.evaluation.calibration`), applied at test:
``test_calibrated_coverage_90`` and ``test_calibrated_coverage_90_heldout``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from incdyn.datasets.metrics.ensemble_scores import LEVELS
from incdyn.datasets.metrics.gaussian_scores import GaussianScores
from incdyn.datasets.metrics.heldout import HeldoutError
from incdyn.datasets.metrics.scoring import physics_context, score
from incdyn.datasets.metrics.squared_error import SquaredError
from incdyn.datasets.store import (
    broadcast_domain,
    domain_of_samples,
    open_split,
    store_domain,
)
from incdyn.datasets.torch_dataset import SplitDataset
from incdyn.models.baselines.dincae import DincaeNet, build_dincae, dincae_impute
from incdyn.platform.checkpoint import is_complete, read_meta
from incdyn.platform.evaluation.calibration import Calibration, fit_calibration
from incdyn.platform.evaluation.evaluate import Evaluation, _n_test, _outside_to_nan, _val_metrics
from incdyn.platform.evaluation.verification import Verification
from incdyn.platform.spec import DincaeMethod, ExperimentSpec, parse_spec

SAMPLER = "dincae"  # how the calibration names the spreads it was fitted on


def load_dincae(directory: str | Path, device: str = "cpu") -> tuple[DincaeNet, dict]:
    """The network of a DINCAE checkpoint directory (``weights_only`` load) and its meta."""
    meta = read_meta(directory)
    if not is_complete(directory) or meta.get("model") != "dincae":
        raise ValueError(f"{directory} is not a whole DINCAE checkpoint: not loading it")
    spec = parse_spec(meta["spec"], "(checkpoint meta.json)")
    method = DincaeMethod.model_validate(meta["method"])
    net = build_dincae(
        spec.backbone_of(method), channels=len(meta["channels"]), frames=meta["frames"]
    )
    state = torch.load(Path(directory) / "model.pt", map_location=device, weights_only=True)
    net.load_state_dict(state)
    return net.to(device).eval(), meta


class _Split:
    """One split's accumulators: truth, held-out points, and the Gaussian scores of both."""

    def __init__(self, channels: tuple[str, ...]) -> None:
        self.truth, self.held = SquaredError(channels), HeldoutError(channels)
        self.gauss, self.gauss_held = GaussianScores(channels), GaussianScores(channels)
        self.points: list[tuple[np.ndarray, ...]] = []  # held-out (|μ − y|, σ, channel)
        self.example: tuple | None = None


def _score_split(
    split: str, net: DincaeNet, spec: ExperimentSpec, *, store_url: str, limit: int | None,
    device: str, calibration: Calibration | None,
) -> _Split:  # fmt: skip
    has = open_split(store_url, split)
    truth, held = "truth" in has, "holdout" in has
    data = SplitDataset(store_url, split, with_truth=truth, with_holdout=held, limit=limit)
    physics = physics_context(has, spec.data.source)
    domain = store_domain(has)  # (y, x), or (sample, y, x) for coastal tiles
    levels = calibration.at(LEVELS) if calibration is not None else None
    out, std = _Split(data.channels), data.std.ravel()
    for batch in DataLoader(data, batch_size=spec.evaluation.batch_size):
        x, m = batch["x_obs"].to(device), batch["mask"].to(device)
        mask = batch["mask"].numpy()
        dom = domain_of_samples(domain, batch["index"].numpy())  # this batch's samples
        inside = True if dom is None else broadcast_domain(dom, mask.shape)
        observed = np.where(mask[:, :, None], data.denormalise(batch["x_obs"]), np.nan)
        reference = data.denormalise(batch["truth"]) if truth else observed
        mean, var = dincae_impute(net, x, m)
        imputed = _outside_to_nan(data.denormalise(mean), dom)
        if truth:
            out.truth.update(imputed, reference, mask, std, dom)
            out.truth.add(score(imputed, reference, batch["index"].numpy(), physics))
            hidden = ~mask & inside
            out.gauss.update(
                mean.cpu().numpy(), var.cpu().numpy(), batch["truth"].numpy(), hidden,
                calibration=levels,
            )  # fmt: skip
        if out.example is None:
            out.example = (reference[0], mask[0], imputed[0])
        if held:
            points = batch["holdout"].numpy() & mask
            shown = m & ~torch.from_numpy(points).to(device)
            mean_h, var_h = dincae_impute(net, x * shown[:, None], shown)
            out.held.update(data.denormalise(mean_h), observed, points, std)
            scored = out.gauss_held.update(
                mean_h.cpu().numpy(), var_h.cpu().numpy(), batch["x_obs"].numpy(), points,
                calibration=levels,
            )  # fmt: skip
            out.points.append(scored)
    return out


def _metrics(s: _Split, prefix: str) -> dict[str, float]:
    """``test_*`` names of the truth and held-out errors (as :func:`_val_metrics` expects), and
    the Gaussian scores under ``prefix``."""
    out = {**(s.truth.result() if s.truth.sums else {}), **(s.held.result() if s.held.sums else {})}
    return {**out, **s.gauss.result(prefix), **s.gauss_held.result(prefix, "_heldout")}


def evaluate_dincae(
    checkpoint_dir: str | Path, spec: ExperimentSpec, *, store_url: str
) -> Evaluation:
    """Score the checkpoint on the validation split (``val_*``; its held-out points fit the
    calibration), then on the test split with the calibration applied (``test_*``)."""
    device = "cuda" if spec.ray.use_gpu else "cpu"
    net, _ = load_dincae(checkpoint_dir, device)
    common = dict(store_url=store_url, device=device)
    val = _score_split(
        "val", net, spec, limit=spec.evaluation.val_samples, calibration=None, **common
    )
    calibration = None
    if val.points:
        err, sd, chan = (np.concatenate(p) for p in zip(*val.points, strict=True))
        calibration = fit_calibration(
            err, sd, chan, tuple(val.held.channels), k=1, sampler=SAMPLER,
            fitted_on="val held-out observed points",
        )  # fmt: skip
    limit = _n_test(store_url, spec.evaluation.max_samples)
    test = _score_split("test", net, spec, limit=limit, calibration=calibration, **common)
    val_all = _metrics(val, "val")
    metrics = {**_metrics(test, "test"), **_val_metrics({SAMPLER: val_all}, SAMPLER, [SAMPLER])}
    metrics.update({k: v for k, v in val_all.items() if k.startswith("val_")})
    return Evaluation(metrics, *test.example, verification=Verification(calibration=calibration))
