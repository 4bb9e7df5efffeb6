"""numba.cuda convolutions (chapter 9): conv1d/2d/3d forward, data gradient and kernel gradient.

Every problem is handled as 3-D, (N, C, D, H, W) with unit leading dimensions for 1-D and 2-D,
through a tuple ``geo`` of its sizes (see :func:`geometry`). Algorithms (backend ``numba-cuda``):

- ``implicit_gemm``: the shared-memory tiled GEMM of :mod:`._conv_util` with register blocking,
  never materialising im2col. Forward (eq. 9.7/9.8): per group, M = K/groups output channels,
  columns = the N*O*P*Q output positions, reduction over (c, t, r, s); a table per problem maps
  each reduction index to its input offset, so a B load is one table read and a bounds check
  (zero padding). Data gradient (eq. 9.12-9.13): M = C/groups input channels, columns = input
  positions, reduction over (k, t, r, s) reading dy where (position + pad - offset) is a multiple
  of the stride (the transposed convolution). Kernel gradient (eq. 9.11): M = K/groups, columns
  = (c, t, r, s), reduction over the N*O*P*Q positions, split across blocks (split-K).
- ``gemm1x1``: a 1x1 kernel is a plain GEMM per image: the forward B loads skip the table (one
  bounds check per column); the gradients use the implicit-GEMM kernels.
- ``direct``: one thread per output element looping over (c, t, r, s) (forward), one thread per
  input element gathering over (k, t, r, s) (data gradient), one block per weight element with a
  shared-memory tree reduction over the positions (kernel gradient). Any nd, any groups.
- ``depthwise``: groups = C (C/groups = 1, any channel multiplier): the direct kernels, where the
  per-thread loop is the R x S stencil of one channel.

Kernels take the arguments of the numpy reference (padding as resolved (before, after) pairs)
plus an optional ``out`` device buffer; NumPy in -> NumPy out (host-to-host), device in ->
device out (no copies). float32 and float64.
"""

from __future__ import annotations

import functools

import numpy as np
from dlbench.kernels.numba_cuda import _conv_util as U
from numba import cuda

from dlbench.ops._common import output_size
from dlbench.registry import register_kernel

# indices into the geometry tuple
(G_N, G_C, G_D, G_H, G_W, G_K, G_T, G_R, G_S, G_O, G_P, G_Q, G_SD, G_SH, G_SW, G_PD, G_PH, G_PW,
 G_DD, G_DH, G_DW, G_CG, G_KG, G_DHW, G_HW, G_OPQ, G_PQ, G_TRS) = range(28)


def _t3(t, fill):
    return (fill,) * (3 - len(t)) + tuple(int(v) for v in t)


def geometry(x_shape, w_shape, stride, padding, dilation, groups):
    """The 28-int geometry tuple of a problem (padding: (before, after) pairs per dimension)."""
    try:
        return _geometry(tuple(x_shape), tuple(w_shape), tuple(stride), tuple(map(tuple, padding)),
                         tuple(dilation), int(groups))
    except TypeError:           # unhashable arguments
        return _geometry.__wrapped__(x_shape, w_shape, stride, padding, dilation, groups)


@functools.lru_cache(maxsize=512)
def _geometry(x_shape, w_shape, stride, padding, dilation, groups):
    nd = len(x_shape) - 2
    n, c = int(x_shape[0]), int(x_shape[1])
    k, cg = int(w_shape[0]), int(w_shape[1])
    insz = _t3(x_shape[2:], 1)
    ksz = _t3(w_shape[2:], 1)
    st = _t3(stride, 1)
    dil = _t3(dilation, 1)
    pads = ((0, 0),) * (3 - nd) + tuple(tuple(int(v) for v in p) for p in padding)
    out = output_size(insz, ksz, st, pads, dil)
    d, h, w = insz
    t, r, s = ksz
    o, p, q = out
    return (n, c, d, h, w, k, t, r, s, o, p, q, *st, *(lo for lo, _ in pads), *dil, cg, k // groups,
            d * h * w, h * w, o * p * q, p * q, t * r * s)


def _out_shape(geo, nd):
    return (geo[G_N], geo[G_K]) + (geo[G_O], geo[G_P], geo[G_Q])[3 - nd:]


@cuda.jit(device=True)
def _unpack(a):
    """The geometry tuple from its device copy (one array argument launches much faster than 28
    integers; the tuple then lives in registers, its fields as cheap as constants)."""
    return (a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14],
            a[15], a[16], a[17], a[18], a[19], a[20], a[21], a[22], a[23], a[24], a[25], a[26], a[27])


def device_geometry(geo):
    """The cached device copy (int64) of a geometry tuple."""
    return U.device_table(("geo",) + geo, lambda: np.asarray(geo, np.int64))


# ------------------------------------------------------------------ index tables
def _forward_table(geo):
    """Rows (c, t, r, s) of the reduction: (input offset within an image's group, t*dd, r*dh, s*dw)."""
    cg, t, r, s = geo[G_CG], geo[G_T], geo[G_R], geo[G_S]
    cc, tt, rr, ss = np.meshgrid(np.arange(cg), np.arange(t), np.arange(r), np.arange(s), indexing="ij")
    dz, dy, dx = tt * geo[G_DD], rr * geo[G_DH], ss * geo[G_DW]
    off = cc * geo[G_DHW] + dz * geo[G_HW] + dy * geo[G_W] + dx
    tab = np.stack([off, dz, dy, dx, np.zeros_like(off)], axis=-1).reshape(-1, 5)
    return tab.astype(np.int64 if np.abs(tab).max(initial=0) >= 2**31 else np.int32)


def _data_table(geo):
    """Rows (k, t, r, s) of the data-gradient reduction: (k*OPQ, t*dd, r*dh, s*dw, k*Cg*TRS + trs)."""
    kg, t, r, s = geo[G_KG], geo[G_T], geo[G_R], geo[G_S]
    kk, tt, rr, ss = np.meshgrid(np.arange(kg), np.arange(t), np.arange(r), np.arange(s), indexing="ij")
    trs = (tt * r + rr) * s + ss
    tab = np.stack([kk * geo[G_OPQ], tt * geo[G_DD], rr * geo[G_DH], ss * geo[G_DW],
                    kk * geo[G_CG] * geo[G_TRS] + trs], axis=-1).reshape(-1, 5)
    return tab.astype(np.int64 if np.abs(tab).max(initial=0) >= 2**31 else np.int32)


_NO_TABLE = None


def _no_table():
    global _NO_TABLE
    if _NO_TABLE is None:
        _NO_TABLE = cuda.to_device(np.zeros((1, 5), np.int32))
    return _NO_TABLE


# ------------------------------------------------------------------ index maps: forward (eq. 9.7/9.8)
@cuda.jit(device=True)
def _fwd_a(tab, geo, g, m, k):
    """A[m, k] = w[g*Kg + m, (c, t, r, s) = k] (weights are (K, Cg*TRS) row-major)."""
    return (g * geo[G_KG] + m) * (geo[G_CG] * geo[G_TRS]) + k


@cuda.jit(device=True)
def _fwd_bdecode(tab, geo, g, col):
    """Output position col = (n, o, p, q) -> (offset of its window corner, z0, y0, x0)."""
    opq = geo[G_OPQ]
    n = col // opq
    pos = col - n * opq
    o = pos // geo[G_PQ]
    pos -= o * geo[G_PQ]
    p = pos // geo[G_Q]
    q = pos - p * geo[G_Q]
    z0 = o * geo[G_SD] - geo[G_PD]
    y0 = p * geo[G_SH] - geo[G_PH]
    x0 = q * geo[G_SW] - geo[G_PW]
    base = (n * geo[G_C] + g * geo[G_CG]) * geo[G_DHW] + z0 * geo[G_HW] + y0 * geo[G_W] + x0
    return base, z0, y0, x0


@cuda.jit(device=True)
def _fwd_b(tab, geo, g, st, k):
    """B[k, col] = x[n, g*Cg + c, z0 + t*dd, y0 + r*dh, x0 + s*dw] (-1 in the zero padding)."""
    z = st[1] + tab[k, 1]
    y = st[2] + tab[k, 2]
    x = st[3] + tab[k, 3]
    if z < 0 or z >= geo[G_D] or y < 0 or y >= geo[G_H] or x < 0 or x >= geo[G_W]:
        return -1
    return st[0] + tab[k, 0]


@cuda.jit(device=True)
def _fwd_store(geo, g, sp, m, col):
    opq = geo[G_OPQ]
    n = col // opq
    pos = col - n * opq
    size = geo[G_N] * geo[G_K] * opq
    return sp * size + (n * geo[G_K] + g * geo[G_KG] + m) * opq + pos


@cuda.jit(device=True)
def _1x1_bdecode(tab, geo, g, col):
    """1x1 kernel: the column's single input position, or -1 when it lies in the padding."""
    opq = geo[G_OPQ]
    n = col // opq
    pos = col - n * opq
    o = pos // geo[G_PQ]
    pos -= o * geo[G_PQ]
    p = pos // geo[G_Q]
    q = pos - p * geo[G_Q]
    z = o * geo[G_SD] - geo[G_PD]
    y = p * geo[G_SH] - geo[G_PH]
    x = q * geo[G_SW] - geo[G_PW]
    if z < 0 or z >= geo[G_D] or y < 0 or y >= geo[G_H] or x < 0 or x >= geo[G_W]:
        return -1, 0, 0, 0
    return (n * geo[G_C] + g * geo[G_CG]) * geo[G_DHW] + z * geo[G_HW] + y * geo[G_W] + x, 0, 0, 0


@cuda.jit(device=True)
def _1x1_b(tab, geo, g, st, k):
    if st[0] < 0:
        return -1
    return st[0] + k * geo[G_DHW]


# ------------------------------------------------------------------ index maps: data gradient (eq. 9.12-9.13)
@cuda.jit(device=True)
def _bd_a(tab, geo, g, m, k):
    """A[m = c, k = (k', t, r, s)] = w[g*Kg + k', c, t, r, s]."""
    return (g * geo[G_KG] * geo[G_CG] + m) * geo[G_TRS] + tab[k, 4]


@cuda.jit(device=True)
def _bd_bdecode(tab, geo, g, col):
    """Input position col = (n, z, y, x) -> (dy offset of image n's group, z + pd, y + ph, x + pw)."""
    dhw = geo[G_DHW]
    n = col // dhw
    pos = col - n * dhw
    z = pos // geo[G_HW]
    pos -= z * geo[G_HW]
    y = pos // geo[G_W]
    x = pos - y * geo[G_W]
    return (n * geo[G_K] + g * geo[G_KG]) * geo[G_OPQ], z + geo[G_PD], y + geo[G_PH], x + geo[G_PW]


@cuda.jit(device=True)
def _bd_b(tab, geo, g, st, k):
    """B[k = (k', t, r, s), col] = dy[n, g*Kg + k', o, p, q] where o*sd + t*dd = z + pd etc."""
    zz = st[1] - tab[k, 1]
    yy = st[2] - tab[k, 2]
    xx = st[3] - tab[k, 3]
    if zz < 0 or yy < 0 or xx < 0:
        return -1
    o = zz // geo[G_SD]
    p = yy // geo[G_SH]
    q = xx // geo[G_SW]
    if o * geo[G_SD] != zz or p * geo[G_SH] != yy or q * geo[G_SW] != xx:
        return -1
    if o >= geo[G_O] or p >= geo[G_P] or q >= geo[G_Q]:
        return -1
    return st[0] + tab[k, 0] + o * geo[G_PQ] + p * geo[G_Q] + q


@cuda.jit(device=True)
def _bd_store(geo, g, sp, m, col):
    dhw = geo[G_DHW]
    n = col // dhw
    pos = col - n * dhw
    size = geo[G_N] * geo[G_C] * dhw
    return sp * size + (n * geo[G_C] + g * geo[G_CG] + m) * dhw + pos


# ------------------------------------------------------------------ index maps: kernel gradient (eq. 9.11)
@cuda.jit(device=True)
def _bw_a(tab, geo, g, m, k):
    """A[m = k', k = (n, o, p, q)] = dy[n, g*Kg + k', o, p, q]."""
    opq = geo[G_OPQ]
    n = k // opq
    pos = k - n * opq
    return (n * geo[G_K] + g * geo[G_KG] + m) * opq + pos


@cuda.jit(device=True)
def _bw_bdecode(tab, geo, g, col):
    """Weight column col = (c, t, r, s) -> (offset in the group's input, t*dd - pd, r*dh - ph, s*dw - pw)."""
    return (g * geo[G_CG] * geo[G_DHW] + tab[col, 0] - geo[G_PD] * geo[G_HW] - geo[G_PH] * geo[G_W]
            - geo[G_PW], tab[col, 1] - geo[G_PD], tab[col, 2] - geo[G_PH], tab[col, 3] - geo[G_PW])


@cuda.jit(device=True)
def _bw_b(tab, geo, g, st, k):
    """B[k = (n, o, p, q), col] = x[n, g*Cg + c, o*sd + t*dd - pd, ...] (-1 in the padding)."""
    opq = geo[G_OPQ]
    n = k // opq
    pos = k - n * opq
    o = pos // geo[G_PQ]
    pos -= o * geo[G_PQ]
    p = pos // geo[G_Q]
    q = pos - p * geo[G_Q]
    z = o * geo[G_SD] + st[1]
    y = p * geo[G_SH] + st[2]
    x = q * geo[G_SW] + st[3]
    if z < 0 or z >= geo[G_D] or y < 0 or y >= geo[G_H] or x < 0 or x >= geo[G_W]:
        return -1
    return (n * geo[G_C] * geo[G_DHW] + st[0] + o * geo[G_SD] * geo[G_HW] + p * geo[G_SH] * geo[G_W]
            + q * geo[G_SW])


@cuda.jit(device=True)
def _bw_store(geo, g, sp, m, col):
    ncol = geo[G_CG] * geo[G_TRS]
    size = geo[G_K] * ncol
    return sp * size + (g * geo[G_KG] + m) * ncol + col


MAPS = {
    "conv_fwd": (_unpack, _fwd_a, _fwd_bdecode, _fwd_b, _fwd_store),
    "conv_fwd_1x1": (_unpack, _fwd_a, _1x1_bdecode, _1x1_b, _fwd_store),
    "conv_bwd_data": (_unpack, _bd_a, _bd_bdecode, _bd_b, _bd_store),
    "conv_bwd_weight": (_unpack, _bw_a, _bw_bdecode, _bw_b, _bw_store),
}


# ------------------------------------------------------------------ implicit GEMM drivers
def _groups(geo):
    return geo[G_C] // geo[G_CG]


def igemm_forward(x, w, stride, padding, dilation, groups, out=None, splits=None, one_by_one=False):
    """Forward convolution as an implicit GEMM (eq. 9.7/9.8); see the module docstring."""
    io = U.DeviceIO(x, w)
    xd, wd = io.arrays
    nd = len(xd.shape) - 2
    geo = geometry(xd.shape, wd.shape, stride, padding, dilation, groups)
    dt = U.dtype_of(xd)
    y = U.check_out(out, _out_shape(geo, nd), dt)
    if one_by_one:
        tab, name = _no_table(), "conv_fwd_1x1"
    else:
        tab, name = U.device_table(("fwd",) + geo, lambda: _forward_table(geo)), "conv_fwd"
    if y.size:
        gd = device_geometry(geo)
        U.run_igemm(name, MAPS[name], dt, U.flat(wd), U.flat(xd), U.flat(y), tab, gd, geo[G_KG],
                    geo[G_N] * geo[G_OPQ], geo[G_CG] * geo[G_TRS], groups, splits, tag="conv_fwd")
    return io.out(y)


def igemm_backward_data(dy, w, x_shape, stride, padding, dilation, groups, out=None, splits=None):
    """Data gradient (eq. 9.12-9.13) as an implicit GEMM over input positions."""
    io = U.DeviceIO(dy, w)
    dyd, wd = io.arrays
    geo = geometry(x_shape, wd.shape, stride, padding, dilation, groups)
    dt = U.dtype_of(dyd)
    dx = U.check_out(out, tuple(x_shape), dt)
    tab = U.device_table(("bd",) + geo, lambda: _data_table(geo))
    if dx.size:
        gd = device_geometry(geo)
        U.run_igemm("conv_bwd_data", MAPS["conv_bwd_data"], dt, U.flat(wd), U.flat(dyd), U.flat(dx), tab, gd,
                    geo[G_CG], geo[G_N] * geo[G_DHW], geo[G_KG] * geo[G_TRS], groups, splits, tag="conv_bd")
    return io.out(dx)


def igemm_backward_weight(x, dy, w_shape, stride, padding, dilation, groups, out=None, splits=None):
    """Kernel gradient (eq. 9.11) as an implicit GEMM reducing over the output positions (split-K)."""
    io = U.DeviceIO(x, dy)
    xd, dyd = io.arrays
    geo = geometry(xd.shape, w_shape, stride, padding, dilation, groups)
    dt = U.dtype_of(xd)
    dw = U.check_out(out, tuple(w_shape), dt)
    tab = U.device_table(("fwd",) + geo, lambda: _forward_table(geo))
    if dw.size:
        gd = device_geometry(geo)
        U.run_igemm("conv_bwd_weight", MAPS["conv_bwd_weight"], dt, U.flat(dyd), U.flat(xd), U.flat(dw), tab,
                    gd, geo[G_KG], geo[G_CG] * geo[G_TRS], geo[G_N] * geo[G_OPQ], groups, splits,
                    tag="conv_bw")
    return io.out(dw)


# ------------------------------------------------------------------ direct kernels
def _make_direct_fwd(dt):
    @cuda.jit(cache=False)
    def kern(x, w, y, geoa):
        """One thread per output element (n, k, o, p, q): sum over (c, t, r, s) (eq. 9.8)."""
        geo = _unpack(geoa)
        kopq = geo[G_K] * geo[G_OPQ]
        total = geo[G_N] * kopq
        for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
            n = idx // kopq
            rem = idx - n * kopq
            k = rem // geo[G_OPQ]
            pos = rem - k * geo[G_OPQ]
            o = pos // geo[G_PQ]
            pos -= o * geo[G_PQ]
            p = pos // geo[G_Q]
            q = pos - p * geo[G_Q]
            g = k // geo[G_KG]
            acc = dt(0)
            for t in range(geo[G_T]):
                z = o * geo[G_SD] + t * geo[G_DD] - geo[G_PD]
                if z < 0 or z >= geo[G_D]:
                    continue
                for r in range(geo[G_R]):
                    yy = p * geo[G_SH] + r * geo[G_DH] - geo[G_PH]
                    if yy < 0 or yy >= geo[G_H]:
                        continue
                    for s in range(geo[G_S]):
                        xx = q * geo[G_SW] + s * geo[G_DW] - geo[G_PW]
                        if xx < 0 or xx >= geo[G_W]:
                            continue
                        xo = (n * geo[G_C] + g * geo[G_CG]) * geo[G_DHW] + z * geo[G_HW] + yy * geo[G_W] + xx
                        wo = k * geo[G_CG] * geo[G_TRS] + (t * geo[G_R] + r) * geo[G_S] + s
                        for c in range(geo[G_CG]):
                            acc += x[xo + c * geo[G_DHW]] * w[wo + c * geo[G_TRS]]
            y[idx] = acc
    return kern


def _make_direct_bwd_data(dt):
    @cuda.jit(cache=False)
    def kern(dy, w, dx, geoa):
        """One thread per input element (n, c, z, y, x): gather w[k, c, t, r, s] dy[n, k, o, p, q] over
        the (k, t, r, s) with o*sd + t*dd - pd = z (and likewise y, x): eq. 9.13."""
        geo = _unpack(geoa)
        cdhw = geo[G_C] * geo[G_DHW]
        total = geo[G_N] * cdhw
        for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
            n = idx // cdhw
            rem = idx - n * cdhw
            c = rem // geo[G_DHW]
            pos = rem - c * geo[G_DHW]
            z = pos // geo[G_HW]
            pos -= z * geo[G_HW]
            yy = pos // geo[G_W]
            xx = pos - yy * geo[G_W]
            g = c // geo[G_CG]
            cl = c - g * geo[G_CG]
            acc = dt(0)
            for t in range(geo[G_T]):
                zz = z + geo[G_PD] - t * geo[G_DD]
                if zz < 0:
                    break
                o = zz // geo[G_SD]
                if o * geo[G_SD] != zz or o >= geo[G_O]:
                    continue
                for r in range(geo[G_R]):
                    y2 = yy + geo[G_PH] - r * geo[G_DH]
                    if y2 < 0:
                        break
                    p = y2 // geo[G_SH]
                    if p * geo[G_SH] != y2 or p >= geo[G_P]:
                        continue
                    for s in range(geo[G_S]):
                        x2 = xx + geo[G_PW] - s * geo[G_DW]
                        if x2 < 0:
                            break
                        q = x2 // geo[G_SW]
                        if q * geo[G_SW] != x2 or q >= geo[G_Q]:
                            continue
                        k0 = g * geo[G_KG]
                        do = (n * geo[G_K] + k0) * geo[G_OPQ] + o * geo[G_PQ] + p * geo[G_Q] + q
                        wo = (k0 * geo[G_CG] + cl) * geo[G_TRS] + (t * geo[G_R] + r) * geo[G_S] + s
                        for kk in range(geo[G_KG]):
                            acc += dy[do + kk * geo[G_OPQ]] * w[wo + kk * geo[G_CG] * geo[G_TRS]]
            dx[idx] = acc
    return kern


def _make_direct_bwd_weight(dt):
    RT = U.THREADS

    @cuda.jit(cache=False)
    def kern(x, dy, dw, geoa):
        """One block per weight element (k, c, t, r, s): a tree reduction of dy * x over the
        N*O*P*Q output positions (eq. 9.11)."""
        geo = _unpack(geoa)
        sh = cuda.shared.array(RT, dt)
        tid = cuda.threadIdx.x
        total = geo[G_K] * geo[G_CG] * geo[G_TRS]
        npos = geo[G_N] * geo[G_OPQ]
        for widx in range(cuda.blockIdx.x, total, cuda.gridDim.x):
            k = widx // (geo[G_CG] * geo[G_TRS])
            rem = widx - k * geo[G_CG] * geo[G_TRS]
            cl = rem // geo[G_TRS]
            trs = rem - cl * geo[G_TRS]
            t = trs // (geo[G_R] * geo[G_S])
            rs = trs - t * geo[G_R] * geo[G_S]
            r = rs // geo[G_S]
            s = rs - r * geo[G_S]
            c = (k // geo[G_KG]) * geo[G_CG] + cl
            acc = dt(0)
            for j in range(tid, npos, RT):
                n = j // geo[G_OPQ]
                pos = j - n * geo[G_OPQ]
                o = pos // geo[G_PQ]
                pos -= o * geo[G_PQ]
                p = pos // geo[G_Q]
                q = pos - p * geo[G_Q]
                z = o * geo[G_SD] + t * geo[G_DD] - geo[G_PD]
                yy = p * geo[G_SH] + r * geo[G_DH] - geo[G_PH]
                xx = q * geo[G_SW] + s * geo[G_DW] - geo[G_PW]
                if z >= 0 and z < geo[G_D] and yy >= 0 and yy < geo[G_H] and xx >= 0 and xx < geo[G_W]:
                    acc += dy[(n * geo[G_K] + k) * geo[G_OPQ] + j - n * geo[G_OPQ]] * \
                        x[(n * geo[G_C] + c) * geo[G_DHW] + z * geo[G_HW] + yy * geo[G_W] + xx]
            sh[tid] = acc
            cuda.syncthreads()
            half = RT // 2
            while half > 0:
                if tid < half:
                    sh[tid] += sh[tid + half]
                cuda.syncthreads()
                half //= 2
            if tid == 0:
                dw[widx] = sh[0]
            cuda.syncthreads()
    return kern


def direct_forward(x, w, stride, padding, dilation, groups, out=None):
    """Direct forward convolution, one thread per output element (eq. 9.8)."""
    io = U.DeviceIO(x, w)
    xd, wd = io.arrays
    nd = len(xd.shape) - 2
    geo = geometry(xd.shape, wd.shape, stride, padding, dilation, groups)
    y = U.check_out(out, _out_shape(geo, nd), U.dtype_of(xd))
    if y.size:
        U.per_dtype("conv_direct_fwd", _make_direct_fwd, y.dtype)[U.launch_1d(y.size)](
            U.flat(xd), U.flat(wd), U.flat(y), device_geometry(geo))
    return io.out(y)


def direct_backward_data(dy, w, x_shape, stride, padding, dilation, groups, out=None):
    """Direct data gradient, one thread per input element gathering over (k, t, r, s) (eq. 9.13)."""
    io = U.DeviceIO(dy, w)
    dyd, wd = io.arrays
    geo = geometry(x_shape, wd.shape, stride, padding, dilation, groups)
    dx = U.check_out(out, tuple(x_shape), U.dtype_of(dyd))
    if dx.size:
        U.per_dtype("conv_direct_bd", _make_direct_bwd_data, dx.dtype)[U.launch_1d(dx.size)](
            U.flat(dyd), U.flat(wd), U.flat(dx), device_geometry(geo))
    return io.out(dx)


def direct_backward_weight(x, dy, w_shape, stride, padding, dilation, groups, out=None):
    """Direct kernel gradient: one block per weight element, tree reduction (eq. 9.11)."""
    io = U.DeviceIO(x, dy)
    xd, dyd = io.arrays
    geo = geometry(xd.shape, w_shape, stride, padding, dilation, groups)
    dw = U.check_out(out, tuple(w_shape), U.dtype_of(xd))
    if dw.size:
        blocks = U.MAX_BLOCKS if U.SIMULATOR else min(dw.size, U.MAX_BLOCKS)
        U.per_dtype("conv_direct_bw", _make_direct_bwd_weight, dw.dtype)[blocks, U.THREADS](
            U.flat(xd), U.flat(dyd), U.flat(dw), device_geometry(geo))
    return io.out(dw)


# ------------------------------------------------------------------ registration
def _geo_from_params(nd, params):
    from dlbench.ops.conv import ConvGeometry

    return ConvGeometry.from_params(nd, params)


def _check_1x1(nd):
    def check(**params):
        g = _geo_from_params(nd, params)
        if any(v != 1 for v in g.kernel):
            return f"gemm1x1 requires a 1x1 kernel, got {'x'.join(map(str, g.kernel))}"
        return None
    return check


def _check_depthwise(nd):
    def check(**params):
        g = _geo_from_params(nd, params)
        if g.C // g.groups != 1:
            return (f"depthwise requires groups = C (one input channel per group), "
                    f"got C/groups = {g.C // g.groups}")
        return None
    return check


def _register():
    for nd, op in ((1, "conv1d"), (2, "conv2d"), (3, "conv3d")):
        d = f"{nd}-D numba.cuda"

        def fwd_igemm(x, w, stride, padding, dilation, groups, out=None, splits=None):
            return igemm_forward(x, w, stride, padding, dilation, groups, out, splits)

        def fwd_1x1(x, w, stride, padding, dilation, groups, out=None, splits=None):
            return igemm_forward(x, w, stride, padding, dilation, groups, out, splits, one_by_one=True)

        reg = [
            (op, "implicit_gemm", fwd_igemm, "any", None,
             f"{d}: shared-memory tiled implicit GEMM, register blocking, split-K (eq. 9.7/9.8)"),
            (op + "_backward_data", "implicit_gemm", igemm_backward_data, "any", None,
             f"{d}: implicit GEMM over input positions (transposed convolution, eq. 9.12-9.13)"),
            (op + "_backward_weight", "implicit_gemm", igemm_backward_weight, "any", None,
             f"{d}: implicit GEMM reducing over output positions, split-K (eq. 9.11)"),
            (op, "gemm1x1", fwd_1x1, "1x1 kernel", _check_1x1(nd),
             f"{d}: 1x1 convolution as a GEMM per image"),
            (op + "_backward_data", "gemm1x1", igemm_backward_data, "1x1 kernel", _check_1x1(nd),
             f"{d}: 1x1 data gradient (implicit GEMM)"),
            (op + "_backward_weight", "gemm1x1", igemm_backward_weight, "1x1 kernel", _check_1x1(nd),
             f"{d}: 1x1 kernel gradient (implicit GEMM)"),
            (op, "direct", direct_forward, "any", None, f"{d}: one thread per output element (eq. 9.8)"),
            (op + "_backward_data", "direct", direct_backward_data, "any", None,
             f"{d}: one thread per input element, gather (eq. 9.13)"),
            (op + "_backward_weight", "direct", direct_backward_weight, "any", None,
             f"{d}: one block per weight element, tree reduction (eq. 9.11)"),
            (op, "depthwise", direct_forward, "groups = C", _check_depthwise(nd),
             f"{d}: depthwise stencil, one thread per output element"),
            (op + "_backward_data", "depthwise", direct_backward_data, "groups = C", _check_depthwise(nd),
             f"{d}: depthwise data gradient, one thread per input element"),
            (op + "_backward_weight", "depthwise", direct_backward_weight, "groups = C", _check_depthwise(nd),
             f"{d}: depthwise kernel gradient, block reductions"),
        ]
        for o, alg, fn, cons, check, note in reg:
            register_kernel(o, alg, "numba-cuda", constraints=cons, check=check, description=note)(fn)


_register()

__all__ = ["geometry", "igemm_forward", "igemm_backward_data", "igemm_backward_weight", "direct_forward",
           "direct_backward_data", "direct_backward_weight"]
