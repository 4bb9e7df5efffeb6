"""numba.cuda optimizer updates: one thread per element, grid-stride loop, one pass, in place.

Accept NumPy arrays (copied to the device and back: host-to-host) or device arrays (numba device
arrays or any ``__cuda_array_interface__`` object: no copy). Scalars are cast to the arrays'
dtype, so float32 updates run in float32; the per-step coefficients come from
:mod:`dlbench.kernels.reference.optim_coeffs`, exactly as on the CPU backends. Kernels compile
per dtype on first use. Under ``NUMBA_ENABLE_CUDASIM=1`` they run on the simulator (tests only).
"""

import math

import numpy as np
from dlbench.kernels.numba_cuda._util import DeviceArgs as _DeviceArgs
from dlbench.kernels.reference.optim_coeffs import INF, adam_coeffs, eps_split, grad_coeffs, momentum_coeffs
from numba import config, cuda, float64

from dlbench.registry import register_kernel

_THREADS = 256


class DeviceArgs(_DeviceArgs):
    """``_util.DeviceArgs`` that also passes the simulator's device arrays through (they expose
    ``copy_to_host`` but no ``__cuda_array_interface__``, and the simulator lacks is_cuda_array)."""

    def __init__(self, *arrays):
        if config.ENABLE_CUDASIM and any(hasattr(a, "copy_to_host") for a in arrays):
            self.originals, self.arrays, self.host = arrays, [], []
            for a in arrays:
                dev = hasattr(a, "copy_to_host")
                self.arrays.append(a if dev else cuda.to_device(np.ascontiguousarray(a)))
                self.host.append(not dev)
        else:
            super().__init__(*arrays)


def _launch(n: int):
    """(blocks, threads) for a grid-stride loop. The simulator runs every CUDA thread as a Python
    thread, so there a 2 x 4 grid strides over the array (same code path, tests stay fast)."""
    if config.ENABLE_CUDASIM:
        return 2, 4
    threads = _THREADS if n >= _THREADS else max(32, -(-n // 32) * 32)
    return max(1, min(65535, -(-n // threads))), threads


def _run(kernel, arrays, written, *scalars):
    """Launch ``kernel`` over device views of ``arrays`` with scalars cast to their dtype."""
    dev = DeviceArgs(*arrays)
    dt = np.dtype(dev.arrays[0].dtype).type
    n = dev.arrays[0].shape[0]
    if any(a.shape[0] != n for a in dev.arrays):
        raise ValueError(f"arrays of different lengths: {[a.shape[0] for a in dev.arrays]}")
    if n:
        kernel[_launch(n)](*dev.arrays, *(dt(x) for x in scalars))
        dev.copy_back(*written)


@cuda.jit(device=True)
def _geff(gi, th, gscale, clip, wd):
    gi = gi * gscale
    if gi > clip:
        gi = clip
    elif gi < -clip:
        gi = -clip
    return gi + wd * th


@cuda.jit(cache=False)
def _sgd(theta, g, lr, gscale, clip, wd):
    for i in range(cuda.grid(1), theta.shape[0], cuda.gridsize(1)):
        th = theta[i]
        gi = _geff(g[i], th, gscale, clip, wd)
        theta[i] = th - lr * gi


@register_kernel("sgd", "fused", "numba-cuda")
def sgd(theta, g, lr, wd=0.0, gscale=1.0, clip=INF):
    """Algorithm 8.1 on the GPU: theta -= lr g'."""
    _run(_sgd, (theta, g), (0,), lr, *grad_coeffs(wd, gscale, clip))


@cuda.jit(cache=False)
def _momentum(theta, v, g, alpha, lr, cv, cg, gscale, clip, wd):
    for i in range(cuda.grid(1), theta.shape[0], cuda.gridsize(1)):
        th = theta[i]
        gi = _geff(g[i], th, gscale, clip, wd)
        vi = alpha * v[i] - lr * gi
        v[i] = vi
        theta[i] = th + (cv * vi - cg * gi)


@register_kernel("sgd_momentum", "fused", "numba-cuda")
def sgd_momentum(theta, v, g, lr, alpha, nesterov=False, wd=0.0, gscale=1.0, clip=INF):
    """Algorithm 8.2 on the GPU: v = alpha*v - lr*g; theta += v (nesterov: Alg. 8.3). Host arrays are
    copied in and out."""
    _run(_momentum, (theta, v, g), (0, 1), *momentum_coeffs(lr, alpha, nesterov),
         *grad_coeffs(wd, gscale, clip))


@cuda.jit(cache=False)
def _rmsprop(theta, r, g, lr, rho, c, d_in, d_out, gscale, clip, wd):
    for i in range(cuda.grid(1), theta.shape[0], cuda.gridsize(1)):
        th = theta[i]
        gi = _geff(g[i], th, gscale, clip, wd)
        ri = rho * r[i] + c * gi * gi
        r[i] = ri
        theta[i] = th - lr * gi / (math.sqrt(ri + d_in) + d_out)


@register_kernel("adagrad", "fused", "numba-cuda")
def adagrad(theta, r, g, lr, eps=1e-7, eps_inside=False, wd=0.0, gscale=1.0, clip=INF):
    """Algorithm 8.4 on the GPU (the RMSProp kernel with rho = 1 and unit weight)."""
    _run(_rmsprop, (theta, r, g), (0, 1), lr, 1.0, 1.0, *eps_split(eps, eps_inside),
         *grad_coeffs(wd, gscale, clip))


@register_kernel("rmsprop", "fused", "numba-cuda")
def rmsprop(theta, r, g, lr, rho=0.9, eps=1e-6, eps_inside=True, wd=0.0, gscale=1.0, clip=INF):
    """Algorithm 8.5 on the GPU."""
    _run(_rmsprop, (theta, r, g), (0, 1), lr, rho, 1.0 - rho, *eps_split(eps, eps_inside),
         *grad_coeffs(wd, gscale, clip))


@cuda.jit(cache=False)
def _rmsprop_momentum(theta, r, v, g, lr, rho, c, d_in, d_out, alpha, cv, cg, gscale, clip, wd):
    for i in range(cuda.grid(1), theta.shape[0], cuda.gridsize(1)):
        th = theta[i]
        gi = _geff(g[i], th, gscale, clip, wd)
        ri = rho * r[i] + c * gi * gi
        r[i] = ri
        u = gi / (math.sqrt(ri + d_in) + d_out)
        vi = alpha * v[i] - lr * u
        v[i] = vi
        theta[i] = th + (cv * vi - cg * u)


@register_kernel("rmsprop_momentum", "fused", "numba-cuda")
def rmsprop_momentum(theta, r, v, g, lr, rho, eps, alpha, nesterov=False, eps_inside=True,
                     wd=0.0, gscale=1.0, clip=INF):
    """Algorithm 8.6 on the GPU (heavy ball, or Nesterov by change of variables)."""
    a, _, cv, cg = momentum_coeffs(lr, alpha, nesterov)
    _run(_rmsprop_momentum, (theta, r, v, g), (0, 1, 2), lr, rho, 1.0 - rho, *eps_split(eps, eps_inside),
         a, cv, cg, *grad_coeffs(wd, gscale, clip))


@cuda.jit(cache=False)
def _adam(theta, s, r, g, step, rbc2, b1, c1, b2, c2, eps, decay, gscale, clip, wd):
    for i in range(cuda.grid(1), theta.shape[0], cuda.gridsize(1)):
        th = theta[i]
        gi = _geff(g[i], th, gscale, clip, wd)
        si = b1 * s[i] + c1 * gi
        ri = b2 * r[i] + c2 * gi * gi
        s[i] = si
        r[i] = ri
        theta[i] = th * decay - step * si / (math.sqrt(ri) * rbc2 + eps)


@register_kernel("adam", "fused", "numba-cuda")
def adam(theta, s, r, g, lr, beta1, beta2, eps, t, wd=0.0, decoupled_wd=0.0, gscale=1.0, clip=INF):
    """Algorithm 8.7 on the GPU at step t."""
    _run(_adam, (theta, s, r, g), (0, 1, 2), *adam_coeffs(lr, beta1, beta2, eps, t, decoupled_wd),
         *grad_coeffs(wd, gscale, clip))


@cuda.jit(cache=False)
def _adadelta(theta, r, d, g, lr, rho, c, eps, gscale, clip, wd):
    for i in range(cuda.grid(1), theta.shape[0], cuda.gridsize(1)):
        th = theta[i]
        gi = _geff(g[i], th, gscale, clip, wd)
        ri = rho * r[i] + c * gi * gi
        r[i] = ri
        di = d[i]
        delta = -math.sqrt((di + eps) / (ri + eps)) * gi
        d[i] = rho * di + c * delta * delta
        theta[i] = th + lr * delta


@register_kernel("adadelta", "fused", "numba-cuda")
def adadelta(theta, r, d, g, lr=1.0, rho=0.9, eps=1e-6, wd=0.0, gscale=1.0, clip=INF):
    """AdaDelta on the GPU."""
    _run(_adadelta, (theta, r, d, g), (0, 1, 2), lr, rho, 1.0 - rho, eps, *grad_coeffs(wd, gscale, clip))


@cuda.jit(cache=False)
def _delta_bar_delta(theta, rate, bar, g, kappa, shrink, mix, cmix, gscale, clip, wd):
    for i in range(cuda.grid(1), theta.shape[0], cuda.gridsize(1)):
        th = theta[i]
        gi = _geff(g[i], th, gscale, clip, wd)
        b = bar[i]
        sg = b * gi
        ri = rate[i]
        if sg < 0:
            ri = ri * shrink
        elif sg > 0:
            ri = ri + kappa
        rate[i] = ri
        bar[i] = cmix * gi + mix * b
        theta[i] = th - ri * gi


@register_kernel("delta_bar_delta", "fused", "numba-cuda")
def delta_bar_delta(theta, rate, bar, g, kappa, phi, mix, wd=0.0, gscale=1.0, clip=INF):
    """Delta-bar-delta (Jacobs 1988) on the GPU."""
    _run(_delta_bar_delta, (theta, rate, bar, g), (0, 1, 2), kappa, 1.0 - phi, mix, 1.0 - mix,
         *grad_coeffs(wd, gscale, clip))


@cuda.jit(cache=False)
def _average(avg, theta, w):
    for i in range(cuda.grid(1), avg.shape[0], cuda.gridsize(1)):
        a = avg[i]
        avg[i] = a + w * (theta[i] - a)


@register_kernel("param_average", "fused", "numba-cuda")
def param_average(avg, theta, w):
    """Polyak average / EMA (8.7.3, eq. 8.39) on the GPU."""
    _run(_average, (avg, theta), (0,), w)


@cuda.jit(cache=False)
def _clip_scale(g, f, clip):
    for i in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
        x = g[i] * f
        if x > clip:
            x = clip
        elif x < -clip:
            x = -clip
        g[i] = x


@register_kernel("clip_by_value", "fused", "numba-cuda")
def clip_by_value(g, clip):
    """Element-wise clipping (8.2.4) on the GPU, in place."""
    _run(_clip_scale, (g,), (0,), 1.0, clip)


@register_kernel("scale_grad", "fused", "numba-cuda")
def scale_grad(g, factor):
    """g *= factor on the GPU, in place."""
    _run(_clip_scale, (g,), (0,), factor, INF)


@cuda.jit(cache=False)
def _sumsq(g, out):
    """Grid-stride partial sums in float64, a shared-memory tree per block, one atomic per block."""
    buf = cuda.shared.array(_THREADS, float64)
    tid = cuda.threadIdx.x
    acc = 0.0
    for i in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
        x = float64(g[i])
        acc += x * x
    buf[tid] = acc
    cuda.syncthreads()
    step = _THREADS // 2
    while step > 0:
        if tid < step:
            buf[tid] += buf[tid + step]
        cuda.syncthreads()
        step //= 2
    if tid == 0:
        cuda.atomic.add(out, 0, buf[0])


@register_kernel("grad_sumsq", "fused", "numba-cuda")
def grad_sumsq(g) -> float:
    """sum(g*g) accumulated in float64 on the GPU."""
    dev = DeviceArgs(g)
    n = dev.arrays[0].shape[0]
    out = cuda.to_device(np.zeros(1, np.float64))
    if n:
        blocks = max(1, min(1024, -(-n // _THREADS)))
        _sumsq[blocks, _THREADS](dev.arrays[0], out)
    return float(out.copy_to_host()[0])
