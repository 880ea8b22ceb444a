"""One registry mechanism for every pluggable method family of semcom.

A *family* (``"importance"``, ``"allocation"``, and the learning-side families of later issues)
is a :class:`Registry`: a name -> implementation map whose entries carry a one-line description
and the source paper. A name in a scenario file selects an implementation
(``importance: {method: masking}``); adding a method is one file and one ``register`` line::

    IMPORTANCE = Registry("importance")

    @IMPORTANCE.register("masking", description="Drop in MSE when a feature is zeroed",
                         paper="arXiv:2604.00595")
    class MaskingImportance: ...

    IMPORTANCE.get("masking")        # -> MaskingImportance
    IMPORTANCE.get("nope")           # ConfigError: importance method: 'nope' is not one of ...

Every registry created is listed in a module-level index, so :func:`all_methods` reports the
methods of all families (``semcom methods``). The ``allocation`` family mirrors
:data:`optim.methods.METHODS`: ``optim`` may not import ``semcom`` (docs/architecture.md), so this
module wraps optim's entries into a semcom :class:`Registry` when it is imported.

Names are case-insensitive and stored lower-case. Registering a name twice in one family is a
programming error (``ValueError``); looking up an unknown name is a user error
(:class:`channels.errors.ConfigError` listing the available names).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from channels.errors import ConfigError

T = TypeVar("T")

FAMILY_MODULES: tuple[str, ...] = (
    "semcom.importance",
    "semcom.schemes",
    "semcom.compression",
    "semcom.bitalloc",
    "semcom.training",
    "semcom.adapters",
    "semcom.routing",
)
"""Modules whose import registers a family; :func:`all_methods` imports them first."""

ISFR_PAPER = "arXiv:2604.00595"
"""Zhan et al., ISFR / SI-UEP: the paper this simulator reproduces (docs/method.md)."""


@dataclass(frozen=True)
class MethodInfo:
    """One registered method: its ``family``, ``name``, one-line ``description`` and ``paper``.

    ``paper`` is an arXiv id (``"arXiv:2604.00595"``) where one exists, else a short reference
    (a book, a design note such as ``"docs/method.md §6.2"``) or the empty string.
    """

    family: str
    name: str
    description: str
    paper: str

    def to_dict(self) -> dict[str, str]:
        """JSON-ready ``{family, name, description, paper}``."""
        return asdict(self)


_FAMILIES: dict[str, Registry] = {}


def _key(name: str) -> str:
    return str(name).strip().lower()


class Registry:
    """Name -> implementation for one method family.

    Args:
        family: the family's name, e.g. ``"importance"``; unique among registries.

    Examples:
        >>> from semcom.registry import ALLOCATION
        >>> "hierarchical" in ALLOCATION, ALLOCATION.check("Hierarchical")
        (True, 'hierarchical')
        >>> ALLOCATION.info("hierarchical").paper
        'arXiv:2604.00595'
    """

    def __init__(self, family: str) -> None:
        family = _key(family)
        if not family:
            raise ValueError("registry family name must be non-empty")
        if family in _FAMILIES:
            raise ValueError(f"registry family {family!r} already exists")
        self.family = family
        self._entries: dict[str, tuple[Any, MethodInfo]] = {}
        _FAMILIES[family] = self

    def register(self, name: str, description: str = "", paper: str = "") -> Callable[[T], T]:
        """Decorator registering a function or class under ``name`` (returned unchanged).

        ``description`` is one line (no newline); ``paper`` an arXiv id where there is one.
        """
        key = _key(name)
        if not key:
            raise ValueError(f"{self.family}: method name must be non-empty")
        if "\n" in description:
            raise ValueError(f"{self.family}/{key}: the description must be one line")

        def deco(obj: T) -> T:
            if key in self._entries:
                raise ValueError(f"{self.family}: method {key!r} is already registered")
            self._entries[key] = (obj, MethodInfo(self.family, key, description, paper))
            return obj

        return deco

    def _lookup(self, name: str) -> tuple[Any, MethodInfo]:
        key = _key(name)
        if key not in self._entries:
            available = ", ".join(self._entries) or "none registered"
            raise ConfigError(f"{self.family} method: {name!r} is not one of {available}")
        return self._entries[key]

    def get(self, name: str) -> Any:
        """The implementation registered as ``name``; ConfigError listing the names if unknown."""
        return self._lookup(name)[0]

    def info(self, name: str) -> MethodInfo:
        """The :class:`MethodInfo` of ``name`` (ConfigError if unknown)."""
        return self._lookup(name)[1]

    def check(self, name: str) -> str:
        """Validate ``name`` and return its canonical (lower-case) form."""
        return self._lookup(name)[1].name

    def build(self, name: str, options: dict[str, Any], field: str) -> Any:
        """An instance of the class registered as ``name``, built from ``options``.

        Every key of ``options`` must be a keyword of the class's constructor, which validates
        the values; a bad key or value is a one-line :class:`ConfigError` under ``field``
        (``"<field>.<option>: <value> is invalid; allowed: ..."``).

        Examples:
            >>> from semcom.training import TRAINING
            >>> TRAINING.build("satimp", {"b1": 2.0}, "method_options").b1
            2.0
            >>> try:
            ...     TRAINING.build("satimp", {"bee": 1}, "method_options")
            ... except ConfigError as error:
            ...     print(error)
            method_options.bee: 1 is invalid; allowed: options of satimp: b1, b2
        """
        import inspect

        from channels.errors import fail

        cls = self.get(name)
        accepted = [k for k in inspect.signature(cls.__init__).parameters if k != "self"]
        for key in options:
            if key not in accepted:
                allowed = f"options of {self.check(name)}: {', '.join(accepted) or 'none'}"
                raise fail(f"{field}.{key}", options[key], allowed)
        try:
            return cls(**options)
        except ConfigError as exc:
            raise ConfigError(f"{field}.{exc}") from None

    def names(self) -> list[str]:
        """Registered names in registration order."""
        return list(self._entries)

    def methods(self) -> list[MethodInfo]:
        """:class:`MethodInfo` of every entry, in registration order."""
        return [info for _, info in self._entries.values()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _key(name) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.family!r}, names={self.names()})"


def families() -> dict[str, Registry]:
    """Every registry created so far (after importing :data:`FAMILY_MODULES`), by family."""
    for module in FAMILY_MODULES:
        importlib.import_module(module)
    return dict(_FAMILIES)


def all_methods() -> list[MethodInfo]:
    """Every registered method of every family, grouped by family in creation order."""
    return [info for registry in families().values() for info in registry.methods()]


def _allocation_paper(source: str) -> str:
    """Paper of an optim method: the ISFR paper for the methods of docs/method.md §5-§6, else
    optim's own source note (e.g. ``"issue 3 item 4; optim.exact"`` for the reference optimum)."""
    return ISFR_PAPER if "docs/method.md" in source else source


def _mirror_allocation() -> Registry:
    """The ``allocation`` family: one entry per :data:`optim.methods.METHODS` entry.

    Each entry is optim's :class:`optim.methods.Method` itself (callable as
    ``method(problem, **options) -> Allocation``; ``optim.solve(problem, name)`` is the scored
    way to run it).
    """
    from optim.methods import METHODS

    registry = Registry("allocation")
    for name, method in METHODS.items():
        registry.register(name, method.description, _allocation_paper(method.source))(method)
    return registry


ALLOCATION = _mirror_allocation()
"""The allocation methods of :mod:`optim.methods`, as a semcom registry family."""

__all__ = ["ALLOCATION", "FAMILY_MODULES", "MethodInfo", "Registry", "all_methods", "families"]
