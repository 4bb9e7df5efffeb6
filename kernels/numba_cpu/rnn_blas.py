"""BLAS helpers of the RNN kernels (numba and cython backends). Registers no kernel.

Big GEMMs: the input projection U x(t) for all t, the output projection V h(t) for all t and the
parameter gradients (dV, dW, dU summed over t) are each one (tau*N)-row matrix product. They
run through ``dlbench.kernels.cython.gemm`` (the suite's own packed GEMM) when it is built and
``DLBENCH_RNN_GEMM`` is not ``numpy``, else through NumPy's BLAS.

Per-step GEMMs: the recurrences split the batch between threads, and each thread calls BLAS on
its own rows at every step; :func:`blas_single_thread` keeps BLAS itself serial meanwhile. (A
threaded BLAS call per time step, with its spin-waiting workers beside the recurrence's own
threads, is what makes small per-step products slow on a few cores.)
"""

from __future__ import annotations

import os

import numpy as np

try:  # the Cython GEMM of the conv issue; optional
    from dlbench.kernels.cython.gemm import gemm as _dlb_gemm
except ImportError:  # pragma: no cover - not built
    _dlb_gemm = None


_CONTROLLER = None


def blas_single_thread():
    """Context manager: every loaded BLAS runs one thread inside it (threadpoolctl)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        import scipy.linalg.cython_blas  # noqa: F401 - the BLAS that numba's np.dot and rnn.pyx call
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


def batch_parts(n: int, threads: int) -> np.ndarray:
    """Boundaries splitting n sequences into min(n, threads) near-equal contiguous parts."""
    k = max(1, min(n, threads))
    return np.linspace(0, n, k + 1).round().astype(np.int64)


def gemm_backend() -> str:
    """'dlbench' or 'numpy': which GEMM the big products use now."""
    if _dlb_gemm is not None and os.environ.get("DLBENCH_RNN_GEMM", "dlbench") != "numpy":
        return "dlbench"
    return "numpy"


def matmul(a, b, out=None, trans_a=False, trans_b=False, beta=0.0):
    """out = op(a) @ op(b) + beta * out for 2-D arrays of one dtype; op(x) = x.T when trans_x.

    beta is 0 or 1 (accumulate). Returns out (allocated when None).
    """
    if gemm_backend() == "dlbench":
        if out is None:
            return _dlb_gemm(a, b, trans_a=trans_a, trans_b=trans_b)
        return _dlb_gemm(a, b, out, beta=beta, trans_a=trans_a, trans_b=trans_b)
    A = a.T if trans_a else a
    B = b.T if trans_b else b
    if out is None:
        return A @ B
    if beta:
        out += A @ B
        return out
    return np.matmul(A, B, out=out)
