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
from dlbench.kernels.numba_cpu import pool, tiled
from dlbench.kernels.numba_cpu.tiled_patterns import register_patterns
from dlbench.kernels.reference.batchnorm import backward_driver, forward_driver

from dlbench.ops.local import register_padding
from dlbench.registry import register_kernel


# ---------------------------------------------------------------- tiled / locally connected convolution
def tiled_forward(xp, w, b, stride):
    return tiled.direct_forward(xp, w, b, stride, core=_conv.forward)


def tiled_backward(dy, xp, w, stride):
    return tiled.direct_backward(dy, xp, w, stride, core_w=_conv.backward_weight, core_p=_conv.patch_grads,
                                 core_c=_conv.col2im_direct)


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
                    constraints="weight gradient per (tile, K block), patch gradients per location",
                    description="gradients of eq. 9.10 / 9.9 per location")(tiled_backward)
    register_kernel(_op, "im2col", "cython", impl=tiled.GEMM_IMPL,
                    constraints=f"patches per tile pattern x kernels by {tiled.GEMM_IMPL}",
                    description="eq. 9.10 / 9.9: im2col per tile pattern, one GEMM each")(
        tiled_forward_im2col)
    register_kernel(_op + "_backward", "im2col", "cython", impl=tiled.GEMM_IMPL,
                    constraints=f"two transposed products by {tiled.GEMM_IMPL}, then col2im",
                    description="gradients of eq. 9.10 / 9.9: two GEMMs per tile pattern and col2im")(
        tiled_backward_im2col)


# zero padding before, and its adjoint after, this backend's tiled / locally connected kernels
register_padding("cython", _conv.pad_planes, _conv.crop_planes)


# eq. 9.10 as one strided conv2d (this backend's auto-tuned kernels) per tile pattern
register_patterns("cython")


# ---------------------------------------------------------------- pooling (drivers shared with Numba)
pool.register_all("cython", pool.Cores(_pool.forward, _pool.backward, _pool.scatter_max, _pool.row_means,
                                       _pool.row_fill, _pool.maxout_forward, _pool.maxout_backward))


# ---------------------------------------------------------------- batch normalization
def _reduce(u, v, su, sv):
    n, c, length = u.shape
    s1 = np.empty(c)
    s2 = np.empty(c)
    if length == 1:
        _bn.reduce_dense(u.reshape(n, c), v.reshape(n, c), su, sv, u is v and su is sv, s1, s2)
    else:
        _bn.reduce_maps(u, v, su, sv, u is v and su is sv, s1, s2)
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
    """Eq. 8.35-8.37; returns (y, mean, var). float32 training: one C pass structure
    (``variants_bn.train``: sums, per-channel finish, normalisation); otherwise the two-pass driver
    (a statistics pass, then one normalising pass; eval: the normalising pass alone)."""
    if training and x3.dtype == np.float32:
        c = x3.shape[1]
        y, mean64, var64 = np.empty_like(x3), np.empty(c), np.empty(c)
        if _bn.train(False, x3, x3, gamma, beta, gamma, gamma, eps, y, mean64, var64):
            return y, mean64.astype(x3.dtype), var64.astype(x3.dtype)
    return forward_driver(x3, gamma, beta, mean, var, training, eps, _reduce, _apply)


@register_kernel("batch_norm_backward", "direct", "cython")
def batch_norm_backward(dy3, x3, gamma, mean, invstd, training):
    """Training: sums of dy and dy (x - mu) per channel, then dx (float32: ``variants_bn.train``;
    otherwise the two-pass driver); eval: dx = gamma invstd dy. Returns (dx, dgamma, dbeta)."""
    if training and x3.dtype == np.float32:
        c = x3.shape[1]
        dx, dgamma, dbeta = np.empty_like(x3), np.empty(c), np.empty(c)
        if _bn.train(True, x3, dy3, gamma, gamma, mean, invstd, 0.0, dx, dgamma, dbeta):
            return dx, dgamma.astype(x3.dtype), dbeta.astype(x3.dtype)
    return backward_driver(dy3, x3, gamma, mean, invstd, training, _reduce, _apply)
