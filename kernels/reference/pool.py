"""NumPy reference pooling (section 9.3): windowed, adaptive, maxout, global average.

Windowed pooling loops over the k_h x k_w window offsets (vectorised over the outputs) on an
input padded with -inf (max) or 0 (sums) and a validity mask, so that averages count only the
positions inside the input. Adaptive pooling loops over its regions. These are the executable
specification; the compiled backends share ``region_plan`` / ``adaptive_plan`` (the regions as
index and weight tables) from this module.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from dlbench.registry import register_kernel

KIND_CODES = {"max": 0, "avg": 1, "gaussian": 1, "l2": 2}   # avg and gaussian are weighted sums


def gaussian_weights(k: int, sigma: float) -> np.ndarray:
    """exp(-d^2 / (2 sigma^2)) for the k offsets of one window axis, d the distance from its centre."""
    d = np.arange(k) - (k - 1) / 2.0
    return np.exp(-d * d / (2.0 * sigma * sigma))


# ---------------------------------------------------------------- plans shared by compiled backends
@dataclass
class PoolPlan:
    """Regions of a separable pooling: output row o reads rows [hs[o], he[o]) with weights
    wr[o, :he-hs] (normalised, for weighted sums); the same for columns. code: 0 max, 1 weighted
    sum (avg / gaussian), 2 L2 norm."""

    code: int
    hs: np.ndarray
    he: np.ndarray
    ws: np.ndarray
    we: np.ndarray
    wr: np.ndarray
    wc: np.ndarray


def _axis_windows(m, k, s, lo, out, g):
    start = np.arange(out) * s - lo
    hs = np.maximum(start, 0)
    he = np.minimum(start + k, m)
    w = np.zeros((out, k))
    for o in range(out):
        seg = g[hs[o] - start[o]:he[o] - start[o]]
        w[o, :len(seg)] = seg / seg.sum()
    return hs.astype(np.int64), he.astype(np.int64), w


@functools.lru_cache(maxsize=256)
def region_plan(hw, kind, size, stride, pads, out, sigma, dtype) -> PoolPlan:
    """The plan of windowed pooling (regions clipped to the input; padding never counted).

    Cached per geometry (all arguments hashable); callers must not modify the arrays."""
    gauss = kind == "gaussian"
    axes = [_axis_windows(m, k, s, p[0], o, gaussian_weights(k, sigma) if gauss else np.ones(k))
            for m, k, s, p, o in zip(hw, size, stride, pads, out)]
    (hs, he, wr), (ws, we, wc) = axes
    return PoolPlan(KIND_CODES[kind], hs, he, ws, we, wr.astype(dtype), wc.astype(dtype))


def adaptive_regions(m: int, out: int):
    """Region bounds along one axis: [floor(o m / out), ceil((o + 1) m / out))."""
    o = np.arange(out)
    return (o * m) // out, -((-(o + 1) * m) // out)


@functools.lru_cache(maxsize=256)
def adaptive_plan(hw, kind, out, dtype) -> PoolPlan:
    """The plan of adaptive pooling (cached; callers must not modify the arrays)."""
    axes = []
    for m, n in zip(hw, out):
        s, e = adaptive_regions(m, n)
        w = np.zeros((n, int((e - s).max())))
        for o in range(n):
            w[o, :e[o] - s[o]] = 1.0 / (e[o] - s[o])
        axes.append((s.astype(np.int64), e.astype(np.int64), w.astype(dtype)))
    (hs, he, wr), (ws, we, wc) = axes
    return PoolPlan(KIND_CODES[kind], hs, he, ws, we, wr, wc)


# ---------------------------------------------------------------- windowed pooling
def _padded(x, size, stride, pads, out, fill):
    """x placed in an array covering every window (fill outside) and the validity mask."""
    n, c, h, w = x.shape
    (pt, _), (pl, _) = pads
    hp = (out[0] - 1) * stride[0] + size[0]
    wp = (out[1] - 1) * stride[1] + size[1]
    xp = np.full((n, c, max(hp, pt + h), max(wp, pl + w)), fill, x.dtype)
    xp[:, :, pt:pt + h, pl:pl + w] = x
    valid = np.zeros(xp.shape[2:], bool)
    valid[pt:pt + h, pl:pl + w] = True
    return xp, valid


def _offsets(size, stride, out):
    """Yield (j, i, slice_rows, slice_cols): the input positions at window offset (j, i) of every output."""
    for j in range(size[0]):
        for i in range(size[1]):
            yield j, i, slice(j, j + stride[0] * (out[0] - 1) + 1, stride[0]), \
                slice(i, i + stride[1] * (out[1] - 1) + 1, stride[1])


def _window_weights(kind, size, sigma, dtype):
    if kind == "gaussian":
        return np.outer(gaussian_weights(size[0], sigma), gaussian_weights(size[1], sigma)).astype(dtype)
    return np.ones(size, dtype)


@register_kernel("pool2d", "direct", "numpy")
def pool2d(x, kind, size, stride, pads, out, sigma, return_indices=False):
    """Windowed pooling (9.3): max, mean over in-input positions, L2 norm, Gaussian-weighted mean.

    ``return_indices`` (max): also the flat index r * W + c, in each (H, W) map, of the first
    maximum of each window in row-major order (torch's convention)."""
    xp, valid = _padded(x, size, stride, pads, out, -np.inf if kind == "max" else 0.0)
    g = _window_weights(kind, size, sigma, x.dtype)
    acc = np.full(x.shape[:2] + tuple(out), -np.inf if kind == "max" else 0.0, x.dtype)
    norm = np.zeros(out, x.dtype)
    for j, i, rs, cs in _offsets(size, stride, out):
        v = xp[:, :, rs, cs]
        if kind == "max":
            np.maximum(acc, v, out=acc)
        elif kind == "l2":
            acc += v * v
        else:
            acc += g[j, i] * v
            norm += g[j, i] * valid[rs, cs]
    if kind == "l2":
        return np.sqrt(acc)
    if kind != "max":
        return acc / norm
    if not return_indices:
        return acc
    (pt, _), (pl, _) = pads
    idx = np.full(acc.shape, -1, np.int64)
    oy, ox = np.meshgrid(np.arange(out[0]), np.arange(out[1]), indexing="ij")
    for j, i, rs, cs in _offsets(size, stride, out):       # row-major window order: first hit wins
        hit = (xp[:, :, rs, cs] == acc) & (idx < 0)
        flat = (oy * stride[0] - pt + j) * x.shape[3] + (ox * stride[1] - pl + i)
        idx = np.where(hit, flat, idx)
    return acc, idx


def index_range_error(nbad: int, length: int) -> ValueError:
    """The error for max-pooling indices outside a map's [0, H*W) (``length`` = H*W); every
    backend's scatter raises it."""
    return ValueError(f"indices must lie in [0, H*W) = [0, {length}): {nbad} do not")


def scatter_max(dy, indices, x_shape):
    """dx with dy added at the flat (H*W) positions ``indices`` of each map (max pooling's backward)."""
    n, c, h, w = x_shape
    bad = np.count_nonzero((indices < 0) | (indices >= h * w))
    if bad:
        raise index_range_error(bad, h * w)
    dx = np.zeros((n * c, h * w), dy.dtype)
    np.add.at(dx, (np.arange(n * c)[:, None], indices.reshape(n * c, -1)), dy.reshape(n * c, -1))
    return dx.reshape(x_shape)


@register_kernel("pool2d_backward", "direct", "numpy")
def pool2d_backward(dy, x, y, kind, size, stride, pads, out, sigma, indices=None):
    """Gradient of ``pool2d``: max routes dy to the first (row-major) maximum of each window, or to
    the forward's ``indices`` when given."""
    if indices is not None:
        return scatter_max(dy, indices, x.shape)
    n, c, h, w = x.shape
    (pt, _), (pl, _) = pads
    xp, valid = _padded(x, size, stride, pads, out, -np.inf if kind == "max" else 0.0)
    dxp = np.zeros_like(xp)
    if kind == "max":
        y = pool2d(x, kind, size, stride, pads, out, sigma)
        taken = np.zeros(dy.shape, bool)
    elif kind in ("avg", "gaussian"):
        g = _window_weights(kind, size, sigma, x.dtype)
        norm = np.zeros(out, x.dtype)
        for j, i, rs, cs in _offsets(size, stride, out):
            norm += g[j, i] * valid[rs, cs]
        scaled = dy / norm
    else:
        scaled = np.divide(dy, y, out=np.zeros_like(dy), where=y != 0)
    for j, i, rs, cs in _offsets(size, stride, out):
        if kind == "max":
            hit = (xp[:, :, rs, cs] == y) & ~taken
            dxp[:, :, rs, cs] += np.where(hit, dy, 0)
            taken |= hit
        elif kind == "l2":
            dxp[:, :, rs, cs] += scaled * xp[:, :, rs, cs]
        else:
            dxp[:, :, rs, cs] += g[j, i] * scaled
    return np.ascontiguousarray(dxp[:, :, pt:pt + h, pl:pl + w])


# ---------------------------------------------------------------- adaptive pooling
def _regions(x_hw, out):
    (rs, re), (cs, ce) = adaptive_regions(x_hw[0], out[0]), adaptive_regions(x_hw[1], out[1])
    for a in range(out[0]):
        for b in range(out[1]):
            yield a, b, slice(rs[a], re[a]), slice(cs[b], ce[b])


@register_kernel("adaptive_pool2d", "direct", "numpy")
def adaptive_pool2d(x, kind, out, return_indices=False):
    """Adaptive pooling (fig. 9.11): a fixed grid of regions whose size scales with the input;
    ``return_indices`` (max): the flat (H*W) index of each region's first maximum."""
    y = np.empty(x.shape[:2] + tuple(out), x.dtype)
    idx = np.empty(y.shape, np.int64) if return_indices else None
    for a, b, rs, cs in _regions(x.shape[2:], out):
        region = x[:, :, rs, cs]
        if kind == "max":
            flat = region.reshape(region.shape[0], region.shape[1], -1)
            k = flat.argmax(axis=2)
            y[:, :, a, b] = np.take_along_axis(flat, k[:, :, None], axis=2)[:, :, 0]
            if return_indices:
                r, c = rs.start + k // region.shape[3], cs.start + k % region.shape[3]
                idx[:, :, a, b] = r * x.shape[3] + c
        elif kind == "avg":
            y[:, :, a, b] = region.mean(axis=(2, 3))
        else:
            y[:, :, a, b] = np.sqrt((region * region).sum(axis=(2, 3)))
    return (y, idx) if return_indices else y


@register_kernel("adaptive_pool2d_backward", "direct", "numpy")
def adaptive_pool2d_backward(dy, x, y, kind, out, indices=None):
    """Gradient of ``adaptive_pool2d`` (regions may overlap: contributions add up)."""
    if indices is not None:
        return scatter_max(dy, indices, x.shape)
    n, c = x.shape[:2]
    dx = np.zeros_like(x)
    for a, b, rs, cs in _regions(x.shape[2:], out):
        region = x[:, :, rs, cs]
        g = dy[:, :, a, b][:, :, None, None]
        if kind == "max":
            flat = region.reshape(n, c, -1)
            hit = np.zeros_like(flat)
            np.put_along_axis(hit, flat.argmax(axis=2)[:, :, None], 1, axis=2)
            dx[:, :, rs, cs] += g * hit.reshape(region.shape)
        elif kind == "avg":
            dx[:, :, rs, cs] += g / (region.shape[2] * region.shape[3])
        else:
            ya = y[:, :, a, b][:, :, None, None]
            dx[:, :, rs, cs] += np.divide(g * region, ya, out=np.zeros_like(region), where=ya != 0)
    return dx


# ---------------------------------------------------------------- maxout and global average pooling
@register_kernel("maxout", "direct", "numpy")
def maxout(x3, pieces):
    """Maxout (fig. 9.9): x3 (N, C, L) -> (N, C / pieces, L), max over each group of channels."""
    n, c, length = x3.shape
    return x3.reshape(n, c // pieces, pieces, length).max(axis=2)


@register_kernel("maxout_backward", "direct", "numpy")
def maxout_backward(dy3, x3, pieces):
    """Gradient of maxout: dy to the first channel of the group that holds the maximum."""
    n, c, length = x3.shape
    g = x3.reshape(n, c // pieces, pieces, length)
    hit = np.zeros_like(g)
    np.put_along_axis(hit, g.argmax(axis=2)[:, :, None, :], 1, axis=2)
    return (hit * dy3[:, :, None, :]).reshape(n, c, length)


@register_kernel("global_avg_pool2d", "direct", "numpy")
def global_avg_pool2d(x):
    """Mean over H and W of each feature map: (N, C, H, W) -> (N, C)."""
    return x.mean(axis=(2, 3))


@register_kernel("global_avg_pool2d_backward", "direct", "numpy")
def global_avg_pool2d_backward(dy, x_shape):
    """dx[n, c, :, :] = dy[n, c] / (H W)."""
    h, w = x_shape[2:]
    return np.ascontiguousarray(np.broadcast_to((dy / (h * w))[:, :, None, None], x_shape))
