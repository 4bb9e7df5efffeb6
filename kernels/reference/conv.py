"""NumPy reference convolutions: the executable specification of chapter 9 (eqs. 9.4-9.13).

One N-d implementation (1, 2 or 3 spatial dimensions) written the way the book writes the sums:
the output is a sum over kernel offsets (m, n, ...) of channel contractions of shifted, strided
views of the zero-padded input (eq. 9.7 with the stride of eq. 9.8, padding of section 9.5,
dilation as a spacing of the offsets). The two gradients are the same sums read the other way:
eq. 9.11 (kernel gradient) contracts the output gradient G with the same views of the input,
eq. 9.12-9.13 (input gradient, the transpose) scatters K·G back onto those views.

Layout: x (N, C, *spatial), w (K, C/groups, *kernel), y (N, K, *out). float32 or float64 in,
the same dtype out. Padding arrives resolved as (before, after) pairs per dimension. These
functions are registered as the ``numpy`` backend, algorithm ``reference``; every other
backend is tested against them.
"""

from __future__ import annotations

import numpy as np

from dlbench.ops._common import output_size
from dlbench.registry import register_kernel

REF = "reference"


def _views(out, stride, dilation, offset):
    """Index of the strided view V[..., j*s + m*d, ...] for one kernel offset m (eq. 9.8)."""
    return (slice(None), slice(None)) + tuple(
        slice(m * d, m * d + (p - 1) * s + 1, s) for m, d, p, s in zip(offset, dilation, out, stride))


def _pad(x, padding):
    return np.pad(x, ((0, 0), (0, 0)) + tuple(tuple(p) for p in padding))


def conv_forward(x, w, stride, padding, dilation, groups):
    """Cross-correlation Z[n,i,j,k] = sum_{l,m,o} V[n,l,j*s+m*d, k*s+o*d] K[i,l,m,o] (eq. 9.7/9.8).

    x (N, C, *in), w (K, C/groups, *kernel); output channel block g of K/groups reads input
    channel block g of C/groups only (grouped convolution, fig. 9.15).
    """
    ksize = w.shape[2:]
    out = output_size(x.shape[2:], ksize, stride, padding, dilation)
    xp = _pad(x, padding)
    n, k, cg = x.shape[0], w.shape[0], w.shape[1]
    kg = k // groups
    y = np.zeros((n, k) + out, dtype=np.result_type(x, w))
    for g in range(groups):
        xg = xp[:, g * cg:(g + 1) * cg]
        wg = w[g * kg:(g + 1) * kg]
        for off in np.ndindex(*ksize):
            v = xg[_views(out, stride, dilation, off)]                       # (N, Cg, *out)
            kern = wg[(slice(None), slice(None)) + off]                       # (Kg, Cg)
            y[:, g * kg:(g + 1) * kg] += np.moveaxis(np.tensordot(v, kern, axes=([1], [1])), -1, 1)
    return y


def conv_backward_data(dy, w, x_shape, stride, padding, dilation, groups):
    """Input gradient (eq. 9.12-9.13): dV[n,l,j*s+m*d,...] += sum_i K[i,l,m,...] G[n,i,j,...].

    Every input position collects K·G over all (output position, kernel offset) pairs that read
    it; positions in the zero padding are computed and then cut away. x_shape: (N, C, *in).
    """
    ksize = w.shape[2:]
    out = dy.shape[2:]
    n, c = x_shape[:2]
    k, cg = w.shape[:2]
    kg = k // groups
    padded = tuple(m + lo + hi for m, (lo, hi) in zip(x_shape[2:], padding))
    dxp = np.zeros((n, c) + padded, dtype=np.result_type(dy, w))
    for g in range(groups):
        dyg = dy[:, g * kg:(g + 1) * kg]
        wg = w[g * kg:(g + 1) * kg]
        for off in np.ndindex(*ksize):
            kern = wg[(slice(None), slice(None)) + off]                       # (Kg, Cg)
            contrib = np.moveaxis(np.tensordot(dyg, kern, axes=([1], [0])), -1, 1)  # (N, Cg, *out)
            dxp[:, g * cg:(g + 1) * cg][_views(out, stride, dilation, off)] += contrib
    crop = (slice(None), slice(None)) + tuple(slice(lo, lo + m) for m, (lo, _) in zip(x_shape[2:], padding))
    return np.ascontiguousarray(dxp[crop])


def conv_backward_weight(x, dy, w_shape, stride, padding, dilation, groups):
    """Kernel gradient (eq. 9.11): dK[i,l,m,...] = sum_{n,j,...} G[n,i,j,...] V[n,l,j*s+m*d,...].

    w_shape: (K, C/groups, *kernel).
    """
    ksize = tuple(w_shape[2:])
    out = dy.shape[2:]
    k, cg = w_shape[:2]
    kg = k // groups
    xp = _pad(x, padding)
    dw = np.zeros(tuple(w_shape), dtype=np.result_type(x, dy))
    sp = list(range(2, 2 + len(ksize)))
    for g in range(groups):
        xg = xp[:, g * cg:(g + 1) * cg]
        dyg = dy[:, g * kg:(g + 1) * kg]
        for off in np.ndindex(*ksize):
            v = xg[_views(out, stride, dilation, off)]                        # (N, Cg, *out)
            blk = (slice(g * kg, (g + 1) * kg), slice(None)) + off
            dw[blk] = np.tensordot(dyg, v, axes=([0] + sp, [0] + sp))
    return dw


def true_convolution2d(image, kernel):
    """Literal eq. 9.4 on one channel: S(i, j) = sum_m sum_n I(m, n) K(i - m, j - n), full size.

    image (H, W), kernel (R, S) -> (H + R - 1, W + S - 1). Slow loops; for tests of ``flip``.
    """
    h, w = image.shape
    r, s = kernel.shape
    out = np.zeros((h + r - 1, w + s - 1), dtype=np.result_type(image, kernel))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            acc = 0.0
            for m in range(max(0, i - r + 1), min(h, i + 1)):
                for n in range(max(0, j - s + 1), min(w, j + 1)):
                    acc += image[m, n] * kernel[i - m, j - n]
            out[i, j] = acc
    return out


def correlation_loops(x, w, stride=(1, 1)):
    """Literal eq. 9.8 with explicit loops, batched: Z[b,i,j,k] = sum_{l,m,n} V[b,l,j*s+m,k*s+n] K[i,l,m,n].

    x (N, C, H, W), w (K, C, R, S), no padding, no groups. Slow; tests the reference itself.
    """
    n_, c_, h, w_ = x.shape
    k_, _, r_, s_ = w.shape
    p_ = (h - r_) // stride[0] + 1
    q_ = (w_ - s_) // stride[1] + 1
    z = np.zeros((n_, k_, p_, q_), dtype=np.result_type(x, w))
    for b in range(n_):
        for i in range(k_):
            for j in range(p_):
                for k in range(q_):
                    acc = 0.0
                    for l in range(c_):
                        for m in range(r_):
                            for o in range(s_):
                                acc += x[b, l, j * stride[0] + m, k * stride[1] + o] * w[i, l, m, o]
                    z[b, i, j, k] = acc
    return z


# ------------------------------------------------------------------ registration
@register_kernel("conv2d", REF, "numpy", constraints="none (the specification)")
def conv2d(x, w, stride, padding, dilation, groups):
    """Reference 2-D cross-correlation (eq. 9.7/9.8): sum over kernel offsets of channel contractions."""
    return conv_forward(x, w, stride, padding, dilation, groups)


@register_kernel("conv2d_backward_data", REF, "numpy", constraints="none (the specification)")
def conv2d_backward_data(dy, w, x_shape, stride, padding, dilation, groups):
    """Reference input gradient / transposed convolution (eq. 9.12-9.13)."""
    return conv_backward_data(dy, w, x_shape, stride, padding, dilation, groups)


@register_kernel("conv2d_backward_weight", REF, "numpy", constraints="none (the specification)")
def conv2d_backward_weight(x, dy, w_shape, stride, padding, dilation, groups):
    """Reference kernel gradient (eq. 9.11)."""
    return conv_backward_weight(x, dy, w_shape, stride, padding, dilation, groups)


for _nd, _name in ((1, "conv1d"), (3, "conv3d")):
    register_kernel(_name, REF, "numpy", constraints="none (the specification)",
                    description=f"Reference {_nd}-D cross-correlation (eq. 9.7/9.8, table 9.1)")(conv_forward)
    register_kernel(f"{_name}_backward_data", REF, "numpy", constraints="none (the specification)",
                    description=f"Reference {_nd}-D input gradient (eq. 9.12-9.13)")(conv_backward_data)
    register_kernel(f"{_name}_backward_weight", REF, "numpy", constraints="none (the specification)",
                    description=f"Reference {_nd}-D kernel gradient (eq. 9.11)")(conv_backward_weight)
