"""Tiled convolution (eq. 9.10) as one strided convolution per tile pattern: algorithm ``patterns``.

The outputs (i, j) with i mod t_h = a and j mod t_w = b all use the kernel stack w[a, b]; they
form the grid i = a + t_h u, j = b + t_w v, which is an ordinary cross-correlation (eq. 9.7) of
the padded input, shifted by (a s_h, b s_w), with stride (t_h s_h, t_w s_w) (eq. 9.8). So eq.
9.10 is t_h t_w calls of the convolution family's auto-tuned ``conv2d`` (and for the gradients,
``conv2d_backward_weight`` (eq. 9.11) and ``conv2d_backward_data`` (eq. 9.12-9.13)), each on
1/(t_h t_w) of the outputs. With t = 1 it *is* conv2d; it pays when few kernel stacks serve many
positions. Constraint: at most ``MAX_PATTERNS`` tile patterns (a locally connected layer, t =
output size, would be thousands of tiny convolutions: use ``direct`` there).

Backend-generic: the convolutions run on the backend the kernel is registered for (numba here,
cython in ``dlbench.kernels.cython.variants_register``).
"""

import numpy as np

from dlbench.registry import register_kernel

MAX_PATTERNS = 16


def _grid(xp, w, stride):
    n, c, hp, wp = xp.shape
    th, tw, k, _, r, s = w.shape
    sh, sw = stride
    ho, wo = (hp - r) // sh + 1, (wp - s) // sw + 1
    if th * tw > MAX_PATTERNS:
        raise ValueError(f"patterns: {th}x{tw} tile patterns > {MAX_PATTERNS} (one convolution each); "
                         "use algorithm='direct' or 'im2col'")
    return th, tw, k, r, s, sh, sw, ho // th, wo // tw


def _view(xp, a, b, r, s, sh, sw, th, tw, na, nb):
    """The input rows/columns read by pattern (a, b): na x nb outputs at stride (t_h s_h, t_w s_w)."""
    i0, j0 = a * sh, b * sw
    return np.ascontiguousarray(xp[:, :, i0:i0 + (na - 1) * th * sh + r, j0:j0 + (nb - 1) * tw * sw + s])


def make_patterns(backend: str):
    """(forward, backward) of the ``patterns`` algorithm whose convolutions run on ``backend``."""
    from dlbench import ops

    def forward(xp, w, b, stride):
        th, tw, k, r, s, sh, sw, na, nb = _grid(xp, w, stride)
        y = np.empty((xp.shape[0], k, na * th, nb * tw), xp.dtype)
        st = (th * sh, tw * sw)
        for a in range(th):
            for bb in range(tw):
                xv = _view(xp, a, bb, r, s, sh, sw, th, tw, na, nb)
                bias = None if b is None else b[a, bb]
                y[:, :, a::th, bb::tw] = ops.conv2d(xv, w[a, bb], bias, stride=st, backend=backend)
        return y

    def backward(dy, xp, w, stride):
        th, tw, k, r, s, sh, sw, na, nb = _grid(xp, w, stride)
        st = (th * sh, tw * sw)
        dxp = np.zeros_like(xp)
        dw = np.empty_like(w)
        db = np.empty((th, tw, k), xp.dtype)
        for a in range(th):
            for bb in range(tw):
                xv = _view(xp, a, bb, r, s, sh, sw, th, tw, na, nb)
                g = np.ascontiguousarray(dy[:, :, a::th, bb::tw])
                dw[a, bb] = ops.conv2d_backward_weight(xv, g, w[a, bb].shape, stride=st, backend=backend)
                dxv = ops.conv2d_backward_data(g, w[a, bb], xv.shape, stride=st, backend=backend)
                i0, j0 = a * sh, bb * sw
                dxp[:, :, i0:i0 + xv.shape[2], j0:j0 + xv.shape[3]] += dxv
                db[a, bb] = g.sum(axis=(0, 2, 3))
        return dxp, dw, db

    return forward, backward


def register_patterns(backend: str) -> None:
    """Register ``patterns`` for tiled_conv2d (and its backward) on ``backend``."""
    fwd, bwd = make_patterns(backend)
    register_kernel("tiled_conv2d", "patterns", backend,
                    constraints=f"t_h*t_w <= {MAX_PATTERNS}: one strided conv2d (auto) per tile pattern",
                    description="eq. 9.10 as t_h*t_w strided convolutions (eq. 9.8) by the conv family")(fwd)
    register_kernel("tiled_conv2d_backward", "patterns", backend,
                    constraints=f"t_h*t_w <= {MAX_PATTERNS}: conv2d weight and data gradients per pattern",
                    description="gradients of eq. 9.10: eq. 9.11 and 9.12-9.13 per tile pattern")(bwd)


register_patterns("numba")
