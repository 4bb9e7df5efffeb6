"""The big GEMMs of the RNN kernels (numba and cython backends), outside the time loop.

The input projection U x(t) for all t, the output projection V h(t) for all t and the parameter
gradients (dV, dW, dU summed over t) are each one (tau*N)-row matrix product. They run through
``dlbench.kernels.cython.gemm`` (the suite's own packed GEMM) when it is built and
``DLBENCH_RNN_GEMM`` is not ``numpy``, else through NumPy's BLAS. Registers no kernel.
"""

from __future__ import annotations

import os

import numpy as np

try:  # the Cython GEMM of the conv issue; optional
    from dlbench.kernels.cython.gemm import gemm as _dlb_gemm
except ImportError:  # pragma: no cover - not built
    _dlb_gemm = None


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
