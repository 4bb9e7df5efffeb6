# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython + OpenMP optimizer updates: one fused parallel pass per step, in place.

The loops are C (below, verbatim) written with GCC vector extensions: each OpenMP thread takes
one contiguous block of the arrays (static partition, block starts aligned to 64 elements so no
two threads share a cache line) and streams it with full-width SIMD (AVX-512, AVX or SSE,
whichever ``-march=native`` enables), then a scalar tail. Square roots use the SIMD sqrt
instruction directly: plain ``sqrtf`` keeps its errno contract under GCC without
``-fno-math-errno`` and would stop the loop from vectorizing. Small arrays run on one thread.

Each Python entry point takes 1-D C-contiguous arrays of one dtype (``_f32``/``_f64`` suffix)
and the per-step coefficients from ``dlbench.kernels.reference.optim_coeffs`` (see
``optim_register.py``), never raw hyperparameters.
"""

cdef extern from *:
    """
    #include <math.h>
    #include <string.h>
    #ifdef _OPENMP
    #include <omp.h>
    #endif
    #if defined(__AVX512F__) || defined(__AVX__) || defined(__SSE2__)
    #include <immintrin.h>
    #endif

    /* ---- SIMD width and the two vector element types --------------------------------- */
    #if defined(__AVX512F__)
    #define DLB_VB 64
    #elif defined(__AVX__)
    #define DLB_VB 32
    #else
    #define DLB_VB 16
    #endif
    typedef float vf32 __attribute__((vector_size(DLB_VB)));
    typedef double vf64 __attribute__((vector_size(DLB_VB)));
    typedef int vi32 __attribute__((vector_size(DLB_VB)));
    typedef long long vi64 __attribute__((vector_size(DLB_VB)));
    #define DLB_VL_f32 (DLB_VB / 4)
    #define DLB_VL_f64 (DLB_VB / 8)
    #define DLB_PAR_MIN 32768           /* fewer elements than this: one thread */

    static inline vf32 dlb_ld_vf32(const float *p) { vf32 v; memcpy(&v, p, sizeof v); return v; }
    static inline vf64 dlb_ld_vf64(const double *p) { vf64 v; memcpy(&v, p, sizeof v); return v; }
    static inline void dlb_st_vf32(float *p, vf32 v) { memcpy(p, &v, sizeof v); }
    static inline void dlb_st_vf64(double *p, vf64 v) { memcpy(p, &v, sizeof v); }
    static inline float dlb_ld_f32(const float *p) { return *p; }
    static inline double dlb_ld_f64(const double *p) { return *p; }
    static inline void dlb_st_f32(float *p, float v) { *p = v; }
    static inline void dlb_st_f64(double *p, double v) { *p = v; }

    #if defined(__AVX512F__)
    static inline vf32 dlb_sqrt_vf32(vf32 x) { return (vf32)_mm512_sqrt_ps((__m512)x); }
    static inline vf64 dlb_sqrt_vf64(vf64 x) { return (vf64)_mm512_sqrt_pd((__m512d)x); }
    #elif defined(__AVX__)
    static inline vf32 dlb_sqrt_vf32(vf32 x) { return (vf32)_mm256_sqrt_ps((__m256)x); }
    static inline vf64 dlb_sqrt_vf64(vf64 x) { return (vf64)_mm256_sqrt_pd((__m256d)x); }
    #elif defined(__SSE2__)
    static inline vf32 dlb_sqrt_vf32(vf32 x) { return (vf32)_mm_sqrt_ps((__m128)x); }
    static inline vf64 dlb_sqrt_vf64(vf64 x) { return (vf64)_mm_sqrt_pd((__m128d)x); }
    #else
    static inline vf32 dlb_sqrt_vf32(vf32 x) { for (int k = 0; k < DLB_VL_f32; k++) x[k] = sqrtf(x[k]); return x; }
    static inline vf64 dlb_sqrt_vf64(vf64 x) { for (int k = 0; k < DLB_VL_f64; k++) x[k] = sqrt(x[k]); return x; }
    #endif
    static inline float dlb_sqrt_f32(float x) { return sqrtf(x); }
    static inline double dlb_sqrt_f64(double x) { return sqrt(x); }

    /* select a where m else b; m is a comparison result (all ones / zero per lane) */
    static inline vf32 dlb_sel_vf32(vi32 m, vf32 a, vf32 b) { return (vf32)((m & (vi32)a) | (~m & (vi32)b)); }
    static inline vf64 dlb_sel_vf64(vi64 m, vf64 a, vf64 b) { return (vf64)((m & (vi64)a) | (~m & (vi64)b)); }
    static inline float dlb_sel_f32(int m, float a, float b) { return m ? a : b; }
    static inline double dlb_sel_f64(int m, double a, double b) { return m ? a : b; }

    /* effective gradient: clip(gscale*g, -clip, clip) + wd*theta (8.2.4 clipping, L2 decay) */
    #define DLB_GEFF(SUF, V, graw, th) \
        ({ V x_ = (graw) * gscale; \
           x_ = dlb_sel_##SUF(x_ > clip, (V){0} + clip, x_); \
           x_ = dlb_sel_##SUF(x_ < -clip, (V){0} - clip, x_); \
           x_ + wd * (th); })

    /* One OpenMP team; thread t streams the contiguous block [lo, hi) (static partition). */
    static inline void dlb_block(long n, long *lo, long *hi) {
    #ifdef _OPENMP
        long nt = omp_get_num_threads(), t = omp_get_thread_num();
    #else
        long nt = 1, t = 0;
    #endif
        long per = ((n + nt - 1) / nt + 63) & ~63L;
        *lo = t * per < n ? t * per : n;
        *hi = *lo + per < n ? *lo + per : n;
    }
    #define DLB_PAR_BEGIN(n) \
        _Pragma("omp parallel if((n) >= DLB_PAR_MIN)") \
        { long lo_, hi_; dlb_block((n), &lo_, &hi_); long i = lo_;
    #define DLB_PAR_END }

    /* Each kernel is written once as an element BODY over an element type V with loader LD,
       storer ST, square root SQ and selector suffix SUF; KERNEL_T instantiates the vector
       loop and the scalar tail for one dtype T (suffix S). */
    #define DLB_LOOPS(T, S, BODY, GE) \
        for (; i + DLB_VL_##S <= hi_; i += DLB_VL_##S) BODY(v##S, v##S, dlb_ld_v##S, dlb_st_v##S, dlb_sqrt_v##S, GE) \
        for (; i < hi_; i++) BODY(S, T, dlb_ld_##S, dlb_st_##S, dlb_sqrt_##S, GE)
    /* the gradient as given: the instance used when gscale = 1, clip = inf and wd = 0 */
    #define DLB_GRAW(SUF, V, graw, th) (graw)
    #define DLB_PLAIN (gscale == 1 && clip == (__builtin_inff()) && wd == 0)
    /* a kernel whose gradient preprocessing is a no-op runs the loops without it */
    #define DLB_RUN(T, S, BODY) \
        if (DLB_PLAIN) { DLB_PAR_BEGIN(n) DLB_LOOPS(T, S, BODY, DLB_GRAW) DLB_PAR_END } \
        else { DLB_PAR_BEGIN(n) DLB_LOOPS(T, S, BODY, DLB_GEFF) DLB_PAR_END }

    /* ---- Algorithm 8.1: theta -= lr * g' ---------------------------------------------- */
    #define SGD_BODY(SUF, V, LD, ST, SQ, GE) { \
        V th = LD(theta + i); V gi = GE(SUF, V, LD(g + i), th); \
        ST(theta + i, th - lr * gi); }
    /* ---- Algorithm 8.2 / 8.3: v = alpha v - lr g'; theta += cv v - cg g' --------------- */
    #define MOM_BODY(SUF, V, LD, ST, SQ, GE) { \
        V th = LD(theta + i); V gi = GE(SUF, V, LD(g + i), th); \
        V vi = alpha * LD(v + i) - lr * gi; ST(v + i, vi); \
        ST(theta + i, th + (cv * vi - cg * gi)); }
    /* ---- Algorithm 8.4 (rho = c = 1) / 8.5: r = rho r + c g'^2; theta -= lr g'/(sqrt(r+di)+do) */
    #define RMS_BODY(SUF, V, LD, ST, SQ, GE) { \
        V th = LD(theta + i); V gi = GE(SUF, V, LD(g + i), th); \
        V ri = rho * LD(r + i) + c * gi * gi; ST(r + i, ri); \
        ST(theta + i, th - lr * gi / (SQ(ri + d_in) + d_out)); }
    /* ---- Algorithm 8.6 (heavy ball / Nesterov by change of variables) ------------------ */
    #define RMSM_BODY(SUF, V, LD, ST, SQ, GE) { \
        V th = LD(theta + i); V gi = GE(SUF, V, LD(g + i), th); \
        V ri = rho * LD(r + i) + c * gi * gi; ST(r + i, ri); \
        V u = gi / (SQ(ri + d_in) + d_out); \
        V vi = alpha * LD(v + i) - lr * u; ST(v + i, vi); \
        ST(theta + i, th + (cv * vi - cg * u)); }
    /* ---- Algorithm 8.7 with folded bias corrections ------------------------------------ */
    #define ADAM_BODY(SUF, V, LD, ST, SQ, GE) { \
        V th = LD(theta + i); V gi = GE(SUF, V, LD(g + i), th); \
        V si = b1 * LD(s + i) + c1 * gi; V ri = b2 * LD(r + i) + c2 * gi * gi; \
        ST(s + i, si); ST(r + i, ri); \
        ST(theta + i, th * decay - step * si / (SQ(ri) * rbc2 + eps)); }
    /* ---- AdaDelta, one root: sqrt(d+eps)/sqrt(r+eps) = sqrt((d+eps)/(r+eps)) ----------- */
    #define ADADELTA_BODY(SUF, V, LD, ST, SQ, GE) { \
        V th = LD(theta + i); V gi = GE(SUF, V, LD(g + i), th); \
        V ri = rho * LD(r + i) + c * gi * gi; ST(r + i, ri); \
        V di = LD(d + i); V dl = -SQ((di + eps) / (ri + eps)) * gi; \
        ST(d + i, rho * di + c * dl * dl); \
        ST(theta + i, th + lr * dl); }
    /* ---- delta-bar-delta (Jacobs 1988) -------------------------------------------------- */
    #define DBD_BODY(SUF, V, LD, ST, SQ, GE) { \
        V th = LD(theta + i); V gi = GE(SUF, V, LD(g + i), th); \
        V b = LD(bar + i); V sg = b * gi; V ri = LD(rate + i); \
        ri = dlb_sel_##SUF(sg < 0, ri * shrink, dlb_sel_##SUF(sg > 0, ri + kappa, ri)); \
        ST(rate + i, ri); ST(bar + i, cmix * gi + mix * b); \
        ST(theta + i, th - ri * gi); }
    /* ---- Polyak average / EMA (8.7.3, eq. 8.39) ---------------------------------------- */
    #define AVG_BODY(SUF, V, LD, ST, SQ, GE) { \
        V a = LD(avg + i); ST(avg + i, a + w * (LD(theta + i) - a)); }
    /* ---- g = clip(f g, -clip, clip) ---------------------------------------------------- */
    #define CLIP_BODY(SUF, V, LD, ST, SQ, GE) { \
        V x = LD(g + i) * f; \
        x = dlb_sel_##SUF(x > clip, (V){0} + clip, x); x = dlb_sel_##SUF(x < -clip, (V){0} - clip, x); \
        ST(g + i, x); }

    #define DLB_INSTANCES(T, S) \
    static void dlb_sgd_##S(T *restrict theta, const T *restrict g, long n, \
                            T lr, T gscale, T clip, T wd) { \
        DLB_RUN(T, S, SGD_BODY) } \
    static void dlb_momentum_##S(T *restrict theta, T *restrict v, const T *restrict g, long n, \
                                 T alpha, T lr, T cv, T cg, T gscale, T clip, T wd) { \
        DLB_RUN(T, S, MOM_BODY) } \
    static void dlb_rmsprop_##S(T *restrict theta, T *restrict r, const T *restrict g, long n, \
                                T lr, T rho, T c, T d_in, T d_out, T gscale, T clip, T wd) { \
        DLB_RUN(T, S, RMS_BODY) } \
    static void dlb_rmsprop_momentum_##S(T *restrict theta, T *restrict r, T *restrict v, \
            const T *restrict g, long n, T lr, T rho, T c, T d_in, T d_out, T alpha, T cv, T cg, \
            T gscale, T clip, T wd) { \
        DLB_RUN(T, S, RMSM_BODY) } \
    static void dlb_adam_##S(T *restrict theta, T *restrict s, T *restrict r, const T *restrict g, \
            long n, T step, T rbc2, T b1, T c1, T b2, T c2, T eps, T decay, T gscale, T clip, T wd) { \
        DLB_RUN(T, S, ADAM_BODY) } \
    static void dlb_adadelta_##S(T *restrict theta, T *restrict r, T *restrict d, const T *restrict g, \
            long n, T lr, T rho, T c, T eps, T gscale, T clip, T wd) { \
        DLB_RUN(T, S, ADADELTA_BODY) } \
    static void dlb_dbd_##S(T *restrict theta, T *restrict rate, T *restrict bar, const T *restrict g, \
            long n, T kappa, T shrink, T mix, T cmix, T gscale, T clip, T wd) { \
        DLB_RUN(T, S, DBD_BODY) } \
    static void dlb_average_##S(T *restrict avg, const T *restrict theta, long n, T w) { \
        DLB_PAR_BEGIN(n) DLB_LOOPS(T, S, AVG_BODY, DLB_GRAW) DLB_PAR_END } \
    static void dlb_clip_scale_##S(T *restrict g, long n, T f, T clip) { \
        DLB_PAR_BEGIN(n) DLB_LOOPS(T, S, CLIP_BODY, DLB_GRAW) DLB_PAR_END } \
    static double dlb_sumsq_##S(const T *restrict g, long n) { \
        double total = 0.0; \
        _Pragma("omp parallel if(n >= DLB_PAR_MIN) reduction(+:total)") \
        { long lo_, hi_; dlb_block(n, &lo_, &hi_); total += dlb_sumsq_block_##S(g, lo_, hi_); } \
        return total; }

    /* sum of squares in float64 with four independent vector accumulators (a single chain would be
       bound by the add latency); the order differs from a serial sum, fine for a norm. A read-only
       stream is short of outstanding misses here: prefetching 16 KB ahead ran 1.2-1.4x faster
       (1e7 float32, 2 threads, interleaved with the plain loop: 29-37 against 24-25 GB/s). */
    #define DLB_SUMSQ_AHEAD 16384
    typedef double dlb_vd4 __attribute__((vector_size(32)));
    typedef float dlb_vs4 __attribute__((vector_size(16)));
    static inline double dlb_hsum4(dlb_vd4 a) { return (a[0] + a[1]) + (a[2] + a[3]); }
    static double dlb_sumsq_block_f32(const float *restrict g, long i, long hi) {
        dlb_vd4 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (; i + 16 <= hi; i += 16) {
            __builtin_prefetch((const char *) (g + i) + DLB_SUMSQ_AHEAD, 0, 3);
            dlb_vs4 x0, x1, x2, x3;
            memcpy(&x0, g + i, 16); memcpy(&x1, g + i + 4, 16); memcpy(&x2, g + i + 8, 16); memcpy(&x3, g + i + 12, 16);
            dlb_vd4 d0 = __builtin_convertvector(x0, dlb_vd4), d1 = __builtin_convertvector(x1, dlb_vd4);
            dlb_vd4 d2 = __builtin_convertvector(x2, dlb_vd4), d3 = __builtin_convertvector(x3, dlb_vd4);
            a0 += d0 * d0; a1 += d1 * d1; a2 += d2 * d2; a3 += d3 * d3;
        }
        double acc = dlb_hsum4((a0 + a1) + (a2 + a3));
        for (; i < hi; i++) { double x = (double)g[i]; acc += x * x; }
        return acc;
    }
    static double dlb_sumsq_block_f64(const double *restrict g, long i, long hi) {
        dlb_vd4 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (; i + 16 <= hi; i += 16) {
            __builtin_prefetch((const char *) (g + i) + DLB_SUMSQ_AHEAD, 0, 3);
            __builtin_prefetch((const char *) (g + i) + DLB_SUMSQ_AHEAD + 64, 0, 3);
            dlb_vd4 d0, d1, d2, d3;
            memcpy(&d0, g + i, 32); memcpy(&d1, g + i + 4, 32); memcpy(&d2, g + i + 8, 32); memcpy(&d3, g + i + 12, 32);
            a0 += d0 * d0; a1 += d1 * d1; a2 += d2 * d2; a3 += d3 * d3;
        }
        double acc = dlb_hsum4((a0 + a1) + (a2 + a3));
        for (; i < hi; i++) { double x = g[i]; acc += x * x; }
        return acc;
    }

    DLB_INSTANCES(float, f32)
    DLB_INSTANCES(double, f64)
    """
    void dlb_sgd_f32(float *theta, const float *g, long n, float lr, float gscale, float clip, float wd) nogil
    void dlb_sgd_f64(double *theta, const double *g, long n, double lr, double gscale, double clip,
                     double wd) nogil
    void dlb_momentum_f32(float *theta, float *v, const float *g, long n, float alpha, float lr, float cv,
                          float cg, float gscale, float clip, float wd) nogil
    void dlb_momentum_f64(double *theta, double *v, const double *g, long n, double alpha, double lr,
                          double cv, double cg, double gscale, double clip, double wd) nogil
    void dlb_rmsprop_f32(float *theta, float *r, const float *g, long n, float lr, float rho, float c,
                         float d_in, float d_out, float gscale, float clip, float wd) nogil
    void dlb_rmsprop_f64(double *theta, double *r, const double *g, long n, double lr, double rho,
                         double c, double d_in, double d_out, double gscale, double clip, double wd) nogil
    void dlb_rmsprop_momentum_f32(float *theta, float *r, float *v, const float *g, long n, float lr,
                                  float rho, float c, float d_in, float d_out, float alpha, float cv,
                                  float cg, float gscale, float clip, float wd) nogil
    void dlb_rmsprop_momentum_f64(double *theta, double *r, double *v, const double *g, long n, double lr,
                                  double rho, double c, double d_in, double d_out, double alpha,
                                  double cv, double cg, double gscale, double clip, double wd) nogil
    void dlb_adam_f32(float *theta, float *s, float *r, const float *g, long n, float step, float rbc2,
                      float b1, float c1, float b2, float c2, float eps, float decay, float gscale,
                      float clip, float wd) nogil
    void dlb_adam_f64(double *theta, double *s, double *r, const double *g, long n, double step,
                      double rbc2, double b1, double c1, double b2, double c2, double eps, double decay,
                      double gscale, double clip, double wd) nogil
    void dlb_adadelta_f32(float *theta, float *r, float *d, const float *g, long n, float lr, float rho,
                          float c, float eps, float gscale, float clip, float wd) nogil
    void dlb_adadelta_f64(double *theta, double *r, double *d, const double *g, long n, double lr,
                          double rho, double c, double eps, double gscale, double clip, double wd) nogil
    void dlb_dbd_f32(float *theta, float *rate, float *bar, const float *g, long n, float kappa,
                     float shrink, float mix, float cmix, float gscale, float clip, float wd) nogil
    void dlb_dbd_f64(double *theta, double *rate, double *bar, const double *g, long n, double kappa,
                     double shrink, double mix, double cmix, double gscale, double clip, double wd) nogil
    void dlb_average_f32(float *avg, const float *theta, long n, float w) nogil
    void dlb_average_f64(double *avg, const double *theta, long n, double w) nogil
    void dlb_clip_scale_f32(float *g, long n, float f, float clip) nogil
    void dlb_clip_scale_f64(double *g, long n, double f, double clip) nogil
    double dlb_sumsq_f32(const float *g, long n) nogil
    double dlb_sumsq_f64(const double *g, long n) nogil


cdef inline Py_ssize_t _same(Py_ssize_t n, Py_ssize_t m) except -1:
    if n != m:
        raise ValueError(f"arrays of different lengths: {n} and {m}")
    return n


# The entry points: 1-D C-contiguous memoryviews of one dtype; empty arrays are a no-op.

def sgd_f32(float[::1] theta, float[::1] g, double lr, double gscale, double clip, double wd):
    cdef Py_ssize_t n = _same(theta.shape[0], g.shape[0])
    if n:
        with nogil:
            dlb_sgd_f32(&theta[0], &g[0], n, <float>lr, <float>gscale, <float>clip, <float>wd)


def sgd_f64(double[::1] theta, double[::1] g, double lr, double gscale, double clip, double wd):
    cdef Py_ssize_t n = _same(theta.shape[0], g.shape[0])
    if n:
        with nogil:
            dlb_sgd_f64(&theta[0], &g[0], n, lr, gscale, clip, wd)


def momentum_f32(float[::1] theta, float[::1] v, float[::1] g, double alpha, double lr, double cv,
                 double cg, double gscale, double clip, double wd):
    cdef Py_ssize_t n = _same(_same(theta.shape[0], v.shape[0]), g.shape[0])
    if n:
        with nogil:
            dlb_momentum_f32(&theta[0], &v[0], &g[0], n, <float>alpha, <float>lr, <float>cv, <float>cg,
                             <float>gscale, <float>clip, <float>wd)


def momentum_f64(double[::1] theta, double[::1] v, double[::1] g, double alpha, double lr, double cv,
                 double cg, double gscale, double clip, double wd):
    cdef Py_ssize_t n = _same(_same(theta.shape[0], v.shape[0]), g.shape[0])
    if n:
        with nogil:
            dlb_momentum_f64(&theta[0], &v[0], &g[0], n, alpha, lr, cv, cg, gscale, clip, wd)


def rmsprop_f32(float[::1] theta, float[::1] r, float[::1] g, double lr, double rho, double c,
                double d_in, double d_out, double gscale, double clip, double wd):
    cdef Py_ssize_t n = _same(_same(theta.shape[0], r.shape[0]), g.shape[0])
    if n:
        with nogil:
            dlb_rmsprop_f32(&theta[0], &r[0], &g[0], n, <float>lr, <float>rho, <float>c, <float>d_in,
                            <float>d_out, <float>gscale, <float>clip, <float>wd)


def rmsprop_f64(double[::1] theta, double[::1] r, double[::1] g, double lr, double rho, double c,
                double d_in, double d_out, double gscale, double clip, double wd):
    cdef Py_ssize_t n = _same(_same(theta.shape[0], r.shape[0]), g.shape[0])
    if n:
        with nogil:
            dlb_rmsprop_f64(&theta[0], &r[0], &g[0], n, lr, rho, c, d_in, d_out, gscale, clip, wd)


def rmsprop_momentum_f32(float[::1] theta, float[::1] r, float[::1] v, float[::1] g, double lr,
                         double rho, double c, double d_in, double d_out, double alpha, double cv,
                         double cg, double gscale, double clip, double wd):
    cdef Py_ssize_t n = _same(_same(_same(theta.shape[0], r.shape[0]), v.shape[0]), g.shape[0])
    if n:
        with nogil:
            dlb_rmsprop_momentum_f32(&theta[0], &r[0], &v[0], &g[0], n, <float>lr, <float>rho, <float>c,
                                     <float>d_in, <float>d_out, <float>alpha, <float>cv, <float>cg,
                                     <float>gscale, <float>clip, <float>wd)


def rmsprop_momentum_f64(double[::1] theta, double[::1] r, double[::1] v, double[::1] g, double lr,
                         double rho, double c, double d_in, double d_out, double alpha, double cv,
                         double cg, double gscale, double clip, double wd):
    cdef Py_ssize_t n = _same(_same(_same(theta.shape[0], r.shape[0]), v.shape[0]), g.shape[0])
    if n:
        with nogil:
            dlb_rmsprop_momentum_f64(&theta[0], &r[0], &v[0], &g[0], n, lr, rho, c, d_in, d_out, alpha,
                                     cv, cg, gscale, clip, wd)


def adam_f32(float[::1] theta, float[::1] s, float[::1] r, float[::1] g, double step, double rbc2,
             double b1, double c1, double b2, double c2, double eps, double decay, double gscale,
             double clip, double wd):
    cdef Py_ssize_t n = _same(_same(_same(theta.shape[0], s.shape[0]), r.shape[0]), g.shape[0])
    if n:
        with nogil:
            dlb_adam_f32(&theta[0], &s[0], &r[0], &g[0], n, <float>step, <float>rbc2, <float>b1,
                         <float>c1, <float>b2, <float>c2, <float>eps, <float>decay, <float>gscale,
                         <float>clip, <float>wd)


def adam_f64(double[::1] theta, double[::1] s, double[::1] r, double[::1] g, double step, double rbc2,
             double b1, double c1, double b2, double c2, double eps, double decay, double gscale,
             double clip, double wd):
    cdef Py_ssize_t n = _same(_same(_same(theta.shape[0], s.shape[0]), r.shape[0]), g.shape[0])
    if n:
        with nogil:
            dlb_adam_f64(&theta[0], &s[0], &r[0], &g[0], n, step, rbc2, b1, c1, b2, c2, eps, decay,
                         gscale, clip, wd)


def adadelta_f32(float[::1] theta, float[::1] r, float[::1] d, float[::1] g, double lr, double rho,
                 double c, double eps, double gscale, double clip, double wd):
    cdef Py_ssize_t n = _same(_same(_same(theta.shape[0], r.shape[0]), d.shape[0]), g.shape[0])
    if n:
        with nogil:
            dlb_adadelta_f32(&theta[0], &r[0], &d[0], &g[0], n, <float>lr, <float>rho, <float>c,
                             <float>eps, <float>gscale, <float>clip, <float>wd)


def adadelta_f64(double[::1] theta, double[::1] r, double[::1] d, double[::1] g, double lr, double rho,
                 double c, double eps, double gscale, double clip, double wd):
    cdef Py_ssize_t n = _same(_same(_same(theta.shape[0], r.shape[0]), d.shape[0]), g.shape[0])
    if n:
        with nogil:
            dlb_adadelta_f64(&theta[0], &r[0], &d[0], &g[0], n, lr, rho, c, eps, gscale, clip, wd)


def dbd_f32(float[::1] theta, float[::1] rate, float[::1] bar, float[::1] g, double kappa, double shrink,
            double mix, double cmix, double gscale, double clip, double wd):
    cdef Py_ssize_t n = _same(_same(_same(theta.shape[0], rate.shape[0]), bar.shape[0]), g.shape[0])
    if n:
        with nogil:
            dlb_dbd_f32(&theta[0], &rate[0], &bar[0], &g[0], n, <float>kappa, <float>shrink, <float>mix,
                        <float>cmix, <float>gscale, <float>clip, <float>wd)


def dbd_f64(double[::1] theta, double[::1] rate, double[::1] bar, double[::1] g, double kappa,
            double shrink, double mix, double cmix, double gscale, double clip, double wd):
    cdef Py_ssize_t n = _same(_same(_same(theta.shape[0], rate.shape[0]), bar.shape[0]), g.shape[0])
    if n:
        with nogil:
            dlb_dbd_f64(&theta[0], &rate[0], &bar[0], &g[0], n, kappa, shrink, mix, cmix, gscale, clip, wd)


def average_f32(float[::1] avg, float[::1] theta, double w):
    cdef Py_ssize_t n = _same(avg.shape[0], theta.shape[0])
    if n:
        with nogil:
            dlb_average_f32(&avg[0], &theta[0], n, <float>w)


def average_f64(double[::1] avg, double[::1] theta, double w):
    cdef Py_ssize_t n = _same(avg.shape[0], theta.shape[0])
    if n:
        with nogil:
            dlb_average_f64(&avg[0], &theta[0], n, w)


def clip_scale_f32(float[::1] g, double f, double clip):
    cdef Py_ssize_t n = g.shape[0]
    if n:
        with nogil:
            dlb_clip_scale_f32(&g[0], n, <float>f, <float>clip)


def clip_scale_f64(double[::1] g, double f, double clip):
    cdef Py_ssize_t n = g.shape[0]
    if n:
        with nogil:
            dlb_clip_scale_f64(&g[0], n, f, clip)


def sumsq_f32(const float[::1] g):
    cdef Py_ssize_t n = g.shape[0]
    cdef double acc = 0.0
    if n:
        with nogil:
            acc = dlb_sumsq_f32(&g[0], n)
    return acc


def sumsq_f64(const double[::1] g):
    cdef Py_ssize_t n = g.shape[0]
    cdef double acc = 0.0
    if n:
        with nogil:
            acc = dlb_sumsq_f64(&g[0], n)
    return acc
