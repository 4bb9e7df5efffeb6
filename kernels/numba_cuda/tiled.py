"""numba.cuda tiled (eq. 9.10) and locally connected (eq. 9.9) convolution, forward and gradients.

A locally connected layer is the tiled one with t = output size, so both ops share these kernels
(contract of ``dlbench.ops.local``: zero-padded input xp (N, C, Hp, Wp), weights
(t_h, t_w, K, C, R, S), bias (t_h, t_w, K) or None).

- forward: the output positions with one tile pattern (i mod t_h, j mod t_w) = (a, b) form one
  GEMM with that pattern's kernel stack, so the implicit-GEMM skeleton of ``_conv_util`` runs
  with the t_h*t_w patterns as its groups: M = K, columns = the N*(Ho/t_h)*(Wo/t_w) positions of
  the pattern, reduction over (c, r, s) through a table of input offsets (xp is padded: no
  bounds checks). The bias is added by a second, element-wise launch.
- weight gradient: per pattern, dw[k, (c, r, s)] = sum over the pattern's positions of
  dy * patch (eq. 9.11 restricted to the pattern): the same skeleton with split-K; the bias
  gradient is one thread per (pattern, k) summing dy.
- input gradient: one thread per element of xp gathering w[pattern(i, j), k, c, r, s] dy[n, k, i, j]
  over the (r, s, k) whose window covers it (the transpose, eq. 9.13).

Same arguments as the numpy reference; NumPy in -> NumPy out, device in -> device out.
"""

from __future__ import annotations

import numpy as np
from dlbench.kernels.numba_cuda import _conv_util as U
from numba import cuda

from dlbench.registry import register_kernel

(T_N, T_C, T_HP, T_WP, T_K, T_R, T_S, T_HO, T_WO, T_SH, T_SW, T_TH, T_TW, T_A, T_B, T_HWP, T_RS,
 T_CRS) = range(18)


def geometry(xp_shape, w_shape, stride):
    n, c, hp, wp = (int(v) for v in xp_shape)
    th, tw, k, _, r, s = (int(v) for v in w_shape)
    sh, sw = (int(v) for v in stride)
    ho, wo = (hp - r) // sh + 1, (wp - s) // sw + 1
    return (n, c, hp, wp, k, r, s, ho, wo, sh, sw, th, tw, ho // th, wo // tw, hp * wp, r * s, c * r * s)


@cuda.jit(device=True)
def _unpack(a):
    """The geometry tuple from its device copy (see conv._unpack)."""
    return (a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14],
            a[15], a[16], a[17])


def device_geometry(geo):
    return U.device_table(("tgeo",) + geo, lambda: np.asarray(geo, np.int64))


def _patch_table(geo):
    """Rows (c, r, s) of the reduction: offset c*Hp*Wp + r*Wp + s of the patch element."""
    c, r, s = np.meshgrid(np.arange(geo[T_C]), np.arange(geo[T_R]), np.arange(geo[T_S]), indexing="ij")
    off = (c * geo[T_HWP] + r * geo[T_WP] + s).reshape(-1)
    tab = np.zeros((off.size, 5), np.int64 if off.max(initial=0) >= 2**31 else np.int32)
    tab[:, 0] = off
    return tab


@cuda.jit(device=True)
def _position(geo, g, q):
    """Pattern g = a*t_w + b, position index q = (n, ia, jb) -> (n, i = ia*t_h + a, j = jb*t_w + b)."""
    ab = geo[T_A] * geo[T_B]
    n = q // ab
    rem = q - n * ab
    ia = rem // geo[T_B]
    jb = rem - ia * geo[T_B]
    a = g // geo[T_TW]
    b = g - a * geo[T_TW]
    return n, ia * geo[T_TH] + a, jb * geo[T_TW] + b


# forward: A = w[pattern] (K, CRS), B = patches (CRS, positions)
@cuda.jit(device=True)
def _fwd_a(tab, geo, g, m, k):
    return (g * geo[T_K] + m) * geo[T_CRS] + k


@cuda.jit(device=True)
def _fwd_bdecode(tab, geo, g, col):
    n, i, j = _position(geo, g, col)
    return n * geo[T_C] * geo[T_HWP] + i * geo[T_SH] * geo[T_WP] + j * geo[T_SW], n, i, j


@cuda.jit(device=True)
def _fwd_b(tab, geo, g, st, k):
    return st[0] + tab[k, 0]


@cuda.jit(device=True)
def _fwd_store(geo, g, sp, m, col):
    n, i, j = _position(geo, g, col)
    size = geo[T_N] * geo[T_K] * geo[T_HO] * geo[T_WO]
    return sp * size + ((n * geo[T_K] + m) * geo[T_HO] + i) * geo[T_WO] + j


# weight gradient: A = dy of the pattern (K, positions), B = patches^T (positions, CRS)
@cuda.jit(device=True)
def _bw_a(tab, geo, g, m, k):
    n, i, j = _position(geo, g, k)
    return ((n * geo[T_K] + m) * geo[T_HO] + i) * geo[T_WO] + j


@cuda.jit(device=True)
def _bw_bdecode(tab, geo, g, col):
    return tab[col, 0], 0, 0, 0


@cuda.jit(device=True)
def _bw_b(tab, geo, g, st, k):
    n, i, j = _position(geo, g, k)
    return n * geo[T_C] * geo[T_HWP] + i * geo[T_SH] * geo[T_WP] + j * geo[T_SW] + st[0]


@cuda.jit(device=True)
def _bw_store(geo, g, sp, m, col):
    size = geo[T_TH] * geo[T_TW] * geo[T_K] * geo[T_CRS]
    return sp * size + (g * geo[T_K] + m) * geo[T_CRS] + col


MAPS = {"tiled_fwd": (_unpack, _fwd_a, _fwd_bdecode, _fwd_b, _fwd_store),
        "tiled_bwd_weight": (_unpack, _bw_a, _bw_bdecode, _bw_b, _bw_store)}


def _make_bias(dt):
    @cuda.jit(cache=False)
    def kern(y, b, geoa):
        """y[n, k, i, j] += b[i mod t_h, j mod t_w, k]."""
        geo = _unpack(geoa)
        howo = geo[T_HO] * geo[T_WO]
        for idx in range(cuda.grid(1), geo[T_N] * geo[T_K] * howo, cuda.gridsize(1)):
            nk = idx // howo
            pos = idx - nk * howo
            k = nk - (nk // geo[T_K]) * geo[T_K]
            i = pos // geo[T_WO]
            j = pos - i * geo[T_WO]
            y[idx] += b[((i % geo[T_TH]) * geo[T_TW] + j % geo[T_TW]) * geo[T_K] + k]
    return kern


def _make_bias_grad(dt):
    @cuda.jit(cache=False)
    def kern(dy, db, geoa):
        """db[a, b, k] = sum of dy[n, k, i, j] over the positions of pattern (a, b)."""
        geo = _unpack(geoa)
        npat = geo[T_TH] * geo[T_TW]
        npos = geo[T_N] * geo[T_A] * geo[T_B]
        for idx in range(cuda.grid(1), npat * geo[T_K], cuda.gridsize(1)):
            g = idx // geo[T_K]
            k = idx - g * geo[T_K]
            acc = dt(0)
            for q in range(npos):
                n, i, j = _position(geo, g, q)
                acc += dy[((n * geo[T_K] + k) * geo[T_HO] + i) * geo[T_WO] + j]
            db[idx] = acc
    return kern


def _make_data_grad(dt):
    @cuda.jit(cache=False)
    def kern(dy, w, dxp, geoa):
        """dxp[n, c, h, v] = sum over (r, s, k) with h = i*sh + r, v = j*sw + s of
        w[i mod t_h, j mod t_w, k, c, r, s] dy[n, k, i, j] (eq. 9.13 with per-pattern kernels)."""
        geo = _unpack(geoa)
        chw = geo[T_C] * geo[T_HWP]
        for idx in range(cuda.grid(1), geo[T_N] * chw, cuda.gridsize(1)):
            n = idx // chw
            rem = idx - n * chw
            c = rem // geo[T_HWP]
            pos = rem - c * geo[T_HWP]
            h = pos // geo[T_WP]
            v = pos - h * geo[T_WP]
            acc = dt(0)
            for r in range(geo[T_R]):
                hh = h - r
                if hh < 0:
                    break
                i = hh // geo[T_SH]
                if i * geo[T_SH] != hh or i >= geo[T_HO]:
                    continue
                for s in range(geo[T_S]):
                    vv = v - s
                    if vv < 0:
                        break
                    j = vv // geo[T_SW]
                    if j * geo[T_SW] != vv or j >= geo[T_WO]:
                        continue
                    g = (i % geo[T_TH]) * geo[T_TW] + j % geo[T_TW]
                    wo = ((g * geo[T_K]) * geo[T_C] + c) * geo[T_RS] + r * geo[T_S] + s
                    do = (n * geo[T_K] * geo[T_HO] + i) * geo[T_WO] + j
                    for k in range(geo[T_K]):
                        acc += w[wo + k * geo[T_CRS]] * dy[do + k * geo[T_HO] * geo[T_WO]]
            dxp[idx] = acc
    return kern


def _check_patterns(geo):
    if geo[T_TH] * geo[T_TW] > 65535:
        raise ValueError(f"numba-cuda tiled/local convolution supports at most 65535 tile patterns, "
                         f"got {geo[T_TH]}x{geo[T_TW]}")


@register_kernel("tiled_conv2d", "direct", "numba-cuda")
@register_kernel("local_conv2d", "direct", "numba-cuda")
def tiled_forward(xp, w, b, stride, out=None, splits=None):
    """Eq. 9.10 (9.9 when t = output size): one implicit GEMM per tile pattern, plus the bias."""
    io = U.DeviceIO(xp, w, b)
    xd, wd, bd = io.arrays
    geo = geometry(xd.shape, wd.shape, stride)
    _check_patterns(geo)
    dt = U.dtype_of(xd)
    y = U.check_out(out, (geo[T_N], geo[T_K], geo[T_HO], geo[T_WO]), dt)
    tab = U.device_table(("tiled",) + geo, lambda: _patch_table(geo))
    gd = device_geometry(geo)
    if y.size:
        U.run_igemm("tiled_fwd", MAPS["tiled_fwd"], dt, U.flat(wd), U.flat(xd), U.flat(y), tab, gd,
                    geo[T_K], geo[T_N] * geo[T_A] * geo[T_B], geo[T_CRS], geo[T_TH] * geo[T_TW], splits,
                    tag="tiled_fwd")
        if bd is not None:
            U.per_dtype("tiled_bias", _make_bias, dt)[U.launch_1d(y.size)](U.flat(y), U.flat(bd), gd)
    return io.out(y)


@register_kernel("tiled_conv2d_backward", "direct", "numba-cuda")
@register_kernel("local_conv2d_backward", "direct", "numba-cuda")
def tiled_backward(dy, xp, w, stride, splits=None):
    """Gradients of eq. 9.10: (dxp, dw, db) — gather for dxp, per-pattern implicit GEMM for dw."""
    io = U.DeviceIO(dy, xp, w)
    dyd, xd, wd = io.arrays
    geo = geometry(xd.shape, wd.shape, stride)
    _check_patterns(geo)
    dt = U.dtype_of(xd)
    dxp = U.empty(xd.shape, dt)
    dw = U.empty(wd.shape, dt)
    db = U.empty((geo[T_TH], geo[T_TW], geo[T_K]), dt)
    tab = U.device_table(("tiled",) + geo, lambda: _patch_table(geo))
    gd = device_geometry(geo)
    data_grad = U.per_dtype("tiled_dx", _make_data_grad, dt)
    data_grad[U.launch_1d(dxp.size)](U.flat(dyd), U.flat(wd), U.flat(dxp), gd)
    U.run_igemm("tiled_bwd_weight", MAPS["tiled_bwd_weight"], dt, U.flat(dyd), U.flat(xd), U.flat(dw), tab,
                gd, geo[T_K], geo[T_CRS], geo[T_N] * geo[T_A] * geo[T_B], geo[T_TH] * geo[T_TW], splits,
                tag="tiled_bw")
    U.per_dtype("tiled_db", _make_bias_grad, dt)[U.launch_1d(db.size)](U.flat(dyd), U.flat(db), gd)
    return io.out(dxp, dw, db)
