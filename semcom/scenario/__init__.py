"""Scenario files: the validated description of one experiment (docs/scenarios.md).

Public API::

    load_scenario(source, overrides=()) -> Scenario     file or mapping, then --set overrides
    apply_overrides(raw, overrides) -> dict             "a.b.c=VALUE" (VALUE is YAML)
    Scenario                                            the pydantic model and its derived values:
        .resolved() .config_hash() .axes() .base_point() .scheme(name) .scheme_names()
        .model_variants() .train_config(variant) .output_dir() .dump(path)
    ScenarioError(ConfigError)                          .problems: one line per problem
    SWEEP_AXES, CONDITION_COLUMNS

Modules: :mod:`~semcom.scenario.schema` (the sections), :mod:`~semcom.scenario.config`
(:class:`Scenario`), :mod:`~semcom.scenario.problems` (messages),
:mod:`~semcom.scenario.checks` (registry, data and hardware checks),
:mod:`~semcom.scenario.loader` (YAML, overrides).

Examples:
    >>> s = load_scenario({"name": "demo", "sweep": {"eta": [0.25, 0.5]}}, ["channel.snr_db=5"])
    >>> s.base_point()["snr_db"], s.axes()["eta"]
    (5.0, [0.25, 0.5])
    >>> load_scenario({"name": "demo", "channel": {"modle": "awgn"}})
    Traceback (most recent call last):
    ...
    semcom.scenario.problems.ScenarioError: channel.modle: unknown key; allowed: model, \
rician_k, n_subchannels, snr_db, bits_per_scalar, code
"""

from semcom.scenario.config import Scenario
from semcom.scenario.loader import apply_overrides, load_scenario
from semcom.scenario.problems import ScenarioError
from semcom.scenario.schema import CONDITION_COLUMNS, SWEEP_AXES, CustomScheme

__all__ = [
    "CONDITION_COLUMNS",
    "SWEEP_AXES",
    "CustomScheme",
    "Scenario",
    "ScenarioError",
    "apply_overrides",
    "load_scenario",
]
