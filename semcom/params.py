"""The scikit-learn style options of a pluggable method: ``get_params`` and the matching repr.

A method class stores each constructor argument under its own name (``self.lr = lr``), so its
options can be read back from the ``__init__`` signature. :class:`Configurable` turns that into
``get_params()`` and a ``repr`` that rebuilds the object, shared by the importance estimators
and the compressors.
"""

from __future__ import annotations

import inspect
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
