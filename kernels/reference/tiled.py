"""NumPy reference for tiled (eq. 9.10) and locally connected (eq. 9.9) convolution.

A locally connected layer is the tiled one with t = output size, so both ops share these
kernels. ``direct``: the output positions are grouped by tile pattern (i mod t_h, j mod t_w);
each group is one GEMM of its gathered patches with its kernel stack (a batched ``matmul``).
``einsum``: the NumPy baseline a user would write, one ``np.einsum`` over the patch view.

Contract (see ``dlbench.ops.local``): forward(xp, w, b, stride) -> y and
backward(dy, xp, w, stride) -> (dxp, dw, db) on the zero-padded input xp (N, C, Hp, Wp) and
w (t_h, t_w, K, C, R, S).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dlbench.registry import register_kernel


def patch_view(xp: np.ndarray, r: int, s: int, stride) -> np.ndarray:
    """View (N, C, Ho, Wo, R, S): patch_view[n, c, i, j, m, q] = xp[n, c, i*s_h + m, j*s_w + q]."""
    sh, sw = stride
    return sliding_window_view(xp, (r, s), axis=(2, 3))[:, :, ::sh, ::sw]


def _sizes(xp, w, stride):
    n, c, hp, wp = xp.shape
    th, tw, k, _, r, s = w.shape
    ho, wo = (hp - r) // stride[0] + 1, (wp - s) // stride[1] + 1
    return n, c, k, r, s, th, tw, ho, wo, ho // th, wo // tw


def _grouped_patches(xp, w, stride):
    """Patches grouped by tile pattern: (t_h, t_w, N * Ho/t_h * Wo/t_w, C*R*S)."""
    n, c, k, r, s, th, tw, ho, wo, a, bb = _sizes(xp, w, stride)
    p = patch_view(xp, r, s, stride)[:, :, :ho, :wo].reshape(n, c, a, th, bb, tw, r, s)
    return p.transpose(3, 5, 0, 2, 4, 1, 6, 7).reshape(th, tw, n * a * bb, c * r * s)


def _grouped_dy(dy, th, tw):
    """dy (N, K, Ho, Wo) grouped by tile pattern: (t_h, t_w, N * Ho/t_h * Wo/t_w, K)."""
    n, k, ho, wo = dy.shape
    g = dy.reshape(n, k, ho // th, th, wo // tw, tw)
    return g.transpose(3, 5, 0, 2, 4, 1).reshape(th, tw, -1, k)


def col2im(dpatch: np.ndarray, hp: int, wp: int, stride) -> np.ndarray:
    """Adjoint of ``patch_view``: sum the patch gradients (N, C, Ho, Wo, R, S) into (N, C, Hp, Wp)."""
    n, c, ho, wo, r, s = dpatch.shape
    sh, sw = stride
    dxp = np.zeros((n, c, hp, wp), dpatch.dtype)
    for m in range(r):
        for q in range(s):
            dxp[:, :, m:m + sh * (ho - 1) + 1:sh, q:q + sw * (wo - 1) + 1:sw] += dpatch[:, :, :, :, m, q]
    return dxp


@register_kernel("tiled_conv2d", "direct", "numpy")
@register_kernel("local_conv2d", "direct", "numpy")
def tiled_forward(xp, w, b, stride):
    """Eq. 9.10 (9.9 when t = output size): per tile pattern, patches (M, CRS) @ kernels (CRS, K)."""
    n, c, k, r, s, th, tw, ho, wo, a, bb = _sizes(xp, w, stride)
    y = _grouped_patches(xp, w, stride) @ w.reshape(th, tw, k, c * r * s).transpose(0, 1, 3, 2)
    if b is not None:
        y += b[:, :, None, :]
    y = y.reshape(th, tw, n, a, bb, k).transpose(2, 5, 3, 0, 4, 1).reshape(n, k, ho, wo)
    return np.ascontiguousarray(y)


@register_kernel("tiled_conv2d_backward", "direct", "numpy")
@register_kernel("local_conv2d_backward", "direct", "numpy")
def tiled_backward(dy, xp, w, stride):
    """Gradients of eq. 9.10: dw = dy^T patches per tile (eq. 9.11 summed over the tile's
    positions), db = sum of dy per tile, dxp = col2im(dy @ kernels) (the transpose, eq. 9.13)."""
    n, c, k, r, s, th, tw, ho, wo, a, bb = _sizes(xp, w, stride)
    g = _grouped_dy(dy, th, tw)                                    # (th, tw, M, K)
    dw = g.transpose(0, 1, 3, 2) @ _grouped_patches(xp, w, stride)  # (th, tw, K, CRS)
    db = g.sum(axis=2)
    dp = g @ w.reshape(th, tw, k, c * r * s)                       # (th, tw, M, CRS)
    dp = dp.reshape(th, tw, n, a, bb, c, r, s).transpose(2, 5, 3, 0, 4, 1, 6, 7).reshape(n, c, ho, wo, r, s)
    dxp = col2im(dp, xp.shape[2], xp.shape[3], stride)
    return dxp, dw.reshape(w.shape), db


@register_kernel("tiled_conv2d", "einsum", "numpy")
@register_kernel("local_conv2d", "einsum", "numpy")
def tiled_forward_einsum(xp, w, b, stride):
    """Baseline: one ``np.einsum`` over the patch view, eq. 9.10 written out index by index."""
    n, c, k, r, s, th, tw, ho, wo, a, bb = _sizes(xp, w, stride)
    p = patch_view(xp, r, s, stride)[:, :, :ho, :wo].reshape(n, c, a, th, bb, tw, r, s)
    y = np.einsum("ncaibjrs,ijkcrs->nkaibj", p, w, optimize=True)
    if b is not None:
        y += b.transpose(2, 0, 1)[None, :, None, :, None, :]
    return np.ascontiguousarray(y.reshape(n, k, ho, wo))


@register_kernel("tiled_conv2d_backward", "einsum", "numpy")
@register_kernel("local_conv2d_backward", "einsum", "numpy")
def tiled_backward_einsum(dy, xp, w, stride):
    """Baseline gradients by ``np.einsum`` over the patch view, then ``col2im``."""
    n, c, k, r, s, th, tw, ho, wo, a, bb = _sizes(xp, w, stride)
    p = patch_view(xp, r, s, stride)[:, :, :ho, :wo].reshape(n, c, a, th, bb, tw, r, s)
    g = dy.reshape(n, k, a, th, bb, tw)
    dw = np.einsum("nkaibj,ncaibjrs->ijkcrs", g, p, optimize=True)
    db = np.einsum("nkaibj->ijk", g)
    dp = np.einsum("nkaibj,ijkcrs->ncaibjrs", g, w, optimize=True).reshape(n, c, ho, wo, r, s)
    return col2im(dp, xp.shape[2], xp.shape[3], stride), dw, db
