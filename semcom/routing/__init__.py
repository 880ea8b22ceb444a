"""Routing methods: experts, routers, merging and caching (the ``routing`` family).

Public API::

    ROUTING, RoutingMethod, build_routing, check_architecture
    DDM (ddm), AdaptDHM (adaptdhm), ECDLM (ec-dlm)      channel-conditioned experts
    ExpertMerging (expert-merging)                       merged SNR-bin experts
    InformedRouting (informed-routing)                   execute or forecast (vit)
    DiTRedundancy (dit-redundancy)                       cached layers across frames
    DOIT (doit)                                          Doob h-transform refinement
    OASIS (oasis)                                        local heads become window heads (vit)
    SHRP (shrp)                                          heads as top-1 experts, pruned (vit)

Adding a method is one module with a :class:`RoutingMethod` subclass registered with
``@ROUTING.register(name, description=..., paper=...)`` and one import line below.
"""

from semcom.routing.adaptdhm import AdaptDHM
from semcom.routing.base import ROUTING, RoutingMethod, build_routing, check_architecture
from semcom.routing.ddm import DDM
from semcom.routing.doit import DOIT
from semcom.routing.ec_dlm import ECDLM
from semcom.routing.informed import InformedRouting
from semcom.routing.merging import ExpertMerging
from semcom.routing.oasis import OASIS
from semcom.routing.redundancy import DiTRedundancy
from semcom.routing.shrp import SHRP

__all__ = [
    "DDM",
    "DOIT",
    "ECDLM",
    "OASIS",
    "ROUTING",
    "SHRP",
    "AdaptDHM",
    "DiTRedundancy",
    "ExpertMerging",
    "InformedRouting",
    "RoutingMethod",
    "build_routing",
    "check_architecture",
]
