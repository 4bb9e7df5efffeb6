"""One thread setting for every CPU backend: Numba, OpenMP (Cython), BLAS (threadpoolctl), torch.

``set_threads(n)`` applies ``n`` everywhere and returns what it applied; ``blas_info()`` records
which BLAS library and which kernel (e.g. OpenBLAS 'Haswell', 'SkylakeX') runs.
"""

from __future__ import annotations

import os

from dlbench.errors import UserError

_current: int | None = None
_limiter = None


def default_threads() -> int:
    """All cores usable by this process (respects affinity masks)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def set_threads(n: int | None = None) -> dict:
    """Set the thread count of every CPU backend to ``n`` (default: all cores).

    Returns a dict of what each runtime now uses. Raises UserError for n < 1 or above the
    number of Numba threads this process was started with.
    """
    global _current, _limiter
    if n is None:
        n = default_threads()
    if not isinstance(n, int) or n < 1:
        raise UserError(f"--threads must be a positive integer, got {n!r}")
    applied = {"threads": n}
    import numba

    if n > numba.config.NUMBA_NUM_THREADS:
        raise UserError(f"--threads {n} exceeds the {numba.config.NUMBA_NUM_THREADS} threads Numba was "
                        "started with (set NUMBA_NUM_THREADS before starting)")
    numba.set_num_threads(n)
    applied["numba"] = numba.get_num_threads()
    try:
        from dlbench.kernels.cython import _omp

        _omp.set_num_threads(n)
        applied["openmp"] = _omp.get_max_threads()
    except ImportError:
        applied["openmp"] = None
    from threadpoolctl import threadpool_limits

    _limiter = threadpool_limits(limits=n)  # process-wide; kept alive on purpose
    applied["blas"] = n
    try:
        import torch

        torch.set_num_threads(n)
        applied["torch"] = torch.get_num_threads()
    except ImportError:
        applied["torch"] = None
    _current = n
    return applied


def current_threads() -> int:
    return _current if _current is not None else default_threads()


def blas_info() -> dict:
    """The BLAS libraries loaded in this process: library, version, kernel ('architecture'), threads."""
    import numpy  # noqa: F401 - loads numpy's BLAS so threadpoolctl sees it
    from threadpoolctl import threadpool_info

    libs = [d for d in threadpool_info() if d.get("user_api") == "blas"]
    if not libs:
        return {"blas": "unknown", "blas_kernel": "", "blas_version": ""}
    first = libs[0]
    return {
        "blas": first.get("internal_api", ""),
        "blas_kernel": first.get("architecture") or "",
        "blas_version": first.get("version") or "",
        "blas_all": "; ".join(f"{d.get('internal_api')} {d.get('version')} {d.get('architecture')} "
                              f"({os.path.basename(d.get('filepath', ''))})" for d in libs),
        "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE", ""),
    }
