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

Inner loops are written over 1-D slices with ``range(m)`` from zero: with that form LLVM knows
the indices are non-negative (no wrap-around selects) and that only two arrays meet, and it
vectorizes them; indexing the N-d arrays directly in the inner loop did not vectorize (measured:
2 GFLOP/s against 20 GFLOP/s per core for the direct forward).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numba as nb
import numpy as np
from dlbench.kernels.numba_cpu.conv_drivers import register_family

JC = 1024   # wide-output elements per job of the direct kernels (an L1-sized chunk per channel)
FMA = {"contract"}
REDUCE = {"contract", "reassoc", "nsz"}
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_pid = 0


SERIAL_WORK = 1 << 17   # below about this many element operations a call stays on the calling thread


def parallel_jobs(fn, njobs, *args, work=None):
    """Run fn(j0, j1, *args) over the jobs [0, njobs) on numba.get_num_threads() threads.

    The range is cut into about four chunks per thread, taken in turn by the pool's threads and
    the calling thread (dynamic scheduling evens out jobs of unequal cost). ``work`` (element
    operations, rough) below SERIAL_WORK runs serially: waking a thread costs more than that.
    """
    global _pool, _pool_size, _pool_pid
    nt = min(nb.get_num_threads(), njobs)
    if work is not None and work < SERIAL_WORK:
        nt = 1
    if nt <= 1:
        if njobs > 0:
            fn(0, njobs, *args)
        return
    if _pool is None or _pool_size < nt - 1 or _pool_pid != os.getpid():   # (re)create, also after fork
        _pool = ThreadPoolExecutor(max_workers=nt - 1, thread_name_prefix="dlbench-conv")
        _pool_size = nt - 1
        _pool_pid = os.getpid()
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
    c_, d_, h_, w_ = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    dp, hp, wp = xp.shape[2], xp.shape[3], xp.shape[4]
    for job in range(j0, j1):
        n = job // c_
        c = job % c_
        for z in range(dp):
            for h in range(hp):
                dst = xp[n, c, z, h]
                sz = z - pd
                sh = h - ph
                if sz < 0 or sz >= d_ or sh < 0 or sh >= h_:
                    for q in range(wp):
                        dst[q] = 0
                else:
                    src = x[n, c, sz, sh]
                    for q in range(pw):
                        dst[q] = 0
                    mid = dst[pw:pw + w_]
                    for q in range(w_):
                        mid[q] = src[q]
                    for q in range(pw + w_, wp):
                        dst[q] = 0


def pad(x, xp, pd, ph, pw):
    """xp[n, c] = x[n, c] placed at offset (pd, ph, pw), zeros around (section 9.5)."""
    parallel_jobs(_pad, x.shape[0] * x.shape[1], x, xp, pd, ph, pw, work=xp.size)


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
        m = q_hi - q_lo
        start = q_lo * sw + off
        line = cols[row]
        base = i * opq
        for o in range(o_):
            z = o * sd + t * dd - pd
            for p in range(p_):
                h = p * sh + r * dh - ph
                b = base + (o * p_ + p) * q_
                dst = line[b:b + q_]
                if z < 0 or z >= d_ or h < 0 or h >= h_:
                    for q in range(q_):
                        dst[q] = 0
                else:
                    for q in range(q_lo):
                        dst[q] = 0
                    mid = dst[q_lo:q_hi]
                    src = x[n0 + i, c0 + c, z, h]
                    if sw == 1:
                        seg = src[start:start + m]
                        for q in range(m):
                            mid[q] = seg[q]
                    else:
                        for q in range(m):
                            mid[q] = src[start + q * sw]
                    for q in range(q_hi, q_):
                        dst[q] = 0


def im2col(x, cols, n0, nb_, c0, cg, kt, kr, ks, sd, sh, sw, dd, dh, dw, pd, ph, pw, o_, p_, q_):
    """cols[(c,t,r,s), (i,o,p,q)] = x[n0+i, c0+c, o*sd+t*dd-pd, p*sh+r*dh-ph, q*sw+s*dw-pw] (0 outside)."""
    parallel_jobs(_im2col, cg * kt * kr * ks * nb_, x, cols, n0, c0, cg, kt, kr, ks, sd, sh, sw, dd, dh, dw,
                  pd, ph, pw, o_, p_, q_, work=cg * kt * kr * ks * nb_ * o_ * p_ * q_)


@nb.njit(fastmath=FMA, **JIT)
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
                    line = cols[((c * kt + t) * kr + r) * ks + s]
                    off = s * dw - pw
                    q_lo = 0 if off >= 0 else min((-off + sw - 1) // sw, q_)
                    q_hi = min((w_ - 1 - off) // sw + 1, q_) if w_ - 1 - off >= 0 else 0
                    m = q_hi - q_lo
                    if m <= 0:
                        continue
                    start = q_lo * sw + off
                    for o in range(o_):
                        z = o * sd + t * dd - pd
                        if z < 0 or z >= d_:
                            continue
                        for p in range(p_):
                            h = p * sh + r * dh - ph
                            if h < 0 or h >= h_:
                                continue
                            b = base + (o * p_ + p) * q_ + q_lo
                            src = line[b:b + m]
                            row = dx[n0 + i, c0 + c, z, h]
                            if sw == 1:
                                dst = row[start:start + m]
                                for q in range(m):
                                    dst[q] += src[q]
                            else:
                                for q in range(m):
                                    row[start + q * sw] += src[q]


def col2im(cols, dx, n0, nb_, c0, cg, kt, kr, ks, sd, sh, sw, dd, dh, dw, pd, ph, pw, o_, p_, q_):
    """The adjoint of im2col: dx[n0+i, c0+c, ...] += every column entry that was read from there."""
    parallel_jobs(_col2im, nb_ * cg, cols, dx, n0, c0, cg, kt, kr, ks, sd, sh, sw, dd, dh, dw, pd, ph, pw,
                  o_, p_, q_, work=cg * kt * kr * ks * nb_ * o_ * p_ * q_)


@nb.njit(**JIT)
def _phase_split(j0, j1, x, xs, pd, ph, pw, sd, sh, sw, dq, hq, wq):
    c_, d_, h_, w_ = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    plane = xs.shape[3]
    for job in range(j0, j1):
        n = job // c_
        c = job % c_
        for a in range(sd):
            for b in range(sh):
                for e in range(sw):
                    pl = xs[n, c, (a * sh + b) * sw + e]
                    # columns l with 0 <= l*sw + e - pw < W
                    l_lo = min(max(0, (pw - e + sw - 1) // sw), wq)
                    l_hi = max(min(wq, (w_ - 1 + pw - e) // sw + 1), l_lo)
                    for i in range(dq):
                        z = i * sd + a - pd
                        for jh in range(hq):
                            h = jh * sh + b - ph
                            dst = pl[(i * hq + jh) * wq:(i * hq + jh + 1) * wq]
                            if z < 0 or z >= d_ or h < 0 or h >= h_:
                                for l in range(wq):
                                    dst[l] = 0
                            else:
                                src = x[n, c, z, h]
                                for l in range(l_lo):
                                    dst[l] = 0
                                mid = dst[l_lo:l_hi]
                                start = l_lo * sw + e - pw
                                for l in range(l_hi - l_lo):
                                    mid[l] = src[start + l * sw]
                                for l in range(l_hi, wq):
                                    dst[l] = 0
                    tail = pl[dq * hq * wq:plane]
                    for l in range(plane - dq * hq * wq):
                        tail[l] = 0


def phase_split(x, xs, pd, ph, pw, sd, sh, sw, dq, hq, wq):
    """xs[n, c, (a,b,e), (i*hq + j)*wq + l] = xpad[n, c, i*sd + a, j*sh + b, l*sw + e] (zeros outside,
    zeros after the block): the padded input cut into its stride phases (see conv_drivers)."""
    parallel_jobs(_phase_split, x.shape[0] * x.shape[1], x, xs, pd, ph, pw, sd, sh, sw, dq, hq, wq,
                  work=xs.size)


@nb.njit(**JIT)
def _phase_merge(j0, j1, xs, x, pd, ph, pw, sd, sh, sw, dq, hq, wq):
    c_, d_, h_, w_ = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    for job in range(j0, j1):
        n = job // c_
        c = job % c_
        for z in range(d_):
            za = z + pd
            for h in range(h_):
                ha = h + ph
                dst = x[n, c, z, h]
                for e in range(sw):
                    pl = xs[n, c, ((za % sd) * sh + ha % sh) * sw + e]
                    row = ((za // sd) * hq + ha // sh) * wq
                    # w with (w + pw) % sw == e: w = l*sw + e - pw
                    l_lo = max(0, (pw - e + sw - 1) // sw)
                    for l in range(l_lo, wq):
                        wv = l * sw + e - pw
                        if wv >= w_:
                            break
                        dst[wv] = pl[row + l]


def phase_merge(xs, x, pd, ph, pw, sd, sh, sw, dq, hq, wq):
    """The inverse of phase_split (cropping the padding): x[n,c,z,h,w] = xs[..phase.., ..position..]."""
    parallel_jobs(_phase_merge, x.shape[0] * x.shape[1], xs, x, pd, ph, pw, sd, sh, sw, dq, hq, wq,
                  work=x.size)


@nb.njit(fastmath=FMA, **JIT)
def _direct_fwd(j0, j1, xs, wpk, yw, tph, tsh, ostride, kg):
    o_, pw_ = yw.shape[2], yw.shape[3]
    groups, nkb, cg, taps, kb_ = wpk.shape
    nch = (pw_ + JC - 1) // JC
    for job in range(j0, j1):
        ch = job % nch
        rest = job // nch
        o = rest % o_
        rest //= o_
        g = rest % groups
        n = rest // groups
        jlo = ch * JC
        m = min(pw_, jlo + JC) - jlo
        for kb in range(nkb):
            k0 = g * kg + kb * kb_
            kn = min(kb_, kg - kb * kb_)
            for kk in range(kn):
                dst = yw[n, k0 + kk, o, jlo:jlo + m]
                for j in range(m):
                    dst[j] = 0
            for c in range(cg):
                xc = xs[n, g * cg + c]
                for tap in range(taps):
                    b = o * ostride + tsh[tap] + jlo
                    src = xc[tph[tap], b:b + m]
                    for kk in range(kn):
                        wv = wpk[g, kb, c, tap, kk]
                        dst = yw[n, k0 + kk, o, jlo:jlo + m]
                        for j in range(m):
                            dst[j] += wv * src[j]


def direct_fwd(xs, wpk, yw, tph, tsh, ostride, kg):
    """yw[n, k, o, j] = sum_{c, tap} w[k, c, tap] xs[n, c, phase(tap), o*ostride + shift(tap) + j] (eq. 9.8).

    xs: phase planes of the padded input; wpk: packed weights (groups, K-blocks, Cg, taps, KB);
    yw: the output on the wide grid. Jobs: (image, group, output depth, chunk of JC positions);
    the blocks of output channels run on a chunk in turn while its input stays in cache.
    """
    groups = wpk.shape[0]
    n_, o_, pw_ = yw.shape[0], yw.shape[2], yw.shape[3]
    parallel_jobs(_direct_fwd, n_ * groups * o_ * ((pw_ + JC - 1) // JC), xs, wpk, yw, tph, tsh, ostride, kg,
                  work=yw.size * wpk.shape[2] * wpk.shape[3])


@nb.njit(fastmath=FMA, **JIT)
def _direct_bwd_data(j0, j1, dyw, w3, dxs, tph, tsh, ostride, groups):
    k_, o_, pw_ = dyw.shape[1], dyw.shape[2], dyw.shape[3]
    c_, nph, plane = dxs.shape[1], dxs.shape[2], dxs.shape[3]
    cg, taps = w3.shape[1], w3.shape[2]
    kg = k_ // groups
    for job in range(j0, j1):
        n = job // c_
        ci = job % c_
        g = ci // cg
        c = ci % cg
        for a in range(nph):
            pl = dxs[n, ci, a]
            for j in range(plane):
                pl[j] = 0
        for kk in range(kg):
            k = g * kg + kk
            for tap in range(taps):
                wv = w3[k, c, tap]
                pl = dxs[n, ci, tph[tap]]
                for o in range(o_):
                    b = o * ostride + tsh[tap]
                    dst = pl[b:b + pw_]
                    src = dyw[n, k, o]
                    for j in range(pw_):
                        dst[j] += wv * src[j]


def direct_bwd_data(dyw, w3, dxs, tph, tsh, ostride, groups):
    """dxs[n, c, phase(tap), o*ostride + shift(tap) + j] += w[k, c, tap] dyw[n, k, o, j] (eq. 9.13).

    The adjoint of direct_fwd; dyw is dy on the wide grid with zeros in the extra columns; dxs
    (zeroed here) collects the phase planes of the padded input gradient. Jobs: (image, channel).
    """
    parallel_jobs(_direct_bwd_data, dxs.shape[0] * dxs.shape[1], dyw, w3, dxs, tph, tsh, ostride, groups,
                  work=dyw.size * w3.shape[1] * w3.shape[2])


@nb.njit(fastmath=REDUCE, **JIT)
def _direct_bwd_weight(j0, j1, xs, dyw, dw3, tph, tsh, ostride, groups):
    n_, k_, o_, pw_ = dyw.shape
    cg, taps = dw3.shape[1], dw3.shape[2]
    kg = k_ // groups
    for job in range(j0, j1):
        k = job // cg
        c = job % cg
        ci = (k // kg) * cg + c
        for tap in range(taps):
            acc = 0.0
            for n in range(n_):
                pl = xs[n, ci, tph[tap]]
                for o in range(o_):
                    b = o * ostride + tsh[tap]
                    src = pl[b:b + pw_]
                    d = dyw[n, k, o]
                    a = dw3.dtype.type(0)
                    for j in range(pw_):
                        a += d[j] * src[j]
                    acc += a
            dw3[k, c, tap] = acc


def direct_bwd_weight(xs, dyw, dw3, tph, tsh, ostride, groups):
    """dw3[k, c, tap] = sum_{n, o, j} dyw[n, k, o, j] xs[n, c', phase(tap), o*ostride + shift(tap) + j]
    (eq. 9.11).

    Jobs: (output channel, input channel); long unit-stride dot products (zeros in dyw's extra
    wide columns keep the garbage columns out of the sum).
    """
    parallel_jobs(_direct_bwd_weight, dw3.shape[0] * dw3.shape[1], xs, dyw, dw3, tph, tsh, ostride, groups,
                  work=dyw.size * dw3.shape[1] * dw3.shape[2])


@nb.njit(**JIT)
def _nhwc_pad(j0, j1, x, xt, pt, pl, c0):
    h_, w_ = x.shape[2], x.shape[3]
    hp, wp, cg = xt.shape[1], xt.shape[2], xt.shape[3]
    for job in range(j0, j1):
        n = job // hp
        h = job % hp
        sh = h - pt
        plane = xt[n, h]
        for wv in range(wp):
            dst = plane[wv]
            for c in range(cg):
                dst[c] = 0
        if sh < 0 or sh >= h_:
            continue
        for c in range(cg):
            src = x[n, c0 + c, sh]
            for wv in range(w_):
                plane[wv + pl, c] = src[wv]


def nhwc_pad(x, xt, pt, pl, c0):
    """xt[n, h, w, c] = x[n, c0+c, h-pt, w-pl] (zero outside): NCHW -> padded NHWC for Winograd."""
    parallel_jobs(_nhwc_pad, xt.shape[0] * xt.shape[1], x, xt, pt, pl, c0, work=xt.size)


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
    parallel_jobs(_wino_weight, u.shape[2], w, u, k0, gm, work=u.size * 6)


@nb.njit(fastmath=FMA, **JIT)
def _wino_in(j0, j1, xt, v, row0, th, tw, m, bt):
    alpha = bt.shape[0]
    cg = xt.shape[3]
    tmp = np.empty((alpha * alpha, cg), dtype=v.dtype)
    for rr in range(j0, j1):
        gr = row0 + rr
        n = gr // th
        h0 = (gr % th) * m
        for tx in range(tw):
            w0 = tx * m
            t = rr * tw + tx
            for a in range(alpha):
                for j in range(alpha):
                    acc = tmp[a * alpha + j]
                    for c in range(cg):
                        acc[c] = 0
                    for i in range(alpha):
                        bv = bt[a, i]
                        if bv != 0:
                            src = xt[n, h0 + i, w0 + j]
                            for c in range(cg):
                                acc[c] += bv * src[c]
            for a in range(alpha):
                for b in range(alpha):
                    dst = v[a * alpha + b, t]
                    for c in range(cg):
                        dst[c] = 0
                    for j in range(alpha):
                        bv = bt[b, j]
                        if bv != 0:
                            src = tmp[a * alpha + j]
                            for c in range(cg):
                                dst[c] += bv * src[c]


def wino_in(xt, v, row0, nrows, th, tw, m, bt):
    """v[a*alpha+b, t, :] = (B^T d_t B)[a, b] for the input tiles d_t of tile rows row0..row0+nrows.

    xt: padded NHWC input; a tile row is (image, ty) = divmod(row, th); the channels are the
    innermost (contiguous) axis, so both transform stages vectorize.
    """
    parallel_jobs(_wino_in, nrows, xt, v, row0, th, tw, m, bt, work=v.size * 8)


@nb.njit(fastmath=FMA, **JIT)
def _wino_out(j0, j1, mm, y, row0, th, tw, m, at, k0):
    alpha = at.shape[1]
    kg = mm.shape[2]
    p_, q_ = y.shape[2], y.shape[3]
    tmp = np.empty((m * alpha, kg), dtype=y.dtype)
    res = np.empty((m * m, kg), dtype=y.dtype)
    for rr in range(j0, j1):
        gr = row0 + rr
        n = gr // th
        h0 = (gr % th) * m
        for tx in range(tw):
            w0 = tx * m
            t = rr * tw + tx
            for i in range(m):
                for b in range(alpha):
                    acc = tmp[i * alpha + b]
                    for k in range(kg):
                        acc[k] = 0
                    for a in range(alpha):
                        av = at[i, a]
                        if av != 0:
                            src = mm[a * alpha + b, t]
                            for k in range(kg):
                                acc[k] += av * src[k]
            for i in range(m):
                for j in range(m):
                    acc = res[i * m + j]
                    for k in range(kg):
                        acc[k] = 0
                    for b in range(alpha):
                        av = at[j, b]
                        if av != 0:
                            src = tmp[i * alpha + b]
                            for k in range(kg):
                                acc[k] += av * src[k]
            ni = min(m, p_ - h0)
            nj = min(m, q_ - w0)
            for k in range(kg):
                for i in range(ni):
                    row = y[n, k0 + k, h0 + i]
                    for j in range(nj):
                        row[w0 + j] = res[i * m + j, k]


def wino_out(mm, y, row0, nrows, th, tw, m, at, k0):
    """y[n, k0+k, ty*m+i, tx*m+j] = (A^T M_t A)[i, j] (cropped at the borders): output transform."""
    parallel_jobs(_wino_out, nrows, mm, y, row0, th, tw, m, at, k0, work=mm.size * 8)


FC = 64   # frequencies per job of the spectral product


@nb.njit(fastmath=REDUCE, **JIT)
def _cmul(j0, j1, a, b, out, conj_a, conj_b):
    p_, r_, f_ = a.shape
    q_ = b.shape[1]
    for ch in range(j0, j1):
        lo = ch * FC
        m = min(f_, lo + FC) - lo
        for q in range(q_):
            for p in range(p_):
                o = out[p, q, lo:lo + m]
                for f in range(m):
                    o[f] = 0
                for r in range(r_):
                    av = a[p, r, lo:lo + m]
                    bv = b[r, q, lo:lo + m]
                    if conj_b and not conj_a:
                        for f in range(m):
                            o[f] += av[f] * bv[f].conjugate()
                    elif conj_a and not conj_b:
                        for f in range(m):
                            o[f] += av[f].conjugate() * bv[f]
                    elif conj_a and conj_b:
                        for f in range(m):
                            o[f] += (av[f] * bv[f]).conjugate()
                    else:
                        for f in range(m):
                            o[f] += av[f] * bv[f]


def cmul(a, b, out, conj_a=False, conj_b=False):
    """out[p, q, f] = sum_r op(a[p, r, f]) op(b[r, q, f]) for complex spectra (op: optional conjugate).

    The per-frequency channel product of the fft algorithm, frequency innermost (contiguous), so no
    spectrum is transposed. Jobs: chunks of FC frequencies; within a chunk b's block stays cached.
    """
    f_ = a.shape[2]
    parallel_jobs(_cmul, (f_ + FC - 1) // FC, a, b, out, conj_a, conj_b,
                  work=a.shape[0] * a.shape[1] * b.shape[1] * f_ * 4)


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
        out = y[n, k]
        for p in range(p_):
            orow = out[p]
            for q in range(q_):
                orow[q] = 0
        for c in range(cg):
            for h in range(hp):
                tr = tmp[h]
                xr = xp[n, ci0 + c, h]
                for q in range(q_):
                    tr[q] = 0
                for s in range(ks):
                    bv = row[k, c, s]
                    off = s * dw
                    if sw == 1:
                        seg = xr[off:off + q_]
                        for q in range(q_):
                            tr[q] += bv * seg[q]
                    else:
                        for q in range(q_):
                            tr[q] += bv * xr[off + q * sw]
            for p in range(p_):
                orow = out[p]
                for r in range(kr):
                    av = col[k, c, r]
                    tr = tmp[p * sh + r * dh]
                    for q in range(q_):
                        orow[q] += av * tr[q]


def separable(xp, col, row, y, sh, sw, dh, dw, groups):
    """y[n,k,p,q] = sum_c sum_r col[k,c,r] sum_s row[k,c,s] xp[n,c',p*sh+r*dh, q*sw+s*dw] (rank-1 kernels).

    A row pass (length S) over every padded input row into a buffer, then a column pass (length R).
    """
    parallel_jobs(_separable, y.shape[0] * y.shape[1], xp, col, row, y, sh, sw, dh, dw, groups,
                  work=y.size * col.shape[1] * (col.shape[2] + row.shape[2]))


PRIMITIVES = SimpleNamespace(pad=pad, im2col=im2col, col2im=col2im, phase_split=phase_split,
                             phase_merge=phase_merge, direct_fwd=direct_fwd, direct_bwd_data=direct_bwd_data,
                             direct_bwd_weight=direct_bwd_weight, nhwc_pad=nhwc_pad, wino_weight=wino_weight,
                             wino_in=wino_in, wino_out=wino_out, cmul=cmul, separable=separable)

register_family("numba", PRIMITIVES, "Numba @njit(nogil) on a thread pool")
