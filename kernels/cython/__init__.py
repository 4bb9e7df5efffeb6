"""Cython + OpenMP kernels (compiled ``.pyx``). Importing this package fails with ImportError
when the extension was not built; ``db.backends()`` then reports the cython backend as
unavailable with that reason. A build without OpenMP runs serial and warns here."""

import warnings

from dlbench.kernels.cython import _omp

if not _omp.openmp_enabled():
    warnings.warn("dlbench's Cython kernels were built without OpenMP: they run on one thread",
                  RuntimeWarning, stacklevel=2)
