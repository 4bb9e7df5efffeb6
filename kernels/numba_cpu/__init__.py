"""Numba CPU kernels: ``@njit(parallel=True, cache=True)``; fastmath only where it cannot change results
beyond the tolerances of the tests (no reassociation of reductions the reference does in order)."""
