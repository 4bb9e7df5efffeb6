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
