"""Numba CPU tiled (eq. 9.10) and locally connected (eq. 9.9) convolution, two algorithms.

A locally connected layer is the tiled one with t = output size, so both ops share the kernels.

``direct``: each output location (i, j) is a small GEMM of its gathered patches P (N, C*R*S) with
its kernel stack W[i mod t_h, j mod t_w] (K, C*R*S), register-blocked 2 examples x 4 channels
(dot products vectorised along C*R*S). The backward computes each location's weight gradient
(jobs: tile pattern x block of K) and patch gradients (jobs: locations; the kernels are read once
for all examples), then col2im (jobs: (n, c) maps). Best when every location has its own weights
(locally connected: the weights are streamed once, used N times).

``im2col``: the positions of each tile pattern are gathered into a (C*R*S, M) matrix (M = N *
Ho/t_h * Wo/t_w; contiguous runs along the output row), multiplied by the pattern's kernels
with the shared packed GEMM (``dlbench.kernels.cython.gemm`` when built, else NumPy's BLAS),
and scattered back; the gradients are the two transposed products and col2im. Best when few
kernel stacks serve many positions (small t, towards ordinary convolution).

Parallelism: serial ``nogil`` kernels over ranges of independent jobs run on
``numba.get_num_threads()`` threads by ``parallel_jobs`` (from ``dlbench.kernels.numba_cpu.conv``:
lowering ``prange`` around these loop nests costs several times the JIT time, and the tests
compile every kernel cold). No two jobs write the same element.
"""

import numba as nb
import numpy as np
from dlbench.kernels.numba_cpu.conv import parallel_jobs

from dlbench.registry import register_kernel

try:
    from dlbench.kernels.cython.gemm import batched_gemm as _cy_batched_gemm

    GEMM_IMPL = "cython-gemm"
except ImportError:   # the Cython extension is not built
    _cy_batched_gemm = None
    GEMM_IMPL = "numpy-matmul"

JIT = dict(nogil=True, cache=True)
REDUCE = {"contract", "reassoc", "nsz"}   # dot products may be reassociated (vectorised)


def batched_gemm(a, b, trans_a=False, trans_b=False):
    """op(a[i]) @ op(b[i]) for (batch, m, k) x (batch, k, n) operands (packed GEMM or NumPy)."""
    if _cy_batched_gemm is not None:
        return _cy_batched_gemm(a, b, None, 1.0, 0.0, trans_a, trans_b)
    return np.matmul(a.transpose(0, 2, 1) if trans_a else a, b.transpose(0, 2, 1) if trans_b else b)


# ---------------------------------------------------------------- direct: one small GEMM per location
@nb.njit(**JIT)
def _gather_patch(xp, n, i0, j0, C, R, S, dst):
    q = 0
    for c in range(C):
        for r in range(R):
            src = xp[n, c, i0 + r]
            for s in range(S):
                dst[q + s] = src[j0 + s]
            q += S


@nb.njit(fastmath=REDUCE, **JIT)
def _direct_forward(j0, j1, xp, w2, b2, has_bias, sh, sw, th, tw, R, S, y):
    """Locations [j0, j1): y[n, k, i, j] = W[t(i, j)][k] . P[n] (+ b2[t, k]); w2 (t_h*t_w, K*CRS)."""
    N, C = xp.shape[0], xp.shape[1]
    K, Wo = y.shape[1], y.shape[3]
    crs = C * R * S
    zero = xp.dtype.type(0)
    p = np.empty((N, crs), xp.dtype)
    for loc in range(j0, j1):
        i = loc // Wo
        j = loc - i * Wo
        t = (i % th) * tw + (j % tw)
        for n in range(N):
            _gather_patch(xp, n, i * sh, j * sw, C, R, S, p[n])
        wt = w2[t]
        for n0 in range(0, N, 2):
            n1 = min(n0 + 1, N - 1)
            u = p[n0]
            v = p[n1]
            for k0 in range(0, K, 4):
                k1 = min(k0 + 1, K - 1)
                k2 = min(k0 + 2, K - 1)
                k3 = min(k0 + 3, K - 1)
                w0 = wt[k0 * crs:(k0 + 1) * crs]
                w1 = wt[k1 * crs:(k1 + 1) * crs]
                w2_ = wt[k2 * crs:(k2 + 1) * crs]
                w3 = wt[k3 * crs:(k3 + 1) * crs]
                a0 = a1 = a2 = a3 = b0 = b1 = b2_ = b3 = zero
                for q in range(crs):
                    pu = u[q]
                    pv = v[q]
                    x0 = w0[q]
                    x1 = w1[q]
                    x2 = w2_[q]
                    x3 = w3[q]
                    a0 += x0 * pu
                    a1 += x1 * pu
                    a2 += x2 * pu
                    a3 += x3 * pu
                    b0 += x0 * pv
                    b1 += x1 * pv
                    b2_ += x2 * pv
                    b3 += x3 * pv
                if has_bias:
                    a0 += b2[t, k0]
                    b0 += b2[t, k0]
                    a1 += b2[t, k1]
                    b1 += b2[t, k1]
                    a2 += b2[t, k2]
                    b2_ += b2[t, k2]
                    a3 += b2[t, k3]
                    b3 += b2[t, k3]
                # clamped rows/channels (k1..k3 = K - 1, n1 = N - 1 at the edges) are recomputed, not stored
                y[n0, k0, i, j] = a0
                y[n0, k1, i, j] = a1
                y[n0, k2, i, j] = a2
                y[n0, k3, i, j] = a3
                y[n1, k0, i, j] = b0
                y[n1, k1, i, j] = b1
                y[n1, k2, i, j] = b2_
                y[n1, k3, i, j] = b3


@nb.njit(fastmath=REDUCE, **JIT)
def _direct_backward_weight(j0, j1, dy, xp, sh, sw, th, tw, R, S, kchunks, dw2, db2):
    """Jobs (tile pattern, block of K): dw2[t, k*CRS + q] = sum over the tile's locations and n of
    dy[n, k, i, j] P[n, q]; db2[t, k] = sum of dy[n, k, i, j]. Blocked 4 channels x 2 examples."""
    N, C = xp.shape[0], xp.shape[1]
    K, Ho, Wo = dy.shape[1], dy.shape[2], dy.shape[3]
    crs = C * R * S
    zero = xp.dtype.type(0)
    p = np.empty((N, crs), xp.dtype)
    for task in range(j0, j1):
        t = task // kchunks
        part = task - t * kchunks
        ti = t // tw
        tj = t - ti * tw
        kb0 = part * K // kchunks
        kb1 = (part + 1) * K // kchunks
        dwt = dw2[t]
        for q in range(kb0 * crs, kb1 * crs):
            dwt[q] = zero
        for k in range(kb0, kb1):
            db2[t, k] = zero
        for i in range(ti, Ho, th):
            for j in range(tj, Wo, tw):
                for n in range(N):
                    _gather_patch(xp, n, i * sh, j * sw, C, R, S, p[n])
                for k in range(kb0, kb1):
                    acc = zero
                    for n in range(N):
                        acc += dy[n, k, i, j]
                    db2[t, k] += acc
                for k0 in range(kb0, kb1, 4):
                    k1 = min(k0 + 1, kb1 - 1)
                    k2 = min(k0 + 2, kb1 - 1)
                    k3 = min(k0 + 3, kb1 - 1)
                    d0 = dwt[k0 * crs:(k0 + 1) * crs]
                    d1 = dwt[k1 * crs:(k1 + 1) * crs]
                    d2 = dwt[k2 * crs:(k2 + 1) * crs]
                    d3 = dwt[k3 * crs:(k3 + 1) * crs]
                    for n0 in range(0, N, 2):
                        n1 = min(n0 + 1, N - 1)
                        # clamped duplicates (k1..k3 = kb1 - 1, n1 = N - 1 at the edges) contribute zero
                        h1 = n0 + 1 < N
                        a0 = dy[n0, k0, i, j]
                        a1 = dy[n0, k1, i, j] if k0 + 1 < kb1 else zero
                        a2 = dy[n0, k2, i, j] if k0 + 2 < kb1 else zero
                        a3 = dy[n0, k3, i, j] if k0 + 3 < kb1 else zero
                        c0 = dy[n1, k0, i, j] if h1 else zero
                        c1 = dy[n1, k1, i, j] if h1 and k0 + 1 < kb1 else zero
                        c2 = dy[n1, k2, i, j] if h1 and k0 + 2 < kb1 else zero
                        c3 = dy[n1, k3, i, j] if h1 and k0 + 3 < kb1 else zero
                        u = p[n0]
                        v = p[n1]
                        for q in range(crs):
                            pu = u[q]
                            pv = v[q]
                            d0[q] += a0 * pu + c0 * pv
                            d1[q] += a1 * pu + c1 * pv
                            d2[q] += a2 * pu + c2 * pv
                            d3[q] += a3 * pu + c3 * pv


@nb.njit(fastmath=REDUCE, **JIT)
def _direct_patch_grads(j0, j1, dy, w2, th, tw, dcols):
    """Locations [j0, j1): dcols[loc, n, :] = sum_k dy[n, k, i, j] W[t(i, j)][k] (the patch gradients;
    each location's kernels are read once for all examples). Blocked 2 examples x 4 channels."""
    N, K, Wo = dy.shape[0], dy.shape[1], dy.shape[3]
    crs = dcols.shape[2]
    zero = dcols.dtype.type(0)
    for loc in range(j0, j1):
        i = loc // Wo
        j = loc - i * Wo
        wt = w2[(i % th) * tw + (j % tw)]
        dl = dcols[loc]
        dl[:] = zero
        for n0 in range(0, N, 2):
            n1 = min(n0 + 1, N - 1)
            h1 = n0 + 1 < N
            u = dl[n0]
            v = dl[n1]
            for k0 in range(0, K, 4):
                k1 = min(k0 + 1, K - 1)
                k2 = min(k0 + 2, K - 1)
                k3 = min(k0 + 3, K - 1)
                a0 = dy[n0, k0, i, j]
                a1 = dy[n0, k1, i, j] if k0 + 1 < K else zero
                a2 = dy[n0, k2, i, j] if k0 + 2 < K else zero
                a3 = dy[n0, k3, i, j] if k0 + 3 < K else zero
                c0 = dy[n1, k0, i, j] if h1 else zero
                c1 = dy[n1, k1, i, j] if h1 and k0 + 1 < K else zero
                c2 = dy[n1, k2, i, j] if h1 and k0 + 2 < K else zero
                c3 = dy[n1, k3, i, j] if h1 and k0 + 3 < K else zero
                w0 = wt[k0 * crs:(k0 + 1) * crs]
                w1 = wt[k1 * crs:(k1 + 1) * crs]
                w2_ = wt[k2 * crs:(k2 + 1) * crs]
                w3 = wt[k3 * crs:(k3 + 1) * crs]
                for q in range(crs):
                    x0 = w0[q]
                    x1 = w1[q]
                    x2 = w2_[q]
                    x3 = w3[q]
                    u[q] += (a0 * x0 + a1 * x1) + (a2 * x2 + a3 * x3)
                    v[q] += (c0 * x0 + c1 * x1) + (c2 * x2 + c3 * x3)
            # odd N: the last example is u and v at once; its second share uses zero gradients


@nb.njit(**JIT)
def _direct_col2im(j0, j1, dcols, sh, sw, R, S, Wo, dxp):
    """Jobs (n, c): dxp[n, c] = sum over locations of the patch gradients dcols[loc, n] that read it."""
    C = dxp.shape[1]
    zero = dxp.dtype.type(0)
    for job in range(j0, j1):
        n = job // C
        c = job - n * C
        dxp[n, c] = zero
        for loc in range(dcols.shape[0]):
            i = loc // Wo
            j = loc - i * Wo
            src = dcols[loc, n]
            q = c * R * S
            for r in range(R):
                row = dxp[n, c, i * sh + r]
                for s in range(S):
                    row[j * sw + s] += src[q + s]
                q += S


# ---------------------------------------------------------------- im2col: one GEMM per tile pattern
@nb.njit(**JIT)
def _im2col(j0, j1, xp, sh, sw, th, tw, R, S, a, bb, cols):
    """Jobs (t, n, c): cols[t, (c*R + r)*S + s, (n*a + ia)*bb + jb] = xp[n, c, i*sh + r, j*sw + s]
    with i = ia*t_h + t_i, j = jb*t_w + t_j (contiguous runs along jb when t_w * s_w = 1)."""
    N, C = xp.shape[0], xp.shape[1]
    step = tw * sw
    for job in range(j0, j1):
        t = job // (N * C)
        rest = job - t * N * C
        n = rest // C
        c = rest - n * C
        ti = t // tw
        tj = t - ti * tw
        for r in range(R):
            for s in range(S):
                dst = cols[t, (c * R + r) * S + s]
                for ia in range(a):
                    src = xp[n, c, (ia * th + ti) * sh + r]
                    m0 = (n * a + ia) * bb
                    o = tj * sw + s
                    for jb in range(bb):
                        dst[m0 + jb] = src[o + jb * step]


@nb.njit(**JIT)
def _cols_to_y(j0, j1, yt, b2, has_bias, th, tw, a, bb, y):
    """Jobs (n, k): y[n, k, ia*t_h + t_i, jb*t_w + t_j] = yt[t, k, (n*a + ia)*bb + jb] (+ b2[t, k])."""
    K = y.shape[1]
    zero = y.dtype.type(0)
    for job in range(j0, j1):
        n = job // K
        k = job - n * K
        for t in range(yt.shape[0]):
            ti = t // tw
            tj = t - ti * tw
            bias = b2[t, k] if has_bias else zero
            src = yt[t, k]
            for ia in range(a):
                dst = y[n, k, ia * th + ti]
                m0 = (n * a + ia) * bb
                for jb in range(bb):
                    dst[jb * tw + tj] = src[m0 + jb] + bias


@nb.njit(**JIT)
def _dy_to_cols(j0, j1, dy, th, tw, a, bb, gt):
    """Jobs (n, k): gt[t, k, (n*a + ia)*bb + jb] = dy[n, k, ia*t_h + t_i, jb*t_w + t_j] (see _cols_to_y)."""
    K = dy.shape[1]
    for job in range(j0, j1):
        n = job // K
        k = job - n * K
        for t in range(gt.shape[0]):
            ti = t // tw
            tj = t - ti * tw
            dst = gt[t, k]
            for ia in range(a):
                src = dy[n, k, ia * th + ti]
                m0 = (n * a + ia) * bb
                for jb in range(bb):
                    dst[m0 + jb] = src[jb * tw + tj]


@nb.njit(**JIT)
def _col2im(j0, j1, dcols, sh, sw, th, tw, R, S, a, bb, dxp):
    """Jobs (n, c): dxp[n, c] = sum of the patch gradients dcols (T, CRS, M) reading it (see _im2col)."""
    C = dxp.shape[1]
    step = tw * sw
    zero = dxp.dtype.type(0)
    for job in range(j0, j1):
        n = job // C
        c = job - n * C
        dxp[n, c] = zero
        for t in range(dcols.shape[0]):
            ti = t // tw
            tj = t - ti * tw
            for r in range(R):
                for s in range(S):
                    src = dcols[t, (c * R + r) * S + s]
                    for ia in range(a):
                        dst = dxp[n, c, (ia * th + ti) * sh + r]
                        m0 = (n * a + ia) * bb
                        o = tj * sw + s
                        for jb in range(bb):
                            dst[o + jb * step] += src[m0 + jb]


# ---------------------------------------------------------------- drivers (shared with the Cython backend)
def geometry(xp, w, stride):
    n, c, hp, wp = xp.shape
    th, tw, k, _, r, s = w.shape
    ho, wo = (hp - r) // stride[0] + 1, (wp - s) // stride[1] + 1
    return n, c, k, r, s, th, tw, ho, wo


def direct_forward(xp, w, b, stride, core=None):
    n, c, k, r, s, th, tw, ho, wo = geometry(xp, w, stride)
    y = np.empty((n, k, ho, wo), xp.dtype)
    w2 = w.reshape(th * tw, k * c * r * s)
    b2 = np.zeros((1, 1), xp.dtype) if b is None else b.reshape(th * tw, k)
    args = (xp, w2, b2, b is not None, stride[0], stride[1], th, tw, r, s, y)
    if core is None:
        parallel_jobs(_direct_forward, ho * wo, *args)
    else:
        core(*args)
    return y


def direct_backward(dy, xp, w, stride, core_w=None, core_p=None, core_c=None):
    n, c, k, r, s, th, tw, ho, wo = geometry(xp, w, stride)
    nt = th * tw
    kchunks = max(1, min(k // 4, -(-8 // nt)))      # >= 8 parallel jobs when there are few tiles
    dw2 = np.empty((nt, k * c * r * s), xp.dtype)
    db2 = np.empty((nt, k), xp.dtype)
    dcols = np.empty((ho * wo, n, c * r * s), xp.dtype)
    dxp = np.empty_like(xp)
    wargs = (dy, xp, stride[0], stride[1], th, tw, r, s, kchunks, dw2, db2)
    pargs = (dy, w.reshape(nt, k * c * r * s), th, tw, dcols)
    cargs = (dcols, stride[0], stride[1], r, s, wo, dxp)
    if core_w is None:
        parallel_jobs(_direct_backward_weight, nt * kchunks, *wargs)
        parallel_jobs(_direct_patch_grads, ho * wo, *pargs)
        parallel_jobs(_direct_col2im, n * c, *cargs)
    else:
        core_w(*wargs)
        core_p(*pargs)
        core_c(*cargs)
    return dxp, dw2.reshape(w.shape), db2.reshape(th, tw, k)


def im2col_forward(xp, w, b, stride, im2col=None, cols_to_y=None):
    n, c, k, r, s, th, tw, ho, wo = geometry(xp, w, stride)
    a, bb, nt, crs = ho // th, wo // tw, th * tw, c * r * s
    cols = np.empty((nt, crs, n * a * bb), xp.dtype)
    (im2col or (lambda *args: parallel_jobs(_im2col, nt * n * c, *args)))(
        xp, stride[0], stride[1], th, tw, r, s, a, bb, cols)
    yt = batched_gemm(w.reshape(nt, k, crs), cols)                  # (T, K, M)
    y = np.empty((n, k, ho, wo), xp.dtype)
    b2 = np.zeros((1, 1), xp.dtype) if b is None else b.reshape(nt, k)
    (cols_to_y or (lambda *args: parallel_jobs(_cols_to_y, n * k, *args)))(
        yt, b2, b is not None, th, tw, a, bb, y)
    return y


def im2col_backward(dy, xp, w, stride, im2col=None, dy_to_cols=None, col2im=None):
    n, c, k, r, s, th, tw, ho, wo = geometry(xp, w, stride)
    a, bb, nt, crs = ho // th, wo // tw, th * tw, c * r * s
    cols = np.empty((nt, crs, n * a * bb), xp.dtype)
    (im2col or (lambda *args: parallel_jobs(_im2col, nt * n * c, *args)))(
        xp, stride[0], stride[1], th, tw, r, s, a, bb, cols)
    gt = np.empty((nt, k, n * a * bb), xp.dtype)
    (dy_to_cols or (lambda *args: parallel_jobs(_dy_to_cols, n * k, *args)))(dy, th, tw, a, bb, gt)
    w3 = w.reshape(nt, k, crs)
    dw = batched_gemm(gt, cols, trans_b=True)                       # (T, K, CRS), eq. 9.11 per tile
    dcols = batched_gemm(w3, gt, trans_a=True)                       # (T, CRS, M)
    dxp = np.empty_like(xp)
    (col2im or (lambda *args: parallel_jobs(_col2im, n * c, *args)))(
        dcols, stride[0], stride[1], th, tw, r, s, a, bb, dxp)
    return dxp, dw.reshape(w.shape), gt.sum(axis=2).reshape(th, tw, k)


for _op in ("tiled_conv2d", "local_conv2d"):
    register_kernel(_op, "direct", "numba", constraints="one register-blocked GEMM per output location",
                    description="eq. 9.10 / 9.9: per-location patches x kernels, 2x4 register blocks")(
        direct_forward)
    register_kernel(_op + "_backward", "direct", "numba",
                    constraints="weight gradient per (tile, K block), patch gradients per location",
                    description="gradients of eq. 9.10 / 9.9 per location")(direct_backward)
    register_kernel(_op, "im2col", "numba", impl=GEMM_IMPL,
                    constraints=f"patches per tile pattern x kernels by {GEMM_IMPL}",
                    description="eq. 9.10 / 9.9: im2col per tile pattern, one GEMM each")(im2col_forward)
    register_kernel(_op + "_backward", "im2col", "numba", impl=GEMM_IMPL,
                    constraints=f"two transposed products by {GEMM_IMPL}, then col2im",
                    description="gradients of eq. 9.10 / 9.9: two GEMMs per tile pattern and col2im")(
        im2col_backward)
