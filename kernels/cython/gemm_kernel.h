/* BLIS-style GEMM for x86-64 AVX2+FMA: C = alpha * A * B + beta * C, float32 and float64.
 *
 * Structure (Goto & van de Geijn 2008; Van Zee & van de Geijn, "BLIS", 2015):
 *
 *   for jc in N step NC                 B panel  KC x NC   packed, lives in L3
 *     for pc in K step KC
 *       pack B[pc:, jc:]
 *       for ic in M step MC             A block  MC x KC   packed, lives in L2
 *         pack A[ic:, pc:]
 *         for jr in NC step NR          B micro-panel  KC x NR  in L1
 *           for ir in MC step MR        micro-kernel, MR x NR = 6 x 16 (float32) / 6 x 8
 *                                       (float64): 12 ymm accumulators, per k one broadcast
 *                                       of A per row, two vector loads of B, 12 FMAs
 *                                       (float32 full-width tiles on an AVX-512 build: one
 *                                       16-float zmm row, even/odd k in 12 zmm chains;
 *                                       1.15-1.27x the ymm loop's GFLOP/s here)
 *
 * When M fits one A block (the im2col / 1x1 convolution shapes: M = output channels), B is
 * used once per K block, so it is not packed ahead into an L3-sized buffer: B micro-panels
 * are packed DLB_FUSED_GROUP at a time into an L2-resident buffer right before use ("fused"),
 * and the next group's rows are software-prefetched meanwhile. MC grows when KC is short
 * (constant A-block bytes), so K = 64 layers also take that path.
 *
 * Threads share nothing: C is cut into column slices (or row slices, whichever repacks less)
 * that the OpenMP threads take dynamically, each running the loop nest above with its own
 * buffers. There is no barrier, so a thread preempted by another process delays only its own
 * slice; the price is packing the shared operand once per slice (a few percent).
 *
 * Edge tiles use the same kernel compiled for fewer rows (1..5) and one vector of columns,
 * with masked loads/stores of C, so no flop is spent on more than one padded vector. The
 * orientation (C or C^T = B^T A^T) is chosen by a cycle model of the tiles, so a narrow N
 * (e.g. 49 = 7x7 output pixels) becomes the row edge; the micro-kernel stores a tile into a
 * column-major C through an in-register transpose. A and B are read through arbitrary element
 * strides (transposes are stride swaps; full micro-panels are packed with vector transposes).
 * Packing buffers come from a small pool reused across calls (no page faults per call).
 *
 * The file includes itself twice (DLB_GEMM_TEMPLATE) to instantiate the generic driver for
 * float (dlb_s_*) and double (dlb_d_*).
 */
#ifndef DLB_GEMM_TEMPLATE
#ifndef DLB_GEMM_KERNEL_H
#define DLB_GEMM_KERNEL_H

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* The packed kernels need AVX2 + FMA at compile time (-march=native on such a machine). A
 * build without them (DLBENCH_PORTABLE=1, another ISA) gets a plain blocked C fallback with
 * the same API, correct but slow; dlb_gemm_simd() says which one was compiled. */
#if defined(__AVX2__) && defined(__FMA__)
#define DLB_GEMM_SIMD 1
#else
#define DLB_GEMM_SIMD 0
#endif

static int dlb_gemm_simd(void) { return DLB_GEMM_SIMD; }

#define DLB_INLINE static inline __attribute__((always_inline))

/* ------------------------------------------------------------------------------------------ */
/* blocking parameters (run-time tunable: dlb_gemm_set_blocking)                              */

#define DLB_S_MR 6
#define DLB_S_NR 16
#define DLB_D_MR 6
#define DLB_D_NR 8
#define DLB_FUSED_GROUP 4   /* B micro-panels packed together on the fused path */

/* [0] float32, [1] float64: MC (multiple of MR) at KC, KC, NC (multiple of NR) */
static long dlb_gemm_mc[2] = {144, 72};
static long dlb_gemm_kc[2] = {256, 256};
static long dlb_gemm_nc[2] = {4080, 4080};
/* below this many flops a call runs on one thread */
static double dlb_gemm_serial_flops = 2.0e6;
/* orientation: compute C^T = B^T A^T when the model says it is this much cheaper (< 1) */
static double dlb_gemm_swap_gain = 0.92;

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
/* fused path: software-prefetch the next group of B rows while computing (0 off, 1 T0, 2 T1) */
static int dlb_gemm_prefetch_b = 1;

static long dlb_balanced_block(long total, long maxblk, long mult) {
    if (total <= 0) return mult;
    if (maxblk < mult) maxblk = mult;
    long nb = (total + maxblk - 1) / maxblk;
    long b = (total + nb - 1) / nb;
    return ((b + mult - 1) / mult) * mult;
}

/* Cycles per k of one micro-tile of `rows` x `nv` vectors: two FMA pipes, two loads per cycle
 * (rows broadcasts + nv vector loads), and the 4-cycle FMA latency of each accumulator chain. */
static double dlb_tile_cycles(long rows, long nv) {
    double fma = rows * nv / 2.0, ld = (rows + nv) / 2.0, c = fma > ld ? fma : ld;
    return c > 4.0 ? c : 4.0;
}

/* Modelled cycles per k of an m x n product on MR x (2*VL) tiles (edge tiles included). */
static double dlb_gemm_model(long m, long n, long mr, long vl) {
    long nr = 2 * vl, fm = m / mr, rm = m % mr, fn = n / nr, rn = n % nr;
    long rnv = rn == 0 ? 0 : (rn > vl ? 2 : 1);
    double c = (double)fm * fn * dlb_tile_cycles(mr, 2);
    if (rm) c += fn * dlb_tile_cycles(rm, 2);
    if (rn) c += fm * dlb_tile_cycles(mr, rnv);
    if (rm && rn) c += dlb_tile_cycles(rm, rnv);
    return c;
}

#ifdef _OPENMP
#define DLB_OMP_IDS(tid, nt) do { tid = omp_get_thread_num(); nt = omp_get_num_threads(); } while (0)
#else
#define DLB_OMP_IDS(tid, nt) do { (void)tid; (void)nt; } while (0)
#endif

/* ------------------------------------------------------------------------------------------ */
/* packing-buffer pool                                                                        */

#define DLB_POOL_SLOTS 16
static struct { void *p; size_t size; int busy; } dlb_pool[DLB_POOL_SLOTS];

/* 64-byte aligned memory; from 2 MiB on, 2 MiB aligned and advised for transparent huge
 * pages (fewer TLB misses when a packed B panel is walked micro-panel by micro-panel). */
static void *dlb_aligned_alloc(size_t bytes) {
    const size_t huge = (size_t)2 << 20;
    if (bytes < huge) return aligned_alloc(64, bytes);
    bytes = (bytes + huge - 1) & ~(huge - 1);
    void *p = aligned_alloc(huge, bytes);
#ifdef MADV_HUGEPAGE
    if (p) madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

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
                dlb_pool[i].p = dlb_aligned_alloc(bytes);
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
    return dlb_aligned_alloc(bytes);
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

#if DLB_GEMM_SIMD
/* ------------------------------------------------------------------------------------------ */
/* vectorised packing of full micro-panels (transposes in registers)                          */

/* In-register 8x8 float transpose: on return v[k] holds element k of the eight inputs. */
DLB_INLINE void dlb_tr8x8_ps(__m256 v[8]) {
    __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
    __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
    __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
    __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    v[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    v[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    v[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    v[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    v[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    v[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    v[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    v[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* In-register 4x4 double transpose. */
DLB_INLINE void dlb_tr4x4_pd(__m256d v[4]) {
    __m256d t0 = _mm256_unpacklo_pd(v[0], v[1]), t1 = _mm256_unpackhi_pd(v[0], v[1]);
    __m256d t2 = _mm256_unpacklo_pd(v[2], v[3]), t3 = _mm256_unpackhi_pd(v[2], v[3]);
    v[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    v[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    v[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    v[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

/* ------------------------------------------------------------------------------------------ */
/* micro-kernels                                                                              */

/* float32: M rows (1..6) x NV vectors of 8 columns (1..2). a: packed A micro-panel (stride 6
 * per k), b: packed B micro-panel (stride 16 per k). c: the tile's top-left element; the tile
 * is m = M rows by n columns (n <= 8*NV), row stride rs_c, column stride cs_c: cs_c == 1 is the
 * fast path, rs_c == 1 (column-major) stores through an in-register transpose. */
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
#ifdef __AVX512F__
    if (NV == 2) {
        /* a row of the tile is one 16-float zmm vector: half the FMA instructions of the ymm loop.
           Even and odd k go to separate accumulators (12 chains cover the FMA latency), summed at
           the end and split back into the ymm halves the stores below take. */
        __m512 z0[6], z1[6];
#pragma GCC unroll 6
        for (int i = 0; i < M; i++) z0[i] = z1[i] = _mm512_setzero_ps();
        long p = 0;
#pragma GCC unroll 2
        for (; p + 2 <= kc; p += 2) {
            __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + DLB_S_NR);
#pragma GCC unroll 6
            for (int i = 0; i < M; i++) {
                z0[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), b0, z0[i]);
                z1[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[DLB_S_MR + i]), b1, z1[i]);
            }
            a += 2 * DLB_S_MR;
            b += 2 * DLB_S_NR;
        }
        if (p < kc) {
            __m512 b0 = _mm512_loadu_ps(b);
#pragma GCC unroll 6
            for (int i = 0; i < M; i++) z0[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), b0, z0[i]);
        }
#pragma GCC unroll 6
        for (int i = 0; i < M; i++) {
            __m512 s = _mm512_add_ps(z0[i], z1[i]);
            acc[i][0] = _mm512_castps512_ps256(s);
            acc[i][1] = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1));
        }
    } else
#endif
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
    } else if (rs_c == 1 && M == 6) { /* column-major C: transpose 6 x 8 blocks in registers */
        const __m256 z = _mm256_setzero_ps();
        const __m128 va4 = _mm_set1_ps(alpha), vb4 = _mm_set1_ps(beta);
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) {
            __m256 t[8] = {acc[0][v], acc[1][v], acc[2][v], acc[3][v], acc[4][v], acc[5][v], z, z};
            dlb_tr8x8_ps(t);
            int cols = n - 8 * v < 8 ? n - 8 * v : 8;
            for (int q = 0; q < cols; q++) {
                float *p = c + (8 * v + q) * cs_c;
                __m128 lo = _mm256_castps256_ps128(t[q]), hi = _mm256_extractf128_ps(t[q], 1);
                if (beta == 0.0f) {
                    lo = _mm_mul_ps(va4, lo);
                    hi = _mm_mul_ps(va4, hi);
                } else {
                    lo = _mm_fmadd_ps(va4, lo, _mm_mul_ps(vb4, _mm_loadu_ps(p)));
                    hi = _mm_fmadd_ps(va4, hi, _mm_mul_ps(vb4, _mm_castpd_ps(_mm_load_sd((const double *)(p + 4)))));
                }
                _mm_storeu_ps(p, lo);
                _mm_store_sd((double *)(p + 4), _mm_castps_pd(hi));
            }
        }
    } else {
        float tile[6][16] __attribute__((aligned(32))) = {{0}};
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
    } else if (rs_c == 1 && M == 6) { /* column-major C: 4x4 transposes + row pairs */
        const __m128d va2 = _mm_set1_pd(alpha), vb2 = _mm_set1_pd(beta);
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) {
            __m256d t[4] = {acc[0][v], acc[1][v], acc[2][v], acc[3][v]};
            dlb_tr4x4_pd(t);
            __m256d u0 = _mm256_unpacklo_pd(acc[4][v], acc[5][v]), u1 = _mm256_unpackhi_pd(acc[4][v], acc[5][v]);
            __m128d r45[4] = {_mm256_castpd256_pd128(u0), _mm256_castpd256_pd128(u1),
                              _mm256_extractf128_pd(u0, 1), _mm256_extractf128_pd(u1, 1)};
            int cols = n - 4 * v < 4 ? n - 4 * v : 4;
            for (int q = 0; q < cols; q++) {
                double *p = c + (4 * v + q) * cs_c;
                __m256d r = t[q];
                __m128d r2 = r45[q];
                if (beta == 0.0) {
                    r = _mm256_mul_pd(va, r);
                    r2 = _mm_mul_pd(va2, r2);
                } else {
                    r = _mm256_fmadd_pd(va, r, _mm256_mul_pd(vb, _mm256_loadu_pd(p)));
                    r2 = _mm_fmadd_pd(va2, r2, _mm_mul_pd(vb2, _mm_loadu_pd(p + 4)));
                }
                _mm256_storeu_pd(p, r);
                _mm_storeu_pd(p + 4, r2);
            }
        }
    } else {
        double tile[6][8] __attribute__((aligned(32))) = {{0}};
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

/* A micro-panel of 6 full rows from row-major storage (unit column stride): d[k*6 + i]. */
DLB_INLINE void dlb_s_pack_a_rows(long kc, const float *src, long rsa, float *restrict d) {
    const float *r0 = src, *r1 = src + rsa, *r2 = src + 2 * rsa, *r3 = src + 3 * rsa,
                *r4 = src + 4 * rsa, *r5 = src + 5 * rsa;
    const __m256 z = _mm256_setzero_ps();
    const float *nx = src + 6 * rsa; /* the next panel's rows: fetched one panel ahead */
    long k = 0;
    for (; k + 8 <= kc; k += 8) {
        if ((k & 15) == 0)
            for (int q = 0; q < 6; q++) _mm_prefetch((const char *)(nx + q * rsa + k), _MM_HINT_T0);
        __m256 v[8] = {_mm256_loadu_ps(r0 + k), _mm256_loadu_ps(r1 + k), _mm256_loadu_ps(r2 + k),
                       _mm256_loadu_ps(r3 + k), _mm256_loadu_ps(r4 + k), _mm256_loadu_ps(r5 + k), z, z};
        dlb_tr8x8_ps(v);
        float *o = d + k * 6;
        /* overlapping stores: lanes 6-7 of each are overwritten by the next; the last one is
         * split so that nothing is written past this k-group */
        for (int q = 0; q < 7; q++) _mm256_storeu_ps(o + 6 * q, v[q]);
        _mm_storeu_ps(o + 42, _mm256_castps256_ps128(v[7]));
        _mm_storel_pi((__m64 *)(o + 46), _mm256_extractf128_ps(v[7], 1));
    }
    for (; k < kc; k++) {
        float *o = d + k * 6;
        o[0] = r0[k]; o[1] = r1[k]; o[2] = r2[k]; o[3] = r3[k]; o[4] = r4[k]; o[5] = r5[k];
    }
}

DLB_INLINE void dlb_d_pack_a_rows(long kc, const double *src, long rsa, double *restrict d) {
    const double *r0 = src, *r1 = src + rsa, *r2 = src + 2 * rsa, *r3 = src + 3 * rsa,
                 *r4 = src + 4 * rsa, *r5 = src + 5 * rsa;
    const double *nx = src + 6 * rsa; /* the next panel's rows: fetched one panel ahead */
    long k = 0;
    for (; k + 4 <= kc; k += 4) {
        if ((k & 7) == 0)
            for (int q = 0; q < 6; q++) _mm_prefetch((const char *)(nx + q * rsa + k), _MM_HINT_T0);
        __m256d v[4] = {_mm256_loadu_pd(r0 + k), _mm256_loadu_pd(r1 + k), _mm256_loadu_pd(r2 + k),
                        _mm256_loadu_pd(r3 + k)};
        dlb_tr4x4_pd(v);
        __m256d a4 = _mm256_loadu_pd(r4 + k), a5 = _mm256_loadu_pd(r5 + k);
        __m256d u0 = _mm256_unpacklo_pd(a4, a5), u1 = _mm256_unpackhi_pd(a4, a5);
        double *o = d + k * 6;
        _mm256_storeu_pd(o, v[0]);
        _mm_storeu_pd(o + 4, _mm256_castpd256_pd128(u0));
        _mm256_storeu_pd(o + 6, v[1]);
        _mm_storeu_pd(o + 10, _mm256_castpd256_pd128(u1));
        _mm256_storeu_pd(o + 12, v[2]);
        _mm_storeu_pd(o + 16, _mm256_extractf128_pd(u0, 1));
        _mm256_storeu_pd(o + 18, v[3]);
        _mm_storeu_pd(o + 22, _mm256_extractf128_pd(u1, 1));
    }
    for (; k < kc; k++) {
        double *o = d + k * 6;
        o[0] = r0[k]; o[1] = r1[k]; o[2] = r2[k]; o[3] = r3[k]; o[4] = r4[k]; o[5] = r5[k];
    }
}

/* A micro-panel of 16 full columns of B stored column-major (unit row stride, i.e. B^T
 * row-major): d[k*16 + j]. d is 32-byte aligned. */
static void dlb_s_pack_b_cols(long kc, const float *src, long csb, float *restrict d) {
    long k = 0;
    for (; k + 8 <= kc; k += 8) {
        for (int g = 0; g < 2; g++) {
            const float *s = src + 8 * g * csb + k;
            __m256 v[8];
            for (int q = 0; q < 8; q++) v[q] = _mm256_loadu_ps(s + q * csb);
            dlb_tr8x8_ps(v);
            for (int q = 0; q < 8; q++) _mm256_store_ps(d + (k + q) * 16 + 8 * g, v[q]);
        }
    }
    for (; k < kc; k++)
        for (int j = 0; j < 16; j++) d[k * 16 + j] = src[j * csb + k];
}

static void dlb_d_pack_b_cols(long kc, const double *src, long csb, double *restrict d) {
    long k = 0;
    for (; k + 4 <= kc; k += 4) {
        for (int g = 0; g < 2; g++) {
            const double *s = src + 4 * g * csb + k;
            __m256d v[4];
            for (int q = 0; q < 4; q++) v[q] = _mm256_loadu_pd(s + q * csb);
            dlb_tr4x4_pd(v);
            for (int q = 0; q < 4; q++) _mm256_store_pd(d + (k + q) * 8 + 4 * g, v[q]);
        }
    }
    for (; k < kc; k++)
        for (int j = 0; j < 8; j++) d[k * 8 + j] = src[j * csb + k];
}

/* ------------------------------------------------------------------------------------------ */
/* instantiate the generic driver for both types                                              */

#define DLB_GEMM_TEMPLATE 1

#define T float
#define MR DLB_S_MR
#define NR DLB_S_NR
#define VL 8
#define DBL 0
#define N(name) dlb_s_##name
#include "gemm_kernel.h"
#undef T
#undef MR
#undef NR
#undef VL
#undef DBL
#undef N

#define T double
#define MR DLB_D_MR
#define NR DLB_D_NR
#define VL 4
#define DBL 1
#define N(name) dlb_d_##name
#include "gemm_kernel.h"
#undef T
#undef MR
#undef NR
#undef VL
#undef DBL
#undef N

#undef DLB_GEMM_TEMPLATE

#else /* !DLB_GEMM_SIMD: portable fallback, same entry points */

#define DLB_FALLBACK(T, PFX)                                                                    \
    static int PFX##gemm(long m, long n, long k, T alpha, const T *a, long rsa, long csa,       \
                         const T *b, long rsb, long csb, T beta, T *c, long rsc, long csc,      \
                         int nthreads) {                                                        \
        (void)nthreads;                                                                         \
        for (long i = 0; i < m; i++)                                                            \
            for (long j = 0; j < n; j++) {                                                      \
                T *cij = c + i * rsc + j * csc;                                                 \
                *cij = beta == (T)0 ? (T)0 : beta * *cij;                                       \
            }                                                                                   \
        if (alpha == (T)0) return 0;                                                            \
        for (long i0 = 0; i0 < m; i0 += 64)                                                     \
            for (long p0 = 0; p0 < k; p0 += 256)                                                \
                for (long i = i0; i < m && i < i0 + 64; i++)                                    \
                    for (long p = p0; p < k && p < p0 + 256; p++) {                             \
                        T aip = alpha * a[i * rsa + p * csa];                                   \
                        for (long j = 0; j < n; j++) c[i * rsc + j * csc] += aip * b[p * rsb + j * csb]; \
                    }                                                                           \
        return 0;                                                                               \
    }                                                                                           \
    static int PFX##gemm_batched(long batch, long m, long n, long k, T alpha, const T *a,       \
                                 long sa, long rsa, long csa, const T *b, long sb, long rsb,    \
                                 long csb, T beta, T *c, long sc, long rsc, long csc,           \
                                 int nthreads) {                                                \
        for (long i = 0; i < batch; i++)                                                        \
            PFX##gemm(m, n, k, alpha, a + i * sa, rsa, csa, b + i * sb, rsb, csb, beta,         \
                      c + i * sc, rsc, csc, nthreads);                                          \
        return 0;                                                                               \
    }

DLB_FALLBACK(float, dlb_s_)
DLB_FALLBACK(double, dlb_d_)

#endif /* DLB_GEMM_SIMD */
#endif /* DLB_GEMM_KERNEL_H */

#else /* DLB_GEMM_TEMPLATE: the generic driver, T / MR / NR / VL / DBL / N() defined above */

/* Packs micro-panels [p0, p1) of the mc x kc block of A at `a` (strides rsa, csa) into `dst`:
 * panel p holds rows p*MR.. as kc groups of MR, zero-padded. */
static void N(pack_a)(long mc, long kc, const T *a, long rsa, long csa, T *restrict dst, long p0,
                      long p1) {
    if (rsa == 1 && csa != 1) { /* A^T row-major: walk each row of A^T across the panels */
        long pf = p1;
        if (pf > p0 && mc - (pf - 1) * MR < MR) pf--; /* partial last panel: generic */
        for (long k = 0; k < kc; k++) {
            const T *s = a + k * csa;
            for (long p = p0; p < pf; p++) memcpy(dst + p * MR * kc + k * MR, s + p * MR, MR * sizeof(T));
        }
        p0 = pf;
    }
    for (long p = p0; p < p1; p++) {
        long i0 = p * MR, mr = mc - i0 < MR ? mc - i0 : MR;
        const T *src = a + i0 * rsa;
        T *d = dst + p * MR * kc;
        if (mr == MR && csa == 1) {
            N(pack_a_rows)(kc, src, rsa, d);
        } else {
            for (long k = 0; k < kc; k++) {
                for (int i = 0; i < MR; i++) d[i] = i < mr ? src[i * rsa + k * csa] : (T)0;
                d += MR;
            }
        }
    }
}

/* Packs micro-panels [p0, p1) of the kc x nc panel of B at `b` (strides rsb, csb): panel p
 * holds columns p*NR.. as kc groups of NR, zero-padded, at dst + (p - pbase)*NR*kc. */
static void N(pack_b)(long kc, long nc, const T *b, long rsb, long csb, T *restrict dst, long pbase,
                      long p0, long p1) {
    long pf = p1; /* full panels [p0, pf) */
    if (pf > p0 && nc - (pf - 1) * NR < NR) pf--;
    if (csb == 1) { /* row-major: 8 rows at a time, each read sequentially across the panels */
        for (long k0 = 0; k0 < kc; k0 += 8) {
            long k1 = k0 + 8 < kc ? k0 + 8 : kc;
            for (long p = p0; p < pf; p++) {
                const T *s = b + p * NR;
                T *d = dst + (p - pbase) * NR * kc;
                for (long k = k0; k < k1; k++) memcpy(d + k * NR, s + k * rsb, NR * sizeof(T));
            }
        }
    } else if (rsb == 1) { /* column-major (B^T row-major): vector transposes */
        for (long p = p0; p < pf; p++)
            N(pack_b_cols)(kc, b + p * NR * csb, csb, dst + (p - pbase) * NR * kc);
    } else {
        pf = p0;
    }
    for (long p = pf; p < p1; p++) { /* partial panel, or general strides */
        long j0 = p * NR, nr = nc - j0 < NR ? nc - j0 : NR;
        const T *src = b + j0 * csb;
        T *d = dst + (p - pbase) * NR * kc;
        for (long k = 0; k < kc; k++) {
            const T *s = src + k * rsb;
            for (long j = 0; j < NR; j++) d[j] = j < nr ? s[j * csb] : (T)0;
            d += NR;
        }
    }
}

/* One micro-tile: rows i0.. of the packed A block, columns j0.. of C, B micro-panel bp. */
DLB_INLINE void N(tile)(long mc, long nc, long kc, long i0, long j0, const T *ap, const T *bp, T *c,
                        long rsc, long csc, T alpha, T beta) {
    int m = (int)(mc - i0 < MR ? mc - i0 : MR);
    int n = (int)(nc - j0 < NR ? nc - j0 : NR);
    N(ukr_table)[m][n > VL ? 2 : 1](kc, ap + i0 * kc, bp, c + i0 * rsc + j0 * csc, rsc, csc, n, alpha,
                                     beta);
}

/* Tiles [t0, t1) of the mc x nc block, numbered jr-major (t = jr * ni + ir); B packed ahead. */
static void N(macro)(long mc, long nc, long kc, const T *ap, const T *bp, T *c, long rsc, long csc,
                     T alpha, T beta, long t0, long t1) {
    long ni = (mc + MR - 1) / MR;
    for (long t = t0; t < t1; t++) {
        long jr = t / ni, ir = t - jr * ni;
        N(tile)(mc, nc, kc, ir * MR, jr * NR, ap, bp + jr * NR * kc, c, rsc, csc, alpha, beta);
    }
}

/* The same tiles with B packed here, DLB_FUSED_GROUP micro-panels at a time, into this
 * thread's buffer `bbuf` (kc x GROUP*NR). b points at B[pc, jc]. */
static void N(macro_fused)(long mc, long nc, long kc, const T *ap, const T *b, long rsb, long csb,
                           T *bbuf, T *c, long rsc, long csc, T alpha, T beta, long t0, long t1) {
    long ni = (mc + MR - 1) / MR, nbp = (nc + NR - 1) / NR, t = t0;
    while (t < t1) {
        long g0 = t / ni;
        long g1 = g0 + DLB_FUSED_GROUP < nbp ? g0 + DLB_FUSED_GROUP : nbp;
        long tend = g1 * ni < t1 ? g1 * ni : t1;
        N(pack_b)(kc, nc, b, rsb, csb, bbuf, g0, g0, (tend - 1) / ni + 1);
        /* prefetch the next group of B while this group computes, spread over its tiles: only
         * for short segments (row-major B: kc rows of GROUP*NR elements), which the hardware
         * stream prefetchers do not pick up; long column segments they do */
        long pf_lines = 0, pf_per_tile = 0, pf_next = 0, seg_lines = 1, seg_stride = 0, pf_seg = 0, pf_ln = 0;
        const char *pf_base = NULL;
        if (dlb_gemm_prefetch_b && csb == 1 && g1 < nbp && tend == g1 * ni) {
            long g2 = g1 + DLB_FUSED_GROUP < nbp ? g1 + DLB_FUSED_GROUP : nbp;
            long ncols = (g2 * NR < nc ? g2 * NR : nc) - g1 * NR, nseg = kc;
            long seg_bytes = ncols * (long)sizeof(T);
            seg_stride = rsb * (long)sizeof(T);
            pf_base = (const char *)(b + g1 * NR);
            seg_lines = (seg_bytes + 63) / 64 + 1; /* + 1: a segment may straddle lines */
            pf_lines = seg_lines * nseg;
            pf_per_tile = (pf_lines + (tend - t) - 1) / (tend - t);
        }
        for (; t < tend; t++) {
            long jr = t / ni, ir = t - jr * ni;
            for (long q = 0; q < pf_per_tile && pf_next < pf_lines; q++, pf_next++) {
                const char *addr = pf_base + pf_seg * seg_stride + pf_ln * 64;
                if (++pf_ln == seg_lines) {
                    pf_ln = 0;
                    pf_seg++;
                }
                if (dlb_gemm_prefetch_b == 1) _mm_prefetch(addr, _MM_HINT_T0);
                else _mm_prefetch(addr, _MM_HINT_T1);
            }
            N(tile)(mc, nc, kc, ir * MR, jr * NR, ap, bbuf + (jr - g0) * NR * kc, c, rsc, csc, alpha, beta);
        }
    }
}

/* Cache blocking of an m x n x k product on one thread: block sizes, the fused decision and
 * the packing-buffer sizes (elements) it needs. */
typedef struct {
    long mcb, kcb, ncb;
    int fused;
    size_t a_elems, b_elems;
} N(plan_t);

static N(plan_t) N(plan)(long m, long n, long k) {
    N(plan_t) p;
    p.kcb = dlb_balanced_block(k, dlb_gemm_kc[DBL], 1);
    long mc_max = dlb_gemm_mc[DBL] * dlb_gemm_kc[DBL] / p.kcb; /* constant A-block bytes */
    if (mc_max > 8 * dlb_gemm_mc[DBL]) mc_max = 8 * dlb_gemm_mc[DBL];
    p.mcb = dlb_balanced_block(m, mc_max, MR);
    p.ncb = dlb_balanced_block(n, dlb_gemm_nc[DBL], NR);
    p.fused = m <= p.mcb;
    p.a_elems = (size_t)p.mcb * p.kcb;
    p.b_elems = p.fused ? (size_t)DLB_FUSED_GROUP * NR * p.kcb : (size_t)p.kcb * p.ncb;
    return p;
}

/* The blocked loop nest on one thread, with its own buffers ap (>= a_elems) and bp. */
static void N(gemm_serial)(long m, long n, long k, T alpha, const T *a, long rsa, long csa, const T *b,
                           long rsb, long csb, T beta, T *c, long rsc, long csc, const N(plan_t) *pl,
                           T *ap, T *bp) {
    long mcb = pl->mcb, kcb = pl->kcb, ncb = pl->ncb;
    for (long jc = 0; jc < n; jc += ncb) {
        long nc = n - jc < ncb ? n - jc : ncb;
        long nbp = (nc + NR - 1) / NR;
        for (long pc = 0; pc < k; pc += kcb) {
            long kc = k - pc < kcb ? k - pc : kcb;
            T beta_eff = pc == 0 ? beta : (T)1;
            const T *bsrc = b + pc * rsb + jc * csb;
            if (!pl->fused) N(pack_b)(kc, nc, bsrc, rsb, csb, bp, 0, 0, nbp);
            for (long ic = 0; ic < m; ic += mcb) {
                long mc = m - ic < mcb ? m - ic : mcb;
                long nap = (mc + MR - 1) / MR;
                N(pack_a)(mc, kc, a + ic * rsa + pc * csa, rsa, csa, ap, 0, nap);
                T *cb = c + ic * rsc + jc * csc;
                if (pl->fused)
                    N(macro_fused)(mc, nc, kc, ap, bsrc, rsb, csb, bp, cb, rsc, csc, alpha, beta_eff, 0,
                                   nap * nbp);
                else
                    N(macro)(mc, nc, kc, ap, bp, cb, rsc, csc, alpha, beta_eff, 0, nap * nbp);
            }
        }
    }
}

/* C = beta * C (beta == 0 writes zeros, whatever C held). */
static void N(scale_c)(long m, long n, T beta, T *c, long rsc, long csc) {
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) {
            T *cij = c + i * rsc + j * csc;
            *cij = beta == (T)0 ? (T)0 : beta * *cij;
        }
}

/* Runs the problem on the calling thread with pooled buffers; 0 or -1 (no memory). */
static int N(gemm_one)(long m, long n, long k, T alpha, const T *a, long rsa, long csa, const T *b,
                       long rsb, long csb, T beta, T *c, long rsc, long csc) {
    N(plan_t) pl = N(plan)(m, n, k);
    int sa, sb;
    T *ap = (T *)dlb_buf_get(pl.a_elems * sizeof(T), &sa);
    if (!ap) return -1;
    T *bp = (T *)dlb_buf_get(pl.b_elems * sizeof(T), &sb);
    if (!bp) {
        dlb_buf_put(ap, sa);
        return -1;
    }
    N(gemm_serial)(m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc, &pl, ap, bp);
    dlb_buf_put(bp, sb);
    dlb_buf_put(ap, sa);
    return 0;
}

/* C = alpha * A B + beta * C with A m x k, B k x n, C m x n given by element strides.
 * nthreads: OpenMP threads to use (<= 0: omp_get_max_threads()). beta == 0 never reads C.
 * Threads share nothing: C is cut into column (or row) slices that the threads take
 * dynamically, each running the blocked loop nest with its own packing buffers, so there is
 * no barrier to wait at when another process preempts a thread. Splitting N repacks A once per
 * slice, splitting M repacks B, so the cheaper one is chosen. Returns 0, or -1 when a packing
 * buffer could not be allocated. */
static int N(gemm)(long m, long n, long k, T alpha, const T *a, long rsa, long csa, const T *b,
                   long rsb, long csb, T beta, T *c, long rsc, long csc, int nthreads) {
    if (m <= 0 || n <= 0) return 0;
    if (k <= 0 || alpha == (T)0) {
        N(scale_c)(m, n, beta, c, rsc, csc);
        return 0;
    }
    /* orientation: C^T = B^T A^T when C is column-major, or when the tile model prefers it
     * (a row-major C is then written through the kernel's transposing store) */
    int swap = 0;
    if (rsc == 1 && csc != 1)
        swap = !(dlb_gemm_model(m, n, MR, VL) < dlb_gemm_swap_gain * dlb_gemm_model(n, m, MR, VL));
    else if (csc == 1)
        swap = dlb_gemm_model(n, m, MR, VL) < dlb_gemm_swap_gain * dlb_gemm_model(m, n, MR, VL);
    if (swap) {
        long nrsa = csb, ncsa = rsb, nrsb = csa, ncsb = rsa, t = m;
        const T *tp = a;
        m = n; n = t; a = b; b = tp;
        rsa = nrsa; csa = ncsa; rsb = nrsb; csb = ncsb;
        t = rsc; rsc = csc; csc = t;
    }
    if (nthreads <= 0) nthreads = dlb_gemm_max_threads();
    if (2.0 * m * n * k < dlb_gemm_serial_flops) nthreads = 1;
    long nbp = (n + NR - 1) / NR, nmp = (m + MR - 1) / MR;
    if (nthreads > 1 && nbp < 2 && nmp < 2) nthreads = 1;
    if (nthreads == 1) return N(gemm_one)(m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc);

    /* slices: along N when A is the smaller operand to repack (always when M fits one A block) */
    N(plan_t) whole = N(plan)(m, n, k);
    int split_n = whole.fused || m <= n;
    if (split_n && nbp < 2 * nthreads && nmp >= 2 * nthreads) split_n = 0;
    if (!split_n && nmp < 2 * nthreads && nbp >= 2 * nthreads) split_n = 1;
    long units = split_n ? nbp : nmp;
    long chunks = (whole.fused ? 2 : 1) * (long)nthreads;
    if (chunks > units) chunks = units;
    /* buffers for the widest slice (slices are floor or ceil of units / chunks wide) */
    size_t a_need = 0, b_need = 0;
    for (long w = units / chunks; w <= (units + chunks - 1) / chunks; w++) {
        if (w <= 0) continue;
        long um = split_n ? m : (w * MR < m ? w * MR : m), un = split_n ? (w * NR < n ? w * NR : n) : n;
        N(plan_t) p = N(plan)(um, un, k);
        if (p.a_elems > a_need) a_need = p.a_elems;
        if (p.b_elems > b_need) b_need = p.b_elems;
    }
    int err = 0;
#pragma omp parallel num_threads(nthreads) reduction(| : err)
    {
        int sa = -1, sb = -1;
        T *ap = (T *)dlb_buf_get(a_need * sizeof(T), &sa);
        T *bp = ap ? (T *)dlb_buf_get(b_need * sizeof(T), &sb) : NULL;
        int ok = ap && bp;
#pragma omp for schedule(dynamic, 1)
        for (long ch = 0; ch < chunks; ch++) {
            if (!ok) continue;
            long u0 = units * ch / chunks, u1 = units * (ch + 1) / chunks;
            if (split_n) {
                long j0 = u0 * NR, j1 = u1 * NR < n ? u1 * NR : n;
                N(plan_t) p = N(plan)(m, j1 - j0, k);
                N(gemm_serial)(m, j1 - j0, k, alpha, a, rsa, csa, b + j0 * csb, rsb, csb, beta,
                               c + j0 * csc, rsc, csc, &p, ap, bp);
            } else {
                long i0 = u0 * MR, i1 = u1 * MR < m ? u1 * MR : m;
                N(plan_t) p = N(plan)(i1 - i0, n, k);
                N(gemm_serial)(i1 - i0, n, k, alpha, a + i0 * rsa, rsa, csa, b, rsb, csb, beta,
                               c + i0 * rsc, rsc, csc, &p, ap, bp);
            }
        }
        if (!ok) err = 1;
        if (bp) dlb_buf_put(bp, sb);
        if (ap) dlb_buf_put(ap, sa);
    }
    return err ? -1 : 0;
}

/* `batch` independent GEMMs C[i] = alpha A[i] B[i] + beta C[i]; sa, sb, sc are the element
 * strides between batch items (0 broadcasts one operand). Many items: one item per thread at a
 * time (serial GEMMs); few: the items in turn, each on all threads. */
static int N(gemm_batched)(long batch, long m, long n, long k, T alpha, const T *a, long sa, long rsa,
                           long csa, const T *b, long sb, long rsb, long csb, T beta, T *c, long sc,
                           long rsc, long csc, int nthreads) {
    if (nthreads <= 0) nthreads = dlb_gemm_max_threads();
    int err = 0;
    double per_item = 2.0 * m * n * k;
    int by_item = nthreads > 1 && batch >= nthreads &&
                  (batch % nthreads == 0 || batch >= 4 * nthreads || per_item < 4 * dlb_gemm_serial_flops);
    if (by_item) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads) reduction(| : err)
        for (long i = 0; i < batch; i++)
            err |= N(gemm)(m, n, k, alpha, a + i * sa, rsa, csa, b + i * sb, rsb, csb, beta, c + i * sc, rsc,
                           csc, 1);
    } else {
        for (long i = 0; i < batch; i++)
            err |= N(gemm)(m, n, k, alpha, a + i * sa, rsa, csa, b + i * sb, rsb, csb, beta, c + i * sc, rsc,
                           csc, nthreads);
    }
    return err ? -1 : 0;
}

#endif /* DLB_GEMM_TEMPLATE */
