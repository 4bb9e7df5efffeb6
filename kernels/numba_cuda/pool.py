"""numba.cuda pooling (section 9.3): windowed (max, avg, L2, Gaussian), adaptive (fig. 9.11),
maxout across channels (fig. 9.9) and global average pooling, each with its backward.

All of them are one forward and one backward kernel over feature maps (P, H, W) and a *plan*
(``dlbench.kernels.reference.pool``): output (oy, ox) pools the rectangle rows [hs[oy], he[oy])
x columns [ws[ox], we[ox]) with separable weights wr[oy, :] x wc[ox, :] (normalised over the
in-input positions: average and Gaussian), the largest value (max, NaN propagates) or the L2
norm. Maxout is pooling of (pieces, L) maps with column windows; global average pooling is one
(H, W) region. One thread per output element; the backward scatters with atomic adds (max: to
the first maximum in row-major order, as torch; L2: dy x / y, 0 where y = 0), so overlapping
windows add up. Plans are uploaded once per problem and cached.

Same arguments as the numpy reference kernels; NumPy in -> NumPy out, device in -> device out.
"""

from __future__ import annotations

import math

import numpy as np
from dlbench.kernels.numba_cuda import _conv_util as U
from dlbench.kernels.reference.pool import KIND_CODES, PoolPlan, adaptive_plan, region_plan
from numba import cuda

from dlbench.registry import register_kernel


def _make_forward(dt):
    @cuda.jit(cache=False)
    def kern(x, y, hs, he, ws, we, wr, wc, code, P, H, W, Ho, Wo):
        """y[p, oy, ox] = pool over x[p, hs[oy]:he[oy], ws[ox]:we[ox]] (flat x and y)."""
        plane = Ho * Wo
        for idx in range(cuda.grid(1), P * plane, cuda.gridsize(1)):
            p = idx // plane
            rem = idx - p * plane
            oy = rem // Wo
            ox = rem - oy * Wo
            r0 = hs[oy]
            r1 = he[oy]
            c0 = ws[ox]
            c1 = we[ox]
            base = p * H * W
            if code == 0:
                m = x[base + r0 * W + c0]
                for r in range(r0, r1):
                    for c in range(c0, c1):
                        v = x[base + r * W + c]
                        if v > m or v != v:
                            m = v
                y[idx] = m
            elif code == 1:
                acc = dt(0)
                for r in range(r0, r1):
                    row = dt(0)
                    for c in range(c0, c1):
                        row += wc[ox, c - c0] * x[base + r * W + c]
                    acc += wr[oy, r - r0] * row
                y[idx] = acc
            else:
                acc = dt(0)
                for r in range(r0, r1):
                    for c in range(c0, c1):
                        v = x[base + r * W + c]
                        acc += v * v
                y[idx] = math.sqrt(acc)
    return kern


def _make_backward(dt):
    @cuda.jit(cache=False)
    def kern(dy, x, y, dx, hs, he, ws, we, wr, wc, code, P, H, W, Ho, Wo):
        """dx (zeroed) += the adjoint of the forward, one thread per output, atomic adds."""
        plane = Ho * Wo
        for idx in range(cuda.grid(1), P * plane, cuda.gridsize(1)):
            p = idx // plane
            rem = idx - p * plane
            oy = rem // Wo
            ox = rem - oy * Wo
            r0 = hs[oy]
            r1 = he[oy]
            c0 = ws[ox]
            c1 = we[ox]
            base = p * H * W
            g = dy[idx]
            if code == 0:
                best = base + r0 * W + c0
                m = x[best]
                for r in range(r0, r1):
                    for c in range(c0, c1):
                        v = x[base + r * W + c]
                        if v > m:
                            m = v
                            best = base + r * W + c
                cuda.atomic.add(dx, best, g)
            elif code == 1:
                for r in range(r0, r1):
                    gr = wr[oy, r - r0] * g
                    for c in range(c0, c1):
                        cuda.atomic.add(dx, base + r * W + c, gr * wc[ox, c - c0])
            else:
                yv = y[idx]
                if yv != 0:
                    s = g / yv
                    for r in range(r0, r1):
                        for c in range(c0, c1):
                            cuda.atomic.add(dx, base + r * W + c, s * x[base + r * W + c])
    return kern


_plans: dict = {}


def _device_plan(key, build):
    """(code, device arrays of the plan ``build()``), uploaded once per problem ``key``."""
    if key not in _plans:
        if len(_plans) > 256:
            _plans.clear()
        plan: PoolPlan = build()
        _plans[key] = plan.code, tuple(cuda.to_device(np.ascontiguousarray(a))
                                       for a in (plan.hs, plan.he, plan.ws, plan.we, plan.wr, plan.wc))
    return _plans[key]


def _windowed(hw, kind, size, stride, pads, out, sigma, dtype):
    key = ("win", tuple(hw), kind, tuple(size), tuple(stride), tuple(map(tuple, pads)), tuple(out),
           float(sigma) if kind == "gaussian" else 0.0, np.dtype(dtype).str)
    return _device_plan(key, lambda: region_plan(tuple(hw), kind, size, stride, pads, out, sigma, dtype))


def _adaptive(hw, kind, out, dtype):
    key = ("ada", tuple(hw), kind, tuple(out), np.dtype(dtype).str)
    return _device_plan(key, lambda: adaptive_plan(tuple(hw), kind, out, dtype))


def _columns(rows: int, length: int, dtype):
    """Plan of one region of ``rows`` rows per column: maxout and global average pooling."""
    def build():
        ws = np.arange(length, dtype=np.int64)
        return PoolPlan(KIND_CODES["max"], np.zeros(1, np.int64), np.full(1, rows, np.int64), ws, ws + 1,
                        np.ones((1, rows), dtype), np.ones((length, 1), dtype))
    return _device_plan(("col", rows, length, np.dtype(dtype).str), build)


def _global(h: int, w: int, dtype):
    def build():
        return PoolPlan(KIND_CODES["avg"], np.zeros(1, np.int64), np.full(1, h, np.int64),
                        np.zeros(1, np.int64), np.full(1, w, np.int64), np.full((1, h), 1.0 / h, dtype),
                        np.full((1, w), 1.0 / w, dtype))
    return _device_plan(("gap", h, w, np.dtype(dtype).str), build)


def run_forward(xd, plan, P, H, W, Ho, Wo, out=None):
    """Launch the forward kernel on flat device x (P*H*W); returns flat y (P*Ho*Wo)."""
    code, arrays = plan
    dt = U.dtype_of(xd)
    y = U.flat(U.check_out(out, (P * Ho * Wo,), dt) if out is None else U.as_device(out))
    if y.size != P * Ho * Wo or np.dtype(y.dtype) != dt:
        raise ValueError(f"out must be a device array of {P * Ho * Wo} {dt} elements")
    if y.size:
        U.per_dtype("pool_fwd", _make_forward, dt)[U.launch_1d(y.size)](U.flat(xd), y, *arrays, code,
                                                                        P, H, W, Ho, Wo)
    return y


def run_backward(dyd, xd, yd, plan, P, H, W, Ho, Wo, out=None):
    """Launch the backward kernel; returns flat dx (P*H*W), zero-filled then scattered into."""
    code, arrays = plan
    dt = U.dtype_of(dyd)
    dx = U.empty((P * H * W,), dt) if out is None else U.flat(U.as_device(out))
    if dx.size != P * H * W or np.dtype(dx.dtype) != dt:
        raise ValueError(f"out must be a device array of {P * H * W} {dt} elements")
    U.fill(dx, 0.0)
    ydev = U.flat(yd) if yd is not None else U.flat(dyd)
    if dyd.size:
        U.per_dtype("pool_bwd", _make_backward, dt)[U.launch_1d(dyd.size)](
            U.flat(dyd), U.flat(xd) if xd is not None else dx, ydev, dx, *arrays, code, P, H, W, Ho, Wo)
    return dx


# ------------------------------------------------------------------ registered kernels
@register_kernel("pool2d", "direct", "numba-cuda")
def pool2d(x, kind, size, stride, pads, out, sigma, out_buf=None):
    """Windowed pooling (9.3, fig. 9.10): max / avg / l2 / gaussian, one thread per output."""
    io = U.DeviceIO(x)
    (xd,) = io.arrays
    n, c, h, w = xd.shape
    plan = _windowed((h, w), kind, size, stride, pads, out, sigma, U.dtype_of(xd))
    y = run_forward(xd, plan, n * c, h, w, out[0], out[1], out_buf)
    return io.out(y.reshape((n, c) + tuple(out)))


@register_kernel("pool2d_backward", "direct", "numba-cuda")
def pool2d_backward(dy, x, y, kind, size, stride, pads, out, sigma, out_buf=None):
    """Gradient of windowed pooling: atomic scatter (max: first argmax; l2: dy x / y)."""
    io = U.DeviceIO(dy, x, y)
    dyd, xd, yd = io.arrays
    n, c, h, w = xd.shape
    plan = _windowed((h, w), kind, size, stride, pads, out, sigma, U.dtype_of(xd))
    dx = run_backward(dyd, xd, yd, plan, n * c, h, w, out[0], out[1], out_buf)
    return io.out(dx.reshape((n, c, h, w)))


@register_kernel("adaptive_pool2d", "direct", "numba-cuda")
def adaptive_pool2d(x, kind, out, out_buf=None):
    """Adaptive pooling (fig. 9.11): region o covers [floor(o m / M), ceil((o + 1) m / M))."""
    io = U.DeviceIO(x)
    (xd,) = io.arrays
    n, c, h, w = xd.shape
    plan = _adaptive((h, w), kind, out, U.dtype_of(xd))
    y = run_forward(xd, plan, n * c, h, w, out[0], out[1], out_buf)
    return io.out(y.reshape((n, c) + tuple(out)))


@register_kernel("adaptive_pool2d_backward", "direct", "numba-cuda")
def adaptive_pool2d_backward(dy, x, y, kind, out, out_buf=None):
    """Gradient of adaptive pooling (overlapping regions add up)."""
    io = U.DeviceIO(dy, x, y)
    dyd, xd, yd = io.arrays
    n, c, h, w = xd.shape
    plan = _adaptive((h, w), kind, out, U.dtype_of(xd))
    dx = run_backward(dyd, xd, yd, plan, n * c, h, w, out[0], out[1], out_buf)
    return io.out(dx.reshape((n, c, h, w)))


@register_kernel("maxout", "direct", "numba-cuda")
def maxout(x3, pieces):
    """Maxout (fig. 9.9): x3 (N, C, L) -> (N, C / pieces, L), max over groups of channels."""
    io = U.DeviceIO(x3)
    (xd,) = io.arrays
    n, c, length = xd.shape
    y = run_forward(xd, _columns(pieces, length, U.dtype_of(xd)), n * c // pieces, pieces, length, 1, length)
    return io.out(y.reshape((n, c // pieces, length)))


@register_kernel("maxout_backward", "direct", "numba-cuda")
def maxout_backward(dy3, x3, pieces):
    """Gradient of maxout: dy to the first channel of the group holding the maximum."""
    io = U.DeviceIO(dy3, x3)
    dyd, xd = io.arrays
    n, c, length = xd.shape
    dx = run_backward(dyd, xd, None, _columns(pieces, length, U.dtype_of(xd)), n * c // pieces, pieces,
                      length, 1, length)
    return io.out(dx.reshape((n, c, length)))


@register_kernel("global_avg_pool2d", "direct", "numba-cuda")
def global_avg_pool2d(x):
    """Mean of each feature map: (N, C, H, W) -> (N, C)."""
    io = U.DeviceIO(x)
    (xd,) = io.arrays
    n, c, h, w = xd.shape
    y = run_forward(xd, _global(h, w, U.dtype_of(xd)), n * c, h, w, 1, 1)
    return io.out(y.reshape((n, c)))


@register_kernel("global_avg_pool2d_backward", "direct", "numba-cuda")
def global_avg_pool2d_backward(dy, x_shape):
    """dx[n, c, :, :] = dy[n, c] / (H W)."""
    io = U.DeviceIO(dy)
    (dyd,) = io.arrays
    n, c, h, w = (int(v) for v in x_shape)
    dx = run_backward(dyd, None, None, _global(h, w, U.dtype_of(dyd)), n * c, h, w, 1, 1)
    return io.out(dx.reshape((n, c, h, w)))
