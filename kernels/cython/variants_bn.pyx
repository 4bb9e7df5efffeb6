# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython + OpenMP batch normalization passes (eq. 8.35-8.37), as in the Numba kernels.

reduce: s1[c] = sum (u - su[c]), s2[c] = sum (u - su[c]) (v - sv[c]) in float64 (``omp simd``
reductions); apply: out = a[c] u + b[c] (v - sv[c]) + d[c]. (N, C, L) maps: OpenMP over channels
(reduce) and over the N*C maps (apply); dense (N, D): over column blocks (reduce) and rows (apply).
"""

from cython.parallel cimport parallel, prange
from libc.stdlib cimport free, malloc

ctypedef fused real:
    float
    double

cdef extern from *:
    """
    #include <math.h>
    #define DLB_RED2(T, NAME)                                                              \\
    static inline void NAME(const T *restrict u, const T *restrict v, T su, T sv, long n,  \\
                            double *s1, double *s2) {                                      \\
        double a1 = 0, a2 = 0;                                                             \\
        _Pragma("omp simd reduction(+:a1,a2)")                                             \\
        for (long i = 0; i < n; i++) {                                                     \\
            double du = (double)(u[i] - su);                                               \\
            a1 += du; a2 += du * (double)(v[i] - sv);                                      \\
        }                                                                                  \\
        *s1 += a1; *s2 += a2;                                                              \\
    }
    #define DLB_RED1(T, NAME)                                                              \\
    static inline void NAME(const T *restrict u, T su, long n, double *s1, double *s2) {   \\
        double a1 = 0, a2 = 0;                                                             \\
        _Pragma("omp simd reduction(+:a1,a2)")                                             \\
        for (long i = 0; i < n; i++) {                                                     \\
            double du = (double)(u[i] - su);                                               \\
            a1 += du; a2 += du * du;                                                       \\
        }                                                                                  \\
        *s1 += a1; *s2 += a2;                                                              \\
    }
    DLB_RED2(float, dlb_red2_f) DLB_RED2(double, dlb_red2_d)
    DLB_RED1(float, dlb_red1_f) DLB_RED1(double, dlb_red1_d)
    """
    void dlb_red2_f(const float *u, const float *v, float su, float sv, long n, double *s1,
                    double *s2) nogil
    void dlb_red2_d(const double *u, const double *v, double su, double sv, long n, double *s1,
                    double *s2) nogil
    void dlb_red1_f(const float *u, float su, long n, double *s1, double *s2) nogil
    void dlb_red1_d(const double *u, double su, long n, double *s1, double *s2) nogil

cdef enum:
    BLOCK = 256


def reduce_maps(const real[:, :, ::1] u, const real[:, :, ::1] v, const real[::1] su, const real[::1] sv,
                bint square, double[::1] s1, double[::1] s2):
    """Per-channel sums over axes 0 and 2 of (N, C, L) arrays."""
    cdef Py_ssize_t N = u.shape[0], C = u.shape[1], L = u.shape[2], c, n
    cdef double a1, a2
    for c in prange(C, nogil=True, schedule="static"):
        a1 = 0
        a2 = 0
        for n in range(N):
            if real is float:
                if square:
                    dlb_red1_f(&u[n, c, 0], su[c], L, &a1, &a2)
                else:
                    dlb_red2_f(&u[n, c, 0], &v[n, c, 0], su[c], sv[c], L, &a1, &a2)
            else:
                if square:
                    dlb_red1_d(&u[n, c, 0], su[c], L, &a1, &a2)
                else:
                    dlb_red2_d(&u[n, c, 0], &v[n, c, 0], su[c], sv[c], L, &a1, &a2)
        s1[c] = a1
        s2[c] = a2


def reduce_dense(const real[:, ::1] u, const real[:, ::1] v, const real[::1] su, const real[::1] sv,
                 bint square, double[::1] s1, double[::1] s2):
    """Per-column sums over axis 0 of (N, D) arrays, vectorised along D in blocks of columns."""
    cdef Py_ssize_t N = u.shape[0], C = u.shape[1], nblocks = (C + BLOCK - 1) // BLOCK
    cdef Py_ssize_t bi, c0, c1, n, c
    cdef double *acc
    cdef double du, d0, d1, d2, d3
    with nogil, parallel():
        acc = <double *> malloc(2 * BLOCK * sizeof(double))
        for bi in prange(nblocks, schedule="static"):
            c0 = bi * BLOCK
            c1 = min(C, c0 + BLOCK)
            for c in range(2 * BLOCK):
                acc[c] = 0
            n = 0
            while n + 4 <= N:            # four rows per pass over the accumulators
                if square:               # u is v: the statistics pass reads x once
                    for c in range(c0, c1):
                        d0 = <double> (u[n, c] - su[c])
                        d1 = <double> (u[n + 1, c] - su[c])
                        d2 = <double> (u[n + 2, c] - su[c])
                        d3 = <double> (u[n + 3, c] - su[c])
                        acc[c - c0] = acc[c - c0] + ((d0 + d1) + (d2 + d3))
                        acc[BLOCK + c - c0] = acc[BLOCK + c - c0] + ((d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3))
                else:
                    for c in range(c0, c1):
                        d0 = <double> (u[n, c] - su[c])
                        d1 = <double> (u[n + 1, c] - su[c])
                        d2 = <double> (u[n + 2, c] - su[c])
                        d3 = <double> (u[n + 3, c] - su[c])
                        acc[c - c0] = acc[c - c0] + ((d0 + d1) + (d2 + d3))
                        acc[BLOCK + c - c0] = acc[BLOCK + c - c0] + (
                            (d0 * <double> (v[n, c] - sv[c]) + d1 * <double> (v[n + 1, c] - sv[c]))
                            + (d2 * <double> (v[n + 2, c] - sv[c]) + d3 * <double> (v[n + 3, c] - sv[c])))
                n = n + 4
            while n < N:
                if square:
                    for c in range(c0, c1):
                        du = <double> (u[n, c] - su[c])
                        acc[c - c0] = acc[c - c0] + du
                        acc[BLOCK + c - c0] = acc[BLOCK + c - c0] + du * du
                else:
                    for c in range(c0, c1):
                        du = <double> (u[n, c] - su[c])
                        acc[c - c0] = acc[c - c0] + du
                        acc[BLOCK + c - c0] = acc[BLOCK + c - c0] + du * <double> (v[n, c] - sv[c])
                n = n + 1
            for c in range(c0, c1):
                s1[c] = acc[c - c0]
                s2[c] = acc[BLOCK + c - c0]
        free(acc)


def apply_maps(const real[:, :, ::1] u, const real[:, :, ::1] v, const real[::1] a, const real[::1] b,
               const real[::1] sv, const real[::1] d, real[:, :, ::1] out):
    """out = a[c] u + b[c] (v - sv[c]) + d[c] on (N, C, L), parallel over the N*C maps."""
    cdef Py_ssize_t N = u.shape[0], C = u.shape[1], L = u.shape[2], nc, n, c, i
    cdef real ac, bc, cv, dc
    cdef const real *pu
    cdef const real *pv
    cdef real *po
    for nc in prange(N * C, nogil=True, schedule="static"):
        n = nc // C
        c = nc - n * C
        ac = a[c]
        bc = b[c]
        cv = sv[c]
        dc = d[c]
        pu = &u[n, c, 0]
        pv = &v[n, c, 0]
        po = &out[n, c, 0]
        for i in range(L):
            po[i] = ac * pu[i] + bc * (pv[i] - cv) + dc


def apply_dense(const real[:, ::1] u, const real[:, ::1] v, const real[::1] a, const real[::1] b,
                const real[::1] sv, const real[::1] d, real[:, ::1] out):
    """out = a u + b (v - sv) + d per column of (N, D), parallel over rows."""
    cdef Py_ssize_t N = u.shape[0], C = u.shape[1], n, c
    cdef const real *pu
    cdef const real *pv
    cdef real *po
    for n in prange(N, nogil=True, schedule="static"):
        pu = &u[n, 0]
        pv = &v[n, 0]
        po = &out[n, 0]
        for c in range(C):
            po[c] = a[c] * pu[c] + b[c] * (pv[c] - sv[c]) + d[c]


cdef extern from *:
    """
    /* Partial sums in the input precision over one map (<= a few hundred values, shifted by the
       channel's first value K so they stay small), folded into float64 by the caller: f32 vectors
       of 8 lanes instead of converting every value to f64. */
    #define DLB_PRED1(T, NAME)                                                             \\
    static inline void NAME(const T *restrict u, T k, long n, double *s1, double *s2) {    \\
        T a1 = 0, a2 = 0;                                                                  \\
        _Pragma("omp simd reduction(+:a1,a2)")                                             \\
        for (long i = 0; i < n; i++) { T du = u[i] - k; a1 += du; a2 += du * du; }         \\
        *s1 += (double)a1; *s2 += (double)a2;                                              \\
    }
    #define DLB_PRED2(T, NAME)                                                             \\
    static inline void NAME(const T *restrict g, const T *restrict u, T k, long n,         \\
                            double *s1, double *s2) {                                      \\
        T a1 = 0, a2 = 0;                                                                  \\
        _Pragma("omp simd reduction(+:a1,a2)")                                             \\
        for (long i = 0; i < n; i++) { a1 += g[i]; a2 += g[i] * (u[i] - k); }             \\
        *s1 += (double)a1; *s2 += (double)a2;                                              \\
    }
    /* Prefetch [p, p + bytes): a channel's N maps lie C L values apart, too far for the hardware
       prefetcher, so the statistics pass asks for map n + 2 while it sums map n. */
    static inline void dlb_prefetch_range(const void *p, long bytes) {
        const char *c = (const char *) p;
        for (long i = 0; i < bytes; i += 64) __builtin_prefetch(c + i, 0, 3);
    }
    #include <stdlib.h>
    #ifdef _OPENMP
    #include <omp.h>
    #endif
    /* Dense (N, D) float32 training forward (backward = 0) or backward (1), eq. 8.35-8.37, by
       tiles of 128 columns (OpenMP over tiles): the tile's sums over all rows (float32 partial
       sums of 32 rows, shifted by row 0, folded into float64), then its normalisation while the
       tile is in L2, so x (and dy) are read from memory once; rows are D apart, so the next rows
       are prefetched by hand. Returns 1. */
    static inline __attribute__((always_inline)) void dlb_bn_dense_tiles(
            int backward, const float *x, const float *dy, long N, long D, double eps, const float *gamma,
            const float *beta, const float *mean, const float *invstd, float *out, double *o1, double *o2) {
        enum { TW = 128 };                  /* columns per tile: 256 rows x 128 x 4 B = 128 KB, in L2 */
        const double m = (double) N;
        long tw = backward ? TW / 2 : TW;   /* backward: x, dy and dx tiles together */
        long ntiles = (D + tw - 1) / tw;
        #pragma omp parallel for schedule(static)
        for (long t = 0; t < ntiles; t++) {
            long t0 = t * tw, w = D - t0 < tw ? D - t0 : tw;
            double s1[TW], s2[TW];
            float p1[TW], p2[TW], ca[TW], cb[TW], cd[TW];
            const float *restrict k = x + t0;
            for (long c = 0; c < w; c++) s1[c] = s2[c] = 0;
            for (long n0 = 0; n0 < N; n0 += 32) {
                long n1 = n0 + 32 < N ? n0 + 32 : N;
                for (long c = 0; c < w; c++) p1[c] = p2[c] = 0;
                for (long n = n0; n < n1; n++) {
                    const float *restrict xr = x + n * D + t0;
                    if (n + 6 < N)                          /* rows are D apart: prefetch ahead */
                        for (long c = 0; c < w; c += 16) {
                            __builtin_prefetch(xr + 6 * D + c, 0, 3);
                            if (backward) __builtin_prefetch(dy + (n + 6) * D + t0 + c, 0, 3);
                        }
                    if (backward) {
                        const float *restrict gr = dy + n * D + t0;
                        #pragma omp simd
                        for (long c = 0; c < w; c++) { p1[c] += gr[c]; p2[c] += gr[c] * (xr[c] - k[c]); }
                    } else {
                        #pragma omp simd
                        for (long c = 0; c < w; c++) { float du = xr[c] - k[c]; p1[c] += du; p2[c] += du * du; }
                    }
                }
                for (long c = 0; c < w; c++) { s1[c] += p1[c]; s2[c] += p2[c]; }
            }
            for (long j = 0; j < w; j++) {
                long c = t0 + j;
                if (!backward) {
                    double dm = s1[j] / m, vr = s2[j] / m - dm * dm, b;
                    vr = vr > 0 ? vr : 0;
                    o1[c] = k[j] + dm;
                    o2[c] = vr;
                    b = gamma[c] / sqrt(vr + eps);
                    ca[j] = 0; cb[j] = (float) b; cd[j] = (float) (beta[c] - b * dm);
                } else {
                    double kmu = (double) k[j] - (double) mean[c], q2 = s2[j] + kmu * s1[j], inv = invstd[c];
                    double a = gamma[c] * inv, b = -a * inv * inv * q2 / m;
                    o1[c] = q2 * inv;
                    o2[c] = s1[j];
                    ca[j] = (float) a; cb[j] = (float) b; cd[j] = (float) (-a * s1[j] / m + b * kmu);
                }
            }
            for (long n = 0; n < N; n++) {                /* the tile is still in L2 */
                const float *restrict xr = x + n * D + t0;
                float *restrict orow = out + n * D + t0;
                if (n + 6 < N)
                    for (long c = 0; c < w; c += 16) {
                        __builtin_prefetch(xr + 6 * D + c, 0, 3);
                        __builtin_prefetch(orow + 6 * D + c, 1, 3);
                        if (backward) __builtin_prefetch(dy + (n + 6) * D + t0 + c, 0, 3);
                    }
                if (backward) {
                    const float *restrict gr = dy + n * D + t0;
                    #pragma omp simd
                    for (long c = 0; c < w; c++) orow[c] = ca[c] * gr[c] + cb[c] * (xr[c] - k[c]) + cd[c];
                } else {
                    #pragma omp simd
                    for (long c = 0; c < w; c++) orow[c] = cb[c] * (xr[c] - k[c]) + cd[c];
                }
            }
        }
    }
    static int dlb_bn_dense_f(int backward, const float *x, const float *dy, long N, long D, double eps,
                              const float *gamma, const float *beta, const float *mean,
                              const float *invstd, float *out, double *o1, double *o2) {
        if (backward) dlb_bn_dense_tiles(1, x, dy, N, D, eps, gamma, beta, mean, invstd, out, o1, o2);
        else dlb_bn_dense_tiles(0, x, dy, N, D, eps, gamma, beta, mean, invstd, out, o1, o2);
        return 1;
    }
    /* (N, C, L) float32 training forward / backward with the same three contiguous phases as
       dlb_bn_dense_f: each thread sums its examples' maps per channel (float32 vector sums over a
       map, folded into its float64 row of S), each thread finishes its share of channels, each
       thread writes its examples. */
    static int dlb_bn_maps_f(int backward, const float *x, const float *dy, long N, long C, long L,
                             double eps, const float *gamma, const float *beta, const float *mean,
                             const float *invstd, float *out, double *o1, double *o2) {
        int ntm = 1;
    #ifdef _OPENMP
        ntm = omp_get_max_threads();
    #endif
        double *S = (double *) calloc((size_t) (2 * ntm) * C, sizeof(double));
        float *coef = (float *) malloc(4 * C * sizeof(float));
        if (!S || !coef) { free(S); free(coef); return 0; }
        const double m = (double) N * L;
        #pragma omp parallel num_threads(ntm)
        {
            long nt = 1, id = 0;
    #ifdef _OPENMP
            nt = omp_get_num_threads();
            id = omp_get_thread_num();
    #endif
            long e0 = N * id / nt, e1 = N * (id + 1) / nt;
            double *s1 = S + 2 * id * C, *s2 = s1 + C;
            for (long n = e0; n < e1; n++)
                for (long c = 0; c < C; c++) {
                    const float *restrict u = x + (n * C + c) * L;
                    const float k = x[c * L];
                    float a1 = 0, a2 = 0;
                    if (backward) {
                        const float *restrict g = dy + (n * C + c) * L;
                        #pragma omp simd reduction(+ : a1, a2)
                        for (long i = 0; i < L; i++) { a1 += g[i]; a2 += g[i] * (u[i] - k); }
                    } else {
                        #pragma omp simd reduction(+ : a1, a2)
                        for (long i = 0; i < L; i++) { float du = u[i] - k; a1 += du; a2 += du * du; }
                    }
                    s1[c] += a1;
                    s2[c] += a2;
                }
            #pragma omp barrier
            for (long c = C * id / nt; c < C * (id + 1) / nt; c++) {
                double a1 = 0, a2 = 0, k = x[c * L];
                for (long t = 0; t < nt; t++) { a1 += S[2 * t * C + c]; a2 += S[(2 * t + 1) * C + c]; }
                coef[3 * C + c] = (float) k;
                if (!backward) {
                    double dm = a1 / m, vr = a2 / m - dm * dm, b;
                    vr = vr > 0 ? vr : 0;
                    o1[c] = k + dm;
                    o2[c] = vr;
                    b = gamma[c] / sqrt(vr + eps);
                    coef[c] = 0; coef[C + c] = (float) b; coef[2 * C + c] = (float) (beta[c] - b * dm);
                } else {
                    double kmu = k - (double) mean[c], q2 = a2 + kmu * a1, inv = invstd[c];
                    double a = gamma[c] * inv, b = -a * inv * inv * q2 / m;
                    o1[c] = q2 * inv;
                    o2[c] = a1;
                    coef[c] = (float) a; coef[C + c] = (float) b; coef[2 * C + c] = (float) (-a * a1 / m + b * kmu);
                }
            }
            #pragma omp barrier
            for (long n = e0; n < e1; n++)
                for (long c = 0; c < C; c++) {
                    const float *restrict u = x + (n * C + c) * L;
                    float *restrict o = out + (n * C + c) * L;
                    const float a = coef[c], b = coef[C + c], d = coef[2 * C + c], k = coef[3 * C + c];
                    if (backward) {
                        const float *restrict g = dy + (n * C + c) * L;
                        #pragma omp simd
                        for (long i = 0; i < L; i++) o[i] = a * g[i] + b * (u[i] - k) + d;
                    } else {
                        #pragma omp simd
                        for (long i = 0; i < L; i++) o[i] = b * (u[i] - k) + d;
                    }
                }
        }
        free(S); free(coef);
        return 1;
    }
    DLB_PRED1(float, dlb_pred1_f) DLB_PRED1(double, dlb_pred1_d)
    DLB_PRED2(float, dlb_pred2_f) DLB_PRED2(double, dlb_pred2_d)
    """
    void dlb_prefetch_range(const void *p, long nbytes) nogil
    int dlb_bn_maps_f(int backward, const float *x, const float *dy, long N, long C, long L, double eps,
                      const float *gamma, const float *beta, const float *mean, const float *invstd,
                      float *out, double *o1, double *o2) nogil
    int dlb_bn_dense_f(int backward, const float *x, const float *dy, long N, long D, double eps,
                       const float *gamma, const float *beta, const float *mean, const float *invstd,
                       float *out, double *o1, double *o2) nogil
    void dlb_pred1_f(const float *u, float k, long n, double *s1, double *s2) nogil
    void dlb_pred1_d(const double *u, double k, long n, double *s1, double *s2) nogil
    void dlb_pred2_f(const float *g, const float *u, float k, long n, double *s1, double *s2) nogil
    void dlb_pred2_d(const double *g, const double *u, double k, long n, double *s1, double *s2) nogil

from libc.math cimport sqrt


def train_forward_maps(const real[:, :, ::1] x, const real[::1] gamma, const real[::1] beta, double eps,
                       real[:, :, ::1] y, double[::1] mean, double[::1] var):
    """Training forward of (N, C, L) (eq. 8.35-8.37): writes y, the batch mean and the biased
    variance (float64). float32: ``dlb_bn_maps_f`` (contiguous passes, partial sums per thread);
    float64: one parallel pass over channels, each normalised right after its statistics."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], L = x.shape[2], c, n, i
    cdef double s1, s2, m = <double> (N * L), dm, vr, b
    cdef real k, bc, dc
    cdef const real *px
    cdef real *py
    cdef int ok = 0
    if real is float:
        with nogil:
            ok = dlb_bn_maps_f(0, &x[0, 0, 0], NULL, N, C, L, eps, &gamma[0], &beta[0], NULL, NULL, &y[0, 0, 0],
                               &mean[0], &var[0])
        if ok:
            return
    for c in prange(C, nogil=True, schedule="static"):
        k = x[0, c, 0]
        s1 = 0
        s2 = 0
        for n in range(N):
            dlb_prefetch_range(&x[n + 2 if n + 2 < N else N - 1, c, 0], L * sizeof(real))
            if real is float:
                dlb_pred1_f(&x[n, c, 0], k, L, &s1, &s2)
            else:
                dlb_pred1_d(&x[n, c, 0], k, L, &s1, &s2)
        dm = s1 / m
        vr = s2 / m - dm * dm
        vr = vr if vr > 0 else 0
        mean[c] = k + dm
        var[c] = vr
        b = gamma[c] / sqrt(vr + eps)
        bc = <real> b
        dc = <real> (beta[c] - b * dm)              # y = b (x - K) + beta - b (mu - K)
        for n in range(N):
            px = &x[n, c, 0]
            py = &y[n, c, 0]
            for i in range(L):
                py[i] = bc * (px[i] - k) + dc


def train_backward_maps(const real[:, :, ::1] dy, const real[:, :, ::1] x, const real[::1] gamma,
                        const real[::1] mean, const real[::1] invstd, real[:, :, ::1] dx,
                        double[::1] dgamma, double[::1] dbeta):
    """Training backward of (N, C, L): s1 = sum dy and s2 = sum dy (x - mu) per channel, then
    dx = a dy + b (x - K) + d. float32: ``dlb_bn_maps_f``; float64: per channel as the forward."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], L = x.shape[2], c, n, i
    cdef double s1, s2, m = <double> (N * L), kmu, inv, a, b, d
    cdef real k, ac, bc, dc
    cdef const real *pg
    cdef const real *px
    cdef real *pd
    cdef int ok = 0
    if real is float:
        with nogil:
            ok = dlb_bn_maps_f(1, &x[0, 0, 0], &dy[0, 0, 0], N, C, L, 0.0, &gamma[0], NULL, &mean[0], &invstd[0],
                               &dx[0, 0, 0], &dgamma[0], &dbeta[0])
        if ok:
            return
    for c in prange(C, nogil=True, schedule="static"):
        k = x[0, c, 0]
        s1 = 0
        s2 = 0
        for n in range(N):
            dlb_prefetch_range(&dy[n + 2 if n + 2 < N else N - 1, c, 0], L * sizeof(real))
            dlb_prefetch_range(&x[n + 2 if n + 2 < N else N - 1, c, 0], L * sizeof(real))
            if real is float:
                dlb_pred2_f(&dy[n, c, 0], &x[n, c, 0], k, L, &s1, &s2)
            else:
                dlb_pred2_d(&dy[n, c, 0], &x[n, c, 0], k, L, &s1, &s2)
        kmu = <double> k - <double> mean[c]
        s2 = s2 + kmu * s1                          # sum dy (x - mu)
        inv = invstd[c]
        a = gamma[c] * inv
        b = -a * inv * inv * s2 / m
        d = -a * s1 / m + b * kmu
        dgamma[c] = s2 * inv
        dbeta[c] = s1
        ac = <real> a
        bc = <real> b
        dc = <real> d
        for n in range(N):
            pg = &dy[n, c, 0]
            px = &x[n, c, 0]
            pd = &dx[n, c, 0]
            for i in range(L):
                pd[i] = ac * pg[i] + bc * (px[i] - k) + dc


cdef enum:
    DBLOCK = 64      # dense: columns per block (a block of 256 rows is 64 KB of float32: L2)
    DROWS = 32       # rows summed in the input precision before folding into float64


def train_forward_dense(const real[:, ::1] x, const real[::1] gamma, const real[::1] beta, double eps,
                        real[:, ::1] y, double[::1] mean, double[::1] var):
    """Training forward of (N, D): float32 through ``dlb_bn_dense_f`` (contiguous row passes);
    float64 in blocks of 64 columns (statistics, partial sums of 32 rows shifted by the first row,
    then the block's normalisation while it is in cache)."""
    cdef Py_ssize_t N = x.shape[0], D = x.shape[1], nb = (D + DBLOCK - 1) // DBLOCK
    cdef Py_ssize_t bi, c0, w, n, n0, c
    cdef double m = <double> N, dm, vr, b
    cdef double *acc
    cdef int ok = 0
    if real is float:
        with nogil:
            ok = dlb_bn_dense_f(0, &x[0, 0], NULL, N, D, eps, &gamma[0], &beta[0], NULL, NULL, &y[0, 0],
                                &mean[0], &var[0])
        if ok:
            return
    cdef real *p
    cdef real du
    cdef const real *px
    cdef const real *k
    cdef real *py
    with nogil, parallel():
        acc = <double *> malloc(2 * DBLOCK * sizeof(double))
        p = <real *> malloc(4 * DBLOCK * sizeof(real))      # p1, p2, then b, d
        for bi in prange(nb, schedule="static"):
            c0 = bi * DBLOCK
            w = min(D, c0 + DBLOCK) - c0
            k = &x[0, c0]
            for c in range(2 * DBLOCK):
                acc[c] = 0
            n0 = 0
            while n0 < N:
                for c in range(2 * DBLOCK):
                    p[c] = 0
                for n in range(n0, min(N, n0 + DROWS)):
                    px = &x[n, c0]
                    for c in range(w):
                        du = px[c] - k[c]
                        p[c] = p[c] + du
                        p[DBLOCK + c] = p[DBLOCK + c] + du * du
                for c in range(w):
                    acc[c] = acc[c] + p[c]
                    acc[DBLOCK + c] = acc[DBLOCK + c] + p[DBLOCK + c]
                n0 = n0 + DROWS
            for c in range(w):
                dm = acc[c] / m
                vr = acc[DBLOCK + c] / m - dm * dm
                vr = vr if vr > 0 else 0
                mean[c0 + c] = k[c] + dm
                var[c0 + c] = vr
                b = gamma[c0 + c] / sqrt(vr + eps)
                p[2 * DBLOCK + c] = <real> b
                p[3 * DBLOCK + c] = <real> (beta[c0 + c] - b * dm)
            for n in range(N):
                px = &x[n, c0]
                py = &y[n, c0]
                for c in range(w):
                    py[c] = p[2 * DBLOCK + c] * (px[c] - k[c]) + p[3 * DBLOCK + c]
        free(acc)
        free(p)


def train_backward_dense(const real[:, ::1] dy, const real[:, ::1] x, const real[::1] gamma,
                         const real[::1] mean, const real[::1] invstd, real[:, ::1] dx,
                         double[::1] dgamma, double[::1] dbeta):
    """Training backward of (N, D) (see ``train_forward_dense``): sums of dy and dy (x - K) per
    column, then dx."""
    cdef Py_ssize_t N = x.shape[0], D = x.shape[1], nb = (D + DBLOCK - 1) // DBLOCK
    cdef Py_ssize_t bi, c0, w, n, n0, c
    cdef double m = <double> N, s1, s2, kmu, inv, a, b
    cdef double *acc
    cdef int ok = 0
    if real is float:
        with nogil:
            ok = dlb_bn_dense_f(1, &x[0, 0], &dy[0, 0], N, D, 0.0, &gamma[0], NULL, &mean[0], &invstd[0],
                                &dx[0, 0], &dgamma[0], &dbeta[0])
        if ok:
            return
    cdef real *p
    cdef const real *px
    cdef const real *pg
    cdef const real *k
    cdef real *pd
    with nogil, parallel():
        acc = <double *> malloc(2 * DBLOCK * sizeof(double))
        p = <real *> malloc(5 * DBLOCK * sizeof(real))      # p1, p2, then a, b, d
        for bi in prange(nb, schedule="static"):
            c0 = bi * DBLOCK
            w = min(D, c0 + DBLOCK) - c0
            k = &x[0, c0]
            for c in range(2 * DBLOCK):
                acc[c] = 0
            n0 = 0
            while n0 < N:
                for c in range(2 * DBLOCK):
                    p[c] = 0
                for n in range(n0, min(N, n0 + DROWS)):
                    px = &x[n, c0]
                    pg = &dy[n, c0]
                    for c in range(w):
                        p[c] = p[c] + pg[c]
                        p[DBLOCK + c] = p[DBLOCK + c] + pg[c] * (px[c] - k[c])
                for c in range(w):
                    acc[c] = acc[c] + p[c]
                    acc[DBLOCK + c] = acc[DBLOCK + c] + p[DBLOCK + c]
                n0 = n0 + DROWS
            for c in range(w):
                s1 = acc[c]
                kmu = <double> k[c] - <double> mean[c0 + c]
                s2 = acc[DBLOCK + c] + kmu * s1
                inv = invstd[c0 + c]
                a = gamma[c0 + c] * inv
                b = -a * inv * inv * s2 / m
                dgamma[c0 + c] = s2 * inv
                dbeta[c0 + c] = s1
                p[2 * DBLOCK + c] = <real> a
                p[3 * DBLOCK + c] = <real> b
                p[4 * DBLOCK + c] = <real> (-a * s1 / m + b * kmu)
            for n in range(N):
                px = &x[n, c0]
                pg = &dy[n, c0]
                pd = &dx[n, c0]
                for c in range(w):
                    pd[c] = p[2 * DBLOCK + c] * pg[c] + p[3 * DBLOCK + c] * (px[c] - k[c]) + p[4 * DBLOCK + c]
        free(acc)
        free(p)

