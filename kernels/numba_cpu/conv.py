"""Numba CPU primitives of the convolution family, and their registration (backend ``numba``).

The algorithms themselves (direct, im2col, gemm1x1, fft, winograd, winograd_f2, separable) are
the drivers of :mod:`dlbench.kernels.numba_cpu.conv_drivers`; this module supplies the hot loops
on 5-D (N, C, D, H, W) arrays, so 1-D, 2-D and 3-D problems share one compiled specialisation
per dtype. Each primitive writes into arrays the driver allocated; signatures are shared with
the Cython primitives (``dlbench.kernels.cython.conv``).

Parallelism: every hot loop is an ``@njit(nogil=True, cache=True)`` function over a range of
independent jobs ``[j0, j1)``, and :func:`parallel_jobs` runs chunks of the range on
``numba.get_num_threads()`` threads (a persistent pool; the GIL is released inside). This is
deliberately not ``parallel=True``: lowering a prange around these loop nests cost about three
times the JIT time of the serial kernel (measured: 15 s against 5 s for the weight gradient),
and the conv tests must compile every kernel in both dtypes from a cold cache within the CI
budget. Jobs never write to the same output element, so no reduction crosses threads.
``fastmath`` is limited to FMA contraction, plus reassociation in the reductions.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numba as nb
import numpy as np
from dlbench.kernels.numba_cpu.conv_drivers import register_family

KB = 4   # output channels per pass of the direct kernel (register blocking)
FMA = {"contract"}
REDUCE = {"contract", "reassoc", "nsz"}
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def parallel_jobs(fn, njobs, *args):
    """Run fn(j0, j1, *args) over the jobs [0, njobs) on numba.get_num_threads() threads.

    The range is cut into about four chunks per thread, taken in turn by the pool's threads and
    the calling thread (dynamic scheduling evens out jobs of unequal cost).
    """
    global _pool, _pool_size
    nt = min(nb.get_num_threads(), njobs)
    if nt <= 1:
        if njobs > 0:
            fn(0, njobs, *args)
        return
    if _pool is None or _pool_size < nt - 1:
        _pool = ThreadPoolExecutor(max_workers=nt - 1, thread_name_prefix="dlbench-conv")
        _pool_size = nt - 1
    chunks = min(njobs, 4 * nt)
    bounds = [njobs * i // chunks for i in range(chunks + 1)]
    todo = iter(range(chunks))
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            fn(bounds[i], bounds[i + 1], *args)

    futures = [_pool.submit(worker) for _ in range(nt - 1)]
    worker()
    for f in futures:
        f.result()


JIT = dict(nogil=True, cache=True)


@nb.njit(**JIT)
def _pad(j0, j1, x, xp, pd, ph, pw):
    n_, c_, d_, h_, w_ = x.shape
    dp, hp, wp = xp.shape[2], xp.shape[3], xp.shape[4]
    for job in range(j0, j1):
        n = job // c_
        c = job % c_
        for z in range(dp):
            for h in range(hp):
                sz = z - pd
                sh = h - ph
                if sz < 0 or sz >= d_ or sh < 0 or sh >= h_:
                    for q in range(wp):
                        xp[n, c, z, h, q] = 0
                else:
                    for q in range(pw):
                        xp[n, c, z, h, q] = 0
                    for q in range(w_):
                        xp[n, c, z, h, pw + q] = x[n, c, sz, sh, q]
                    for q in range(pw + w_, wp):
                        xp[n, c, z, h, q] = 0


def pad(x, xp, pd, ph, pw):
    """xp[n, c] = x[n, c] placed at offset (pd, ph, pw), zeros around (section 9.5)."""
    parallel_jobs(_pad, x.shape[0] * x.shape[1], x, xp, pd, ph, pw)


@nb.njit(**JIT)
def _im2col(j0, j1, x, cols, n0, c0, cg, kt, kr, ks, sd, sh, sw, dd, dh, dw, pd, ph, pw, o_, p_, q_):
    d_, h_, w_ = x.shape[2], x.shape[3], x.shape[4]
    rows = cg * kt * kr * ks
    opq = o_ * p_ * q_
    for job in range(j0, j1):
        i = job // rows
        row = job % rows
        s = row % ks
        rest = row // ks
        r = rest % kr
        rest //= kr
        t = rest % kt
        c = rest // kt
        off = s * dw - pw
        q_lo = 0 if off >= 0 else min((-off + sw - 1) // sw, q_)
        q_hi = min((w_ - 1 - off) // sw + 1, q_) if w_ - 1 - off >= 0 else 0
        q_hi = max(q_hi, q_lo)
        base = i * opq
        for o in range(o_):
            z = o * sd + t * dd - pd
            for p in range(p_):
                h = p * sh + r * dh - ph
                b = base + (o * p_ + p) * q_
                if z < 0 or z >= d_ or h < 0 or h >= h_:
                    for q in range(q_):
                        cols[row, b + q] = 0
                else:
                    for q in range(q_lo):
                        cols[row, b + q] = 0
                    if sw == 1:
                        for q in range(q_lo, q_hi):
                            cols[row, b + q] = x[n0 + i, c0 + c, z, h, q + off]
                    else:
                        for q in range(q_lo, q_hi):
                            cols[row, b + q] = x[n0 + i, c0 + c, z, h, q * sw + off]
                    for q in range(q_hi, q_):
                        cols[row, b + q] = 0


def im2col(x, cols, n0, nb_, c0, cg, kt, kr, ks, sd, sh, sw, dd, dh, dw, pd, ph, pw, o_, p_, q_):
    """cols[(c,t,r,s), (i,o,p,q)] = x[n0+i, c0+c, o*sd+t*dd-pd, p*sh+r*dh-ph, q*sw+s*dw-pw] (0 outside)."""
    parallel_jobs(_im2col, cg * kt * kr * ks * nb_, x, cols, n0, c0, cg, kt, kr, ks, sd, sh, sw, dd, dh, dw,
                  pd, ph, pw, o_, p_, q_)


@nb.njit(**JIT)
def _col2im(j0, j1, cols, dx, n0, c0, cg, kt, kr, ks, sd, sh, sw, dd, dh, dw, pd, ph, pw, o_, p_, q_):
    d_, h_, w_ = dx.shape[2], dx.shape[3], dx.shape[4]
    opq = o_ * p_ * q_
    for job in range(j0, j1):
        i = job // cg
        c = job % cg
        base = i * opq
        for t in range(kt):
            for r in range(kr):
                for s in range(ks):
                    row = ((c * kt + t) * kr + r) * ks + s
                    off = s * dw - pw
                    q_lo = 0 if off >= 0 else min((-off + sw - 1) // sw, q_)
                    q_hi = min((w_ - 1 - off) // sw + 1, q_) if w_ - 1 - off >= 0 else 0
                    for o in range(o_):
                        z = o * sd + t * dd - pd
                        if z < 0 or z >= d_:
                            continue
                        for p in range(p_):
                            h = p * sh + r * dh - ph
                            if h < 0 or h >= h_:
                                continue
                            b = base + (o * p_ + p) * q_
                            for q in range(q_lo, q_hi):
                                dx[n0 + i, c0 + c, z, h, q * sw + off] += cols[row, b + q]


def col2im(cols, dx, n0, nb_, c0, cg, kt, kr, ks, sd, sh, sw, dd, dh, dw, pd, ph, pw, o_, p_, q_):
    """The adjoint of im2col: dx[n0+i, c0+c, ...] += every column entry that was read from there."""
    parallel_jobs(_col2im, nb_ * cg, cols, dx, n0, c0, cg, kt, kr, ks, sd, sh, sw, dd, dh, dw, pd, ph, pw,
                  o_, p_, q_)


@nb.njit(fastmath=FMA, **JIT)
def _direct_fwd(j0, j1, xp, w, y, sd, sh, sw, dd, dh, dw, groups):
    n_, k_, o_, p_, q_ = y.shape
    cg, kt, kr, ks = w.shape[1], w.shape[2], w.shape[3], w.shape[4]
    kg = k_ // groups
    nkb = (kg + KB - 1) // KB
    for job in range(j0, j1):
        p = job % p_
        rest = job // p_
        o = rest % o_
        rest //= o_
        kb = rest % nkb
        rest //= nkb
        g = rest % groups
        n = rest // groups
        k0 = g * kg + kb * KB
        kn = min(KB, g * kg + kg - k0)
        if kn == KB:
            y0 = y[n, k0, o, p]
            y1 = y[n, k0 + 1, o, p]
            y2 = y[n, k0 + 2, o, p]
            y3 = y[n, k0 + 3, o, p]
            for q in range(q_):
                y0[q] = 0
                y1[q] = 0
                y2[q] = 0
                y3[q] = 0
            for c in range(cg):
                ci = g * cg + c
                for t in range(kt):
                    for r in range(kr):
                        xr = xp[n, ci, o * sd + t * dd, p * sh + r * dh]
                        for s in range(ks):
                            w0 = w[k0, c, t, r, s]
                            w1 = w[k0 + 1, c, t, r, s]
                            w2 = w[k0 + 2, c, t, r, s]
                            w3 = w[k0 + 3, c, t, r, s]
                            off = s * dw
                            if sw == 1:
                                for q in range(q_):
                                    xv = xr[off + q]
                                    y0[q] += w0 * xv
                                    y1[q] += w1 * xv
                                    y2[q] += w2 * xv
                                    y3[q] += w3 * xv
                            else:
                                for q in range(q_):
                                    xv = xr[off + q * sw]
                                    y0[q] += w0 * xv
                                    y1[q] += w1 * xv
                                    y2[q] += w2 * xv
                                    y3[q] += w3 * xv
        else:
            for kk in range(kn):
                k = k0 + kk
                yr = y[n, k, o, p]
                for q in range(q_):
                    yr[q] = 0
                for c in range(cg):
                    ci = g * cg + c
                    for t in range(kt):
                        for r in range(kr):
                            xr = xp[n, ci, o * sd + t * dd, p * sh + r * dh]
                            for s in range(ks):
                                wv = w[k, c, t, r, s]
                                off = s * dw
                                for q in range(q_):
                                    yr[q] += wv * xr[off + q * sw]


def direct_fwd(xp, w, y, sd, sh, sw, dd, dh, dw, groups):
    """y[n,k,o,p,:] = sum_{c,t,r,s} w[k,c,t,r,s] xp[n,g*Cg+c, o*sd+t*dd, p*sh+r*dh, s*dw + q*sw] (eq. 9.8).

    Jobs: (image, group, block of KB output channels, output row); per row the KB accumulator
    rows stay in L1 and the innermost loop runs along the row.
    """
    k_, o_, p_ = y.shape[1], y.shape[2], y.shape[3]
    kg = k_ // groups
    nkb = (kg + KB - 1) // KB
    parallel_jobs(_direct_fwd, y.shape[0] * groups * nkb * o_ * p_, xp, w, y, sd, sh, sw, dd, dh, dw, groups)


@nb.njit(fastmath=FMA, **JIT)
def _direct_bwd_data(j0, j1, dy, w, dxp, sd, sh, sw, dd, dh, dw, groups):
    n_, k_, o_, p_, q_ = dy.shape
    c_ = dxp.shape[1]
    cg, kt, kr, ks = w.shape[1], w.shape[2], w.shape[3], w.shape[4]
    kg = k_ // groups
    for job in range(j0, j1):
        n = job // c_
        ci = job % c_
        g = ci // cg
        c = ci % cg
        for kk in range(kg):
            k = g * kg + kk
            for o in range(o_):
                for t in range(kt):
                    for p in range(p_):
                        for r in range(kr):
                            dst = dxp[n, ci, o * sd + t * dd, p * sh + r * dh]
                            for s in range(ks):
                                wv = w[k, c, t, r, s]
                                off = s * dw
                                for q in range(q_):
                                    dst[off + q * sw] += wv * dy[n, k, o, p, q]


def direct_bwd_data(dy, w, dxp, sd, sh, sw, dd, dh, dw, groups):
    """dxp[n,c, o*sd+t*dd, p*sh+r*dh, q*sw+s*dw] += w[k,c,t,r,s] dy[n,k,o,p,q] (eq. 9.13; dxp zeroed).

    Jobs: (image, input channel); each owns its slice of dxp, so no races.
    """
    parallel_jobs(_direct_bwd_data, dxp.shape[0] * dxp.shape[1], dy, w, dxp, sd, sh, sw, dd, dh, dw, groups)


@nb.njit(fastmath=REDUCE, **JIT)
def _direct_bwd_weight(j0, j1, xp, dy, dwt, sd, sh, sw, dd, dh, dw, groups):
    n_, k_, o_, p_, q_ = dy.shape
    cg, kt, kr, ks = dwt.shape[1], dwt.shape[2], dwt.shape[3], dwt.shape[4]
    kg = k_ // groups
    for job in range(j0, j1):
        k = job // cg
        c = job % cg
        ci = (k // kg) * cg + c
        for t in range(kt):
            for r in range(kr):
                for s in range(ks):
                    dwt[k, c, t, r, s] = 0
        for n in range(n_):
            for o in range(o_):
                for p in range(p_):
                    for t in range(kt):
                        for r in range(kr):
                            xr = xp[n, ci, o * sd + t * dd, p * sh + r * dh]
                            for s in range(ks):
                                off = s * dw
                                a = dwt[k, c, t, r, s]
                                for q in range(q_):
                                    a += dy[n, k, o, p, q] * xr[off + q * sw]
                                dwt[k, c, t, r, s] = a


def direct_bwd_weight(xp, dy, dwt, sd, sh, sw, dd, dh, dw, groups):
    """dwt[k,c,t,r,s] = sum_{n,o,p,q} dy[n,k,o,p,q] xp[n,g*Cg+c, o*sd+t*dd, p*sh+r*dh, q*sw+s*dw] (eq. 9.11).

    Jobs: (output channel, input channel) pairs, each a set of dot products along output rows.
    """
    parallel_jobs(_direct_bwd_weight, dwt.shape[0] * dwt.shape[1], xp, dy, dwt, sd, sh, sw, dd, dh, dw,
                  groups)


@nb.njit(**JIT)
def _nhwc_pad(j0, j1, x, xt, pt, pl, c0):
    h_, w_ = x.shape[2], x.shape[3]
    hp, wp, cg = xt.shape[1], xt.shape[2], xt.shape[3]
    for job in range(j0, j1):
        n = job // hp
        h = job % hp
        sh = h - pt
        for wv in range(wp):
            sw_ = wv - pl
            if sh < 0 or sh >= h_ or sw_ < 0 or sw_ >= w_:
                for c in range(cg):
                    xt[n, h, wv, c] = 0
            else:
                for c in range(cg):
                    xt[n, h, wv, c] = x[n, c0 + c, sh, sw_]


def nhwc_pad(x, xt, pt, pl, c0):
    """xt[n, h, w, c] = x[n, c0+c, h-pt, w-pl] (zero outside): NCHW -> padded NHWC for Winograd."""
    parallel_jobs(_nhwc_pad, xt.shape[0] * xt.shape[1], x, xt, pt, pl, c0)


@nb.njit(**JIT)
def _wino_weight(j0, j1, w, u, k0, gm):
    alpha = gm.shape[0]
    cg = u.shape[1]
    tmp = np.empty((alpha, 3), dtype=np.float64)
    for k in range(j0, j1):
        for c in range(cg):
            for a in range(alpha):
                for j in range(3):
                    acc = 0.0
                    for i in range(3):
                        acc += gm[a, i] * w[k0 + k, c, i, j]
                    tmp[a, j] = acc
            for a in range(alpha):
                for b in range(alpha):
                    acc = 0.0
                    for j in range(3):
                        acc += tmp[a, j] * gm[b, j]
                    u[a * alpha + b, c, k] = acc


def wino_weight(w, u, k0, gm):
    """u[a*alpha+b, c, k] = (G w[k0+k, c] G^T)[a, b]: the kernel transform of F(m x m, 3x3)."""
    parallel_jobs(_wino_weight, u.shape[2], w, u, k0, gm)


@nb.njit(fastmath=FMA, **JIT)
def _wino_in(j0, j1, xt, v, row0, th, tw, m, bt):
    alpha = bt.shape[0]
    cg = xt.shape[3]
    tmp = np.empty((alpha, alpha, cg), dtype=v.dtype)
    for rr in range(j0, j1):
        gr = row0 + rr
        n = gr // th
        h0 = (gr % th) * m
        for tx in range(tw):
            w0 = tx * m
            t = rr * tw + tx
            for a in range(alpha):
                for j in range(alpha):
                    for c in range(cg):
                        tmp[a, j, c] = 0
                    for i in range(alpha):
                        bv = bt[a, i]
                        if bv != 0:
                            for c in range(cg):
                                tmp[a, j, c] += bv * xt[n, h0 + i, w0 + j, c]
            for a in range(alpha):
                for b in range(alpha):
                    dst = v[a * alpha + b, t]
                    for c in range(cg):
                        dst[c] = 0
                    for j in range(alpha):
                        bv = bt[b, j]
                        if bv != 0:
                            for c in range(cg):
                                dst[c] += bv * tmp[a, j, c]


def wino_in(xt, v, row0, nrows, th, tw, m, bt):
    """v[a*alpha+b, t, :] = (B^T d_t B)[a, b] for the input tiles d_t of tile rows row0..row0+nrows.

    xt: padded NHWC input; a tile row is (image, ty) = divmod(row, th); the channels are the
    innermost (contiguous) axis, so both transform stages vectorize.
    """
    parallel_jobs(_wino_in, nrows, xt, v, row0, th, tw, m, bt)


@nb.njit(fastmath=FMA, **JIT)
def _wino_out(j0, j1, mm, y, row0, th, tw, m, at, k0):
    alpha = at.shape[1]
    kg = mm.shape[2]
    p_, q_ = y.shape[2], y.shape[3]
    tmp = np.empty((m, alpha, kg), dtype=y.dtype)
    res = np.empty((m, m, kg), dtype=y.dtype)
    for rr in range(j0, j1):
        gr = row0 + rr
        n = gr // th
        h0 = (gr % th) * m
        for tx in range(tw):
            w0 = tx * m
            t = rr * tw + tx
            for i in range(m):
                for b in range(alpha):
                    for k in range(kg):
                        tmp[i, b, k] = 0
                    for a in range(alpha):
                        av = at[i, a]
                        if av != 0:
                            for k in range(kg):
                                tmp[i, b, k] += av * mm[a * alpha + b, t, k]
            for i in range(m):
                for j in range(m):
                    for k in range(kg):
                        res[i, j, k] = 0
                    for b in range(alpha):
                        av = at[j, b]
                        if av != 0:
                            for k in range(kg):
                                res[i, j, k] += av * tmp[i, b, k]
            ni = min(m, p_ - h0)
            nj = min(m, q_ - w0)
            for k in range(kg):
                for i in range(ni):
                    for j in range(nj):
                        y[n, k0 + k, h0 + i, w0 + j] = res[i, j, k]


def wino_out(mm, y, row0, nrows, th, tw, m, at, k0):
    """y[n, k0+k, ty*m+i, tx*m+j] = (A^T M_t A)[i, j] (cropped at the borders): output transform."""
    parallel_jobs(_wino_out, nrows, mm, y, row0, th, tw, m, at, k0)


@nb.njit(fastmath=REDUCE, **JIT)
def _cgemm(j0, j1, a, b, out):
    m_, k_ = a.shape[1], a.shape[2]
    n_ = b.shape[2]
    for f in range(j0, j1):
        for i in range(m_):
            for l in range(n_):
                out[f, i, l] = 0
            for j in range(k_):
                av = a[f, i, j]
                for l in range(n_):
                    out[f, i, l] += av * b[f, j, l]


def cgemm(a, b, out):
    """out[f] = a[f] @ b[f] for complex (F, m, k) x (F, k, n): the per-frequency channel product."""
    parallel_jobs(_cgemm, a.shape[0], a, b, out)


@nb.njit(fastmath=FMA, **JIT)
def _separable(j0, j1, xp, col, row, y, sh, sw, dh, dw, groups):
    k_, p_, q_ = y.shape[1], y.shape[2], y.shape[3]
    cg, kr, ks = col.shape[1], col.shape[2], row.shape[2]
    kg = k_ // groups
    hp = xp.shape[2]
    tmp = np.empty((hp, q_), dtype=y.dtype)
    for job in range(j0, j1):
        n = job // k_
        k = job % k_
        ci0 = (k // kg) * cg
        for p in range(p_):
            for q in range(q_):
                y[n, k, p, q] = 0
        for c in range(cg):
            for h in range(hp):
                for q in range(q_):
                    tmp[h, q] = 0
                for s in range(ks):
                    bv = row[k, c, s]
                    off = s * dw
                    for q in range(q_):
                        tmp[h, q] += bv * xp[n, ci0 + c, h, off + q * sw]
            for p in range(p_):
                for r in range(kr):
                    av = col[k, c, r]
                    hr = p * sh + r * dh
                    for q in range(q_):
                        y[n, k, p, q] += av * tmp[hr, q]


def separable(xp, col, row, y, sh, sw, dh, dw, groups):
    """y[n,k,p,q] = sum_c sum_r col[k,c,r] sum_s row[k,c,s] xp[n,c',p*sh+r*dh, q*sw+s*dw] (rank-1 kernels).

    A row pass (length S) over every padded input row into a buffer, then a column pass (length R).
    """
    parallel_jobs(_separable, y.shape[0] * y.shape[1], xp, col, row, y, sh, sw, dh, dw, groups)


PRIMITIVES = SimpleNamespace(pad=pad, im2col=im2col, col2im=col2im, direct_fwd=direct_fwd,
                             direct_bwd_data=direct_bwd_data, direct_bwd_weight=direct_bwd_weight,
                             nhwc_pad=nhwc_pad, wino_weight=wino_weight, wino_in=wino_in, wino_out=wino_out,
                             cgemm=cgemm, separable=separable)

register_family("numba", PRIMITIVES, "Numba @njit(nogil) on a thread pool")
