"""The scikit-learn style options of a pluggable method: ``get_params`` and the matching repr.

A method class stores each constructor argument under its own name (``self.lr = lr``), so its
options can be read back from the ``__init__`` signature. :class:`Configurable` turns that into
``get_params()`` and a ``repr`` that rebuilds the object, shared by the importance estimators
and the compressors. :class:`MethodSpec` is a method name with those options resolved, the
identity under which a scenario fits an estimator or compresses a codec once.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from typing import Any


class Configurable:
    """Mixin: :meth:`get_params` from the ``__init__`` signature, and a repr of those options.

    Examples:
        >>> class Method(Configurable):
        ...     def __init__(self, lr: float = 0.1, steps: int = 5) -> None:
        ...         self.lr, self.steps = lr, steps
        >>> Method(steps=3).get_params()
        {'lr': 0.1, 'steps': 3}
        >>> Method()
        Method(lr=0.1, steps=5)
    """

    def get_params(self) -> dict[str, Any]:
        """Constructor options (scikit-learn style)."""
        names = inspect.signature(type(self).__init__).parameters
        return {k: getattr(self, k) for k in names if k != "self"}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


@dataclass(frozen=True)
class MethodSpec:
    """A registered method's name and its resolved options (every default filled in).

    Examples:
        >>> class Method(Configurable):
        ...     def __init__(self, lr: float = 0.1) -> None:
        ...         self.lr = lr
        >>> MethodSpec.of("m", Method()).options_json
        '{"lr":0.1}'
    """

    method: str
    options: dict[str, Any]

    @classmethod
    def of(cls, method: str, instance: Configurable) -> MethodSpec:
        """The spec of ``instance`` (built from ``method`` and its options): its
        ``get_params()`` through a JSON round trip, so the options are plain JSON values."""
        return cls(method, json.loads(json.dumps(instance.get_params())))

    @property
    def options_json(self) -> str:
        """The options as canonical JSON (sorted keys, no spaces)."""
        return json.dumps(self.options, sort_keys=True, separators=(",", ":"))
