r"""The experiment spec: one YAML file, typed and validated before anything runs.

Unknown keys and bad values are :class:`SpecError`\ s that name the field and what is allowed.
``--set a.b=value`` overrides a field (list items of ``methods`` by position or by ``name``).
"""

from incdyn.models.backbones.options import FNOSpec, UNetSpec
from incdyn.platform.spec.base import SpecError, Strict
from incdyn.platform.spec.loading import (
    add_spec_arguments,
    apply_overrides,
    dump_spec,
    load_spec,
    parse_spec,
    variants_of,
)
from incdyn.platform.spec.schema import (
    CLASSICAL_KINDS,
    DATA_SOURCES,
    BackboneSpec,
    ClassicalMethod,
    DataSpec,
    DiffusionMethod,
    DincaeMethod,
    EvaluationSpec,
    ExperimentSpec,
    MethodSpec,
    MlflowSpec,
    ObservationSpec,
    PartitionSpec,
    RaySpec,
    SamplerSpec,
    ScheduleSpec,
    SettingSpec,
    TrainingSpec,
)

__all__ = [
    "CLASSICAL_KINDS",
    "DATA_SOURCES",
    "BackboneSpec",
    "ClassicalMethod",
    "DataSpec",
    "DiffusionMethod",
    "DincaeMethod",
    "EvaluationSpec",
    "ExperimentSpec",
    "FNOSpec",
    "MethodSpec",
    "MlflowSpec",
    "ObservationSpec",
    "PartitionSpec",
    "RaySpec",
    "SamplerSpec",
    "ScheduleSpec",
    "SettingSpec",
    "SpecError",
    "Strict",
    "TrainingSpec",
    "UNetSpec",
    "add_spec_arguments",
    "apply_overrides",
    "dump_spec",
    "load_spec",
    "parse_spec",
    "variants_of",
]
