"""Convolution algorithms written once over a set of primitives; each backend brings its own.

Every algorithm is a short Python driver (allocation, chunking over images, the matrix products
of :mod:`conv_gemm`, scipy.fft for the transforms) around hot primitives that a backend
implements with the same signatures: ``dlbench.kernels.numba_cpu.conv`` (``@njit``) and
``dlbench.kernels.cython.conv`` (compiled, OpenMP). :func:`register_family` registers every
(op, algorithm) for one backend. All problems are handled as 3-D (N, C, D, H, W): 1-D and 2-D
convolutions are the 3-D ones with unit leading spatial dimensions, so one primitive serves all.

Algorithms (chapter 9, section 9.8 for the fast ones):

- ``direct``: the padded input is cut into its stride phases (one plane per phase), so every
  kernel tap reads a plane at unit stride and the output is accumulated on a "wide" grid (rows
  of the plane's width, extra columns dropped): unit-stride inner loops at any stride and
  dilation, register-blocked (4 output channels x 16 positions) in Cython, slice loops in Numba;
  the data gradient at stride 1 is the direct forward of the transposed problem, at stride > 1
  a race-free scatter into the phase planes (eq. 9.13); the weight gradient long dot products.
- ``im2col``: unfold the receptive fields into a matrix (rows (c, t, r, s), columns = output
  positions) and multiply by the weights as a (K, C*T*R*S) matrix; gradients: the weight
  gradient is dy @ cols^T (eq. 9.11), the data gradient W^T @ dy folded back (col2im, eq. 9.13).
- ``gemm1x1``: a 1x1 kernel is a matrix product (one batched GEMM over the images at stride 1;
  a strided copy first when stride > 1).
- ``kn2row``: stride 1; the sum over kernel taps of 1x1 convolutions (one batched GEMM per tap on
  a shifted strided view of the padded input, accumulated): no unfolded copy of the input.
- ``fft``: products in the frequency domain (9.8): per frequency, a complex matrix product over
  channels; the transforms are scipy.fft, the contraction is the backend's. Stride > 1
  computes the unit-stride result and keeps every s-th output (the book's "wasteful" form).
  Like cuDNN's FFT algorithms it has a workspace limit: the kernel spectra (K*C/g values per
  frequency) must fit FFT_MAX_SPECTRUM, which rules it out for many channels on large images.
- ``winograd`` F(4x4,3x3) and ``winograd_f2`` F(2x2,3x3) (Lavin & Gray 2015): 3x3 stride 1,
  tiles transformed in NHWC so the transforms vectorize over channels, alpha^2 batched GEMMs.
- ``separable``: a rank-1 kernel w = u v^T (detected by SVD with a tolerance) runs as a row
  pass then a column pass, O(R + S) per output instead of O(R S) (9.8).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
from dlbench.kernels.numba_cpu.conv_gemm import GEMM_IMPL, GEMM_WHY, batched_gemm, gemm

from dlbench.ops._common import output_size

CHUNK_BYTES = 8 << 20          # im2col buffer per chunk of images
WINO_CHUNK_BYTES = 4 << 20     # Winograd V buffer per chunk of tile rows
SMALL_SPATIAL = 256            # below this many output positions per image, batch images per GEMM
SMALL_DW = 1 << 16             # weight-gradient blocks (K/g x C/g*R*S) up to this size: one GEMM per image


# ------------------------------------------------------------------ shapes
def as5(a):
    """View an (N, C, *spatial) array with 1-3 spatial dims as 5-D (N, C, D, H, W)."""
    nd = a.ndim - 2
    return a.reshape(a.shape[:2] + (1,) * (3 - nd) + a.shape[2:])


def t3(t, fill):
    return (fill,) * (3 - len(t)) + tuple(int(v) for v in t)


def p3(padding):
    return ((0, 0),) * (3 - len(padding)) + tuple(tuple(int(v) for v in p) for p in padding)


def padded(P, x5, pads):
    """x5 zero-padded by pads ((lo, hi) x 3), via the backend's pad primitive (x5 itself if none)."""
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return x5
    shape = x5.shape[:2] + tuple(m + lo + hi for m, (lo, hi) in zip(x5.shape[2:], pads))
    xp = np.empty(shape, dtype=x5.dtype)
    P.pad(x5, xp, pads[0][0], pads[1][0], pads[2][0])
    return xp


def bwd_data_as_forward(dy, w, x_shape, padding, dilation, groups):
    """At stride 1 the data gradient (eq. 9.13) is a forward correlation of dy with the kernel
    flipped and its channel axes swapped, padded by d(k-1) - lo before (negative = crop).

    Returns (dy', w', padding') for a forward call giving an output of x_shape.
    """
    nd = w.ndim - 2
    k, cg = w.shape[:2]
    kg = k // groups
    c = cg * groups
    wt = w.reshape((groups, kg, cg) + w.shape[2:]).swapaxes(1, 2)
    wt = np.ascontiguousarray(wt[(Ellipsis,) + (slice(None, None, -1),) * nd]).reshape((c, kg) + w.shape[2:])
    crop, pads = [], []
    for m, p, kk, d, (lo, _) in zip(x_shape[2:], dy.shape[2:], w.shape[2:], dilation, padding):
        e = d * (kk - 1)
        a = e - lo
        b = m + e - p - a
        crop.append(slice(max(-a, 0), p - max(-b, 0)))
        pads.append((max(a, 0), max(b, 0)))
    dyc = dy[(slice(None), slice(None)) + tuple(crop)]
    if any(s.start or s.stop != p for s, p in zip(crop, dy.shape[2:])):
        dyc = np.ascontiguousarray(dyc)
    return dyc, wt, tuple(pads)


def _chunk(n, per_image, itemsize, budget=CHUNK_BYTES):
    return int(max(1, min(n, budget // max(1, per_image * itemsize))))


# ------------------------------------------------------------------ direct
KB = 4            # output channels per weight block of the direct kernels (packed contiguously)
SLACK = 64        # zero elements after each phase plane: register blocks may read past a row end


def phase_geometry(in_size, pads, stride):
    """Phase-split layout of the padded input: for stride (sd, sh, sw) the padded volume is cut
    into sd*sh*sw phase planes, plane (a, b, e) holding xpad[a::sd, b::sh, e::sw] as a
    (Dq, Hq, Wq) block flattened, plus Wq + SLACK zeros. Returns (Dq, Hq, Wq, L)."""
    dq, hq, wq = (-(-(m + lo + hi) // s) for m, (lo, hi), s in zip(in_size, pads, stride))
    return dq, hq, wq, dq * hq * wq + wq + SLACK


def tap_table(kernel, stride, dilation, hq, wq):
    """Per kernel tap (t, r, s): its phase plane and its offset in the flattened plane.

    A strided, dilated tap reads xpad[o*sd + t*dd, p*sh + r*dh, q*sw + s*dw] = plane
    ((t*dd)%sd, (r*dh)%sh, (s*dw)%sw) at (o + t*dd//sd, p + r*dh//sh, q + s*dw//sw): at a
    fixed tap the output row p, column q is a unit-stride walk through one plane (eq. 9.8).
    """
    (kt, kr, ks), (sd, sh, sw), (dd, dh, dw) = kernel, stride, dilation
    ph, sh_ = [], []
    for t in range(kt):
        for r in range(kr):
            for s in range(ks):
                ph.append((((t * dd) % sd) * sh + (r * dh) % sh) * sw + (s * dw) % sw)
                sh_.append((((t * dd) // sd) * hq + (r * dh) // sh) * wq + (s * dw) // sw)
    return np.array(ph, dtype=np.int64), np.array(sh_, dtype=np.int64)


def pack_weights(w5, groups, kb=KB):
    """(K, Cg, T, R, S) -> (groups, ceil(Kg/kb), Cg, taps, kb), zero-padded: the kb weights of
    one input channel and tap sit together for the register-blocked kernels."""
    k, cg = w5.shape[:2]
    kg = k // groups
    nkb = -(-kg // kb)
    taps = int(np.prod(w5.shape[2:]))
    wp = np.zeros((groups, nkb * kb, cg, taps), dtype=w5.dtype)
    wp[:, :kg] = w5.reshape(groups, kg, cg, taps)
    return np.ascontiguousarray(wp.reshape(groups, nkb, kb, cg, taps).transpose(0, 1, 3, 4, 2))


def direct_forward(P, x, w, stride, padding, dilation, groups):
    """Phase-split the padded input, then for every (image, block of output channels, output
    depth, chunk of the wide output) accumulate sum over (c, tap) of w * plane[shift + j]
    (eq. 9.8): unit-stride inner loops at any stride and dilation. The output is computed on
    the wide grid (P rows of Wq) and the Wq - Q extra columns are cut."""
    nd = x.ndim - 2
    n, k = x.shape[0], w.shape[0]
    x5, w5 = as5(x), as5(w)
    ks, st, dl, pads = w5.shape[2:], t3(stride, 1), t3(dilation, 1), p3(padding)
    out = output_size(x5.shape[2:], ks, st, pads, dl)
    dq, hq, wq, plane = phase_geometry(x5.shape[2:], pads, st)
    nph = st[0] * st[1] * st[2]
    xs = np.empty((n, x.shape[1], nph, plane), dtype=x.dtype)
    P.phase_split(x5, xs, pads[0][0], pads[1][0], pads[2][0], *st, dq, hq, wq)
    tph, tsh = tap_table(ks, st, dl, hq, wq)
    yw = np.empty((n, k, out[0], out[1] * wq), dtype=x.dtype)
    P.direct_fwd(xs, pack_weights(w5, groups), yw, tph, tsh, hq * wq, k // groups)
    y = yw.reshape(n, k, out[0], out[1], wq)[..., :out[2]]
    return np.ascontiguousarray(y).reshape((n, k) + tuple(out[3 - nd:]))


def direct_backward_data(P, dy, w, x_shape, stride, padding, dilation, groups):
    """Stride 1 (input not much larger than dy): the direct forward of the transposed problem.
    Otherwise dy on the wide grid (zeros in the extra columns) scattered into the phase planes of
    dx, sum_k w * dy (eq. 9.13), each (image, input channel) owned by one job; then the planes
    are merged and cropped."""
    if transposed_is_cheap(dy, x_shape, stride):
        dyc, wt, pads = bwd_data_as_forward(dy, w, x_shape, padding, dilation, groups)
        return direct_forward(P, dyc, wt, stride, pads, dilation, groups)
    n, c = x_shape[:2]
    dy5, w5 = as5(dy), as5(w)
    ks, st, dl, pads = w5.shape[2:], t3(stride, 1), t3(dilation, 1), p3(padding)
    xs5 = t3(x_shape[2:], 1)
    dq, hq, wq, plane = phase_geometry(xs5, pads, st)
    o_, p_, q_ = dy5.shape[2:]
    dyw = np.zeros(dy5.shape[:4] + (wq,), dtype=dy.dtype)
    dyw[..., :q_] = dy5
    tph, tsh = tap_table(ks, st, dl, hq, wq)
    nph = st[0] * st[1] * st[2]
    dxs = np.empty((n, c, nph, plane), dtype=dy.dtype)
    P.direct_bwd_data(dyw.reshape(dy5.shape[:3] + (p_ * wq,)), w5.reshape(w5.shape[:2] + (-1,)), dxs,
                      tph, tsh, hq * wq, groups)
    dx = np.empty((n, c) + tuple(xs5), dtype=dy.dtype)
    P.phase_merge(dxs, dx, pads[0][0], pads[1][0], pads[2][0], *st, dq, hq, wq)
    return dx.reshape(x_shape)


def direct_backward_weight(P, x, dy, w_shape, stride, padding, dilation, groups):
    """dw[k, c, tap] = sum over images, output depths and the wide grid of dy * plane[shift + j]
    (eq. 9.11): long unit-stride dot products; dy's extra wide columns are zeros."""
    n = x.shape[0]
    x5, dy5 = as5(x), as5(dy)
    ks, st, dl, pads = t3(w_shape[2:], 1), t3(stride, 1), t3(dilation, 1), p3(padding)
    dq, hq, wq, plane = phase_geometry(x5.shape[2:], pads, st)
    nph = st[0] * st[1] * st[2]
    xs = np.empty((n, x.shape[1], nph, plane), dtype=x.dtype)
    P.phase_split(x5, xs, pads[0][0], pads[1][0], pads[2][0], *st, dq, hq, wq)
    o_, p_, q_ = dy5.shape[2:]
    dyw = np.zeros(dy5.shape[:4] + (wq,), dtype=x.dtype)
    dyw[..., :q_] = dy5
    tph, tsh = tap_table(ks, st, dl, hq, wq)
    dw = np.empty((w_shape[0], w_shape[1], len(tph)), dtype=x.dtype)
    P.direct_bwd_weight(xs, dyw.reshape(dy5.shape[:3] + (p_ * wq,)), dw, tph, tsh, hq * wq, groups)
    return dw.reshape(w_shape)


# ------------------------------------------------------------------ im2col / gemm1x1
def _geom5(x_shape, w_shape, stride, padding, dilation):
    xs = t3(x_shape[2:], 1)
    ks = t3(w_shape[2:], 1)
    st, dl, pd = t3(stride, 1), t3(dilation, 1), p3(padding)
    out = output_size(xs, ks, st, pd, dl)
    return xs, ks, st, dl, pd, out


def _unfold(P, x5, cols, n0, b, c0, cg, ks, st, dl, pd, out, identity):
    """cols (cg*T*R*S, b*O*P*Q) <- receptive fields of images n0..n0+b, channels c0..c0+cg."""
    if identity and b == 1:
        return x5[n0, c0:c0 + cg].reshape(cg, -1)
    P.im2col(x5, cols, n0, b, c0, cg, *ks, *st, *dl, pd[0][0], pd[1][0], pd[2][0], *out)
    return cols


def im2col_forward(P, x, w, stride, padding, dilation, groups):
    n, k, cg = x.shape[0], w.shape[0], w.shape[1]
    kg = k // groups
    xs, ks, st, dl, pd, out = _geom5(x.shape, w.shape, stride, padding, dilation)
    opq = math.prod(out)
    rows = cg * math.prod(ks)
    identity = rows == cg and all(s == 1 for s in st) and all(lo == 0 and hi == 0 for lo, hi in pd)
    x5 = as5(x)
    y = np.empty((n, k) + tuple(out[3 - (x.ndim - 2):]), dtype=x.dtype)
    if identity:              # 1x1, stride 1, no padding: one batched GEMM over the images
        x3, y3 = x.reshape(n, x.shape[1], opq), y.reshape(n, k, opq)
        wm = w.reshape(groups, kg, cg)
        for g in range(groups):
            batched_gemm(wm[g], x3[:, g * cg:(g + 1) * cg], out=y3[:, g * kg:(g + 1) * kg])
        return y
    nb = 1 if opq >= SMALL_SPATIAL * 4 else _chunk(n, rows * opq, x.itemsize)
    buf = np.empty(rows * nb * opq, dtype=x.dtype)
    tmp = np.empty(kg * nb * opq, dtype=x.dtype) if nb > 1 else None
    wm = w.reshape(groups, kg, rows)
    yv = y.reshape(n, k, opq)
    for n0 in range(0, n, nb):
        b = min(nb, n - n0)
        for g in range(groups):
            cols = _unfold(P, x5, buf[:rows * b * opq].reshape(rows, b * opq), n0, b, g * cg, cg,
                           ks, st, dl, pd, out, identity)
            if b == 1:
                gemm(wm[g], cols, out=yv[n0, g * kg:(g + 1) * kg])
            else:
                t = gemm(wm[g], cols, out=tmp[:kg * b * opq].reshape(kg, b * opq))
                yv[n0:n0 + b, g * kg:(g + 1) * kg] = t.reshape(kg, b, opq).transpose(1, 0, 2)
    return y


def _dy_block(dy3, n0, b, k0, kg, buf):
    """dy of images n0..n0+b, channels k0..k0+kg as a (kg, b*OPQ) matrix."""
    if b == 1:
        return dy3[n0, k0:k0 + kg]
    opq = dy3.shape[2]
    m = buf[:kg * b * opq].reshape(kg, b, opq)
    m[...] = dy3[n0:n0 + b, k0:k0 + kg].transpose(1, 0, 2)
    return m.reshape(kg, b * opq)


def transposed_is_cheap(dy, x_shape, stride) -> bool:
    """Whether the data gradient should run as the forward of the transposed problem: stride 1,
    and its output (the input size) not much larger than dy. The transposed forward multiplies
    every kernel tap at every input position, the zero padding included: for a 7x7 kernel on a
    10x10 output (16x16 input) that is 2.6 times the work of the scatter form (eq. 9.13)."""
    return all(s == 1 for s in stride) and math.prod(x_shape[2:]) <= 1.25 * math.prod(dy.shape[2:])


def im2col_backward_data(P, dy, w, x_shape, stride, padding, dilation, groups):
    if transposed_is_cheap(dy, x_shape, stride):   # a forward im2col of the transposed problem
        dyc, wt, pads = bwd_data_as_forward(dy, w, x_shape, padding, dilation, groups)
        return im2col_forward(P, dyc, wt, stride, pads, dilation, groups)
    n, c = x_shape[:2]
    k, cg = w.shape[:2]
    kg = k // groups
    xs, ks, st, dl, pd, out = _geom5(x_shape, w.shape, stride, padding, dilation)
    opq = math.prod(out)
    rows = cg * math.prod(ks)
    dx = np.zeros((n, c) + tuple(xs), dtype=dy.dtype)
    nb = 1 if opq >= SMALL_SPATIAL * 4 else _chunk(n, rows * opq, dy.itemsize)
    cols_buf = np.empty(rows * nb * opq, dtype=dy.dtype)
    dy_buf = np.empty(kg * nb * opq, dtype=dy.dtype) if nb > 1 else None
    wm = w.reshape(groups, kg, rows)
    dy3 = dy.reshape(n, k, opq)
    for n0 in range(0, n, nb):
        b = min(nb, n - n0)
        for g in range(groups):
            d = _dy_block(dy3, n0, b, g * kg, kg, dy_buf)
            cols = gemm(wm[g], d, out=cols_buf[:rows * b * opq].reshape(rows, b * opq), trans_a=True)
            P.col2im(cols, dx, n0, b, g * cg, cg, *ks, *st, *dl, pd[0][0], pd[1][0], pd[2][0], *out)
    return dx.reshape(x_shape)


def im2col_backward_weight(P, x, dy, w_shape, stride, padding, dilation, groups):
    n = x.shape[0]
    k, cg = w_shape[:2]
    kg = k // groups
    xs, ks, st, dl, pd, out = _geom5(x.shape, w_shape, stride, padding, dilation)
    opq = math.prod(out)
    rows = cg * math.prod(ks)
    identity = rows == cg and all(s == 1 for s in st) and all(lo == 0 and hi == 0 for lo, hi in pd)
    x5 = as5(x)
    dw = np.zeros((groups, kg, rows), dtype=x.dtype)
    if identity:              # 1x1, stride 1, no padding: dw = sum_n dy_n x_n^T, one batched GEMM
        x3, dy3 = x.reshape(n, x.shape[1], opq), dy.reshape(n, k, opq)
        part = np.empty((n, kg, cg), dtype=x.dtype)
        for g in range(groups):
            batched_gemm(dy3[:, g * kg:(g + 1) * kg], x3[:, g * cg:(g + 1) * cg].transpose(0, 2, 1), out=part)
            dw[g] = part.sum(axis=0)
        return dw.reshape(w_shape)
    nb = 1 if opq >= SMALL_SPATIAL * 4 else _chunk(n, rows * opq, x.itemsize)
    # a small dw block (kg x rows) leaves a single GEMM little to share among threads: then the
    # images of a chunk are separate items of one batched GEMM (one per thread) and summed after
    per_image = kg * rows <= SMALL_DW and n > 1
    if per_image:
        from dlbench.threads import current_threads

        nb = min(n, max(nb, current_threads()))
        part = np.empty((nb, kg, rows), dtype=x.dtype)
    buf = np.empty(rows * nb * opq, dtype=x.dtype)
    dy_buf = np.empty(kg * nb * opq, dtype=x.dtype) if nb > 1 and not per_image else None
    dy3 = dy.reshape(n, k, opq)
    for n0 in range(0, n, nb):
        b = min(nb, n - n0)
        for g in range(groups):
            cols = _unfold(P, x5, buf[:rows * b * opq].reshape(rows, b * opq), n0, b, g * cg, cg,
                           ks, st, dl, pd, out, identity)
            if per_image and b > 1:
                items = cols.reshape(rows, b, opq).transpose(1, 2, 0)           # (b, OPQ, rows)
                batched_gemm(dy3[n0:n0 + b, g * kg:(g + 1) * kg], items, out=part[:b])
                dw[g] += part[:b].sum(axis=0)
            else:
                d = _dy_block(dy3, n0, b, g * kg, kg, dy_buf)
                gemm(d, cols, out=dw[g], beta=1.0, trans_b=True)
    return dw.reshape(w_shape)


# ------------------------------------------------------------------ kn2row (stride 1)
def _kn2row_geometry(x5_shape, out, kernel, dilation):
    """Flattened padded planes: output (o, p, q) sits at (o*Hp + p)*Wp + q, tap (t, r, s) reads
    at that position plus (t*dd*Hp + r*dh)*Wp + s*dw. L covers every valid output position."""
    dp, hp, wp = x5_shape[2:]
    o_, p_, q_ = out
    length = ((o_ - 1) * hp + p_ - 1) * wp + q_
    shifts = [((t * dilation[0]) * hp + r * dilation[1]) * wp + s * dilation[2]
              for t in range(kernel[0]) for r in range(kernel[1]) for s in range(kernel[2])]
    return length, shifts


def _valid_view(wide, out, hp, wp):
    """The (N, K, O, P, Q) valid positions of a flattened wide output (a strided view). The
    positions are distinct, so the view is writeable: when it happens to be C-contiguous (no
    padding column to drop), ``np.ascontiguousarray`` returns it as the op's output, which
    callers add the bias to in place."""
    o_, p_, q_ = out
    it = wide.itemsize
    return np.lib.stride_tricks.as_strided(wide, shape=wide.shape[:2] + tuple(out),
                                           strides=wide.strides[:2] + (hp * wp * it, wp * it, it))


def kn2row_forward(P, x, w, stride, padding, dilation, groups):
    """Eq. 9.7 read as a sum over kernel taps of 1x1 convolutions: for each tap one batched GEMM
    W[:, :, tap] (K x C) @ x_pad shifted by the tap (C x L, a strided view of the flattened padded
    planes, no unfolding), accumulated into an output on the padded-width grid (kn2row-accumulate).
    Stride 1 only; the Wp - Q extra columns per row are computed and dropped."""
    nd = x.ndim - 2
    n, k, cg = x.shape[0], w.shape[0], w.shape[1]
    kg = k // groups
    x5, w5 = as5(x), as5(w)
    ks, dl, pads = w5.shape[2:], t3(dilation, 1), p3(padding)
    out = output_size(x5.shape[2:], ks, (1, 1, 1), pads, dl)
    xp = padded(P, x5, pads)
    hp, wp = xp.shape[3], xp.shape[4]
    length, shifts = _kn2row_geometry(xp.shape, out, ks, dl)
    xf = xp.reshape(xp.shape[0], xp.shape[1], -1)
    yw = np.empty((n, k, length), dtype=x.dtype)
    taps = w5.reshape(k, cg, -1)
    for i, sh in enumerate(shifts):
        wt = np.ascontiguousarray(taps[:, :, i])
        for g in range(groups):
            batched_gemm(wt[g * kg:(g + 1) * kg], xf[:, g * cg:(g + 1) * cg, sh:sh + length],
                         out=yw[:, g * kg:(g + 1) * kg], beta=0.0 if i == 0 else 1.0)
    y = np.ascontiguousarray(_valid_view(yw, out, hp, wp))
    return y.reshape((n, k) + tuple(out[3 - nd:]))


def kn2row_backward_data(P, dy, w, x_shape, stride, padding, dilation, groups):
    dyc, wt, pads = bwd_data_as_forward(dy, w, x_shape, padding, dilation, groups)
    return kn2row_forward(P, dyc, wt, stride, pads, dilation, groups)


def kn2row_backward_weight(P, x, dy, w_shape, stride, padding, dilation, groups):
    """dw[:, :, tap] = sum_n dy_n (K x L, zeros off the valid grid) @ x_pad shifted by the tap^T (eq. "
      "9.11)."""
    n, k, cg = x.shape[0], w_shape[0], w_shape[1]
    kg = k // groups
    x5, dy5 = as5(x), as5(dy)
    ks, dl, pads = t3(w_shape[2:], 1), t3(dilation, 1), p3(padding)
    out = dy5.shape[2:]
    xp = padded(P, x5, pads)
    hp, wp = xp.shape[3], xp.shape[4]
    length, shifts = _kn2row_geometry(xp.shape, out, ks, dl)
    xf = xp.reshape(xp.shape[0], xp.shape[1], -1)
    dyw = np.zeros((n, k, length), dtype=x.dtype)
    np.lib.stride_tricks.as_strided(dyw, shape=dyw.shape[:2] + tuple(out),
                                    strides=dyw.strides[:2] + (hp * wp * dyw.itemsize, wp * dyw.itemsize,
                                                               dyw.itemsize))[...] = dy5
    dw = np.empty((k, cg, len(shifts)), dtype=x.dtype)
    part = np.empty((n, kg, cg), dtype=x.dtype)
    for i, sh in enumerate(shifts):
        for g in range(groups):
            xv = xf[:, g * cg:(g + 1) * cg, sh:sh + length].transpose(0, 2, 1)
            batched_gemm(dyw[:, g * kg:(g + 1) * kg], xv, out=part)
            dw[g * kg:(g + 1) * kg, :, i] = part.sum(axis=0)
    return dw.reshape(w_shape)


# ------------------------------------------------------------------ Winograd F(m x m, 3 x 3)
def winograd_matrices(m: int, dtype):
    """(B^T, G, A^T) of Lavin & Gray's F(2x2,3x3) or F(4x4,3x3), interpolation points 0, +-1, (+-2), inf."""
    if m == 2:
        bt = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
        g = [[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]]
        at = [[1, 1, 1, 0], [0, 1, -1, -1]]
    elif m == 4:
        bt = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
              [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
        g = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
             [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
        at = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
    else:
        raise ValueError(f"Winograd output tile must be 2 or 4, got {m}")
    return tuple(np.array(a, dtype=dtype) for a in (bt, g, at))


def winograd_forward(P, x, w, padding, groups, m):
    n, c, h, wd = x.shape
    k, cg = w.shape[:2]
    kg = k // groups
    (pt, pb), (pl, pr) = padding
    ph, pw = h + pt + pb - 2, wd + pl + pr - 2
    th, tw = -(-ph // m), -(-pw // m)
    alpha = m + 2
    bt, gm, at = winograd_matrices(m, x.dtype)
    y = np.empty((n, k, ph, pw), dtype=x.dtype)
    row_bytes = alpha * alpha * tw * max(cg, kg) * x.itemsize
    rows_per_chunk = max(1, min(n * th, WINO_CHUNK_BYTES // max(1, row_bytes)))
    ntiles = rows_per_chunk * tw
    vbuf = np.empty(alpha * alpha * ntiles * cg, dtype=x.dtype)
    mbuf = np.empty(alpha * alpha * ntiles * kg, dtype=x.dtype)
    xt = np.empty((n, th * m + 2, tw * m + 2, cg), dtype=x.dtype)
    u = np.empty((alpha * alpha, cg, kg), dtype=x.dtype)
    for g in range(groups):
        P.nhwc_pad(x, xt, pt, pl, g * cg)
        P.wino_weight(w, u, g * kg, gm)
        for r0 in range(0, n * th, rows_per_chunk):
            nr = min(rows_per_chunk, n * th - r0)
            v = vbuf[:alpha * alpha * nr * tw * cg].reshape(alpha * alpha, nr * tw, cg)
            P.wino_in(xt, v, r0, nr, th, tw, m, bt)
            mm = mbuf[:alpha * alpha * nr * tw * kg].reshape(alpha * alpha, nr * tw, kg)
            batched_gemm(v, u, out=mm)
            P.wino_out(mm, y, r0, nr, th, tw, m, at, g * kg)
    return y


def winograd_backward_data(P, dy, w, x_shape, padding, groups, m):
    dyc, wt, pads = bwd_data_as_forward(dy, w, x_shape, padding, (1, 1), groups)
    return winograd_forward(P, dyc, wt, pads, groups, m)


# ------------------------------------------------------------------ FFT
FFT_MAX_SPECTRUM = 1 << 23     # complex values of the kernel spectra K*(C/g)*F the fft algorithm may hold


def _fft_threads():
    from dlbench.threads import current_threads

    return current_threads()


def fft_lengths(extents):
    """Transform lengths: the next sizes scipy.fft transforms fast, at least the given extents."""
    import scipy.fft as sf

    return tuple(sf.next_fast_len(int(m), real=True) for m in extents)


def spectrum_size(lens) -> int:
    """Complex values of one real-input transform of shape lens (the last axis halved)."""
    return int(np.prod(lens[:-1])) * (lens[-1] // 2 + 1)


def _dilate(w, dilation):
    """Kernel with d-1 zeros between taps (the dilated kernel as a dense array)."""
    if all(d == 1 for d in dilation):
        return w
    ext = tuple(d * (kk - 1) + 1 for kk, d in zip(w.shape[2:], dilation))
    wd = np.zeros(w.shape[:2] + ext, dtype=w.dtype)
    wd[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in dilation)] = w
    return wd


def _upsample(dy, stride):
    """dy with s-1 zeros between samples (the strided output placed back on the unit grid)."""
    if all(s == 1 for s in stride):
        return dy
    ext = tuple((p - 1) * s + 1 for p, s in zip(dy.shape[2:], stride))
    u = np.zeros(dy.shape[:2] + ext, dtype=dy.dtype)
    u[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)] = dy
    return u


def _rfft(a, lens):
    import scipy.fft as sf

    nd = len(lens)
    f = sf.rfftn(a, s=lens, axes=tuple(range(a.ndim - nd, a.ndim)), workers=_fft_threads())
    return f.reshape(f.shape[:2] + (-1,))


def _irfft(f, lead, fshape, lens):
    import scipy.fft as sf

    nd = len(lens)
    return sf.irfftn(f.reshape(tuple(lead) + tuple(fshape)), s=lens, axes=tuple(range(2, 2 + nd)),
                     workers=_fft_threads())


def _fshape(lens):
    return tuple(lens[:-1]) + (lens[-1] // 2 + 1,)


def _grouped_product(P, a, b, out, groups, a_axis, b_axis, out_axes, conj_a=False, conj_b=False):
    """out[p, q, f] = sum_r op(a)[p, r, f] op(b)[r, q, f] per group (frequency innermost).

    a_axis / b_axis: which axis of a / b carries the group blocks (the other non-frequency axis
    is shared); out_axes: (axis of out for a's blocks or None, axis for b's blocks or None).
    """
    if groups == 1:
        P.cmul(a, b, out, conj_a, conj_b)
        return
    def blk(arr, axis, g):
        if axis is None:
            return arr
        n = arr.shape[axis] // groups
        idx = [slice(None)] * arr.ndim
        idx[axis] = slice(g * n, (g + 1) * n)
        return arr[tuple(idx)]

    for g in range(groups):
        ag = np.ascontiguousarray(blk(a, a_axis, g))
        bg = np.ascontiguousarray(blk(b, b_axis, g))
        og = np.empty((ag.shape[0], bg.shape[1], ag.shape[2]), dtype=out.dtype)
        P.cmul(ag, bg, og, conj_a, conj_b)
        idx = [slice(None)] * 3
        for ax in out_axes:
            if ax is not None:
                n = out.shape[ax] // groups
                idx[ax] = slice(g * n, (g + 1) * n)
        out[tuple(idx)] = og


def fft_forward(P, x, w, stride, padding, dilation, groups):
    """Y(f) = sum_c X(f) conj(W(f)) per frequency (correlation theorem, 9.8), then the inverse
    transform; stride > 1 keeps every s-th output of the unit-stride result."""
    n, k = x.shape[0], w.shape[0]
    out = output_size(x.shape[2:], w.shape[2:], stride, padding, dilation)
    ext = tuple(m + lo + hi for m, (lo, hi) in zip(x.shape[2:], padding))
    xp = padded(P, as5(x), p3(padding)).reshape(x.shape[:2] + ext)
    lens = fft_lengths(ext)
    xf = _rfft(xp, lens)                                              # (N, C, F)
    wf = _rfft(_dilate(w, dilation).swapaxes(0, 1), lens)             # (Cg, K, F)
    yf = np.empty((n, k, xf.shape[2]), dtype=xf.dtype)
    _grouped_product(P, xf, wf, yf, groups, 1, 1, (None, 1), conj_b=True)
    yfull = _irfft(yf, (n, k), _fshape(lens), lens)
    sel = tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out, stride))
    return np.ascontiguousarray(yfull[(slice(None), slice(None)) + sel], dtype=x.dtype)


def fft_backward_data(P, dy, w, x_shape, stride, padding, dilation, groups):
    """dx_pad = dy_upsampled (*) w_dilated, a linear (true) convolution (eq. 9.13), then cropped."""
    n, c = x_shape[:2]
    dyu = _upsample(dy, stride)
    wk = _dilate(w, dilation)
    lens = fft_lengths(max(u + e - 1, lo + m)
                       for u, e, m, (lo, _) in zip(dyu.shape[2:], wk.shape[2:], x_shape[2:], padding))
    df = _rfft(dyu, lens)                                             # (N, K, F)
    wf = _rfft(wk, lens)                                              # (K, Cg, F)
    xf = np.empty((n, c, df.shape[2]), dtype=df.dtype)
    _grouped_product(P, df, wf, xf, groups, 1, 0, (None, 1))
    full = _irfft(xf, (n, c), _fshape(lens), lens)
    crop = tuple(slice(lo, lo + m) for m, (lo, _) in zip(x_shape[2:], padding))
    return np.ascontiguousarray(full[(slice(None), slice(None)) + crop], dtype=dy.dtype)


def fft_backward_weight(P, x, dy, w_shape, stride, padding, dilation, groups):
    """dw[k,c,r] = circular correlation of dy_upsampled with x_pad at lags r*d (eq. 9.11)."""
    k, cg = w_shape[:2]
    ext = tuple(m + lo + hi for m, (lo, hi) in zip(x.shape[2:], padding))
    xp = padded(P, as5(x), p3(padding)).reshape(x.shape[:2] + ext)
    dyu = _upsample(dy, stride)
    lens = fft_lengths(ext)
    xf = _rfft(xp, lens)                                              # (N, C, F)
    df = _rfft(dyu.swapaxes(0, 1), lens)                              # (K, N, F)
    gf = np.empty((k, cg, xf.shape[2]), dtype=xf.dtype)
    _grouped_product(P, df, xf, gf, groups, 0, 1, (0, None), conj_a=True)
    full = _irfft(gf, (k, cg), _fshape(lens), lens)
    sel = tuple(slice(0, d * (kk - 1) + 1, d) for kk, d in zip(w_shape[2:], dilation))
    return np.ascontiguousarray(full[(slice(None), slice(None)) + sel], dtype=x.dtype)


# ------------------------------------------------------------------ separable
def rank1_factors(w, tol=None):
    """Column and row vectors (u (K, Cg, R), v (K, Cg, S)) with w[k,c] ~= outer(u, v) (SVD, float64).

    ValueError naming the worst kernel when any has sigma_2 / sigma_1 > tol (default 1e-6 for
    float32, 1e-12 for float64): separable convolution needs rank-1 kernels (section 9.8).
    """
    k, cg, r, s = w.shape
    if tol is None:
        tol = 1e-6 if w.dtype == np.float32 else 1e-12
    flat = w.reshape(k * cg, r, s).astype(np.float64)
    uu, sv, vt = np.linalg.svd(flat)
    if min(r, s) > 1:
        ratio = sv[:, 1] / np.maximum(sv[:, 0], np.finfo(np.float64).tiny)
        ratio[sv[:, 0] == 0] = 0.0
        worst = int(np.argmax(ratio))
        if ratio[worst] > tol:
            raise ValueError("separable requires rank-1 kernels (outer products of 1-D vectors, "
                             "section 9.8): "
                             f"kernel (k={worst // cg}, c={worst % cg}) has sigma2/sigma1 = "
                             f"{ratio[worst]:.3g} "
                             f"> tolerance {tol:g}")
    col = (uu[:, :, 0] * sv[:, :1]).reshape(k, cg, r).astype(w.dtype)
    row = vt[:, 0, :].reshape(k, cg, s).astype(w.dtype)
    return col, row


def separable_forward(P, x, w, stride, padding, dilation, groups):
    col, row = rank1_factors(w)
    out = output_size(x.shape[2:], w.shape[2:], stride, padding, dilation)
    pads = ((0, 0),) + tuple(padding)
    xp = padded(P, as5(x), pads)[:, :, 0]
    y = np.empty((x.shape[0], w.shape[0]) + out, dtype=x.dtype)
    P.separable(xp, col, row, y, *stride, *dilation, groups)
    return y


# ------------------------------------------------------------------ checks and registration
def _geometry(nd, params):
    from dlbench.ops.conv import ConvGeometry

    return ConvGeometry.from_params(nd, params)


def check_1x1(nd):
    def check(**params):
        g = _geometry(nd, params)
        if any(v != 1 for v in g.kernel):
            return f"gemm1x1 requires a 1x1 kernel, got {'x'.join(map(str, g.kernel))}"
        return None
    return check


def check_unit_stride(nd):
    def check(**params):
        g = _geometry(nd, params)
        if any(v != 1 for v in g.stride):
            return f"kn2row requires stride 1, got {g.stride}"
        return None
    return check


def check_fft(nd):
    def check(**params):
        import os

        g = _geometry(nd, params)
        limit = int(os.environ.get("DLBENCH_FFT_MAX_SPECTRUM", FFT_MAX_SPECTRUM))
        ext = [m + lo + hi for m, (lo, hi) in zip(g.in_size, g.padding)]
        size = g.K * (g.C // g.groups) * spectrum_size(fft_lengths(ext))
        if size > limit:
            return (f"fft needs the kernel spectra K*C/groups*F = {size} complex values, more than its "
                    f"workspace limit {limit} (DLBENCH_FFT_MAX_SPECTRUM): many channels on a large image")
        return None
    return check


def check_winograd(m):
    def check(**params):
        g = _geometry(2, params)
        if g.kernel != (3, 3):
            return f"winograd F({m}x{m},3x3) requires a 3x3 kernel, got {g.kernel[0]}x{g.kernel[1]}"
        if g.stride != (1, 1):
            return f"winograd F({m}x{m},3x3) requires stride 1, got {g.stride}"
        if g.dilation != (1, 1):
            return f"winograd F({m}x{m},3x3) requires dilation 1, got {g.dilation}"
        return None
    return check


OPS = {1: "conv1d", 2: "conv2d", 3: "conv3d"}


def register_family(backend: str, P: SimpleNamespace, origin: str) -> None:
    """Register every convolution (op, algorithm) for ``backend`` with primitives ``P``."""
    from dlbench.registry import register_kernel

    gemm_extra = {"impl": GEMM_IMPL}
    gemm_note = f"; products by {GEMM_WHY}"

    def reg(op, alg, fn, constraints, check=None, extra=None, note=""):
        register_kernel(op, alg, backend, constraints=constraints, check=check, description=note,
                        **(extra or {}))(fn)

    for nd, op in OPS.items():
        def fwd_direct(x, w, stride, padding, dilation, groups):
            return direct_forward(P, x, w, stride, padding, dilation, groups)

        def bd_direct(dy, w, x_shape, stride, padding, dilation, groups):
            return direct_backward_data(P, dy, w, x_shape, stride, padding, dilation, groups)

        def bw_direct(x, dy, w_shape, stride, padding, dilation, groups):
            return direct_backward_weight(P, x, dy, w_shape, stride, padding, dilation, groups)

        def fwd_im2col(x, w, stride, padding, dilation, groups):
            return im2col_forward(P, x, w, stride, padding, dilation, groups)

        def bd_im2col(dy, w, x_shape, stride, padding, dilation, groups):
            return im2col_backward_data(P, dy, w, x_shape, stride, padding, dilation, groups)

        def bw_im2col(x, dy, w_shape, stride, padding, dilation, groups):
            return im2col_backward_weight(P, x, dy, w_shape, stride, padding, dilation, groups)

        def fwd_fft(x, w, stride, padding, dilation, groups):
            return fft_forward(P, x, w, stride, padding, dilation, groups)

        def bd_fft(dy, w, x_shape, stride, padding, dilation, groups):
            return fft_backward_data(P, dy, w, x_shape, stride, padding, dilation, groups)

        def bw_fft(x, dy, w_shape, stride, padding, dilation, groups):
            return fft_backward_weight(P, x, dy, w_shape, stride, padding, dilation, groups)

        d = f"{nd}-D, {origin}"
        reg(op, "direct", fwd_direct, "any", note=f"{d}: blocked direct loops (eq. 9.8)")
        reg(op + "_backward_data", "direct", bd_direct, "any",
            note=f"{d}: direct (stride 1: transposed forward; else race-free scatter, eq. 9.13)")
        reg(op + "_backward_weight", "direct", bw_direct, "any", note=f"{d}: direct reduction (eq. 9.11)")
        reg(op, "im2col", fwd_im2col, "any", extra=gemm_extra, note=f"{d}: im2col + GEMM{gemm_note}")
        reg(op + "_backward_data", "im2col", bd_im2col, "any", extra=gemm_extra,
            note=f"{d}: W^T dy + col2im (eq. 9.13){gemm_note}")
        reg(op + "_backward_weight", "im2col", bw_im2col, "any", extra=gemm_extra,
            note=f"{d}: dy cols^T (eq. 9.11){gemm_note}")
        c1 = check_1x1(nd)
        reg(op, "gemm1x1", fwd_im2col, "1x1 kernel", c1, gemm_extra, f"{d}: 1x1 as GEMM{gemm_note}")
        reg(op + "_backward_data", "gemm1x1", bd_im2col, "1x1 kernel", c1, gemm_extra,
            f"{d}: 1x1 data gradient as GEMM{gemm_note}")
        reg(op + "_backward_weight", "gemm1x1", bw_im2col, "1x1 kernel", c1, gemm_extra,
            f"{d}: 1x1 kernel gradient as GEMM{gemm_note}")
        def fwd_kn(x, w, stride, padding, dilation, groups):
            return kn2row_forward(P, x, w, stride, padding, dilation, groups)

        def bd_kn(dy, w, x_shape, stride, padding, dilation, groups):
            return kn2row_backward_data(P, dy, w, x_shape, stride, padding, dilation, groups)

        def bw_kn(x, dy, w_shape, stride, padding, dilation, groups):
            return kn2row_backward_weight(P, x, dy, w_shape, stride, padding, dilation, groups)

        cs = check_unit_stride(nd)
        reg(op, "kn2row", fwd_kn, "stride 1", cs, gemm_extra,
            f"{d}: sum over taps of GEMMs on shifted views of the padded input{gemm_note}")
        reg(op + "_backward_data", "kn2row", bd_kn, "stride 1", cs, gemm_extra,
            f"{d}: kn2row on the transposed problem{gemm_note}")
        reg(op + "_backward_weight", "kn2row", bw_kn, "stride 1", cs, gemm_extra,
            f"{d}: per tap, dy times the shifted input transposed{gemm_note}")
        cf = check_fft(nd)
        fcons = "kernel spectra K*C/groups*F within the FFT workspace limit"
        reg(op, "fft", fwd_fft, fcons + " (stride > 1 computes the unit-stride result and subsamples)", cf,
            note=f"{d}: FFT (scipy.fft) + per-frequency channel products (9.8)")
        reg(op + "_backward_data", "fft", bd_fft, fcons, cf, note=f"{d}: FFT of upsampled dy times kernel")
        reg(op + "_backward_weight", "fft", bw_fft, fcons, cf, note=f"{d}: FFT correlation of dy and x")

    for m, alg in ((4, "winograd"), (2, "winograd_f2")):
        def fwd_w(x, w, stride, padding, dilation, groups, m=m):
            return winograd_forward(P, x, w, padding, groups, m)

        def bd_w(dy, w, x_shape, stride, padding, dilation, groups, m=m):
            return winograd_backward_data(P, dy, w, x_shape, padding, groups, m)

        cons = "3x3 kernel, stride 1, dilation 1"
        reg("conv2d", alg, fwd_w, cons, check_winograd(m), gemm_extra,
            f"2-D, {origin}: Winograd F({m}x{m},3x3), NHWC transforms + batched GEMM{gemm_note}")
        reg("conv2d_backward_data", alg, bd_w, cons, check_winograd(m), gemm_extra,
            f"2-D, {origin}: Winograd F({m}x{m},3x3) on the transposed problem{gemm_note}")

    def fwd_sep(x, w, stride, padding, dilation, groups):
        return separable_forward(P, x, w, stride, padding, dilation, groups)

    reg("conv2d", "separable", fwd_sep, "rank-1 kernels (outer products u v^T; checked by SVD at call time)",
        note=f"2-D, {origin}: separable kernel as a row pass then a column pass (9.8)")
