# cython: language_level=3
"""OpenMP runtime controls and the compute-peak micro-kernel for the Cython backend.

``openmp_enabled()`` says whether the extensions were compiled with OpenMP (serial otherwise);
``set_num_threads(n)`` applies the run's thread count to every OpenMP team; ``fma_peak(...)``
runs independent vector FMA chains on all threads (``dlbench info``'s compute ceiling).
"""

from libc.time cimport time as c_time

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int dlb_openmp(void) { return 1; }
    static void dlb_set_threads(int n) { omp_set_num_threads(n); }
    static int dlb_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int dlb_openmp(void) { return 0; }
    static void dlb_set_threads(int n) { (void)n; }
    static int dlb_max_threads(void) { return 1; }
    #endif
    """
    int dlb_openmp()
    void dlb_set_threads(int n)
    int dlb_max_threads()

cdef extern from "peak.h":
    int dlb_fma_width()
    double dlb_fma_run(long iters, int nthreads, int width, float *sink) nogil


def openmp_enabled():
    """True when the Cython kernels were compiled with OpenMP."""
    return bool(dlb_openmp())


def set_num_threads(int n):
    """Set the OpenMP thread count used by every Cython kernel."""
    dlb_set_threads(n)


def get_max_threads():
    """Threads an OpenMP parallel region would use now (1 when built serial)."""
    return dlb_max_threads()


def fma_width():
    """Vector width in bits of the FMA micro-kernel on this CPU (512, 256, or 0 = unsupported)."""
    return dlb_fma_width()


def fma_peak(long iters, int nthreads):
    """Run ``iters`` steps of independent FMA chains on ``nthreads`` threads.

    Returns ``(flops, sink)``: floating-point operations performed and a checksum. Time it from
    Python; float32 GFLOP/s = flops / seconds / 1e9.
    """
    cdef float sink = 0
    cdef int width = dlb_fma_width()
    cdef double flops
    if width == 0:
        raise RuntimeError("this CPU has neither AVX2+FMA nor AVX-512")
    with nogil:
        flops = dlb_fma_run(iters, nthreads, width, &sink)
    return flops, sink
