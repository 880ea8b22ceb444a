"""Quantiser bits per feature chosen from importance (the ``bit-allocation`` family).

Public API::

    BIT_ALLOCATION                     the "bit-allocation" family of semcom.registry
    BitAllocator                       base class: allocate(w, average_bits, q_min, q_max) -> Q[N]
    check_budget, check_weights        the shared input checks

Adding a method is one module with a :class:`BitAllocator` subclass registered with
``@BIT_ALLOCATION.register(name, description=..., paper=...)`` and one import line below.
"""

from semcom.bitalloc.base import BIT_ALLOCATION, MAX_BITS, BitAllocator, check_budget, check_weights

__all__ = ["BIT_ALLOCATION", "MAX_BITS", "BitAllocator", "check_budget", "check_weights"]
