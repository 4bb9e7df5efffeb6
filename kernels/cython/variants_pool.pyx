# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython + OpenMP pooling core: the separable plan of ``dlbench.kernels.reference.pool``.

Per output row a vertical pass reduces the window's rows into a thread-local row buffer (max,
weighted sum or sum of squares, vectorised by the compiler), then a horizontal pass reduces each
window's columns. The backward of weighted sums / L2 is the transposed pair of passes; max
routes dy to the first (row-major) maximum of each window. OpenMP over the feature maps.
"""

from cython.parallel cimport parallel, prange
from libc.math cimport sqrt
from libc.stdlib cimport free, malloc

ctypedef fused real:
    float
    double

cdef extern from *:
    """
    #define DLB_SUM(T, NAME)                                                       \\
    static inline T NAME(const T *restrict v, long n) {                            \\
        T a = 0;                                                                   \\
        _Pragma("omp simd reduction(+:a)")                                         \\
        for (long i = 0; i < n; i++) a += v[i];                                    \\
        return a;                                                                  \\
    }
    DLB_SUM(float, dlb_sum_f) DLB_SUM(double, dlb_sum_d)
    """
    float dlb_sum_f(const float *v, long n) nogil
    double dlb_sum_d(const double *v, long n) nogil


cdef inline real wsum(const real *w, const real *v, Py_ssize_t n, bint weighted) noexcept nogil:
    """sum_k w[k] v[k] (or sum_k v[k]) with four partial sums (long windows: global pooling)."""
    cdef real a0 = 0, a1 = 0, a2 = 0, a3 = 0
    cdef Py_ssize_t k = 0
    while k + 4 <= n:
        if weighted:
            a0 = a0 + w[k] * v[k]
            a1 = a1 + w[k + 1] * v[k + 1]
            a2 = a2 + w[k + 2] * v[k + 2]
            a3 = a3 + w[k + 3] * v[k + 3]
        else:
            a0 = a0 + v[k]
            a1 = a1 + v[k + 1]
            a2 = a2 + v[k + 2]
            a3 = a3 + v[k + 3]
        k = k + 4
    while k < n:
        a0 = a0 + (w[k] * v[k] if weighted else v[k])
        k = k + 1
    return (a0 + a1) + (a2 + a3)


def forward(real[:, :, ::1] x, real[:, :, ::1] y, long[:, :, ::1] idx, bint want_idx, const long[::1] hs,
            const long[::1] he, const long[::1] ws, const long[::1] we, const real[:, ::1] wr,
            const real[:, ::1] wc, int code, int nch=0):
    """x (P, H, W) -> y (P, Ho, Wo); code 0 max, 1 weighted sum (wr x wc), 2 L2 norm; max with
    ``want_idx`` also writes idx = r * W + c of the first maximum in row-major order.
    (``nch``, the Numba core's chunk count, is not needed: OpenMP threads own their buffers.)"""
    cdef Py_ssize_t P = x.shape[0], H = x.shape[1], W = x.shape[2], Ho = y.shape[1], Wo = y.shape[2]
    cdef Py_ssize_t p, oy, ox, r, c, r0, r1, c0, bc
    cdef real *v
    cdef real *rows
    cdef const real *row
    cdef real a, m, fr, br
    cdef bint take
    with nogil, parallel():
        v = <real *> malloc(2 * W * sizeof(real))
        rows = v + W
        for p in prange(P, schedule="static"):
            for oy in range(Ho):
                r0 = hs[oy]
                r1 = he[oy]
                row = &x[p, r0, 0]
                if code == 0 and want_idx:
                    fr = <real> r0
                    for c in range(W):
                        v[c] = row[c]
                        rows[c] = fr
                    for r in range(r0 + 1, r1):
                        row = &x[p, r, 0]
                        fr = <real> r
                        for c in range(W):
                            rows[c] = fr if row[c] > v[c] else rows[c]
                            v[c] = row[c] if row[c] > v[c] else v[c]
                    for ox in range(Wo):
                        bc = ws[ox]
                        m = v[bc]
                        br = rows[bc]
                        for c in range(bc + 1, we[ox]):
                            take = (v[c] > m) | ((v[c] == m) & (rows[c] < br))
                            m = v[c] if take else m
                            br = rows[c] if take else br
                            bc = c if take else bc
                        y[p, oy, ox] = m
                        idx[p, oy, ox] = (<long> br) * W + bc
                elif code == 0:
                    for c in range(W):
                        v[c] = row[c]
                    for r in range(r0 + 1, r1):
                        row = &x[p, r, 0]
                        for c in range(W):
                            v[c] = row[c] if row[c] > v[c] else v[c]
                    for ox in range(Wo):
                        c0 = ws[ox]
                        m = v[c0]
                        for c in range(c0 + 1, we[ox]):
                            m = v[c] if v[c] > m else m
                        y[p, oy, ox] = m
                elif code == 1:
                    a = wr[oy, 0]
                    for c in range(W):
                        v[c] = a * row[c]
                    for r in range(r0 + 1, r1):
                        a = wr[oy, r - r0]
                        row = &x[p, r, 0]
                        for c in range(W):
                            v[c] = v[c] + a * row[c]
                    for ox in range(Wo):
                        y[p, oy, ox] = wsum(&wc[ox, 0], v + ws[ox], we[ox] - ws[ox], True)
                else:
                    for c in range(W):
                        v[c] = row[c] * row[c]
                    for r in range(r0 + 1, r1):
                        row = &x[p, r, 0]
                        for c in range(W):
                            v[c] = v[c] + row[c] * row[c]
                    for ox in range(Wo):
                        y[p, oy, ox] = sqrt(wsum(&wc[ox, 0], v + ws[ox], we[ox] - ws[ox], False))
        free(v)


def row_means(const real[:, ::1] x2, real[::1] y, int nch=0):
    """y[i] = mean of row i of x2 (R, L): global average pooling (omp simd sums)."""
    cdef Py_ssize_t R = x2.shape[0], L = x2.shape[1], i
    cdef real scale = <real> (1.0 / L)
    for i in prange(R, nogil=True, schedule="static"):
        if real is float:
            y[i] = dlb_sum_f(&x2[i, 0], L) * scale
        else:
            y[i] = dlb_sum_d(&x2[i, 0], L) * scale


def row_fill(const real[::1] g, real[:, ::1] dx2, int nch=0):
    """dx2[i, :] = g[i] / L: the backward of global average pooling."""
    cdef Py_ssize_t R = dx2.shape[0], L = dx2.shape[1], i, k
    cdef real scale = <real> (1.0 / L)
    cdef real v
    for i in prange(R, nogil=True, schedule="static"):
        v = g[i] * scale
        for k in range(L):
            dx2[i, k] = v


def scatter_max(const real[:, ::1] dy, const long[:, ::1] idx, real[:, ::1] dx, int nch=0):
    """dx (P, H*W) = 0, then dx[p, idx[p, o]] += dy[p, o]: max pooling's backward from the indices."""
    cdef Py_ssize_t P = dx.shape[0], L = dx.shape[1], M = dy.shape[1], p, i, o
    for p in prange(P, nogil=True, schedule="static"):
        for i in range(L):
            dx[p, i] = 0
        for o in range(M):
            dx[p, idx[p, o]] = dx[p, idx[p, o]] + dy[p, o]


def backward(const real[:, :, ::1] x, const real[:, :, ::1] y, const real[:, :, ::1] dy, real[:, :, ::1] dx,
             const long[::1] hs, const long[::1] he, const long[::1] ws, const long[::1] we,
             const real[:, ::1] wr, const real[:, ::1] wc, int code, int nch=0):
    """dx (P, H, W) from dy (P, Ho, Wo); y (the forward output) is read by code 2 only.

    max: a vertical pass keeps each column's maximum and the first row holding it; the horizontal
    pass picks, among the window's columns holding the window maximum, the smallest such row, then
    the smallest column: the first maximum in row-major order."""
    cdef Py_ssize_t P = x.shape[0], H = x.shape[1], W = x.shape[2], Ho = dy.shape[1], Wo = dy.shape[2]
    cdef Py_ssize_t p, oy, ox, r, c, r0, c0, br, bc
    cdef real *h
    cdef real *rows
    cdef real *drow
    cdef const real *row
    cdef real a, m, g, yv, fr
    cdef bint take
    with nogil, parallel():
        h = <real *> malloc(2 * W * sizeof(real))
        rows = h + W
        for p in prange(P, schedule="static"):
            for r in range(H):
                drow = &dx[p, r, 0]
                for c in range(W):
                    drow[c] = 0
            for oy in range(Ho):
                r0 = hs[oy]
                if code == 0:
                    row = &x[p, r0, 0]
                    fr = <real> r0
                    for c in range(W):
                        h[c] = row[c]
                        rows[c] = fr
                    for r in range(r0 + 1, he[oy]):
                        row = &x[p, r, 0]
                        fr = <real> r
                        for c in range(W):
                            rows[c] = fr if row[c] > h[c] else rows[c]
                            h[c] = row[c] if row[c] > h[c] else h[c]
                    for ox in range(Wo):
                        bc = ws[ox]
                        m = h[bc]
                        yv = rows[bc]
                        for c in range(bc + 1, we[ox]):      # branch-free: data-dependent comparisons
                            take = (h[c] > m) | ((h[c] == m) & (rows[c] < yv))
                            m = h[c] if take else m
                            yv = rows[c] if take else yv
                            bc = c if take else bc
                        br = <Py_ssize_t> yv
                        dx[p, br, bc] = dx[p, br, bc] + dy[p, oy, ox]
                else:
                    for c in range(W):
                        h[c] = 0
                    for ox in range(Wo):
                        g = dy[p, oy, ox]
                        c0 = ws[ox]
                        if code == 1:
                            for c in range(c0, we[ox]):
                                h[c] = h[c] + g * wc[ox, c - c0]
                        else:
                            yv = y[p, oy, ox]
                            g = g / yv if yv != 0 else 0
                            for c in range(c0, we[ox]):
                                h[c] = h[c] + g
                    for r in range(r0, he[oy]):
                        drow = &dx[p, r, 0]
                        if code == 1:
                            a = wr[oy, r - r0]
                            for c in range(W):
                                drow[c] = drow[c] + a * h[c]
                        else:
                            row = &x[p, r, 0]
                            for c in range(W):
                                drow[c] = drow[c] + row[c] * h[c]
        free(h)
