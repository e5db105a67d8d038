"""Loading a spec: YAML, profiles, ``--set`` overrides, field-path error messages, and a spec's
data settings as specs of their own."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from incdyn.models.backbones.options import FNOSpec, UNetSpec
from incdyn.platform.spec.base import SpecError
from incdyn.platform.spec.schema import (
    DATA_SOURCES,
    ClassicalMethod,
    DiffusionMethod,
    DincaeMethod,
    ExperimentSpec,
)

# Tags of the spec's tagged unions, as pydantic puts them in an error's location.
_UNION_TAGS: dict[str, type[BaseModel]] = {
    "diffusion": DiffusionMethod,
    "classical": ClassicalMethod,
    "dincae": DincaeMethod,
    "unet": UNetSpec,
    "fno": FNOSpec,
    **DATA_SOURCES,
}
# custom error type of a tagged union → the key that chooses the member
_TAG_KEYS = {"method_kind": "kind", "backbone_name": "name", "data_source": "source"}


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str] | None:
    """Field names of the sub-model at ``loc`` (for 'unknown key' messages)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if part in _UNION_TAGS:
            current = _UNION_TAGS[part]
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            if part in current.model_fields:
                current = current.model_fields[part].annotation
                args = getattr(current, "__args__", ())
                subs = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
                if len(subs) == 1:
                    current = subs[0]
                continue
            return None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return None


def _format(exc: ValidationError, source: str) -> SpecError:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = ".".join(str(p) for p in loc if p not in _UNION_TAGS)
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(ExperimentSpec, loc[:-1])
            lines.append(f"{path}: unknown key; allowed keys here: {', '.join(allowed or [])}")
        elif err["type"] in _TAG_KEYS:
            key = _TAG_KEYS[err["type"]]
            got = err["input"].get(key) if isinstance(err["input"], dict) else err["input"]
            lines.append(f"{path}.{key}: {err['msg']} (got {got!r})")
        else:
            got = err.get("input")
            shown = f" (got {got!r})" if isinstance(got, str | int | float | bool) else ""
            lines.append(f"{path or '(top level)'}: {err['msg']}{shown}")
    where = f" (in {source})" if source != "<dict>" else ""
    return SpecError("; ".join(lines) + where)


def _set(tree: Any, path: list[str], value: Any, full: str) -> None:
    key, rest = path[0], path[1:]
    if isinstance(tree, list):
        if key.isdigit() and int(key) < len(tree):
            idx = int(key)
        else:
            names = [item.get("name") for item in tree if isinstance(item, dict)]
            if key not in names:
                raise SpecError(f"--set {full}: no list item {key!r}; items: {names}")
            idx = names.index(key)
        if rest:
            _set(tree[idx], rest, value, full)
        else:
            tree[idx] = value
        return
    if not isinstance(tree, dict):
        raise SpecError(f"--set {full}: {key!r} is below a value that is not a mapping")
    if rest:
        _set(tree.setdefault(key, {}), rest, value, full)
    else:
        tree[key] = value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a raw spec mapping."""
    out = json.loads(json.dumps(raw))
    for item in overrides:
        if "=" not in item:
            raise SpecError(f"--set {item!r}: expected key.path=value")
        key, text = item.split("=", 1)
        _set(out, key.strip().split("."), yaml.safe_load(text), item)
    return out


def _apply_profile(raw: dict, source: str) -> dict:
    name = raw.get("profile")
    profiles = raw.get("profiles") or {}
    if (
        raw.get("profile_applied")
        or not name
        or not isinstance(profiles, dict)
        or name not in profiles
    ):
        return raw  # applied already, none, or unknown (reported by validation)
    items = [
        f"{k}={yaml.safe_dump(v, default_flow_style=True).strip()}"
        for k, v in (profiles[name] or {}).items()
    ]
    try:
        return {**apply_overrides(raw, items), "profile_applied": True}
    except SpecError as exc:
        raise SpecError(f"profiles.{name}", f"{exc} (in {source})") from None


def parse_spec(raw: Any, source: str = "<dict>") -> ExperimentSpec:
    """Validate a raw spec mapping (after applying its selected profile)."""
    if not isinstance(raw, dict):
        raise SpecError("SPEC", f"{source}: the top level must be a mapping of spec sections")
    raw = _apply_profile(raw, source)
    try:
        return ExperimentSpec.model_validate(raw)
    except ValidationError as exc:
        raise _format(exc, source) from None


def load_spec(path: str | Path, overrides: list[str] | None = None) -> ExperimentSpec:
    """Read, override and validate a YAML spec."""
    path = Path(path)
    if not path.is_file():
        raise SpecError("SPEC", f"{path} does not exist", "give the path of an experiment spec")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError("SPEC", f"{path} is not valid YAML: {exc}") from None
    if isinstance(raw, dict) and overrides:
        # --set may choose the profile; the profile goes in first, then --set wins over it
        raw = apply_overrides(_apply_profile(apply_overrides(raw, overrides), str(path)), overrides)
    return parse_spec(raw, str(path))


def variants_of(spec: ExperimentSpec) -> list[ExperimentSpec]:
    """One spec per data setting (the spec itself when it has none), named ``<name>-<setting>``."""
    if not spec.settings:
        return [spec]
    base = {k: v for k, v in spec.to_dict().items() if k != "settings"}
    out = []
    for setting in spec.settings:
        items = [
            f"{k}={yaml.safe_dump(v, default_flow_style=True).strip()}"
            for k, v in setting.overrides.items()
        ]
        raw = apply_overrides(base, items)
        raw["name"] = f"{spec.name}-{setting.name}"
        raw["mlflow"] = {**raw.get("mlflow", {}), "experiment": spec.experiment_name}
        out.append(parse_spec(raw, f"{spec.name} setting {setting.name!r}"))
    return out


def dump_spec(spec: ExperimentSpec) -> str:
    return yaml.safe_dump(spec.to_dict(), sort_keys=False)


def add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    """A command's ``SPEC`` argument and its ``--set key=value`` overrides."""
    parser.add_argument("spec", help="experiment spec (YAML)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec field, e.g. training.steps=200 or methods.ours.ensemble=5",
    )
