"""Routing methods: experts, routers, merging and caching (the ``routing`` family).

Public API::

    ROUTING, RoutingMethod, build_routing, check_architecture
    OASIS (oasis)      heads whose attention stays local become window heads

Adding a method is one module with a :class:`RoutingMethod` subclass registered with
``@ROUTING.register(name, description=..., paper=...)`` and one import line below.
"""

from semcom.routing.base import ROUTING, RoutingMethod, build_routing, check_architecture
from semcom.routing.oasis import OASIS

__all__ = [
    "OASIS",
    "ROUTING",
    "RoutingMethod",
    "build_routing",
    "check_architecture",
]
