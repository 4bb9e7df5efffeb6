"""numba.cuda batch normalization (section 8.7.1, eq. 8.35-8.37) on (N, C, L) views.

One launch per call, one block per channel (the per-channel reduction and the element-wise pass
in the same block, so no second launch and no host round trip):

- forward, training: pass 1 accumulates s1 = sum(x - K) and s2 = sum((x - K)^2) with the shift
  K = x[0, c, 0] (per thread in the input dtype, then a float64 shared-memory tree), giving
  mu = K + s1/m (eq. 8.36) and the biased variance s2/m - (s1/m)^2 (eq. 8.37); pass 2 writes
  y = gamma (x - mu) / sqrt(var + eps) + beta (eq. 8.35). The second read of the channel hits L2
  for the channel sizes of a conv net (N*H*W values).
- forward, evaluation: the given (running) mean and var; the grid also splits each channel
  across blocks.
- backward: pass 1 reduces s1 = sum(dy) and s2 = sum(dy (x - mu)); pass 2 writes
  dx = a dy + b (x - mu) + d with a = gamma invstd, and in training b = -gamma invstd^3 s2/m,
  d = -a s1/m (back-propagation through mu and sigma); dgamma = s2 invstd, dbeta = s1.

Threads walk a channel's N*L values in the flat order (n, l) with an incremental index (no
division per element): consecutive threads read consecutive addresses (coalesced). Same
arguments as the numpy reference; NumPy in -> NumPy out, device in -> device out.
"""

from __future__ import annotations

import math

import numpy as np
from dlbench.kernels.numba_cuda import _conv_util as U
from numba import cuda, float64

from dlbench.registry import register_kernel

RT_BIG = 4 if U.SIMULATOR else 1024       # threads per block for large channels
RT_SMALL = 4 if U.SIMULATOR else 256
BIG = 8192                                 # values per channel from which RT_BIG is used


def _make_forward(dt, RT):
    @cuda.jit(cache=False)
    def kern(x, gamma, beta, mean_in, var_in, y, mean_out, var_out, training, eps, N, C, L):
        s1 = cuda.shared.array(RT, float64)
        s2 = cuda.shared.array(RT, float64)
        coef = cuda.shared.array(2, dt)
        c = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        m = N * L
        step = RT * cuda.gridDim.y
        dn = step // L
        dl = step - dn * L
        start = cuda.blockIdx.y * RT + tid
        if training:
            shift = x[c * L]
            a1 = dt(0)
            a2 = dt(0)
            n = start // L
            l = start - n * L
            for _ in range(start, m, step):
                v = x[(n * C + c) * L + l] - shift
                a1 += v
                a2 += v * v
                l += dl
                n += dn
                if l >= L:
                    l -= L
                    n += 1
            s1[tid] = a1
            s2[tid] = a2
            cuda.syncthreads()
            half = RT // 2
            while half > 0:
                if tid < half:
                    s1[tid] += s1[tid + half]
                    s2[tid] += s2[tid + half]
                cuda.syncthreads()
                half //= 2
            if tid == 0:
                d = s1[0] / m
                mean = float64(shift) + d
                var = max(s2[0] / m - d * d, 0.0)
                inv = 1.0 / math.sqrt(var + eps)
                coef[0] = gamma[c] * inv
                coef[1] = beta[c] - mean * gamma[c] * inv
                mean_out[c] = mean
                var_out[c] = var
        elif tid == 0:
            inv = 1.0 / math.sqrt(float64(var_in[c]) + eps)
            coef[0] = gamma[c] * inv
            coef[1] = beta[c] - float64(mean_in[c]) * gamma[c] * inv
        cuda.syncthreads()
        a = coef[0]
        b = coef[1]
        n = start // L
        l = start - n * L
        for _ in range(start, m, step):
            i = (n * C + c) * L + l
            y[i] = x[i] * a + b
            l += dl
            n += dn
            if l >= L:
                l -= L
                n += 1
    return kern


def _make_backward(dt, RT):
    @cuda.jit(cache=False)
    def kern(dy, x, gamma, mean, invstd, dx, dgamma, dbeta, training, N, C, L):
        s1 = cuda.shared.array(RT, float64)
        s2 = cuda.shared.array(RT, float64)
        coef = cuda.shared.array(3, dt)
        c = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        m = N * L
        dn = RT // L
        dl = RT - dn * L
        mu = mean[c]
        a1 = dt(0)
        a2 = dt(0)
        n = tid // L
        l = tid - n * L
        for _ in range(tid, m, RT):
            i = (n * C + c) * L + l
            g = dy[i]
            a1 += g
            a2 += g * (x[i] - mu)
            l += dl
            n += dn
            if l >= L:
                l -= L
                n += 1
        s1[tid] = a1
        s2[tid] = a2
        cuda.syncthreads()
        half = RT // 2
        while half > 0:
            if tid < half:
                s1[tid] += s1[tid + half]
                s2[tid] += s2[tid + half]
            cuda.syncthreads()
            half //= 2
        if tid == 0:
            inv = float64(invstd[c])
            gm = float64(gamma[c])
            a = gm * inv
            coef[0] = a
            if training:
                coef[1] = -gm * inv * inv * inv * s2[0] / m
                coef[2] = -a * s1[0] / m
            else:
                coef[1] = 0
                coef[2] = 0
            dgamma[c] = s2[0] * inv
            dbeta[c] = s1[0]
        cuda.syncthreads()
        a = coef[0]
        b = coef[1]
        d = coef[2]
        n = tid // L
        l = tid - n * L
        for _ in range(tid, m, RT):
            i = (n * C + c) * L + l
            dx[i] = a * dy[i] + b * (x[i] - mu) + d
            l += dl
            n += dn
            if l >= L:
                l -= L
                n += 1
    return kern


_kernels: dict = {}


def _kernel(kind, dtype, rt):
    key = (kind, np.dtype(dtype).str, rt)
    if key not in _kernels:
        make = _make_forward if kind == "fwd" else _make_backward
        _kernels[key] = make(U.NUMBA_DTYPES[np.dtype(dtype)], rt)
    return _kernels[key]


@register_kernel("batch_norm", "direct", "numba-cuda")
def batch_norm(x3, gamma, beta, mean, var, training, eps, out=None, stats_out=None):
    """Batch norm forward (eq. 8.35-8.37): returns (y3, mean, var), batch statistics when training.

    out, stats_out: optional device buffers for y3 and (mean, var), so timed calls allocate nothing.
    """
    io = U.DeviceIO(x3, gamma, beta, mean, var)
    xd, gd, bd, md, vd = io.arrays
    n, c, length = xd.shape
    dt = U.dtype_of(xd)
    y = U.check_out(out, xd.shape, dt)
    mean_out, var_out = ((U.check_out(a, (c,), dt) for a in stats_out) if stats_out is not None
                         else (U.empty((c,), dt), U.empty((c,), dt)))
    m = n * length
    rt = RT_BIG if m >= BIG else RT_SMALL
    splits = 1 if training or U.SIMULATOR else max(1, min(64, m // (8 * rt)))
    if y.size:
        _kernel("fwd", dt, rt)[(c, splits), rt](U.flat(xd), gd, bd, md, vd, U.flat(y), mean_out, var_out,
                                                bool(training), float(eps), n, c, length)
    if not training:
        mean_out, var_out = md, vd
    return io.out(y, mean_out, var_out)


@register_kernel("batch_norm_backward", "direct", "numba-cuda")
def batch_norm_backward(dy3, x3, gamma, mean, invstd, training, out=None, grads_out=None):
    """Batch norm backward: returns (dx3, dgamma, dbeta); training goes through mu and sigma.

    out, grads_out: optional device buffers for dx3 and (dgamma, dbeta).
    """
    io = U.DeviceIO(dy3, x3, gamma, mean, invstd)
    dyd, xd, gd, md, sd = io.arrays
    n, c, length = xd.shape
    dt = U.dtype_of(xd)
    dx = U.check_out(out, xd.shape, dt)
    dgamma, dbeta = ((U.check_out(a, (c,), dt) for a in grads_out) if grads_out is not None
                     else (U.empty((c,), dt), U.empty((c,), dt)))
    rt = RT_BIG if n * length >= BIG else RT_SMALL
    if dx.size:
        _kernel("bwd", dt, rt)[c, rt](U.flat(dyd), U.flat(xd), gd, md, sd, U.flat(dx), dgamma, dbeta,
                                      bool(training), n, c, length)
    return io.out(dx, dgamma, dbeta)
