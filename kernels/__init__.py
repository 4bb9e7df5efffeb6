"""dlbench's accelerated kernels, one sub-package per backend (installed as ``dlbench.kernels``):

- ``reference``  pure NumPy, the executable specification (cites the book's equations)
- ``numba_cpu``  Numba ``@njit(parallel=True)`` CPU kernels
- ``cython``     compiled ``.pyx`` with typed memoryviews and OpenMP ``prange``
- ``numba_cuda`` ``numba.cuda`` kernels (GPU, or the simulator for correctness)

Each module registers its kernels with ``dlbench.registry.register_kernel`` on import.
"""
