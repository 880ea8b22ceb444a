"""The pydantic models of a scenario file: one model per section, all strict and closed.

Every model forbids unknown keys and converts nothing silently: ``"3"`` is not an integer,
``2.5`` and ``true`` are not integers, an integer is accepted where a number is expected (and
stored as a float), and no number may be infinite or NaN. Each field carries the one-line
description of what it allows (``json_schema_extra["allowed"]``), which the error translator of
:mod:`semcom.scenario.problems` puts into its messages.

Cross-field rules that need nothing but the section itself (sweep values, ``metrics``,
``stop.max_draws``) are validators here; they fail with a :class:`PydanticCustomError` of type
``scenario_problems`` whose context holds finished problem lines. Rules that need the code's
registries, data or hardware are in :mod:`semcom.scenario.checks`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from channels.names import MODULATION_NAMES
from optim.problem import DEFAULT_MODULATIONS
from semcom.data import DATASETS
from semcom.importance import IMPORTANCE
from semcom.models import MODELS
from semcom.registry import ALLOCATION
from semcom.scenario.text import invalid, unknown_key
from semcom.schemes import MODEL_VARIANTS, SCHEMES, UNIFORM_IMPORTANCE_BASELINES

SWEEP_AXES = ("channel", "snr_db", "eta", "n_subchannels", "rician_k", "bits_per_scalar", "seed")
"""Condition fields a ``sweep`` may vary (each overrides its base field)."""

CONDITION_COLUMNS: tuple[str, ...] = SWEEP_AXES
"""The condition columns of ``results.csv``, in order (docs/scenarios.md): the sweep axes."""

METRICS = ("psnr", "ssim", "mse", "ber", "accuracy")
STOP_METRICS = {"psnr_db": "psnr", "ssim": "ssim", "mse": "mse"}
"""``stop.metric`` -> the ``metrics`` entry that computes it."""

MAX_SEED = 2**63 - 1
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
NAME_RULE = "letters, digits, '_', '.' and '-', starting with a letter or digit"
DEFAULT_SCHEMES = ("isfr-uep", *UNIFORM_IMPORTANCE_BASELINES)
PROBLEMS = "scenario_problems"
"""Error type of a validator failure whose ``ctx["problems"]`` holds finished problem lines."""

# discriminator tags of a scheme entry (dropped from error paths)
SCHEME_NAME_TAG = "scheme-name"
SCHEME_MAPPING_TAG = "scheme-mapping"


def _field(default: Any = ..., allowed: str = "", **constraints: Any) -> Any:
    """A pydantic ``Field`` that records the ``allowed`` text of its error messages."""
    return Field(default, json_schema_extra={"allowed": allowed}, **constraints)


def _factory(factory: Any, allowed: str) -> Any:
    return Field(default_factory=factory, json_schema_extra={"allowed": allowed})


def problems_error(lines: list[str]) -> PydanticCustomError:
    """A validation error carrying finished problem lines (see :data:`PROBLEMS`)."""
    return PydanticCustomError(
        PROBLEMS, "{summary}", {"summary": "; ".join(lines), "problems": lines}
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


OPTIONS = "a mapping of option names to values"
PosInt = Annotated[int, Field(ge=1)]
NonNegative = Annotated[float, Field(ge=0)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
BitsPerScalar = Annotated[int, Field(ge=1, le=16)]
ChannelModel = Literal["awgn", "rayleigh", "rician"]


class DataSection(_Strict):
    """``data``: which images; evaluation and calibration images come from the test split."""

    dataset: str = _field("patches", ", ".join(DATASETS))
    root: str | None = _field(None, "null or a local folder (cifar10, mnist, folder)")
    options: dict[str, Any] = _factory(dict, OPTIONS + " (the data set's loader options)")
    eval_images: PosInt = _field(64, "an integer >= 1")
    calibration_images: Annotated[int, Field(ge=8)] | None = _field(
        None, "null (the rest of the test split) or an integer >= 8"
    )


class ModelSection(_Strict):
    """``model``: the semantic auto-encoder (:func:`semcom.models.build_model`)."""

    name: str = _field("cnn", ", ".join(MODELS))
    n_features: Annotated[int, Field(ge=1, le=4096)] = _field(16, "an integer in 1..4096")
    options: dict[str, Any] = _factory(dict, OPTIONS + " (the architecture's options)")


class TrainingSection(_Strict):
    """``training``: the trainer's settings (:class:`semcom.train.TrainConfig`)."""

    epochs: PosInt = _field(15, "an integer >= 1")
    batch_size: PosInt = _field(64, "an integer >= 1")
    lr: Annotated[float, Field(gt=0)] = _field(1e-3, "a finite number > 0")
    lr_min: NonNegative = _field(1e-5, "a finite number >= 0 and <= training.lr")
    weight_decay: Annotated[float, Field(ge=0, le=1)] = _field(0.0, "a number in [0, 1]")
    classifier_weight: NonNegative = _field(0.1, "a finite number >= 0")
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = _field(0.1, "a number in [0, 1)")
    patience: PosInt | None = _field(10, "null (no early stopping) or an integer >= 1")
    min_delta: NonNegative = _field(0.0, "a finite number >= 0")
    amp: bool = _field(True, "true or false")
    isfr: dict[str, Any] = _factory(dict, OPTIONS + " (semcom.isfr.training_channel)")
    conventional: dict[str, Any] = _factory(dict, OPTIONS + " (semcom.isfr.training_channel)")
    checkpoint_dir: str | None = _field(
        "results/checkpoints", "null (<output dir>/checkpoints) or a folder path"
    )


class ImportanceSection(_Strict):
    """``importance``: the estimator of the feature weights (:mod:`semcom.importance`)."""

    method: str = _field("masking", ", ".join(IMPORTANCE.names()))
    options: dict[str, Any] = _factory(dict, OPTIONS + " (the estimator's options)")


class ChannelSection(_Strict):
    """``channel``: the base condition of the physical link (docs/conventions.md)."""

    model: ChannelModel = _field("rayleigh", "awgn, rayleigh, rician")
    rician_k: NonNegative = _field(3.0, "a finite number >= 0 (linear K-factor)")
    n_subchannels: PosInt | None = _field(None, "null (= model.n_features) or an integer >= 1")
    snr_db: float = _field(0.0, "a finite number (dB)")
    bits_per_scalar: BitsPerScalar = _field(8, "an integer in 1..16")
    code: Literal["binary", "gray"] = _field("binary", "binary, gray")


class AllocationSection(_Strict):
    """``allocation``: budgets and options of the resource allocation (:mod:`optim`)."""

    eta: NonNegative = _field(0.5, "a finite number >= 0")
    modulations: list[str] = _field(
        list(DEFAULT_MODULATIONS),
        f"a non-empty list of distinct modulations ({', '.join(MODULATION_NAMES)})",
        min_length=1,
    )
    ber_model: Literal["exact", "bound"] = _field("exact", "exact, bound")
    options: dict[str, dict[str, Any]] = _factory(
        dict, f"a mapping of allocation methods ({', '.join(ALLOCATION.names())}) to options"
    )


class SchemeImportance(_Strict):
    """A scheme's own importance estimator (instead of the scenario's ``importance``)."""

    method: str = _field(allowed="an importance estimator (" + ", ".join(IMPORTANCE.names()) + ")")
    options: dict[str, Any] = _factory(dict, OPTIONS + " (the estimator's options)")


KEEP_RULE = "an integer in 1..model.n_features or a fraction in (0, 1]"


class SchemeSelection(_Strict):
    """A scheme's selection step: a reducing estimator keeps ``keep`` features per image."""

    method: str = _field(allowed="an importance estimator with reduce")
    keep: Any = _field(allowed=KEEP_RULE)
    options: dict[str, Any] = _factory(dict, OPTIONS + " (the estimator's options)")

    @field_validator("keep")
    @classmethod
    def _keep(cls, keep: Any) -> int | float:
        # one rule, one line: an int (not bool) >= 1 or a finite float in (0, 1]; the upper
        # bound model.n_features is checked with the model (semcom.scenario.checks)
        whole = isinstance(keep, int) and not isinstance(keep, bool) and keep >= 1
        fraction = isinstance(keep, float) and 0.0 < keep <= 1.0
        if not (whole or fraction):
            raise PydanticCustomError("keep", "invalid keep")
        return keep


class CustomScheme(_Strict):
    """A scheme defined in the file: model variant, weights kind and allocation method, and
    optionally its own importance estimator and selection step."""

    name: str = _field(allowed=f"a scheme name of {NAME_RULE}", pattern=NAME_PATTERN)
    model: str = _field(allowed="a model variant (" + ", ".join(MODEL_VARIANTS) + ")")
    weights: Literal["importance", "uniform"] = _field(allowed="importance, uniform")
    method: str = _field(allowed="an allocation method (" + ", ".join(ALLOCATION.names()) + ")")
    options: dict[str, Any] = _factory(dict, OPTIONS + " (passed to optim.solve)")
    importance: SchemeImportance | None = _field(
        None, "null (the scenario's importance) or a mapping {method, options}"
    )
    selection: SchemeSelection | None = _field(
        None, "null (no selection step) or a mapping {method, keep, options}"
    )


def _scheme_tag(value: Any) -> str | None:
    if isinstance(value, str):
        return SCHEME_NAME_TAG
    if isinstance(value, dict | CustomScheme):
        return SCHEME_MAPPING_TAG
    return None


SchemeEntry = Annotated[
    Annotated[str, Tag(SCHEME_NAME_TAG)] | Annotated[CustomScheme, Tag(SCHEME_MAPPING_TAG)],
    Discriminator(_scheme_tag),
]


class StopSection(_Strict):
    """``stop``: when a sweep point has enough channel draws."""

    metric: Literal["psnr_db", "ssim", "mse"] = _field("psnr_db", "psnr_db, ssim, mse")
    half_width: Annotated[float, Field(gt=0)] = _field(0.25, "a finite number > 0")
    confidence: Annotated[float, Field(gt=0, lt=1)] = _field(0.95, "a number in (0, 1)")
    min_draws: PosInt = _field(2, "an integer >= 1")
    max_draws: PosInt = _field(8, "an integer >= stop.min_draws")

    @model_validator(mode="after")
    def _draws(self) -> StopSection:
        if self.max_draws < self.min_draws:
            allowed = f"an integer >= stop.min_draws ({self.min_draws})"
            raise problems_error([invalid("stop.max_draws", self.max_draws, allowed)])
        return self


class ExecutionSection(_Strict):
    """``execution``: where and how the sweep runs (does not change the results)."""

    executor: Literal["local", "ray"] = _field("local", "local, ray")
    workers: PosInt | None = _field(None, "null (= CPU cores) or an integer >= 1")
    threads: PosInt = _field(1, "an integer >= 1")
    device: Literal["auto", "cpu", "cuda"] = _field("cpu", "auto, cpu, cuda")
    seed: Seed = _field(0, f"an integer in 0..{MAX_SEED}")
    ray_address: str | None = _field(None, "null (a local Ray instance) or a Ray address")


class OutputSection(_Strict):
    """``output``: where the results go (does not change the results)."""

    dir: str | None = _field(None, "null (= results/<name>) or a folder path")
    plots: bool = _field(True, "true or false")
    parquet: bool = _field(True, "true or false")


# per sweep axis: the validator of one value and what it allows (the base field's rule,
# except that n_subchannels takes no null)
AXES: dict[str, tuple[TypeAdapter, str]] = {
    name: (TypeAdapter(kind, config=ConfigDict(strict=True, allow_inf_nan=False)), allowed)
    for name, kind, allowed in (
        ("channel", ChannelModel, "awgn, rayleigh, rician"),
        ("snr_db", float, "a finite number (dB)"),
        ("eta", NonNegative, "a finite number >= 0"),
        ("n_subchannels", PosInt, "an integer >= 1"),
        ("rician_k", NonNegative, "a finite number >= 0 (linear K-factor)"),
        ("bits_per_scalar", BitsPerScalar, "an integer in 1..16"),
        ("seed", Seed, f"an integer in 0..{MAX_SEED}"),
    )
}


def check_sweep(sweep: dict[str, Any]) -> tuple[dict[str, list[Any]], list[str]]:
    """Validate every axis and value of a ``sweep`` mapping; ``(normalised sweep, problems)``.

    Values are converted like their base field (an integer ``snr_db`` becomes a float), so
    ``0`` and ``0.0`` are the same value and count as a duplicate.
    """
    out: dict[str, list[Any]] = {}
    problems: list[str] = []
    for axis, values in sweep.items():
        path = f"sweep.{axis}"
        if axis not in AXES:
            problems.append(unknown_key(path, SWEEP_AXES))
            continue
        if not isinstance(values, list) or not values:
            problems.append(invalid(path, values, "a non-empty list of values"))
            continue
        adapter, allowed = AXES[axis]
        kept: list[Any] = []
        for i, value in enumerate(values):
            try:
                converted = adapter.validate_python(value)
            except ValidationError:
                problems.append(invalid(f"{path}[{i}]", value, allowed))
                continue
            if converted in kept:
                problems.append(invalid(f"{path}[{i}]", value, f"a value not already in {path}"))
            else:
                kept.append(converted)
        out[axis] = kept
    return out, problems


class ScenarioFields(_Strict):
    """Every section of a scenario file; :class:`semcom.scenario.Scenario` adds the methods."""

    name: str = _field(allowed=f"a name of {NAME_RULE}", pattern=NAME_PATTERN)
    description: str = _field("", "a string")
    data: DataSection = _factory(DataSection, "")
    model: ModelSection = _factory(ModelSection, "")
    training: TrainingSection = _factory(TrainingSection, "")
    importance: ImportanceSection = _factory(ImportanceSection, "")
    channel: ChannelSection = _factory(ChannelSection, "")
    allocation: AllocationSection = _factory(AllocationSection, "")
    schemes: list[SchemeEntry] = _field(
        list(DEFAULT_SCHEMES),
        "a non-empty list of scheme names ("
        + ", ".join(SCHEMES.names())
        + ") or mappings {name, model, weights, method, options}",
        min_length=1,
    )
    sweep: dict[str, Any] = _factory(
        dict, f"a mapping of axes ({', '.join(SWEEP_AXES)}) to lists of values"
    )
    metrics: list[Literal["psnr", "ssim", "mse", "ber", "accuracy"]] = _field(
        list(METRICS), f"a list of distinct metrics ({', '.join(METRICS)}) containing psnr"
    )
    stop: StopSection = _factory(StopSection, "")
    execution: ExecutionSection = _factory(ExecutionSection, "")
    output: OutputSection = _factory(OutputSection, "")

    @field_validator("sweep")
    @classmethod
    def _sweep(cls, sweep: dict[str, Any]) -> dict[str, list[Any]]:
        out, problems = check_sweep(sweep)
        if problems:
            raise problems_error(problems)
        return out

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, metrics: list[str]) -> list[str]:
        problems = [
            invalid(f"metrics[{i}]", m, "a metric not already in metrics")
            for i, m in enumerate(metrics)
            if m in metrics[:i]
        ]
        if "psnr" not in metrics:
            problems.append(invalid("metrics", metrics, "a list containing psnr"))
        if problems:
            raise problems_error(problems)
        return metrics


SECTIONS = {
    name: field.annotation
    for name, field in ScenarioFields.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
}
"""Top-level keys whose value is a section model, by name."""
