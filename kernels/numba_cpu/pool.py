"""Numba CPU pooling: windowed, adaptive, maxout and global average pooling share two kernels.

Every pooling here is separable over a rectangle of rows [hs, he) x columns [ws, we) (a plan from
``dlbench.kernels.reference.pool``): for each output row, a vertical pass reduces the window's
rows into one contiguous row buffer (max, weighted sum, or sum of squares; vectorised), then a
horizontal pass reduces each window's columns of the buffer. The Gaussian weight
exp(-(dr^2 + dc^2) / 2 sigma^2) factorises into row and column weights, and so does its
normaliser over the in-input positions. Parallel over the (N * C) feature maps: the two big
kernels are serial ``nogil`` functions over ranges of maps run by ``parallel_jobs`` (a prange
around these loop nests costs about four times the JIT time); the small ones use prange.

The backward of the weighted sums and of the L2 norm is separable the same way (a horizontal
scatter into a row buffer, then vertical axpys); max routes dy to the first maximum (row-major)
of each window.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numba as nb
import numpy as np
from dlbench.kernels.numba_cpu.conv import parallel_jobs
from dlbench.kernels.reference.pool import PoolPlan, adaptive_plan, index_range_error, region_plan

from dlbench.allocator import empty_aligned
from dlbench.registry import register_kernel


@nb.njit(inline="always")
def _wsum(w, v, c0, n, weighted=True):
    """sum_k w[k] v[c0 + k] (or sum_k v[c0 + k]) with four partial sums: long windows (global
    pooling) are not one dependent chain of additions."""
    a0 = a1 = a2 = a3 = v.dtype.type(0)
    k = 0
    while k + 4 <= n:
        if weighted:
            a0 += w[k] * v[c0 + k]
            a1 += w[k + 1] * v[c0 + k + 1]
            a2 += w[k + 2] * v[c0 + k + 2]
            a3 += w[k + 3] * v[c0 + k + 3]
        else:
            a0 += v[c0 + k]
            a1 += v[c0 + k + 1]
            a2 += v[c0 + k + 2]
            a3 += v[c0 + k + 3]
        k += 4
    while k < n:
        a0 += w[k] * v[c0 + k] if weighted else v[c0 + k]
        k += 1
    return (a0 + a1) + (a2 + a3)


@nb.njit(nogil=True, cache=True)
def _forward(p0, p1, x, y, idx, want_idx, hs, he, ws, we, wr, wc, code):
    """x (P, H, W) -> y (P, Ho, Wo); code 0 max, 1 weighted sum (wr x wc), 2 L2 norm.

    max with ``want_idx`` also writes idx[p, oy, ox] = r * W + c of the first maximum in row-major
    order (the separable argmax of ``_backward``). Maps [p0, p1) (one row buffer for the range)."""
    P, H, W = x.shape
    Ho, Wo = y.shape[1], y.shape[2]
    v = np.empty(W, x.dtype)
    rows = np.empty(W, x.dtype)
    for p in range(p0, p1):
        xp = x[p]
        yp = y[p]
        for oy in range(Ho):
            r0 = hs[oy]
            r1 = he[oy]
            yr = yp[oy]
            row = xp[r0]
            if code == 0 and want_idx:
                ir = idx[p, oy]
                fr = x.dtype.type(r0)
                for c in range(W):
                    v[c] = row[c]
                    rows[c] = fr
                for r in range(r0 + 1, r1):
                    row = xp[r]
                    fr = x.dtype.type(r)
                    for c in range(W):
                        a = row[c]
                        gt = a > v[c]
                        v[c] = a if gt else v[c]
                        rows[c] = fr if gt else rows[c]
                for ox in range(Wo):
                    bc = ws[ox]
                    m = v[bc]
                    br = rows[bc]
                    for c in range(bc + 1, we[ox]):
                        hc = v[c]
                        rc = rows[c]
                        take = (hc > m) | ((hc == m) & (rc < br))
                        m = hc if take else m
                        br = rc if take else br
                        bc = c if take else bc
                    yr[ox] = m
                    ir[ox] = int(br) * W + bc
            elif code == 0:
                for c in range(W):
                    v[c] = row[c]
                for r in range(r0 + 1, r1):
                    row = xp[r]
                    for c in range(W):
                        a = row[c]
                        v[c] = a if a > v[c] else v[c]
                for ox in range(Wo):
                    c0 = ws[ox]
                    m = v[c0]
                    for c in range(c0 + 1, we[ox]):
                        m = v[c] if v[c] > m else m
                    yr[ox] = m
            elif code == 1:
                a = wr[oy, 0]
                for c in range(W):
                    v[c] = a * row[c]
                for r in range(r0 + 1, r1):
                    a = wr[oy, r - r0]
                    row = xp[r]
                    for c in range(W):
                        v[c] += a * row[c]
                for ox in range(Wo):
                    yr[ox] = _wsum(wc[ox], v, ws[ox], we[ox] - ws[ox])
            else:
                for c in range(W):
                    v[c] = row[c] * row[c]
                for r in range(r0 + 1, r1):
                    row = xp[r]
                    for c in range(W):
                        v[c] += row[c] * row[c]
                for ox in range(Wo):
                    yr[ox] = np.sqrt(_wsum(wc[ox], v, ws[ox], we[ox] - ws[ox], False))


@nb.njit(nogil=True, cache=True)
def _backward(p0, p1, x, y, dy, dx, hs, he, ws, we, wr, wc, code):
    """Maps [p0, p1) of dx (P, H, W) from dy (P, Ho, Wo); y (the forward output) is read by code 2 only.

    max: per output row, a vertical pass keeps each column's maximum and the first row holding
    it; the horizontal pass picks, among the window's columns holding the window maximum, the
    smallest such row, then the smallest column: the first maximum in row-major order (branch-free
    selects: the comparisons are data dependent)."""
    P, H, W = x.shape
    Ho, Wo = dy.shape[1], dy.shape[2]
    h = np.empty(W, x.dtype)
    rows = np.empty(W, x.dtype)      # row of each column's maximum (exact in float for H < 2^24)
    for p in range(p0, p1):
        xp = x[p]
        dxp = dx[p]
        dyp = dy[p]
        for r in range(H):
            dr = dxp[r]
            for c in range(W):
                dr[c] = 0
        for oy in range(Ho):
            r0 = hs[oy]
            gy = dyp[oy]
            if code == 0:
                row = xp[r0]
                fr = x.dtype.type(r0)
                for c in range(W):
                    h[c] = row[c]
                    rows[c] = fr
                for r in range(r0 + 1, he[oy]):
                    row = xp[r]
                    fr = x.dtype.type(r)
                    for c in range(W):
                        a = row[c]
                        gt = a > h[c]
                        h[c] = a if gt else h[c]
                        rows[c] = fr if gt else rows[c]
                for ox in range(Wo):
                    bc = ws[ox]
                    m = h[bc]
                    br = rows[bc]
                    for c in range(bc + 1, we[ox]):
                        hc = h[c]
                        rc = rows[c]
                        take = (hc > m) | ((hc == m) & (rc < br))
                        m = hc if take else m
                        br = rc if take else br
                        bc = c if take else bc
                    dxp[int(br), bc] += gy[ox]
                continue
            for c in range(W):
                h[c] = 0
            for ox in range(Wo):
                g = gy[ox]
                c0 = ws[ox]
                if code == 1:
                    wo = wc[ox]
                    for c in range(c0, we[ox]):
                        h[c] += g * wo[c - c0]
                else:
                    yv = y[p, oy, ox]
                    g = g / yv if yv != 0 else g * 0
                    for c in range(c0, we[ox]):
                        h[c] += g
            for r in range(r0, he[oy]):
                dr = dxp[r]
                if code == 1:
                    a = wr[oy, r - r0]
                    for c in range(W):
                        dr[c] += a * h[c]
                else:
                    row = xp[r]
                    for c in range(W):
                        dr[c] += row[c] * h[c]


@nb.njit(parallel=True, cache=True)
def _scatter_max(dy, idx, dx, nch):
    """dx (P, H*W) = 0, then dx[p, idx[p, o]] += dy[p, o]: max pooling's backward from the indices.
    Returns the number of indices outside [0, H*W) (skipped): the range check costs no extra pass."""
    P, L = dx.shape
    M = dy.shape[1]
    bad = 0
    for ch in nb.prange(nch):
        for p in range(ch * P // nch, (ch + 1) * P // nch):
            d = dx[p]
            for i in range(L):
                d[i] = 0
            g = dy[p]
            ip = idx[p]
            for o in range(M):
                j = ip[o]
                if j < 0 or j >= L:
                    bad += 1
                else:
                    d[j] += g[o]
    return bad


@nb.njit(parallel=True, fastmath={"reassoc", "contract", "nsz"}, cache=True)
def _row_means(x2, y, nch):
    """y[i] = mean of row i of x2 (R, L): global average pooling (vectorised sums)."""
    R, L = x2.shape
    scale = x2.dtype.type(1.0 / L)
    for ch in nb.prange(nch):
        for i in range(ch * R // nch, (ch + 1) * R // nch):
            row = x2[i]
            acc = x2.dtype.type(0)
            for k in range(L):
                acc += row[k]
            y[i] = acc * scale


@nb.njit(parallel=True, cache=True)
def _row_fill(g, dx2, nch):
    """dx2[i, :] = g[i] / L: the backward of global average pooling."""
    R, L = dx2.shape
    scale = dx2.dtype.type(1.0 / L)
    for ch in nb.prange(nch):
        for i in range(ch * R // nch, (ch + 1) * R // nch):
            row = dx2[i]
            v = g[i] * scale
            for k in range(L):
                row[k] = v


def chunks(planes: int) -> int:
    """Parallel chunks of feature maps: four per thread (each chunk allocates its buffers once)."""
    return max(1, min(planes, 4 * nb.get_num_threads()))


_NO_IDX = np.zeros((1, 1, 1), np.int64)


def run_forward(x3, plan, out, core=None, return_indices=False):
    """Apply a plan to x3 (P, H, W) -> y (P, Ho, Wo), and the argmax indices (P, Ho, Wo) when asked
    (max only), with a compiled forward core (default: Numba's)."""
    y = np.empty((x3.shape[0],) + tuple(out), x3.dtype)
    idx = np.empty(y.shape, np.int64) if return_indices else _NO_IDX
    args = (x3, y, idx, bool(return_indices), plan.hs, plan.he, plan.ws, plan.we, plan.wr, plan.wc, plan.code)
    if core is None:
        parallel_jobs(_forward, x3.shape[0], *args)
    else:
        core(*args)
    return (y, idx) if return_indices else y


def run_backward(dy3, x3, y3, plan, core=None, indices=None, scatter=None):
    """dx (P, H, W) of a plan from dy (P, Ho, Wo); y3 (the forward output) is read by L2 only; max
    with the forward's ``indices`` (P, Ho, Wo) only scatters dy. dx starts on a cache line for a
    compiled writer (the Cython core and scatter write whole lines with aligned non-temporal
    stores); Numba's passes need no alignment and take np.empty_like's."""
    writer = core if indices is None else scatter
    dx = empty_aligned(x3.shape, x3.dtype) if writer is not None else np.empty_like(x3)
    if indices is not None:
        p = x3.shape[0]
        bad = (scatter or _scatter_max)(dy3.reshape(p, -1), indices.reshape(p, -1), dx.reshape(p, -1),
                                        chunks(p))
        if bad:
            raise index_range_error(bad, dx.shape[1] * dx.shape[2])
        return dx
    args = (x3, dy3 if y3 is None else y3, dy3, dx, plan.hs, plan.he, plan.ws, plan.we, plan.wr, plan.wc,
            plan.code)
    if core is None:
        parallel_jobs(_backward, x3.shape[0], *args)
    else:
        core(*args)
    return dx


@functools.lru_cache(maxsize=64)
def maxout_plan(channels, pieces, length, dtype):
    """Maxout as max pooling of each example's (C, L) map: output row k reads rows [k p, (k + 1) p)."""
    k = channels // pieces
    rows = np.arange(k, dtype=np.int64) * pieces
    cols = np.arange(length, dtype=np.int64)
    return PoolPlan(0, rows, rows + pieces, cols, cols + 1, np.ones((k, pieces), dtype),
                    np.ones((length, 1), dtype))


@functools.lru_cache(maxsize=64)
def global_plan(channels, length, dtype):
    """Global average pooling of each example's (C, H*W) map: one row, all columns, weight 1/(H W)."""
    rows = np.arange(channels, dtype=np.int64)
    return PoolPlan(1, rows, rows + 1, np.zeros(1, np.int64), np.full(1, length, np.int64),
                    np.ones((channels, 1), dtype), np.full((1, length), 1.0 / length, dtype))


def _planes(a):
    return a.reshape(-1, a.shape[-2], a.shape[-1])


def _idx3(indices, p):
    return None if indices is None else np.ascontiguousarray(indices).reshape(p, *indices.shape[2:])


@dataclass(frozen=True)
class Cores:
    """The compiled passes a backend supplies (None: Numba's); the drivers below are shared."""

    forward: Callable | None = None
    backward: Callable | None = None
    scatter: Callable | None = None
    row_means: Callable | None = None
    row_fill: Callable | None = None
    maxout: Callable | None = None            # (x3, pieces, y3) -> bool (False: not handled)
    maxout_backward: Callable | None = None   # (dy3, x3, pieces, dx3) -> bool


NUMBA = Cores()


def pool2d(x, kind, size, stride, pads, out, sigma, return_indices=False, *, cores=NUMBA):
    """Separable windowed pooling (max / avg / l2 / gaussian), parallel over feature maps."""
    plan = region_plan(x.shape[2:], kind, size, stride, pads, out, sigma, x.dtype)
    res = run_forward(_planes(x), plan, out, cores.forward, return_indices)
    shape = x.shape[:2] + tuple(out)
    return (res[0].reshape(shape), res[1].reshape(shape)) if return_indices else res.reshape(shape)


def pool2d_backward(dy, x, y, kind, size, stride, pads, out, sigma, indices=None, *, cores=NUMBA):
    """Gradient of windowed pooling (max: first argmax, or the forward's indices; sums: separable scatter)."""
    plan = region_plan(x.shape[2:], kind, size, stride, pads, out, sigma, x.dtype)
    y3 = None if y is None else _planes(y)
    p = x.shape[0] * x.shape[1]
    return run_backward(_planes(dy), _planes(x), y3, plan, cores.backward, _idx3(indices, p),
                        cores.scatter).reshape(x.shape)


def adaptive_pool2d(x, kind, out, return_indices=False, *, cores=NUMBA):
    """Adaptive pooling (fig. 9.11) through the separable core."""
    plan = adaptive_plan(x.shape[2:], kind, out, x.dtype)
    res = run_forward(_planes(x), plan, out, cores.forward, return_indices)
    shape = x.shape[:2] + tuple(out)
    return (res[0].reshape(shape), res[1].reshape(shape)) if return_indices else res.reshape(shape)


def adaptive_pool2d_backward(dy, x, y, kind, out, indices=None, *, cores=NUMBA):
    """Gradient of adaptive pooling through the separable core."""
    plan = adaptive_plan(x.shape[2:], kind, out, x.dtype)
    y3 = None if y is None else _planes(y)
    p = x.shape[0] * x.shape[1]
    return run_backward(_planes(dy), _planes(x), y3, plan, cores.backward, _idx3(indices, p),
                        cores.scatter).reshape(x.shape)


def maxout(x3, pieces, *, cores=NUMBA):
    """Maxout (fig. 9.9): max over groups of channels, as pooling of each example's (C, L) map."""
    n, c, length = x3.shape
    if cores.maxout is not None:
        y3 = np.empty((n, c // pieces, length), x3.dtype)
        if cores.maxout(x3, pieces, y3):
            return y3
    return run_forward(x3, maxout_plan(c, pieces, length, x3.dtype), (c // pieces, length), cores.forward)


def maxout_backward(dy3, x3, pieces, *, cores=NUMBA):
    """Gradient of maxout: dy to the first channel holding the group's maximum."""
    n, c, length = x3.shape
    if cores.maxout_backward is not None:
        dx3 = np.empty_like(x3)
        if cores.maxout_backward(dy3, x3, pieces, dx3):
            return dx3
    return run_backward(dy3, x3, None, maxout_plan(c, pieces, length, x3.dtype), cores.backward)


def global_avg_pool2d(x, *, cores=NUMBA):
    """Mean of each feature map, (N, C, H, W) -> (N, C), one vectorised row sum per map."""
    n, c, h, w = x.shape
    y = np.empty(n * c, x.dtype)
    (cores.row_means or _row_means)(x.reshape(n * c, h * w), y, chunks(n * c))
    return y.reshape(n, c)


def global_avg_pool2d_backward(dy, x_shape, *, cores=NUMBA):
    """dx = dy / (H W) broadcast over each feature map."""
    n, c, h, w = x_shape
    dx = np.empty((n * c, h * w), dy.dtype)
    (cores.row_fill or _row_fill)(dy.reshape(n * c), dx, chunks(n * c))
    return dx.reshape(x_shape)


def register_all(backend: str, cores: Cores) -> None:
    """Register the pooling ops on ``backend`` with these compiled passes."""
    for fn in (pool2d, pool2d_backward, adaptive_pool2d, adaptive_pool2d_backward, maxout, maxout_backward,
               global_avg_pool2d, global_avg_pool2d_backward):
        bound = functools.partial(fn, cores=cores)
        functools.update_wrapper(bound, fn)
        register_kernel(fn.__name__, "direct", backend, description=(fn.__doc__ or "").split("\n")[0])(bound)


register_all("numba", NUMBA)
