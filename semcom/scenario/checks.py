"""Checks of a scenario that need the code's registries, the data or the hardware.

Each check adds problem lines (:mod:`semcom.scenario.problems`) for its part of the file and
returns whether it found none. :func:`semantic_problems` runs them all, skipping a check whose
sections already failed pydantic's validation (their problems are reported already), so one
mistake is reported once.

- ``data``: data set name, loader options (:func:`semcom.data.resolve_options`).
- ``model``: name and options (:func:`semcom.models.resolve_model_options`, input shape = data's).
- ``training.isfr`` / ``training.conventional``: :func:`semcom.isfr.training_channel` options.
- every model variant the schemes use: :func:`semcom.train.resolve_config` of its TrainConfig.
- ``importance``: method name (:data:`semcom.importance.IMPORTANCE`) and options.
- ``allocation``: modulation names (distinct), option mappings keyed by allocation methods.
- ``schemes``: built-in names, custom scheme fields (a scheme's own ``importance`` estimator
  and ``selection`` step: names, options, an estimator that reduces, ``keep`` within
  ``model.n_features``; a ``compression`` method and options its constructor accepts),
  distinct names.
  ``model.n_features``; its ``bits``: allocator name, options, the budget rules of
  :func:`semcom.bitalloc.check_budget` with ``model.n_features``), distinct names.
- ``stop.metric`` among the computed ``metrics``.
- ``data.eval_images + (data.calibration_images or 32)`` within the test split.
- ``execution``: ``cuda`` needs a GPU, ``ray`` needs Ray installed.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import json
import re
from collections.abc import Callable
from typing import Any

import torch

from channels.errors import ConfigError
from channels.names import MODULATION_NAMES
from semcom import data as data_module
from semcom.bitalloc import BIT_ALLOCATION
from semcom.compression import COMPRESSION
from semcom.importance import IMPORTANCE, make_estimator
from semcom.isfr import training_channel
from semcom.models import MODELS
from semcom.registry import ALLOCATION
from semcom.scenario.config import Scenario, channel_options, data_options, model_options
from semcom.scenario.problems import relocate
from semcom.scenario.schema import NAME_PATTERN, NAME_RULE, STOP_METRICS
from semcom.scenario.text import invalid, join, missing, unknown_key
from semcom.scheme_bits import make_bit_allocator, scheme_bits
from semcom.scheme_compression import resolve_compression
from semcom.scheme_estimators import keep_count, reducing_methods
from semcom.schemes import MODEL_VARIANTS, NO_MODEL, SCHEMES, SEPARATE_SCHEMES
from semcom.separate.image_codecs import HEVC, HEVC_EXTRA, PILLOW_CODECS, hevc_available

MIN_CALIBRATION = 32
"""Calibration images the test split must keep when ``data.calibration_images`` is null."""

TRAIN_FIELDS = {
    "model": "model.name",
    "n_features": "model.n_features",
    "model_options": "model.options",
    "dataset": "data.dataset",
    "dataset_options": "data.options",
    "dataset_root": "data.root",
    "seed": "execution.seed",
    "device": "execution.device",
}
"""TrainConfig field -> YAML path (``isfr`` and the rest: under ``training``)."""

CHANNEL_OPTIONS = tuple(
    p.name
    for p in inspect.signature(training_channel).parameters.values()
    if p.kind is p.KEYWORD_ONLY and p.name != "seed"
)


def _unknown(path: str, options: dict[str, Any], known: list[str], problems: list[str]) -> bool:
    """Add an ``unknown key`` line per key of ``options`` not in ``known``."""
    lines = [unknown_key(join(path, k), known or ["none"]) for k in options if k not in known]
    problems.extend(lines)
    return not lines


def _under(path: str, renames: dict[str, str] | None = None) -> Callable[[str], str]:
    """Field -> YAML path: ``renames[field]``, else ``path.field`` (``path`` for no field)."""
    renames = renames or {}
    return lambda field: (renames.get(field) or join(path, field)) if field else path


def check_data(s: Scenario, problems: list[str]) -> bool:
    """``data.dataset`` and ``data.options``."""
    d = s.data
    if d.dataset not in data_module.DATASETS:
        problems.append(invalid("data.dataset", d.dataset, ", ".join(data_module.DATASETS)))
        return False
    known = sorted({*data_module.DEFAULT_OPTIONS[d.dataset], "limit"})
    if not _unknown("data.options", d.options, known, problems):
        return False
    try:
        data_options(d.dataset, d.options)
    except ConfigError as err:
        problems.append(relocate(err, _under("data.options", {"dataset": "data.dataset"})))
        return False
    return True


def check_model(s: Scenario, problems: list[str]) -> bool:
    """``model.name`` and ``model.options`` (with the data set's input shape)."""
    m = s.model
    if m.name not in MODELS:
        problems.append(invalid("model.name", m.name, ", ".join(MODELS)))
        return False
    defaults = MODELS[m.name].DEFAULTS
    known = sorted({*defaults, *(["L"] if "scalars_per_feature" in defaults else [])})
    if not _unknown("model.options", m.options, known, problems):
        return False
    try:
        model_options(m.name, m.n_features, m.options, s.data.dataset, s.data.options)
    except ConfigError as err:
        renames = {
            "model": "model.name",
            "n_features": "model.n_features",
            "options": "model.options",
        }
        problems.append(relocate(err, _under("model.options", renames)))
        return False
    return True


def check_training_channels(
    s: Scenario, problems: list[str], kinds: tuple[str, ...] = ("isfr", "conventional")
) -> bool:
    """``training.isfr`` and ``training.conventional`` (checked whether used or not)."""
    ok = True
    for kind in kinds:
        path, options = f"training.{kind}", getattr(s.training, kind)
        if not _unknown(path, options, list(CHANNEL_OPTIONS), problems):
            ok = False
            continue
        try:
            channel_options(kind, s.model.n_features, options)
        except ConfigError as err:
            problems.append(relocate(err, _under(path)))
            ok = False
        except (TypeError, ValueError) as err:  # a value of a type the library did not expect
            problems.append(invalid(path, options, f"training_channel options ({err})"))
            ok = False
    return ok


def check_variants(s: Scenario, problems: list[str]) -> bool:
    """Names, bases, parents and methods of the file's ``variants`` (the configs themselves are
    checked with the training configs)."""
    n = len(problems)
    for name, v in s.variants.items():
        path = f"variants.{name}"
        if name in MODEL_VARIANTS or not re.fullmatch(NAME_PATTERN, name):
            allowed = f"a name that is not a built-in variant, of {NAME_RULE}"
            problems.append(invalid("variants", name, allowed))
        if v.base not in MODEL_VARIANTS:
            problems.append(invalid(f"{path}.base", v.base, ", ".join(MODEL_VARIANTS)))
        if v.init_from is not None and v.init_from not in s.variant_names():
            problems.append(invalid(f"{path}.init_from", v.init_from, ", ".join(s.variant_names())))
        if v.adapter is not None and v.init_from is None:
            allowed = "null without init_from (an adapter tunes a trained codec)"
            problems.append(invalid(f"{path}.adapter", v.adapter.method, allowed))
    return len(problems) == n


def _variant_fields(s: Scenario, variant: str) -> dict[str, str]:
    """TrainConfig field -> YAML path of the fields that ``variant`` of the file sets (the
    others come from ``training`` and ``model``)."""
    fields = {"routing": "model.routing.method", "routing_options": "model.routing.options"}
    own = s.variants.get(variant)
    if own is None:
        return fields
    path = f"variants.{variant}"
    if own.method is not None:
        fields.update(method=f"{path}.method", method_options=f"{path}.method_options")
    if own.method_options is not None:
        fields["method_options"] = f"{path}.method_options"
    if own.channel is not None:
        fields["channel"] = f"{path}.channel"
    if own.routing is not None:
        fields.update(routing=f"{path}.routing.method", routing_options=f"{path}.routing.options")
    if own.adapter is not None:
        fields.update(adapter=f"{path}.adapter.method", adapter_options=f"{path}.adapter.options")
    for name in ("epochs", "lr"):
        if getattr(own, name) is not None:
            fields[name] = f"{path}.{name}"
    if own.init_from is not None:
        fields["init_from"] = f"{path}.init_from"
    return fields


def check_train_configs(s: Scenario, problems: list[str]) -> bool:
    """The resolved TrainConfig of every model variant the schemes use."""
    found: list[str] = []
    for variant in s.model_variants():
        scheme = MODEL_VARIANTS[s.base_variant(variant)].training_scheme
        renames = {**TRAIN_FIELDS, **_variant_fields(s, variant), "isfr": f"training.{scheme}"}
        try:
            s.train_config(variant)
        except ConfigError as err:
            line = relocate(err, _under("training", renames))
            if line not in found:
                found.append(line)
    problems.extend(found)
    return not found


def check_estimator(
    path: str,
    method: str,
    options: dict[str, Any],
    problems: list[str],
    methods: list[str] | None = None,
    allowed: str | None = None,
    model_name: str | None = None,
) -> bool:
    """An importance estimator's name (among ``methods``, default: all) and options at ``path``;
    with ``model_name``, also that the estimator works on that model (its ``models``)."""
    methods = IMPORTANCE.names() if methods is None else methods
    if method not in methods:
        problems.append(invalid(f"{path}.method", method, allowed or ", ".join(methods)))
        return False
    models = IMPORTANCE.get(method).models
    if model_name is not None and models is not None and model_name not in models:
        fits = [m for m in methods if model_name in (IMPORTANCE.get(m).models or (model_name,))]
        problems.append(invalid(
            f"{path}.method", method,
            f"an estimator for model.name {model_name!r} ({', '.join(fits)}); {method} needs "
            f"model.name {' or '.join(models)}",
        ))  # fmt: skip
        return False
    signature = inspect.signature(IMPORTANCE.get(method).__init__)
    known = [p for p in signature.parameters if p != "self"]
    if not _unknown(f"{path}.options", options, known, problems):
        return False
    try:
        make_estimator(method, **options)
    except ConfigError as err:
        problems.append(relocate(err, _under(f"{path}.options")))
        return False
    return True


def check_importance(s: Scenario, problems: list[str], model_name: str | None = None) -> bool:
    """``importance.method`` and ``importance.options`` (for ``model_name`` when known)."""
    return check_estimator("importance", s.importance.method, s.importance.options, problems,
                           model_name=model_name)  # fmt: skip


def check_scheme_estimators(
    path: str, entry: Any, n_features: int | None, problems: list[str],
    model_name: str | None = None,
) -> None:  # fmt: skip
    """A custom scheme's ``importance`` and ``selection`` (``n_features``: None if unknown)."""
    if entry.importance is not None:
        if entry.weights != "importance":
            problems.append(invalid(f"{path}.importance", entry.importance.model_dump(),
                                    "null (weights: uniform uses no estimator)"))  # fmt: skip
        else:
            imp = entry.importance
            check_estimator(f"{path}.importance", imp.method, imp.options, problems,
                            model_name=model_name)  # fmt: skip
    selection = entry.selection
    if selection is None:
        return
    reducers = reducing_methods()
    allowed = f"an importance estimator with reduce ({', '.join(reducers)})"
    check_estimator(f"{path}.selection", selection.method, selection.options, problems, reducers,
                    allowed, model_name)  # fmt: skip
    if n_features is not None:
        try:
            keep_count(selection.keep, n_features)
        except ConfigError:
            rule = f"an integer in 1..{n_features} (model.n_features) or a fraction in (0, 1]"
            problems.append(invalid(f"{path}.selection.keep", selection.keep, rule))


def check_scheme_compression(path: str, entry: Any, problems: list[str]) -> bool:
    """A custom scheme's ``compression``: a registered method, options its constructor takes.

    A budget that only the trained codec can refuse (e.g. more units than a layer has) fails
    when the codec is compressed, before the sweep.
    """
    compression = entry.compression
    if compression is None:
        return True
    path = f"{path}.compression"
    if compression.method not in COMPRESSION.names():
        problems.append(invalid(f"{path}.method", compression.method,
                                ", ".join(COMPRESSION.names())))  # fmt: skip
        return False
    signature = inspect.signature(COMPRESSION.get(compression.method).__init__)
    known = [p for p in signature.parameters if p != "self"]
    if not _unknown(f"{path}.options", compression.options, known, problems):
        return False
    try:
        resolve_compression(compression.method, compression.options)
    except ConfigError as err:
        problems.append(relocate(err, _under(f"{path}.options")))
        return False
    return True


BUDGET_FIELDS = ("average_bits", "q_min", "q_max")


def check_scheme_bits(path: str, bits: Any, n_features: int | None, problems: list[str]) -> bool:
    """A custom scheme's ``bits``: allocator name and options, and (``n_features`` known) a
    trial allocation on uniform weights, which meets the budget rules exactly when the
    scheme's weights will (they depend on ``N``, the budget and the options, not on ``w``)."""
    path, n = f"{path}.bits", len(problems)
    if bits.method not in BIT_ALLOCATION.names():
        problems.append(invalid(f"{path}.method", bits.method, ", ".join(BIT_ALLOCATION.names())))
        return False
    signature = inspect.signature(BIT_ALLOCATION.get(bits.method).__init__)
    known = [p for p in signature.parameters if p != "self"]
    if not _unknown(f"{path}.options", bits.options, known, problems):
        return False
    spec = bits.model_dump()
    try:
        make_bit_allocator(spec)
    except ConfigError as err:
        problems.append(relocate(err, _under(f"{path}.options")))
        return False
    if n_features is not None:
        try:
            scheme_bits(spec, [1.0] * n_features)
        except ConfigError as err:
            where = _under(f"{path}.options", {f: f"{path}.{f}" for f in BUDGET_FIELDS})
            problems.append(relocate(err, where))
    return len(problems) == n


def method_options(path: str, method: str, options: dict[str, Any], problems: list[str]) -> bool:
    """Option names of allocation ``method`` where its signature lists them (no ``**kwargs``)."""
    from optim.methods import METHODS

    try:
        params = list(inspect.signature(METHODS[method].func).parameters.values())[1:]
    except (ConfigError, TypeError, ValueError):  # unavailable or not introspectable
        return True
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return True
    return _unknown(path, options, [p.name for p in params], problems)


def check_modulations(s: Scenario, problems: list[str]) -> bool:
    """``allocation.modulations``: known names, each once."""
    mods, n = s.allocation.modulations, len(problems)
    for i, name in enumerate(mods):
        path = f"allocation.modulations[{i}]"
        if name not in MODULATION_NAMES:
            problems.append(invalid(path, name, ", ".join(MODULATION_NAMES)))
        elif name in mods[:i]:
            problems.append(invalid(path, name, "a modulation not already in the list"))
    return len(problems) == n


def check_allocation_options(s: Scenario, problems: list[str]) -> bool:
    """``allocation.options``: keyed by allocation methods, with options they accept."""
    n = len(problems)
    for method, options in s.allocation.options.items():
        path = f"allocation.options.{method}"
        if method not in ALLOCATION.names():
            problems.append(unknown_key(path, ALLOCATION.names()))
        else:
            method_options(path, method, options, problems)
    return len(problems) == n


def check_schemes(
    entries: list[tuple[int, Any]], problems: list[str], n_features: int | None = None,
    model_name: str | None = None, variants: list[str] | None = None,
) -> bool:  # fmt: skip
    """Scheme names (built-in or custom, distinct) and the fields of custom schemes.

    ``entries`` are ``(index in schemes, entry)`` pairs; ``n_features`` (``model.n_features``,
    None when it failed validation) bounds a selection step's ``keep``; ``model_name``
    (``model.name``, None when unknown) must suit the schemes' estimators; ``variants`` are the
    model variants a scheme may name (default: the built-in ones).
    """
    n, built_in, seen = len(problems), SCHEMES.names(), set()
    variants = list(MODEL_VARIANTS) if variants is None else variants
    for i, entry in entries:
        path = f"schemes[{i}]"
        if isinstance(entry, str):
            name = entry
            if name not in built_in:
                allowed = (", ".join(built_in) + ", or a mapping {name, model, weights, method} "
                           "or {name, separate}")  # fmt: skip
                problems.append(invalid(path, name, allowed))
        elif entry.separate is not None:
            name = entry.name
            check_separate_scheme(path, entry, built_in, problems)
        else:
            name = entry.name
            for key in ("model", "weights", "method"):  # required of a semantic scheme
                if getattr(entry, key) is None:
                    problems.append(missing(f"{path}.{key}", SEMANTIC_FIELDS[key]))
            if entry.model is None or entry.weights is None or entry.method is None:
                pass
            elif name in SEPARATE_SCHEMES and all(  # a built-in separate scheme, as resolved
                getattr(entry, key) == own for key, own in SEPARATE_OWN.items()
            ):
                check_separate_scheme(path, entry, [], problems)
            else:
                check_semantic_scheme(path, entry, built_in, problems, n_features, model_name,
                                      variants)  # fmt: skip
        check_codec_installed(path, entry, problems)
        if name in seen:
            problems.append(invalid(path, name, "a scheme name not already in schemes"))
        seen.add(name)
    return len(problems) == n


def check_codec_installed(path: str, entry: Any, problems: list[str]) -> None:
    """A separate scheme's codecs must be installed: ``hevc`` needs the optional
    ``pillow-heif`` (:func:`semcom.separate.image_codecs.hevc_available`)."""
    if hevc_available():
        return
    separate = None if isinstance(entry, str) else entry.separate
    if separate is None:  # a built-in, named or as resolved() writes it
        name = entry if isinstance(entry, str) else entry.name
        if name in SEPARATE_SCHEMES and SCHEMES.get(name).separate == HEVC:
            allowed = f"a scheme whose codec is installed ({name} {HEVC_EXTRA})"
            problems.append(invalid(path, name, allowed))
    elif separate.codec == HEVC:
        allowed = f"{', '.join(PILLOW_CODECS)}, capacity ({HEVC} {HEVC_EXTRA})"
        problems.append(invalid(f"{path}.separate.codec", HEVC, allowed))
    elif separate.codec == "capacity" and HEVC in separate.capacity_codecs:
        allowed = f"codecs of {', '.join(PILLOW_CODECS)} ({HEVC} {HEVC_EXTRA})"
        problems.append(invalid(f"{path}.separate.capacity_codecs", separate.capacity_codecs,
                                allowed))  # fmt: skip


SEMANTIC_FIELDS = {
    "model": "a model variant (" + ", ".join(MODEL_VARIANTS) + ", or one of variants)",
    "weights": "importance, uniform",
    "method": "an allocation method (" + ", ".join(ALLOCATION.names()) + ")",
}
"""The allowed text of the fields a semantic custom scheme must set."""
SEPARATE_OWN = {"model": NO_MODEL, "weights": "uniform", "method": NO_MODEL}
"""The values a separate scheme's ``model``, ``weights`` and ``method`` may repeat."""


def check_separate_scheme(path: str, entry: Any, built_in: list[str], problems: list[str]) -> bool:
    """A custom separate scheme (``separate`` set): a name of its own, and none of the
    semantic fields (``model``, ``weights``, ``method`` may only repeat ``none``, ``uniform``,
    ``none``, as :meth:`Scenario.resolved` writes them; no ``options``, ``importance``,
    ``selection``, ``compression`` or ``bits``). Its ``separate`` fields are checked by the
    schema (:class:`semcom.scenario.schema.SchemeSeparate`)."""
    n = len(problems)
    if entry.name in built_in:
        problems.append(invalid(f"{path}.name", entry.name, "a name that is not a built-in scheme"))
    for key, own in SEPARATE_OWN.items():
        value = getattr(entry, key)
        if value is not None and value != own:
            allowed = f"null or {own} (a separate scheme has no model, weights or method)"
            problems.append(invalid(f"{path}.{key}", value, allowed))
    for key in ("options", "importance", "selection", "compression", "bits"):
        if getattr(entry, key):
            problems.append(invalid(f"{path}.{key}", getattr(entry, key),
                                    "null (a separate scheme uses no model)"))  # fmt: skip
    return len(problems) == n


def check_semantic_scheme(
    path: str,
    entry: Any,
    built_in: list[str],
    problems: list[str],
    n_features: int | None,
    model_name: str | None,
    variants: list[str],
) -> None:
    """A custom semantic scheme's fields (:func:`check_schemes`)."""
    name = entry.name
    if name in built_in:
        b = SCHEMES.get(name)
        if (entry.model, entry.weights, entry.method) != (b.model, b.weights, b.method):
            allowed = ("a name that is not a built-in scheme (or the built-in's own "
                       f"model {b.model}, weights {b.weights} and method {b.method})")  # fmt: skip
            problems.append(invalid(f"{path}.name", name, allowed))
    if entry.model not in variants:
        problems.append(invalid(f"{path}.model", entry.model, ", ".join(variants)))
    if entry.method not in ALLOCATION.names():
        allowed = ", ".join(ALLOCATION.names())
        problems.append(invalid(f"{path}.method", entry.method, allowed))
    else:
        method_options(f"{path}.options", entry.method, entry.options, problems)
    check_scheme_estimators(path, entry, n_features, problems, model_name)
    check_scheme_compression(path, entry, problems)
    if entry.bits is not None:
        check_scheme_bits(path, entry.bits, n_features, problems)


def check_stop_metric(s: Scenario, problems: list[str]) -> bool:
    """``stop.metric`` must be computed (its entry in ``metrics``)."""
    if STOP_METRICS[s.stop.metric] in s.metrics:
        return True
    computed = [k for k, v in STOP_METRICS.items() if v in s.metrics]
    allowed = f"{', '.join(computed)} (the metrics computed)"
    problems.append(invalid("stop.metric", s.stop.metric, allowed))
    return False


@functools.lru_cache(maxsize=32)
def _test_split_length(dataset: str, root: str | None, options_json: str) -> int:
    options = json.loads(options_json)
    return len(data_module.load_dataset(dataset, "test", root=root, **options))


def test_split_length(dataset: str, root: str | None, options: dict[str, Any]) -> int:
    """Images in the test split of ``dataset`` (read once per data set and options)."""
    return _test_split_length(dataset, root, json.dumps(options, sort_keys=True))


def check_test_split(s: Scenario, problems: list[str]) -> bool:
    """The test split holds the evaluation and the calibration images (reads the split)."""
    d = s.data
    try:
        n = test_split_length(d.dataset, d.root, d.options)
    except ConfigError as err:
        problems.append(relocate(err, _under("data.root", {"root": "data.root"})))
        return False
    calibration = MIN_CALIBRATION if d.calibration_images is None else d.calibration_images
    if d.eval_images + calibration <= n:
        return True
    taken = (
        f"{calibration} are kept for calibration"
        if d.calibration_images is None
        else f"data.calibration_images takes {calibration}"
    )
    if n - calibration >= 1:
        allowed = f"at most {n - calibration} (the {d.dataset} test split has {n} images; {taken})"
        problems.append(invalid("data.eval_images", d.eval_images, allowed))
    else:
        allowed = (
            f"at most {n - d.eval_images} (the {d.dataset} test split has {n} images; "
            f"data.eval_images takes {d.eval_images})"
        )
        problems.append(invalid("data.calibration_images", d.calibration_images, allowed))
    return False


def check_execution(s: Scenario, problems: list[str], ok: Callable[..., bool]) -> bool:
    """``cuda`` needs a GPU here; the ``ray`` executor needs Ray installed."""
    e, n = s.execution, len(problems)
    no_gpu = not torch.cuda.is_available()
    if ok("execution.device") and e.device == "cuda" and no_gpu:
        problems.append(invalid("execution.device", e.device, "auto, cpu (no CUDA GPU here)"))
    if ok("execution.executor") and e.executor == "ray" and importlib.util.find_spec("ray") is None:
        allowed = 'local (Ray is not installed: pip install -e ".[distributed]")'
        problems.append(invalid("execution.executor", e.executor, allowed))
    return len(problems) == n


def _clear(bad: set[str]) -> Callable[..., bool]:
    """``ok(*paths)``: no path of ``bad`` is one of ``paths``, inside one, or contains one."""

    def ok(*paths: str) -> bool:
        return not any(
            b == p or b.startswith(p + ".") or p.startswith(b + ".") for b in bad for p in paths
        )

    return ok


def semantic_problems(
    s: Scenario, bad: set[str] = frozenset(), schemes: list[tuple[int, Any]] | None = None
) -> list[str]:
    """Every problem the checks find.

    Args:
        s: the scenario (where pydantic failed: the file without the failed fields).
        bad: the paths (``"data"``, ``"data.eval_images"``) that failed validation; a check
            that reads one of them is skipped.
        schemes: ``(index, entry)`` of the ``schemes`` entries that validated, when the list
            as a whole did not (default: every entry of ``s.schemes``).
    """
    problems: list[str] = []
    ok = _clear(bad)
    data_ok = ok("data.dataset", "data.options") and check_data(s, problems)
    model_ok = data_ok and ok("model") and check_model(s, problems)
    kinds = tuple(k for k in ("isfr", "conventional") if ok("model.n_features", f"training.{k}"))
    channels_ok = check_training_channels(s, problems, kinds) and len(kinds) == 2
    model_name = s.model.name if model_ok else None
    if ok("importance"):
        check_importance(s, problems, model_name)
    if ok("allocation.modulations"):
        check_modulations(s, problems)
    if ok("allocation.options"):
        check_allocation_options(s, problems)
    entries = list(enumerate(s.schemes)) if schemes is None else schemes
    n_features = s.model.n_features if ok("model.n_features") else None
    variants_ok = ok("variants") and check_variants(s, problems)
    variants = s.variant_names() if ok("variants") else None
    schemes_ok = (
        check_schemes(entries, problems, n_features, model_name, variants)
        and ok("schemes")
        and variants_ok
    )
    needed = ("data", "model", "training", "execution.seed", "execution.device")
    if model_ok and channels_ok and schemes_ok and ok(*needed):
        check_train_configs(s, problems)
    if ok("stop.metric", "metrics"):
        check_stop_metric(s, problems)
    if data_ok and ok("data"):
        check_test_split(s, problems)
    check_execution(s, problems, ok)
    return problems


__all__ = ["MIN_CALIBRATION", "semantic_problems", "test_split_length"]
