# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython + OpenMP optimizer updates: one fused parallel pass per step, in place."""

from cython.parallel cimport prange

ctypedef fused real:
    float
    double


def momentum(real[::1] theta, real[::1] v, real[::1] g, double lr, double alpha):
    """Algorithm 8.2 fused: v = alpha*v - lr*g; theta += v (1-D contiguous, one dtype)."""
    cdef Py_ssize_t i, n = theta.shape[0]
    cdef real a = <real>alpha
    cdef real e = <real>lr
    cdef real vi
    with nogil:
        for i in prange(n, schedule="static"):
            vi = a * v[i] - e * g[i]
            v[i] = vi
            theta[i] = theta[i] + vi
