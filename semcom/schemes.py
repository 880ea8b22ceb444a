"""Transmission schemes: which trained model, which importance weights, which allocation.

A *scheme* is what one curve of a figure shows (docs/method.md §6.2). It names

- a **model variant** (:data:`MODEL_VARIANTS`): the training channel the auto-encoder was
  trained with: ``isfr`` (nested dropout + BER matching), ``conventional`` (one uniform BSC
  flip probability, no nested dropout), ``conventional-dropout`` (the same, plus random
  non-nested feature dropout at ISFR's rate, :class:`semcom.isfr.RandomDropout`: every feature
  kept with probability ``(1/N) Σ_i r_i``, so the expected number of kept features equals the
  nested dropout's retention sum ``Σ_i r_i``), an ISFR ablation with one module switched off,
  or ``isfr-highsnr`` (ISFR with the tail-training retention law of
  :data:`HIGH_SNR_OVERRIDES`);
- the **weights** ``w`` the allocation sees: ``importance`` (the scenario's importance
  estimator, e.g. masking, measured on held-out calibration images) or ``uniform``
  (``w_i = 1/N``);
- an **allocation method** of :mod:`optim` (:data:`semcom.registry.ALLOCATION`) with options;
- optionally its own **importance estimator** (``importance = {"method", "options"}``), used
  instead of the scenario's for its ``importance`` weights, and a **selection step**
  (``selection = {"method", "keep", "options"}``): a token-reducing estimator whose per-image
  ``keep`` mask decides which features the allocation may choose from (:mod:`semcom.link`).

The built-in schemes are a :class:`semcom.registry.Registry` family (``semcom methods`` lists
them); a scenario file may also define its own under another name.

============================  ======================  ==========  ===================
scheme                        model variant           weights     allocation
============================  ======================  ==========  ===================
isfr-uep (proposed)           isfr                    importance  hierarchical
ui-ep                         conventional            uniform     ui-ep
ui-opt                        conventional            uniform     ui-opt
passive-uep                   conventional            importance  passive
ui-ep-dropout                 conventional-dropout    uniform     ui-ep
ui-opt-dropout                conventional-dropout    uniform     ui-opt
passive-uep-dropout           conventional-dropout    importance  passive
isfr-no-dropout-uep           isfr-no-dropout         importance  hierarchical
isfr-no-ber-matching-uep      isfr-no-ber-matching    importance  hierarchical
isfr-equal-power              isfr                    importance  equal-power
isfr-hungarian                isfr                    importance  hungarian
isfr-exact                    isfr                    importance  exact
isfr-ui-opt                   isfr                    uniform     ui-opt
isfr-uep-ldpc                 isfr                    importance  hierarchical (LDPC)
isfr-uep-highsnr              isfr-highsnr            importance  hierarchical
isfr-uep-switch               isfr | isfr-highsnr     importance  hierarchical (switch)
============================  ======================  ==========  ===================

The **separate** schemes (``separate`` set: an image codec, 5G LDPC and Gray QAM, or the
capacity bound; :mod:`semcom.separate`) use no trained model and ignore importance; their
``model`` and ``method`` are ``none``: ``sep-jpeg2000-ldpc``, ``sep-webp-ldpc``,
``sep-avif-ldpc``, ``sep-hevc-ldpc`` (HEVC intra standing in for BPG; needs the optional
``pillow-heif``, ``pip install "semcom[hevc]"``) and ``sep-capacity``. A scenario evaluates
them next to its semantic schemes on the same conditions and budgets
(:mod:`semcom.link_task`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from semcom.registry import ISFR_PAPER, Registry

WEIGHTS = ("importance", "uniform")
NO_MODEL = "none"
"""The ``model`` and ``method`` of the separate schemes (they use neither)."""
SEPARATE_SCHEMES = (
    "sep-jpeg2000-ldpc", "sep-webp-ldpc", "sep-avif-ldpc", "sep-hevc-ldpc", "sep-capacity",
)  # fmt: skip
"""The built-in separate source-channel coding schemes (:mod:`semcom.separate`)."""
"""What the allocation is told about feature importance."""


@dataclass(frozen=True)
class ModelVariant:
    """How one model variant is trained: the training channel and its option overrides.

    ``isfr_overrides`` are applied on top of the scenario's ``training.isfr`` (for
    ``scheme="isfr"``) or ``training.conventional`` (for ``scheme="conventional"``) options
    of :func:`semcom.isfr.training_channel`. ``from_isfr`` names options that are taken from
    ``training.isfr`` when the scenario sets them there (before the overrides): the
    ``conventional-dropout`` variant takes the nested-dropout law from it, so that its random
    dropout rate follows ISFR's whatever the scenario sets.
    """

    training_scheme: str
    isfr_overrides: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    from_isfr: tuple[str, ...] = ()


HIGH_SNR_OVERRIDES: dict[str, Any] = {"law": "uniform", "p_nd": 0.25, "eps_max": 1e-2}
"""The training-channel options of the ``isfr-highsnr`` variant (on top of ``training.isfr``).

With the default law (geometric, ``ρ = 0.1``, ``p_nd = 1``) feature 16 is kept in 2.5% of the
training samples (``r_16 = P(b = 16)``), so the tail is barely trained and the full-feature
(clean) PSNR stays 1.5-1.8 dB below the conventional model's: ISFR-UEP loses when the channel
is good enough to send every feature. Here a sample is masked with probability ``p_nd = 0.25``
only, by a uniform cut-off, so ``r_i = 1 - p_nd + p_nd (N - i + 1)/N`` (``r_16 = 0.766`` for
``N = 16``), and the BER profile ends at ``ε_max = 1e-2`` instead of ``5e-2``: every feature is
trained as a full feature in most steps while a quarter of the steps still teaches the prefix
order that the low-SNR allocation relies on."""

MODEL_VARIANTS: dict[str, ModelVariant] = {
    "isfr": ModelVariant("isfr", {}, "ISFR: nested dropout + BER matching (docs/method.md §2)"),
    "conventional": ModelVariant(
        "conventional", {}, "uniform BSC flip probability, no nested dropout (docs/method.md §2.5)"
    ),
    "conventional-dropout": ModelVariant(
        "conventional",
        {"random_dropout": True},
        "conventional training plus random non-nested feature dropout at ISFR's rate "
        "(expected kept features = the nested-dropout retention sum)",
        ("law", "rho", "n_min", "p_nd"),
    ),
    "isfr-no-dropout": ModelVariant(
        "isfr", {"nested_dropout": False}, "ISFR without nested dropout (ablation)"
    ),
    "isfr-no-ber-matching": ModelVariant(
        "isfr", {"distortion": False}, "ISFR without BER matching (ablation)"
    ),
    "isfr-highsnr": ModelVariant(
        "isfr",
        dict(HIGH_SNR_OVERRIDES),
        "ISFR with a retention law that trains the tail: uniform cut-off, only a fraction "
        "p_nd of the samples masked, a milder BER profile (no loss at high SNR)",
    ),
}
"""Model variant name -> how it is trained."""


@dataclass(frozen=True)
class Scheme:
    """One transmission scheme: ``model`` variant, ``weights`` kind, allocation ``method``.

    ``options`` are passed to ``optim.solve`` for this scheme (e.g. ``{"refine": False}``).
    ``importance`` is ``None`` (the scenario's estimator) or ``{"method": NAME, "options":
    {...}}``, the estimator of this scheme's ``importance`` weights. ``selection`` is ``None``
    (every feature may be sent) or ``{"method": NAME, "keep": INT or FRACTION, "options":
    {...}}``, a registered estimator with ``reduce`` whose per-image mask of ``keep`` features
    the allocation chooses from. ``compression`` is ``None`` (the trained codec as it is) or
    ``{"method": NAME, "options": {...}}``, a :data:`semcom.compression.COMPRESSION` method
    applied to the codec before evaluation. ``bits`` is ``None`` (the condition's one
    ``bits_per_scalar`` for every feature) or ``{"method", "average_bits", "q_min", "q_max",
    "options"}``, a registered bit allocator (:mod:`semcom.bitalloc`) that turns the scheme's
    weights into per-feature bits ``Q[N]`` (:mod:`semcom.scheme_bits`). ``separate`` is None
    (a semantic scheme) or the codec of a separate scheme (``"jpeg2000"``, ``"webp"``,
    ``"avif"``, ``"hevc"``, or ``"capacity"`` for the capacity bound; :mod:`semcom.separate`).
    ``link`` is ``None`` (the scenario's modulation set, uncoded) or ``{"modulations": [...],
    "rates": [...], "ber_model": ...}``: the allocation's entries are every (modulation, 5G
    LDPC code rate) pair (:func:`channels.coded.coded_entries`; rate ``"1"`` = uncoded), each
    coded feature LDPC-encoded on the link (:mod:`channels.coded_link`).
    ``switch`` is None or the names of two or more built-in semantic schemes: per condition
    the scheme runs the candidate with the highest mean PSNR on the calibration images
    (:mod:`semcom.scheme_switch`); ``model``, ``weights`` and ``method`` are then the first
    candidate's.
    ``separate_options`` is None (a built-in separate scheme: the defaults of
    :class:`semcom.separate.task.SeparateOptions`) or a separate scheme's own options from a
    scenario file (``rates``, ``modulations``, ``power``, ``capacity_codecs``,
    ``calibration_images``, ``calibration_draws``, ``num_iter``, ``fading``).
    """

    model: str
    weights: str
    method: str
    options: dict[str, Any] = field(default_factory=dict)
    importance: dict[str, Any] | None = None
    selection: dict[str, Any] | None = None
    compression: dict[str, Any] | None = None
    bits: dict[str, Any] | None = None
    separate: str | None = None
    link: dict[str, Any] | None = None
    separate_options: dict[str, Any] | None = None
    switch: tuple[str, ...] | None = None


LDPC_LINK: dict[str, Any] = {
    "modulations": ["qpsk", "16qam", "64qam"],
    "rates": ["1/3", "1/2", "2/3", "5/6", "1"],
    "ber_model": "bound",
}
"""The link overrides of ``isfr-uep-ldpc``: the allocation's entries are every (modulation,
5G LDPC rate) pair (rate 1: uncoded), with the bound BER model (coded entries use the
exponential fit of their measured curve, :mod:`channels.coded_table`)."""


SCHEMES = Registry("scheme")
"""The built-in schemes (docs/method.md §6.2), by name."""

_BUILT_IN = (
    ("isfr-uep", Scheme("isfr", "importance", "hierarchical"),
     "Proposed: ISFR model, importance weights, SI-UEP hierarchical solver"),
    ("ui-ep", Scheme("conventional", "uniform", "ui-ep"),
     "Conventional model, uniform weights, equal power, one modulation, random matching"),
    ("ui-opt", Scheme("conventional", "uniform", "ui-opt"),
     "Conventional model, uniform weights, the same SP1-SP4 solver"),
    ("passive-uep", Scheme("conventional", "importance", "passive"),
     "Conventional model, post-hoc importance, features sorted by weight, SP1-SP4"),
    ("ui-ep-dropout", Scheme("conventional-dropout", "uniform", "ui-ep"),
     "ui-ep on the conventional model trained with random non-nested feature dropout"),
    ("ui-opt-dropout", Scheme("conventional-dropout", "uniform", "ui-opt"),
     "ui-opt on the conventional model trained with random non-nested feature dropout"),
    ("passive-uep-dropout", Scheme("conventional-dropout", "importance", "passive"),
     "passive-uep on the conventional model trained with random non-nested feature dropout"),
    ("isfr-no-dropout-uep", Scheme("isfr-no-dropout", "importance", "hierarchical"),
     "Ablation: ISFR without nested dropout, SI-UEP"),
    ("isfr-no-ber-matching-uep", Scheme("isfr-no-ber-matching", "importance", "hierarchical"),
     "Ablation: ISFR without BER matching, SI-UEP"),
    ("isfr-equal-power", Scheme("isfr", "importance", "equal-power"),
     "Ablation: ISFR model, SI-UEP with equal power"),
    ("isfr-hungarian", Scheme("isfr", "importance", "hungarian"),
     "Ablation: ISFR model, Hungarian instead of greedy matching"),
    ("isfr-exact", Scheme("isfr", "importance", "exact"),
     "Ablation: ISFR model, the exact (brute-force / branch-and-bound) optimum"),
    ("isfr-ui-opt", Scheme("isfr", "uniform", "ui-opt"),
     "Ablation: ISFR model told nothing about importance (uniform weights, SP1-SP4)"),
    ("isfr-uep-ldpc", Scheme("isfr", "importance", "hierarchical", link=LDPC_LINK),
     "ISFR model, SI-UEP over (modulation, 5G LDPC rate) pairs: each feature LDPC-coded"),
    ("isfr-uep-highsnr", Scheme("isfr-highsnr", "importance", "hierarchical"),
     "ISFR-UEP on the isfr-highsnr model (tail-training retention law): no loss at high SNR"),
    ("isfr-uep-switch", Scheme("isfr", "importance", "hierarchical",
                               switch=("isfr-uep", "isfr-uep-highsnr")),
     "Per condition, isfr-uep or isfr-uep-highsnr, whichever is better on the calibration "
     "images (two models, a 1-bit switch known to both ends)"),
)  # fmt: skip
_SEPARATE = (
    ("sep-jpeg2000-ldpc", "jpeg2000",
     "Separate: JPEG 2000 + 5G LDPC + Gray QAM, best (rate, modulation) per condition"),
    ("sep-webp-ldpc", "webp", "Separate: WebP + 5G LDPC + Gray QAM, best (rate, modulation)"),
    ("sep-avif-ldpc", "avif", "Separate: AVIF + 5G LDPC + Gray QAM, best (rate, modulation)"),
    ("sep-hevc-ldpc", "hevc",
     "Separate: HEVC intra (BPG's codec, in HEIF; optional pillow-heif) + 5G LDPC + Gray QAM"),
    ("sep-capacity", "capacity",
     "Separate bound: the best codec at the frame's instantaneous capacity, all or nothing"),
)  # fmt: skip
_BUILT_IN += tuple(
    (name, Scheme(NO_MODEL, "uniform", NO_MODEL, separate=codec), description)
    for name, codec, description in _SEPARATE
)
for _name, _scheme, _description in _BUILT_IN:
    SCHEMES.register(_name, _description, f"{ISFR_PAPER}; docs/method.md §6.2")(_scheme)

UNIFORM_IMPORTANCE_BASELINES = ("ui-ep", "ui-opt", "passive-uep")
"""The conventional-model schemes that ``isfr-uep`` is compared with (docs/method.md §6.1)."""

DROPOUT_BASELINES = ("ui-ep-dropout", "ui-opt-dropout", "passive-uep-dropout")
"""The same baselines on the ``conventional-dropout`` model (the stronger uniform-importance
decoder: it has seen zero-filled features in training)."""

PROPOSED = "isfr-uep"

__all__ = [
    "DROPOUT_BASELINES",
    "HIGH_SNR_OVERRIDES",
    "MODEL_VARIANTS",
    "NO_MODEL",
    "PROPOSED",
    "SCHEMES",
    "SEPARATE_SCHEMES",
    "UNIFORM_IMPORTANCE_BASELINES",
    "WEIGHTS",
    "ModelVariant",
    "Scheme",
]
