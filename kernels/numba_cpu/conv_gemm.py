"""The matrix products the convolution algorithms reduce to (im2col, 1x1, Winograd, gradients).

``dlbench.kernels.cython.gemm`` (a BLIS-style packed GEMM with an AVX2/FMA micro-kernel and
OpenMP) when it is built, else NumPy's ``matmul`` (the BLAS NumPy links, e.g. OpenBLAS).
``GEMM_IMPL`` says which one runs; kernels that use it record it in their registry entry
(``extra["impl"]``), so results, listings and the autotune cache tell them apart. Both the
numba and the cython convolution backends share it: the layout work (im2col, transforms) is
theirs, the products are this module's.
"""

from __future__ import annotations

import numpy as np

try:
    from dlbench.kernels.cython.gemm import batched_gemm as _cy_batched_gemm
    from dlbench.kernels.cython.gemm import gemm as _cy_gemm

    GEMM_IMPL = "cython-gemm"
    GEMM_WHY = "dlbench.kernels.cython.gemm (packed AVX2/FMA micro-kernel, OpenMP)"
except ImportError as _e:  # the Cython extension is not built
    _cy_gemm = _cy_batched_gemm = None
    GEMM_IMPL = "numpy-matmul"
    GEMM_WHY = f"numpy.matmul (dlbench.kernels.cython.gemm unavailable: {_e})"


def gemm(a, b, out=None, beta=0.0, trans_a=False, trans_b=False):
    """out = op(a) @ op(b) + beta * out for 2-D arrays of one float dtype; returns out.

    op(x) is x.T when trans_x. ``out`` None allocates (beta ignored); beta is 0 or 1.
    """
    if _cy_gemm is not None:
        return _cy_gemm(a, b, out, 1.0, beta if out is not None else 0.0, trans_a, trans_b)
    a = a.T if trans_a else a
    b = b.T if trans_b else b
    if out is None:
        return np.matmul(a, b)
    if beta == 0.0:
        return np.matmul(a, b, out=out)
    out += a @ b
    return out


def batched_gemm(a, b, out=None, beta=0.0):
    """out[i] = a[i] @ b[i] + beta * out[i] for (batch, m, k) x (batch, k, n) (a 2-D operand is shared);
    any strides; returns out."""
    if _cy_batched_gemm is not None:
        return _cy_batched_gemm(a, b, out, 1.0, beta if out is not None else 0.0)
    if out is None:
        return np.matmul(a, b)
    if beta == 0.0:
        return np.matmul(a, b, out=out)
    out += np.matmul(a, b)
    return out
