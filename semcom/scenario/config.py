""":class:`Scenario`: the validated scenario and what the runner asks of it.

Build it with :func:`semcom.scenario.load_scenario`, which also runs the checks that need the
registries, the data and the hardware; ``Scenario.model_validate`` alone checks only types,
ranges and the rules inside one section.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from channels.errors import fail
from semcom import data as data_module
from semcom.importance import make_estimator
from semcom.isfr import training_channel
from semcom.models import resolve_model_options
from semcom.scenario.schema import SWEEP_AXES, CustomScheme, ScenarioFields
from semcom.scenario.yaml12 import TAG, core_tag
from semcom.scheme_bits import bit_allocator_params
from semcom.scheme_compression import CompressionSpec, codec_name, resolve_compression
from semcom.scheme_estimators import EstimatorSpec, keep_count, resolve_estimator
from semcom.schemes import MODEL_VARIANTS, NO_MODEL, SCHEMES, SEPARATE_SCHEMES, Scheme
from semcom.train import TrainConfig, resolve_config

EXCLUDED_FROM_HASH = (
    ("execution", "executor"),
    ("execution", "workers"),
    ("execution", "ray_address"),
    ("execution", "threads"),
    ("output", None),
    ("training", "checkpoint_dir"),
    ("description", None),
)
"""Fields that do not change the results, left out of :meth:`Scenario.config_hash`."""
STR_TAG = TAG + "str"


def data_options(dataset: str, options: dict[str, Any]) -> dict[str, Any]:
    """The loader options of ``dataset`` with every default filled in (ConfigError if bad)."""
    return data_module.resolve_options(dataset, "train", **options)


def model_options(
    name: str, n_features: int, options: dict[str, Any], dataset: str, data_opts: dict[str, Any]
) -> dict[str, Any]:
    """The options of model ``name`` with defaults filled and ``input_shape`` from the data."""
    shape = list(data_module.image_shape(dataset, data_options(dataset, data_opts)))
    if "input_shape" in options and options["input_shape"] != shape:
        raise fail("input_shape", options["input_shape"], f"{shape} (the data's shape)")
    return resolve_model_options(name, n_features, **{**options, "input_shape": shape})


def channel_options(kind: str, n_features: int, options: dict[str, Any]) -> dict[str, Any]:
    """Options of :func:`semcom.isfr.training_channel` of ``kind`` with defaults filled in."""
    return training_channel(kind, n_features, **options).options


class _Dumper(yaml.SafeDumper):
    """Block mappings; lists of scalars on one line (``snr_db: [0.0, 5.0]``).

    A string is written plain only where YAML 1.1 and YAML 1.2 both read it as a string, so
    ``'yes'`` (a boolean to 1.1) and ``'1e3'`` (a number to 1.2) are quoted: the file reads
    back the same with :func:`load_scenario` and with any YAML library.
    """

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        tag = super().resolve(kind, value, implicit)
        if kind is yaml.ScalarNode and implicit[0] and tag == STR_TAG:
            return core_tag(value)
        return tag

    def represent_list(self, data: list[Any]) -> yaml.Node:
        flow = all(not isinstance(v, dict | list) for v in data)
        return self.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _Dumper.represent_list)


class Scenario(ScenarioFields):
    """A validated scenario file (every section of docs/scenarios.md) and its derived values.

    Examples:
        >>> s = Scenario.model_validate({"name": "demo", "sweep": {"snr_db": [0, 5]}})
        >>> s.axes()
        {'snr_db': [0.0, 5.0], 'scheme': ['isfr-uep', 'ui-ep', 'ui-opt', 'passive-uep']}
        >>> s.base_point()["n_subchannels"], s.model_variants()
        (16, ['isfr', 'conventional'])
    """

    # ---- schemes -----------------------------------------------------------------------------

    def scheme_names(self) -> list[str]:
        """The names of the scenario's schemes, in file order."""
        return [s if isinstance(s, str) else s.name for s in self.schemes]

    def scheme(self, name: str) -> Scheme:
        """The :class:`~semcom.schemes.Scheme` of a custom scheme of this file or a built-in.

        ``options`` are the scheme's own (empty for a built-in named by a string); the runner
        lays them over ``allocation.options[method]``.
        """
        for entry in self.schemes:
            if isinstance(entry, CustomScheme) and entry.name == name:
                if entry.separate is None and entry.name in SEPARATE_SCHEMES:
                    break  # a built-in separate scheme as resolved() writes it (checks)
                if entry.name in SCHEMES.names() and SCHEMES.get(entry.name).switch:
                    break  # a built-in switch scheme as resolved() writes it
                if entry.separate is not None:  # a separate scheme: codec and options
                    options = entry.separate.model_dump()
                    codec = options.pop("codec")
                    return Scheme(NO_MODEL, "uniform", NO_MODEL, separate=codec,
                                  separate_options=options)  # fmt: skip
                importance = selection = compression = None
                if entry.importance is not None:
                    importance = entry.importance.model_dump()
                if entry.selection is not None:
                    selection = entry.selection.model_dump()
                if entry.compression is not None:
                    compression = entry.compression.model_dump()
                bits = None if entry.bits is None else entry.bits.model_dump()
                return Scheme(entry.model, entry.weights, entry.method, dict(entry.options),
                              importance, selection, compression, bits)  # fmt: skip
        if name in SCHEMES.names():
            built_in = SCHEMES.get(name)
            return dataclasses.replace(built_in, options=dict(built_in.options))
        raise fail("scheme", name, ", ".join(dict.fromkeys(self.scheme_names() + SCHEMES.names())))

    def model_variants(self) -> list[str]:
        """The model variants the schemes use (built-in, :data:`semcom.schemes.MODEL_VARIANTS`,
        or defined in ``variants``); the separate schemes use none."""
        names = []
        for n in self.scheme_names():  # a switch scheme uses its candidates' models
            names += list(self.scheme(n).switch or (n,))
        return list(dict.fromkeys(
            self.scheme(n).model for n in names if self.scheme(n).separate is None
        ))  # fmt: skip

    def reference_variant(self) -> str:
        """The model variant whose training config fixes the data split and the symbol budget:
        the first the schemes use, or ``isfr`` for a scenario of separate schemes only (whose
        model is then built untrained, for its ``N`` and ``L``, never trained)."""
        variants = self.model_variants()
        return variants[0] if variants else "isfr"

    def reference_config(self) -> TrainConfig:
        """:meth:`train_config` of :meth:`reference_variant`."""
        return self.train_config(self.reference_variant())

    def variant_names(self) -> list[str]:
        """Every model variant a scheme may name: the built-in ones, then the file's."""
        return list(dict.fromkeys([*MODEL_VARIANTS, *self.variants]))

    def base_variant(self, variant: str) -> str:
        """The built-in variant whose training channel ``variant`` uses."""
        if variant in self.variants:
            return self.variants[variant].base
        if variant not in MODEL_VARIANTS:
            raise fail("variant", variant, ", ".join(self.variant_names()))
        return variant

    # ---- importance estimators ---------------------------------------------------------------

    def default_estimator(self) -> EstimatorSpec:
        """The ``importance`` section as a resolved estimator spec."""
        return resolve_estimator(self.importance.method, self.importance.options)

    def scheme_estimator(self, name: str) -> EstimatorSpec | None:
        """The estimator of scheme ``name``'s weights: its own ``importance``, else the
        scenario's; None for ``weights: uniform``."""
        scheme = self.scheme(name)
        if scheme.weights != "importance":
            return None
        if scheme.importance is None:
            return self.default_estimator()
        return resolve_estimator(scheme.importance["method"], scheme.importance["options"])

    def scheme_selection(self, name: str) -> tuple[EstimatorSpec, int] | None:
        """``(reducing estimator, features kept per image)`` of scheme ``name``, or None."""
        selection = self.scheme(name).selection
        if selection is None:
            return None
        spec = resolve_estimator(selection["method"], selection["options"])
        return spec, keep_count(selection["keep"], self.model.n_features)

    def estimator_plan(self) -> dict[str, list[EstimatorSpec]]:
        """Per codec (a model variant, or a compressed one: :meth:`scheme_codec`), the
        estimators to fit on its calibration images (each once): the scenario's
        ``importance`` first, then the schemes' own estimators and selection steps."""
        codecs = [*self.model_variants(), *self.compression_plan()]
        plan: dict[str, dict[str, EstimatorSpec]] = {codec: {} for codec in codecs}
        default = self.default_estimator()
        for specs in plan.values():
            specs[default.key] = default
        for name in self.scheme_names():
            found = [self.scheme_estimator(name), (self.scheme_selection(name) or (None,))[0]]
            for spec in found:
                if spec is not None:
                    plan[self.scheme_codec(name)].setdefault(spec.key, spec)
        return {codec: list(specs.values()) for codec, specs in plan.items()}

    # ---- compression -------------------------------------------------------------------------

    def scheme_compression(self, name: str) -> CompressionSpec | None:
        """The compression step of scheme ``name`` (options resolved), or None."""
        compression = self.scheme(name).compression
        if compression is None:
            return None
        return resolve_compression(compression["method"], compression["options"])

    def scheme_codec(self, name: str) -> str:
        """The codec scheme ``name`` is evaluated on: its model variant, or the compressed
        variant (:func:`semcom.scheme_compression.codec_name`)."""
        return codec_name(self.scheme(name).model, self.scheme_compression(name))

    def compression_plan(self) -> dict[str, tuple[str, CompressionSpec]]:
        """Compressed codec name -> ``(model variant, compression)``, each once, in file
        order."""
        plan: dict[str, tuple[str, CompressionSpec]] = {}
        for name in self.scheme_names():
            spec = self.scheme_compression(name)
            if spec is not None:
                variant = self.scheme(name).model
                plan.setdefault(codec_name(variant, spec), (variant, spec))
        return plan

    # ---- conditions --------------------------------------------------------------------------

    def n_subchannels(self) -> int:
        """``channel.n_subchannels``, or ``model.n_features`` when it is null."""
        k = self.channel.n_subchannels
        return self.model.n_features if k is None else k

    def base_point(self) -> dict[str, Any]:
        """The condition without sweeping, keyed by :data:`SWEEP_AXES` (the link's seed is
        ``execution.seed``)."""
        c = self.channel
        values = {
            "channel": c.model,
            "snr_db": c.snr_db,
            "eta": self.allocation.eta,
            "n_subchannels": self.n_subchannels(),
            "rician_k": c.rician_k,
            "bits_per_scalar": c.bits_per_scalar,
            "seed": self.execution.seed,
        }
        return {axis: values[axis] for axis in SWEEP_AXES}

    def axes(self) -> dict[str, list[Any]]:
        """The sweep axes in file order, then ``"scheme"`` (the scheme names) last."""
        return {**{k: list(v) for k, v in self.sweep.items()}, "scheme": self.scheme_names()}

    # ---- training ----------------------------------------------------------------------------

    def train_config(self, variant: str, _seen: tuple[str, ...] = ()) -> TrainConfig:
        """The resolved :class:`~semcom.train.TrainConfig` of model variant ``variant``.

        The training channel is the (base) variant's (``isfr`` or ``conventional``) with the
        options of ``training.isfr`` or ``training.conventional`` and the variant's overrides on
        top. ``training.method``, ``training.channel`` and ``model.routing`` apply to every
        variant; a variant of the file's ``variants`` section may replace them, add an adapter
        and start from another variant's trained weights (``init_from``: that variant's config
        becomes the trainer's ``init_from``).
        """
        base = self.base_variant(variant)
        v = MODEL_VARIANTS[base]
        t = self.training
        own = self.variants.get(variant)
        section = {"isfr": t.isfr, "conventional": t.conventional}.get(v.training_scheme, {})
        method, method_options, channel = t.method, dict(t.method_options), dict(t.channel)
        routing, adapter, parent, epochs, lr = self.model.routing, None, None, t.epochs, t.lr
        if own is not None:
            if own.method is not None:
                method, method_options = own.method, {}
            if own.method_options is not None:
                method_options = dict(own.method_options)
            channel = dict(own.channel) if own.channel is not None else channel
            routing = own.routing if own.routing is not None else routing
            adapter, epochs, lr = own.adapter, own.epochs or epochs, own.lr or lr
            if own.init_from is not None:
                if own.init_from in (*_seen, variant):
                    chain = " -> ".join((*_seen, variant, own.init_from))
                    allowed = f"a variant that does not start from this one ({chain})"
                    raise fail("init_from", own.init_from, allowed)
                if own.init_from not in self.variant_names():
                    raise fail("init_from", own.init_from,
                               ", ".join(self.variant_names()))  # fmt: skip
                parent_config = self.train_config(own.init_from, (*_seen, variant))
                parent = {k: val for k, val in dataclasses.asdict(parent_config).items()
                          if k != "checkpoint_dir"}  # fmt: skip
        extra: dict[str, Any] = {}
        if channel:
            extra["channel"] = channel
        if parent is not None:
            extra["init_from"] = parent
        if routing is not None:
            extra.update(routing=routing.method, routing_options=dict(routing.options))
        if adapter is not None:
            extra.update(adapter=adapter.method, adapter_options=dict(adapter.options))
        config = TrainConfig(
            model=self.model.name,
            n_features=self.model.n_features,
            model_options=dict(self.model.options),
            dataset=self.data.dataset,
            dataset_root=self.data.root,
            dataset_options=dict(self.data.options),
            scheme=v.training_scheme,
            isfr={
                **section,
                **{k: t.isfr[k] for k in v.from_isfr if k in t.isfr},
                **v.isfr_overrides,
            },
            epochs=epochs,
            batch_size=t.batch_size,
            lr=lr,
            lr_min=t.lr_min if lr == t.lr else min(t.lr_min, lr),
            weight_decay=t.weight_decay,
            classifier_weight=t.classifier_weight,
            val_fraction=t.val_fraction,
            patience=t.patience,
            min_delta=t.min_delta,
            seed=self.execution.seed,
            device=self.execution.device,
            amp=t.amp,
            checkpoint_dir=t.checkpoint_dir,
            method=method,
            method_options=method_options,
            **extra,
        )
        return resolve_config(config)

    # ---- output ------------------------------------------------------------------------------

    def output_dir(self) -> Path:
        """``output.dir``, or ``results/<name>`` when it is null."""
        return Path(self.output.dir) if self.output.dir is not None else Path("results", self.name)

    def resolved(self) -> dict[str, Any]:
        """Every field as JSON-ready data with the defaults filled in.

        Besides the schema's defaults this fills the options of the data set, the model, both
        training channels and the importance estimator with the library's defaults,
        ``channel.n_subchannels`` and ``output.dir``, and writes each scheme as a mapping
        ``{name, model, weights, method, options}``, with ``importance``, ``selection`` and
        ``compression`` (their options resolved) where the scheme sets them. Loading the result
        gives the same scenario.
        """
        out = self.model_dump(mode="json")
        d, m, t = self.data, self.model, self.training
        out["data"]["options"] = data_options(d.dataset, d.options)
        out["model"]["options"] = model_options(
            m.name, m.n_features, m.options, d.dataset, d.options
        )
        out["training"]["isfr"] = channel_options("isfr", m.n_features, t.isfr)
        out["training"]["conventional"] = channel_options(
            "conventional", m.n_features, t.conventional
        )
        estimator = make_estimator(self.importance.method, **self.importance.options)
        out["importance"]["options"] = estimator.get_params()
        out["channel"]["n_subchannels"] = self.n_subchannels()
        out["schemes"] = []
        for name in self.scheme_names():
            s = self.scheme(name)
            entry = {"name": name, "model": s.model, "weights": s.weights, "method": s.method,
                     "options": dict(s.options)}  # fmt: skip
            if s.importance is not None:  # only when set: other scenarios keep their hash
                spec = resolve_estimator(s.importance["method"], s.importance["options"])
                entry["importance"] = {"method": spec.method, "options": spec.options}
            if s.selection is not None:
                spec = resolve_estimator(s.selection["method"], s.selection["options"])
                entry["selection"] = {"method": spec.method, "keep": s.selection["keep"],
                                      "options": spec.options}  # fmt: skip
            if s.compression is not None:
                compression = self.scheme_compression(name)
                entry["compression"] = {"method": compression.method,
                                        "options": compression.options}  # fmt: skip
            if s.bits is not None:  # only when set: other scenarios keep their hash
                entry["bits"] = {**s.bits, "options": bit_allocator_params(s.bits)}
            if s.separate_options is not None:  # a file's separate scheme: codec and options
                entry["separate"] = {"codec": s.separate, **s.separate_options}
            out["schemes"].append(entry)
        out["output"]["dir"] = self.output_dir().as_posix()
        return json.loads(json.dumps(out, allow_nan=False))

    def config_hash(self) -> str:
        """SHA-256 (hex) of the canonical JSON of :meth:`resolved` without the fields of
        :data:`EXCLUDED_FROM_HASH` (executor, workers, threads, Ray address, ``output``,
        the checkpoint folder and the description)."""
        data = self.resolved()
        for section, key in EXCLUDED_FROM_HASH:
            if key is None:
                data.pop(section, None)
            else:
                data[section].pop(key, None)
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def dump(self, path: str | Path) -> Path:
        """Write :meth:`resolved` to ``path`` as YAML (sections in file order); returns it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.dump(self.resolved(), Dumper=_Dumper, sort_keys=False, allow_unicode=True)
        header = f"# scenario {self.name}, resolved; config hash {self.config_hash()}\n"
        path.write_text(header + text, encoding="utf-8")
        return path


__all__ = ["EXCLUDED_FROM_HASH", "Scenario"]
