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
