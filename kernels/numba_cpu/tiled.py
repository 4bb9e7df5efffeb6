"""Numba CPU tiled (eq. 9.10) and locally connected (eq. 9.9) convolution.

Each output location (i, j) is a small GEMM: its patches P (N, C*R*S), gathered once into a
thread-local buffer, times the kernel stack W[i mod t_h, j mod t_w] (K, C*R*S). A locally connected
layer is the tiled one with t = output size (same kernels). Parallel over output locations
(forward), over (tile pattern, block of K) (weight gradient) and over examples (input gradient),
so that no two threads write the same element. fastmath: the dot products are reassociated
(vectorised), which changes float32 results by rounding only.
"""

import numba as nb
import numpy as np

from dlbench.registry import register_kernel

_KB = 4   # output channels per register block


@nb.njit(inline="always")
def _gather(xp, n, i0, j0, C, R, S, dst):
    q = 0
    for c in range(C):
        for r in range(R):
            for s in range(S):
                dst[q] = xp[n, c, i0 + r, j0 + s]
                q += 1


@nb.njit(parallel=True, fastmath=True, cache=True)
def _forward(xp, w2, b2, has_bias, sh, sw, th, tw, R, S, y):
    """y[n, k, i, j] = sum_q w2[t(i, j), k*CRS + q] P[n, q] (+ b2[t, k]); w2: (t_h*t_w, K*CRS)."""
    N, C = xp.shape[0], xp.shape[1]
    K, Ho, Wo = y.shape[1], y.shape[2], y.shape[3]
    crs = C * R * S
    zero = xp.dtype.type(0)
    for loc in nb.prange(Ho * Wo):
        i = loc // Wo
        j = loc - i * Wo
        t = (i % th) * tw + (j % tw)
        p = np.empty((N, crs), xp.dtype)
        for n in range(N):
            _gather(xp, n, i * sh, j * sw, C, R, S, p[n])
        wt = w2[t]
        for n in range(N):
            pn = p[n]
            k = 0
            while k + _KB <= K:
                a0 = zero
                a1 = zero
                a2 = zero
                a3 = zero
                o0 = k * crs
                for q in range(crs):
                    v = pn[q]
                    a0 += wt[o0 + q] * v
                    a1 += wt[o0 + crs + q] * v
                    a2 += wt[o0 + 2 * crs + q] * v
                    a3 += wt[o0 + 3 * crs + q] * v
                if has_bias:
                    a0 += b2[t, k]
                    a1 += b2[t, k + 1]
                    a2 += b2[t, k + 2]
                    a3 += b2[t, k + 3]
                y[n, k, i, j] = a0
                y[n, k + 1, i, j] = a1
                y[n, k + 2, i, j] = a2
                y[n, k + 3, i, j] = a3
                k += _KB
            while k < K:
                a0 = zero
                o0 = k * crs
                for q in range(crs):
                    a0 += wt[o0 + q] * pn[q]
                if has_bias:
                    a0 += b2[t, k]
                y[n, k, i, j] = a0
                k += 1


@nb.njit(parallel=True, fastmath=True, cache=True)
def _backward_weight(dy, xp, sh, sw, th, tw, R, S, kchunks, dw2, db2):
    """dw2[t, k*CRS + q] = sum over the tile's locations and n of dy[n, k, i, j] P[n, q]; db2 likewise."""
    N, C = xp.shape[0], xp.shape[1]
    K, Ho, Wo = dy.shape[1], dy.shape[2], dy.shape[3]
    crs = C * R * S
    nt = th * tw
    for task in nb.prange(nt * kchunks):
        t = task // kchunks
        part = task - t * kchunks
        ti = t // tw
        tj = t - ti * tw
        k0 = part * K // kchunks
        k1 = (part + 1) * K // kchunks
        p = np.empty((N, crs), xp.dtype)
        dwt = dw2[t]
        for q in range(k0 * crs, k1 * crs):
            dwt[q] = 0
        for k in range(k0, k1):
            db2[t, k] = 0
        for i in range(ti, Ho, th):
            for j in range(tj, Wo, tw):
                for n in range(N):
                    _gather(xp, n, i * sh, j * sw, C, R, S, p[n])
                for k in range(k0, k1):
                    o0 = k * crs
                    n = 0
                    while n + 4 <= N:
                        g0 = dy[n, k, i, j]
                        g1 = dy[n + 1, k, i, j]
                        g2 = dy[n + 2, k, i, j]
                        g3 = dy[n + 3, k, i, j]
                        p0 = p[n]
                        p1 = p[n + 1]
                        p2 = p[n + 2]
                        p3 = p[n + 3]
                        for q in range(crs):
                            dwt[o0 + q] += g0 * p0[q] + g1 * p1[q] + g2 * p2[q] + g3 * p3[q]
                        db2[t, k] += (g0 + g1) + (g2 + g3)
                        n += 4
                    while n < N:
                        g0 = dy[n, k, i, j]
                        p0 = p[n]
                        for q in range(crs):
                            dwt[o0 + q] += g0 * p0[q]
                        db2[t, k] += g0
                        n += 1


@nb.njit(parallel=True, fastmath=True, cache=True)
def _backward_input(dy, w2, sh, sw, th, tw, C, R, S, dxp):
    """dxp[n] = sum over locations of col2im(dy[n, :, i, j] @ W[t(i, j)]) (eq. 9.13 per location)."""
    N, K, Ho, Wo = dy.shape
    crs = C * R * S
    for n in nb.prange(N):
        d = np.empty(crs, dxp.dtype)
        for c in range(C):
            for r in range(dxp.shape[2]):
                for s in range(dxp.shape[3]):
                    dxp[n, c, r, s] = 0
        for i in range(Ho):
            for j in range(Wo):
                wt = w2[(i % th) * tw + (j % tw)]
                for q in range(crs):
                    d[q] = 0
                k = 0
                while k + _KB <= K:
                    g0 = dy[n, k, i, j]
                    g1 = dy[n, k + 1, i, j]
                    g2 = dy[n, k + 2, i, j]
                    g3 = dy[n, k + 3, i, j]
                    o0 = k * crs
                    for q in range(crs):
                        d[q] += (g0 * wt[o0 + q] + g1 * wt[o0 + crs + q]) + \
                            (g2 * wt[o0 + 2 * crs + q] + g3 * wt[o0 + 3 * crs + q])
                    k += _KB
                while k < K:
                    g0 = dy[n, k, i, j]
                    o0 = k * crs
                    for q in range(crs):
                        d[q] += g0 * wt[o0 + q]
                    k += 1
                q = 0
                for c in range(C):
                    for r in range(R):
                        for s in range(S):
                            dxp[n, c, i * sh + r, j * sw + s] += d[q]
                            q += 1


@register_kernel("tiled_conv2d", "direct", "numba")
@register_kernel("local_conv2d", "direct", "numba")
def tiled_forward(xp, w, b, stride):
    """Eq. 9.10 (9.9 for t = output size), one small GEMM per output location, parallel over locations."""
    n, c, hp, wp = xp.shape
    th, tw, k, _, r, s = w.shape
    ho, wo = (hp - r) // stride[0] + 1, (wp - s) // stride[1] + 1
    y = np.empty((n, k, ho, wo), xp.dtype)
    w2 = w.reshape(th * tw, k * c * r * s)
    b2 = np.zeros((1, 1), xp.dtype) if b is None else b.reshape(th * tw, k)
    _forward(xp, w2, b2, b is not None, stride[0], stride[1], th, tw, r, s, y)
    return y


@register_kernel("tiled_conv2d_backward", "direct", "numba")
@register_kernel("local_conv2d_backward", "direct", "numba")
def tiled_backward(dy, xp, w, stride):
    """(dxp, dw, db) of eq. 9.10: weight gradient per (tile, K block), input gradient per example."""
    n, c, hp, wp = xp.shape
    th, tw, k, _, r, s = w.shape
    nt = th * tw
    kchunks = max(1, min(k, -(-8 // nt)))     # >= 8 parallel tasks when there are few tiles
    dw2 = np.empty((nt, k * c * r * s), xp.dtype)
    db2 = np.empty((nt, k), xp.dtype)
    _backward_weight(dy, xp, stride[0], stride[1], th, tw, r, s, kchunks, dw2, db2)
    dxp = np.empty_like(xp)
    _backward_input(dy, w.reshape(nt, k * c * r * s), stride[0], stride[1], th, tw, c, r, s, dxp)
    return dxp, dw2.reshape(w.shape), db2.reshape(th, tw, k)
