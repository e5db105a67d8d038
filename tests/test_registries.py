"""Every choice a spec offers is a key of the registry that implements it, and back."""

from __future__ import annotations

import inspect
import typing

import pytest
from pydantic import TypeAdapter, ValidationError

from incdyn.datasets.generators import GENERATORS
from incdyn.datasets.masks import MaskFamily
from incdyn.models.backbones.options import BackboneSpec
from incdyn.models.backbones.registry import BACKBONES, switch_backbone
from incdyn.models.baselines.classical import CLASSICAL
from incdyn.models.partition import PartitionSpec
from incdyn.models.samplers.multistep import WEIGHTS
from incdyn.models.samplers.registry import SAMPLERS
from incdyn.platform.spec import (
    CLASSICAL_KINDS,
    DATA_SOURCES,
    ClassicalMethod,
    DataSpec,
    SamplerSpec,
)


def _choices(model, field: str) -> set[str]:
    return set(typing.get_args(model.model_fields[field].annotation))


def test_sampler_kinds_are_the_registry_plus_the_best_of_rule():
    assert _choices(SamplerSpec, "kind") == set(SAMPLERS) | {"best"}
    assert _choices(SamplerSpec, "weight") == set(WEIGHTS)


def test_backbone_names_are_the_registry():
    tags = {spec_cls.model_fields["name"].default for _, spec_cls in BACKBONES.values()}
    assert tags == set(BACKBONES)
    for name in BACKBONES:
        assert TypeAdapter(BackboneSpec).validate_python({"name": name}).name == name


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_options_are_exactly_the_class_arguments(name):
    cls, spec_cls = BACKBONES[name]
    params = inspect.signature(cls.__init__).parameters
    # the field's shape and the heads per channel (a DINCAE-style network's 2) are the model's
    # to set, not the spec's
    taken = set(params) - {"self", "channels", "frames", "outputs"}
    assert set(spec_cls.model_fields) - {"name"} == taken


def test_an_option_the_backbone_does_not_take_is_an_error():
    with pytest.raises(ValidationError, match="mults"):
        TypeAdapter(BackboneSpec).validate_python({"name": "fno", "mults": [1, 2]})
    with pytest.raises(ValidationError, match="modes"):
        TypeAdapter(BackboneSpec).validate_python({"name": "unet", "modes": 8})
    # a sweep switching backbones keeps only what the new one takes
    assert switch_backbone({"name": "unet", "width": 16, "mults": [1, 2]}, "fno") == {
        "name": "fno",
        "width": 16,
    }


def test_classical_kinds_are_the_registry():
    assert set(CLASSICAL_KINDS) == set(CLASSICAL) == _choices(ClassicalMethod, "kind")


def test_data_sources_are_the_generators():
    assert set(DATA_SOURCES) == set(GENERATORS)
    for source, section in DATA_SOURCES.items():
        gen = GENERATORS[source]
        assert _choices(section, "source") == {source}
        assert _choices(section, "preset") == set(gen.presets)
        assert section.model_fields["params"].annotation is gen.config_cls
        assert TypeAdapter(DataSpec).validate_python({"source": source}).source == source


def test_partition_kinds_are_the_mask_kinds():
    # every mask family has a partition of its own structure (Principle 1)
    assert _choices(PartitionSpec, "kind") == _choices(MaskFamily, "kind")
