"""How a spec's diffusion method samples: the plan that evaluation and serving both hand to the
samplers (inference partition, K, multi-step options)."""

from __future__ import annotations

from incdyn.models.partition import inference_partition, partition_for
from incdyn.models.samplers.registry import SamplerPlan
from incdyn.platform.spec import DiffusionMethod, ExperimentSpec


def sampler_plan(spec: ExperimentSpec, method: DiffusionMethod) -> SamplerPlan:
    """The samplers' settings of ``method``: its inference partition (the training one, its
    context ratio rescaled for test masks of another observed fraction, App. G.3), K and the
    multi-step options."""
    data = spec.data
    return SamplerPlan(
        partition=inference_partition(method.partition, data.observation, data.test_observation),
        family=data.observation,
        trained=partition_for(method.partition, data.observation),
        k=method.ensemble,
        steps=method.sampler.steps,
        weight=method.sampler.weight,
        max_batch=spec.evaluation.max_network_batch,
        max_points=spec.evaluation.max_network_points,
    )
