"""NumPy reference GEMM: the executable specification of ``gemm`` and ``batched_gemm``.

GEMM is the product every lowered convolution runs on: im2col turns eq. 9.6-9.7 into
(K x C*R*S) @ (C*R*S x P*Q), a 1x1 convolution is (K x C) @ (C x H*W), the weight gradient
(eq. 9.11) and the data gradient (eq. 9.12-9.13) are the two transposed products, and Winograd
F(m x m, 3x3) is a batch of (m+2)^2 independent products. The op models here are shared by every
backend: 2*m*n*k flops (one multiply and one add per term), and compulsory traffic of reading A
and B and writing C once (plus reading C when beta != 0).
"""

from __future__ import annotations

import numpy as np

from dlbench.registry import define_op, register_kernel


def _itemsize(dtype) -> int:
    return np.dtype(dtype or "float32").itemsize


def gemm_bytes(m: int, n: int, k: int, dtype="float32", beta: float = 0.0, **_) -> float:
    """Compulsory traffic of C = alpha*A@B + beta*C: read A (m*k), B (k*n), write C (m*n),
    and read C too when beta != 0, in bytes."""
    return float((m * k + k * n + m * n * (2 if beta else 1)) * _itemsize(dtype))


define_op("gemm", flops=lambda m, n, k, **_: 2.0 * m * n * k, bytes=gemm_bytes,
          description="general matrix product C = alpha*op(A)@op(B) + beta*C (A m x k, B k x n)",
          equation="eq. 9.6-9.7 lowered by im2col; eq. 9.11-9.13")

define_op("batched_gemm", flops=lambda batch, m, n, k, **_: 2.0 * batch * m * n * k,
          bytes=lambda batch, m, n, k, dtype="float32", beta=0.0, **_: (
              batch * gemm_bytes(m, n, k, dtype, beta)),
          description="batch of independent products C[i] = A[i]@B[i] (Winograd's (m+2)^2 GEMMs)",
          equation="Lavin & Gray 2015, eq. 9.6-9.7 in the Winograd domain")


def _check(a: np.ndarray, b: np.ndarray, ndim: int, name: str) -> None:
    for x, nm in ((a, "a"), (b, "b")):
        if x.ndim != ndim:
            raise ValueError(f"{name}: {nm} must be {ndim}-D, got shape {x.shape}")
        if x.dtype not in (np.float32, np.float64):
            raise ValueError(f"{name}: {nm} must be float32 or float64, got {x.dtype}")
    if a.dtype != b.dtype:
        raise ValueError(f"{name}: a and b must have one dtype, got {a.dtype} and {b.dtype}")


def _finish(prod: np.ndarray, c: np.ndarray | None, alpha: float, beta: float, name: str) -> np.ndarray:
    """c = alpha*prod + beta*c in c's storage (beta == 0 never reads c), or a new array."""
    dt = prod.dtype
    if alpha != 1.0:
        prod *= dt.type(alpha)
    if c is None:
        return prod
    if c.shape != prod.shape:
        raise ValueError(f"{name}: c must have shape {prod.shape}, got {c.shape}")
    if c.dtype != dt:
        raise ValueError(f"{name}: c must have dtype {dt}, got {c.dtype}")
    if beta == 0.0:
        c[...] = prod
    else:
        c *= dt.type(beta)
        c += prod
    return c


@register_kernel("gemm", "numpy", "numpy")
def gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None, alpha: float = 1.0, beta: float = 0.0,
         trans_a: bool = False, trans_b: bool = False) -> np.ndarray:
    """C = alpha * op(a) @ op(b) + beta * C (BLAS xGEMM semantics), float32 or float64.

    op(x) = x.T when trans_x. op(a): (m, k), op(b): (k, n); c: (m, n) updated in place and
    returned, or None to allocate (beta then ignored). beta == 0 never reads c (NaN in c is
    overwritten). Runs NumPy's BLAS (``np.matmul``).
    """
    a, b = np.asarray(a), np.asarray(b)
    _check(a, b, 2, "gemm")
    opa = a.T if trans_a else a
    opb = b.T if trans_b else b
    if opa.shape[1] != opb.shape[0]:
        raise ValueError(f"gemm: inner dimensions differ: op(a) is {opa.shape}, op(b) is {opb.shape}")
    if c is not None and beta == 0.0 and c.shape == (opa.shape[0], opb.shape[1]) and c.dtype == opa.dtype:
        np.matmul(opa, opb, out=c)      # straight into c: what a BLAS user would time
        if alpha != 1.0:
            c *= c.dtype.type(alpha)
        return c
    return _finish(np.matmul(opa, opb), c, alpha, beta, "gemm")


@register_kernel("batched_gemm", "numpy", "numpy")
def batched_gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None, alpha: float = 1.0,
                 beta: float = 0.0, trans_a: bool = False, trans_b: bool = False) -> np.ndarray:
    """C[i] = alpha * op(a[i]) @ op(b[i]) + beta * C[i]: a (batch, m, k), b (batch, k, n).

    A 2-D a or b is shared by every item. Same conventions as ``gemm``; returns (batch, m, n).
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 2 and b.ndim == 3:
        a = a[None]
    if b.ndim == 2 and a.ndim == 3:
        b = b[None]
    _check(a, b, 3, "batched_gemm")
    opa = a.transpose(0, 2, 1) if trans_a else a
    opb = b.transpose(0, 2, 1) if trans_b else b
    if opa.shape[0] not in (1, opb.shape[0]) and opb.shape[0] != 1:
        raise ValueError(f"batched_gemm: batch sizes differ: a is {a.shape}, b is {b.shape}")
    if opa.shape[2] != opb.shape[1]:
        raise ValueError(f"batched_gemm: inner dimensions differ: op(a) is {opa.shape}, op(b) is {opb.shape}")
    return _finish(np.matmul(opa, opb), c, alpha, beta, "batched_gemm")
