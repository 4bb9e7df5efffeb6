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


def forward(real[:, :, ::1] x, real[:, :, ::1] y, const long[::1] hs, const long[::1] he,
            const long[::1] ws, const long[::1] we, const real[:, ::1] wr, const real[:, ::1] wc, int code):
    """x (P, H, W) -> y (P, Ho, Wo); code 0 max, 1 weighted sum (wr x wc), 2 L2 norm."""
    cdef Py_ssize_t P = x.shape[0], H = x.shape[1], W = x.shape[2], Ho = y.shape[1], Wo = y.shape[2]
    cdef Py_ssize_t p, oy, ox, r, c, r0, r1, c0
    cdef real *v
    cdef const real *row
    cdef real a, m
    with nogil, parallel():
        v = <real *> malloc(W * sizeof(real))
        for p in prange(P, schedule="static"):
            for oy in range(Ho):
                r0 = hs[oy]
                r1 = he[oy]
                row = &x[p, r0, 0]
                if code == 0:
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
                        c0 = ws[ox]
                        m = wc[ox, 0] * v[c0]
                        for c in range(c0 + 1, we[ox]):
                            m = m + wc[ox, c - c0] * v[c]
                        y[p, oy, ox] = m
                else:
                    for c in range(W):
                        v[c] = row[c] * row[c]
                    for r in range(r0 + 1, r1):
                        row = &x[p, r, 0]
                        for c in range(W):
                            v[c] = v[c] + row[c] * row[c]
                    for ox in range(Wo):
                        c0 = ws[ox]
                        m = v[c0]
                        for c in range(c0 + 1, we[ox]):
                            m = m + v[c]
                        y[p, oy, ox] = sqrt(m)
        free(v)


def backward(const real[:, :, ::1] x, const real[:, :, ::1] y, const real[:, :, ::1] dy, real[:, :, ::1] dx,
             const long[::1] hs, const long[::1] he, const long[::1] ws, const long[::1] we,
             const real[:, ::1] wr, const real[:, ::1] wc, int code):
    """dx (P, H, W) from dy (P, Ho, Wo); y (the forward output) is read by code 2 only."""
    cdef Py_ssize_t P = x.shape[0], H = x.shape[1], W = x.shape[2], Ho = dy.shape[1], Wo = dy.shape[2]
    cdef Py_ssize_t p, oy, ox, r, c, r0, c0, br, bc
    cdef real *h
    cdef real *drow
    cdef const real *row
    cdef real a, m, g, yv
    with nogil, parallel():
        h = <real *> malloc(W * sizeof(real))
        for p in prange(P, schedule="static"):
            for r in range(H):
                drow = &dx[p, r, 0]
                for c in range(W):
                    drow[c] = 0
            if code == 0:
                for oy in range(Ho):
                    for ox in range(Wo):
                        br = hs[oy]
                        bc = ws[ox]
                        m = x[p, br, bc]
                        for r in range(hs[oy], he[oy]):
                            for c in range(ws[ox], we[ox]):
                                if x[p, r, c] > m:
                                    m = x[p, r, c]
                                    br = r
                                    bc = c
                        dx[p, br, bc] = dx[p, br, bc] + dy[p, oy, ox]
            else:
                for oy in range(Ho):
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
                    r0 = hs[oy]
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
