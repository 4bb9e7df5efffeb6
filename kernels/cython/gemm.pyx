# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""BLIS-style GEMM (Cython front-end of ``gemm_kernel.h``): packing, cache blocking, a 6x16
float32 / 6x8 float64 AVX2+FMA register-blocked micro-kernel, OpenMP over the macro-loops.

The GEMMs that convolution reduces to: im2col / 1x1 convolution (eq. 9.6-9.7 as a matrix
product), the weight gradient (eq. 9.11), the data gradient (eq. 9.12-9.13) and Winograd's
batched products. ``gemm`` and ``batched_gemm`` release the GIL and use the OpenMP thread count
of the calling thread (``dlbench.threads.set_threads`` sets it) unless ``threads`` is given.
"""

import numpy as np

cimport numpy as cnp

cnp.import_array()

cdef extern from "gemm_kernel.h" nogil:
    int dlb_s_gemm(long m, long n, long k, float alpha, const float *a, long rsa, long csa,
                  const float *b, long rsb, long csb, float beta, float *c, long rsc, long csc,
                  int nthreads)
    int dlb_d_gemm(long m, long n, long k, double alpha, const double *a, long rsa, long csa,
                  const double *b, long rsb, long csb, double beta, double *c, long rsc, long csc,
                  int nthreads)
    int dlb_s_gemm_batched(long batch, long m, long n, long k, float alpha, const float *a,
                          long sa, long rsa, long csa, const float *b, long sb, long rsb, long csb,
                          float beta, float *c, long sc, long rsc, long csc, int nthreads)
    int dlb_d_gemm_batched(long batch, long m, long n, long k, double alpha, const double *a,
                          long sa, long rsa, long csa, const double *b, long sb, long rsb, long csb,
                          double beta, double *c, long sc, long rsc, long csc, int nthreads)
    int dlb_gemm_max_threads()
    int dlb_gemm_simd()
    void dlb_gemm_set_blocking(int dbl, long mc, long kc, long nc)
    void dlb_gemm_get_blocking(int dbl, long *mc, long *kc, long *nc)
    size_t dlb_gemm_release_buffers()
    double dlb_gemm_serial_flops
    double dlb_gemm_swap_gain
    int dlb_gemm_prefetch_b

MICRO_TILE = {"float32": (6, 16), "float64": (6, 8)}

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


cdef object _operand(object x, int ndim, str name):
    """x as an ndarray of ndim dims whose strides are whole elements (copied when not)."""
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.ndim != ndim:
        raise ValueError(f"gemm: {name} must be {ndim}-D, got shape {x.shape}")
    if x.dtype not in _DTYPES:
        raise ValueError(f"gemm: {name} must be float32 or float64, got {x.dtype}")
    cdef Py_ssize_t item = x.itemsize
    for s in x.strides:
        if s % item:
            return np.ascontiguousarray(x)
    return x


cdef inline long _es(object x, int axis):
    """Element stride of axis (1 for a length-1 axis, where any stride is valid)."""
    if x.shape[axis] == 1:
        return 1
    return x.strides[axis] // x.itemsize


cdef int _nthreads(object threads) except -1:
    if threads is None:
        return dlb_gemm_max_threads()
    if int(threads) < 1:
        raise ValueError(f"gemm: threads must be >= 1, got {threads}")
    return int(threads)


def gemm(a, b, c=None, alpha=1.0, beta=0.0, trans_a=False, trans_b=False, threads=None):
    """C = alpha * op(a) @ op(b) + beta * C for 2-D float32/float64 arrays; returns C.

    op(x) is x, or x.T when trans_x. op(a): (m, k), op(b): (k, n), C: (m, n), one dtype for all.
    Any strides are accepted (transposed views cost nothing: packing reads through strides).
    c=None allocates C (beta is then ignored); with beta == 0, C's old values (even NaN) are not
    read. ``threads`` overrides the OpenMP thread count. The GIL is released. Raises ValueError
    for wrong ranks, dtypes or shapes.
    """
    a = _operand(a, 2, "a")
    b = _operand(b, 2, "b")
    if a.dtype != b.dtype:
        raise ValueError(f"gemm: a and b must have one dtype, got {a.dtype} and {b.dtype}")
    if trans_a:
        a = a.T
    if trans_b:
        b = b.T
    cdef long m = a.shape[0], k = a.shape[1], n = b.shape[1]
    if b.shape[0] != k:
        raise ValueError(f"gemm: inner dimensions differ: op(a) is {a.shape}, op(b) is {b.shape}")
    out = c
    if c is None:
        c = np.empty((m, n), dtype=a.dtype)
        beta = 0.0
    else:
        if not isinstance(c, np.ndarray) or c.ndim != 2 or c.shape != (m, n):
            raise ValueError(f"gemm: c must be an ndarray of shape {(m, n)}, got "
                             f"{getattr(c, 'shape', type(c).__name__)}")
        if c.dtype != a.dtype:
            raise ValueError(f"gemm: c must have dtype {a.dtype}, got {c.dtype}")
        if not c.flags.writeable:
            raise ValueError("gemm: c is read-only")
        if any(s % c.itemsize for s in c.strides) or np.may_share_memory(c, a) \
                or np.may_share_memory(c, b):
            c = np.array(c, order="C") if beta != 0 else np.empty((m, n), dtype=a.dtype)
    cdef int nt = _nthreads(threads)
    cdef long rsa = _es(a, 0), csa = _es(a, 1), rsb = _es(b, 0), csb = _es(b, 1)
    cdef long rsc = _es(c, 0), csc = _es(c, 1)
    cdef int err = 0
    cdef float af = alpha, bf = beta
    cdef double ad = alpha, bd = beta
    cdef float *cf
    cdef double *cd
    cdef const float *pa_f
    cdef const float *pb_f
    cdef const double *pa_d
    cdef const double *pb_d
    if a.dtype == np.float32:
        pa_f = <const float *>cnp.PyArray_DATA(a)
        pb_f = <const float *>cnp.PyArray_DATA(b)
        cf = <float *>cnp.PyArray_DATA(c)
        with nogil:
            err = dlb_s_gemm(m, n, k, af, pa_f, rsa, csa, pb_f, rsb, csb, bf, cf, rsc, csc, nt)
    else:
        pa_d = <const double *>cnp.PyArray_DATA(a)
        pb_d = <const double *>cnp.PyArray_DATA(b)
        cd = <double *>cnp.PyArray_DATA(c)
        with nogil:
            err = dlb_d_gemm(m, n, k, ad, pa_d, rsa, csa, pb_d, rsb, csb, bd, cd, rsc, csc, nt)
    if err:
        raise MemoryError("gemm: could not allocate the packing buffers")
    if out is not None and c is not out:
        out[...] = c
        return out
    return c


def batched_gemm(a, b, c=None, alpha=1.0, beta=0.0, trans_a=False, trans_b=False, threads=None):
    """C[i] = alpha * op(a[i]) @ op(b[i]) + beta * C[i] for i < batch; returns C (batch, m, n).

    a: (batch, m, k), b: (batch, k, n) (transposed per item with trans_a / trans_b); a 2-D a or b
    is shared by every item (e.g. one weight matrix against a batch of im2col matrices). Many
    items run one per thread; few large ones run in turn on all threads. Same dtype, stride,
    beta and threads rules as ``gemm``; the GIL is released.
    """
    if not isinstance(a, np.ndarray):
        a = np.asarray(a)
    if not isinstance(b, np.ndarray):
        b = np.asarray(b)
    if a.ndim == 2 and b.ndim == 3:
        a = a[None]
    if b.ndim == 2 and a.ndim == 3:
        b = b[None]
    a = _operand(a, 3, "a")
    b = _operand(b, 3, "b")
    if a.dtype != b.dtype:
        raise ValueError(f"batched_gemm: a and b must have one dtype, got {a.dtype} and {b.dtype}")
    if trans_a:
        a = a.transpose(0, 2, 1)
    if trans_b:
        b = b.transpose(0, 2, 1)
    batch = max(a.shape[0], b.shape[0])
    if a.shape[0] not in (1, batch) or b.shape[0] not in (1, batch):
        raise ValueError(f"batched_gemm: batch sizes differ: a is {a.shape}, b is {b.shape}")
    cdef long nb = batch, m = a.shape[1], k = a.shape[2], n = b.shape[2]
    if b.shape[1] != k:
        raise ValueError(f"batched_gemm: inner dimensions differ: op(a) is {a.shape}, op(b) is {b.shape}")
    out = c
    if c is None:
        c = np.empty((nb, m, n), dtype=a.dtype)
        beta = 0.0
    else:
        if not isinstance(c, np.ndarray) or c.shape != (nb, m, n):
            raise ValueError(f"batched_gemm: c must be an ndarray of shape {(nb, m, n)}, got "
                             f"{getattr(c, 'shape', type(c).__name__)}")
        if c.dtype != a.dtype:
            raise ValueError(f"batched_gemm: c must have dtype {a.dtype}, got {c.dtype}")
        if not c.flags.writeable:
            raise ValueError("batched_gemm: c is read-only")
        if any(s % c.itemsize for s in c.strides) or np.may_share_memory(c, a) \
                or np.may_share_memory(c, b) or (nb > 1 and c.strides[0] == 0):
            c = np.array(c, order="C") if beta != 0 else np.empty((nb, m, n), dtype=a.dtype)
    if nb == 0:
        return c if out is None else out
    cdef int nt = _nthreads(threads)
    cdef long sa = _es(a, 0), rsa = _es(a, 1), csa = _es(a, 2)
    cdef long sb = _es(b, 0), rsb = _es(b, 1), csb = _es(b, 2)
    cdef long sc = _es(c, 0), rsc = _es(c, 1), csc = _es(c, 2)
    if a.shape[0] == 1:
        sa = 0
    if b.shape[0] == 1:
        sb = 0
    cdef int err = 0
    cdef float af = alpha, bf = beta
    cdef double ad = alpha, bd = beta
    cdef float *cf
    cdef double *cd
    cdef const float *pa_f
    cdef const float *pb_f
    cdef const double *pa_d
    cdef const double *pb_d
    if a.dtype == np.float32:
        pa_f = <const float *>cnp.PyArray_DATA(a)
        pb_f = <const float *>cnp.PyArray_DATA(b)
        cf = <float *>cnp.PyArray_DATA(c)
        with nogil:
            err = dlb_s_gemm_batched(nb, m, n, k, af, pa_f, sa, rsa, csa, pb_f, sb, rsb, csb, bf, cf,
                                    sc, rsc, csc, nt)
    else:
        pa_d = <const double *>cnp.PyArray_DATA(a)
        pb_d = <const double *>cnp.PyArray_DATA(b)
        cd = <double *>cnp.PyArray_DATA(c)
        with nogil:
            err = dlb_d_gemm_batched(nb, m, n, k, ad, pa_d, sa, rsa, csa, pb_d, sb, rsb, csb, bd, cd,
                                    sc, rsc, csc, nt)
    if err:
        raise MemoryError("batched_gemm: could not allocate the packing buffers")
    if out is not None and c is not out:
        out[...] = c
        return out
    return c


def simd():
    """True when the packed AVX2+FMA kernels were compiled (False: the portable C fallback)."""
    return bool(dlb_gemm_simd())


def set_blocking(dtype, mc=0, kc=0, nc=0):
    """Set the cache blocking (MC rows of A per L2 block, KC depth, NC columns of B per L3 panel)
    for float32 or float64; 0 keeps a value. MC/NC are rounded up to the micro-tile. For tuning."""
    dbl = 1 if np.dtype(dtype) == np.float64 else 0
    dlb_gemm_set_blocking(dbl, mc, kc, nc)


def get_blocking(dtype):
    """(MC, KC, NC) in use for float32 or float64."""
    cdef long mc, kc, nc
    dlb_gemm_get_blocking(1 if np.dtype(dtype) == np.float64 else 0, &mc, &kc, &nc)
    return mc, kc, nc


def set_serial_threshold(double flops):
    """Calls below this many flops (2mnk) run on one thread; returns the previous value."""
    global dlb_gemm_serial_flops
    old = dlb_gemm_serial_flops
    dlb_gemm_serial_flops = flops
    return old


def release_buffers():
    """Free the cached packing buffers not in use; returns the bytes freed."""
    return dlb_gemm_release_buffers()


def _tune(prefetch_b=None, swap_gain=None):
    """Experimental knobs for tuning runs: B prefetch mode on the fused path (0 off, 1 to L1,
    2 to L2) and the C / C^T orientation threshold. Returns the previous values."""
    global dlb_gemm_prefetch_b, dlb_gemm_swap_gain
    old = {"prefetch_b": dlb_gemm_prefetch_b, "swap_gain": dlb_gemm_swap_gain}
    if prefetch_b is not None:
        dlb_gemm_prefetch_b = prefetch_b
    if swap_gain is not None:
        dlb_gemm_swap_gain = swap_gain
    return old
