"""Numba CPU pooling: windowed, adaptive, maxout and global average pooling share two kernels.

Every pooling here is separable over a rectangle of rows [hs, he) x columns [ws, we) (a plan from
``dlbench.kernels.reference.pool``): for each output row, a vertical pass reduces the window's
rows into one contiguous row buffer (max, weighted sum, or sum of squares; vectorised), then a
horizontal pass reduces each window's columns of the buffer. The Gaussian weight
exp(-(dr^2 + dc^2) / 2 sigma^2) factorises into row and column weights, and so does its
normaliser over the in-input positions. Parallel over the (N * C) feature maps.

The backward of the weighted sums and of the L2 norm is separable the same way (a horizontal
scatter into a row buffer, then vertical axpys); max routes dy to the first maximum (row-major)
of each window.
"""

import numba as nb
import numpy as np
from dlbench.kernels.reference.pool import adaptive_plan, region_plan

from dlbench.registry import register_kernel


@nb.njit(parallel=True, cache=True)
def _forward(x, y, hs, he, ws, we, wr, wc, code):
    """x (P, H, W) -> y (P, Ho, Wo); code 0 max, 1 weighted sum (wr x wc), 2 L2 norm."""
    P, H, W = x.shape
    Ho, Wo = y.shape[1], y.shape[2]
    for p in nb.prange(P):
        v = np.empty(W, x.dtype)
        for oy in range(Ho):
            r0 = hs[oy]
            r1 = he[oy]
            if code == 0:
                for c in range(W):
                    v[c] = x[p, r0, c]
                for r in range(r0 + 1, r1):
                    for c in range(W):
                        a = x[p, r, c]
                        v[c] = a if a > v[c] else v[c]
                for ox in range(Wo):
                    c0 = ws[ox]
                    m = v[c0]
                    for c in range(c0 + 1, we[ox]):
                        m = v[c] if v[c] > m else m
                    y[p, oy, ox] = m
            elif code == 1:
                a = wr[oy, 0]
                for c in range(W):
                    v[c] = a * x[p, r0, c]
                for r in range(r0 + 1, r1):
                    a = wr[oy, r - r0]
                    for c in range(W):
                        v[c] += a * x[p, r, c]
                for ox in range(Wo):
                    c0 = ws[ox]
                    acc = wc[ox, 0] * v[c0]
                    for c in range(c0 + 1, we[ox]):
                        acc += wc[ox, c - c0] * v[c]
                    y[p, oy, ox] = acc
            else:
                for c in range(W):
                    v[c] = x[p, r0, c] * x[p, r0, c]
                for r in range(r0 + 1, r1):
                    for c in range(W):
                        v[c] += x[p, r, c] * x[p, r, c]
                for ox in range(Wo):
                    c0 = ws[ox]
                    acc = v[c0]
                    for c in range(c0 + 1, we[ox]):
                        acc += v[c]
                    y[p, oy, ox] = np.sqrt(acc)


@nb.njit(parallel=True, cache=True)
def _backward(x, y, dy, dx, hs, he, ws, we, wr, wc, code):
    """dx (P, H, W) from dy (P, Ho, Wo); y (the forward output) is read by code 2 only."""
    P, H, W = x.shape
    Ho, Wo = dy.shape[1], dy.shape[2]
    for p in nb.prange(P):
        for r in range(H):
            for c in range(W):
                dx[p, r, c] = 0
        if code == 0:
            for oy in range(Ho):
                for ox in range(Wo):
                    br = hs[oy]
                    bc = ws[ox]
                    m = x[p, br, bc]
                    for r in range(hs[oy], he[oy]):
                        for c in range(ws[ox], we[ox]):
                            if x[p, r, c] > m:
                                m = x[p, r, c]
                                br = r
                                bc = c
                    dx[p, br, bc] += dy[p, oy, ox]
        else:
            h = np.empty(W, x.dtype)
            for oy in range(Ho):
                for c in range(W):
                    h[c] = 0
                for ox in range(Wo):
                    g = dy[p, oy, ox]
                    c0 = ws[ox]
                    if code == 1:
                        for c in range(c0, we[ox]):
                            h[c] += g * wc[ox, c - c0]
                    else:
                        yv = y[p, oy, ox]
                        g = g / yv if yv != 0 else g * 0
                        for c in range(c0, we[ox]):
                            h[c] += g
                r0 = hs[oy]
                for r in range(r0, he[oy]):
                    if code == 1:
                        a = wr[oy, r - r0]
                        for c in range(W):
                            dx[p, r, c] += a * h[c]
                    else:
                        for c in range(W):
                            dx[p, r, c] += x[p, r, c] * h[c]


def run_forward(x3, plan, out, forward=_forward):
    """Apply a plan to x3 (P, H, W) -> (P, Ho, Wo) with a compiled forward core."""
    y = np.empty((x3.shape[0],) + tuple(out), x3.dtype)
    forward(x3, y, plan.hs, plan.he, plan.ws, plan.we, plan.wr, plan.wc, plan.code)
    return y


def run_backward(dy3, x3, y3, plan, backward=_backward):
    dx = np.empty_like(x3)
    backward(x3, dy3 if y3 is None else y3, dy3, dx, plan.hs, plan.he, plan.ws, plan.we, plan.wr, plan.wc,
             plan.code)
    return dx


def _planes(a):
    return a.reshape(-1, a.shape[-2], a.shape[-1])


def maxout_plan(pieces, length, dtype):
    """Maxout as max pooling of (N*K, pieces, L) maps with a pieces x 1 window per column."""
    from dlbench.kernels.reference.pool import PoolPlan

    cols = np.arange(length, dtype=np.int64)
    return PoolPlan(0, np.zeros(1, np.int64), np.full(1, pieces, np.int64), cols, cols + 1,
                    np.ones((1, pieces), dtype), np.ones((length, 1), dtype))


def global_plan(h, w, dtype):
    """Global average pooling as one (H, W) region with weights 1/H x 1/W."""
    from dlbench.kernels.reference.pool import PoolPlan

    return PoolPlan(1, np.zeros(1, np.int64), np.full(1, h, np.int64), np.zeros(1, np.int64),
                    np.full(1, w, np.int64), np.full((1, h), 1.0 / h, dtype), np.full((1, w), 1.0 / w, dtype))


@register_kernel("pool2d", "direct", "numba")
def pool2d(x, kind, size, stride, pads, out, sigma):
    """Separable windowed pooling (max / avg / l2 / gaussian), parallel over feature maps."""
    plan = region_plan(x.shape[2:], kind, size, stride, pads, out, sigma, x.dtype)
    return run_forward(_planes(x), plan, out).reshape(x.shape[:2] + tuple(out))


@register_kernel("pool2d_backward", "direct", "numba")
def pool2d_backward(dy, x, y, kind, size, stride, pads, out, sigma):
    """Gradient of windowed pooling (max: first argmax; sums: separable scatter)."""
    plan = region_plan(x.shape[2:], kind, size, stride, pads, out, sigma, x.dtype)
    y3 = None if y is None else _planes(y)
    return run_backward(_planes(dy), _planes(x), y3, plan).reshape(x.shape)


@register_kernel("adaptive_pool2d", "direct", "numba")
def adaptive_pool2d(x, kind, out):
    """Adaptive pooling (fig. 9.11) through the separable core."""
    plan = adaptive_plan(x.shape[2:], kind, out, x.dtype)
    return run_forward(_planes(x), plan, out).reshape(x.shape[:2] + tuple(out))


@register_kernel("adaptive_pool2d_backward", "direct", "numba")
def adaptive_pool2d_backward(dy, x, y, kind, out):
    """Gradient of adaptive pooling through the separable core."""
    plan = adaptive_plan(x.shape[2:], kind, out, x.dtype)
    y3 = None if y is None else _planes(y)
    return run_backward(_planes(dy), _planes(x), y3, plan).reshape(x.shape)


@register_kernel("maxout", "direct", "numba")
def maxout(x3, pieces):
    """Maxout (fig. 9.9): max over groups of channels, as pooling of (pieces, L) maps."""
    n, c, length = x3.shape
    y = run_forward(x3.reshape(-1, pieces, length), maxout_plan(pieces, length, x3.dtype), (1, length))
    return y.reshape(n, c // pieces, length)


@register_kernel("maxout_backward", "direct", "numba")
def maxout_backward(dy3, x3, pieces):
    """Gradient of maxout: dy to the first channel holding the group's maximum."""
    n, c, length = x3.shape
    dx = run_backward(dy3.reshape(-1, 1, length), x3.reshape(-1, pieces, length), None,
                      maxout_plan(pieces, length, x3.dtype))
    return dx.reshape(n, c, length)


@register_kernel("global_avg_pool2d", "direct", "numba")
def global_avg_pool2d(x):
    """Mean of each feature map, (N, C, H, W) -> (N, C)."""
    n, c, h, w = x.shape
    return run_forward(_planes(x), global_plan(h, w, x.dtype), (1, 1)).reshape(n, c)


@register_kernel("global_avg_pool2d_backward", "direct", "numba")
def global_avg_pool2d_backward(dy, x_shape):
    """dx = dy / (H W) broadcast over each feature map."""
    n, c, h, w = x_shape
    unused_x = np.empty((n * c, h, w), dy.dtype)    # the weighted-sum backward never reads x
    dx = run_backward(dy.reshape(-1, 1, 1), unused_x, None, global_plan(h, w, dy.dtype))
    return dx.reshape(x_shape)
