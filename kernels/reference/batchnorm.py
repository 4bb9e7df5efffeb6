"""NumPy reference batch normalization (eq. 8.35-8.37) on (N, C, L) views.

Everything is computed in float64 and returned in the input's dtype (the most accurate float32
answer the compiled kernels are held to).
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
    x64 = x3.astype(np.float64)
    if training:
        mean = x64.mean(axis=(0, 2))
        var = ((x64 - mean[:, None]) ** 2).mean(axis=(0, 2))
    mean = np.asarray(mean, np.float64)
    invstd = 1.0 / np.sqrt(np.asarray(var, np.float64) + eps)
    scale = np.asarray(gamma, np.float64) * invstd
    y = (x64 - mean[:, None]) * scale[:, None] + np.asarray(beta, np.float64)[:, None]
    return y.astype(x3.dtype), mean.astype(x3.dtype), np.asarray(var, x3.dtype)


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


# ---------------------------------------------------------------- drivers shared by the compiled backends
# The compiled kernels supply two passes on (N, C, L) arrays: reduce(u, v, su, sv) -> (s1, s2) with
# s1 = sum(u - su), s2 = sum((u - su)(v - sv)) per channel (float64), and apply(u, v, a, b, sv, d)
# -> a u + b (v - sv) + d. Differences are always taken against K = x[0, c, 0], a value of the
# data: x - K loses nothing to a rounded mean, and the O(C) coefficients are formed in float64.

def forward_driver(x3, gamma, beta, mean, var, training, eps, reduce, apply):
    """Eq. 8.35-8.37 with two passes: statistics (training) and y = gamma invstd (x - K) + d.
    Inference is the normalising pass alone, with the given mu as the shift: y = gamma invstd
    (x - mu) + beta (mean, var, gamma, beta: x's dtype; a handful of O(C) array ops, a tenth of
    the pass at (256, 4096) with the training form's)."""
    dt = x3.dtype
    if not training:
        b = (np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)).astype(dt)
        return apply(x3, x3, np.zeros_like(b), b, mean, beta), mean, var
    shift = np.ascontiguousarray(x3[0, :, 0])
    k64 = shift.astype(np.float64)
    m = x3.shape[0] * x3.shape[2]
    s1, s2 = reduce(x3, x3, shift, shift)
    dmean = s1 / m
    mean64 = k64 + dmean
    var64 = np.maximum(s2 / m - dmean * dmean, 0.0)
    b = np.asarray(gamma, np.float64) / np.sqrt(var64 + eps)
    d = np.asarray(beta, np.float64) + b * (k64 - mean64)
    y = apply(x3, x3, np.zeros(len(b), dt), b.astype(dt), shift, d.astype(dt))
    return y, mean64.astype(dt), var64.astype(dt)


def backward_driver(dy3, x3, gamma, mean, invstd, training, reduce, apply):
    """From s1 = sum dy and s2 = sum dy (x - mu) (eq. 8.35-8.37 backward through mu and sigma):
    dx = a dy + b (x - K) + d, dgamma = s2 invstd, dbeta = s1."""
    dt = x3.dtype
    shift = np.ascontiguousarray(x3[0, :, 0])
    k_mu = shift.astype(np.float64) - np.asarray(mean, np.float64)
    s1, s2k = reduce(dy3, x3, np.zeros(len(shift), dt), shift)
    s2 = s2k + k_mu * s1                      # sum dy (x - mu) = sum dy (x - K) + (K - mu) sum dy
    inv = np.asarray(invstd, np.float64)
    a = np.asarray(gamma, np.float64) * inv
    if training:
        m = x3.shape[0] * x3.shape[2]
        b = -a * inv * inv * s2 / m
        d = -a * s1 / m + b * k_mu
    else:
        b = np.zeros_like(a)
        d = np.zeros_like(a)
    dx = apply(dy3, x3, a.astype(dt), b.astype(dt), shift, d.astype(dt))
    return dx, (s2 * inv).astype(dt), s1.astype(dt)
