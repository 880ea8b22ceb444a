"""The pydantic models of a scenario file: one model per section, all strict and closed.

Every model forbids unknown keys and converts nothing silently: ``"3"`` is not an integer,
``2.5`` and ``true`` are not integers, an integer is accepted where a number is expected (and
stored as a float), and no number may be infinite or NaN. Each field carries the one-line
description of what it allows (``json_schema_extra["allowed"]``), which the error translator of
:mod:`semcom.scenario.problems` puts into its messages.

Every number has a finite range (the limits table of docs/scenarios.md): each bound is far
beyond any meaningful value, and keeps a typing slip (``epochs: 1e9``) from running for ever or
overflowing. Folder paths follow :mod:`semcom.scenario.paths`.

Cross-field rules that need nothing but the section itself (sweep values, ``metrics``,
``stop.max_draws``, the number of sweep points) are validators here; they fail with a
:class:`PydanticCustomError` of type ``scenario_problems`` whose context holds finished problem
lines. Rules that need the code's
registries, data or hardware are in :mod:`semcom.scenario.checks`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
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
from semcom.bitalloc import BIT_ALLOCATION
from semcom.compression import COMPRESSION
from semcom.data import DATASETS
from semcom.importance import IMPORTANCE
from semcom.limits import MAX_FEATURES, MAX_RICIAN_K, MAX_SUBCHANNELS, SNR_DB_LIMIT, snr_db_rule
from semcom.models import MODELS
from semcom.registry import ALLOCATION
from semcom.scenario.paths import path_problem, path_rule
from semcom.scenario.text import invalid, unknown_key
from semcom.schemes import MODEL_VARIANTS, SCHEMES, UNIFORM_IMPORTANCE_BASELINES
from semcom.training import TRAINING

SWEEP_AXES = ("channel", "snr_db", "eta", "n_subchannels", "rician_k", "bits_per_scalar", "seed")
"""Condition fields a ``sweep`` may vary (each overrides its base field)."""

CONDITION_COLUMNS: tuple[str, ...] = SWEEP_AXES
"""The condition columns of ``results.csv``, in order (docs/scenarios.md): the sweep axes."""

METRICS = ("psnr", "ssim", "mse", "ber", "accuracy", "ms_ssim")
DEFAULT_METRICS = ("psnr", "ssim", "mse", "ber", "accuracy")
"""The metrics a scenario computes when it names none (``ms_ssim`` is asked for by name)."""
STOP_METRICS = {"psnr_db": "psnr", "ssim": "ssim", "mse": "mse"}
"""``stop.metric`` -> the ``metrics`` entry that computes it."""

MAX_SEED = 2**63 - 1
MAX_NAME_LENGTH = 100
MAX_IMAGES = 100_000
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 65_536
MAX_LR = 10.0
MAX_LOSS_WEIGHT = 1000.0
MAX_ETA = 100.0
MAX_HALF_WIDTH = 1_000_000.0
MAX_DRAWS = 10_000
MAX_WORKERS = 1024
MAX_THREADS = 256
MAX_POINTS = 100_000
"""Most sweep points (conditions × schemes) of one scenario."""
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


def _path(value: str) -> str:
    if path_problem(value):
        raise ValueError("not a valid path")
    return value


OPTIONS = "a mapping of option names to values"
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
BitsPerScalar = Annotated[int, Field(ge=1, le=16)]
ChannelModel = Literal["awgn", "rayleigh", "rician"]
SnrDb = Annotated[float, Field(ge=-SNR_DB_LIMIT, le=SNR_DB_LIMIT)]
Eta = Annotated[float, Field(ge=0, le=MAX_ETA)]
Subchannels = Annotated[int, Field(ge=1, le=MAX_SUBCHANNELS)]
RicianK = Annotated[float, Field(ge=0, le=MAX_RICIAN_K)]
FolderPath = Annotated[str, AfterValidator(_path)]
ETA_RULE = f"a number in [0, {MAX_ETA:g}]"
SUBCHANNELS_RULE = f"an integer in 1..{MAX_SUBCHANNELS}"
RICIAN_K_RULE = f"a number in [0, {MAX_RICIAN_K:.0f}] (linear K-factor)"


class DataSection(_Strict):
    """``data``: which images; evaluation and calibration images come from the test split."""

    dataset: str = _field("patches", ", ".join(DATASETS))
    root: FolderPath | None = _field(
        None, f"null or a local folder (cifar10, mnist, folder): {path_rule()}"
    )
    options: dict[str, Any] = _factory(dict, OPTIONS + " (the data set's loader options)")
    eval_images: Annotated[int, Field(ge=1, le=MAX_IMAGES)] = _field(
        64, f"an integer in 1..{MAX_IMAGES}"
    )
    calibration_images: Annotated[int, Field(ge=8, le=MAX_IMAGES)] | None = _field(
        None, f"null (the rest of the test split) or an integer in 8..{MAX_IMAGES}"
    )


class MethodChoice(_Strict):
    """A registered method chosen by name, with its options."""

    method: str = _field(allowed="a registered method name")
    options: dict[str, Any] = _factory(dict, OPTIONS + " (the method's options)")


class ModelSection(_Strict):
    """``model``: the semantic auto-encoder (:func:`semcom.models.build_model`)."""

    name: str = _field("cnn", ", ".join(MODELS))
    n_features: Annotated[int, Field(ge=1, le=MAX_FEATURES)] = _field(
        16, f"an integer in 1..{MAX_FEATURES}"
    )
    options: dict[str, Any] = _factory(dict, OPTIONS + " (the architecture's options)")
    routing: MethodChoice | None = _field(
        None, "null (one codec) or a mapping {method, options} of a routing method"
    )


class TrainingSection(_Strict):
    """``training``: the trainer's settings (:class:`semcom.train.TrainConfig`)."""

    epochs: Annotated[int, Field(ge=1, le=MAX_EPOCHS)] = _field(
        15, f"an integer in 1..{MAX_EPOCHS}"
    )
    batch_size: Annotated[int, Field(ge=1, le=MAX_BATCH_SIZE)] = _field(
        64, f"an integer in 1..{MAX_BATCH_SIZE}"
    )
    lr: Annotated[float, Field(gt=0, le=MAX_LR)] = _field(1e-3, f"a number in (0, {MAX_LR:g}]")
    lr_min: Annotated[float, Field(ge=0, le=MAX_LR)] = _field(
        1e-5, "a number >= 0 and <= training.lr"
    )
    weight_decay: Annotated[float, Field(ge=0, le=1)] = _field(0.0, "a number in [0, 1]")
    classifier_weight: Annotated[float, Field(ge=0, le=MAX_LOSS_WEIGHT)] = _field(
        0.1, f"a number in [0, {MAX_LOSS_WEIGHT:g}]"
    )
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = _field(0.1, "a number in [0, 1)")
    patience: Annotated[int, Field(ge=1, le=MAX_EPOCHS)] | None = _field(
        10, f"null (no early stopping) or an integer in 1..{MAX_EPOCHS}"
    )
    min_delta: Annotated[float, Field(ge=0, le=MAX_LOSS_WEIGHT)] = _field(
        0.0, f"a number in [0, {MAX_LOSS_WEIGHT:g}]"
    )
    amp: bool = _field(True, "true or false")
    method: str | None = _field(
        None, "null (plain training) or a training method (" + ", ".join(TRAINING.names()) + ")"
    )
    method_options: dict[str, Any] = _factory(dict, OPTIONS + " (the training method's options)")
    channel: dict[str, Any] = _factory(
        dict, OPTIONS + " (channel-state training: fading, snr_db, n_subchannels, eta, ...)"
    )
    isfr: dict[str, Any] = _factory(dict, OPTIONS + " (semcom.isfr.training_channel)")
    conventional: dict[str, Any] = _factory(dict, OPTIONS + " (semcom.isfr.training_channel)")
    checkpoint_dir: FolderPath | None = _field(
        "results/checkpoints", f"null (<output dir>/checkpoints) or a folder path: {path_rule()}"
    )


class ImportanceSection(_Strict):
    """``importance``: the estimator of the feature weights (:mod:`semcom.importance`)."""

    method: str = _field("masking", ", ".join(IMPORTANCE.names()))
    options: dict[str, Any] = _factory(dict, OPTIONS + " (the estimator's options)")


class ChannelSection(_Strict):
    """``channel``: the base condition of the physical link (docs/conventions.md)."""

    model: ChannelModel = _field("rayleigh", "awgn, rayleigh, rician")
    rician_k: RicianK = _field(3.0, RICIAN_K_RULE)
    n_subchannels: Subchannels | None = _field(
        None, f"null (= model.n_features) or {SUBCHANNELS_RULE}"
    )
    snr_db: SnrDb = _field(0.0, snr_db_rule())
    bits_per_scalar: BitsPerScalar = _field(8, "an integer in 1..16")
    code: Literal["binary", "gray"] = _field("binary", "binary, gray")


class AllocationSection(_Strict):
    """``allocation``: budgets and options of the resource allocation (:mod:`optim`)."""

    eta: Eta = _field(0.5, ETA_RULE)
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


class SchemeCompression(_Strict):
    """A scheme's compression step: the trained codec is compressed before evaluation."""

    method: str = _field(allowed="a compression method (" + ", ".join(COMPRESSION.names()) + ")")
    options: dict[str, Any] = _factory(dict, OPTIONS + " (the compression method's options)")


class SchemeBits(_Strict):
    """A scheme's quantiser bits per feature: a bit allocator (:mod:`semcom.bitalloc`) turns the
    scheme's importance weights into ``Q[N]`` with mean ``average_bits``, each in
    ``q_min..q_max``; the budget rules are checked with the model (:mod:`semcom.scenario.checks`).
    """

    method: str = _field(allowed="a bit allocator (" + ", ".join(BIT_ALLOCATION.names()) + ")")
    average_bits: Annotated[float, Field(ge=1, le=16)] = _field(
        allowed="a number in [bits.q_min, bits.q_max] whose product with model.n_features is whole"
    )
    q_min: BitsPerScalar = _field(1, "an integer in 1..16")
    q_max: BitsPerScalar = _field(16, "an integer in bits.q_min..16")
    options: dict[str, Any] = _factory(dict, OPTIONS + " (the bit allocator's options)")


class VariantSection(_Strict):
    """A model variant defined in the file (``variants.<name>``): a built-in variant's training
    channel, plus a training method, routing method, adapter, channel-state training and a
    parent variant whose trained weights it starts from. Unset fields take the scenario's
    ``training`` and ``model`` sections."""

    base: str = _field("isfr", "a built-in model variant (" + ", ".join(MODEL_VARIANTS) + ")")
    method: str | None = _field(
        None, "null (training.method) or a training method (" + ", ".join(TRAINING.names()) + ")"
    )
    method_options: dict[str, Any] | None = _field(
        None, "null (training.method_options) or " + OPTIONS
    )
    channel: dict[str, Any] | None = _field(None, "null (training.channel) or " + OPTIONS)
    routing: MethodChoice | None = _field(
        None, "null (model.routing) or a mapping {method, options} of a routing method"
    )
    adapter: MethodChoice | None = _field(
        None, "null (no adapter) or a mapping {method, options} of an adapter (with init_from)"
    )
    init_from: str | None = _field(
        None, "null (trained from scratch) or the name of another variant to start from"
    )
    epochs: Annotated[int, Field(ge=1, le=MAX_EPOCHS)] | None = _field(
        None, f"null (training.epochs) or an integer in 1..{MAX_EPOCHS}"
    )
    lr: Annotated[float, Field(gt=0, le=MAX_LR)] | None = _field(
        None, f"null (training.lr) or a number in (0, {MAX_LR:g}]"
    )


SEPARATE_IMAGE_CODECS = ("jpeg2000", "webp", "avif", "hevc")
"""The image codecs of a separate scheme (:data:`semcom.separate.CODECS`)."""
SEPARATE_CODECS = (*SEPARATE_IMAGE_CODECS, "capacity")
"""A separate scheme's codecs (the image codecs and the capacity bound)."""
DEFAULT_CAPACITY_CODECS = SEPARATE_IMAGE_CODECS[:3]
"""The capacity bound's default codecs: those Pillow encodes itself (``hevc`` is optional)."""
SEPARATE_RATES = (1 / 3, 1 / 2, 2 / 3, 5 / 6)
"""Default LDPC code rates of a separate scheme's pair search (:mod:`semcom.separate.task`)."""
SEPARATE_RATE_RANGE = (0.2, 0.95)
"""5G NR LDPC code rates accepted (:data:`semcom.separate.ldpc.RATE_MIN`, ``RATE_MAX``)."""
SEPARATE_MODULATIONS = ("qpsk", "16qam", "64qam")
"""Default modulations of a separate scheme's pair search."""
SEPARATE_MODULATION_SET = ("qpsk", "16qam", "64qam", "256qam")
"""Modulations a separate scheme may use (:data:`semcom.separate.link.DIGITAL_MODULATIONS`)."""
RATE_RULE = (
    f"a non-empty list of distinct code rates in [{SEPARATE_RATE_RANGE[0]}, "
    f"{SEPARATE_RATE_RANGE[1]}]"
)
SeparateModulation = Literal["qpsk", "16qam", "64qam", "256qam"]
SeparateCodec = Literal["jpeg2000", "webp", "avif", "hevc"]


def _distinct(values: list[Any]) -> list[Any]:
    if len(set(values)) != len(values):
        raise PydanticCustomError("distinct", "repeated values")
    return values


class SchemeSeparate(_Strict):
    """A separate scheme's codec and options (:mod:`semcom.separate`): the image codec (or the
    capacity bound), the (code rate, modulation) pairs searched on the calibration images, the
    capacity bound's power rule and codecs, and the allocation method of the semantic link
    whose fading stream the scheme shares (:meth:`semcom.link_task.LinkPointTask.fading_point`).
    """

    codec: Literal["jpeg2000", "webp", "avif", "hevc", "capacity"] = _field(
        allowed=", ".join(SEPARATE_CODECS)
    )
    rates: list[Annotated[float, Field(ge=SEPARATE_RATE_RANGE[0], le=SEPARATE_RATE_RANGE[1])]] = (
        _field(list(SEPARATE_RATES), RATE_RULE, min_length=1)
    )
    modulations: list[SeparateModulation] = _field(
        list(SEPARATE_MODULATIONS),
        f"a non-empty list of distinct modulations ({', '.join(SEPARATE_MODULATION_SET)})",
        min_length=1,
    )
    power: Literal["waterfilling", "equal"] = _field("waterfilling", "waterfilling, equal")
    capacity_codecs: list[SeparateCodec] = _field(
        list(DEFAULT_CAPACITY_CODECS),
        f"a non-empty list of distinct codecs ({', '.join(SEPARATE_IMAGE_CODECS)})",
        min_length=1,
    )
    calibration_images: Annotated[int, Field(ge=1, le=MAX_IMAGES)] = _field(
        4, f"an integer in 1..{MAX_IMAGES} (at most data.calibration_images are used)"
    )
    calibration_draws: Annotated[int, Field(ge=1, le=MAX_DRAWS)] = _field(
        2, f"an integer in 1..{MAX_DRAWS}"
    )
    num_iter: Annotated[int, Field(ge=1, le=1000)] = _field(20, "an integer in 1..1000")
    fading: str = _field(
        "hierarchical",
        "an allocation method (" + ", ".join(ALLOCATION.names()) + ") whose semantic link's "
        "fading the scheme shares",
    )

    @field_validator("rates", "modulations", "capacity_codecs")
    @classmethod
    def _no_repeats(cls, values: list[Any]) -> list[Any]:
        return _distinct(values)

    @field_validator("fading")
    @classmethod
    def _fading(cls, method: str) -> str:
        if method not in ALLOCATION.names():
            raise PydanticCustomError("fading", "unknown allocation method")
        return method


class CustomScheme(_Strict):
    """A scheme defined in the file: model variant, weights kind and allocation method, and
    optionally its own importance estimator, selection step and compression step; or a
    separate scheme (``separate``: codec and options, no model, weights or method)."""

    name: str = _field(
        allowed=f"a scheme name of at most {MAX_NAME_LENGTH} {NAME_RULE}",
        pattern=NAME_PATTERN,
        max_length=MAX_NAME_LENGTH,
    )
    # required for a semantic scheme (semcom.scenario.checks); a separate scheme leaves them out
    model: str | None = _field(
        None, "a model variant (" + ", ".join(MODEL_VARIANTS) + ", or one of variants)"
    )
    weights: Literal["importance", "uniform"] | None = _field(None, "importance, uniform")
    method: str | None = _field(
        None, "an allocation method (" + ", ".join(ALLOCATION.names()) + ")"
    )
    options: dict[str, Any] = _factory(dict, OPTIONS + " (passed to optim.solve)")
    importance: SchemeImportance | None = _field(
        None, "null (the scenario's importance) or a mapping {method, options}"
    )
    selection: SchemeSelection | None = _field(
        None, "null (no selection step) or a mapping {method, keep, options}"
    )
    compression: SchemeCompression | None = _field(
        None, "null (the trained codec as it is) or a mapping {method, options}"
    )
    bits: SchemeBits | None = _field(
        None,
        "null (channel.bits_per_scalar for every feature) or a mapping "
        "{method, average_bits, q_min, q_max, options}",
    )
    separate: SchemeSeparate | None = _field(
        None,
        "null (a semantic scheme) or a mapping {codec, rates, modulations, power, "
        "capacity_codecs, calibration_images, calibration_draws, num_iter, fading}",
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
    half_width: Annotated[float, Field(gt=0, le=MAX_HALF_WIDTH)] = _field(
        0.25, f"a number in (0, {MAX_HALF_WIDTH:.0f}]"
    )
    confidence: Annotated[float, Field(gt=0, lt=1)] = _field(0.95, "a number in (0, 1)")
    min_draws: Annotated[int, Field(ge=1, le=MAX_DRAWS)] = _field(
        2, f"an integer in 1..{MAX_DRAWS}"
    )
    max_draws: Annotated[int, Field(ge=1, le=MAX_DRAWS)] = _field(
        8, f"an integer in stop.min_draws..{MAX_DRAWS}"
    )

    @model_validator(mode="after")
    def _draws(self) -> StopSection:
        if self.max_draws < self.min_draws:
            allowed = f"an integer in stop.min_draws..{MAX_DRAWS} ({self.min_draws}..{MAX_DRAWS})"
            raise problems_error([invalid("stop.max_draws", self.max_draws, allowed)])
        return self


class ExecutionSection(_Strict):
    """``execution``: where and how the sweep runs (does not change the results)."""

    executor: Literal["local", "ray"] = _field("local", "local, ray")
    workers: Annotated[int, Field(ge=1, le=MAX_WORKERS)] | None = _field(
        None, f"null (= CPU cores) or an integer in 1..{MAX_WORKERS}"
    )
    threads: Annotated[int, Field(ge=1, le=MAX_THREADS)] = _field(
        1, f"an integer in 1..{MAX_THREADS}"
    )
    device: Literal["auto", "cpu", "cuda"] = _field("cpu", "auto, cpu, cuda")
    seed: Seed = _field(0, f"an integer in 0..{MAX_SEED}")
    ray_address: str | None = _field(None, "null (a local Ray instance) or a Ray address")


class OutputSection(_Strict):
    """``output``: where the results go (does not change the results)."""

    dir: FolderPath | None = _field(
        None, f"null (= results/<name>) or a folder path: {path_rule()}"
    )
    plots: bool = _field(True, "true or false")
    parquet: bool = _field(True, "true or false")


# per sweep axis: the validator of one value and what it allows (the base field's rule,
# except that n_subchannels takes no null)
AXES: dict[str, tuple[TypeAdapter, str]] = {
    name: (TypeAdapter(kind, config=ConfigDict(strict=True, allow_inf_nan=False)), allowed)
    for name, kind, allowed in (
        ("channel", ChannelModel, "awgn, rayleigh, rician"),
        ("snr_db", SnrDb, snr_db_rule()),
        ("eta", Eta, ETA_RULE),
        ("n_subchannels", Subchannels, SUBCHANNELS_RULE),
        ("rician_k", RicianK, RICIAN_K_RULE),
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

    name: str = _field(
        allowed=f"a name of at most {MAX_NAME_LENGTH} {NAME_RULE}",
        pattern=NAME_PATTERN,
        max_length=MAX_NAME_LENGTH,
    )
    description: str = _field("", "a string")
    data: DataSection = _factory(DataSection, "")
    model: ModelSection = _factory(ModelSection, "")
    training: TrainingSection = _factory(TrainingSection, "")
    variants: dict[str, VariantSection] = _factory(
        dict, "a mapping of variant names to {base, method, channel, routing, adapter, init_from}"
    )
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
    metrics: list[Literal["psnr", "ssim", "mse", "ber", "accuracy", "ms_ssim"]] = _field(
        list(DEFAULT_METRICS), f"a list of distinct metrics ({', '.join(METRICS)}) containing psnr"
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

    @model_validator(mode="after")
    def _points(self) -> ScenarioFields:
        points = len(self.schemes)
        for values in self.sweep.values():
            points *= len(values)
        if points > MAX_POINTS:
            counts = " x ".join(
                [f"{axis} {len(v)}" for axis, v in self.sweep.items()]
                + [f"schemes {len(self.schemes)}"]
            )
            allowed = f"at most {MAX_POINTS} points (conditions x schemes)"
            raise problems_error([invalid("sweep", f"{points} points: {counts}", allowed)])
        return self

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
