"""One sweep point of a scenario: build its semantic link, add channel draws until the stop rule
holds, and return its results row (the :class:`semcom.sweep.PointTask` of ``semcom run``).

**Stop rule** (scenario ``stop``). Every evaluation image is sent through channel draw
``0, 1, 2, ...`` (:class:`semcom.evaluation.LinkEvaluation`); after each draw, once
``min_draws`` are done, the point stops when the half-width of the ``confidence`` interval of
``stop.metric`` (over the images, each image averaged over its draws) is at most
``half_width``; otherwise it stops at ``max_draws``. ``stop_reason`` records which.

**Separate schemes** (:mod:`semcom.separate`; ``Scheme.separate`` set) run on the same
conditions with the semantic link's budget (``S_max = η N L Q / 2`` of the scenario's model,
``P_tot = 10^(snr_db/10) K``): their best (rate, modulation) pair is chosen on the
calibration images (:func:`semcom.separate.task.choose_pair`), then evaluated with the same
stop rule. Their fading is the stream of the condition's semantic link with the
``hierarchical`` method (that of ``isfr-uep``; :meth:`LinkPointTask.fading_point`): each frame's
gains equal ``isfr-uep``'s, so per-image comparisons with it are paired. A failed frame's
image is the training split's mean image. Their rows fill
``sep_rate``, ``sep_modulation``, ``sep_failures`` and ``sep_failure_rate`` (frames that got
the mean image, and their share); semantic rows have NaN and ``none`` there. Every row has
``bandwidth_ratio = S_max / (C H W)``.

**Switch schemes** (``Scheme.switch``; :mod:`semcom.scheme_switch`): at each condition the
candidate scheme with the highest mean PSNR on the calibration images is chosen, then
evaluated exactly as its own row would be (the same link, the same streams); the row's
``model`` is the chosen candidate's model variant.

**Reproducibility.** A point's frames draw from streams keyed by (link seed, CRC-32 of the
link's parameters and the draw, image index) (:mod:`semcom.link`); torch runs with a fixed
number of threads per worker. So a point's row is the same whichever worker, process or
executor computes it, and a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from channels.coded import coded_entries
from semcom.data import load_dataset
from semcom.evaluation import LinkEvaluation, LinkResult
from semcom.link import SemanticLink, reference_point
from semcom.models.build import at_input_shape
from semcom.prepare import Calibration, test_split
from semcom.scheme_bits import scheme_bits
from semcom.scheme_compression import NONE, dense_size, size_columns
from semcom.scheme_switch import choose_candidate
from semcom.separate import task as separate_task
from semcom.sweep import Point, PointResult
from semcom.train import load_checkpoint

AXIS_TYPES: dict[str, type] = {
    "channel": str,
    "snr_db": float,
    "eta": float,
    "n_subchannels": int,
    "rician_k": float,
    "bits_per_scalar": int,
    "seed": int,
    "scheme": str,
}
"""The Python type of every sweep axis (points carry these types, so keys are canonical)."""


def typed_axes(axes: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """``axes`` with every value cast to its axis type (YAML ``0`` on a float axis -> ``0.0``)."""
    return {name: [AXIS_TYPES[name](v) for v in values] for name, values in axes.items()}


def typed_values(values: dict[str, Any]) -> dict[str, Any]:
    """One value per axis, cast like :func:`typed_axes`."""
    return {name: AXIS_TYPES[name](v) for name, v in values.items()}


def failure_image(train_images: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """The separate schemes' failure image ``[C, H, W]`` for test images of ``shape``.

    The training split's mean image; where the test images are larger than the training
    images (photos: 256x256 crops, 32x32 training patches), its mean colour, constant over
    ``shape`` (the mean image of patches cut everywhere is nearly constant anyway).
    """
    mean = train_images.mean(dim=0)
    if tuple(mean.shape) != tuple(shape):
        mean = mean.mean(dim=(1, 2), keepdim=True).expand(*shape).contiguous()
    return mean


@dataclass
class LinkPointTask:
    """Evaluates sweep points of one scenario (picklable; heavy state built by :meth:`setup`).

    Args:
        scenario: the validated :class:`semcom.scenario.Scenario`.
        calibration: importance weights, drop distortions, checkpoints, image indices.
        device: torch device of the models (resolved: ``"cpu"``, ``"cuda"``, ``"cuda:K"``); on
            CUDA the link kernels run on the GPU too (``backend="cuda"``), so frames stay there.
        threads: torch threads in each worker.
        solver_threads: Numba threads of the batched allocation in each worker (0: Numba's
            default, every core).
    """

    scenario: Any
    calibration: Calibration
    device: str = "cpu"
    threads: int = 1
    solver_threads: int = 0
    _models: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _images: Any = field(default=None, init=False, repr=False)
    _labels: Any = field(default=None, init=False, repr=False)
    _separate: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _switch: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_models={}, _images=None, _labels=None, _separate={},
                     _switch={})  # rebuilt by setup()  # fmt: skip
        return state

    def setup(self) -> None:
        """Load the models and the evaluation images; fix torch's and Numba's thread counts
        (``solver_threads`` > 0: the batched allocation's Numba threads, so that parallel
        workers do not each start one thread per core). A second call only sets the thread
        counts again (the runner sets the task up in its own process for
        :meth:`compile_kernels`, and the in-process executor then calls this again)."""
        torch.set_num_threads(self.threads)
        if self.solver_threads > 0:
            import numba

            numba.set_num_threads(min(self.solver_threads, numba.config.NUMBA_NUM_THREADS))
        if self._images is not None:
            return
        configs = {}
        for variant, path in self.calibration.checkpoints.items():
            trained = load_checkpoint(path, self.device)
            self._models[variant] = trained.model
            configs[variant] = trained.config
        for name, codec in self.calibration.codecs.items():
            self._models[name] = codec.load(self.device)
        reference = self.scenario.reference_config()  # separate schemes only: no checkpoint
        test = test_split(next(iter(configs.values()), reference))
        index = torch.from_numpy(self.calibration.eval_indices)
        self._images = test.images[index]
        for variant in configs:  # photos: test crops larger than the training patches
            self._models[variant] = at_input_shape(self._models[variant], test.images.shape[1:])
        if any(self.scenario.scheme(n).switch for n in self.scenario.scheme_names()):
            calib = torch.from_numpy(self.calibration.calibration_indices)
            self.use_switch(test.images[calib])
        wants_accuracy = "accuracy" in self.scenario.metrics
        self._labels = test.labels[index] if wants_accuracy else None
        if any(self.scenario.scheme(n).separate for n in self.scenario.scheme_names()):
            config = next(iter(configs.values()), reference)
            if not self._models:  # the budget's N and L from the untrained reference model
                self.use_budget_model(reference_model(config, test.images.shape[1:]))
            train = load_dataset(config.dataset, "train", root=config.dataset_root,
                                 **config.dataset_options)  # fmt: skip
            calib = torch.from_numpy(self.calibration.calibration_indices)
            self.use_separate(failure_image(train.images, test.images.shape[1:]),
                              test.images[calib])  # fmt: skip

    def compile_kernels(self, points: Sequence[Point]) -> int:
        """Send one evaluation image through the link of the first point of each (scheme,
        channel) among ``points`` and discard the frame, so that Numba compiles the link's and
        its allocation's kernels in this process, or loads them from its cache.

        The runner calls this before a sweep on the CPU (:func:`semcom.runner.compile_kernels`;
        on a GPU it does not): compiled once here, the kernels are written to
        Numba's cache, and every worker then loads them instead of compiling them again. The
        links are built for this call only and the frames are thrown away, so no result
        changes. Switch and separate schemes are left to their points. Sets the task up first
        (:meth:`setup`). Returns the number of links sent through.
        """
        self.setup()
        first: dict[tuple[str, str], Point] = {}
        for point in points:
            values = point.as_dict()
            scheme = self.scenario.scheme(values["scheme"])
            if not (scheme.switch or scheme.separate):
                first.setdefault((values["scheme"], values["channel"]), point)
        for point in first.values():
            self.link(point).simulate(self._images[:1])
        return len(first)

    def use_separate(self, mean_image: Any, calibration_images: Any) -> None:
        """The separate schemes' failure image (the training-set mean ``[C, H, W]``) and the
        images their (rate, modulation) pair is chosen on (:meth:`setup` sets both)."""
        self._separate.update(mean=mean_image, calibration=calibration_images)

    def use_switch(self, calibration_images: Any) -> None:
        """The images ``[B, C, H, W]`` a switch scheme chooses its candidate on (:meth:`setup`
        sets the calibration images)."""
        self._switch = {"calibration": calibration_images}

    def use_budget_model(self, model: Any) -> None:
        """The model whose ``N`` and ``L`` set the separate schemes' budget when the scenario
        has no semantic scheme (:meth:`setup` builds it untrained: its shape is all it gives)."""
        self._separate["budget_model"] = model

    def symbol_budget(self, values: dict[str, Any]) -> float:
        """``S_max = η N L Q / 2`` of a point's condition (the scenario model's ``N``, ``L``:
        a loaded model's, else the untrained reference model's of a scenario of separate
        schemes only)."""
        model = next(iter(self._models.values()), None) or self._separate["budget_model"]
        return separate_task.symbol_budget(
            values["eta"], model.n_features, model.scalars_per_feature, values["bits_per_scalar"]
        )

    def separate_link(self, point: Point) -> tuple[Any, dict[str, Any]]:
        """A separate scheme's link at ``point`` with its chosen pair, and its row columns."""
        values = point.as_dict()
        name = values["scheme"]
        scheme = self.scenario.scheme(name)
        codec = scheme.separate
        options = separate_task.SeparateOptions.from_dict(scheme.separate_options)
        budget = self.symbol_budget(values)
        mean = self._separate["mean"]
        fading = self.fading_point(values, options.fading)
        rate, modulation, _ = separate_task.choose_pair(
            codec, mean, budget, values, name, self._separate["calibration"], options, fading
        )
        if codec == separate_task.CAPACITY:
            link = separate_task.make_link(codec, mean, budget, values, name, options=options,
                                           fading_point=fading)  # fmt: skip
        else:
            link = separate_task.make_link(codec, mean, budget, values, name, rate, modulation,
                                           options, fading)  # fmt: skip
        return link, {"sep_rate": rate, "sep_modulation": modulation}

    def fading_point(self, values: dict[str, Any], method: str = "hierarchical") -> int:
        """The base stream index whose fading a separate scheme uses at condition ``values``:
        that of the condition's semantic link with allocation ``method`` and the scenario's
        modulations, BER model and code (:func:`semcom.link.reference_point`; with the default
        ``hierarchical``, the stream of ``isfr-uep``), so both see the same gains per frame."""
        s = self.scenario
        return reference_point(values, method, s.channel.code, tuple(s.allocation.modulations),
                               s.allocation.ber_model)  # fmt: skip

    def use_models(self, models: dict[str, Any], images: Any, labels: Any = None) -> None:
        """Evaluate with these in-memory models (by codec: model variant or compressed codec
        name) and images instead of :meth:`setup`'s."""
        self._models, self._images, self._labels = dict(models), images, labels

    def switch_choice(self, point: Point) -> tuple[str, dict[str, float]]:
        """A switch scheme's candidate at ``point`` and every candidate's calibration PSNR
        (:func:`semcom.scheme_switch.choose_candidate` on the calibration images; each
        candidate's link is the one of its own row at this condition)."""
        cached = self._switch.get(point.key)
        if cached is None:
            names = self.scenario.scheme(point.as_dict()["scheme"]).switch
            links = {name: self.link(_with_scheme(point, name)) for name in names}
            cached = choose_candidate(links, self._switch["calibration"])
            self._switch[point.key] = cached
        return cached

    def link(self, point: Point) -> SemanticLink:
        """The :class:`SemanticLink` of ``point`` (its condition values and scheme); for a
        switch scheme, that of the candidate chosen on the calibration images."""
        s, values = self.scenario, point.as_dict()
        scheme = s.scheme(values["scheme"])
        if scheme.switch:
            return self.link(_with_scheme(point, self.switch_choice(point)[0]))
        codec = s.scheme_codec(values["scheme"])  # the model variant, or its compressed codec
        model = self._models[codec]
        weights = self.scheme_weights(values["scheme"], int(model.n_features))
        q = self.scheme_q(values["scheme"], weights)
        bits_per_scalar = values["bits_per_scalar"] if q is None else q
        selection = s.scheme_selection(values["scheme"])
        reducer, keep = None, None
        if selection is not None:
            reducer = self.calibration.profile(codec, selection[0]).estimator
            keep = selection[1]
        options = {**s.allocation.options.get(scheme.method, {}), **scheme.options}
        modulations, ber_model = tuple(s.allocation.modulations), s.allocation.ber_model
        if scheme.link is not None:  # (modulation, LDPC rate) entries (isfr-uep-ldpc)
            modulations = coded_entries(scheme.link["modulations"], scheme.link["rates"])
            ber_model = scheme.link.get("ber_model", "bound")
        return SemanticLink(
            model, weights, self.calibration.drop[codec],
            bits_per_scalar=bits_per_scalar, channel=values["channel"],
            n_subchannels=values["n_subchannels"], snr_db=values["snr_db"],
            eta=values["eta"], method=scheme.method, rician_k=values["rician_k"],
            seed=values["seed"], modulations=modulations,
            ber_model=ber_model, code=s.channel.code, method_options=options,
            backend="cuda" if self.device.startswith("cuda") else "cpu",
            selection=reducer, keep=keep,
        )  # fmt: skip

    def scheme_weights(self, name: str, n: int | None = None) -> np.ndarray:
        """The importance ``w[N]`` scheme ``name``'s allocation sees: ``1/N`` for uniform
        weights, else its estimator's calibrated weights (``n``: ``N``, default
        ``model.n_features``)."""
        s = self.scenario
        scheme, spec = s.scheme(name), s.scheme_estimator(name)
        codec = s.scheme_codec(name)  # the model variant, or its compressed codec
        if spec is None:
            n = s.model.n_features if n is None else n
            return np.full(n, 1.0 / n)
        if scheme.importance is None or spec.key == s.default_estimator().key:
            return self.calibration.weights[codec]
        return self.calibration.profile(codec, spec).weights  # its own estimator

    def scheme_q(self, name: str, weights: np.ndarray | None = None) -> np.ndarray | None:
        """Per-feature bits ``Q[N]`` of scheme ``name`` (its ``bits`` allocator on its weights,
        :mod:`semcom.scheme_bits`), or None when it has no ``bits`` (the condition's Q)."""
        bits = self.scenario.scheme(name).bits
        if bits is None:
            return None
        return scheme_bits(bits, self.scheme_weights(name) if weights is None else weights)

    def bits_rows(self) -> list[dict[str, Any]]:
        """Rows of ``bits.csv``: ``scheme, model, bit_allocation, average_bits, feature
        (1-based), weight, bits`` for every scheme with ``bits``."""
        rows = []
        for name in self.scenario.scheme_names():
            bits = self.scenario.scheme(name).bits
            if bits is None:
                continue
            weights = self.scheme_weights(name)
            q = self.scheme_q(name, weights)
            rows += [
                {"scheme": name, "model": self.scenario.scheme(name).model,
                 "bit_allocation": bits["method"], "average_bits": float(bits["average_bits"]),
                 "feature": i + 1, "weight": float(weights[i]), "bits": int(q[i])}
                for i in range(q.size)
            ]  # fmt: skip
        return rows

    def bits_columns(self, name: str, bits_per_scalar: int) -> dict[str, Any]:
        """``bit_allocation, average_bits`` of scheme ``name``: its bit allocator and average
        bits per scalar, or ``none`` and the condition's ``bits_per_scalar``."""
        bits = self.scenario.scheme(name).bits
        if bits is None:
            return {"bit_allocation": "none", "average_bits": float(bits_per_scalar)}
        return {"bit_allocation": bits["method"], "average_bits": float(bits["average_bits"])}

    def estimator_columns(self, name: str) -> dict[str, Any]:
        """``estimator, selection, keep`` of scheme ``name``: the estimator of its weights
        (``none`` for uniform weights), its selection step (``none``) and the features that
        step keeps per image (``N`` without one). The estimators' wall times are in
        ``importance.csv`` and ``ordering.csv``: a timing here would make rows differ between
        a run and its resumed or re-executed twin."""
        s = self.scenario
        spec, selection = s.scheme_estimator(name), s.scheme_selection(name)
        return {
            "estimator": "none" if spec is None else spec.method,
            "selection": "none" if selection is None else selection[0].method,
            "keep": s.model.n_features if selection is None else selection[1],
        }

    def compression_columns(self, name: str) -> dict[str, Any]:
        """``compression`` (the method, ``none`` without one) and the measured encoder size
        of scheme ``name``'s codec (:data:`semcom.scheme_compression.SIZE_COLUMNS`; the dense
        codec's for an uncompressed scheme, measured here when the calibration has none, as
        with :meth:`use_models`)."""
        spec = self.scenario.scheme_compression(name)
        codec = self.scenario.scheme_codec(name)
        size = self.calibration.sizes.get(codec)
        if size is None:
            size = dense_size(self._models[codec])
        return {"compression": NONE if spec is None else spec.method, **size_columns(size)}

    def evaluate(self, point: Point) -> tuple[LinkEvaluation, str]:
        """Draws until the stop rule holds; returns ``(evaluation, stop_reason)``."""
        stop = self.scenario.stop
        name = point.as_dict()["scheme"]
        if self.scenario.scheme(name).separate:
            link, self._separate["columns"] = self.separate_link(point)
            labels = None
        else:
            link, labels = self.link(point), self._labels
        evaluation = LinkEvaluation(
            link, self._images, labels, confidence=stop.confidence,
            compute_ssim="ssim" in self.scenario.metrics,
            compute_ms_ssim="ms_ssim" in self.scenario.metrics,
        )  # fmt: skip
        for draw in range(stop.max_draws):
            evaluation.add_draw(draw)
            if evaluation.n_draws >= stop.min_draws and (
                evaluation.half_width(stop.metric) <= stop.half_width
            ):
                return evaluation, "converged"
        return evaluation, "max_draws"

    def __call__(self, point: Point) -> PointResult:
        """The results row of ``point`` and its ``per_image`` rows (docs/scenarios.md)."""
        start = time.perf_counter()
        evaluation, reason = self.evaluate(point)
        result = evaluation.result()
        values = point.as_dict()
        scheme = self.scenario.scheme(values["scheme"])
        row: dict[str, Any] = {"point": point.index, "key": point.key}
        row.update({name: values[name] for name in AXIS_TYPES if name != "scheme"})
        model = scheme.model
        if scheme.switch:  # the model of the candidate the switch chose at this condition
            model = self.scenario.scheme(self.switch_choice(point)[0]).model
        row.update(scheme=values["scheme"], model=model, weights=scheme.weights,
                   method=scheme.method)  # fmt: skip
        separate = scheme.separate is not None
        if separate:
            row.update(estimator=NONE, selection=NONE, keep=0, compression=NONE,
                       encoder_params=0, encoder_nonzero_params=0, encoder_flops=0.0,
                       encoder_effective_flops=0.0, encoder_weight_bits=float("nan"))  # fmt: skip
        else:
            row.update(self.estimator_columns(values["scheme"]))
            row.update(self.compression_columns(values["scheme"]))
        row.update(self.bits_columns(values["scheme"], values["bits_per_scalar"]))
        row.update(metric_columns(result, ms_ssim=evaluation.compute_ms_ssim))
        row.update(
            mean_selected=result.mean_selected, bits_sent=result.bits_sent,
            bit_errors=result.bit_errors, n_images=result.n_images, n_draws=result.n_draws,
            stop_reason=reason, confidence=result.confidence,
            seconds=time.perf_counter() - start,
        )  # fmt: skip
        budget = self.symbol_budget(values)
        row["bandwidth_ratio"] = separate_task.bandwidth_ratio(budget, self._images.shape[1:])
        link = evaluation.link
        row.update(
            sep_rate=self._separate["columns"]["sep_rate"] if separate else float("nan"),
            sep_modulation=self._separate["columns"]["sep_modulation"] if separate else NONE,
            sep_failures=link.failures if separate else 0,
            sep_failure_rate=link.failures / link.frames if separate else float("nan"),
        )  # fmt: skip
        names = ("psnr_db", "mse", "ssim", *(("ms_ssim",) if evaluation.compute_ms_ssim else ()))
        per_image = {name: evaluation.per_image(name) for name in names}
        images = [
            {"key": point.key, "scheme": values["scheme"], "image": b,
             **{name: float(v[b]) for name, v in per_image.items()}}
            for b in range(evaluation.n_images)
        ]  # fmt: skip
        return PointResult(row=row, tables={"per_image": images})


def _with_scheme(point: Point, scheme: str) -> Point:
    """``point`` with its scheme replaced (a switch scheme's candidate at the same condition)."""
    values = tuple((k, scheme if k == "scheme" else v) for k, v in point.values)
    return Point(point.index, values)


def reference_model(config: Any, image_shape: tuple[int, ...]) -> Any:
    """The untrained model of ``config`` at the test images' ``[C, H, W]`` (its ``N`` and
    ``L`` set the budget of a scenario of separate schemes only; its weights are never used).
    """
    from semcom.models import build_model

    with torch.random.fork_rng(devices=[]):  # leaves torch's global generator as it was
        model = build_model(config.model, config.n_features, **config.model_options)
    return at_input_shape(model.eval(), tuple(image_shape))


def metric_columns(result: LinkResult, ms_ssim: bool = False) -> dict[str, float]:
    """``psnr_db, psnr_ci_low, psnr_ci_high, ssim, ..., accuracy_ci_high`` of ``result``, then
    ``ms_ssim, ms_ssim_ci_low, ms_ssim_ci_high`` when ``ms_ssim`` (a scenario whose
    ``metrics`` name it: the columns of the others are those they always had)."""
    nan = float("nan")
    accuracy = (nan, (nan, nan)) if result.accuracy is None else (
        result.accuracy, result.accuracy_ci)  # fmt: skip
    columns = {}
    for name, prefix, (mean, ci) in (
        ("psnr_db", "psnr", (result.psnr_db, result.psnr_ci)),
        ("ssim", "ssim", (result.ssim, result.ssim_ci)),
        ("mse", "mse", (result.mse, result.mse_ci)),
        ("ber", "ber", (result.ber, result.ber_ci)),
        ("accuracy", "accuracy", accuracy),
        *((("ms_ssim", "ms_ssim", (result.ms_ssim, result.ms_ssim_ci)),) if ms_ssim else ()),
    ):
        columns[name] = float(mean)
        columns[f"{prefix}_ci_low"] = float(ci[0])
        columns[f"{prefix}_ci_high"] = float(ci[1])
    return columns


__all__ = ["AXIS_TYPES", "LinkPointTask", "metric_columns", "typed_axes", "typed_values"]
