"""semcom: an end-to-end semantic-communication link simulator (ISFR + SI-UEP).

The names a user needs are importable from the package; each submodule loads on first use, so
``import semcom`` stays cheap (no torch, SciPy, Numba or Sionna until a name needs them).

Examples:
    >>> import semcom
    >>> semcom.__version__
    '0.1.0'
    >>> model = semcom.build_model("mlp", n_features=8)
    >>> model.n_features
    8
    >>> "masking" in semcom.IMPORTANCE
    True
"""

from channels.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    # the link
    "SemanticLink": "semcom.link",
    "LinkFrames": "semcom.link",
    "LinkEvaluation": "semcom.evaluation",
    "LinkResult": "semcom.evaluation",
    # models and data
    "build_model": "semcom.models.build",
    "MODELS": "semcom.models.build",
    "load_dataset": "semcom.data",
    "ImageDataset": "semcom.data",
    "DATASETS": "semcom.data",
    # training
    "train_model": "semcom.train",
    "TrainConfig": "semcom.train_config",
    "TrainedModel": "semcom.checkpoints",
    "load_checkpoint": "semcom.checkpoints",
    "training_channel": "semcom.isfr",
    # importance
    "estimate": "semcom.importance",
    "make_estimator": "semcom.importance",
    "IMPORTANCE": "semcom.importance",
    # scenarios and sweeps
    "load_scenario": "semcom.scenario",
    "Scenario": "semcom.scenario",
    "run_scenario": "semcom.runner",
    "SCHEMES": "semcom.schemes",
    "Scheme": "semcom.schemes",
    # registries
    "Registry": "semcom.registry",
    "ALLOCATION": "semcom.registry",
    "all_methods": "semcom.registry",
    "families": "semcom.registry",
    # metrics
    "psnr": "semcom.metrics",
    "ssim": "semcom.metrics",
    "mse": "semcom.metrics",
    "mean_ci": "semcom.metrics",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(["__version__", *_EXPORTS])
