# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython + OpenMP recurrences of the chapter-10 RNN kernels (eq. 10.8-10.21, fig. 10.4).

The sequential part of each pass runs here without the GIL. The sequences of a batch are
independent, so the recurrences split the batch into one block of rows per OpenMP thread
(``parts``) and each thread runs every time step of its block alone: the product of its rows
with W (a register-blocked kernel on W packed once per call) and a fused element-wise pass. No
barrier per step. Generation calls SciPy's BLAS per step (the ``?gemm``/``?gemv`` pointers are
read from ``scipy.linalg.cython_blas`` at import, so no SciPy is needed at build time). The big one-shot GEMMs over
all time steps are done by the caller (``rnn_register.py``). float32 uses a vectorisable
rational tanh (error < 4e-7); float64 uses libm's tanh. Arrays are C-contiguous.
"""

# Floating-point comparisons may trap by default (-ftrapping-math), which stops GCC from
# if-converting the clamp of the rational tanh, and so from vectorising the loops that use it.
cdef extern from *:
    """
    #if defined(__GNUC__) && !defined(__clang__)
    #pragma GCC optimize ("no-trapping-math")
    #endif
    """

# The per-step product with W reuses one W for all tau steps, so W is packed once per call into
# panels of NR columns (k-major inside a panel) and a register-blocked kernel (4 rows x NR
# columns of accumulators, GCC/Clang vector extensions: AVX2 registers with -march=native, SSE
# pairs otherwise) multiplies a block of rows by it at every step. A BLAS call per step would
# re-pack W every time (2x slower here at n_h = 512, where W no longer fits in L2).
cdef extern from *:
    """
    #include <string.h>
    #define DLB_RNN_MR 4
    #define DLB_RNN_KERNELS(T, SUF, VL)                                                           \
    typedef T dlb_rnn_v##SUF __attribute__((vector_size(VL * sizeof(T))));                        \
    enum { DLB_RNN_NR_##SUF = 2 * VL };                                                           \
    /* P[(jp K + k) NR + jj] = B[k, jp NR + jj] (0 beyond N): B (K x N) row-major, row stride ldb */ \
    static void dlb_rnn_pack_##SUF(const T *B, long K, long N, long ldb, T *P) {                 \
        const long nr = DLB_RNN_NR_##SUF, np = (N + nr - 1) / nr;                                 \
        for (long jp = 0; jp < np; jp++)                                                          \
            for (long k = 0; k < K; k++)                                                          \
                for (long jj = 0; jj < nr; jj++) {                                                \
                    long j = jp * nr + jj;                                                        \
                    P[(jp * K + k) * nr + jj] = j < N ? B[k * ldb + j] : (T)0;                    \
                }                                                                                 \
    }                                                                                             \
    /* C (m x N, row stride ldc) = A (m x K, row stride lda) @ B, B packed by dlb_rnn_pack */     \
    static void dlb_rnn_gemm_##SUF(long m, long N, long K, const T *A, long lda, const T *P,       \
                                   T *C, long ldc) {                                              \
        const long nr = DLB_RNN_NR_##SUF, np = (N + nr - 1) / nr;                                 \
        for (long jp = 0; jp < np; jp++) {                                                        \
            const T *pp = P + jp * K * nr;                                                        \
            const long j0 = jp * nr, nj = N - j0 < nr ? N - j0 : nr;                              \
            for (long i = 0; i < m; i += DLB_RNN_MR) {                                            \
                const long r = m - i < DLB_RNN_MR ? m - i : DLB_RNN_MR;                           \
                if (r == 1) {  /* one row (batch 1): no redundant rows */                         \
                    const T *a = A + i * lda;                                                     \
                    dlb_rnn_v##SUF s0 = {0}, s1 = {0};                                            \
                    for (long k = 0; k < K; k++) {                                                \
                        dlb_rnn_v##SUF w0, w1;                                                    \
                        memcpy(&w0, pp + k * nr, sizeof w0);                                      \
                        memcpy(&w1, pp + k * nr + VL, sizeof w1);                                 \
                        s0 += a[k] * w0; s1 += a[k] * w1;                                         \
                    }                                                                             \
                    T out1[2 * VL];                                                               \
                    memcpy(out1, &s0, sizeof s0); memcpy(out1 + VL, &s1, sizeof s1);              \
                    memcpy(C + i * ldc + j0, out1, nj * sizeof(T));                               \
                    continue;                                                                     \
                }                                                                                 \
                /* rows past the end repeat the last row: computed, never stored */               \
                const T *a0 = A + i * lda, *a1 = A + (i + (r > 1)) * lda;                         \
                const T *a2 = A + (i + (r > 2 ? 2 : r - 1)) * lda;                                \
                const T *a3 = A + (i + (r > 3 ? 3 : r - 1)) * lda;                                \
                dlb_rnn_v##SUF c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0};                        \
                dlb_rnn_v##SUF c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};                        \
                for (long k = 0; k < K; k++) {                                                    \
                    dlb_rnn_v##SUF w0, w1;                                                        \
                    memcpy(&w0, pp + k * nr, sizeof w0);                                          \
                    memcpy(&w1, pp + k * nr + VL, sizeof w1);                                     \
                    const T x0 = a0[k], x1 = a1[k], x2 = a2[k], x3 = a3[k];                        \
                    c00 += x0 * w0; c01 += x0 * w1; c10 += x1 * w0; c11 += x1 * w1;               \
                    c20 += x2 * w0; c21 += x2 * w1; c30 += x3 * w0; c31 += x3 * w1;               \
                }                                                                                 \
                T out[DLB_RNN_MR][2 * VL];                                                        \
                memcpy(out[0], &c00, sizeof c00); memcpy(out[0] + VL, &c01, sizeof c01);          \
                memcpy(out[1], &c10, sizeof c10); memcpy(out[1] + VL, &c11, sizeof c11);          \
                memcpy(out[2], &c20, sizeof c20); memcpy(out[2] + VL, &c21, sizeof c21);          \
                memcpy(out[3], &c30, sizeof c30); memcpy(out[3] + VL, &c31, sizeof c31);          \
                for (long q = 0; q < r; q++)                                                      \
                    memcpy(C + (i + q) * ldc + j0, out[q], nj * sizeof(T));                       \
            }                                                                                     \
        }                                                                                         \
    }
    DLB_RNN_KERNELS(float, f, 8)
    DLB_RNN_KERNELS(double, d, 4)
    """
    void dlb_rnn_pack_f(const float *B, long K, long N, long ldb, float *P) nogil
    void dlb_rnn_pack_d(const double *B, long K, long N, long ldb, double *P) nogil
    void dlb_rnn_gemm_f(long m, long N, long K, const float *A, long lda, const float *P, float *C,
                        long ldc) nogil
    void dlb_rnn_gemm_d(long m, long N, long K, const double *A, long lda, const double *P, double *C,
                        long ldc) nogil
    int DLB_RNN_NR_f
    int DLB_RNN_NR_d

from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer
from cython.parallel cimport prange
from libc.math cimport exp, log, tanh

ctypedef fused real:
    float
    double

ctypedef void (*sgemm_t)(char *ta, char *tb, int *m, int *n, int *k, float *alpha, float *a, int *lda,
                         float *b, int *ldb, float *beta, float *c, int *ldc) noexcept nogil
ctypedef void (*dgemm_t)(char *ta, char *tb, int *m, int *n, int *k, double *alpha, double *a, int *lda,
                         double *b, int *ldb, double *beta, double *c, int *ldc) noexcept nogil

ctypedef void (*sgemv_t)(char *ta, int *m, int *n, float *alpha, float *a, int *lda, float *x, int *incx,
                         float *beta, float *y, int *incy) noexcept nogil
ctypedef void (*dgemv_t)(char *ta, int *m, int *n, double *alpha, double *a, int *lda, double *x, int *incx,
                         double *beta, double *y, int *incy) noexcept nogil

cdef sgemm_t _sgemm = NULL
cdef dgemm_t _dgemm = NULL
cdef sgemv_t _sgemv = NULL
cdef dgemv_t _dgemv = NULL


cdef void *_blas_pointer(str name) except NULL:
    from scipy.linalg import cython_blas
    cap = cython_blas.__pyx_capi__[name]
    return PyCapsule_GetPointer(cap, PyCapsule_GetName(cap))


_sgemm = <sgemm_t>_blas_pointer("sgemm")
_dgemm = <dgemm_t>_blas_pointer("dgemm")
_sgemv = <sgemv_t>_blas_pointer("sgemv")
_dgemv = <dgemv_t>_blas_pointer("dgemv")


cdef inline void _mm(real *a, bint trans_a, real *b, bint trans_b, real *c, int m, int n, int k,
                     real beta) noexcept nogil:
    """Row-major C (m x n) = op(A) (m x k) @ op(B) (k x n) + beta C, all contiguous: the
    column-major BLAS call for C^T = op(B)^T op(A)^T. One row (m = 1, batch 1) goes to ?gemv:
    a GEMM with one column packs all of B at every call, ten times slower here."""
    cdef char ta = b'T' if trans_b else b'N'
    cdef char tb = b'T' if trans_a else b'N'
    cdef int lda = k if trans_b else n         # row length of B as stored
    cdef int ldb = m if trans_a else k         # row length of A as stored
    cdef int ldc = n
    cdef int inc = 1
    cdef int rows = k if trans_b else n        # rows of B as a column-major matrix
    cdef int cols = n if trans_b else k
    cdef real one = 1
    if m == 1:
        if real is float:
            _sgemv(&ta, &rows, &cols, &one, b, &lda, a, &inc, &beta, c, &inc)
        else:
            _dgemv(&ta, &rows, &cols, &one, b, &lda, a, &inc, &beta, c, &inc)
    elif real is float:
        _sgemm(&ta, &tb, &n, &m, &k, &one, b, &lda, a, &ldb, &beta, c, &ldc)
    else:
        _dgemm(&ta, &tb, &n, &m, &k, &one, b, &lda, a, &ldb, &beta, c, &ldc)


def panel_width(dtype):
    """Columns per packed panel of W (two SIMD vectors): 16 for float32, 8 for float64."""
    return DLB_RNN_NR_f if str(dtype) == "float32" else DLB_RNN_NR_d


def pack_panels(real[:, ::1] B, real[::1] P):
    """Pack B (K x N) into column panels for the per-step kernel (P: ceil(N / NR) * K * NR)."""
    cdef long K = B.shape[0], N = B.shape[1]
    with nogil:
        if real is float:
            dlb_rnn_pack_f(&B[0, 0], K, N, N, &P[0])
        else:
            dlb_rnn_pack_d(&B[0, 0], K, N, N, &P[0])


cdef inline void _mm_packed(real *a, real *P, real *c, long m, long n, long k) noexcept nogil:
    """Row-major C (m x n) = A (m x k) @ B (k x n) with B packed by pack_panels."""
    if real is float:
        dlb_rnn_gemm_f(m, n, k, a, k, P, c, n)
    else:
        dlb_rnn_gemm_d(m, n, k, a, k, P, c, n)


cdef inline float _tanh32(float x) noexcept nogil:
    """Rational minimax tanh on [-7.905, 7.905] (Eigen's float32 approximation), branch-free so
    that the loops calling it vectorise."""
    cdef float clamp = <float>7.90531110763549805
    cdef float xc = x if x < clamp else clamp
    xc = xc if xc > -clamp else -clamp
    cdef float x2 = xc * xc
    cdef float p = <float>-2.76076847742355e-16
    p = p * x2 + <float>2.00018790482477e-13
    p = p * x2 + <float>-8.60467152213735e-11
    p = p * x2 + <float>5.12229709037114e-08
    p = p * x2 + <float>1.48572235717979e-05
    p = p * x2 + <float>6.37261928875436e-04
    p = p * x2 + <float>4.89352455891786e-03
    cdef float q = <float>1.19825839466702e-06
    q = q * x2 + <float>1.18534705686654e-04
    q = q * x2 + <float>2.26843463243900e-03
    q = q * x2 + <float>4.89352518554385e-03
    return xc * p / q


cdef inline real _act(real a) noexcept nogil:
    if real is float:
        return _tanh32(a)
    else:
        return tanh(a)


def forward_recurrence(real[:, :, ::1] h, real[:, ::1] h0, real[::1] Wp, real[::1] b,
                       long long[::1] lengths, real[:, ::1] h_last, real[:, ::1] tmp, long long[::1] parts):
    """h holds U x(t) on entry and h(t) on exit (eq. 10.8-10.9). Thread p owns rows
    parts[p]:parts[p+1]; per step tmp = h(t-1) W^T on them (Wp: W^T packed by pack_panels), then
    h(t) = tanh(U x(t) + b + tmp) on live rows (0 on padding); h_last[i] = h(L_i)."""
    cdef Py_ssize_t tau = h.shape[0], nh = h.shape[2]
    cdef Py_ssize_t p, t, i, j, i0, i1
    cdef real *prev
    cdef real *row
    cdef real *tr
    with nogil:
        for p in prange(parts.shape[0] - 1, schedule="static", num_threads=parts.shape[0] - 1):
            i0 = parts[p]
            i1 = parts[p + 1]
            for t in range(tau):
                prev = &h0[i0, 0] if t == 0 else &h[t - 1, i0, 0]
                _mm_packed(prev, &Wp[0], &tmp[i0, 0], i1 - i0, nh, nh)
                for i in range(i0, i1):
                    row = &h[t, i, 0]
                    tr = &tmp[i, 0]
                    if t < lengths[i]:
                        for j in range(nh):
                            row[j] = _act(row[j] + b[j] + tr[j])
                        if t == lengths[i] - 1:
                            for j in range(nh):
                                h_last[i, j] = row[j]
                    else:
                        for j in range(nh):
                            row[j] = 0


def backward_recurrence(real[:, :, ::1] da, real[:, :, ::1] h, real[::1] Wp, long long[::1] lengths,
                        real[:, ::1] grad_h_last, bint has_last, Py_ssize_t truncate, real[:, ::1] carry,
                        long long[::1] parts):
    """BPTT (eq. 10.20-10.21): da holds V^T dL/do(t) on entry and dL/da(t) on exit. Thread p owns
    rows parts[p]:parts[p+1] and goes from t = tau down: g = da[t] + carry (+ dL/dh(L_i) at the
    last step), da[t] = (1 - h(t)^2) g on live rows, carry = da[t] W on its rows (Wp: W packed by
    pack_panels), cut at truncation boundaries. On exit carry = dL/dh(0)."""
    cdef Py_ssize_t tau = h.shape[0], nh = h.shape[2]
    cdef Py_ssize_t p, t, i, j, i0, i1
    cdef real *dr
    cdef real *hr
    cdef real *cr
    with nogil:
        for p in prange(parts.shape[0] - 1, schedule="static", num_threads=parts.shape[0] - 1):
            i0 = parts[p]
            i1 = parts[p + 1]
            for i in range(i0, i1):
                for j in range(nh):
                    carry[i, j] = 0
            for t in range(tau - 1, -1, -1):
                for i in range(i0, i1):
                    dr = &da[t, i, 0]
                    hr = &h[t, i, 0]
                    cr = &carry[i, 0]
                    if t < lengths[i]:
                        if has_last and t == lengths[i] - 1:
                            for j in range(nh):
                                cr[j] = cr[j] + grad_h_last[i, j]
                        for j in range(nh):
                            dr[j] = (1 - hr[j] * hr[j]) * (dr[j] + cr[j])
                    else:
                        for j in range(nh):
                            dr[j] = 0
                if t > 0 and truncate > 0 and t % truncate == 0:
                    for i in range(i0, i1):
                        for j in range(nh):
                            carry[i, j] = 0
                else:
                    _mm_packed(&da[t, i0, 0], &Wp[0], &carry[i0, 0], i1 - i0, nh, nh)
            if has_last:
                for i in range(i0, i1):
                    if lengths[i] == 0:
                        for j in range(nh):
                            carry[i, j] = carry[i, j] + grad_h_last[i, j]


def bias_mask(real[:, :, ::1] o, real[::1] c, long long[::1] lengths):
    """o(t) += c (eq. 10.10) on live steps, 0 on padding steps."""
    cdef Py_ssize_t tau = o.shape[0], n = o.shape[1], k = o.shape[2]
    cdef Py_ssize_t t, i, j
    with nogil:
        for t in prange(tau, schedule="static"):
            for i in range(n):
                if t < lengths[i]:
                    for j in range(k):
                        o[t, i, j] = o[t, i, j] + c[j]
                else:
                    for j in range(k):
                        o[t, i, j] = 0


def masked_sum(real[:, :, ::1] a, long long[::1] lengths, real[::1] out):
    """out = sum over live steps (t < L_i) of a[t, i, :]."""
    cdef Py_ssize_t tau = a.shape[0], n = a.shape[1], k = a.shape[2]
    cdef Py_ssize_t t, i, j
    with nogil:
        for j in range(k):
            out[j] = 0
        for t in range(tau):
            for i in range(n):
                if t < lengths[i]:
                    for j in range(k):
                        out[j] = out[j] + a[t, i, j]


def nll(real[:, :, ::1] o, long long[:, ::1] y, long long[::1] lengths, real[:, :, ::1] grad):
    """Eq. 10.11-10.14 and 10.18 fused per (t, i) row: returns the loss (float64) and writes
    grad = softmax(o) - onehot(y) (0 on padding)."""
    cdef Py_ssize_t tau = o.shape[0], n = o.shape[1], k = o.shape[2]
    cdef Py_ssize_t r, t, i, j
    cdef double loss = 0, m, s, e
    with nogil:
        for r in prange(tau * n, schedule="static"):
            t = r // n
            i = r - t * n
            if t >= lengths[i]:
                for j in range(k):
                    grad[t, i, j] = 0
            else:
                m = o[t, i, 0]
                for j in range(1, k):
                    if o[t, i, j] > m:
                        m = o[t, i, j]
                s = 0
                for j in range(k):
                    e = exp(o[t, i, j] - m)
                    grad[t, i, j] = <real>e
                    s = s + e
                for j in range(k):
                    grad[t, i, j] = <real>(grad[t, i, j] / s)
                grad[t, i, y[t, i]] = grad[t, i, y[t, i]] - 1
                loss += log(s) + m - o[t, i, y[t, i]]
    return loss


def tf_activate(real[:, :, ::1] h, long long[:, ::1] prev, real[:, ::1] Wt, real[::1] b,
                long long[::1] lengths):
    """Fig. 10.4 with teacher forcing: h holds U x(t); h = tanh(U x(t) + b + W[:, y(t-1)])."""
    cdef Py_ssize_t tau = h.shape[0], n = h.shape[1], nh = h.shape[2]
    cdef Py_ssize_t r, t, i, j
    cdef long long p
    with nogil:
        for r in prange(tau * n, schedule="static"):
            t = r // n
            i = r - t * n
            p = prev[t, i]
            if t >= lengths[i]:
                for j in range(nh):
                    h[t, i, j] = 0
            elif p >= 0:
                for j in range(nh):
                    h[t, i, j] = _act(h[t, i, j] + b[j] + Wt[p, j])
            else:
                for j in range(nh):
                    h[t, i, j] = _act(h[t, i, j] + b[j])


def tf_backward(real[:, :, ::1] da, real[:, :, ::1] h, long long[:, ::1] prev, long long[::1] lengths,
                real[:, ::1] dWt):
    """da holds V^T dL/do(t); becomes (1 - h^2) da on live steps (0 on padding), and
    dW^T[y(t-1), :] += da(t) (serial scatter)."""
    cdef Py_ssize_t tau = h.shape[0], n = h.shape[1], nh = h.shape[2]
    cdef Py_ssize_t r, t, i, j
    cdef long long p
    with nogil:
        for r in prange(tau * n, schedule="static"):
            t = r // n
            i = r - t * n
            if t >= lengths[i]:
                for j in range(nh):
                    da[t, i, j] = 0
            else:
                for j in range(nh):
                    da[t, i, j] = (1 - h[t, i, j] * h[t, i, j]) * da[t, i, j]
        for t in range(tau):
            for i in range(n):
                p = prev[t, i]
                if p >= 0:
                    for j in range(nh):
                        dWt[p, j] = dWt[p, j] + da[t, i, j]


def generate(real[:, :, ::1] a_in, real[:, ::1] Wt, real[::1] b, real[:, ::1] Vt, real[::1] c,
             long long[::1] y0, double[:, ::1] u, bint sample, long long[:, ::1] tokens,
             real[:, :, ::1] o, real[:, ::1] hbuf):
    """Free-running generation of fig. 10.4: per step h = tanh(U x(t) + b + W[:, y_hat(t-1)]),
    o = h V^T + c (BLAS, Vt = V^T), y_hat(t) = argmax o or the inverse-CDF draw of softmax(o) at u."""
    cdef Py_ssize_t tau = a_in.shape[0], n = a_in.shape[1], nh = a_in.shape[2], k = Vt.shape[1]
    cdef Py_ssize_t t, i, j, best
    cdef long long p
    cdef double m, s, cum, target
    cdef long long[::1] prev = y0.copy()
    with nogil:
        for t in range(tau):
            for i in range(n):
                p = prev[i]
                for j in range(nh):
                    if p >= 0:
                        hbuf[i, j] = _act(a_in[t, i, j] + b[j] + Wt[p, j])
                    else:
                        hbuf[i, j] = _act(a_in[t, i, j] + b[j])
            _mm(&hbuf[0, 0], False, &Vt[0, 0], False, &o[t, 0, 0], <int>n, <int>k, <int>nh, 0)
            for i in range(n):
                for j in range(k):
                    o[t, i, j] = o[t, i, j] + c[j]
                best = 0
                m = o[t, i, 0]
                for j in range(1, k):
                    if o[t, i, j] > m:
                        m = o[t, i, j]
                        best = j
                if sample:
                    s = 0
                    for j in range(k):
                        s = s + exp(o[t, i, j] - m)
                    target = u[t, i] * s
                    cum = 0
                    best = k - 1
                    for j in range(k):
                        cum = cum + exp(o[t, i, j] - m)
                        if cum > target:
                            best = j
                            break
                tokens[t, i] = best
                prev[i] = best
