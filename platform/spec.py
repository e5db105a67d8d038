"""The experiment spec: one YAML file, typed and validated before anything runs.

Unknown keys and bad values are :class:`SpecError`s that name the field and what is allowed.
``--set a.b=value`` overrides a field (list items of ``methods`` by position or by ``name``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

Ratio = Annotated[float, Field(gt=0.0, le=1.0)]


class SpecError(ValueError):
    """An invalid experiment spec; the message lists every problem with its field path."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ObservationSpec(_Strict):
    """Observation-mask family p(M) (Sec. 4.1)."""

    kind: Literal["pixel", "block", "station"] = "pixel"  # i.i.d. points, tiles, sensor disks
    p: Ratio = 0.2  # pixel: observed fraction
    k: int = Field(8, ge=1)  # block: observed tiles
    blocks: int = Field(3, ge=1)  # block: tiles per side
    static: bool = True  # one spatial mask repeated over all frames
    stations: int = Field(8, ge=1)  # station: sensor sites per mask
    radius: float = Field(3.0, ge=0.0)  # station: observed disk radius in grid points

    @model_validator(mode="after")
    def _k_fits(self) -> ObservationSpec:
        if self.k > self.blocks**2:
            raise ValueError(
                f"k={self.k} exceeds the {self.blocks**2} tiles of a {self.blocks}x{self.blocks} grid"
            )
        return self


class DataSpec(_Strict):
    """Where the data come from and how they are observed."""

    source: Literal[
        "navier_stokes", "navier_stokes_public", "shallow_water", "advection", "era5"
    ] = "navier_stokes"  # PDE generator, or era5 (windows of a WeatherBench2/ARCO zarr store)
    preset: str = "quickstart"  # the generator's named configuration
    params: dict[str, float | int | str | list[float] | list[str]] = {}  # config overrides
    store: str = "data/{name}.zarr"  # zarr store URL or path ({name} = experiment name)
    n_train: int = Field(256, ge=1)
    n_val: int = Field(32, ge=1)
    n_test: int = Field(64, ge=1)
    chunk: int = Field(32, ge=1)  # samples per zarr chunk and per generation task
    observation: ObservationSpec = ObservationSpec()
    test_observation: ObservationSpec | None = None  # val/test masks of another family (Table 8)


class PartitionSpec(_Strict):
    """Context/query partition strategy (Sec. 3.2)."""

    kind: Literal["pixel", "block", "station"] = "pixel"
    context_ratio: Ratio = 0.7
    query_ratio: Ratio = 0.7
    drop_blocks: int = Field(1, ge=1)  # block: observed tiles moved from context to query
    drop_stations: int = Field(1, ge=1)  # station: whole stations moved from context to query
    query_all: bool = False  # block/station: query all of M, not only the dropped part


class BackboneSpec(_Strict):
    """Network ``D_θ``: EDM2-style UNet (frames folded into channels) or FNO (Table 5).

    Fields a backbone does not take are ignored by it (``mults`` for the FNO, ``modes`` for the UNet).
    """

    name: Literal["unet", "fno"] = "unet"
    width: int = Field(32, ge=4)  # channels at the finest level (UNet) / lifted width (FNO)
    mults: tuple[int, ...] = (1, 2, 2)  # UNet: channel multiplier per level
    blocks_per_level: int = Field(2, ge=1)  # UNet: residual blocks per level
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # UNet
    modes: int = Field(12, ge=1)  # FNO: Fourier modes kept per direction
    layers: int = Field(4, ge=1)  # FNO: spectral layers
    padding_mode: Literal["zeros", "circular"] = "circular"  # circular for periodic domains
    channels_last: bool = True  # UNet: convolutions in channels-last layout (GPU, oneDNN)


class SamplerSpec(_Strict):
    """Inference (Sec. 3.3, App. E): which sampler imputes the test split."""

    kind: Literal["single", "multi", "direct", "best"] = (
        "single"  # best: single and multi, report the better
    )
    steps: int = Field(50, ge=1)  # multi: reverse steps from t = 1 to t_min (release: 200)
    weight: Literal["zero", "t", "t2"] = "t"  # multi: w(t) of the μ₀ blend (Table 7)


class DiffusionMethod(_Strict):
    """A diffusion method trained on incomplete data.

    Ours: a partition with ratios < 1 and a K-mask ensemble. MissDiff: both ratios 1.
    AmbientDiff: ``context_ratio = 1 − δ``, ``query_ratio = 1``, ``ensemble = 1``.
    """

    kind: Literal["diffusion"] = "diffusion"
    name: str
    partition: PartitionSpec = PartitionSpec()
    ensemble: int = Field(10, ge=1, le=256)  # K context masks at inference (Sec. 3.3)
    sampler: SamplerSpec = SamplerSpec()
    backbone: BackboneSpec | None = None  # None: the experiment's backbone
    allow_zero_exposure: bool = False  # run even if the audit finds never-queried dimensions


class ClassicalMethod(_Strict):
    """A classical imputation baseline (Sec. 4.1)."""

    kind: Literal["inpaint_ns", "telea", "temporal"]
    name: str


CLASSICAL_KINDS = ("inpaint_ns", "telea", "temporal")


def _method_tag(value: Any) -> str:
    kind = value.get("kind", "diffusion") if isinstance(value, dict) else value.kind
    return "classical" if kind in CLASSICAL_KINDS else str(kind)


MethodSpec = Annotated[
    Annotated[DiffusionMethod, Tag("diffusion")] | Annotated[ClassicalMethod, Tag("classical")],
    Discriminator(
        _method_tag,
        custom_error_type="method_kind",
        custom_error_message="kind must be one of 'diffusion', 'inpaint_ns', 'telea', 'temporal'",
    ),
]


class ScheduleSpec(_Strict):
    """VP diffusion schedule (METHOD.md)."""

    beta_min: float = Field(0.1, ge=0.0)
    beta_max: float = Field(20.0, gt=0.0)
    t_min: float = Field(1e-3, gt=0.0, lt=1.0)  # δ of single-step inference


class TrainingSpec(_Strict):
    """Optimisation (release: Adam 1e-3, betas (0.95, 0.999), batch 8)."""

    steps: int = Field(1000, ge=1)  # optimiser steps (global, every worker takes each one)
    batch_size: int = Field(8, ge=1)  # per worker
    lr: float = Field(1e-3, gt=0.0)
    betas: tuple[float, float] = (0.95, 0.999)
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    grad_clip: float | None = Field(1.0, gt=0.0)  # max gradient norm; null disables
    log_every: int = Field(50, ge=1)  # steps between reports (train loss; val loss)
    checkpoint_every: int = Field(500, ge=1)  # steps between checkpoints
    val_samples: int = Field(32, ge=1)  # validation samples for the val loss
    cache_mb: float = Field(256.0, gt=0.0)  # chunk cache of each worker's training split
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: autocast of the forward pass and loss
    compile: bool = False  # torch.compile the backbone (first steps pay the compilation)


class EvaluationSpec(_Strict):
    """Imputation of the test split."""

    max_samples: int | None = Field(None, ge=1)  # evaluate only the first N test samples
    val_samples: int | None = Field(None, ge=1)  # validation samples imputed (None: all)
    batch_size: int = Field(8, ge=1)  # samples per network call (× K context masks)
    figure: bool = True  # log truth / observed / imputed / error figures


class RaySpec(_Strict):
    """Ray scaling; the local default is a Ray started by the CLI, CPU only."""

    address: str | None = None  # None: $RAY_ADDRESS, else start a local Ray
    num_workers: int = Field(1, ge=1)  # Ray Train workers (DDP when > 1)
    use_gpu: bool = False
    cpus_per_worker: float | None = Field(None, gt=0.0)  # None: the cluster's CPUs / workers
    storage_path: str = "runs"  # Ray Train checkpoints (shared storage or a URI for multi-node)
    max_failures: int = Field(0, ge=-1)  # worker-group restarts (-1: unlimited)


class MlflowSpec(_Strict):
    """Tracking; the default store is sqlite:///mlflow.db in the working directory."""

    experiment: str | None = None  # None: the spec's name
    tracking_uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else the default


class SettingSpec(_Strict):
    """One data setting of a multi-setting experiment (a column of a paper table)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    overrides: dict[str, Any] = {}  # dotted key -> value, as with --set


class ExperimentSpec(_Strict):
    """A whole experiment: data, methods and how to run them."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0  # data seed (masks, PDE samples) and default run seed
    seeds: list[int] = []  # repeat every method with these training/sampling seeds (mean ± std)
    data: DataSpec = DataSpec()
    methods: list[MethodSpec] = Field(min_length=1)
    backbone: BackboneSpec = BackboneSpec()
    schedule: ScheduleSpec = ScheduleSpec()
    training: TrainingSpec = TrainingSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    ray: RaySpec = RaySpec()
    mlflow: MlflowSpec = MlflowSpec()
    settings: list[SettingSpec] = []  # data settings (table columns); each a set of overrides
    profile: str | None = None  # the applied entry of ``profiles`` (e.g. ``smoke``)
    profile_applied: bool = False  # set once the profile's overrides are in (never re-applied)
    profiles: dict[str, dict[str, Any]] = {}  # named overrides, applied at load time

    @field_validator("methods")
    @classmethod
    def _unique_names(cls, methods: list) -> list:
        names = [m.name for m in methods]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"method names must be unique; repeated: {dup}")
        return methods

    @model_validator(mode="after")
    def _profile_known(self) -> ExperimentSpec:
        if self.profile is not None and self.profile not in self.profiles:
            raise ValueError(
                f"profile {self.profile!r} is not defined; profiles: {sorted(self.profiles)}"
            )
        return self

    @model_validator(mode="after")
    def _partition_matches_masks(self) -> ExperimentSpec:
        observed = self.data.observation.kind
        for m in self.methods:
            kind = m.partition.kind if isinstance(m, DiffusionMethod) else "pixel"
            if kind in ("block", "station") and observed != kind:
                raise ValueError(
                    f"method {m.name!r}: {kind} partition needs {kind} observation masks"
                )
        return self

    # -- derived values ----------------------------------------------------------------------
    def backbone_of(self, method: DiffusionMethod) -> BackboneSpec:
        return method.backbone or self.backbone

    def variants(self) -> list[ExperimentSpec]:
        """One spec per data setting (the spec itself when it has none), named ``<name>-<setting>``."""
        if not self.settings:
            return [self]
        base = {k: v for k, v in self.to_dict().items() if k != "settings"}
        out = []
        for setting in self.settings:
            items = [
                f"{k}={yaml.safe_dump(v, default_flow_style=True).strip()}"
                for k, v in setting.overrides.items()
            ]
            raw = apply_overrides(base, items)
            raw["name"] = f"{self.name}-{setting.name}"
            raw["mlflow"] = {**raw.get("mlflow", {}), "experiment": self.experiment_name}
            out.append(parse_spec(raw, f"{self.name} setting {setting.name!r}"))
        return out

    def method(self, name: str) -> DiffusionMethod | ClassicalMethod:
        for m in self.methods:
            if m.name == name:
                return m
        raise KeyError(f"no method {name!r}; methods: {[m.name for m in self.methods]}")

    @property
    def run_seeds(self) -> list[int]:
        return list(self.seeds) or [self.seed]

    @property
    def setting(self) -> str:
        """The data setting a table column stands for, e.g. ``navier_stokes pixel 20%``."""
        o = self.data.observation
        mask = {
            "pixel": f"pixel {o.p:.0%}",
            "block": f"block {o.k}/{o.blocks**2}",
            "station": f"station {o.stations}×r{o.radius:g}",
        }[o.kind]
        return f"{self.data.source} {mask}"

    @property
    def store_url(self) -> str:
        return self.data.store.format(name=self.name)

    @property
    def experiment_name(self) -> str:
        return self.mlflow.experiment or self.name

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def digest(self, *parts: str) -> str:
        """Short stable hash of the parts of the resolved spec named (all when none)."""
        d = self.to_dict()
        chosen = {p: d[p] for p in parts} if parts else d
        return hashlib.sha256(json.dumps(chosen, sort_keys=True).encode()).hexdigest()[:10]


# -- loading, overrides and error messages --------------------------------------------------


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str] | None:
    """Field names of the sub-model at ``loc`` (for 'unknown key' messages)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if part in ("diffusion", "classical"):
            current = DiffusionMethod if part == "diffusion" else ClassicalMethod
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
        path = ".".join(str(p) for p in loc if p not in ("diffusion", "classical"))
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(ExperimentSpec, loc[:-1])
            lines.append(f"{path}: unknown key; allowed keys here: {', '.join(allowed or [])}")
        elif err["type"] == "method_kind":
            lines.append(f"{path}.kind: {err['msg']} (got {err['input'].get('kind')!r})")
        else:
            got = err.get("input")
            shown = f" (got {got!r})" if isinstance(got, str | int | float | bool) else ""
            lines.append(f"{path or '(top level)'}: {err['msg']}{shown}")
    return SpecError(f"invalid experiment spec {source}:\n  " + "\n  ".join(lines))


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
        raise SpecError(f"invalid experiment spec {source}: profile {name!r}: {exc}") from None


def parse_spec(raw: Any, source: str = "<dict>") -> ExperimentSpec:
    """Validate a raw spec mapping (after applying its selected profile)."""
    if not isinstance(raw, dict):
        raise SpecError(f"invalid experiment spec {source}: the top level must be a mapping")
    raw = _apply_profile(raw, source)
    try:
        return ExperimentSpec.model_validate(raw)
    except ValidationError as exc:
        raise _format(exc, source) from None


def load_spec(path: str | Path, overrides: list[str] | None = None) -> ExperimentSpec:
    """Read, override and validate a YAML spec."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"experiment spec {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"experiment spec {path} is not valid YAML: {exc}") from None
    if isinstance(raw, dict) and overrides:
        # --set may choose the profile; the profile goes in first, then --set wins over it
        raw = apply_overrides(_apply_profile(apply_overrides(raw, overrides), str(path)), overrides)
    return parse_spec(raw, str(path))


def dump_spec(spec: ExperimentSpec) -> str:
    return yaml.safe_dump(spec.to_dict(), sort_keys=False)
