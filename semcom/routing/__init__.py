"""Routing methods: experts, routers, merging and caching (the ``routing`` family).

Public API::

    ROUTING, RoutingMethod, build_routing, check_architecture
    OASIS (oasis)      heads whose attention stays local become window heads
    SHRP (shrp)        heads as top-1-routed experts, pruned by usage

Adding a method is one module with a :class:`RoutingMethod` subclass registered with
``@ROUTING.register(name, description=..., paper=...)`` and one import line below.
"""

from semcom.routing.base import ROUTING, RoutingMethod, build_routing, check_architecture
from semcom.routing.oasis import OASIS
from semcom.routing.shrp import SHRP

__all__ = [
    "OASIS",
    "ROUTING",
    "SHRP",
    "RoutingMethod",
    "build_routing",
    "check_architecture",
]
