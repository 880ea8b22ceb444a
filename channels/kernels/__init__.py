"""Numba kernels of the link Monte Carlo (CPU now; CUDA twins later)."""
