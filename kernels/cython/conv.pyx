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


def phase_split(real[:, :, :, :, ::1] x, real[:, :, :, ::1] xs, Py_ssize_t pd, Py_ssize_t ph, Py_ssize_t pw,
                Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dq, Py_ssize_t hq, Py_ssize_t wq):
    """xs[n, c, (a,b,e), (i*hq + j)*wq + l] = xpad[n, c, i*sd + a, j*sh + b, l*sw + e] (zeros outside,
    zeros after the block): the padded input cut into its stride phases (see conv_drivers)."""
    cdef Py_ssize_t c_ = x.shape[1], d_ = x.shape[2], h_ = x.shape[3], w_ = x.shape[4]
    cdef Py_ssize_t plane = xs.shape[3]
    cdef Py_ssize_t job, n, c, a, b, e, l_lo, l_hi, i, z, jh, h, l, start
    cdef real* pl
    cdef real* dst
    cdef real* src
    with nogil:
        for job in prange(x.shape[0] * c_, schedule="dynamic"):
            n = job // c_
            c = job % c_
            for a in range(sd):
                for b in range(sh):
                    for e in range(sw):
                        pl = &xs[n, c, (a * sh + b) * sw + e, 0]
                        l_lo = _imin(_imax(0, (pw - e + sw - 1) // sw), wq)
                        l_hi = _imax(_imin(wq, (w_ - 1 + pw - e) // sw + 1), l_lo)
                        start = l_lo * sw + e - pw
                        for i in range(dq):
                            z = i * sd + a - pd
                            for jh in range(hq):
                                h = jh * sh + b - ph
                                dst = pl + (i * hq + jh) * wq
                                if z < 0 or z >= d_ or h < 0 or h >= h_:
                                    for l in range(wq):
                                        dst[l] = 0
                                else:
                                    src = &x[n, c, z, h, 0]
                                    for l in range(l_lo):
                                        dst[l] = 0
                                    if sw == 1:
                                        for l in range(l_lo, l_hi):
                                            dst[l] = src[start + l - l_lo]
                                    else:
                                        for l in range(l_lo, l_hi):
                                            dst[l] = src[start + (l - l_lo) * sw]
                                    for l in range(l_hi, wq):
                                        dst[l] = 0
                        for l in range(dq * hq * wq, plane):
                            pl[l] = 0


def phase_merge(real[:, :, :, ::1] xs, real[:, :, :, :, ::1] x, Py_ssize_t pd, Py_ssize_t ph, Py_ssize_t pw,
                Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dq, Py_ssize_t hq, Py_ssize_t wq):
    """The inverse of phase_split (cropping the padding): x[n,c,z,h,w] = xs[..phase.., ..position..]."""
    cdef Py_ssize_t c_ = x.shape[1], d_ = x.shape[2], h_ = x.shape[3], w_ = x.shape[4]
    cdef Py_ssize_t job, n, c, z, za, h, ha, e, row, l_lo, l, wv
    cdef real* dst
    cdef real* pl
    with nogil:
        for job in prange(x.shape[0] * c_, schedule="dynamic"):
            n = job // c_
            c = job % c_
            for z in range(d_):
                za = z + pd
                for h in range(h_):
                    ha = h + ph
                    dst = &x[n, c, z, h, 0]
                    for e in range(sw):
                        pl = &xs[n, c, ((za % sd) * sh + ha % sh) * sw + e, 0]
                        row = ((za // sd) * hq + ha // sh) * wq
                        l_lo = _imax(0, (pw - e + sw - 1) // sw)
                        for l in range(l_lo, wq):
                            wv = l * sw + e - pw
                            if wv >= w_:
                                break
                            dst[wv] = pl[row + l]


cdef extern from *:
    """
    #include <stddef.h>
    #if defined(__AVX2__) && defined(__FMA__)
    #include <immintrin.h>
    #define DLB_CONV_AVX2 1
    #else
    #define DLB_CONV_AVX2 0
    #endif

    /* Register blocks of the direct convolution (eq. 9.8 on phase planes): out[k][j] for 4 output
       channels x 16 floats / 8 doubles (or 1 channel x 64 floats / 32 doubles) summed over every
       (input channel, tap); AVX2+FMA intrinsics when the build targets them (the accumulators stay
       in 8 ymm registers; plain C let GCC spill them), portable C otherwise. */
    #define DLB_BLOCK_GENERIC(T, NAME, KB, QB)                                                    \
    static void NAME(const T* xc, ptrdiff_t cstride, ptrdiff_t pstride, const T* wb, ptrdiff_t cg, \
                     ptrdiff_t taps, const ptrdiff_t* tph, const ptrdiff_t* tsh, ptrdiff_t base,    \
                     T* out, ptrdiff_t kstride, ptrdiff_t kn, ptrdiff_t qn) {                       \
        T acc[KB * QB];                                                                            \
        for (ptrdiff_t i = 0; i < KB * QB; i++) acc[i] = 0;                                        \
        for (ptrdiff_t c = 0; c < cg; c++)                                                         \
            for (ptrdiff_t t = 0; t < taps; t++) {                                                 \
                const T* xp = xc + c * cstride + tph[t] * pstride + base + tsh[t];                 \
                const T* wv = wb + (c * taps + t) * 4;                                             \
                for (ptrdiff_t k = 0; k < KB; k++)                                                 \
                    for (ptrdiff_t j = 0; j < QB; j++) acc[k * QB + j] += wv[k] * xp[j];           \
            }                                                                                      \
        for (ptrdiff_t k = 0; k < kn; k++)                                                         \
            for (ptrdiff_t j = 0; j < qn; j++) out[k * kstride + j] = acc[k * QB + j];             \
    }

    #if DLB_CONV_AVX2
    #define DLB_BLOCK4_AVX(T, NAME, V, LOAD, SET0, BCAST, FMA, STORE, W)                          \
    static void NAME(const T* xc, ptrdiff_t cstride, ptrdiff_t pstride, const T* wb, ptrdiff_t cg, \
                     ptrdiff_t taps, const ptrdiff_t* tph, const ptrdiff_t* tsh, ptrdiff_t base,    \
                     T* out, ptrdiff_t kstride, ptrdiff_t kn, ptrdiff_t qn) {                       \
        V a00 = SET0(), a01 = SET0(), a10 = SET0(), a11 = SET0();                                  \
        V a20 = SET0(), a21 = SET0(), a30 = SET0(), a31 = SET0();                                  \
        for (ptrdiff_t c = 0; c < cg; c++) {                                                       \
            const T* xcc = xc + c * cstride + base;                                                \
            const T* wc = wb + c * taps * 4;                                                       \
            for (ptrdiff_t t = 0; t < taps; t++) {                                                 \
                const T* xp = xcc + tph[t] * pstride + tsh[t];                                     \
                const T* wv = wc + t * 4;                                                          \
                V x0 = LOAD(xp), x1 = LOAD(xp + W);                                                \
                V w0 = BCAST(wv), w1 = BCAST(wv + 1), w2 = BCAST(wv + 2), w3 = BCAST(wv + 3);      \
                a00 = FMA(w0, x0, a00); a01 = FMA(w0, x1, a01);                                    \
                a10 = FMA(w1, x0, a10); a11 = FMA(w1, x1, a11);                                    \
                a20 = FMA(w2, x0, a20); a21 = FMA(w2, x1, a21);                                    \
                a30 = FMA(w3, x0, a30); a31 = FMA(w3, x1, a31);                                    \
            }                                                                                      \
        }                                                                                          \
        T acc[8 * W];                                                                              \
        STORE(acc, a00); STORE(acc + W, a01); STORE(acc + 2 * W, a10); STORE(acc + 3 * W, a11);    \
        STORE(acc + 4 * W, a20); STORE(acc + 5 * W, a21); STORE(acc + 6 * W, a30);                 \
        STORE(acc + 7 * W, a31);                                                                   \
        for (ptrdiff_t k = 0; k < kn; k++)                                                         \
            for (ptrdiff_t j = 0; j < qn; j++) out[k * kstride + j] = acc[k * 2 * W + j];          \
    }
    #define DLB_BLOCK1_AVX(T, NAME, V, LOAD, SET0, BCAST, FMA, STORE, W)                          \
    static void NAME(const T* xc, ptrdiff_t cstride, ptrdiff_t pstride, const T* wb, ptrdiff_t cg, \
                     ptrdiff_t taps, const ptrdiff_t* tph, const ptrdiff_t* tsh, ptrdiff_t base,    \
                     T* out, ptrdiff_t kstride, ptrdiff_t kn, ptrdiff_t qn) {                       \
        V a0 = SET0(), a1 = SET0(), a2 = SET0(), a3 = SET0();                                      \
        V a4 = SET0(), a5 = SET0(), a6 = SET0(), a7 = SET0();                                      \
        (void)kstride; (void)kn;                                                                   \
        for (ptrdiff_t c = 0; c < cg; c++) {                                                       \
            const T* xcc = xc + c * cstride + base;                                                \
            const T* wc = wb + c * taps * 4;                                                       \
            for (ptrdiff_t t = 0; t < taps; t++) {                                                 \
                const T* xp = xcc + tph[t] * pstride + tsh[t];                                     \
                V w0 = BCAST(wc + t * 4);                                                          \
                a0 = FMA(w0, LOAD(xp), a0); a1 = FMA(w0, LOAD(xp + W), a1);                        \
                a2 = FMA(w0, LOAD(xp + 2 * W), a2); a3 = FMA(w0, LOAD(xp + 3 * W), a3);            \
                a4 = FMA(w0, LOAD(xp + 4 * W), a4); a5 = FMA(w0, LOAD(xp + 5 * W), a5);            \
                a6 = FMA(w0, LOAD(xp + 6 * W), a6); a7 = FMA(w0, LOAD(xp + 7 * W), a7);            \
            }                                                                                      \
        }                                                                                          \
        T acc[8 * W];                                                                              \
        STORE(acc, a0); STORE(acc + W, a1); STORE(acc + 2 * W, a2); STORE(acc + 3 * W, a3);        \
        STORE(acc + 4 * W, a4); STORE(acc + 5 * W, a5); STORE(acc + 6 * W, a6);                    \
        STORE(acc + 7 * W, a7);                                                                    \
        for (ptrdiff_t j = 0; j < qn; j++) out[j] = acc[j];                                        \
    }
    DLB_BLOCK4_AVX(float, dlb_conv_block4_f, __m256, _mm256_loadu_ps, _mm256_setzero_ps, _mm256_broadcast_ss,
                   _mm256_fmadd_ps, _mm256_storeu_ps, 8)
    DLB_BLOCK4_AVX(double, dlb_conv_block4_d, __m256d, _mm256_loadu_pd, _mm256_setzero_pd, _mm256_broadcast_sd,
                   _mm256_fmadd_pd, _mm256_storeu_pd, 4)
    DLB_BLOCK1_AVX(float, dlb_conv_block1_f, __m256, _mm256_loadu_ps, _mm256_setzero_ps, _mm256_broadcast_ss,
                   _mm256_fmadd_ps, _mm256_storeu_ps, 8)
    DLB_BLOCK1_AVX(double, dlb_conv_block1_d, __m256d, _mm256_loadu_pd, _mm256_setzero_pd, _mm256_broadcast_sd,
                   _mm256_fmadd_pd, _mm256_storeu_pd, 4)
    #else
    DLB_BLOCK_GENERIC(float, dlb_conv_block4_f, 4, 16)
    DLB_BLOCK_GENERIC(double, dlb_conv_block4_d, 4, 8)
    DLB_BLOCK_GENERIC(float, dlb_conv_block1_f, 1, 64)
    DLB_BLOCK_GENERIC(double, dlb_conv_block1_d, 1, 32)
    #endif
    """
    void dlb_conv_block4_f(const float* xc, Py_ssize_t cstride, Py_ssize_t pstride, const float* wb,
                           Py_ssize_t cg, Py_ssize_t taps, const Py_ssize_t* tph, const Py_ssize_t* tsh,
                           Py_ssize_t base, float* out, Py_ssize_t kstride, Py_ssize_t kn, Py_ssize_t qn) nogil
    void dlb_conv_block4_d(const double* xc, Py_ssize_t cstride, Py_ssize_t pstride, const double* wb,
                           Py_ssize_t cg, Py_ssize_t taps, const Py_ssize_t* tph, const Py_ssize_t* tsh,
                           Py_ssize_t base, double* out, Py_ssize_t kstride, Py_ssize_t kn, Py_ssize_t qn) nogil
    void dlb_conv_block1_f(const float* xc, Py_ssize_t cstride, Py_ssize_t pstride, const float* wb,
                           Py_ssize_t cg, Py_ssize_t taps, const Py_ssize_t* tph, const Py_ssize_t* tsh,
                           Py_ssize_t base, float* out, Py_ssize_t kstride, Py_ssize_t kn, Py_ssize_t qn) nogil
    void dlb_conv_block1_d(const double* xc, Py_ssize_t cstride, Py_ssize_t pstride, const double* wb,
                           Py_ssize_t cg, Py_ssize_t taps, const Py_ssize_t* tph, const Py_ssize_t* tsh,
                           Py_ssize_t base, double* out, Py_ssize_t kstride, Py_ssize_t kn, Py_ssize_t qn) nogil
    int DLB_CONV_AVX2


def simd_kernels():
    """True when the direct kernels' register blocks use AVX2+FMA intrinsics (else portable C)."""
    return bool(DLB_CONV_AVX2)


cdef inline void _fwd_block(int one, const real* xc, Py_ssize_t cstride, Py_ssize_t pstride, const real* wb,
                            Py_ssize_t cg, Py_ssize_t taps, const Py_ssize_t* tph, const Py_ssize_t* tsh,
                            Py_ssize_t base, real* out, Py_ssize_t kstride, Py_ssize_t kn,
                            Py_ssize_t qn) noexcept nogil:
    if real is float:
        if one:
            dlb_conv_block1_f(xc, cstride, pstride, wb, cg, taps, tph, tsh, base, out, kstride, kn, qn)
        else:
            dlb_conv_block4_f(xc, cstride, pstride, wb, cg, taps, tph, tsh, base, out, kstride, kn, qn)
    else:
        if one:
            dlb_conv_block1_d(xc, cstride, pstride, wb, cg, taps, tph, tsh, base, out, kstride, kn, qn)
        else:
            dlb_conv_block4_d(xc, cstride, pstride, wb, cg, taps, tph, tsh, base, out, kstride, kn, qn)


def direct_fwd(real[:, :, :, ::1] xs, real[:, :, :, :, ::1] wpk, real[:, :, :, ::1] yw, Py_ssize_t[::1] tph,
               Py_ssize_t[::1] tsh, Py_ssize_t ostride, Py_ssize_t kg):
    """yw[n, k, o, j] = sum_{c, tap} w[k, c, tap] xs[n, c, phase(tap), o*ostride + shift(tap) + j] (eq. 9.8).

    Register-blocked: 4 output channels x 16 (float32) or 8 (float64) wide positions (or, when
    K/groups = 1, one channel x 64 / 32 positions) accumulate in registers over every (input
    channel, tap): each x vector loaded feeds 4 FMAs and no partial sum goes back to memory.
    Jobs: (image, group, output depth, chunk of wide positions); every block of output channels
    runs on the chunk in turn, so the chunk's input (all channels, with its halo rows) is read
    from L2 once per block instead of from memory.
    """
    cdef Py_ssize_t n_ = yw.shape[0], o_ = yw.shape[2], pw_ = yw.shape[3]
    cdef Py_ssize_t groups = wpk.shape[0], nkb = wpk.shape[1], cg = wpk.shape[2], taps = wpk.shape[3]
    cdef Py_ssize_t cstride = xs.shape[2] * xs.shape[3], pstride = xs.shape[3]
    cdef int one = kg == 1
    cdef Py_ssize_t qb = (64 if real is float else 32) if one else (16 if real is float else 8)
    cdef Py_ssize_t chunk = _imax(64, _imin(512, (16384 // _imax(cg, 1)) // 64 * 64))
    cdef Py_ssize_t nch = (pw_ + chunk - 1) // chunk
    cdef Py_ssize_t job, ch, rest, o, kb, g, n, k0, kn, jlo, jhi, jb
    with nogil:
        for job in prange(n_ * groups * o_ * nch, schedule="dynamic"):
            ch = job % nch
            rest = job // nch
            o = rest % o_
            rest = rest // o_
            g = rest % groups
            n = rest // groups
            jlo = ch * chunk
            jhi = _imin(pw_, jlo + chunk)
            for kb in range(nkb):
                k0 = g * kg + kb * KB
                kn = _imin(KB, kg - kb * KB)
                jb = jlo
                while jb < jhi:
                    _fwd_block(one, &xs[n, g * cg, 0, 0], cstride, pstride, &wpk[g, kb, 0, 0, 0], cg, taps,
                               &tph[0], &tsh[0], o * ostride + jb, &yw[n, k0, o, jb], o_ * pw_, kn,
                               _imin(qb, jhi - jb))
                    jb = jb + qb


def direct_bwd_data(real[:, :, :, ::1] dyw, real[:, :, ::1] w3, real[:, :, :, ::1] dxs, Py_ssize_t[::1] tph,
                    Py_ssize_t[::1] tsh, Py_ssize_t ostride, Py_ssize_t groups):
    """dxs[n, c, phase(tap), o*ostride + shift(tap) + j] += w[k, c, tap] dyw[n, k, o, j] (eq. 9.13).

    The adjoint of direct_fwd; dyw is dy on the wide grid with zeros in the extra columns; dxs
    (zeroed here) collects the phase planes of the padded input gradient. Jobs: (image, channel).
    """
    cdef Py_ssize_t k_ = dyw.shape[1], o_ = dyw.shape[2], pw_ = dyw.shape[3]
    cdef Py_ssize_t c_ = dxs.shape[1], nph = dxs.shape[2], plane = dxs.shape[3]
    cdef Py_ssize_t cg = w3.shape[1], taps = w3.shape[2], kg = k_ // groups
    cdef Py_ssize_t job, n, ci, g, c, j, kk, k, tap, o
    cdef real wv
    cdef real* dst
    cdef real* src
    with nogil:
        for job in prange(dxs.shape[0] * c_, schedule="dynamic"):
            n = job // c_
            ci = job % c_
            g = ci // cg
            c = ci % cg
            dst = &dxs[n, ci, 0, 0]
            for j in range(nph * plane):
                dst[j] = 0
            for kk in range(kg):
                k = g * kg + kk
                for tap in range(taps):
                    wv = w3[k, c, tap]
                    for o in range(o_):
                        dst = &dxs[n, ci, tph[tap], o * ostride + tsh[tap]]
                        src = &dyw[n, k, o, 0]
                        for j in range(pw_):
                            dst[j] += wv * src[j]


cdef real _dot(const real* a, const real* b, Py_ssize_t m) noexcept nogil:
    """sum a[i] b[i] with 16 independent partial sums (vectorizes without reassociating flags)."""
    cdef real acc[16]
    cdef Py_ssize_t i, l, mm = m - m % 16
    cdef real tot = 0
    for l in range(16):
        acc[l] = 0
    i = 0
    while i < mm:
        for l in range(16):
            acc[l] += a[i + l] * b[i + l]
        i = i + 16
    for i in range(mm, m):
        tot += a[i] * b[i]
    for l in range(16):
        tot += acc[l]
    return tot


def direct_bwd_weight(real[:, :, :, ::1] xs, real[:, :, :, ::1] dyw, real[:, :, ::1] dw3, Py_ssize_t[::1] tph,
                      Py_ssize_t[::1] tsh, Py_ssize_t ostride, Py_ssize_t groups):
    """dw3[k, c, tap] = sum_{n, o, j} dyw[n, k, o, j] xs[n, c', phase(tap), o*ostride + shift(tap) + j] (eq. 9.11).

    Jobs: (output channel, input channel); long unit-stride dot products (zeros in dyw's extra
    wide columns keep the garbage columns out of the sum).
    """
    cdef Py_ssize_t n_ = dyw.shape[0], k_ = dyw.shape[1], o_ = dyw.shape[2], pw_ = dyw.shape[3]
    cdef Py_ssize_t cg = dw3.shape[1], taps = dw3.shape[2], kg = k_ // groups
    cdef Py_ssize_t job, k, c, ci, tap, n, o
    cdef double acc
    with nogil:
        for job in prange(dw3.shape[0] * cg, schedule="dynamic"):
            k = job // cg
            c = job % cg
            ci = (k // kg) * cg + c
            for tap in range(taps):
                acc = 0
                for n in range(n_):
                    for o in range(o_):
                        acc = acc + _dot(&dyw[n, k, o, 0], &xs[n, ci, tph[tap], o * ostride + tsh[tap]], pw_)
                dw3[k, c, tap] = <real>acc


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


def _cmul(real[:, :, ::1] a, real[:, :, ::1] b, real[:, :, ::1] out, real sa, real sb):
    cdef Py_ssize_t p_ = a.shape[0], r_ = a.shape[1], f_ = a.shape[2] // 2, q_ = b.shape[1]
    cdef Py_ssize_t fc = 64
    cdef Py_ssize_t nch = (f_ + fc - 1) // fc
    cdef Py_ssize_t ch, lo, m, q, p, r, f
    cdef real ar, ai, br, bi
    cdef real* o
    cdef real* av
    cdef real* bv
    with nogil:
        for ch in prange(nch, schedule="dynamic"):
            lo = ch * fc
            m = _imin(f_, lo + fc) - lo
            for q in range(q_):
                for p in range(p_):
                    o = &out[p, q, 2 * lo]
                    for f in range(2 * m):
                        o[f] = 0
                    for r in range(r_):
                        av = &a[p, r, 2 * lo]
                        bv = &b[r, q, 2 * lo]
                        for f in range(m):
                            ar = av[2 * f]
                            ai = sa * av[2 * f + 1]
                            br = bv[2 * f]
                            bi = sb * bv[2 * f + 1]
                            o[2 * f] += ar * br - ai * bi
                            o[2 * f + 1] += ar * bi + ai * br


def cmul(a, b, out, conj_a=False, conj_b=False):
    """out[p, q, f] = sum_r op(a[p, r, f]) op(b[r, q, f]) for complex spectra (op: optional conjugate).

    The per-frequency channel product of the fft algorithm on the interleaved (real, imaginary)
    float views, frequency innermost, in chunks of 64 frequencies (one OpenMP job each).
    """
    rd = a.real.dtype
    _cmul(a.view(rd), b.view(rd), out.view(rd), -1.0 if conj_a else 1.0, -1.0 if conj_b else 1.0)


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
