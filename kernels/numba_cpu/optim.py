"""Numba CPU optimizer updates: one fused, parallel pass over memory per step, in place."""

import numba as nb

from dlbench.registry import register_kernel


@nb.njit(parallel=True, cache=True, fastmath=False)
def _momentum(theta, v, g, lr, alpha):
    n = theta.shape[0]
    a = theta.dtype.type(alpha)
    e = theta.dtype.type(lr)
    for i in nb.prange(n):
        vi = a * v[i] - e * g[i]
        v[i] = vi
        theta[i] += vi


@register_kernel("sgd_momentum", "fused", "numba")
def sgd_momentum(theta, v, g, lr, alpha):
    """Algorithm 8.2 fused: per element v = alpha*v - lr*g; theta += v. 1-D float32/float64 arrays."""
    _momentum(theta, v, g, lr, alpha)
