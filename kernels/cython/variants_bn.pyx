# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython + OpenMP batch normalization passes (eq. 8.35-8.37), as in the Numba kernels.

reduce: s1[c] = sum (u - su[c]), s2[c] = sum (u - su[c]) (v - sv[c]) in float64 (``omp simd``
reductions); apply: out = a[c] u + b[c] (v - sv[c]) + d[c]. (N, C, L) maps: OpenMP over channels
(reduce) and over the N*C maps (apply); dense (N, D): over column blocks (reduce) and rows (apply).
These two passes serve evaluation and float64 training. float32 training runs ``train`` (C,
below): float32 partial sums shifted by the first value and folded into float64, with one pass
structure per layout (maps whose channels fit in L2 sweep channel groups, so x and dy come from
memory once).
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
    #include <stdlib.h>
    #ifdef _OPENMP
    #include <omp.h>
    #endif
    #define DLB_AT(p, c) ((p) ? (p) + (c) : NULL)
    /* The coefficients of n channels from their shifted sums A1 = sum (u - k), A2 = sum (u - k)^2
       (forward) or sum g, sum g (u - k) (backward) over m values, k the shift (each channel's first
       value): forward y = cb (x - k) + cd, o1 = mean, o2 = biased variance; backward
       dx = ca dy + cb (x - k) + cd, o1 = dgamma, o2 = dbeta. Vectorised: the reciprocal of m
       multiplies, and the forward's gamma / sqrt(var + eps) is taken in float32 (the coefficient
       is stored as float32 anyway); one thread's 2048 columns at (256, 4096): 11.5 -> ~3 us.
       beta is read forward only, mean and invstd backward only (NULL otherwise). */
    static inline __attribute__((always_inline)) void dlb_bn_coef(
            int backward, long n, const double *A1, const double *A2, const float *k, double m, double eps,
            const float *gamma, const float *beta, const float *mean, const float *invstd,
            double *o1, double *o2, float *ca, float *cb, float *cd) {
        const double rm = 1.0 / m;
        if (!backward) {
            #pragma omp simd
            for (long c = 0; c < n; c++) {
                double dm = A1[c] * rm, vr = A2[c] * rm - dm * dm;
                vr = vr > 0 ? vr : 0;
                o1[c] = k[c] + dm;
                o2[c] = vr;
                float b = gamma[c] / sqrtf((float) (vr + eps));
                ca[c] = 0; cb[c] = b; cd[c] = (float) (beta[c] - (double) b * dm);
            }
        } else {
            #pragma omp simd
            for (long c = 0; c < n; c++) {
                double a1 = A1[c], kmu = k[c] - mean[c], q2 = A2[c] + kmu * a1, inv = invstd[c];
                double a = gamma[c] * inv, b = -a * inv * inv * q2 * rm;
                o1[c] = q2 * inv;
                o2[c] = a1;
                ca[c] = (float) a; cb[c] = (float) b; cd[c] = (float) (-a * a1 * rm + b * kmu);
            }
        }
    }
    /* The middle phase of the row / example paths: the nt threads' sums of columns [c0, c1)
       (thread t's in rows 2t, 2t + 1 of S, W wide) into thread 0's rows, then the coefficients
       (ca, cb, cd at coef, coef + W, coef + 2W). */
    static inline __attribute__((always_inline)) void dlb_bn_finish(
            int backward, double *S, long W, long nt, long c0, long c1, const float *k, double m, double eps,
            const float *gamma, const float *beta, const float *mean, const float *invstd,
            double *o1, double *o2, float *coef) {
        double *restrict A1 = S, *restrict A2 = S + W;
        for (long t = 1; t < nt; t++) {
            const double *restrict B1 = S + 2 * t * W, *restrict B2 = B1 + W;
            #pragma omp simd
            for (long c = c0; c < c1; c++) { A1[c] += B1[c]; A2[c] += B2[c]; }
        }
        dlb_bn_coef(backward, c1 - c0, A1 + c0, A2 + c0, k + c0, m, eps, gamma + c0, DLB_AT(beta, c0),
                    DLB_AT(mean, c0), DLB_AT(invstd, c0), o1 + c0, o2 + c0, coef + c0, coef + W + c0,
                    coef + 2 * W + c0);
    }
    /* Dense (N, D) float32 training forward (backward = 0) or backward (1), eq. 8.35-8.37, in
       three contiguous phases (rows are read in memory order; a column-tile walk with D-strided
       rows defeats the prefetchers and, at power-of-two D, maps a whole tile onto a few L2 sets):
       (1) each thread sums its rows into per-column float32 partials (four rows per pass over the
       partials, shifted by row 0, folded into the thread's float64 sums every 32 rows); (2) each
       thread finishes its share of columns into per-column coefficients; (3) each thread writes
       its rows, last first (the rows it summed last are still in L2: 0.87-0.93x the time of the
       forward order at (256, 4096)): y = b (x - x_0) + d (forward), dx = a dy + b (x - x_0) + d (backward). Returns 0 when memory is
       short. */
    static inline __attribute__((always_inline)) int dlb_bn_rows(
            int backward, const float *x, const float *dy, long N, long D, double eps, const float *gamma,
            const float *beta, const float *mean, const float *invstd, float *out, double *o1, double *o2) {
        int ntm = 1;
    #ifdef _OPENMP
        ntm = omp_get_max_threads();
    #endif
        if (ntm > N / 4) ntm = N / 4 > 0 ? (int) (N / 4) : 1;   /* at least four rows a thread */
        double *S = (double *) malloc((size_t) (2 * ntm) * D * sizeof(double));   /* set by each thread */
        float *P = (float *) malloc((size_t) (2 * ntm) * D * sizeof(float));
        float *coef = (float *) malloc(3 * D * sizeof(float));
        if (!S || !P || !coef) { free(S); free(P); free(coef); return 0; }
        const double m = (double) N;
        const float *restrict k = x;                     /* the shift: row 0 */
        #pragma omp parallel num_threads(ntm)
        {
            long nt = 1, id = 0;
    #ifdef _OPENMP
            nt = omp_get_num_threads();
            id = omp_get_thread_num();
    #endif
            long e0 = N * id / nt, e1 = N * (id + 1) / nt;
            double *restrict s1 = S + 2 * id * D, *restrict s2 = s1 + D;
            float *restrict p1 = P + 2 * id * D, *restrict p2 = p1 + D;
            for (long b0 = e0; b0 < e1; b0 += 32) {
                long b1 = b0 + 32 < e1 ? b0 + 32 : e1, n = b0;
                for (long c = 0; c < D; c++) p1[c] = p2[c] = 0;
                for (; n + 4 <= b1; n += 4) {
                    const float *restrict u0 = x + n * D, *restrict u1 = u0 + D, *restrict u2 = u1 + D,
                                *restrict u3 = u2 + D;
                    if (backward) {
                        const float *restrict g0 = dy + n * D, *restrict g1 = g0 + D, *restrict g2 = g1 + D,
                                    *restrict g3 = g2 + D;
                        #pragma omp simd
                        for (long c = 0; c < D; c++) {
                            float kc = k[c];
                            p1[c] += (g0[c] + g1[c]) + (g2[c] + g3[c]);
                            p2[c] += (g0[c] * (u0[c] - kc) + g1[c] * (u1[c] - kc))
                                   + (g2[c] * (u2[c] - kc) + g3[c] * (u3[c] - kc));
                        }
                    } else {
                        #pragma omp simd
                        for (long c = 0; c < D; c++) {
                            float kc = k[c], d0 = u0[c] - kc, d1 = u1[c] - kc, d2 = u2[c] - kc,
                                  d3 = u3[c] - kc;
                            p1[c] += (d0 + d1) + (d2 + d3);
                            p2[c] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3);
                        }
                    }
                }
                for (; n < b1; n++) {
                    const float *restrict u0 = x + n * D;
                    if (backward) {
                        const float *restrict g0 = dy + n * D;
                        #pragma omp simd
                        for (long c = 0; c < D; c++) { p1[c] += g0[c]; p2[c] += g0[c] * (u0[c] - k[c]); }
                    } else {
                        #pragma omp simd
                        for (long c = 0; c < D; c++) { float d0 = u0[c] - k[c]; p1[c] += d0; p2[c] += d0 * d0; }
                    }
                }
                if (b0 == e0) {
                    #pragma omp simd
                    for (long c = 0; c < D; c++) { s1[c] = p1[c]; s2[c] = p2[c]; }
                } else {
                    #pragma omp simd
                    for (long c = 0; c < D; c++) { s1[c] += p1[c]; s2[c] += p2[c]; }
                }
            }
            #pragma omp barrier
            dlb_bn_finish(backward, S, D, nt, D * id / nt, D * (id + 1) / nt, k, m, eps, gamma, beta, mean,
                          invstd, o1, o2, coef);
            #pragma omp barrier
            const float *restrict ca = coef, *restrict cb = coef + D, *restrict cd = coef + 2 * D;
            for (long n = e1 - 1; n >= e0; n--) {       /* last rows first: they are still in L2 */
                const float *restrict u = x + n * D;
                float *restrict o = out + n * D;
                if (backward) {
                    const float *restrict g = dy + n * D;
                    #pragma omp simd
                    for (long c = 0; c < D; c++) o[c] = ca[c] * g[c] + cb[c] * (u[c] - k[c]) + cd[c];
                } else {
                    #pragma omp simd
                    for (long c = 0; c < D; c++) o[c] = cb[c] * (u[c] - k[c]) + cd[c];
                }
            }
        }
        free(S); free(P); free(coef);
        return 1;
    }
    static int dlb_bn_dense_f(int backward, const float *x, const float *dy, long N, long D, double eps,
                              const float *gamma, const float *beta, const float *mean,
                              const float *invstd, float *out, double *o1, double *o2) {
        if (backward) return dlb_bn_rows(1, x, dy, N, D, eps, gamma, beta, mean, invstd, out, o1, o2);
        return dlb_bn_rows(0, x, dy, N, D, eps, gamma, beta, mean, invstd, out, o1, o2);
    }
    /* One map of L values at offset e: s1 += sum (x - k), s2 += sum (x - k)^2 (forward) or
       s1 += sum dy, s2 += sum dy (x - k) (backward), as float32 vector sums folded into float64. */
    static inline __attribute__((always_inline)) void dlb_bn_map_sums(
            int backward, const float *x, const float *dy, long e, long L, float k, double *s1, double *s2) {
        const float *restrict u = x + e;
        float a1 = 0, a2 = 0;
        if (backward) {
            const float *restrict g = dy + e;
            #pragma omp simd reduction(+ : a1, a2)
            for (long i = 0; i < L; i++) { a1 += g[i]; a2 += g[i] * (u[i] - k); }
        } else {
            #pragma omp simd reduction(+ : a1, a2)
            for (long i = 0; i < L; i++) { float du = u[i] - k; a1 += du; a2 += du * du; }
        }
        *s1 += a1;
        *s2 += a2;
    }
    /* One map's output: out = b (x - k) + d (forward) or a dy + b (x - k) + d (backward). */
    static inline __attribute__((always_inline)) void dlb_bn_map_apply(
            int backward, const float *x, const float *dy, long e, long L, float a, float b, float d, float k,
            float *out) {
        const float *restrict u = x + e;
        float *restrict o = out + e;
        if (backward) {
            const float *restrict g = dy + e;
            #pragma omp simd
            for (long i = 0; i < L; i++) o[i] = a * g[i] + b * (u[i] - k) + d;
        } else {
            #pragma omp simd
            for (long i = 0; i < L; i++) o[i] = b * (u[i] - k) + d;
        }
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
                    dlb_bn_map_sums(backward, x, dy, (n * C + c) * L, L, x[c * L], s1 + c, s2 + c);
                }
            #pragma omp barrier
            const long c0 = C * id / nt, c1 = C * (id + 1) / nt;
            for (long c = c0; c < c1; c++) coef[3 * C + c] = x[c * L];      /* the shifts */
            dlb_bn_finish(backward, S, C, nt, c0, c1, coef + 3 * C, m, eps, gamma, beta, mean, invstd, o1, o2,
                          coef);
            #pragma omp barrier
            for (long n = e1 - 1; n >= e0; n--)          /* last maps first: they are still in L2 */
                for (long c = C - 1; c >= 0; c--) {
                    dlb_bn_map_apply(backward, x, dy, (n * C + c) * L, L, coef[c], coef[C + c], coef[2 * C + c],
                                     coef[3 * C + c], out);
                }
        }
        free(S); free(coef);
        return 1;
    }
    /* (N, C, L) float32 training forward / backward with OpenMP over channels, each channel in
       one sweep: its N maps are summed (float32 vector sums per map, shifted by the channel's
       first value, folded into float64), finished into coefficients, and normalised while they
       are still in L1/L2 (a channel is N * L * 4 bytes per input: 25 KB of x at (32, 256, 14, 14)),
       so x (and dy) come from memory once instead of twice. Channels go in groups of G (each
       example's G maps are contiguous, which the prefetchers follow better than one map). For
       channels that fit in L2. */
    static int dlb_bn_chan_f(int backward, const float *x, const float *dy, long N, long C, long L,
                             long G, double eps, const float *gamma, const float *beta, const float *mean,
                             const float *invstd, float *out, double *o1, double *o2) {
        const double m = (double) N * L;
        if (G < 1) G = 1;
        if (G > 64) G = 64;
        const long ngroups = (C + G - 1) / G;
        #pragma omp parallel for schedule(static)
        for (long gi = 0; gi < ngroups; gi++) {
            const long c0 = gi * G, c1 = c0 + G < C ? c0 + G : C;
            double s1[64], s2[64];
            float ka[64], ca[64], cb[64], cd[64];
            for (long c = c0; c < c1; c++) { s1[c - c0] = s2[c - c0] = 0; ka[c - c0] = x[c * L]; }
            for (long n = 0; n < N; n++)
                for (long c = c0; c < c1; c++) {
                    dlb_bn_map_sums(backward, x, dy, (n * C + c) * L, L, ka[c - c0], s1 + (c - c0), s2 + (c - c0));
                }
            dlb_bn_coef(backward, c1 - c0, s1, s2, ka, m, eps, gamma + c0, DLB_AT(beta, c0), DLB_AT(mean, c0),
                        DLB_AT(invstd, c0), o1 + c0, o2 + c0, ca, cb, cd);
            for (long n = 0; n < N; n++)
                for (long c = c0; c < c1; c++) {
                    dlb_bn_map_apply(backward, x, dy, (n * C + c) * L, L, ca[c - c0], cb[c - c0], cd[c - c0],
                                     ka[c - c0], out);
                }
        }
        return 1;
    }
    """
    int dlb_bn_maps_f(int backward, const float *x, const float *dy, long N, long C, long L, double eps,
                      const float *gamma, const float *beta, const float *mean, const float *invstd,
                      float *out, double *o1, double *o2) nogil
    int dlb_bn_chan_f(int backward, const float *x, const float *dy, long N, long C, long L, long G, double eps,
                      const float *gamma, const float *beta, const float *mean, const float *invstd,
                      float *out, double *o1, double *o2) nogil
    int dlb_bn_dense_f(int backward, const float *x, const float *dy, long N, long D, double eps,
                       const float *gamma, const float *beta, const float *mean, const float *invstd,
                       float *out, double *o1, double *o2) nogil



# the channel-sweep path (dlb_bn_chan_f) runs when one channel's inputs take at most CHAN_BYTES (it
# must stay in L2 between its two sweeps), with enough channels per group for ~CHAN_GROUP_BYTES
cdef long CHAN_BYTES = 1 << 20
cdef long CHAN_GROUP_BYTES = 1 << 18


def train(bint backward, const float[:, :, ::1] x, const float[:, :, ::1] dy, const float[::1] gamma,
          const float[::1] beta, const float[::1] mean, const float[::1] invstd, double eps,
          float[:, :, ::1] out, double[::1] o1, double[::1] o2, int path=0):
    """float32 training pass of (N, C, L) (L = 1: dense (N, D)), eq. 8.35-8.37: forward writes
    y = out, o1 = batch mean, o2 = biased variance (``beta`` used, ``dy``/``mean``/``invstd``
    ignored); backward writes dx = out, o1 = dgamma, o2 = dbeta (``beta`` ignored). Dense runs
    ``dlb_bn_dense_f``; maps run ``dlb_bn_chan_f`` (channels that fit in L2: x and dy are read from
    memory once) or ``dlb_bn_maps_f``. ``path`` picks for maps (tests): 0 by size, 1 channels,
    2 examples. False when memory is short (the caller then takes the two-pass driver)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], L = x.shape[2]
    cdef const float *g = &dy[0, 0, 0] if backward else NULL
    cdef const float *bt = NULL if backward else &beta[0]
    cdef const float *mu = &mean[0] if backward else NULL
    cdef const float *inv = &invstd[0] if backward else NULL
    cdef int ok
    cdef long chan_bytes = N * L * (8 if backward else 4)
    cdef long grp = CHAN_GROUP_BYTES // chan_bytes       # dlb_bn_chan_f clamps it to [1, 64]
    cdef bint chan = path == 1 or (path == 0 and chan_bytes <= CHAN_BYTES)
    with nogil:
        if L == 1:
            ok = dlb_bn_dense_f(backward, &x[0, 0, 0], g, N, C, eps, &gamma[0], bt, mu, inv, &out[0, 0, 0],
                                &o1[0], &o2[0])
        elif chan:
            ok = dlb_bn_chan_f(backward, &x[0, 0, 0], g, N, C, L, grp, eps, &gamma[0], bt, mu, inv, &out[0, 0, 0],
                               &o1[0], &o2[0])
        else:
            ok = dlb_bn_maps_f(backward, &x[0, 0, 0], g, N, C, L, eps, &gamma[0], bt, mu, inv, &out[0, 0, 0],
                               &o1[0], &o2[0])
    return bool(ok)

