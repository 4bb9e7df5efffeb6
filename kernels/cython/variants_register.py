"""Registers the compiled Cython kernels of the convolution variants, pooling and batch norm.

``variants_conv.pyx``: tiled (eq. 9.10) / locally connected (eq. 9.9) convolution;
``variants_pool.pyx``: the separable pooling core (windowed, adaptive, maxout, global average);
``variants_bn.pyx``: batch normalization's reduce and apply passes (eq. 8.35-8.37). The argument
plumbing (plans, coefficients) is shared with the Numba backend.
"""

import numpy as np
from dlbench.kernels.cython import variants_bn as _bn
from dlbench.kernels.cython import variants_conv as _conv
from dlbench.kernels.cython import variants_pool as _pool
from dlbench.kernels.numba_cpu import tiled
from dlbench.kernels.numba_cpu.pool import global_plan, maxout_plan, run_backward, run_forward
from dlbench.kernels.reference.batchnorm import backward_coefficients, forward_coefficients, statistics
from dlbench.kernels.reference.pool import adaptive_plan, region_plan

from dlbench.registry import register_kernel


# ---------------------------------------------------------------- tiled / locally connected convolution
def tiled_forward(xp, w, b, stride):
    return tiled.direct_forward(xp, w, b, stride, core=_conv.forward)


def tiled_backward(dy, xp, w, stride):
    return tiled.direct_backward(dy, xp, w, stride, core_w=_conv.backward_weight, core_x=_conv.backward_input)


def tiled_forward_im2col(xp, w, b, stride):
    return tiled.im2col_forward(xp, w, b, stride, im2col=_conv.im2col, cols_to_y=_conv.cols_to_y)


def tiled_backward_im2col(dy, xp, w, stride):
    return tiled.im2col_backward(dy, xp, w, stride, im2col=_conv.im2col, dy_to_cols=_conv.dy_to_cols,
                                 col2im=_conv.col2im)


for _op in ("tiled_conv2d", "local_conv2d"):
    register_kernel(_op, "direct", "cython", constraints="one GEMM per output location (omp simd dots)",
                    description="eq. 9.10 / 9.9: per-location patches x kernels, OpenMP over locations")(
        tiled_forward)
    register_kernel(_op + "_backward", "direct", "cython",
                    constraints="weight gradient per (tile, K block), input gradient per example",
                    description="gradients of eq. 9.10 / 9.9 per location")(tiled_backward)
    register_kernel(_op, "im2col", "cython", impl=tiled.GEMM_IMPL,
                    constraints=f"patches per tile pattern x kernels by {tiled.GEMM_IMPL}",
                    description="eq. 9.10 / 9.9: im2col per tile pattern, one GEMM each")(
        tiled_forward_im2col)
    register_kernel(_op + "_backward", "im2col", "cython", impl=tiled.GEMM_IMPL,
                    constraints=f"two transposed products by {tiled.GEMM_IMPL}, then col2im",
                    description="gradients of eq. 9.10 / 9.9: two GEMMs per tile pattern and col2im")(
        tiled_backward_im2col)


# ---------------------------------------------------------------- pooling
def _planes(a):
    return a.reshape(-1, a.shape[-2], a.shape[-1])


@register_kernel("pool2d", "direct", "cython")
def pool2d(x, kind, size, stride, pads, out, sigma):
    """Separable windowed pooling (max / avg / l2 / gaussian), OpenMP over feature maps."""
    plan = region_plan(x.shape[2:], kind, size, stride, pads, out, sigma, x.dtype)
    return run_forward(_planes(x), plan, out, _pool.forward).reshape(x.shape[:2] + tuple(out))


@register_kernel("pool2d_backward", "direct", "cython")
def pool2d_backward(dy, x, y, kind, size, stride, pads, out, sigma):
    """Gradient of windowed pooling (max: first argmax; sums: separable scatter)."""
    plan = region_plan(x.shape[2:], kind, size, stride, pads, out, sigma, x.dtype)
    y3 = None if y is None else _planes(y)
    return run_backward(_planes(dy), _planes(x), y3, plan, _pool.backward).reshape(x.shape)


@register_kernel("adaptive_pool2d", "direct", "cython")
def adaptive_pool2d(x, kind, out):
    """Adaptive pooling (fig. 9.11) through the separable core."""
    plan = adaptive_plan(x.shape[2:], kind, out, x.dtype)
    return run_forward(_planes(x), plan, out, _pool.forward).reshape(x.shape[:2] + tuple(out))


@register_kernel("adaptive_pool2d_backward", "direct", "cython")
def adaptive_pool2d_backward(dy, x, y, kind, out):
    """Gradient of adaptive pooling through the separable core."""
    plan = adaptive_plan(x.shape[2:], kind, out, x.dtype)
    y3 = None if y is None else _planes(y)
    return run_backward(_planes(dy), _planes(x), y3, plan, _pool.backward).reshape(x.shape)


@register_kernel("maxout", "direct", "cython")
def maxout(x3, pieces):
    """Maxout (fig. 9.9): max over groups of channels, as pooling of (pieces, L) maps."""
    n, c, length = x3.shape
    y = run_forward(x3.reshape(-1, pieces, length), maxout_plan(pieces, length, x3.dtype), (1, length),
                    _pool.forward)
    return y.reshape(n, c // pieces, length)


@register_kernel("maxout_backward", "direct", "cython")
def maxout_backward(dy3, x3, pieces):
    """Gradient of maxout: dy to the first channel holding the group's maximum."""
    n, c, length = x3.shape
    dx = run_backward(dy3.reshape(-1, 1, length), x3.reshape(-1, pieces, length), None,
                      maxout_plan(pieces, length, x3.dtype), _pool.backward)
    return dx.reshape(n, c, length)


@register_kernel("global_avg_pool2d", "direct", "cython")
def global_avg_pool2d(x):
    """Mean of each feature map, (N, C, H, W) -> (N, C)."""
    n, c, h, w = x.shape
    return run_forward(_planes(x), global_plan(h, w, x.dtype), (1, 1), _pool.forward).reshape(n, c)


@register_kernel("global_avg_pool2d_backward", "direct", "cython")
def global_avg_pool2d_backward(dy, x_shape):
    """dx = dy / (H W) broadcast over each feature map."""
    n, c, h, w = x_shape
    unused_x = np.empty((n * c, h, w), dy.dtype)    # the weighted-sum backward never reads x
    dx = run_backward(dy.reshape(-1, 1, 1), unused_x, None, global_plan(h, w, dy.dtype), _pool.backward)
    return dx.reshape(x_shape)


# ---------------------------------------------------------------- batch normalization
def _reduce(u, v, su, sv):
    n, c, length = u.shape
    s1 = np.empty(c)
    s2 = np.empty(c)
    if length == 1:
        _bn.reduce_dense(u.reshape(n, c), v.reshape(n, c), su, sv, s1, s2)
    else:
        _bn.reduce_maps(u, v, su, sv, s1, s2)
    return s1, s2


def _apply(u, v, a, b, sv, d):
    n, c, length = u.shape
    out = np.empty_like(u)
    if length == 1:
        _bn.apply_dense(u.reshape(n, c), v.reshape(n, c), a, b, sv, d, out.reshape(n, c))
    else:
        _bn.apply_maps(u, v, a, b, sv, d, out)
    return out


@register_kernel("batch_norm", "direct", "cython")
def batch_norm(x3, gamma, beta, mean, var, training, eps):
    """Eq. 8.35-8.37: one statistics pass (training) and one normalising pass; returns (y, mean, var)."""
    if training:
        shift = np.ascontiguousarray(x3[0, :, 0])
        s1, s2 = _reduce(x3, x3, shift, shift)
        mean, var = statistics(s1, s2, shift, x3.shape[0] * x3.shape[2], x3.dtype)
    a, b, d = forward_coefficients(gamma, beta, var, eps, x3.dtype)
    return _apply(x3, x3, a, b, np.asarray(mean, x3.dtype), d), mean, var


@register_kernel("batch_norm_backward", "direct", "cython")
def batch_norm_backward(dy3, x3, gamma, mean, invstd, training):
    """One reduction pass (sum dy, sum dy (x - mu)) and one pass computing dx; returns (dx, dgamma, dbeta)."""
    zero = np.zeros(x3.shape[1], x3.dtype)
    s1, s2 = _reduce(dy3, x3, zero, mean)
    a, b, d, dgamma, dbeta = backward_coefficients(s1, s2, gamma, invstd, training,
                                                   x3.shape[0] * x3.shape[2], x3.dtype)
    return _apply(dy3, x3, a, b, mean, d), dgamma, dbeta
