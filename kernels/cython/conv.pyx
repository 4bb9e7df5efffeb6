# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython + OpenMP primitives of the convolution family (backend ``cython``).

The same primitives, with the same signatures, as ``dlbench.kernels.numba_cpu.conv``: the
algorithms (direct, im2col, gemm1x1, fft, winograd, winograd_f2, separable) are the shared
drivers of ``dlbench.kernels.numba_cpu.conv_drivers``; ``conv_register.py`` registers them
with these primitives. Arrays are 5-D (N, C, D, H, W) so 1-D, 2-D and 3-D problems share one
compiled loop; every loop is a ``prange`` over independent jobs (no two jobs write the same
output element), compiled for float32 and float64 (fused type ``real``).
"""

from cython.parallel cimport parallel, prange
from libc.stdlib cimport free, malloc

ctypedef fused real:
    float
    double

DEF KB = 4


cdef inline Py_ssize_t _imin(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a < b else b


cdef inline Py_ssize_t _imax(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a > b else b


def pad(real[:, :, :, :, ::1] x, real[:, :, :, :, ::1] xp, Py_ssize_t pd, Py_ssize_t ph, Py_ssize_t pw):
    """xp[n, c] = x[n, c] placed at offset (pd, ph, pw), zeros around (section 9.5)."""
    cdef Py_ssize_t n_ = x.shape[0], c_ = x.shape[1], d_ = x.shape[2], h_ = x.shape[3], w_ = x.shape[4]
    cdef Py_ssize_t dp = xp.shape[2], hp = xp.shape[3], wp = xp.shape[4]
    cdef Py_ssize_t job, n, c, z, h, q, sz, sh
    cdef real* dst
    cdef real* src
    with nogil:
        for job in prange(n_ * c_, schedule="static"):
            n = job // c_
            c = job % c_
            for z in range(dp):
                for h in range(hp):
                    dst = &xp[n, c, z, h, 0]
                    sz = z - pd
                    sh = h - ph
                    if sz < 0 or sz >= d_ or sh < 0 or sh >= h_:
                        for q in range(wp):
                            dst[q] = 0
                    else:
                        src = &x[n, c, sz, sh, 0]
                        for q in range(pw):
                            dst[q] = 0
                        for q in range(w_):
                            dst[pw + q] = src[q]
                        for q in range(pw + w_, wp):
                            dst[q] = 0


def im2col(real[:, :, :, :, ::1] x, real[:, ::1] cols, Py_ssize_t n0, Py_ssize_t nb_, Py_ssize_t c0,
           Py_ssize_t cg, Py_ssize_t kt, Py_ssize_t kr, Py_ssize_t ks, Py_ssize_t sd, Py_ssize_t sh,
           Py_ssize_t sw, Py_ssize_t dd, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t pd, Py_ssize_t ph,
           Py_ssize_t pw, Py_ssize_t o_, Py_ssize_t p_, Py_ssize_t q_):
    """cols[(c,t,r,s), (i,o,p,q)] = x[n0+i, c0+c, o*sd+t*dd-pd, p*sh+r*dh-ph, q*sw+s*dw-pw] (0 outside)."""
    cdef Py_ssize_t d_ = x.shape[2], h_ = x.shape[3], w_ = x.shape[4]
    cdef Py_ssize_t rows = cg * kt * kr * ks, opq = o_ * p_ * q_
    cdef Py_ssize_t job, i, row, s, r, t, c, rest, off, q_lo, q_hi, base, o, p, z, h, b, q
    cdef real* dst
    cdef real* src
    with nogil:
        for job in prange(rows * nb_, schedule="dynamic"):
            i = job // rows
            row = job % rows
            s = row % ks
            rest = row // ks
            r = rest % kr
            rest = rest // kr
            t = rest % kt
            c = rest // kt
            off = s * dw - pw
            if off >= 0:
                q_lo = 0
            else:
                q_lo = _imin((-off + sw - 1) // sw, q_)
            if w_ - 1 - off >= 0:
                q_hi = _imin((w_ - 1 - off) // sw + 1, q_)
            else:
                q_hi = 0
            q_hi = _imax(q_hi, q_lo)
            base = i * opq
            for o in range(o_):
                z = o * sd + t * dd - pd
                for p in range(p_):
                    h = p * sh + r * dh - ph
                    dst = &cols[row, base + (o * p_ + p) * q_]
                    if z < 0 or z >= d_ or h < 0 or h >= h_:
                        for q in range(q_):
                            dst[q] = 0
                    else:
                        src = &x[n0 + i, c0 + c, z, h, 0]
                        for q in range(q_lo):
                            dst[q] = 0
                        if sw == 1:
                            for q in range(q_lo, q_hi):
                                dst[q] = src[q + off]
                        else:
                            for q in range(q_lo, q_hi):
                                dst[q] = src[q * sw + off]
                        for q in range(q_hi, q_):
                            dst[q] = 0


def col2im(real[:, ::1] cols, real[:, :, :, :, ::1] dx, Py_ssize_t n0, Py_ssize_t nb_, Py_ssize_t c0,
           Py_ssize_t cg, Py_ssize_t kt, Py_ssize_t kr, Py_ssize_t ks, Py_ssize_t sd, Py_ssize_t sh,
           Py_ssize_t sw, Py_ssize_t dd, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t pd, Py_ssize_t ph,
           Py_ssize_t pw, Py_ssize_t o_, Py_ssize_t p_, Py_ssize_t q_):
    """The adjoint of im2col: dx[n0+i, c0+c, ...] += every column entry that was read from there."""
    cdef Py_ssize_t d_ = dx.shape[2], h_ = dx.shape[3], w_ = dx.shape[4]
    cdef Py_ssize_t opq = o_ * p_ * q_
    cdef Py_ssize_t job, i, c, t, r, s, row, off, q_lo, q_hi, base, o, p, z, h, q
    cdef real* dst
    cdef real* src
    with nogil:
        for job in prange(nb_ * cg, schedule="dynamic"):
            i = job // cg
            c = job % cg
            base = i * opq
            for t in range(kt):
                for r in range(kr):
                    for s in range(ks):
                        row = ((c * kt + t) * kr + r) * ks + s
                        off = s * dw - pw
                        if off >= 0:
                            q_lo = 0
                        else:
                            q_lo = _imin((-off + sw - 1) // sw, q_)
                        if w_ - 1 - off >= 0:
                            q_hi = _imin((w_ - 1 - off) // sw + 1, q_)
                        else:
                            q_hi = 0
                        for o in range(o_):
                            z = o * sd + t * dd - pd
                            if z < 0 or z >= d_:
                                continue
                            for p in range(p_):
                                h = p * sh + r * dh - ph
                                if h < 0 or h >= h_:
                                    continue
                                src = &cols[row, base + (o * p_ + p) * q_]
                                dst = &dx[n0 + i, c0 + c, z, h, 0]
                                for q in range(q_lo, q_hi):
                                    dst[q * sw + off] += src[q]


def direct_fwd(real[:, :, :, :, ::1] xp, real[:, :, :, :, ::1] w, real[:, :, :, :, ::1] y,
               Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dd, Py_ssize_t dh, Py_ssize_t dw,
               Py_ssize_t groups):
    """y[n,k,o,p,:] = sum_{c,t,r,s} w[k,c,t,r,s] xp[n,g*Cg+c, o*sd+t*dd, p*sh+r*dh, s*dw + q*sw] (eq. 9.8).

    Jobs: (image, group, block of KB output channels, output row); the KB accumulator rows stay
    in L1 while the innermost loop runs along the row (contiguous at stride 1: vectorized).
    """
    cdef Py_ssize_t n_ = y.shape[0], k_ = y.shape[1], o_ = y.shape[2], p_ = y.shape[3], q_ = y.shape[4]
    cdef Py_ssize_t cg = w.shape[1], kt = w.shape[2], kr = w.shape[3], ks = w.shape[4]
    cdef Py_ssize_t kg = k_ // groups
    cdef Py_ssize_t nkb = (kg + KB - 1) // KB
    cdef Py_ssize_t job, p, o, kb, g, n, rest, k0, kn, kk, k, c, ci, t, r, s, q, off
    cdef real w0, w1, w2, w3, xv, wv
    cdef real* y0
    cdef real* y1
    cdef real* y2
    cdef real* y3
    cdef real* xr
    with nogil:
        for job in prange(n_ * groups * nkb * o_ * p_, schedule="dynamic"):
            p = job % p_
            rest = job // p_
            o = rest % o_
            rest = rest // o_
            kb = rest % nkb
            rest = rest // nkb
            g = rest % groups
            n = rest // groups
            k0 = g * kg + kb * KB
            kn = _imin(KB, g * kg + kg - k0)
            if kn == KB:
                y0 = &y[n, k0, o, p, 0]
                y1 = &y[n, k0 + 1, o, p, 0]
                y2 = &y[n, k0 + 2, o, p, 0]
                y3 = &y[n, k0 + 3, o, p, 0]
                for q in range(q_):
                    y0[q] = 0
                    y1[q] = 0
                    y2[q] = 0
                    y3[q] = 0
                for c in range(cg):
                    ci = g * cg + c
                    for t in range(kt):
                        for r in range(kr):
                            xr = &xp[n, ci, o * sd + t * dd, p * sh + r * dh, 0]
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
                    y0 = &y[n, k, o, p, 0]
                    for q in range(q_):
                        y0[q] = 0
                    for c in range(cg):
                        ci = g * cg + c
                        for t in range(kt):
                            for r in range(kr):
                                xr = &xp[n, ci, o * sd + t * dd, p * sh + r * dh, 0]
                                for s in range(ks):
                                    wv = w[k, c, t, r, s]
                                    off = s * dw
                                    for q in range(q_):
                                        y0[q] += wv * xr[off + q * sw]


def direct_bwd_data(real[:, :, :, :, ::1] dy, real[:, :, :, :, ::1] w, real[:, :, :, :, ::1] dxp,
                    Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dd, Py_ssize_t dh, Py_ssize_t dw,
                    Py_ssize_t groups):
    """dxp[n,c, o*sd+t*dd, p*sh+r*dh, q*sw+s*dw] += w[k,c,t,r,s] dy[n,k,o,p,q] (eq. 9.13; dxp zeroed).

    Jobs: (image, input channel); each owns its slice of dxp, so no races.
    """
    cdef Py_ssize_t n_ = dy.shape[0], k_ = dy.shape[1], o_ = dy.shape[2], p_ = dy.shape[3], q_ = dy.shape[4]
    cdef Py_ssize_t c_ = dxp.shape[1]
    cdef Py_ssize_t cg = w.shape[1], kt = w.shape[2], kr = w.shape[3], ks = w.shape[4]
    cdef Py_ssize_t kg = k_ // groups
    cdef Py_ssize_t job, n, ci, g, c, kk, k, o, t, p, r, s, q, off
    cdef real wv
    cdef real* dst
    cdef real* dyr
    with nogil:
        for job in prange(n_ * c_, schedule="dynamic"):
            n = job // c_
            ci = job % c_
            g = ci // cg
            c = ci % cg
            for kk in range(kg):
                k = g * kg + kk
                for o in range(o_):
                    for t in range(kt):
                        for p in range(p_):
                            dyr = &dy[n, k, o, p, 0]
                            for r in range(kr):
                                dst = &dxp[n, ci, o * sd + t * dd, p * sh + r * dh, 0]
                                for s in range(ks):
                                    wv = w[k, c, t, r, s]
                                    off = s * dw
                                    for q in range(q_):
                                        dst[off + q * sw] += wv * dyr[q]


def direct_bwd_weight(real[:, :, :, :, ::1] xp, real[:, :, :, :, ::1] dy, real[:, :, :, :, ::1] dwt,
                      Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dd, Py_ssize_t dh, Py_ssize_t dw,
                      Py_ssize_t groups):
    """dwt[k,c,t,r,s] = sum_{n,o,p,q} dy[n,k,o,p,q] xp[n,g*Cg+c, o*sd+t*dd, p*sh+r*dh, q*sw+s*dw] (eq. 9.11).

    Jobs: (output channel, input channel) pairs, each a set of dot products along output rows.
    """
    cdef Py_ssize_t n_ = dy.shape[0], k_ = dy.shape[1], o_ = dy.shape[2], p_ = dy.shape[3], q_ = dy.shape[4]
    cdef Py_ssize_t cg = dwt.shape[1], kt = dwt.shape[2], kr = dwt.shape[3], ks = dwt.shape[4]
    cdef Py_ssize_t kg = k_ // groups
    cdef Py_ssize_t job, k, c, ci, n, o, p, t, r, s, q, off
    cdef real a
    cdef real* dyr
    cdef real* xr
    with nogil:
        for job in prange(k_ * cg, schedule="dynamic"):
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
                        dyr = &dy[n, k, o, p, 0]
                        for t in range(kt):
                            for r in range(kr):
                                xr = &xp[n, ci, o * sd + t * dd, p * sh + r * dh, 0]
                                for s in range(ks):
                                    off = s * dw
                                    a = 0
                                    if sw == 1:
                                        for q in range(q_):
                                            a = a + dyr[q] * xr[off + q]
                                    else:
                                        for q in range(q_):
                                            a = a + dyr[q] * xr[off + q * sw]
                                    dwt[k, c, t, r, s] += a


def nhwc_pad(real[:, :, :, ::1] x, real[:, :, :, ::1] xt, Py_ssize_t pt, Py_ssize_t pl, Py_ssize_t c0):
    """xt[n, h, w, c] = x[n, c0+c, h-pt, w-pl] (zero outside): NCHW -> padded NHWC for Winograd."""
    cdef Py_ssize_t h_ = x.shape[2], w_ = x.shape[3]
    cdef Py_ssize_t hp = xt.shape[1], wp = xt.shape[2], cg = xt.shape[3]
    cdef Py_ssize_t job, n, h, sh, wv, sw_, c
    cdef real* dst
    with nogil:
        for job in prange(xt.shape[0] * hp, schedule="static"):
            n = job // hp
            h = job % hp
            sh = h - pt
            for wv in range(wp):
                sw_ = wv - pl
                dst = &xt[n, h, wv, 0]
                if sh < 0 or sh >= h_ or sw_ < 0 or sw_ >= w_:
                    for c in range(cg):
                        dst[c] = 0
                else:
                    for c in range(cg):
                        dst[c] = x[n, c0 + c, sh, sw_]


def wino_weight(real[:, :, :, ::1] w, real[:, :, ::1] u, Py_ssize_t k0, real[:, ::1] gm):
    """u[a*alpha+b, c, k] = (G w[k0+k, c] G^T)[a, b]: the kernel transform of F(m x m, 3x3)."""
    cdef Py_ssize_t alpha = gm.shape[0], cg = u.shape[1], kg = u.shape[2]
    cdef Py_ssize_t k, c, a, b, i, j
    cdef double acc
    cdef double* tmp
    with nogil, parallel():
        tmp = <double*>malloc(sizeof(double) * alpha * 3)
        for k in prange(kg, schedule="static"):
            for c in range(cg):
                for a in range(alpha):
                    for j in range(3):
                        acc = 0
                        for i in range(3):
                            acc = acc + gm[a, i] * w[k0 + k, c, i, j]
                        tmp[a * 3 + j] = acc
                for a in range(alpha):
                    for b in range(alpha):
                        acc = 0
                        for j in range(3):
                            acc = acc + tmp[a * 3 + j] * gm[b, j]
                        u[a * alpha + b, c, k] = <real>acc
        free(tmp)


def wino_in(real[:, :, :, ::1] xt, real[:, :, ::1] v, Py_ssize_t row0, Py_ssize_t nrows, Py_ssize_t th,
            Py_ssize_t tw, Py_ssize_t m, real[:, ::1] bt):
    """v[a*alpha+b, t, :] = (B^T d_t B)[a, b] for the input tiles d_t of tile rows row0..row0+nrows.

    xt: padded NHWC input; the channels are the innermost (contiguous) axis, so both transform
    stages vectorize over them.
    """
    cdef Py_ssize_t alpha = bt.shape[0], cg = xt.shape[3]
    cdef Py_ssize_t rr, gr, n, h0, tx, w0, t, a, j, i, b, c
    cdef real bv
    cdef real* tmp
    cdef real* acc
    cdef real* src
    cdef real* dst
    with nogil, parallel():
        tmp = <real*>malloc(sizeof(real) * alpha * alpha * cg)
        for rr in prange(nrows, schedule="dynamic"):
            gr = row0 + rr
            n = gr // th
            h0 = (gr % th) * m
            for tx in range(tw):
                w0 = tx * m
                t = rr * tw + tx
                for a in range(alpha):
                    for j in range(alpha):
                        acc = tmp + (a * alpha + j) * cg
                        for c in range(cg):
                            acc[c] = 0
                        for i in range(alpha):
                            bv = bt[a, i]
                            if bv != 0:
                                src = &xt[n, h0 + i, w0 + j, 0]
                                for c in range(cg):
                                    acc[c] += bv * src[c]
                for a in range(alpha):
                    for b in range(alpha):
                        dst = &v[a * alpha + b, t, 0]
                        for c in range(cg):
                            dst[c] = 0
                        for j in range(alpha):
                            bv = bt[b, j]
                            if bv != 0:
                                src = tmp + (a * alpha + j) * cg
                                for c in range(cg):
                                    dst[c] += bv * src[c]
        free(tmp)


def wino_out(real[:, :, ::1] mm, real[:, :, :, ::1] y, Py_ssize_t row0, Py_ssize_t nrows, Py_ssize_t th,
             Py_ssize_t tw, Py_ssize_t m, real[:, ::1] at, Py_ssize_t k0):
    """y[n, k0+k, ty*m+i, tx*m+j] = (A^T M_t A)[i, j] (cropped at the borders): output transform."""
    cdef Py_ssize_t alpha = at.shape[1], kg = mm.shape[2], p_ = y.shape[2], q_ = y.shape[3]
    cdef Py_ssize_t rr, gr, n, h0, tx, w0, t, i, j, a, b, k, ni, nj
    cdef real av
    cdef real* tmp
    cdef real* res
    cdef real* acc
    cdef real* src
    with nogil, parallel():
        tmp = <real*>malloc(sizeof(real) * m * alpha * kg)
        res = <real*>malloc(sizeof(real) * m * m * kg)
        for rr in prange(nrows, schedule="dynamic"):
            gr = row0 + rr
            n = gr // th
            h0 = (gr % th) * m
            for tx in range(tw):
                w0 = tx * m
                t = rr * tw + tx
                for i in range(m):
                    for b in range(alpha):
                        acc = tmp + (i * alpha + b) * kg
                        for k in range(kg):
                            acc[k] = 0
                        for a in range(alpha):
                            av = at[i, a]
                            if av != 0:
                                src = &mm[a * alpha + b, t, 0]
                                for k in range(kg):
                                    acc[k] += av * src[k]
                for i in range(m):
                    for j in range(m):
                        acc = res + (i * m + j) * kg
                        for k in range(kg):
                            acc[k] = 0
                        for b in range(alpha):
                            av = at[j, b]
                            if av != 0:
                                src = tmp + (i * alpha + b) * kg
                                for k in range(kg):
                                    acc[k] += av * src[k]
                ni = _imin(m, p_ - h0)
                nj = _imin(m, q_ - w0)
                for k in range(kg):
                    for i in range(ni):
                        for j in range(nj):
                            y[n, k0 + k, h0 + i, w0 + j] = res[(i * m + j) * kg + k]
        free(tmp)
        free(res)


def _cgemm(real[:, :, ::1] a, real[:, :, ::1] b, real[:, :, ::1] out):
    cdef Py_ssize_t nf = a.shape[0], m_ = a.shape[1], k_ = a.shape[2] // 2, n_ = b.shape[2] // 2
    cdef Py_ssize_t f, i, j, l
    cdef real ar, ai
    cdef real* o
    cdef real* br
    with nogil:
        for f in prange(nf, schedule="static"):
            for i in range(m_):
                o = &out[f, i, 0]
                for l in range(2 * n_):
                    o[l] = 0
                for j in range(k_):
                    ar = a[f, i, 2 * j]
                    ai = a[f, i, 2 * j + 1]
                    br = &b[f, j, 0]
                    for l in range(n_):
                        o[2 * l] += ar * br[2 * l] - ai * br[2 * l + 1]
                        o[2 * l + 1] += ar * br[2 * l + 1] + ai * br[2 * l]


def cgemm(a, b, out):
    """out[f] = a[f] @ b[f] for complex (F, m, k) x (F, k, n): the per-frequency channel product.

    Computed on the interleaved (real, imaginary) float views, with explicit real arithmetic.
    """
    rd = a.real.dtype
    _cgemm(a.view(rd), b.view(rd), out.view(rd))


def separable(real[:, :, :, ::1] xp, real[:, :, ::1] col, real[:, :, ::1] row, real[:, :, :, ::1] y,
              Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups):
    """y[n,k,p,q] = sum_c sum_r col[k,c,r] sum_s row[k,c,s] xp[n,c',p*sh+r*dh, q*sw+s*dw] (rank-1 kernels).

    A row pass (length S) over every padded input row into a buffer, then a column pass (length R).
    """
    cdef Py_ssize_t n_ = y.shape[0], k_ = y.shape[1], p_ = y.shape[2], q_ = y.shape[3]
    cdef Py_ssize_t cg = col.shape[1], kr = col.shape[2], ks = row.shape[2]
    cdef Py_ssize_t kg = k_ // groups, hp = xp.shape[2]
    cdef Py_ssize_t job, n, k, ci0, c, h, s, q, p, r, off
    cdef real bv, av
    cdef real* tmp
    cdef real* tr
    cdef real* xr
    cdef real* orow
    with nogil, parallel():
        tmp = <real*>malloc(sizeof(real) * hp * q_)
        for job in prange(n_ * k_, schedule="dynamic"):
            n = job // k_
            k = job % k_
            ci0 = (k // kg) * cg
            for p in range(p_):
                orow = &y[n, k, p, 0]
                for q in range(q_):
                    orow[q] = 0
            for c in range(cg):
                for h in range(hp):
                    tr = tmp + h * q_
                    xr = &xp[n, ci0 + c, h, 0]
                    for q in range(q_):
                        tr[q] = 0
                    for s in range(ks):
                        bv = row[k, c, s]
                        off = s * dw
                        for q in range(q_):
                            tr[q] += bv * xr[off + q * sw]
                for p in range(p_):
                    orow = &y[n, k, p, 0]
                    for r in range(kr):
                        av = col[k, c, r]
                        tr = tmp + (p * sh + r * dh) * q_
                        for q in range(q_):
                            orow[q] += av * tr[q]
        free(tmp)
