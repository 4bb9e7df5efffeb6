# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython + OpenMP pooling core (book section 9.3): the separable plan of
``dlbench.kernels.reference.pool``.

Forward, per output row: a vertical pass reduces the window's input rows into a thread-local row
buffer in one sweep (max, weighted sum or sum of squares; 1-3 rows fused), then a horizontal pass
reduces each window's columns. The horizontal pass finds once per call the interior run of
output columns whose windows have the full size k, a constant stride s and (weighted sums)
identical column weights; that run goes through C loops specialised for (s, k) in {(2, 3),
(2, 2), (1, 3)} (and a generic constant-stride loop) that GCC vectorises (stride-2 loads become
shuffles); the border windows keep the generic per-window code.

Backward of weighted sums / L2 (when the window bounds are non-decreasing, as in every windowed
and adaptive plan): per map, each dy row is first spread horizontally into a buffer row H[oy]
(the interior run as a gather: input column c collects the windows covering it, vectorised),
then each dx row is written once as sum_oy wr[oy, r - hs[oy]] H[oy] over the output rows
covering it (L2: times x), so dx needs no zeroing pass and no read-modify-write. Max routes dy
to the first (row-major) maximum of each window. OpenMP over the feature maps.

float32 weighted sums / L2 whose dx rows are 16-column multiples (and at most 2 dy rows deep) skip
the buffer: each 16-column block of a dx row is an interleave of two weighted combinations of the
row-combined dy (``dlb_bwd_blocks_f``, weights from ``block_plan``), written with non-temporal
stores as soon as it is computed.
"""

from cython.parallel cimport parallel, prange
from libc.math cimport sqrt
from libc.stdlib cimport free, malloc
import numpy as np

ctypedef fused real:
    float
    double

cdef extern from *:
    """
    #include <math.h>
    #include <string.h>
    #ifdef _OPENMP
    #include <omp.h>
    #endif
    #ifdef __AVX__
    #include <immintrin.h>
    #endif
    /* Software prefetch of the input stream: lines from *next up to `upto` (bytes), at most
       DLB_PF_DIST bytes ahead of `from`; the hardware prefetcher alone leaves the read stream of a
       row-by-row pass at ~60 % of the read bandwidth here. */
    #define DLB_PF_DIST 2048
    static inline void dlb_prefetch(const char **next, const char *from) {
        const char *p = *next, *upto = from + DLB_PF_DIST;
        if (p < from) p = from;
        for (; p < upto; p += 64) __builtin_prefetch(p, 0, 3);
        *next = p;
    }
    /* g = dy / y, 0 where y == 0: the L2 norm's backward factor, float32, vectorised, for the C
       backward kernels (dlb_ginv_f is the Cython path's scalar form; the vector lanes give 0, not
       NaN, where y is NaN). */
    static inline void dlb_ginv_vec_f(float *g, const float *dy, const float *y, long n) {
        long o = 0;
    #ifdef __AVX2__
        for (; o + 8 <= n; o += 8) {
            __m256 yv = _mm256_loadu_ps(y + o), nz = _mm256_cmp_ps(yv, _mm256_setzero_ps(), _CMP_NEQ_OQ);
            __m256 q = _mm256_div_ps(_mm256_loadu_ps(dy + o), _mm256_blendv_ps(_mm256_set1_ps(1.0f), yv, nz));
            _mm256_storeu_ps(g + o, _mm256_and_ps(q, nz));
        }
    #endif
        for (; o < n; o++) g[o] = y[o] != 0 ? dy[o] / y[o] : 0;
    }
    /* y = sqrt(y) in place (explicit vectors: without -fno-math-errno GCC keeps sqrt scalar). */
    static inline void dlb_sqrt_f(float *y, long n) {
        long i = 0;
    #ifdef __AVX__
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_sqrt_ps(_mm256_loadu_ps(y + i)));
    #endif
        for (; i < n; i++) y[i] = sqrtf(y[i]);
    }
    static inline void dlb_sqrt_d(double *y, long n) {
        long i = 0;
    #ifdef __AVX__
        for (; i + 4 <= n; i += 4) _mm256_storeu_pd(y + i, _mm256_sqrt_pd(_mm256_loadu_pd(y + i)));
    #endif
        for (; i < n; i++) y[i] = sqrt(y[i]);
    }
    /* Fused forward of an interior run with stride 2 and 3 columns, float32, up to 3 rows a, b, e
       (row weights wr, nr <= 3; a missing row repeats a with weight 0 / is skipped for max):
       y[i] = reduce_{j<3} wc[j] (vertical reduce of column 2i + j), i < n, n >= 1 (n < 8: one
       block of masked loads and a masked store; adaptive 13 -> 6 maps 0.32 -> 0.20 ms); reads
       columns [0, 2n] only. The vertical
       reduce stays in registers (no row buffer) and the even/odd columns are split with two
       shuffles: ~10 cycles per 8 outputs, so the pass runs at the memory's pace. Returns 0 when
       the case is not covered (no AVX2): the caller computes those windows one by one. */
    #ifdef __AVX2__
    static inline __m256 dlb_even8(__m256 lo, __m256 hi) {
        __m256 t = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
        return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), _MM_SHUFFLE(3, 1, 2, 0)));
    }
    static inline __m256 dlb_odd8(__m256 lo, __m256 hi) {
        __m256 t = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
        return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), _MM_SHUFFLE(3, 1, 2, 0)));
    }
    /* the reduction of three vectors: max (code 0), weighted sum (1) or weighted sum of squares (2) */
    static inline __attribute__((always_inline)) __m256 dlb_red3(int code, __m256 va, __m256 vb, __m256 ve, __m256 w0, __m256 w1, __m256 w2) {
        if (code == 0) return _mm256_max_ps(_mm256_max_ps(va, vb), ve);
        if (code == 1) return _mm256_fmadd_ps(w2, ve, _mm256_fmadd_ps(w1, vb, _mm256_mul_ps(w0, va)));
        return _mm256_fmadd_ps(_mm256_mul_ps(w2, ve), ve,
                               _mm256_fmadd_ps(_mm256_mul_ps(w1, vb), vb, _mm256_mul_ps(va, va)));
    }
    static inline __m256 dlb_vred8(int code, const float *a, const float *b, const float *e, long c,
                                   __m256 w0, __m256 w1, __m256 w2) {
        return dlb_red3(code, _mm256_loadu_ps(a + c), _mm256_loadu_ps(b + c), _mm256_loadu_ps(e + c), w0, w1, w2);
    }
    /* lanes l < n set */
    static inline __m256i dlb_lanes_below(long n) {
        return _mm256_cmpgt_epi32(_mm256_set1_epi32((int) n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }
    /* 8 outputs from the vertical reductions of columns [c, c + 16) (l0, h0) and [c + 1, c + 17)
       (l1, h1): output i reduces columns c + 2i, c + 2i + 1, c + 2i + 2 (max, weighted by c0..c2,
       or the square root of the sum for L2) */
    static inline __attribute__((always_inline)) __m256 dlb_hred3(int code, __m256 l0, __m256 h0, __m256 l1, __m256 h1, __m256 c0, __m256 c1,
                                   __m256 c2) {
        __m256 ev = dlb_even8(l0, h0), od = dlb_odd8(l0, h0), nx = dlb_odd8(l1, h1);
        if (code == 0) return _mm256_max_ps(_mm256_max_ps(ev, od), nx);
        if (code == 1) return _mm256_fmadd_ps(c2, nx, _mm256_fmadd_ps(c1, od, _mm256_mul_ps(c0, ev)));
        return _mm256_sqrt_ps(_mm256_add_ps(_mm256_add_ps(ev, od), nx));
    }
    /* dlb_vred8 with the lanes at columns >= `cols` (relative to c = 0) masked off (read as 0) */
    static inline __m256 dlb_vred8m(int code, const float *a, const float *b, const float *e, long c, long cols,
                                    __m256 w0, __m256 w1, __m256 w2) {
        __m256i m = dlb_lanes_below(cols - c);
        return dlb_red3(code, _mm256_maskload_ps(a + c, m), _mm256_maskload_ps(b + c, m),
                        _mm256_maskload_ps(e + c, m), w0, w1, w2);
    }
    #endif
    static inline __attribute__((always_inline)) int dlb_fwd_s2k3_f(int code, const float *x, long ld, long nr, const float *wr,
                              const float *wc, float *y, long n) {
    #ifdef __AVX2__
        if (n < 1 || nr < 1 || nr > 3) return 0;
        const float *a = x, *b = nr > 1 ? x + ld : x, *e = nr > 2 ? x + 2 * ld : (nr > 1 ? x + ld : x);
        __m256 w0 = _mm256_set1_ps(code == 1 ? wr[0] : 1.0f);
        __m256 w1 = _mm256_set1_ps(code == 1 ? (nr > 1 ? wr[1] : 0.0f) : (nr > 1 ? 1.0f : 0.0f));
        __m256 w2 = _mm256_set1_ps(code == 1 ? (nr > 2 ? wr[2] : 0.0f) : (nr > 2 ? 1.0f : 0.0f));
        __m256 c0 = _mm256_set1_ps(code == 1 ? wc[0] : 1.0f), c1 = _mm256_set1_ps(code == 1 ? wc[1] : 1.0f),
               c2 = _mm256_set1_ps(code == 1 ? wc[2] : 1.0f);
        if (n < 8) {        /* a short run (small maps, e.g. adaptive 13 -> 6): one masked block */
            const long cols = 2 * n + 1;         /* columns [0, 2n]; masked lanes feed outputs >= n */
            __m256 l0 = dlb_vred8m(code, a, b, e, 0, cols, w0, w1, w2), h0 = dlb_vred8m(code, a, b, e, 8, cols, w0, w1, w2);
            __m256 l1 = dlb_vred8m(code, a, b, e, 1, cols, w0, w1, w2), h1 = dlb_vred8m(code, a, b, e, 9, cols, w0, w1, w2);
            _mm256_maskstore_ps(y, dlb_lanes_below(n), dlb_hred3(code, l0, h0, l1, h1, c0, c1, c2));
            return 1;
        }
        for (long i = 0;; i += 8) {
            if (i + 8 > n) i = n - 8;            /* last block overlaps: same values rewritten */
            __m256 l0 = dlb_vred8(code, a, b, e, 2 * i, w0, w1, w2);
            __m256 h0 = dlb_vred8(code, a, b, e, 2 * i + 8, w0, w1, w2);
            /* columns 2i+2, 2i+4, ..., 2i+16 as the odd lanes of [2i+1, 2i+17): no read past
               column 2n, the last one of the run's last window */
            __m256 l1 = dlb_vred8(code, a, b, e, 2 * i + 1, w0, w1, w2);
            __m256 h1 = dlb_vred8(code, a, b, e, 2 * i + 9, w0, w1, w2);
            _mm256_storeu_ps(y + i, dlb_hred3(code, l0, h0, l1, h1, c0, c1, c2));
            if (i + 8 >= n) break;
        }
        return 1;
    #else
        return 0;
    #endif
    }

    #ifdef __AVX512F__
    #define DLB_HAVE_AVX512 1
    #else
    #define DLB_HAVE_AVX512 0
    #endif
    #ifdef __AVX2__
    #define DLB_HAVE_AVX2 1
    #else
    #define DLB_HAVE_AVX2 0
    #endif
    /* One window straight from its nr input rows (stride ld) and columns [c0, c1). */
    static inline __attribute__((always_inline)) float dlb_window2d_f(int code, const float *row, long ld, long nr, const float *wro,
                                       const float *wcx, long c0, long c1) {
        float m = row[c0], a = 0;
        if (code == 0) {
            for (long q = 0; q < nr; q++) for (long c = c0; c < c1; c++) m = row[q * ld + c] > m ? row[q * ld + c] : m;
            return m;
        }
        for (long q = 0; q < nr; q++) {
            float t = 0;
            for (long c = c0; c < c1; c++) t += code == 1 ? wcx[c - c0] * row[q * ld + c] : row[q * ld + c] * row[q * ld + c];
            a += code == 1 ? wro[q] * t : t;
        }
        return code == 1 ? a : sqrtf(a);
    }
    /* The arguments of the fused 3x3/s2 forward (see dlb_fwd_s2k3_maps_f). */
    #define DLB_S2K3_ARGS const float *x, float *y, long P, long H, long W, long Ho, long Wo,    \\
        const long *hs, const long *he, const long *ws, const long *we, const float *wr, long ldr, \\
        const float *wc, long ldc, long o0, long o1
    /* Maps q in [qb, qe) and q + half; `code` is a constant at every call (specialised loops). */
    static inline __attribute__((always_inline)) void dlb_s2k3_maps(int code, DLB_S2K3_ARGS, long half,
                                                                     long qb, long qe) {
        const char *pf[2] = {0, 0};
        for (long q = qb; q < qe; q++) {
            for (long oy = 0; oy < Ho; oy++) {
                long r0 = hs[oy], r1 = he[oy];
                const float *wro = wr + oy * ldr;
                for (int t = 0; t < 2; t++) {
                    long p = q + t * half;
                    if (p >= P) break;
                    const float *row = x + (p * H + r0) * W;
                    float *yr = y + (p * Ho + oy) * Wo;
                    dlb_prefetch(&pf[t], (const char *) (x + (p * H + r1 - 1) * W));
                    /* the interior run fused (when it is not covered, its windows one at a time) */
                    long f1 = dlb_fwd_s2k3_f(code, row + ws[o0], W, r1 - r0, wro, wc + o0 * ldc, yr + o0,
                                             o1 - o0) ? o1 : o0;
                    for (long ox = 0; ox < o0; ox++)
                        yr[ox] = dlb_window2d_f(code, row, W, r1 - r0, wro, wc + ox * ldc, ws[ox], we[ox]);
                    for (long ox = f1; ox < Wo; ox++)
                        yr[ox] = dlb_window2d_f(code, row, W, r1 - r0, wro, wc + ox * ldc, ws[ox], we[ox]);
                }
            }
        }
    }
    /* The whole forward of a plan whose interior run has stride 2 and 3 columns and whose
       windows span <= 3 rows (3x3/s2 pooling, float32, AVX2). Each thread walks maps q and
       q + ceil(P/2) row by row, with software prefetch ahead of both: two independent read
       streams per core keep more DRAM requests in flight (on 1024 maps of 112^2: 2.2 -> 1.9 ms,
       1.1-1.2x a read-only pass of x). Kept in C with one loop nest per reduction (`code` a
       compile-time constant): through Cython's prange, or with `code` tested in the inner loop,
       the same pass ran 1.3-2x slower. */
    static void dlb_fwd_s2k3_maps_f(int code, DLB_S2K3_ARGS) {
        long half = (P + 1) / 2;
        #pragma omp parallel
        {
            long nt = 1, id = 0;
    #ifdef _OPENMP
            nt = omp_get_num_threads();
            id = omp_get_thread_num();
    #endif
            long qb = half * id / nt, qe = half * (id + 1) / nt;
            if (code == 0) dlb_s2k3_maps(0, x, y, P, H, W, Ho, Wo, hs, he, ws, we, wr, ldr, wc, ldc, o0, o1, half, qb, qe);
            else if (code == 1) dlb_s2k3_maps(1, x, y, P, H, W, Ho, Wo, hs, he, ws, we, wr, ldr, wc, ldc, o0, o1, half, qb, qe);
            else dlb_s2k3_maps(2, x, y, P, H, W, Ho, Wo, hs, he, ws, we, wr, ldr, wc, ldc, o0, o1, half, qb, qe);
        }
    }
    /* line `line` of buffer b streamed to d (non-temporal where the ISA has it), then cleared */
    static inline void dlb_flush_line(float *d, float *b, long line) {
        float *o = d + 16 * line, *i = b + 16 * line;
    #if defined(__AVX512F__)
        _mm512_stream_ps(o, _mm512_load_ps(i));
        _mm512_store_ps(i, _mm512_setzero_ps());
    #elif defined(__AVX__)
        _mm256_stream_ps(o, _mm256_load_ps(i));
        _mm256_stream_ps(o + 8, _mm256_load_ps(i + 8));
        _mm256_store_ps(i, _mm256_setzero_ps());
        _mm256_store_ps(i + 8, _mm256_setzero_ps());
    #else
        for (int k = 0; k < 16; k++) { o[k] = i[k]; i[k] = 0; }
    #endif
    }
    #define DLB_SCATTER_FLOATS 8192             /* floats of dx per group of maps */
    #define DLB_SCATTER_NT_BYTES (32L << 20)    /* smallest dx the buffered path takes */
    static inline int dlb_scatter_buffered(long P, long L, int aligned) {
        return aligned && L % 16 == 0 && P * L * (long) sizeof(float) >= DLB_SCATTER_NT_BYTES;
    }
    /* Max pooling's backward from the forward's argmax indices, float32, for large outputs: dx
       (P, L) = 0, then dx[p, idx[p, o]] += dy[p, o]. Each thread scatters a group of maps (about
       DLB_SCATTER_FLOATS floats of dx) into one of two buffers (L1/L2 resident, kept zeroed) while
       the other buffer, the previous group's, is copied out with non-temporal stores and cleared,
       one 64-byte line every ceil(windows / lines) windows: dx's writes drain while the scatter
       computes, and skip the read-for-ownership of zeroing dx in place. 16 x 64 maps of 112^2
       (51 MB of dx) went 2.06-2.30 -> 1.77-1.84 ms, next to a plain read-then-write pass over the
       same bytes (1.69-1.79 ms); 16384 maps of 28^2 2.3 -> 1.8 ms. Only where the stores pay:
       dx line-aligned, L a multiple of 16 and dx at least DLB_SCATTER_NT_BYTES. Outputs that stay
       in cache (5.5 MB of 13^2 maps: 0.17 -> 0.19-0.26 ms) or groups of odd-sized maps (65536 x
       13^2: 1.45 -> 1.53 ms) were slower than zeroing and scattering in place, which they keep
       (return -2). Otherwise returns the number of indices outside [0, L) (skipped), or -1 when
       the buffers cannot be allocated. */
    static long dlb_scatter_max_f(const float *dy, const long *idx, float *dx, long P, long L, long M,
                                  int aligned) {
        long bad = 0, failed = 0;
        if (!dlb_scatter_buffered(P, L, aligned)) return -2;
        /* groups of G consecutive maps (their dx is contiguous), about DLB_SCATTER_FLOATS floats */
        long G = DLB_SCATTER_FLOATS / L;
        if (G < 1) G = 1;
        if (G > P) G = P;
        const long LG = G * L, ngroups = (P + G - 1) / G;   /* LG: a whole number of lines */
        const long every = (G * M + LG / 16 - 1) / (LG / 16);
        #pragma omp parallel reduction(+ : bad, failed)
        {
            long nth = 1, id = 0;
    #ifdef _OPENMP
            nth = omp_get_num_threads();
            id = omp_get_thread_num();
    #endif
            float *bufs = (float *) aligned_alloc(64, 2 * LG * sizeof(float));
            if (!bufs) failed = 1;
            else {
                memset(bufs, 0, 2 * LG * sizeof(float));
                float *prev = 0;
                long cur = 0, plines = 0, q0 = ngroups * id / nth, q1 = ngroups * (id + 1) / nth;
                for (long gq = q0; gq <= q1; gq++) {
                    float *buf = bufs + cur * LG, *pb = bufs + (1 - cur) * LG;
                    long line = 0, p = gq * G, nm = P - p < G ? P - p : G, cnt = every;
                    for (long mi = 0; gq < q1 && mi < nm; mi++) {
                        const float *g = dy + (p + mi) * M;
                        const long *ip = idx + (p + mi) * M;
                        float *b = buf + mi * L;
                        for (long u = 0; u < M; u++) {
                            if (--cnt == 0) {
                                cnt = every;
                                if (line < plines) dlb_flush_line(prev, pb, line++);
                            }
                            long j = ip[u];
                            if ((unsigned long) j >= (unsigned long) L) bad++;
                            else b[j] += g[u];
                        }
                    }
                    for (; line < plines; line++) dlb_flush_line(prev, pb, line);
                    prev = dx + p * L;                    /* this group goes out next */
                    plines = gq < q1 ? nm * L / 16 : 0;
                    cur = 1 - cur;
                }
    #ifdef __AVX__
                _mm_sfence();
    #endif
                free(bufs);
            }
        }
        return failed ? -1 : bad;
    }
    /* Max pooling of small maps with 3-column, stride-2 windows (AVX-512): a whole input row is one
       16-lane vector, loaded shifted by the left padding pw so that window ox covers lanes 2 ox ..
       2 ox + 2 (lanes outside the map read -inf). Each output row is the max of its <= 3 input
       rows, then of the even, odd and next-even lanes (three permutes), stored with a mask. For
       W + pw <= 16 and Wo <= 7 (adaptive 13 -> 6, 3x3/s2 on 13^2 or 14^2): the row-by-row path
       spent ~30 vector ops on each 6-wide output row plus per-row setup (32 x 256 maps of 13^2:
       0.20 ms, 33 GB/s). */
    static void dlb_fwd_small_max_f(const float *x, float *y, long P, long H, long W, long Ho, long Wo,
                                    const long *hs, const long *he, long pw) {
    #ifdef __AVX512F__
        const __m512 ninf = _mm512_set1_ps(-INFINITY);
        const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 0, 0, 0, 0, 0, 0, 0);
        const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 0, 0, 0, 0, 0, 0, 0, 0);
        const __m512i nx = _mm512_setr_epi32(2, 4, 6, 8, 10, 12, 14, 15, 0, 0, 0, 0, 0, 0, 0, 0);
        const __mmask16 in = (__mmask16) (((1u << W) - 1) << pw), out = (__mmask16) ((1u << Wo) - 1);
        #pragma omp parallel for schedule(static)
        for (long p = 0; p < P; p++) {
            const float *xm = x + p * H * W - pw;
            float *ym = y + p * Ho * Wo;
            for (long oy = 0; oy < Ho; oy++) {
                long r = hs[oy], r1 = he[oy];
                __m512 v = _mm512_mask_loadu_ps(ninf, in, xm + r * W);
                for (r++; r < r1; r++) v = _mm512_max_ps(v, _mm512_mask_loadu_ps(ninf, in, xm + r * W));
                __m512 h = _mm512_max_ps(_mm512_max_ps(_mm512_permutexvar_ps(ev, v), _mm512_permutexvar_ps(od, v)),
                                         _mm512_permutexvar_ps(nx, v));
                _mm512_mask_storeu_ps(ym + oy * Wo, out, h);
            }
        }
    #endif
    }

    /* Backward of weighted sums / L2 (separable plans) for float32 plans whose interior run has
       stride 2 and 3 columns: per map, each dy row is spread into a row of H (the interior run:
       h[2j] = w0 g[j] + w2 g[j-1], h[2j+1] = w1 g[j], interleaved with two shuffles; border
       windows added generically), then each dx row is written once as sum_q a_q H[lo + q]
       (times the x row for L2). C with `code` a compile-time constant: the same passes through
       Cython's per-row calls ran ~3x slower than the memory allows. */
    static inline __attribute__((always_inline)) void dlb_spread_s2k3_f(float *h, const float *g, long n,
                                                                       float w0, float w1, float w2) {
        long j = 1;
        h[0] = w0 * g[0];
        h[1] = w1 * g[0];
    #ifdef __AVX2__
        __m256 W0 = _mm256_set1_ps(w0), W1 = _mm256_set1_ps(w1), W2 = _mm256_set1_ps(w2);
        for (; j + 8 <= n; j += 8) {
            __m256 gj = _mm256_loadu_ps(g + j), gm = _mm256_loadu_ps(g + j - 1);
            __m256 E = _mm256_fmadd_ps(W0, gj, _mm256_mul_ps(W2, gm)), O = _mm256_mul_ps(W1, gj);
            __m256 lo = _mm256_unpacklo_ps(E, O), hi = _mm256_unpackhi_ps(E, O);
            _mm256_storeu_ps(h + 2 * j, _mm256_permute2f128_ps(lo, hi, 0x20));
            _mm256_storeu_ps(h + 2 * j + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
        }
    #endif
        for (; j < n; j++) {
            h[2 * j] = w0 * g[j] + w2 * g[j - 1];
            h[2 * j + 1] = w1 * g[j];
        }
        h[2 * n] = w2 * g[n - 1];
    }
    #ifdef __AVX2__
    /* four (dlb_row4_f) or eight (dlb_row8_f) dx values of a row: a0 h0 (+ a1 h1) for weighted
       sums, x (h0 (+ h1)) for L2; P is the intrinsics' prefix */
    #define DLB_ROW(NAME, V, P)                                                                     \
    static inline __attribute__((always_inline)) V NAME(int code, long nr, const float *h0,          \
            const float *h1, const float *xr, float a0, float a1) {                                  \
        V v = P##_loadu_ps(h0);                                                                      \
        if (nr == 2) v = code == 1 ? P##_fmadd_ps(P##_set1_ps(a1), P##_loadu_ps(h1),                \
                                                  P##_mul_ps(P##_set1_ps(a0), v))                    \
                                   : P##_add_ps(v, P##_loadu_ps(h1));                                \
        else if (code == 1) v = P##_mul_ps(P##_set1_ps(a0), v);                                      \
        return code == 2 ? P##_mul_ps(v, P##_loadu_ps(xr)) : v;                                      \
    }
    DLB_ROW(dlb_row4_f, __m128, _mm) DLB_ROW(dlb_row8_f, __m256, _mm256)
    #endif
    static inline __attribute__((always_inline)) void dlb_bwd_s2k3_maps(
            int code, const float *x, const float *y, const float *dy, float *dx, long pb, long pe, long H,
            long W, long Ho, long Wo, const long *hs, const long *ws, const long *we, const float *wr,
            long ldr, const float *wc, long ldc, const long *lo, const long *hi, long o0, long o1,
            float *hb, float *gb) {
        long c0 = ws[o0], cend = c0 + 2 * (o1 - o0 - 1) + 3;
        float w0 = code == 1 ? wc[o0 * ldc] : 1.0f, w1 = code == 1 ? wc[o0 * ldc + 1] : 1.0f,
              w2 = code == 1 ? wc[o0 * ldc + 2] : 1.0f;
        const char *pf = 0;
        for (long p = pb; p < pe; p++) {
            const float *gp = dy + p * Ho * Wo;
            for (long oy = 0; oy < Ho; oy++) {
                const float *g = gp + oy * Wo;
                float *h = hb + oy * W;
                if (code == 2) {                 /* g = dy / y, 0 where y == 0 */
                    dlb_ginv_vec_f(gb, g, y + (p * Ho + oy) * Wo, Wo);
                    g = gb;
                }
                for (long c = 0; c < c0; c++) h[c] = 0;
                for (long c = cend; c < W; c++) h[c] = 0;
                dlb_spread_s2k3_f(h + c0, g + o0, o1 - o0, w0, w1, w2);
                for (int side = 0; side < 2; side++)             /* the border windows */
                    for (long ox = side ? o1 : 0; ox < (side ? Wo : o0); ox++)
                        for (long c = ws[ox]; c < we[ox]; c++)
                            h[c] += g[ox] * (code == 1 ? wc[ox * ldc + c - ws[ox]] : 1.0f);
            }
            for (long r = 0; r < H; r++) {
                long q0 = lo[r], nr = hi[r] - q0;
                float *restrict d = dx + (p * H + r) * W;
                const float *restrict xr = x + (p * H + r) * W;
                if (code == 2) dlb_prefetch(&pf, (const char *) xr);
                if (nr <= 0) { for (long c = 0; c < W; c++) d[c] = 0; continue; }
                const float *restrict h0 = hb + q0 * W;
                float a0 = code == 1 ? wr[q0 * ldr + r - hs[q0]] : 1.0f;
    #ifdef __AVX2__
                if (nr <= 2 && ((unsigned long) d & 15) == 0 && (W & 3) == 0) {
                    /* each dx row is written once: non-temporal stores (no read for ownership of
                       the 51 MB dx; side by side 0.75-0.97x the plain stores here) */
                    const float *restrict h1 = h0 + W;
                    float a1 = code == 1 && nr == 2 ? wr[(q0 + 1) * ldr + r - hs[q0 + 1]] : 1.0f;
                    long c = 0;
                    if ((unsigned long) d & 31) {           /* to a 32-byte boundary */
                        _mm_stream_ps(d, dlb_row4_f(code, nr, h0, h1, xr, a0, a1));
                        c = 4;
                    }
                    for (; c + 8 <= W; c += 8)
                        _mm256_stream_ps(d + c, dlb_row8_f(code, nr, h0 + c, h1 + c, xr + c, a0, a1));
                    for (; c < W; c += 4) _mm_stream_ps(d + c, dlb_row4_f(code, nr, h0 + c, h1 + c, xr + c, a0, a1));
                    continue;
                }
    #endif
                if (nr == 1) {
                    if (code == 2) for (long c = 0; c < W; c++) d[c] = xr[c] * h0[c];
                    else for (long c = 0; c < W; c++) d[c] = a0 * h0[c];
                    continue;
                }
                const float *restrict h1 = h0 + W;
                float a1 = code == 1 ? wr[(q0 + 1) * ldr + r - hs[q0 + 1]] : 1.0f;
                if (code == 2) for (long c = 0; c < W; c++) d[c] = xr[c] * (h0[c] + h1[c]);
                else for (long c = 0; c < W; c++) d[c] = a0 * h0[c] + a1 * h1[c];
                for (long q = 2; q < nr; q++) {
                    const float *restrict hq = h0 + q * W;
                    float aq = code == 1 ? wr[(q0 + q) * ldr + r - hs[q0 + q]] : 1.0f;
                    if (code == 2) for (long c = 0; c < W; c++) d[c] += xr[c] * hq[c];
                    else for (long c = 0; c < W; c++) d[c] += aq * hq[c];
                }
            }
        }
    #ifdef __AVX2__
        _mm_sfence();
    #endif
    }
    /* Returns 0 (nothing done) when a thread's buffer cannot be allocated. */
    static int dlb_bwd_s2k3_maps_f(int code, const float *x, const float *y, const float *dy, float *dx,
                                   long P, long H, long W, long Ho, long Wo, const long *hs,
                                   const long *ws, const long *we, const float *wr, long ldr,
                                   const float *wc, long ldc, const long *lo, const long *hi, long o0,
                                   long o1) {
        int ok = 1;
        #pragma omp parallel reduction(&& : ok)
        {
            long nt = 1, id = 0;
    #ifdef _OPENMP
            nt = omp_get_num_threads();
            id = omp_get_thread_num();
    #endif
            long pb = P * id / nt, pe = P * (id + 1) / nt;
            float *hb = (float *) malloc((Ho * W + Wo) * sizeof(float));
            if (!hb) ok = 0;
            else if (code == 1)
                dlb_bwd_s2k3_maps(1, x, y, dy, dx, pb, pe, H, W, Ho, Wo, hs, ws, we, wr, ldr, wc, ldc, lo, hi,
                                  o0, o1, hb, hb + Ho * W);
            else
                dlb_bwd_s2k3_maps(2, x, y, dy, dx, pb, pe, H, W, Ho, Wo, hs, ws, we, wr, ldr, wc, ldc, lo, hi,
                                  o0, o1, hb, hb + Ho * W);
            free(hb);
        }
        return ok;
    }

    /* Backward of weighted sums / L2 (3x3/s2-like separable plans, float32, AVX2), straight into
       dx: every dx row r is sum_q a_q G[lo[r] + q] (nr = 1 or 2 dy rows, row weights a_q) spread
       over the columns, and each 16-column block of the row is, per lane i and parity e,
       dx[16 b + 2 i + e] = A_e[i] V[base_b + i] + B_e[i] V[base_b + i + 1] (V the row-combined
       dy, A/B the column weights of the windows covering the column, built by `block_plan`).
       The blocks are written with non-temporal stores as soon as they are computed: no row
       buffer, so the only stores are dx's (a buffer written and read back put ordinary stores
       in the store queue behind the non-temporal ones). G = dy / y for L2 (0 where y == 0). */
    #ifdef __AVX2__
    static inline __attribute__((always_inline)) void dlb_bwd_blocks_maps(
            int code, const float *x, const float *y, const float *dy, float *dx, long pb, long pe,
            long H, long W, long Ho, long Wo, const long *hs, const float *wr, long ldr, const long *lo,
            const long *hi, const long *base, const float *wv, const int *mask, float *gb) {
        long nb = W / 16;
        const char *pfx = 0, *pfg = 0;
        for (long p = pb; p < pe; p++) {
            const float *gp = dy + p * Ho * Wo;
            if (code == 2) {                     /* G = dy / y for the whole map */
                dlb_ginv_vec_f(gb, gp, y + p * Ho * Wo, Ho * Wo);
                gp = gb;
            }
            for (long r = 0; r < H; r++) {
                long q0 = lo[r], nr = hi[r] - q0;
                float *d = dx + (p * H + r) * W;
                const float *xr = x + (p * H + r) * W;
                if (code == 2) dlb_prefetch(&pfx, (const char *) xr);
                else dlb_prefetch(&pfg, (const char *) (gp + q0 * Wo));
                if (nr <= 0) {
                    for (long c = 0; c < W; c += 8) _mm256_stream_ps(d + c, _mm256_setzero_ps());
                    continue;
                }
                const float *g0 = gp + q0 * Wo, *g1 = nr > 1 ? g0 + Wo : g0;
                __m256 a0 = _mm256_set1_ps(code == 1 ? wr[q0 * ldr + r - hs[q0]] : 1.0f);
                __m256 a1 = _mm256_set1_ps(nr < 2 ? 0.0f : code == 1 ? wr[(q0 + 1) * ldr + r - hs[q0 + 1]] : 1.0f);
                for (long b = 0; b < nb; b++) {
                    const float *w = wv + b * 32;
                    __m256i m0 = _mm256_loadu_si256((const __m256i *) (mask + b * 16));
                    __m256i m1 = _mm256_loadu_si256((const __m256i *) (mask + b * 16 + 8));
                    long bs = base[b];
                    __m256 v0 = _mm256_fmadd_ps(a1, _mm256_maskload_ps(g1 + bs, m0),
                                                _mm256_mul_ps(a0, _mm256_maskload_ps(g0 + bs, m0)));
                    __m256 v1 = _mm256_fmadd_ps(a1, _mm256_maskload_ps(g1 + bs + 1, m1),
                                                _mm256_mul_ps(a0, _mm256_maskload_ps(g0 + bs + 1, m1)));
                    __m256 E = _mm256_fmadd_ps(_mm256_loadu_ps(w + 8), v1, _mm256_mul_ps(_mm256_loadu_ps(w), v0));
                    __m256 O = _mm256_fmadd_ps(_mm256_loadu_ps(w + 24), v1, _mm256_mul_ps(_mm256_loadu_ps(w + 16), v0));
                    __m256 l = _mm256_unpacklo_ps(E, O), u = _mm256_unpackhi_ps(E, O);
                    __m256 r0 = _mm256_permute2f128_ps(l, u, 0x20), r1 = _mm256_permute2f128_ps(l, u, 0x31);
                    if (code == 2) {
                        r0 = _mm256_mul_ps(r0, _mm256_loadu_ps(xr + 16 * b));
                        r1 = _mm256_mul_ps(r1, _mm256_loadu_ps(xr + 16 * b + 8));
                    }
                    _mm256_stream_ps(d + 16 * b, r0);
                    _mm256_stream_ps(d + 16 * b + 8, r1);
                }
            }
        }
    }
    #endif
    /* Returns 0 (nothing done) without AVX2, or when dx's rows are not 32-byte aligned, or when a
       thread's buffer cannot be allocated. */
    static int dlb_bwd_blocks_f(int code, const float *x, const float *y, const float *dy, float *dx, long P,
                                long H, long W, long Ho, long Wo, const long *hs, const float *wr, long ldr,
                                const long *lo, const long *hi, const long *base, const float *wv,
                                const int *mask) {
    #ifdef __AVX2__
        if (((unsigned long) dx & 31) || W % 16) return 0;
        int ok = 1;
        #pragma omp parallel reduction(&& : ok)
        {
            long nt = 1, id = 0;
    #ifdef _OPENMP
            nt = omp_get_num_threads();
            id = omp_get_thread_num();
    #endif
            long pb = P * id / nt, pe = P * (id + 1) / nt;
            float *gb = code == 2 ? (float *) malloc(Ho * Wo * sizeof(float)) : 0;
            if (code == 2 && !gb) ok = 0;
            else if (code == 1)
                dlb_bwd_blocks_maps(1, x, y, dy, dx, pb, pe, H, W, Ho, Wo, hs, wr, ldr, lo, hi, base, wv, mask, gb);
            else
                dlb_bwd_blocks_maps(2, x, y, dy, dx, pb, pe, H, W, Ho, Wo, hs, wr, ldr, lo, hi, base, wv, mask, gb);
            free(gb);
        }
        _mm_sfence();
        return ok;
    #else
        return 0;
    #endif
    }


    /* Means of the R rows (length L) of x, float32: rows in groups of 8, each summed in a vector
       register, the 8 vectors reduced together by a tree of horizontal adds (one reduction per
       8 rows instead of one per row: global average pooling's rows are short, 7^2 = 49). */
    static void dlb_row_means_f(const float *x, long R, long L, float *y) {
        const float scale = (float) (1.0 / L);
        long R8 = R / 8;
        #pragma omp parallel for schedule(static)
        for (long b = 0; b < R8 + (R % 8 != 0); b++) {
            long r0 = b * 8, nr = R - r0 < 8 ? R - r0 : 8;
    #ifdef __AVX__
            if (nr == 8) {
                long Lv = L / 8 * 8;
                __m256 a[8];
                for (int k = 0; k < 8; k++) {
                    const float *row = x + (r0 + k) * L;
                    __m256 acc = _mm256_setzero_ps();
                    for (long i = 0; i < Lv; i += 8) acc = _mm256_add_ps(acc, _mm256_loadu_ps(row + i));
                    a[k] = acc;
                }
                __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
                __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
                __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
                __m256 v = _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
                float s[8];
                _mm256_storeu_ps(s, v);
                for (int k = 0; k < 8; k++) {
                    const float *row = x + (r0 + k) * L;
                    for (long i = Lv; i < L; i++) s[k] += row[i];
                    y[r0 + k] = s[k] * scale;
                }
                continue;
            }
    #endif
            for (long k = 0; k < nr; k++) {
                const float *row = x + (r0 + k) * L;
                float acc = 0;
                for (long i = 0; i < L; i++) acc += row[i];
                y[r0 + k] = acc * scale;
            }
        }
    }

    /* Maxout (fig. 9.9) on (N, C, L) float32: the `pieces` rows of a group are contiguous, so
       the forward is a vertical max of `pieces` rows of L values, and the backward writes each
       group's rows once (dy where the row holds the first maximum, 0 elsewhere), vectorised 8
       columns at a time; OpenMP over the N * C / pieces groups. */
    static void dlb_maxout_f(const float *x, long G, long p, long L, float *y) {
        #pragma omp parallel for schedule(static)
        for (long g = 0; g < G; g++) {
            const float *xg = x + g * p * L;
            float *yg = y + g * L;
            for (long l = 0; l < L; l++) yg[l] = xg[l];
            for (long j = 1; j < p; j++) {
                const float *restrict r = xg + j * L;
                float *restrict o = yg;
                for (long l = 0; l < L; l++) o[l] = r[l] > o[l] ? r[l] : o[l];
            }
        }
    }
    static void dlb_maxout_bwd_f(const float *dy, const float *x, long G, long p, long L, float *dx) {
        #pragma omp parallel for schedule(static)
        for (long g = 0; g < G; g++) {
            const float *xg = x + g * p * L, *gy = dy + g * L;
            float *dg = dx + g * p * L;
            long l = 0;
    #ifdef __AVX2__
            for (; l + 8 <= L; l += 8) {
                __m256 m = _mm256_loadu_ps(xg + l), best = _mm256_setzero_ps();
                for (long j = 1; j < p; j++) {
                    __m256 v = _mm256_loadu_ps(xg + j * L + l), gt = _mm256_cmp_ps(v, m, _CMP_GT_OQ);
                    m = _mm256_max_ps(m, v);
                    best = _mm256_blendv_ps(best, _mm256_set1_ps((float) j), gt);
                }
                __m256 g8 = _mm256_loadu_ps(gy + l);
                for (long j = 0; j < p; j++)
                    _mm256_storeu_ps(dg + j * L + l,
                                     _mm256_and_ps(g8, _mm256_cmp_ps(best, _mm256_set1_ps((float) j), _CMP_EQ_OQ)));
            }
    #endif
            for (; l < L; l++) {
                long bj = 0;
                float m = xg[l];
                for (long j = 1; j < p; j++) if (xg[j * L + l] > m) { m = xg[j * L + l]; bj = j; }
                for (long j = 0; j < p; j++) dg[j * L + l] = j == bj ? gy[l] : 0.0f;
            }
        }
    }

    /* g = dy / y (0 where y == 0): the L2 norm's backward factor. */
    #define DLB_GINV(T, NAME)                                                                   \
    static inline void NAME(T *restrict g, const T *restrict dy, const T *restrict y, long n) { \
        for (long i = 0; i < n; i++) { T d = y[i] != 0 ? y[i] : 1;                              \
                                       g[i] = y[i] != 0 ? dy[i] / d : 0; }                      \
    }
    DLB_GINV(float, dlb_ginv_f) DLB_GINV(double, dlb_ginv_d)
    #define DLB_SUM(T, NAME)                                                       \\
    static inline T NAME(const T *restrict v, long n) {                            \\
        T a = 0;                                                                   \\
        _Pragma("omp simd reduction(+:a)")                                         \\
        for (long i = 0; i < n; i++) a += v[i];                                    \\
        return a;                                                                  \\
    }
    DLB_SUM(float, dlb_sum_f) DLB_SUM(double, dlb_sum_d)

    /* Vertical forward pass: v[c] = reduce over the nr rows x + q ld (code 0 max, 1 sum of
       w[q] x, 2 sum of squares), one sweep for nr <= 3. */
    #define DLB_VFWD(T, NAME)                                                                   \\
    static void NAME(int code, const T *restrict x, long ld, long nr, const T *restrict w,      \\
                     T *restrict v, long W) {                                                   \\
        const T *restrict a = x, *restrict b = x + ld, *restrict e = x + 2 * ld;                \\
        long c, q;                                                                              \\
        if (code == 0) {                                                                        \\
            if (nr == 3) { for (c = 0; c < W; c++) {                                            \\
                T m = a[c]; m = b[c] > m ? b[c] : m; v[c] = e[c] > m ? e[c] : m; } return; }    \\
            if (nr == 2) { for (c = 0; c < W; c++) v[c] = b[c] > a[c] ? b[c] : a[c]; return; }  \\
            for (c = 0; c < W; c++) v[c] = a[c];                                                \\
            for (q = 1; q < nr; q++) { const T *restrict r = x + q * ld;                        \\
                for (c = 0; c < W; c++) v[c] = r[c] > v[c] ? r[c] : v[c]; }                     \\
        } else if (code == 1) {                                                                 \\
            T w0 = w[0], w1 = nr > 1 ? w[1] : 0, w2 = nr > 2 ? w[2] : 0;                        \\
            if (nr == 3) { for (c = 0; c < W; c++) v[c] = w0 * a[c] + w1 * b[c] + w2 * e[c];    \\
                return; }                                                                       \\
            if (nr == 2) { for (c = 0; c < W; c++) v[c] = w0 * a[c] + w1 * b[c]; return; }      \\
            for (c = 0; c < W; c++) v[c] = w0 * a[c];                                           \\
            for (q = 1; q < nr; q++) { const T *restrict r = x + q * ld; T wq = w[q];           \\
                for (c = 0; c < W; c++) v[c] += wq * r[c]; }                                    \\
        } else {                                                                                \\
            if (nr == 3) { for (c = 0; c < W; c++) v[c] = a[c] * a[c] + b[c] * b[c] + e[c] * e[c]; \\
                return; }                                                                       \\
            if (nr == 2) { for (c = 0; c < W; c++) v[c] = a[c] * a[c] + b[c] * b[c]; return; }  \\
            for (c = 0; c < W; c++) v[c] = a[c] * a[c];                                         \\
            for (q = 1; q < nr; q++) { const T *restrict r = x + q * ld;                        \\
                for (c = 0; c < W; c++) v[c] += r[c] * r[c]; }                                  \\
        }                                                                                       \\
    }
    DLB_VFWD(float, dlb_vfwd_f) DLB_VFWD(double, dlb_vfwd_d)

    /* Horizontal forward pass over an interior run: y[i] = reduce_{j<k} v[s i + j], i < n
       (code 0 max, 1 sum_j w[j] v, 2 sqrt of the sum). */
    #define DLB_HFWD(T, NAME, SQRT)                                                             \\
    static void NAME(int code, const T *restrict v, T *restrict y, long n, long s,              \\
                                 long k, const T *restrict w) {                                 \\
        long i, j;                                                                              \\
        if (code == 0) {                                                                        \\
            if (s == 2 && k == 3) { for (i = 0; i < n; i++) { T m = v[2 * i], b = v[2 * i + 1], \\
                e = v[2 * i + 2]; m = b > m ? b : m; y[i] = e > m ? e : m; } return; }          \\
            if (s == 2 && k == 2) { for (i = 0; i < n; i++) { T m = v[2 * i], b = v[2 * i + 1]; \\
                y[i] = b > m ? b : m; } return; }                                               \\
            if (s == 1 && k == 3) { for (i = 0; i < n; i++) { T m = v[i], b = v[i + 1],         \\
                e = v[i + 2]; m = b > m ? b : m; y[i] = e > m ? e : m; } return; }              \\
            for (i = 0; i < n; i++) { const T *u = v + s * i; T m = u[0];                       \\
                for (j = 1; j < k; j++) m = u[j] > m ? u[j] : m; y[i] = m; }                    \\
        } else if (code == 1) {                                                                 \\
            T w0 = w[0], w1 = k > 1 ? w[1] : 0, w2 = k > 2 ? w[2] : 0;                          \\
            if (s == 2 && k == 3) { for (i = 0; i < n; i++)                                     \\
                y[i] = w0 * v[2 * i] + w1 * v[2 * i + 1] + w2 * v[2 * i + 2]; return; }         \\
            if (s == 2 && k == 2) { for (i = 0; i < n; i++)                                     \\
                y[i] = w0 * v[2 * i] + w1 * v[2 * i + 1]; return; }                             \\
            if (s == 1 && k == 3) { for (i = 0; i < n; i++)                                     \\
                y[i] = w0 * v[i] + w1 * v[i + 1] + w2 * v[i + 2]; return; }                     \\
            for (i = 0; i < n; i++) { const T *u = v + s * i; T a = 0;                          \\
                for (j = 0; j < k; j++) a += w[j] * u[j]; y[i] = a; }                           \\
        } else {                                                                                \\
            if (s == 2 && k == 3) for (i = 0; i < n; i++)                                       \\
                y[i] = v[2 * i] + v[2 * i + 1] + v[2 * i + 2];                                  \\
            else if (s == 2 && k == 2) for (i = 0; i < n; i++) y[i] = v[2 * i] + v[2 * i + 1];  \\
            else if (s == 1 && k == 3) for (i = 0; i < n; i++) y[i] = v[i] + v[i + 1] + v[i + 2]; \\
            else for (i = 0; i < n; i++) { const T *u = v + s * i; T a = 0;                     \\
                for (j = 0; j < k; j++) a += u[j]; y[i] = a; }                                  \\
            SQRT(y, n);                                                                         \\
        }                                                                                       \\
    }
    DLB_HFWD(float, dlb_hfwd_f, dlb_sqrt_f) DLB_HFWD(double, dlb_hfwd_d, dlb_sqrt_d)

    /* Horizontal backward over an interior run, as a gather: h[s i + j] = sum g[i] w[j] over
       i < n, j < k (w NULL: ones); writes (does not accumulate) h[0, s (n - 1) + k). */
    #define DLB_HBWD(T, NAME)                                                                   \\
    static void NAME(T *restrict h, const T *restrict g, long n, long s, long k,                \\
                     const T *restrict w) {                                                     \\
        long i, j;                                                                              \\
        T w0 = w ? w[0] : 1, w1 = w ? (k > 1 ? w[1] : 0) : 1, w2 = w ? (k > 2 ? w[2] : 0) : 1;  \\
        if (s == 2 && k == 3) {                                                                 \\
            h[0] = g[0] * w0; h[1] = g[0] * w1;                                                 \\
            for (i = 1; i < n; i++) { h[2 * i] = g[i] * w0 + g[i - 1] * w2;                     \\
                                      h[2 * i + 1] = g[i] * w1; }                               \\
            h[2 * n] = g[n - 1] * w2; return;                                                   \\
        }                                                                                       \\
        if (s == 2 && k == 2) { for (i = 0; i < n; i++) { h[2 * i] = g[i] * w0;                 \\
                                h[2 * i + 1] = g[i] * w1; } return; }                           \\
        if (s == 1 && k == 3 && n >= 2) {                                                       \\
            h[0] = g[0] * w0; h[1] = g[1] * w0 + g[0] * w1;                                     \\
            for (i = 2; i < n; i++) h[i] = g[i] * w0 + g[i - 1] * w1 + g[i - 2] * w2;           \\
            h[n] = g[n - 1] * w1 + g[n - 2] * w2; h[n + 1] = g[n - 1] * w2; return;             \\
        }                                                                                       \\
        for (i = 0; i < s * (n - 1) + k; i++) h[i] = 0;                                         \\
        for (i = 0; i < n; i++) for (j = 0; j < k; j++) h[s * i + j] += g[i] * (w ? w[j] : 1);  \\
    }
    DLB_HBWD(float, dlb_hbwd_f) DLB_HBWD(double, dlb_hbwd_d)

    /* Vertical backward: d[c] = (sum_{q<nr} a[q] H[q ld + c]) (times xr[c] when xr is given;
       a NULL: ones); nr == 0 writes zeros. */
    #define DLB_VBWD(T, NAME)                                                                   \\
    static void NAME(T *restrict d, const T *restrict H, long ld, long nr, const T *restrict a, \\
                     const T *restrict xr, long W) {                                            \\
        long c, q;                                                                              \\
        const T *restrict h0 = H, *restrict h1 = H + ld;                                        \\
        T a0 = a ? a[0] : 1, a1 = a ? (nr > 1 ? a[1] : 0) : 1;                                  \\
        if (nr == 0) { for (c = 0; c < W; c++) d[c] = 0; return; }                              \\
        if (xr) {                                                                               \\
            if (nr == 1) { for (c = 0; c < W; c++) d[c] = xr[c] * (a0 * h0[c]); return; }       \\
            if (nr == 2) { for (c = 0; c < W; c++) d[c] = xr[c] * (a0 * h0[c] + a1 * h1[c]);    \\
                return; }                                                                       \\
        } else {                                                                                \\
            if (nr == 1) { for (c = 0; c < W; c++) d[c] = a0 * h0[c]; return; }                 \\
            if (nr == 2) { for (c = 0; c < W; c++) d[c] = a0 * h0[c] + a1 * h1[c]; return; }    \\
        }                                                                                       \\
        for (c = 0; c < W; c++) d[c] = a0 * h0[c];                                              \\
        for (q = 1; q < nr; q++) { const T *restrict hq = H + q * ld; T aq = a ? a[q] : 1;      \\
            for (c = 0; c < W; c++) d[c] += aq * hq[c]; }                                       \\
        if (xr) for (c = 0; c < W; c++) d[c] *= xr[c];                                          \\
    }
    DLB_VBWD(float, dlb_vbwd_f) DLB_VBWD(double, dlb_vbwd_d)
    """
    void dlb_prefetch(const char **next, const char *start) nogil
    float dlb_sum_f(const float *v, long n) nogil
    double dlb_sum_d(const double *v, long n) nogil
    int DLB_HAVE_AVX2
    int DLB_HAVE_AVX512
    void dlb_maxout_f(const float *x, long G, long p, long L, float *y) nogil
    void dlb_maxout_bwd_f(const float *dy, const float *x, long G, long p, long L, float *dx) nogil
    void dlb_row_means_f(const float *x, long R, long L, float *y) nogil
    int dlb_bwd_s2k3_maps_f(int code, const float *x, const float *y, const float *dy, float *dx, long P, long H,
                            long W, long Ho, long Wo, const long *hs, const long *ws, const long *we,
                            const float *wr, long ldr, const float *wc, long ldc, const long *lo,
                            const long *hi, long o0, long o1) nogil
    int dlb_bwd_blocks_f(int code, const float *x, const float *y, const float *dy, float *dx, long P, long H,
                         long W, long Ho, long Wo, const long *hs, const float *wr, long ldr, const long *lo,
                         const long *hi, const long *base, const float *wv, const int *mask) nogil
    int dlb_scatter_buffered(long P, long L, int aligned) nogil
    long dlb_scatter_max_f(const float *dy, const long *idx, float *dx, long P, long L, long M, int aligned) nogil
    void dlb_fwd_small_max_f(const float *x, float *y, long P, long H, long W, long Ho, long Wo, const long *hs,
                             const long *he, long pw) nogil
    void dlb_fwd_s2k3_maps_f(int code, const float *x, float *y, long P, long H, long W, long Ho, long Wo,
                             const long *hs, const long *he, const long *ws, const long *we, const float *wr,
                             long ldr, const float *wc, long ldc, long o0, long o1) nogil
    void dlb_vfwd_f(int code, const float *x, long ld, long nr, const float *w, float *v, long W) nogil
    void dlb_vfwd_d(int code, const double *x, long ld, long nr, const double *w, double *v, long W) nogil
    void dlb_hfwd_f(int code, const float *v, float *y, long n, long s, long k, const float *w) nogil
    void dlb_hfwd_d(int code, const double *v, double *y, long n, long s, long k, const double *w) nogil
    void dlb_ginv_f(float *g, const float *dy, const float *y, long n) nogil
    void dlb_ginv_d(double *g, const double *dy, const double *y, long n) nogil
    void dlb_hbwd_f(float *h, const float *g, long n, long s, long k, const float *w) nogil
    void dlb_hbwd_d(double *h, const double *g, long n, long s, long k, const double *w) nogil
    void dlb_vbwd_f(float *d, const float *H, long ld, long nr, const float *a, const float *xr, long W) nogil
    void dlb_vbwd_d(double *d, const double *H, long ld, long nr, const double *a, const double *xr,
                    long W) nogil


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


cdef inline real window(int code, const real *w, const real *v, Py_ssize_t n) noexcept nogil:
    """One window of the horizontal forward pass, generic: max, weighted sum, or L2 norm."""
    cdef real m
    cdef Py_ssize_t c
    if code == 0:
        m = v[0]
        for c in range(1, n):
            m = v[c] if v[c] > m else m
        return m
    if code == 1:
        return wsum(w, v, n, True)
    return sqrt(wsum(w, v, n, False))


cdef void interior_run(const long[::1] ws, const long[::1] we, const real[:, ::1] wc, int code,
                       Py_ssize_t *best) noexcept:
    """(o0, o1, s, k): the longest run of output columns [o0, o1) whose windows all have size k,
    start every s columns (s >= 1) and, for weighted sums, carry the same weights as window o0;
    o1 = o0 when there is no run of at least two windows."""
    cdef Py_ssize_t Wo = ws.shape[0], j, a, b, s, k
    cdef bint same
    best[0] = 0
    best[1] = 0
    best[2] = 1
    best[3] = 1
    a = 0
    while a + 1 < Wo:
        k = we[a] - ws[a]
        s = ws[a + 1] - ws[a]
        b = a + 1
        while b < Wo and s >= 1 and we[b] - ws[b] == k and ws[b] - ws[b - 1] == s:
            same = True
            if code == 1:
                for j in range(k):
                    same = same and wc[b, j] == wc[a, j]
            if not same:
                break
            b = b + 1
        if s >= 1 and b - a >= 2 and b - a > best[1] - best[0]:
            best[0] = a
            best[1] = b
            best[2] = s
            best[3] = k
        a = b - 1 if b > a + 1 else a + 1


cdef inline void column_argmax(const real *xp, Py_ssize_t W, Py_ssize_t r0, Py_ssize_t r1, real *v,
                               real *rows) noexcept nogil:
    """v[c] = max over rows [r0, r1) of the map xp (row stride W), rows[c] = the first row holding it."""
    cdef Py_ssize_t r, c
    cdef const real *row = xp + r0 * W
    cdef real fr = <real> r0
    for c in range(W):
        v[c] = row[c]
        rows[c] = fr
    for r in range(r0 + 1, r1):
        row = xp + r * W
        fr = <real> r
        for c in range(W):
            rows[c] = fr if row[c] > v[c] else rows[c]
            v[c] = row[c] if row[c] > v[c] else v[c]


cdef inline real window_first_max(const real *v, const real *rows, Py_ssize_t c0, Py_ssize_t c1,
                                  Py_ssize_t W, long *flat) noexcept nogil:
    """The maximum of a window's columns [c0, c1) of column_argmax's output; flat = r * W + c of its
    first occurrence in row-major order (the smallest row, then the smallest column)."""
    cdef Py_ssize_t c, bc = c0
    cdef real m = v[c0], br = rows[c0]
    cdef bint take
    for c in range(c0 + 1, c1):              # branch-free: data-dependent comparisons
        take = (v[c] > m) | ((v[c] == m) & (rows[c] < br))
        m = v[c] if take else m
        br = rows[c] if take else br
        bc = c if take else bc
    flat[0] = (<long> br) * W + bc
    return m


cdef inline void forward_row(int code, const real *xp, real *yr, Py_ssize_t W, Py_ssize_t Wo, Py_ssize_t r0,
                             Py_ssize_t r1, const real *wro, const long *ws, const long *we, const real *wc,
                             Py_ssize_t ldc, Py_ssize_t o0, Py_ssize_t o1, Py_ssize_t s, Py_ssize_t k,
                             real *v) noexcept nogil:
    """Output row yr (Wo) of one map xp (H, W) from its input rows [r0, r1) with row weights wro:
    the vertical pass into v, then the horizontal pass (interior run vectorised, borders generic)."""
    cdef const real *row = xp + r0 * W
    cdef Py_ssize_t ox, nr = r1 - r0
    if real is float:
        dlb_vfwd_f(code, row, W, nr, wro, v, W)
    else:
        dlb_vfwd_d(code, row, W, nr, wro, v, W)
    for ox in range(o0):
        yr[ox] = window(code, wc + ox * ldc, v + ws[ox], we[ox] - ws[ox])
    if o1 > o0:
        if real is float:
            dlb_hfwd_f(code, v + ws[o0], yr + o0, o1 - o0, s, k, wc + o0 * ldc)
        else:
            dlb_hfwd_d(code, v + ws[o0], yr + o0, o1 - o0, s, k, wc + o0 * ldc)
    for ox in range(o1, Wo):
        yr[ox] = window(code, wc + ox * ldc, v + ws[ox], we[ox] - ws[ox])


cdef long small_max_pad(int code, bint want_idx, const long[::1] ws, const long[::1] we, Py_ssize_t W) noexcept:
    """The left padding pw (0 or 1) when every window ox spans columns [2 ox - pw, 2 ox - pw + 3)
    clipped to the map, the map is small enough for ``dlb_fwd_small_max_f`` (W + pw <= 16, Wo <= 7;
    max, no indices) and the build has AVX-512; else -1."""
    cdef Py_ssize_t Wo = ws.shape[0], ox
    cdef long pw
    if not DLB_HAVE_AVX512 or code != 0 or want_idx or Wo < 1 or Wo > 7 or W < 3:
        return -1
    pw = 3 - we[0]
    if pw < 0 or pw > 1 or W + pw > 16:
        return -1
    for ox in range(Wo):
        if ws[ox] != max(0, 2 * ox - pw) or we[ox] != min(W, 2 * ox - pw + 3):
            return -1
    return pw


HAVE_AVX512 = bool(DLB_HAVE_AVX512)   # built with AVX-512 (-march=native on a CPU that has it)


def small_max_applies(const long[::1] ws, const long[::1] we, Py_ssize_t W):
    """The left padding (0 or 1) when a max plan with these window columns takes
    ``dlb_fwd_small_max_f`` (float32, AVX-512 builds), else -1 (tests)."""
    return small_max_pad(0, False, ws, we, W)


def forward(real[:, :, ::1] x, real[:, :, ::1] y, long[:, :, ::1] idx, bint want_idx, const long[::1] hs,
            const long[::1] he, const long[::1] ws, const long[::1] we, const real[:, ::1] wr,
            const real[:, ::1] wc, int code, int nch=0):
    """x (P, H, W) -> y (P, Ho, Wo); code 0 max, 1 weighted sum (wr x wc), 2 L2 norm; max with
    ``want_idx`` also writes idx = r * W + c of the first maximum in row-major order.

    float32 plans with a stride-2, 3-column interior run and windows of <= 3 rows (3x3/s2
    pooling) take the fused C path ``dlb_fwd_s2k3_maps_f``; the rest go row by row here.
    (``nch``, the Numba core's chunk count, is not needed: OpenMP threads own their buffers.)"""
    cdef Py_ssize_t P = x.shape[0], H = x.shape[1], W = x.shape[2], Ho = y.shape[1], Wo = y.shape[2]
    cdef Py_ssize_t p, oy, ox, r0, r1, maxrows = 0
    cdef long pw
    cdef Py_ssize_t[4] run
    interior_run(ws, we, wc, code, run)
    cdef Py_ssize_t o0 = run[0], o1 = run[1], s = run[2], k = run[3]
    cdef Py_ssize_t ldr = wr.shape[1], ldc = wc.shape[1]
    cdef real *v
    cdef real *rows
    cdef const char *pf
    for oy in range(Ho):
        maxrows = max(maxrows, he[oy] - hs[oy])
    if real is float:
        pw = small_max_pad(code, want_idx, ws, we, W)
        if pw >= 0 and P > 0:
            with nogil:
                dlb_fwd_small_max_f(&x[0, 0, 0], &y[0, 0, 0], P, H, W, Ho, Wo, &hs[0], &he[0], pw)
            return
        if (DLB_HAVE_AVX2 and not want_idx and s == 2 and k == 3 and o1 - o0 >= 1 and 1 <= maxrows <= 3
                and P > 0):
            with nogil:
                dlb_fwd_s2k3_maps_f(code, &x[0, 0, 0], &y[0, 0, 0], P, H, W, Ho, Wo, &hs[0], &he[0], &ws[0],
                                    &we[0], &wr[0, 0], ldr, &wc[0, 0], ldc, o0, o1)
            return
    with nogil, parallel():
        v = <real *> malloc(2 * W * sizeof(real))
        rows = v + W
        pf = NULL
        for p in prange(P, schedule="static"):
            for oy in range(Ho):
                r0 = hs[oy]
                r1 = he[oy]
                dlb_prefetch(&pf, <const char *> &x[p, r1 - 1, 0])
                if not (code == 0 and want_idx):
                    forward_row(code, &x[p, 0, 0], &y[p, oy, 0], W, Wo, r0, r1, &wr[oy, 0], &ws[0], &we[0],
                                &wc[0, 0], ldc, o0, o1, s, k, v)
                    continue
                column_argmax(&x[p, 0, 0], W, r0, r1, v, rows)
                for ox in range(Wo):
                    y[p, oy, ox] = window_first_max(v, rows, ws[ox], we[ox], W, &idx[p, oy, ox])
        free(v)


def row_means(const real[:, ::1] x2, real[::1] y, int nch=0):
    """y[i] = mean of row i of x2 (R, L): global average pooling (float32: ``dlb_row_means_f``,
    8 rows per horizontal reduction; float64: omp simd sums)."""
    cdef Py_ssize_t R = x2.shape[0], L = x2.shape[1], i
    cdef real scale = <real> (1.0 / L)
    if real is float:
        if R > 0 and L > 0:
            with nogil:
                dlb_row_means_f(&x2[0, 0], R, L, &y[0])
            return
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


def scatter_max_buffered(real[:, ::1] dx):
    """Whether ``scatter_max`` into this float32 dx takes the double-buffered path (tests)."""
    return real is float and dx.shape[0] > 0 and bool(dlb_scatter_buffered(
        dx.shape[0], dx.shape[1], (<size_t> &dx[0, 0]) % 64 == 0))


def scatter_max(const real[:, ::1] dy, const long[:, ::1] idx, real[:, ::1] dx, int nch=0):
    """dx (P, H*W) = 0, then dx[p, idx[p, o]] += dy[p, o]: max pooling's backward from the indices.
    Returns the number of indices outside [0, H*W) (skipped; the check costs no extra pass over
    memory). Large float32 outputs (line-aligned, H*W a multiple of 16, >= 32 MiB) take
    ``dlb_scatter_max_f`` (double-buffered groups of maps written out with non-temporal stores);
    the rest: OpenMP over the maps, zeroing then scattering in place, indices and dy prefetched."""
    cdef Py_ssize_t P = dx.shape[0], L = dx.shape[1], M = dy.shape[1], p, i, o, bad = 0
    cdef long j, res
    cdef real *d
    cdef const real *g
    cdef const long *ip
    cdef const char *pf
    cdef const char *pg
    cdef int aligned
    if P == 0 or L == 0:
        return 0
    if real is float and M > 0:
        aligned = (<size_t> &dx[0, 0]) % 64 == 0
        with nogil:
            res = dlb_scatter_max_f(&dy[0, 0], &idx[0, 0], &dx[0, 0], P, L, M, aligned)
        if res >= 0:
            return res
    with nogil, parallel():
        pf = NULL
        pg = NULL
        for p in prange(P, schedule="static"):
            d = &dx[p, 0]
            g = &dy[p, 0]
            ip = &idx[p, 0]
            for i in range(L):
                d[i] = 0
            for o in range(M):
                if o % 16 == 0:
                    dlb_prefetch(&pf, <const char *> (ip + o))
                    dlb_prefetch(&pg, <const char *> (g + o))
                j = ip[o]
                if j < 0 or j >= L:
                    bad += 1
                else:
                    d[j] = d[j] + g[o]
    return bad


cdef inline void spread_windows(real *h, const real *g, const long[::1] ws, const long[::1] we,
                                const real[:, ::1] wc, bint weighted, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """h[c] += g[ox] (times the column weight) over the columns of windows a <= ox < b."""
    cdef Py_ssize_t ox, c, c0
    for ox in range(a, b):
        c0 = ws[ox]
        if weighted:
            for c in range(c0, we[ox]):
                h[c] = h[c] + g[ox] * wc[ox, c - c0]
        else:
            for c in range(c0, we[ox]):
                h[c] = h[c] + g[ox]


cdef bint row_cover(const long[::1] hs, const long[::1] he, Py_ssize_t H, long[::1] lo, long[::1] hi):
    """lo[r], hi[r]: the output rows [lo, hi) whose windows hold input row r, when the window
    bounds hs and he are non-decreasing (every windowed and adaptive plan); False otherwise."""
    cdef Py_ssize_t Ho = hs.shape[0], o, r, a = 0, b = 0
    for o in range(1, Ho):
        if hs[o] < hs[o - 1] or he[o] < he[o - 1]:
            return False
    for r in range(H):
        while a < Ho and he[a] <= r:
            a = a + 1
        while b < Ho and hs[b] <= r:
            b = b + 1
        lo[r] = a
        hi[r] = b if b > a else a
    return True


cdef bint block_plan(const long[::1] ws, const long[::1] we, const real[:, ::1] wc, int code, Py_ssize_t W,
                     long[::1] base, float[:, :, ::1] wv, int[:, ::1] mask):
    """The 16-column blocks of ``dlb_bwd_blocks_f`` (W % 16 == 0): block b's columns 16 b + 2 i + e
    take A_e[i] V[base + i] + B_e[i] V[base + i + 1], base = the first window covering column
    16 b; wv[b] = (A_0, B_0, A_1, B_1) sums the column weights of the windows covering each
    column, mask[b] = the lanes whose V[base + i] (0:8) and V[base + i + 1] (8:16) exist. False
    when some column is covered by a window outside {base + i, base + i + 1} (or the column
    window bounds decrease): the caller takes another path."""
    cdef Py_ssize_t Wo = ws.shape[0], nb = W // 16, b, i, e, c, ox, k, bs
    cdef long[::1] clo = np.empty(W, np.int64)
    cdef long[::1] chi = np.empty(W, np.int64)
    if W % 16 or nb == 0 or not row_cover(ws, we, W, clo, chi):
        return False
    wv[:, :, :] = 0
    for b in range(nb):
        bs = clo[16 * b]
        base[b] = bs
        for i in range(8):
            mask[b, i] = -1 if 0 <= bs + i < Wo else 0
            mask[b, 8 + i] = -1 if 0 <= bs + i + 1 < Wo else 0
            for e in range(2):
                c = 16 * b + 2 * i + e
                for ox in range(clo[c], chi[c]):
                    k = ox - bs - i
                    if k < 0 or k > 1:
                        return False
                    wv[b, 2 * e + k, i] += <float> (wc[ox, c - ws[ox]] if code == 1 else 1)
    return True


cdef tuple block_plan_arrays(const long[::1] ws, const long[::1] we, const real[:, ::1] wc, int code,
                             Py_ssize_t W):
    """(base, wv, mask) of ``block_plan`` for these column windows, or None when they do not fit."""
    cdef Py_ssize_t nb = max(W // 16, 1)
    cdef long[::1] base = np.empty(nb, np.int64)
    cdef float[:, :, ::1] wv = np.empty((nb, 4, 8), np.float32)
    cdef int[:, ::1] mask = np.empty((nb, 16), np.int32)
    return (base, wv, mask) if block_plan(ws, we, wc, code, W, base, wv, mask) else None


def block_plan_applies(const long[::1] ws, const long[::1] we, const real[:, ::1] wc, int code, Py_ssize_t W):
    """Whether ``backward``'s 16-column block path can serve these column windows (it also needs
    float32, an AVX2 build, a 32-byte aligned dx and <= 2 dy rows per dx row); a test hook."""
    return block_plan_arrays(ws, we, wc, code, W) is not None

def backward(const real[:, :, ::1] x, const real[:, :, ::1] y, const real[:, :, ::1] dy, real[:, :, ::1] dx,
             const long[::1] hs, const long[::1] he, const long[::1] ws, const long[::1] we,
             const real[:, ::1] wr, const real[:, ::1] wc, int code, int nch=0):
    """dx (P, H, W) from dy (P, Ho, Wo); y (the forward output) is read by code 2 only.

    Weighted sums / L2 with non-decreasing window bounds: float32 plans of the 16-column block
    form (``block_plan``; <= 2 dy rows per dx row, a 32-byte aligned dx, AVX2) write each dx row
    straight from its dy rows (``dlb_bwd_blocks_f``); the others spread every dy row into H
    (Ho, W), then write each dx row once from the rows of H covering it. Otherwise (and
    for max) the per-output-row passes: max keeps each column's maximum and the first row holding
    it in a vertical pass; the horizontal pass picks, among the window's columns holding the
    window maximum, the smallest such row, then the smallest column: the first maximum in
    row-major order."""
    cdef Py_ssize_t P = x.shape[0], H = x.shape[1], W = x.shape[2], Ho = dy.shape[1], Wo = dy.shape[2]
    cdef Py_ssize_t p, oy, ox, r, c, r0, c0, q, nr, cend
    cdef long flat
    cdef long[::1] lo = np.empty(H, np.int64)
    cdef long[::1] hi = np.empty(H, np.int64)
    cdef bint sep = code != 0 and row_cover(hs, he, H, lo, hi)
    cdef Py_ssize_t[4] run
    interior_run(ws, we, wc, code, run)
    cdef Py_ssize_t o0 = run[0], o1 = run[1], s = run[2], k = run[3]
    cdef real *h
    cdef real *rows
    cdef real *drow
    cdef real *dxp
    cdef real *hb
    cdef real *gb
    cdef real *coef
    cdef const real *row
    cdef const real *g
    cdef const char *pfx
    cdef const char *pfg
    cdef real a, yv
    cdef bint done = False
    cdef long[::1] bbase
    cdef float[:, :, ::1] bwv
    cdef int[:, ::1] bmask
    if real is float:
        if sep and P > 0 and W % 16 == 0 and DLB_HAVE_AVX2 and np.max(np.subtract(hi, lo)) <= 2:
            blocks = block_plan_arrays(ws, we, wc, code, W)
            if blocks is not None:
                bbase, bwv, bmask = blocks
                with nogil:
                    done = dlb_bwd_blocks_f(code, &x[0, 0, 0], &y[0, 0, 0], &dy[0, 0, 0], &dx[0, 0, 0], P, H, W,
                                            Ho, Wo, &hs[0], &wr[0, 0], wr.shape[1], &lo[0], &hi[0], &bbase[0],
                                            &bwv[0, 0, 0], &bmask[0, 0])
                if done:
                    return
        if sep and s == 2 and k == 3 and o1 - o0 >= 2 and P > 0:
            with nogil:
                done = dlb_bwd_s2k3_maps_f(code, &x[0, 0, 0], &y[0, 0, 0], &dy[0, 0, 0], &dx[0, 0, 0], P, H, W, Ho,
                                           Wo, &hs[0], &ws[0], &we[0], &wr[0, 0], wr.shape[1], &wc[0, 0],
                                           wc.shape[1], &lo[0], &hi[0], o0, o1)
            if done:
                return
    if sep:
        with nogil, parallel():
            hb = <real *> malloc((Ho * W + Wo + Ho + 1) * sizeof(real))
            gb = hb + Ho * W
            coef = gb + Wo
            pfx = NULL
            pfg = NULL
            for p in prange(P, schedule="static"):
                for oy in range(Ho):
                    dlb_prefetch(&pfg, <const char *> &dy[p, oy, 0])
                    h = hb + oy * W
                    if code == 1:
                        g = &dy[p, oy, 0]
                    else:
                        if real is float:
                            dlb_ginv_f(gb, &dy[p, oy, 0], &y[p, oy, 0], Wo)
                        else:
                            dlb_ginv_d(gb, &dy[p, oy, 0], &y[p, oy, 0], Wo)
                        g = gb
                    if o1 > o0:
                        c0 = ws[o0]
                        cend = c0 + s * (o1 - o0 - 1) + k
                        for c in range(c0):
                            h[c] = 0
                        for c in range(cend, W):
                            h[c] = 0
                        if real is float:
                            dlb_hbwd_f(h + c0, g + o0, o1 - o0, s, k, &wc[o0, 0] if code == 1 else NULL)
                        else:
                            dlb_hbwd_d(h + c0, g + o0, o1 - o0, s, k, &wc[o0, 0] if code == 1 else NULL)
                    else:
                        for c in range(W):
                            h[c] = 0
                    if o1 > o0:  # the border windows around the interior run
                        spread_windows(h, g, ws, we, wc, code == 1, 0, o0)
                        spread_windows(h, g, ws, we, wc, code == 1, o1, Wo)
                    else:
                        spread_windows(h, g, ws, we, wc, code == 1, 0, Wo)
                for r in range(H):
                    r0 = lo[r]
                    nr = hi[r] - r0
                    if code == 1:
                        for q in range(nr):
                            coef[q] = wr[r0 + q, r - hs[r0 + q]]
                    if code == 2:
                        dlb_prefetch(&pfx, <const char *> &x[p, r, 0])
                    if real is float:
                        dlb_vbwd_f(&dx[p, r, 0], hb + r0 * W, W, nr, coef if code == 1 else NULL,
                                   &x[p, r, 0] if code == 2 else NULL, W)
                    else:
                        dlb_vbwd_d(&dx[p, r, 0], hb + r0 * W, W, nr, coef if code == 1 else NULL,
                                   &x[p, r, 0] if code == 2 else NULL, W)
            free(hb)
        return
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
                    column_argmax(&x[p, 0, 0], W, r0, he[oy], h, rows)
                    for ox in range(Wo):
                        window_first_max(h, rows, ws[ox], we[ox], W, &flat)
                        dxp = &dx[p, 0, 0]
                        dxp[flat] = dxp[flat] + dy[p, oy, ox]
                else:
                    for c in range(W):
                        h[c] = 0
                    for ox in range(Wo):
                        a = dy[p, oy, ox]
                        c0 = ws[ox]
                        if code == 1:
                            for c in range(c0, we[ox]):
                                h[c] = h[c] + a * wc[ox, c - c0]
                        else:
                            yv = y[p, oy, ox]
                            a = a / yv if yv != 0 else 0
                            for c in range(c0, we[ox]):
                                h[c] = h[c] + a
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


def maxout_forward(const real[:, :, ::1] x, int pieces, real[:, :, ::1] y):
    """y (N, C/p, L) = max over each group of ``pieces`` consecutive channels of x (N, C, L);
    float32 only (returns False otherwise: the caller takes the pooling core)."""
    cdef bint done = False
    if real is float:
        if x.shape[0] * y.shape[1] > 0 and x.shape[2] > 0:
            with nogil:
                dlb_maxout_f(&x[0, 0, 0], x.shape[0] * y.shape[1], pieces, x.shape[2], &y[0, 0, 0])
        done = True
    return done


def maxout_backward(const real[:, :, ::1] dy, const real[:, :, ::1] x, int pieces, real[:, :, ::1] dx):
    """dx (N, C, L): dy of each group to the first channel holding its maximum, 0 elsewhere;
    float32 only (returns False otherwise)."""
    cdef bint done = False
    if real is float:
        if dy.shape[0] * dy.shape[1] > 0 and x.shape[2] > 0:
            with nogil:
                dlb_maxout_bwd_f(&dy[0, 0, 0], &x[0, 0, 0], dy.shape[0] * dy.shape[1], pieces, x.shape[2],
                                 &dx[0, 0, 0])
        done = True
    return done
