"""Routing methods: experts, routers, merging and caching (the ``routing`` family).

Public API::

    ROUTING, RoutingMethod, build_routing, check_architecture

Adding a method is one module with a :class:`RoutingMethod` subclass registered with
``@ROUTING.register(name, description=..., paper=...)`` and one import line below.
"""

from semcom.routing.base import ROUTING, RoutingMethod, build_routing, check_architecture
from semcom.routing.doit import DOIT
from semcom.routing.informed import InformedRouting
from semcom.routing.merging import ExpertMerging
from semcom.routing.redundancy import DiTRedundancy

__all__ = [
    "ROUTING",
    "RoutingMethod",
    "build_routing",
    "check_architecture",
    "ExpertMerging",
    "InformedRouting",
    "DiTRedundancy",
    "DOIT",
]
