"""dlbench's accelerated kernels, one sub-package per backend (installed as ``dlbench.kernels``):

- ``reference``  pure NumPy, the executable specification (cites the book's equations)
- ``numba_cpu``  Numba ``@njit(parallel=True)`` CPU kernels
- ``cython``     compiled ``.pyx`` with typed memoryviews and OpenMP ``prange``
- ``numba_cuda`` ``numba.cuda`` kernels (GPU, or the simulator for correctness)

Each module registers its kernels with ``dlbench.registry.register_kernel`` on import.
"""

import sys as _sys
import types as _types


class _CallableKernelsModule(_types.ModuleType):
    """``dlbench.kernels`` is both this package and the function ``db.kernels(op=None, backend=None)``
    (importing the sub-package sets the attribute ``dlbench.kernels``, so the package itself must
    answer the call)."""

    def __call__(self, op=None, backend=None):
        from dlbench.registry import kernels

        return kernels(op=op, backend=backend)


_sys.modules[__name__].__class__ = _CallableKernelsModule
