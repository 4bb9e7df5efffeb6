/* BLIS-style GEMM for x86-64 AVX2+FMA: C = alpha * A * B + beta * C, float32 and float64.
 *
 * Structure (Goto / van Zee & van de Geijn, "BLIS", 2015; Smith et al., "Anatomy of
 * high-performance many-threaded matrix multiplication", 2014):
 *
 *   for jc in N step NC                 B panel  KC x NC   packed, shared, lives in L3
 *     for pc in K step KC
 *       pack B[pc:, jc:]  (all threads)
 *       for ic in M step MC             A block  MC x KC   packed, shared, lives in each L2
 *         pack A[ic:, pc:]  (all threads)
 *         macro-kernel: the (jr, ir) micro-tiles of the block are numbered jr-major and
 *         split evenly between the threads; each tile is one micro-kernel call
 *           micro-kernel MR x NR = 6 x 16 (float32) / 6 x 8 (float64): 12 ymm accumulators,
 *           per k one broadcast of A per row and two vector loads of B, 12 FMAs.
 *
 * Edge tiles use the same kernel compiled for fewer rows (1..5) and one vector of columns,
 * with masked loads/stores of C, so no flop is spent on more than one padded vector.
 * A and B are read through arbitrary element strides (transposes are stride swaps); C may be
 * row-major (fast path), column-major (computed as C^T = B^T A^T) or general strided.
 * The A buffer is double-buffered so each A block needs one barrier; B needs one per panel.
 * Packing buffers come from a small pool reused across calls (no page faults per call).
 */
#ifndef DLB_GEMM_KERNEL_H
#define DLB_GEMM_KERNEL_H

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if !defined(__AVX2__) || !defined(__FMA__)
#error "gemm_kernel.h needs AVX2 and FMA: build with -march=native on an AVX2 machine (or -mavx2 -mfma)"
#endif

#define DLB_INLINE static inline __attribute__((always_inline))

/* ------------------------------------------------------------------------------------------ */
/* blocking parameters (run-time tunable: dlb_gemm_set_blocking)                              */

#define DLB_S_MR 6
#define DLB_S_NR 16
#define DLB_D_MR 6
#define DLB_D_NR 8

/* [0] float32, [1] float64: MC (multiple of MR), KC, NC (multiple of NR) */
static long dlb_gemm_mc[2] = {144, 72};
static long dlb_gemm_kc[2] = {256, 256};
static long dlb_gemm_nc[2] = {4080, 4080};
/* below this many flops a call runs on one thread */
static double dlb_gemm_serial_flops = 2.0e6;

static void dlb_gemm_set_blocking(int dbl, long mc, long kc, long nc) {
    long mr = dbl ? DLB_D_MR : DLB_S_MR, nr = dbl ? DLB_D_NR : DLB_S_NR;
    if (mc > 0) dlb_gemm_mc[dbl] = ((mc + mr - 1) / mr) * mr;
    if (kc > 0) dlb_gemm_kc[dbl] = kc;
    if (nc > 0) dlb_gemm_nc[dbl] = ((nc + nr - 1) / nr) * nr;
}

static void dlb_gemm_get_blocking(int dbl, long *mc, long *kc, long *nc) {
    *mc = dlb_gemm_mc[dbl]; *kc = dlb_gemm_kc[dbl]; *nc = dlb_gemm_nc[dbl];
}

static int dlb_gemm_max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* Split `total` into the fewest blocks of at most `maxblk`, of equal size rounded up to `mult`. */
static long dlb_balanced_block(long total, long maxblk, long mult) {
    if (total <= 0) return mult;
    if (maxblk < mult) maxblk = mult;
    long nb = (total + maxblk - 1) / maxblk;
    long b = (total + nb - 1) / nb;
    return ((b + mult - 1) / mult) * mult;
}

/* ------------------------------------------------------------------------------------------ */
/* packing-buffer pool                                                                        */

#define DLB_POOL_SLOTS 16
static struct { void *p; size_t size; int busy; } dlb_pool[DLB_POOL_SLOTS];

/* A 64-byte aligned buffer of at least `bytes`; *slot says where to give it back. */
static void *dlb_buf_get(size_t bytes, int *slot) {
    bytes = (bytes + 63) & ~(size_t)63;
    if (bytes == 0) bytes = 64;
    for (int i = 0; i < DLB_POOL_SLOTS; i++) {
        int expected = 0;
        if (__atomic_compare_exchange_n(&dlb_pool[i].busy, &expected, 1, 0, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED)) {
            if (dlb_pool[i].size < bytes) {
                free(dlb_pool[i].p);
                dlb_pool[i].p = aligned_alloc(64, bytes);
                dlb_pool[i].size = dlb_pool[i].p ? bytes : 0;
                if (!dlb_pool[i].p) {
                    __atomic_store_n(&dlb_pool[i].busy, 0, __ATOMIC_RELEASE);
                    *slot = -1;
                    return NULL;
                }
            }
            *slot = i;
            return dlb_pool[i].p;
        }
    }
    *slot = -1;
    return aligned_alloc(64, bytes);
}

static void dlb_buf_put(void *p, int slot) {
    if (slot < 0) free(p);
    else __atomic_store_n(&dlb_pool[slot].busy, 0, __ATOMIC_RELEASE);
}

/* Frees the pooled buffers that are not in use (returns bytes freed). */
static size_t dlb_gemm_release_buffers(void) {
    size_t freed = 0;
    for (int i = 0; i < DLB_POOL_SLOTS; i++) {
        int expected = 0;
        if (__atomic_compare_exchange_n(&dlb_pool[i].busy, &expected, 1, 0, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED)) {
            freed += dlb_pool[i].size;
            free(dlb_pool[i].p);
            dlb_pool[i].p = NULL;
            dlb_pool[i].size = 0;
            __atomic_store_n(&dlb_pool[i].busy, 0, __ATOMIC_RELEASE);
        }
    }
    return freed;
}

/* ------------------------------------------------------------------------------------------ */
/* micro-kernels                                                                              */

/* float32: M rows (1..6) x NV vectors of 8 columns (1..2). a: packed A micro-panel (stride 6
 * per k), b: packed B micro-panel (stride 16 per k). c: the tile's top-left element; the tile
 * is m = M rows by n columns (n <= 8*NV), row stride rs_c, column stride cs_c. */
DLB_INLINE void dlb_s_ukr_t(const int M, const int NV, long kc, const float *restrict a,
                            const float *restrict b, float *restrict c, long rs_c, long cs_c,
                            int n, float alpha, float beta) {
    __m256 acc[6][2];
#pragma GCC unroll 6
    for (int i = 0; i < M; i++) {
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) acc[i][v] = _mm256_setzero_ps();
    }
    if (cs_c == 1) {
#pragma GCC unroll 6
        for (int i = 0; i < M; i++) {
            _mm_prefetch((const char *)(c + i * rs_c), _MM_HINT_T0);
            _mm_prefetch((const char *)(c + i * rs_c + 15), _MM_HINT_T0);
        }
    }
#pragma GCC unroll 4
    for (long p = 0; p < kc; p++) {
        __m256 b0 = _mm256_load_ps(b);
        __m256 b1 = NV > 1 ? _mm256_load_ps(b + 8) : b0;
#pragma GCC unroll 6
        for (int i = 0; i < M; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            if (NV > 1) acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += DLB_S_MR;
        b += DLB_S_NR;
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    if (cs_c == 1) {
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
#pragma GCC unroll 6
        for (int i = 0; i < M; i++) {
            float *ci = c + i * rs_c;
#pragma GCC unroll 2
            for (int v = 0; v < NV; v++) {
                int left = n - 8 * v;
                __m256 r;
                if (left >= 8) {
                    if (beta == 0.0f) r = _mm256_mul_ps(va, acc[i][v]);
                    else if (alpha == 1.0f && beta == 1.0f)
                        r = _mm256_add_ps(acc[i][v], _mm256_loadu_ps(ci + 8 * v));
                    else r = _mm256_fmadd_ps(va, acc[i][v], _mm256_mul_ps(vb, _mm256_loadu_ps(ci + 8 * v)));
                    _mm256_storeu_ps(ci + 8 * v, r);
                } else {
                    __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), lane);
                    if (beta == 0.0f) r = _mm256_mul_ps(va, acc[i][v]);
                    else r = _mm256_fmadd_ps(va, acc[i][v],
                                             _mm256_mul_ps(vb, _mm256_maskload_ps(ci + 8 * v, mask)));
                    _mm256_maskstore_ps(ci + 8 * v, mask, r);
                }
            }
        }
    } else {
        float tile[6][16] __attribute__((aligned(32)));
#pragma GCC unroll 6
        for (int i = 0; i < M; i++) {
#pragma GCC unroll 2
            for (int v = 0; v < NV; v++) _mm256_store_ps(&tile[i][8 * v], acc[i][v]);
        }
        for (int i = 0; i < M; i++)
            for (int j = 0; j < n; j++) {
                float *cij = c + i * rs_c + j * cs_c;
                *cij = beta == 0.0f ? alpha * tile[i][j] : alpha * tile[i][j] + beta * *cij;
            }
    }
}

/* float64: M rows (1..6) x NV vectors of 4 columns (1..2); packed strides 6 (A) and 8 (B). */
DLB_INLINE void dlb_d_ukr_t(const int M, const int NV, long kc, const double *restrict a,
                            const double *restrict b, double *restrict c, long rs_c, long cs_c,
                            int n, double alpha, double beta) {
    __m256d acc[6][2];
#pragma GCC unroll 6
    for (int i = 0; i < M; i++) {
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) acc[i][v] = _mm256_setzero_pd();
    }
    if (cs_c == 1) {
#pragma GCC unroll 6
        for (int i = 0; i < M; i++) {
            _mm_prefetch((const char *)(c + i * rs_c), _MM_HINT_T0);
            _mm_prefetch((const char *)(c + i * rs_c + 7), _MM_HINT_T0);
        }
    }
#pragma GCC unroll 4
    for (long p = 0; p < kc; p++) {
        __m256d b0 = _mm256_load_pd(b);
        __m256d b1 = NV > 1 ? _mm256_load_pd(b + 4) : b0;
#pragma GCC unroll 6
        for (int i = 0; i < M; i++) {
            __m256d ai = _mm256_broadcast_sd(a + i);
            acc[i][0] = _mm256_fmadd_pd(ai, b0, acc[i][0]);
            if (NV > 1) acc[i][1] = _mm256_fmadd_pd(ai, b1, acc[i][1]);
        }
        a += DLB_D_MR;
        b += DLB_D_NR;
    }
    __m256d va = _mm256_set1_pd(alpha), vb = _mm256_set1_pd(beta);
    if (cs_c == 1) {
        const __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3);
#pragma GCC unroll 6
        for (int i = 0; i < M; i++) {
            double *ci = c + i * rs_c;
#pragma GCC unroll 2
            for (int v = 0; v < NV; v++) {
                int left = n - 4 * v;
                __m256d r;
                if (left >= 4) {
                    if (beta == 0.0) r = _mm256_mul_pd(va, acc[i][v]);
                    else if (alpha == 1.0 && beta == 1.0)
                        r = _mm256_add_pd(acc[i][v], _mm256_loadu_pd(ci + 4 * v));
                    else r = _mm256_fmadd_pd(va, acc[i][v], _mm256_mul_pd(vb, _mm256_loadu_pd(ci + 4 * v)));
                    _mm256_storeu_pd(ci + 4 * v, r);
                } else {
                    __m256i mask = _mm256_cmpgt_epi64(_mm256_set1_epi64x(left), lane);
                    if (beta == 0.0) r = _mm256_mul_pd(va, acc[i][v]);
                    else r = _mm256_fmadd_pd(va, acc[i][v],
                                             _mm256_mul_pd(vb, _mm256_maskload_pd(ci + 4 * v, mask)));
                    _mm256_maskstore_pd(ci + 4 * v, mask, r);
                }
            }
        }
    } else {
        double tile[6][8] __attribute__((aligned(32)));
#pragma GCC unroll 6
        for (int i = 0; i < M; i++) {
#pragma GCC unroll 2
            for (int v = 0; v < NV; v++) _mm256_store_pd(&tile[i][4 * v], acc[i][v]);
        }
        for (int i = 0; i < M; i++)
            for (int j = 0; j < n; j++) {
                double *cij = c + i * rs_c + j * cs_c;
                *cij = beta == 0.0 ? alpha * tile[i][j] : alpha * tile[i][j] + beta * *cij;
            }
    }
}

/* One specialisation per (rows, vectors): the full 6 x 2 tile and the edge tiles. */
#define DLB_UKR_SPECIALISE(PFX, T)                                                              \
    static void PFX##ukr_6_2(long kc, const T *a, const T *b, T *c, long rs, long cs, int n,   \
                             T al, T be) { PFX##ukr_t(6, 2, kc, a, b, c, rs, cs, n, al, be); } \
    static void PFX##ukr_5_2(long kc, const T *a, const T *b, T *c, long rs, long cs, int n,   \
                             T al, T be) { PFX##ukr_t(5, 2, kc, a, b, c, rs, cs, n, al, be); } \
    static void PFX##ukr_4_2(long kc, const T *a, const T *b, T *c, long rs, long cs, int n,   \
                             T al, T be) { PFX##ukr_t(4, 2, kc, a, b, c, rs, cs, n, al, be); } \
    static void PFX##ukr_3_2(long kc, const T *a, const T *b, T *c, long rs, long cs, int n,   \
                             T al, T be) { PFX##ukr_t(3, 2, kc, a, b, c, rs, cs, n, al, be); } \
    static void PFX##ukr_2_2(long kc, const T *a, const T *b, T *c, long rs, long cs, int n,   \
                             T al, T be) { PFX##ukr_t(2, 2, kc, a, b, c, rs, cs, n, al, be); } \
    static void PFX##ukr_1_2(long kc, const T *a, const T *b, T *c, long rs, long cs, int n,   \
                             T al, T be) { PFX##ukr_t(1, 2, kc, a, b, c, rs, cs, n, al, be); } \
    static void PFX##ukr_6_1(long kc, const T *a, const T *b, T *c, long rs, long cs, int n,   \
                             T al, T be) { PFX##ukr_t(6, 1, kc, a, b, c, rs, cs, n, al, be); } \
    static void PFX##ukr_5_1(long kc, const T *a, const T *b, T *c, long rs, long cs, int n,   \
                             T al, T be) { PFX##ukr_t(5, 1, kc, a, b, c, rs, cs, n, al, be); } \
    static void PFX##ukr_4_1(long kc, const T *a, const T *b, T *c, long rs, long cs, int n,   \
                             T al, T be) { PFX##ukr_t(4, 1, kc, a, b, c, rs, cs, n, al, be); } \
    static void PFX##ukr_3_1(long kc, const T *a, const T *b, T *c, long rs, long cs, int n,   \
                             T al, T be) { PFX##ukr_t(3, 1, kc, a, b, c, rs, cs, n, al, be); } \
    static void PFX##ukr_2_1(long kc, const T *a, const T *b, T *c, long rs, long cs, int n,   \
                             T al, T be) { PFX##ukr_t(2, 1, kc, a, b, c, rs, cs, n, al, be); } \
    static void PFX##ukr_1_1(long kc, const T *a, const T *b, T *c, long rs, long cs, int n,   \
                             T al, T be) { PFX##ukr_t(1, 1, kc, a, b, c, rs, cs, n, al, be); } \
    typedef void (*PFX##ukr_fn)(long, const T *, const T *, T *, long, long, int, T, T);       \
    static const PFX##ukr_fn PFX##ukr_table[7][3] = {                                           \
        {0, 0, 0},                                                                              \
        {0, PFX##ukr_1_1, PFX##ukr_1_2}, {0, PFX##ukr_2_1, PFX##ukr_2_2},                       \
        {0, PFX##ukr_3_1, PFX##ukr_3_2}, {0, PFX##ukr_4_1, PFX##ukr_4_2},                       \
        {0, PFX##ukr_5_1, PFX##ukr_5_2}, {0, PFX##ukr_6_1, PFX##ukr_6_2}};

DLB_UKR_SPECIALISE(dlb_s_, float)
DLB_UKR_SPECIALISE(dlb_d_, double)

/* ------------------------------------------------------------------------------------------ */
/* packing, macro-kernel and driver, generic over the element type                            */

#define DLB_DEFINE_GEMM(PFX, T, MR, NR, VL, DBL)                                                \
                                                                                                \
/* Packs micro-panels [p0, p1) of the mc x kc block of A at `a` (strides rsa, csa) into       \
 * `dst`: panel p holds rows p*MR.. as kc groups of MR, zero-padded. */                        \
static void PFX##pack_a(long mc, long kc, const T *a, long rsa, long csa, T *restrict dst,   \
                        long p0, long p1) {                                                     \
    for (long p = p0; p < p1; p++) {                                                            \
        long i0 = p * MR, mr = mc - i0 < MR ? mc - i0 : MR;                                     \
        const T *src = a + i0 * rsa;                                                            \
        T *d = dst + p * MR * kc;                                                               \
        if (mr == MR && csa == 1) {                                                             \
            const T *r0 = src, *r1 = src + rsa, *r2 = src + 2 * rsa, *r3 = src + 3 * rsa,       \
                    *r4 = src + 4 * rsa, *r5 = src + 5 * rsa;                                   \
            for (long k = 0; k < kc; k++) {                                                     \
                d[0] = r0[k]; d[1] = r1[k]; d[2] = r2[k];                                       \
                d[3] = r3[k]; d[4] = r4[k]; d[5] = r5[k];                                       \
                d += MR;                                                                        \
            }                                                                                   \
        } else if (mr == MR && rsa == 1) {                                                      \
            for (long k = 0; k < kc; k++) {                                                     \
                const T *s = src + k * csa;                                                     \
                for (int i = 0; i < MR; i++) d[i] = s[i];                                       \
                d += MR;                                                                        \
            }                                                                                   \
        } else {                                                                                \
            for (long k = 0; k < kc; k++) {                                                     \
                for (int i = 0; i < MR; i++) d[i] = i < mr ? src[i * rsa + k * csa] : (T)0;     \
                d += MR;                                                                        \
            }                                                                                   \
        }                                                                                       \
    }                                                                                           \
}                                                                                               \
                                                                                                \
/* Packs micro-panels [p0, p1) of the kc x nc panel of B at `b` (strides rsb, csb): panel p   \
 * holds columns p*NR.. as kc groups of NR, zero-padded. */                                    \
static void PFX##pack_b(long kc, long nc, const T *b, long rsb, long csb, T *restrict dst,   \
                        long p0, long p1) {                                                     \
    for (long p = p0; p < p1; p++) {                                                            \
        long j0 = p * NR, nr = nc - j0 < NR ? nc - j0 : NR;                                     \
        const T *src = b + j0 * csb;                                                            \
        T *d = dst + p * NR * kc;                                                               \
        if (nr == NR && csb == 1) {                                                             \
            for (long k = 0; k < kc; k++) {                                                     \
                memcpy(d, src + k * rsb, NR * sizeof(T));                                       \
                d += NR;                                                                        \
            }                                                                                   \
        } else if (rsb == 1) {                                                                  \
            for (long j = 0; j < nr; j++) {                                                     \
                const T *s = src + j * csb;                                                     \
                for (long k = 0; k < kc; k++) d[k * NR + j] = s[k];                             \
            }                                                                                   \
            for (long j = nr; j < NR; j++)                                                      \
                for (long k = 0; k < kc; k++) d[k * NR + j] = (T)0;                             \
        } else {                                                                                \
            for (long k = 0; k < kc; k++) {                                                     \
                const T *s = src + k * rsb;                                                     \
                for (long j = 0; j < NR; j++) d[j] = j < nr ? s[j * csb] : (T)0;                \
                d += NR;                                                                        \
            }                                                                                   \
        }                                                                                       \
    }                                                                                           \
}                                                                                               \
                                                                                                \
/* Tiles [t0, t1) of the mc x nc block, numbered jr-major (t = jr * ni + ir). */              \
static void PFX##macro(long mc, long nc, long kc, const T *ap, const T *bp, T *c, long rsc,   \
                       long csc, T alpha, T beta, long t0, long t1) {                           \
    long ni = (mc + MR - 1) / MR;                                                               \
    for (long t = t0; t < t1; t++) {                                                            \
        long jr = t / ni, ir = t - jr * ni;                                                     \
        long i0 = ir * MR, j0 = jr * NR;                                                        \
        int m = (int)(mc - i0 < MR ? mc - i0 : MR);                                             \
        int n = (int)(nc - j0 < NR ? nc - j0 : NR);                                             \
        int nv = n > VL ? 2 : 1;                                                                \
        PFX##_ukr_table[m][nv](kc, ap + i0 * kc, bp + j0 * kc, c + i0 * rsc + j0 * csc, rsc,   \
                              csc, n, alpha, beta);                                             \
    }                                                                                           \
}                                                                                               \
                                                                                                \
/* The loop nest run by thread `tid` of `nt` (all threads call it with the same arguments).   \
 * ap holds two A blocks (double buffer) of mcb x kcb, bp one B panel of kcb x ncb. */         \
static void PFX##gemm_thread(int tid, int nt, long m, long n, long k, T alpha, const T *a,    \
                             long rsa, long csa, const T *b, long rsb, long csb, T beta, T *c,  \
                             long rsc, long csc, long mcb, long kcb, long ncb, T *ap, T *bp) {  \
    int ab = 0;                                                                                 \
    for (long jc = 0; jc < n; jc += ncb) {                                                      \
        long nc = n - jc < ncb ? n - jc : ncb;                                                  \
        long nbp = (nc + NR - 1) / NR;                                                          \
        for (long pc = 0; pc < k; pc += kcb) {                                                  \
            long kc = k - pc < kcb ? k - pc : kcb;                                              \
            T beta_eff = pc == 0 ? beta : (T)1;                                                 \
            if (nt > 1) {                                                                       \
                _Pragma("omp barrier")                                                          \
            }                                                                                   \
            PFX##pack_b(kc, nc, b + pc * rsb + jc * csb, rsb, csb, bp, nbp * tid / nt,          \
                        nbp * (tid + 1) / nt);                                                  \
            for (long ic = 0; ic < m; ic += mcb) {                                              \
                long mc = m - ic < mcb ? m - ic : mcb;                                          \
                long nap = (mc + MR - 1) / MR;                                                  \
                T *apc = ap + ab * mcb * kcb;                                                   \
                ab ^= 1;                                                                        \
                PFX##pack_a(mc, kc, a + ic * rsa + pc * csa, rsa, csa, apc, nap * tid / nt,     \
                            nap * (tid + 1) / nt);                                              \
                if (nt > 1) {                                                                   \
                    _Pragma("omp barrier")                                                      \
                }                                                                               \
                long tiles = nap * nbp;                                                         \
                PFX##macro(mc, nc, kc, apc, bp, c + ic * rsc + jc * csc, rsc, csc, alpha,       \
                           beta_eff, tiles * tid / nt, tiles * (tid + 1) / nt);                 \
            }                                                                                   \
        }                                                                                       \
    }                                                                                           \
}                                                                                               \
                                                                                                \
/* C = beta * C (beta == 0 writes zeros, whatever C held). */                                  \
static void PFX##scale_c(long m, long n, T beta, T *c, long rsc, long csc) {                  \
    for (long i = 0; i < m; i++)                                                                \
        for (long j = 0; j < n; j++) {                                                          \
            T *cij = c + i * rsc + j * csc;                                                     \
            *cij = beta == (T)0 ? (T)0 : beta * *cij;                                           \
        }                                                                                       \
}                                                                                               \
                                                                                                \
/* C = alpha * A B + beta * C with A m x k, B k x n, C m x n given by element strides.        \
 * nthreads: OpenMP threads to use (<= 0: omp_get_max_threads()). beta == 0 never reads C.    \
 * Returns 0, or -1 when a packing buffer could not be allocated. */                           \
static int PFX##gemm(long m, long n, long k, T alpha, const T *a, long rsa, long csa,         \
                     const T *b, long rsb, long csb, T beta, T *c, long rsc, long csc,          \
                     int nthreads) {                                                            \
    if (m <= 0 || n <= 0) return 0;                                                             \
    if (k <= 0 || alpha == (T)0) {                                                              \
        PFX##scale_c(m, n, beta, c, rsc, csc);                                                  \
        return 0;                                                                               \
    }                                                                                           \
    if (csc != 1 && rsc == 1) { /* column-major C: C^T = B^T A^T with a row-major C^T */      \
        long nrsa = csb, ncsa = rsb, nrsb = csa, ncsb = rsa, t = m;                             \
        const T *tp = a;                                                                        \
        m = n; n = t; a = b; b = tp;                                                            \
        rsa = nrsa; csa = ncsa; rsb = nrsb; csb = ncsb;                                         \
        rsc = csc; csc = 1;                                                                     \
    }                                                                                           \
    if (nthreads <= 0) nthreads = dlb_gemm_max_threads();                                       \
    if (2.0 * m * n * k < dlb_gemm_serial_flops) nthreads = 1;                                  \
    long mcb = dlb_balanced_block(m, dlb_gemm_mc[DBL], MR);                                     \
    long kcb = dlb_balanced_block(k, dlb_gemm_kc[DBL], 1);                                      \
    long ncb = dlb_balanced_block(n, dlb_gemm_nc[DBL], NR);                                     \
    int sa, sb;                                                                                 \
    T *ap = (T *)dlb_buf_get(2 * mcb * kcb * sizeof(T), &sa);                                   \
    if (!ap) return -1;                                                                         \
    T *bp = (T *)dlb_buf_get(kcb * ncb * sizeof(T), &sb);                                       \
    if (!bp) { dlb_buf_put(ap, sa); return -1; }                                                \
    if (nthreads == 1) {                                                                        \
        PFX##gemm_thread(0, 1, m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc,     \
                         mcb, kcb, ncb, ap, bp);                                                \
    } else {                                                                                    \
        _Pragma("omp parallel num_threads(nthreads)")                                           \
        {                                                                                       \
            int tid = 0, nt = 1;                                                                \
            DLB_OMP_IDS(tid, nt);                                                               \
            PFX##gemm_thread(tid, nt, m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc,   \
                             csc, mcb, kcb, ncb, ap, bp);                                       \
        }                                                                                       \
    }                                                                                           \
    dlb_buf_put(bp, sb);                                                                        \
    dlb_buf_put(ap, sa);                                                                        \
    return 0;                                                                                   \
}                                                                                               \
                                                                                                \
/* `batch` independent GEMMs C[i] = alpha A[i] B[i] + beta C[i]; sa, sb, sc are the element    \
 * strides between batch items (0 broadcasts one operand). Many items: one item per thread at  \
 * a time (serial GEMMs); few: the items in turn, each on all threads. */                      \
static int PFX##gemm_batched(long batch, long m, long n, long k, T alpha, const T *a, long sa,  \
                             long rsa, long csa, const T *b, long sb, long rsb, long csb,       \
                             T beta, T *c, long sc, long rsc, long csc, int nthreads) {         \
    if (nthreads <= 0) nthreads = dlb_gemm_max_threads();                                       \
    int err = 0;                                                                                \
    double per_item = 2.0 * m * n * k;                                                          \
    int by_item = nthreads > 1 && batch >= nthreads &&                                          \
                  (batch % nthreads == 0 || batch >= 4 * nthreads ||                            \
                   per_item < 4 * dlb_gemm_serial_flops);                                       \
    if (by_item) {                                                                              \
        _Pragma("omp parallel for schedule(dynamic, 1) num_threads(nthreads) reduction(|:err)") \
        for (long i = 0; i < batch; i++)                                                        \
            err |= PFX##gemm(m, n, k, alpha, a + i * sa, rsa, csa, b + i * sb, rsb, csb, beta,  \
                             c + i * sc, rsc, csc, 1);                                          \
    } else {                                                                                    \
        for (long i = 0; i < batch; i++)                                                        \
            err |= PFX##gemm(m, n, k, alpha, a + i * sa, rsa, csa, b + i * sb, rsb, csb, beta,  \
                             c + i * sc, rsc, csc, nthreads);                                   \
    }                                                                                           \
    return err ? -1 : 0;                                                                        \
}

#ifdef _OPENMP
#define DLB_OMP_IDS(tid, nt) do { tid = omp_get_thread_num(); nt = omp_get_num_threads(); } while (0)
#else
#define DLB_OMP_IDS(tid, nt) do { (void)tid; (void)nt; } while (0)
#endif

DLB_DEFINE_GEMM(dlb_s, float, DLB_S_MR, DLB_S_NR, 8, 0)
DLB_DEFINE_GEMM(dlb_d, double, DLB_D_MR, DLB_D_NR, 4, 1)

#endif
