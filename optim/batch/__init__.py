"""Batched allocation: :func:`solve_batch` solves one (P0) per frame for many channel draws
in one Numba-parallel call (:mod:`optim.batch.solve`)."""

from optim.batch.solve import (
    BatchResult,
    batch_methods,
    check_gains,
    faster_on_gpu,
    solve_batch,
)

__all__ = ["BatchResult", "batch_methods", "check_gains", "faster_on_gpu", "solve_batch"]
