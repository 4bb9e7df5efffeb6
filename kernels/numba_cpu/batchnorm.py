"""Numba CPU batch normalization (eq. 8.35-8.37): two passes over memory per direction.

Both directions are one per-channel reduction followed by one per-channel affine map:

- reduce: s1[c] = sum (u - su[c]), s2[c] = sum (u - su[c]) (v - sv[c]), float64 accumulators;
  forward: u = v = x shifted by K = its first value per channel (mean and variance without
  cancellation), backward: u = dy, v = x, sv = K (sum dy and sum dy (x - K));
- apply: out = a[c] u + b[c] (v - K[c]) + d[c]; forward y = gamma invstd (x - mu) + beta,
  backward dx = gamma invstd dy - gamma invstd^3 s2/m (x - mu) - gamma invstd s1/m, each with
  x - mu = (x - K) + (K - mu) folded into d in float64 (``dlbench.kernels.reference.batchnorm``).

Convolutional (N, C, L) input runs parallel over channels (reduce) and over the N*C maps (apply);
dense (N, D) input (L = 1) runs parallel over blocks of columns and vectorises along D.
"""

import numba as nb
import numpy as np
from dlbench.kernels.reference.batchnorm import backward_driver, forward_driver

from dlbench.registry import register_kernel

_BLOCK = 256   # dense columns per task


@nb.njit(parallel=True, fastmath=True, cache=True)
def _reduce_maps(u, v, su, sv, square, s1, s2):
    N, C, L = u.shape
    for c in nb.prange(C):
        a1 = 0.0
        a2 = 0.0
        cu = su[c]
        cv = sv[c]
        for n in range(N):
            for i in range(L):
                du = np.float64(u[n, c, i] - cu)
                a1 += du
                a2 += du * (du if square else np.float64(v[n, c, i] - cv))
        s1[c] = a1
        s2[c] = a2


@nb.njit(parallel=True, cache=True)
def _reduce_dense(u, v, su, sv, square, s1, s2):
    N, C = u.shape
    nblocks = (C + _BLOCK - 1) // _BLOCK
    for bi in nb.prange(nblocks):
        c0 = bi * _BLOCK
        c1 = min(C, c0 + _BLOCK)
        a1 = np.zeros(c1 - c0)
        a2 = np.zeros(c1 - c0)
        n = 0
        while n + 4 <= N:            # four rows per pass over the accumulators
            if square:               # u is v: the statistics pass reads x once
                for c in range(c0, c1):
                    cu = su[c]
                    d0 = np.float64(u[n, c] - cu)
                    d1 = np.float64(u[n + 1, c] - cu)
                    d2 = np.float64(u[n + 2, c] - cu)
                    d3 = np.float64(u[n + 3, c] - cu)
                    a1[c - c0] += (d0 + d1) + (d2 + d3)
                    a2[c - c0] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
            else:
                for c in range(c0, c1):
                    cu = su[c]
                    cv = sv[c]
                    d0 = np.float64(u[n, c] - cu)
                    d1 = np.float64(u[n + 1, c] - cu)
                    d2 = np.float64(u[n + 2, c] - cu)
                    d3 = np.float64(u[n + 3, c] - cu)
                    a1[c - c0] += (d0 + d1) + (d2 + d3)
                    a2[c - c0] += (d0 * np.float64(v[n, c] - cv) + d1 * np.float64(v[n + 1, c] - cv)) + \
                        (d2 * np.float64(v[n + 2, c] - cv) + d3 * np.float64(v[n + 3, c] - cv))
            n += 4
        while n < N:
            for c in range(c0, c1):
                du = np.float64(u[n, c] - su[c])
                a1[c - c0] += du
                a2[c - c0] += du * (du if square else np.float64(v[n, c] - sv[c]))
            n += 1
        for c in range(c0, c1):
            s1[c] = a1[c - c0]
            s2[c] = a2[c - c0]


@nb.njit(parallel=True, cache=True)
def _apply_maps(u, v, a, b, sv, d, out):
    N, C, L = u.shape
    for nc in nb.prange(N * C):
        n = nc // C
        c = nc - n * C
        ac = a[c]
        bc = b[c]
        cv = sv[c]
        dc = d[c]
        for i in range(L):
            out[n, c, i] = ac * u[n, c, i] + bc * (v[n, c, i] - cv) + dc


@nb.njit(parallel=True, cache=True)
def _apply_dense(u, v, a, b, sv, d, out):
    N, C = u.shape
    for n in nb.prange(N):
        for c in range(C):
            out[n, c] = a[c] * u[n, c] + b[c] * (v[n, c] - sv[c]) + d[c]


def _reduce(u, v, su, sv):
    c = u.shape[1]
    s1 = np.empty(c)
    s2 = np.empty(c)
    if u.shape[2] == 1:
        n, c = u.shape[:2]
        _reduce_dense(u.reshape(n, c), v.reshape(n, c), su, sv, u is v and su is sv, s1, s2)
    else:
        _reduce_maps(u, v, su, sv, u is v and su is sv, s1, s2)
    return s1, s2


def _apply(u, v, a, b, sv, d):
    out = np.empty_like(u)
    if u.shape[2] == 1:
        n, c = u.shape[:2]
        _apply_dense(u.reshape(n, c), v.reshape(n, c), a, b, sv, d, out.reshape(n, c))
    else:
        _apply_maps(u, v, a, b, sv, d, out)
    return out


@register_kernel("batch_norm", "direct", "numba")
def batch_norm(x3, gamma, beta, mean, var, training, eps):
    """Eq. 8.35-8.37: one statistics pass (training) and one normalising pass; returns (y, mean, var)."""
    return forward_driver(x3, gamma, beta, mean, var, training, eps, _reduce, _apply)


@register_kernel("batch_norm_backward", "direct", "numba")
def batch_norm_backward(dy3, x3, gamma, mean, invstd, training):
    """One reduction pass (sum dy, sum dy (x - mu)) and one pass computing dx; returns (dx, dgamma, dbeta)."""
    return backward_driver(dy3, x3, gamma, mean, invstd, training, _reduce, _apply)
