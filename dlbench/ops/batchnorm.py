"""Batch normalization front-end (section 8.7.1).

Training forward with the minibatch statistics, per channel c over the m = N * (H * W) values
that share it (in a convolutional net the same mu and sigma serve every spatial location):

    mu = (1/m) sum_i H_i                         (eq. 8.36)
    sigma = sqrt(delta + (1/m) sum_i (H_i - mu)^2)   (eq. 8.37; delta = ``eps``)
    H' = (H - mu) / sigma                          (eq. 8.35),   y = gamma H' + beta

Running averages (used at test time) follow torch's convention: running_mean <- (1 - momentum)
running_mean + momentum mu, and running_var the same with the *unbiased* batch variance
(m / (m - 1) times the biased one). ``eps`` defaults to 1e-5 (torch, cuDNN); the book suggests
delta ~ 1e-8. The backward propagates through mu and sigma (training) or treats them as constants
(inference).

Kernel contracts on (N, C, L) views (L = H * W, 1 for dense (N, D) input), C-contiguous:
``batch_norm(x3, gamma, beta, mean, var, training, eps) -> (y3, mean, var)`` (in training the
given mean/var are ignored and the biased batch statistics are returned) and
``batch_norm_backward(dy3, x3, gamma, mean, invstd, training) -> (dx3, dgamma, dbeta)``.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from dlbench.ops._common import check_float_dtypes
from dlbench.registry import define_op

__all__ = ["batch_norm", "batch_norm_backward"]


def _size(shape):
    return float(np.prod(shape))


def _fwd_bytes(dtype="float32", shape=(), training=True, **_):
    return np.dtype(dtype).itemsize * 2 * _size(shape)       # read x, write y


def _bwd_bytes(dtype="float32", shape=(), training=True, **_):
    return np.dtype(dtype).itemsize * 3 * _size(shape)       # read x and dy, write dx


def _fwd_flops(dtype="float32", shape=(), training=True, **_):
    return (5.0 if training else 2.0) * _size(shape)           # stats (sum, sum of squares) + a x + b


def _bwd_flops(dtype="float32", shape=(), training=True, **_):
    return (6.0 if training else 2.0) * _size(shape)


define_op("batch_norm", flops=_fwd_flops, bytes=_fwd_bytes, equation="8.35-8.37",
          description="batch normalization forward (training: batch statistics; eval: running averages)")
define_op("batch_norm_backward", flops=_bwd_flops, bytes=_bwd_bytes, equation="8.35-8.37",
          description="batch normalization backward through mu and sigma")


def _kernel(op: str, algorithm: str, backend: str, dtype):
    from dlbench.ops.local import _kernel as kernel_for

    return kernel_for(op, algorithm, backend, dtype)


@nb.njit(cache=True)
def _update_running(running_mean, running_var, mean, var, momentum, unbias):
    """running <- (1 - momentum) running + momentum batch (var: times m / (m - 1)), in place.
    One compiled pass: four NumPy statements cost ~20 us at D = 4096, a tenth of the kernel."""
    for c in range(running_mean.shape[0]):
        running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean[c]
        running_var[c] = (1.0 - momentum) * running_var[c] + momentum * (var[c] * unbias)


def _view3(op, x):
    x = np.asarray(x)
    if x.ndim not in (2, 4):
        raise ValueError(f"{op}: x must be (N, D) or (N, C, H, W), got shape {x.shape}")
    if min(x.shape) < 1:
        raise ValueError(f"{op}: empty input of shape {x.shape}")
    return np.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)


def _channel_vec(op, name, v, c, dtype):
    v = np.asarray(v)
    if v.shape != (c,):
        raise ValueError(f"{op}: {name} must have shape ({c},) (one value per channel), got {v.shape}")
    return np.ascontiguousarray(v, dtype=dtype)


def batch_norm(x, gamma, beta, running_mean=None, running_var=None, training=True, momentum=0.1, eps=1e-5,
               *, return_stats=False, algorithm="auto", backend="numba"):
    """Batch normalization, eq. 8.35-8.37, for dense (N, D) or convolutional (N, C, H, W) input.

    gamma, beta: (C,) learned scale and shift. training=True normalises with the batch statistics
    and, when running_mean / running_var (C,) are given, updates them in place (momentum as in
    torch; running_var gets the unbiased variance). training=False normalises with the running
    averages (both required). Returns y (x's shape), or (y, mean, invstd) with the statistics used
    (invstd = 1 / sqrt(var + eps)) when ``return_stats``; pass them to ``batch_norm_backward``.
    """
    x3 = _view3("batch_norm", x)
    c = x3.shape[1]
    dtype = check_float_dtypes(x3, gamma, beta, names=["x", "gamma", "beta"])
    gamma = _channel_vec("batch_norm", "gamma", gamma, c, dtype)
    beta = _channel_vec("batch_norm", "beta", beta, c, dtype)
    if not eps > 0:
        raise ValueError(f"batch_norm: eps must be > 0, got {eps!r}")
    have_running = running_mean is not None or running_var is not None
    if have_running:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: pass both running_mean and running_var, or neither")
        for name, v in (("running_mean", running_mean), ("running_var", running_var)):
            if not isinstance(v, np.ndarray) or v.shape != (c,) or v.dtype.kind != "f":
                raise ValueError(f"batch_norm: {name} must be a float ndarray of shape ({c},) (updated in "
                                 f"place), got {type(v).__name__} {getattr(v, 'shape', '')}")
    m = x3.shape[0] * x3.shape[2]
    if training:
        if m < 2:
            raise ValueError(f"batch_norm: training needs > 1 value per channel, x is {np.shape(x)}")
        mean_in = var_in = np.zeros(c, dtype)
    else:
        if not have_running:
            raise ValueError("batch_norm: training=False normalises with running_mean and running_var; "
                             "pass both")
        mean_in = np.ascontiguousarray(running_mean, dtype=dtype)
        var_in = np.ascontiguousarray(running_var, dtype=dtype)
    kern = _kernel("batch_norm", algorithm, backend, dtype)
    y3, mean, var = kern(x3, gamma, beta, mean_in, var_in, bool(training), float(eps))
    if training and have_running:
        _update_running(running_mean, running_var, mean, var, float(momentum), m / (m - 1.0))
    y = y3.reshape(np.shape(x))
    if return_stats:
        return y, mean, (1.0 / np.sqrt(var.astype(np.float64) + eps)).astype(dtype)
    return y


def batch_norm_backward(dy, x, gamma, mean=None, invstd=None, training=True, running_mean=None,
                        running_var=None, eps=1e-5, *, algorithm="auto", backend="numba"):
    """Gradients of ``batch_norm``: returns (dx, dgamma, dbeta).

    training=True back-propagates through mu and sigma (eq. 8.35-8.37):
    dx = gamma * invstd / m * (m dy - sum(dy) - x_hat * sum(dy * x_hat)), x_hat = (x - mu) invstd;
    ``mean`` / ``invstd`` are the forward's statistics (``return_stats=True``), recomputed from x
    when omitted. training=False: mu, sigma are the running averages (constants):
    dx = gamma * invstd * dy. dgamma = sum(dy * x_hat), dbeta = sum(dy) in both cases.
    """
    x3 = _view3("batch_norm_backward", x)
    c = x3.shape[1]
    dtype = check_float_dtypes(x3, dy, gamma, names=["x", "dy", "gamma"])
    if np.shape(dy) != np.shape(x):
        raise ValueError(f"batch_norm_backward: dy must have x's shape {np.shape(x)}, got {np.shape(dy)}")
    dy3 = np.ascontiguousarray(dy).reshape(x3.shape)
    gamma = _channel_vec("batch_norm_backward", "gamma", gamma, c, dtype)
    if training:
        if (mean is None) != (invstd is None):
            raise ValueError("batch_norm_backward: pass both mean and invstd, or neither")
        if mean is None:
            _, mean, invstd = batch_norm(x, gamma, np.zeros(c, dtype), training=True, eps=eps,
                                         return_stats=True, algorithm=algorithm, backend=backend)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm_backward: training=False needs running_mean and running_var")
        mean = running_mean
        invstd = 1.0 / np.sqrt(np.asarray(running_var, np.float64) + eps)
    mean = _channel_vec("batch_norm_backward", "mean", mean, c, dtype)
    invstd = _channel_vec("batch_norm_backward", "invstd", invstd, c, dtype)
    kern = _kernel("batch_norm_backward", algorithm, backend, dtype)
    dx3, dgamma, dbeta = kern(dy3, x3, gamma, mean, invstd, bool(training))
    return dx3.reshape(np.shape(x)), dgamma, dbeta
