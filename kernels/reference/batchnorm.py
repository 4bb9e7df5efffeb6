"""NumPy reference batch normalization (eq. 8.35-8.37) on (N, C, L) views.

Statistics are accumulated in float64 and returned in the input's dtype.
"""

from __future__ import annotations

import numpy as np

from dlbench.registry import register_kernel


@register_kernel("batch_norm", "direct", "numpy")
def batch_norm(x3, gamma, beta, mean, var, training, eps):
    """y = gamma (x - mu) / sqrt(var + eps) + beta per channel (axis 1); returns (y, mean, var).

    training: mu (eq. 8.36) and the biased variance (eq. 8.37) over axes 0 and 2; otherwise the
    given (running) mean and var.
    """
    if training:
        x64 = x3.astype(np.float64)
        mean = x64.mean(axis=(0, 2))
        var = ((x64 - mean[:, None]) ** 2).mean(axis=(0, 2))
    invstd = 1.0 / np.sqrt(np.asarray(var, np.float64) + eps)
    scale = gamma * invstd
    shift = beta - np.asarray(mean, np.float64) * scale
    y = x3 * scale.astype(x3.dtype)[:, None] + shift.astype(x3.dtype)[:, None]
    return y, np.asarray(mean, x3.dtype), np.asarray(var, x3.dtype)


@register_kernel("batch_norm_backward", "direct", "numpy")
def batch_norm_backward(dy3, x3, gamma, mean, invstd, training):
    """(dx, dgamma, dbeta); training back-propagates through mu and sigma (eq. 8.35-8.37)."""
    inv = np.asarray(invstd, np.float64)[:, None]
    xhat = (x3 - np.asarray(mean, np.float64)[:, None]) * inv
    dbeta = dy3.sum(axis=(0, 2), dtype=np.float64)
    dgamma = (dy3 * xhat).sum(axis=(0, 2))
    g = np.asarray(gamma, np.float64)[:, None]
    if training:
        m = x3.shape[0] * x3.shape[2]
        dx = g * inv * (dy3 - dbeta[:, None] / m - xhat * (dgamma[:, None] / m))
    else:
        dx = g * inv * dy3
    dt = x3.dtype
    return dx.astype(dt), dgamma.astype(dt), dbeta.astype(dt)


# ---------------------------------------------------------------- helpers shared by the compiled backends
# The compiled kernels reduce s1 = sum(u - su), s2 = sum((u - su)(v - sv)) per channel and apply
# out = a u + b (v - sv) + d; these O(C) helpers turn sums into statistics and coefficients.

def statistics(s1, s2, shift, m, dtype):
    """(mean, biased var) from the sums of x - K and (x - K)^2 with K = ``shift`` (eq. 8.36, 8.37)."""
    d = s1 / m
    mean = np.asarray(shift, np.float64) + d
    var = np.maximum(s2 / m - d * d, 0.0)
    return mean.astype(dtype), var.astype(dtype)


def forward_coefficients(gamma, beta, var, eps, dtype):
    """y = gamma invstd (x - mu) + beta as (a, b, d) = (0, gamma invstd, beta)."""
    invstd = 1.0 / np.sqrt(np.asarray(var, np.float64) + eps)
    return np.zeros(len(gamma), dtype), (gamma * invstd).astype(dtype), np.asarray(beta, dtype)


def backward_coefficients(s1, s2, gamma, invstd, training, m, dtype):
    """From s1 = sum dy and s2 = sum dy (x - mu): dx = a dy + b (x - mu) + d, dgamma, dbeta."""
    inv = np.asarray(invstd, np.float64)
    g = np.asarray(gamma, np.float64)
    a = g * inv
    if training:
        b = -g * inv ** 3 * s2 / m
        d = -a * s1 / m
    else:
        b = np.zeros_like(a)
        d = np.zeros_like(a)
    return a.astype(dtype), b.astype(dtype), d.astype(dtype), (s2 * inv).astype(dtype), s1.astype(dtype)
