"""Routing methods: experts, routers, merging and caching (the ``routing`` family).

Public API::

    ROUTING, RoutingMethod, build_routing, check_architecture

Adding a method is one module with a :class:`RoutingMethod` subclass registered with
``@ROUTING.register(name, description=..., paper=...)`` and one import line below.
"""

from semcom.routing.adaptdhm import AdaptDHM
from semcom.routing.base import ROUTING, RoutingMethod, build_routing, check_architecture
from semcom.routing.ddm import DDM
from semcom.routing.ec_dlm import ECDLM

__all__ = ["ROUTING", "RoutingMethod", "build_routing", "check_architecture"]
__all__ += ["AdaptDHM"]
__all__ += ["DDM"]
__all__ += ["ECDLM"]
