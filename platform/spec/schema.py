"""The experiment spec's schema: every section typed, with the allowed values of each knob."""

from __future__ import annotations

import posixpath
from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    SerializationInfo,
    Tag,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)

from incdyn.datasets.generators import GENERATORS
from incdyn.datasets.holdout import HoldoutSpec
from incdyn.datasets.masks import MaskFamily
from incdyn.datasets.pde.advection import AdvectionConfig
from incdyn.datasets.pde.navier_stokes import NavierStokesConfig
from incdyn.datasets.pde.shallow_water import ShallowWaterConfig
from incdyn.datasets.source_config import SourceConfig
from incdyn.datasets.sources.era5 import ERA5Config
from incdyn.datasets.sources.navier_stokes_public import PublicNavierStokesConfig
from incdyn.datasets.sources.xarray_source import XarrayConfig
from incdyn.models.backbones.options import BackboneSpec, UNetSpec
from incdyn.models.partition import PartitionSpec
from incdyn.models.samplers.forward import MAX_NETWORK_POINTS
from incdyn.models.schedule import VPSchedule
from incdyn.platform.spec.base import Strict

# Sections whose model lives with the concept it configures (one definition each).
ObservationSpec = MaskFamily  # observation-mask family p(M) (Sec. 4.1)
ScheduleSpec = VPSchedule  # VP diffusion schedule

Ratio = Annotated[float, Field(gt=0.0, le=1.0)]


def _overrides() -> Any:
    """``params`` left out: no overrides (the preset as it is)."""
    return Field(default_factory=dict, validate_default=True)


class _Data(Strict):
    """Where the data come from and how they are observed; one subclass per ``source``, whose
    ``params`` are that source's config: the preset's values with the spec's ``params`` on top
    (a key the source does not take is refused with the allowed keys). The spec keeps only the
    keys it was given: its dump re-reads the same, and a setting that changes the preset or the
    source keeps their meaning."""

    source: str
    preset: str  # the generator's named configuration
    params: SourceConfig  # config overrides (data.params.KEY), over the preset's values
    store: str = "data/{name}.zarr"  # zarr store URL or path ({name} = experiment name)
    # per_seed: each run seed draws its own data set (data seed = run seed; its own store,
    # ``{seed}`` in ``store`` or ``-seed<N>`` added before the extension), so that the spread
    # over seeds includes the data; false: one data set from ``seed`` for every run seed
    per_seed: bool = False
    n_train: int = Field(256, ge=1)
    n_val: int = Field(32, ge=1)
    n_test: int = Field(64, ge=1)
    chunk: int = Field(32, ge=1)  # samples per zarr chunk and per generation task
    observation: ObservationSpec = ObservationSpec()
    test_observation: ObservationSpec | None = None  # val/test masks of another family (Table 8)

    @field_validator("params", mode="wrap")
    @classmethod
    def _over_the_preset(
        cls, given: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> SourceConfig:
        if isinstance(given, SourceConfig):
            given = given.model_dump(exclude_unset=True)
        preset = info.data.get("preset")  # None: the preset was refused (its own error)
        if preset is None or not isinstance(given, dict):
            return handler(given)
        config = handler(GENERATORS[cls.model_fields["source"].default].values(preset, given))
        return type(config).model_construct(set(given), **dict(config))  # given keys: the dump's

    @field_serializer("params")
    def _given_params(self, params: SourceConfig, info: SerializationInfo) -> dict[str, Any]:
        return params.model_dump(mode=info.mode, exclude_unset=True)


class NavierStokesData(_Data):
    source: Literal["navier_stokes"] = "navier_stokes"
    preset: Literal["paper", "quickstart"] = "quickstart"
    params: NavierStokesConfig = _overrides()


class ShallowWaterData(_Data):
    source: Literal["shallow_water"] = "shallow_water"
    preset: Literal["paper", "small"] = "small"
    params: ShallowWaterConfig = _overrides()


class AdvectionData(_Data):
    source: Literal["advection"] = "advection"
    preset: Literal["paper", "small"] = "small"
    params: AdvectionConfig = _overrides()


class PublicNavierStokesData(_Data):
    source: Literal["navier_stokes_public"] = "navier_stokes_public"
    preset: Literal["paper"] = "paper"
    params: PublicNavierStokesConfig = _overrides()


class ERA5Data(_Data):
    source: Literal["era5"] = "era5"
    preset: Literal["quickstart", "wb2_64x32", "arco_1h", "arco_6h"] = "quickstart"
    params: ERA5Config = _overrides()


class XarrayData(_Data):
    source: Literal["xarray"] = "xarray"
    preset: Literal["default"] = "default"  # one preset: the params say it all
    params: XarrayConfig = _overrides()


# source → its section (the tags of the ``data`` union)
DATA_SOURCES: dict[str, type[_Data]] = {
    "navier_stokes": NavierStokesData,
    "shallow_water": ShallowWaterData,
    "advection": AdvectionData,
    "navier_stokes_public": PublicNavierStokesData,
    "era5": ERA5Data,
    "xarray": XarrayData,
}


def _data_source(value: Any) -> str | None:
    """The tag of a data section: its ``source``, ``navier_stokes`` when left out."""
    if isinstance(value, dict):
        return value.get("source", "navier_stokes")
    return getattr(value, "source", None)


# data.source: a PDE generator, era5, or xarray (any zarr/netCDF file: params.url, ...)
DataSpec = Annotated[
    Annotated[NavierStokesData, Tag("navier_stokes")]
    | Annotated[ShallowWaterData, Tag("shallow_water")]
    | Annotated[AdvectionData, Tag("advection")]
    | Annotated[PublicNavierStokesData, Tag("navier_stokes_public")]
    | Annotated[ERA5Data, Tag("era5")]
    | Annotated[XarrayData, Tag("xarray")],
    Discriminator(
        _data_source,
        custom_error_type="data_source",
        custom_error_message="source must be one of " + ", ".join(map(repr, DATA_SOURCES)),
    ),
]


class SamplerSpec(Strict):
    """Inference (Sec. 3.3, App. E): which sampler imputes the test split."""

    kind: Literal["single", "multi", "direct", "best"] = (
        "single"  # best: single and multi, report the better
    )
    steps: int = Field(50, ge=1)  # multi: reverse steps from t = 1 to t_min (release: 200)
    weight: Literal["zero", "t", "t2"] = "t"  # multi: w(t) of the μ₀ blend (Table 7)


class DiffusionMethod(Strict):
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
    # complete: the complete-data oracle, a reference no user of incomplete data can have: the
    # store keeps the complete training fields and training queries every point of them (the
    # context is drawn from the observation mask as for ``observed``); inference is unchanged
    training_data: Literal["observed", "complete"] = "observed"


class ClassicalMethod(Strict):
    """A classical imputation baseline (Sec. 4.1).

    ``scope``: ``window`` imputes each val/test sample on its own (its ``T`` frames); ``record``
    (DINEOF only) reconstructs, per tile, the whole record up to the test frames (every train,
    val and test frame, each with its own mask) by one DINEOF, as DINEOF's users run it
    (Beckers & Rixen 2003), and scores its val and test rows. ``max_modes`` (the most EOF
    modes its cross-validation tries) and ``tol`` (the relative change of the gaps that ends
    each reconstruction, for the mode search and the final one) bound DINEOF's cost on a
    record, as DINEOF's own configuration does; unset, the search runs until the error stops
    falling and the tolerances are DINEOF's defaults here. Defaults are left out of the spec's
    dump, so that specs written before these keys re-read and dump the same.
    """

    kind: Literal["inpaint_ns", "telea", "temporal", "dineof"]
    name: str
    scope: Literal["window", "record"] = "window"
    max_modes: int | None = Field(None, ge=1)
    tol: float | None = Field(None, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _record_is_dineof(self) -> ClassicalMethod:
        if self.scope == "record" and self.kind != "dineof":
            raise ValueError(
                f"scope: record is for kind: dineof only (method {self.name!r} is kind: "
                f"{self.kind}); remove scope or set it to window"
            )
        if (self.max_modes is not None or self.tol is not None) and self.scope != "record":
            raise ValueError(
                f"max_modes and tol are options of kind: dineof with scope: record (method "
                f"{self.name!r}); remove them or set scope: record"
            )
        return self

    @model_serializer(mode="wrap")
    def _without_default_scope(self, handler: Any) -> dict[str, Any]:
        out = handler(self)
        if out.get("scope") == "window":
            del out["scope"]
        for key in ("max_modes", "tol"):
            if out.get(key) is None:
                out.pop(key, None)
        return out


CLASSICAL_KINDS = ("inpaint_ns", "telea", "temporal", "dineof")


class DincaeMethod(Strict):
    """A DINCAE-style learned baseline (Barth et al. 2020, 2022): a U-Net fed the gappy field
    and its mask, trained on the gappy data (gaps of another sample transplanted onto its input)
    with a Gaussian likelihood, so that it returns a mean and an error variance per point.

    It trains with the experiment's ``training`` section and, unless ``backbone`` says
    otherwise, the experiment's UNet backbone: the same budget as the diffusion methods.
    """

    kind: Literal["dincae"]
    name: str
    backbone: UNetSpec | None = None  # None: the experiment's backbone (which must be a UNet)


def _method_tag(value: Any) -> str:
    kind = value.get("kind", "diffusion") if isinstance(value, dict) else value.kind
    return "classical" if kind in CLASSICAL_KINDS else str(kind)


MethodSpec = Annotated[
    Annotated[DiffusionMethod, Tag("diffusion")]
    | Annotated[ClassicalMethod, Tag("classical")]
    | Annotated[DincaeMethod, Tag("dincae")],
    Discriminator(
        _method_tag,
        custom_error_type="method_kind",
        custom_error_message=(
            "kind must be one of 'diffusion', 'dincae', 'inpaint_ns', 'telea', 'temporal', 'dineof'"
        ),
    ),
]


class TrainingSpec(Strict):
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
    # at each checkpoint, impute val_samples validation samples with the method's single-step
    # ensemble: ckpt_val_mse (truth) / ckpt_val_heldout_mse curves, time to accuracy
    val_imputation: bool = False


class VerificationSpec(Strict):
    """Ensemble verification of a diffusion method (spread–skill, CRPS, rank histogram,
    coverage), the error against K (Theorem 2) and the split-conformal calibration."""

    enabled: bool = True  # run the verification pass after the test imputation
    ks: list[Annotated[int, Field(ge=1, le=256)]] = Field(
        [1, 2, 5, 10, 20, 50], min_length=1
    )  # ensemble sizes of the error-vs-K curve (one pass with max(ks) members, nested prefixes)
    draws: int = Field(4, ge=2, le=64)  # multi-step: independent draws as ensemble members
    draw_samples: int | None = Field(16, ge=1)  # test samples of the single-vs-multi comparison
    seed_offset: int = 101  # the pass's generator seed is spec.seed + this (apart from the test's)


class EvaluationSpec(Strict):
    """Imputation of the test split."""

    max_samples: int | None = Field(None, ge=1)  # evaluate only the first N test samples
    val_samples: int | None = Field(None, ge=1)  # validation samples imputed (None: all)
    batch_size: int = Field(8, ge=1)  # samples per network call (× K context masks)
    max_network_batch: int = Field(256, ge=1)  # most rows (samples × K) in one forward pass
    # most grid points (rows × H × W) in one forward pass (at least one row): large grids run
    # in smaller forwards, whose activations stay in cache
    max_network_points: int = Field(MAX_NETWORK_POINTS, ge=1)
    figure: bool = True  # log truth / observed / imputed / error figures
    verification: VerificationSpec = VerificationSpec()  # calibration and error against K
    # observed val/test points withheld from the model and scored (*_heldout_mse): every choice
    # (sweep's best, sampler, claims' select) is made on them; null: none (choices on val_mse)
    holdout: HoldoutSpec | None = HoldoutSpec()
    select_on: Literal["heldout", "truth"] | None = None  # None: heldout when holdout is set

    @model_validator(mode="after")
    def _heldout_needs_holdout(self) -> EvaluationSpec:
        if self.select_on == "heldout" and self.holdout is None:
            raise ValueError(
                "select_on: heldout needs evaluation.holdout (e.g. holdout: {fraction: 0.1}); "
                "or select_on: truth to choose on the validation truth"
            )
        return self

    @property
    def criterion(self) -> str:
        """The metric every choice is made by: ``val_heldout_mse`` (held-out observed points,
        no truth needed) or ``val_mse`` (validation truth, only when asked for or when there
        are no held-out points)."""
        if self.select_on == "truth" or (self.select_on is None and self.holdout is None):
            return "val_mse"
        return "val_heldout_mse"


class RaySpec(Strict):
    """Ray scaling; the local default is a Ray started by the CLI, CPU only."""

    address: str | None = None  # None: $RAY_ADDRESS, else start a local Ray
    num_workers: int = Field(1, ge=1)  # Ray Train workers (DDP when > 1)
    use_gpu: bool = False
    cpus_per_worker: float | None = Field(None, gt=0.0)  # None: the cluster's CPUs / workers
    storage_path: str = "runs"  # Ray Train checkpoints (shared storage or a URI for multi-node)
    max_failures: int = Field(0, ge=-1)  # worker-group restarts (-1: unlimited)
    # `incdyn run`: a data setting's diffusion trainings (methods x seeds) in one worker group,
    # one after the other, so that they pay Ray Train's start once (false: a fit each)
    shared_worker_group: bool = True


class MlflowSpec(Strict):
    """Tracking; the default store is sqlite:///mlflow.db in the working directory."""

    experiment: str | None = None  # None: the spec's name
    tracking_uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else the default


class SettingSpec(Strict):
    """One data setting of a multi-setting experiment (a column of a paper table)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    overrides: dict[str, Any] = {}  # dotted key -> value, as with --set


class ExperimentSpec(Strict):
    """A whole experiment: data, methods and how to run them."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0  # data seed (masks, PDE samples) and default run seed
    seeds: list[int] = []  # repeat every method with these training/sampling seeds (mean ± std)
    data: DataSpec = NavierStokesData()
    methods: list[MethodSpec] = Field(min_length=1)
    backbone: BackboneSpec = UNetSpec()
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
    def _real_gaps_need_holdout(self) -> ExperimentSpec:
        real = isinstance(self.data, XarrayData) and self.data.params.gaps == "real"
        if real and (self.evaluation.holdout is None or self.evaluation.select_on == "truth"):
            raise ValueError(
                "data.params.gaps: real data hold no truth: set evaluation.holdout "
                "(e.g. {fraction: 0.1}) and do not set evaluation.select_on: truth"
            )
        return self

    @model_validator(mode="after")
    def _partition_matches_masks(self) -> ExperimentSpec:
        observed = self.data.observation.kind
        for m in self.methods:
            kind = m.partition.kind if isinstance(m, DiffusionMethod) else "pixel"
            if kind in ("block", "station", "cloud") and observed != kind:
                raise ValueError(
                    f"method {m.name!r}: {kind} partition needs {kind} observation masks"
                )
        return self

    @model_validator(mode="after")
    def _dincae_needs_unet(self) -> ExperimentSpec:
        for i, m in enumerate(self.methods):
            if isinstance(m, DincaeMethod) and self.backbone_of(m).name != "unet":
                raise ValueError(
                    f"method {m.name!r} (kind dincae) needs a UNet backbone, the experiment's "
                    f"is {self.backbone.name!r}: set methods[{i}].backbone (e.g. {{name: unet}})"
                )
        return self

    # -- derived values ----------------------------------------------------------------------
    def backbone_of(self, method: DiffusionMethod | DincaeMethod) -> BackboneSpec:
        return method.backbone or self.backbone

    def method(self, name: str) -> DiffusionMethod | ClassicalMethod | DincaeMethod:
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
        if isinstance(self.data, XarrayData) and self.data.params.gaps == "real":
            return "xarray real gaps"  # the file's own gaps are the masks
        mask = {
            "pixel": f"pixel {o.p:.0%}",
            "block": f"block {o.k}/{o.blocks**2}",
            "station": f"station {o.stations}×r{o.radius:g}",
            "cloud": f"cloud {o.p:.0%}×s{o.scale:g}",
        }[o.kind]
        return f"{self.data.source} {mask}"

    @property
    def store_url(self) -> str:
        """The store of this spec's data set; with ``data.per_seed`` the one of ``seed``."""
        template = self.data.store
        if self.data.per_seed and "{seed}" not in template:
            stem, ext = posixpath.splitext(template)
            template = f"{stem}-seed{{seed}}{ext}"
        return template.format(name=self.name, seed=self.seed)

    @property
    def experiment_name(self) -> str:
        return self.mlflow.experiment or self.name

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
