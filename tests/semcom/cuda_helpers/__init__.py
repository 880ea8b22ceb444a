"""Scripts run in a subprocess under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``)."""
