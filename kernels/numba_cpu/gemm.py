"""Numba CPU GEMM: a cache-blocked, register-tiled loop nest (no BLAS call).

C is cut into MB x NB blocks that the threads share out (``prange``); each block runs over K in
KB-deep slabs, four rows of C at a time: per k, four scalars of A times one contiguous row of B
update four rows of C, an inner loop over j that LLVM vectorises (AVX2 FMA under -march=native).
Operands are made C-contiguous first (a transpose is one copy), so one specialisation per dtype
is compiled. It is a readable blocked GEMM, not a packed BLIS kernel: expect a fraction of the
Cython kernel's throughput (C rows live in L1, not in registers).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from dlbench.registry import register_kernel

MB, NB, KB = 32, 512, 256   # rows of C, columns of C, depth per block (C block 64 KiB in float32)


@nb.njit(parallel=True, cache=True, fastmath={"contract"})
def _gemm_blocked(a, b, c, alpha, beta):
    """c = alpha * a @ b + beta * c for C-contiguous 2-D arrays of one dtype (beta == 0: c not read)."""
    m, k = a.shape
    n = b.shape[1]
    zero = c.dtype.type(0.0)
    al = c.dtype.type(alpha)
    be = c.dtype.type(beta)
    nib = (m + MB - 1) // MB
    njb = (n + NB - 1) // NB
    for blk in nb.prange(nib * njb):
        ib = blk // njb
        jb = blk - ib * njb
        i0 = ib * MB
        i1 = min(i0 + MB, m)
        j0 = jb * NB
        j1 = min(j0 + NB, n)
        for i in range(i0, i1):
            for j in range(j0, j1):
                c[i, j] = zero if beta == 0.0 else be * c[i, j]
        nj = j1 - j0
        for k0 in range(0, k, KB):
            k1 = min(k0 + KB, k)
            i = i0
            while i + 4 <= i1:
                # slices indexed from 0 by range(nj): no wraparound test, so LLVM vectorises j
                c0 = c[i, j0:j1]
                c1 = c[i + 1, j0:j1]
                c2 = c[i + 2, j0:j1]
                c3 = c[i + 3, j0:j1]
                for p in range(k0, k1):
                    a0 = al * a[i, p]
                    a1 = al * a[i + 1, p]
                    a2 = al * a[i + 2, p]
                    a3 = al * a[i + 3, p]
                    bp = b[p, j0:j1]
                    for j in range(nj):
                        bj = bp[j]
                        c0[j] += a0 * bj
                        c1[j] += a1 * bj
                        c2[j] += a2 * bj
                        c3[j] += a3 * bj
                i += 4
            while i < i1:
                ci = c[i, j0:j1]
                for p in range(k0, k1):
                    a0 = al * a[i, p]
                    bp = b[p, j0:j1]
                    for j in range(nj):
                        ci[j] += a0 * bp[j]
                i += 1


@register_kernel("gemm", "blocked", "numba")
def gemm(a, b, c=None, alpha=1.0, beta=0.0, trans_a=False, trans_b=False):
    """C = alpha * op(a) @ op(b) + beta * C with a blocked Numba loop nest (float32/float64).

    Same conventions as the reference: op(a) (m, k), op(b) (k, n), c (m, n) updated in place or
    None (allocated, beta ignored); beta == 0 never reads c. Transposed or strided operands are
    copied to C order first.
    """
    from dlbench.kernels.reference.gemm import _check

    a, b = np.asarray(a), np.asarray(b)
    _check(a, b, 2, "gemm")
    opa = np.ascontiguousarray(a.T if trans_a else a)
    opb = np.ascontiguousarray(b.T if trans_b else b)
    m, k = opa.shape
    if opb.shape[0] != k:
        raise ValueError(f"gemm: inner dimensions differ: op(a) is {opa.shape}, op(b) is {opb.shape}")
    n = opb.shape[1]
    if c is None:
        out = np.empty((m, n), dtype=opa.dtype)
        _gemm_blocked(opa, opb, out, float(alpha), 0.0)
        return out
    if c.shape != (m, n):
        raise ValueError(f"gemm: c must have shape {(m, n)}, got {c.shape}")
    if c.dtype != opa.dtype:
        raise ValueError(f"gemm: c must have dtype {opa.dtype}, got {c.dtype}")
    if c.flags.c_contiguous and not np.may_share_memory(c, opa) and not np.may_share_memory(c, opb):
        _gemm_blocked(opa, opb, c, float(alpha), float(beta))
        return c
    tmp = np.array(c, order="C") if beta != 0 else np.empty((m, n), dtype=c.dtype)
    _gemm_blocked(opa, opb, tmp, float(alpha), float(beta))
    c[...] = tmp
    return c
