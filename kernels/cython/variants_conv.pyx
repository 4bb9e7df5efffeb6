# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython + OpenMP tiled (eq. 9.10) and locally connected (eq. 9.9) convolution.

Same decomposition as the Numba kernels: each output location is a small GEMM of its gathered
patches (N, C*R*S) with its kernel stack W[i mod t_h, j mod t_w] (K, C*R*S). Thread-local
patch buffers; OpenMP over output locations (forward, patch gradients), (tile pattern, K block)
(weight gradient) and (n, c) maps (col2im). The ``im2col`` layout passes at the end serve the
GEMM algorithm (the products run in ``dlbench.kernels.cython.gemm``). float32 runs C: the
direct forward in 4 examples x 3 channels register blocks (``dlb_direct_fwd_f``), im2col /
col2im with the column step a compile-time constant (steps 2 and 4 with short runs: each input
row split once into its even/odd or mod-4 columns).
Elsewhere (float64, the backward) the dot products of four output channels at a time run in a C
helper vectorised with ``omp simd`` reductions. ``pad_planes`` / ``crop_planes``: the zero padding of
the front-ends (``dlbench.ops.local.register_padding``).
"""

from cython.parallel cimport parallel, prange
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

ctypedef fused real:
    float
    double

cdef extern from *:
    """
    /* im2col of one tile pattern layout, float32: cols[t, (c R + r) S + s, (n a + ia) bb + jb] =
       xp[n, c, (ia t_h + t_i) s_h + r, (jb t_w + t_j) s_w + s]. Each (t, c, n, r, s) piece is an
       a x bb block read with column step t_w s_w; the step is a compile-time constant in the
       common cases (1, 2, 4), so the short runs (bb = Wo / t_w elements) compile to unrolled or
       shuffled loads instead of a generic strided loop. OpenMP over (c, n, t), t fastest: the
       jobs of one (n, c) plane follow each other, so the plane (3.6 KB at 30^2) is read from
       memory once, not once per tile pattern (with t outermost, xp was streamed T times: the
       step-4 path of 2 x 2 tiles at stride 2 took 1.15-1.2x as long in the op). */
    #ifdef __AVX2__
    #include <immintrin.h>
    #endif
    static inline __attribute__((always_inline)) void dlb_im2col_piece_f(
            const float *restrict src, long rs, long step, long a, long bb, float *restrict dst) {
    #ifdef __AVX2__
        if (step == 1) {               /* contiguous runs: 8- and 4-wide moves, then scalars */
            for (long ia = 0; ia < a; ia++, src += rs, dst += bb) {
                long jb = 0;
                for (; jb + 8 <= bb; jb += 8) _mm256_storeu_ps(dst + jb, _mm256_loadu_ps(src + jb));
                if (jb + 4 <= bb) { _mm_storeu_ps(dst + jb, _mm_loadu_ps(src + jb)); jb += 4; }
                for (; jb < bb; jb++) dst[jb] = src[jb];
            }
            return;
        }
    #endif
        for (long ia = 0; ia < a; ia++, src += rs, dst += bb)
            for (long jb = 0; jb < bb; jb++) dst[jb] = src[jb * step];
    }
    /* col2im of the tile-pattern layout (the adjoint of dlb_im2col_f), float32: each (n, c) map
       zeroed, then every piece of cols reading it added back with the step a compile-time
       constant; OpenMP over (c, n), n fastest (adjacent pieces of one cols row read in order). */
    static inline __attribute__((always_inline)) void dlb_col2im_piece_f(
            const float *restrict src, long rs, long step, long a, long bb, float *restrict dst) {
        for (long ia = 0; ia < a; ia++, dst += rs, src += bb)
            for (long jb = 0; jb < bb; jb++) dst[jb * step] += src[jb];
    }
    static void dlb_col2im_f(const float *cols, long N, long C, long Hp, long Wp, long sh, long sw, long th,
                             long tw, long R, long S, long a, long bb, float *xp) {
        const long T = th * tw, CRS = C * R * S, M = N * a * bb, step = tw * sw, rs = th * sh * Wp;
        #pragma omp parallel for schedule(static)
        for (long job = 0; job < C * N; job++) {
            long c = job / N, n = job - c * N;
            float *plane = xp + (n * C + c) * Hp * Wp;
            for (long e = 0; e < Hp * Wp; e++) plane[e] = 0;
            for (long t = 0; t < T; t++) {
                long ti = t / tw, tj = t - ti * tw;
                for (long r = 0; r < R; r++)
                    for (long s = 0; s < S; s++) {
                        const float *src = cols + (t * CRS + (c * R + r) * S + s) * M + n * a * bb;
                        float *dst = plane + (ti * sh + r) * Wp + tj * sw + s;
                        if (step == 1) dlb_col2im_piece_f(src, rs, 1, a, bb, dst);
                        else if (step == 2) dlb_col2im_piece_f(src, rs, 2, a, bb, dst);
                        else if (step == 4) dlb_col2im_piece_f(src, rs, 4, a, bb, dst);
                        else dlb_col2im_piece_f(src, rs, step, a, bb, dst);
                    }
            }
        }
    }
    #ifdef __AVX2__
    /* Column step 4 with short runs (t_w s_w = 4, bb <= 7, column offsets t_j s_w + s <= 7: the
       2 x 2 tiles at stride 2 of the suite): each input row's 32 floats are loaded once and split
       by four 4x8 transposes into D_o = row[o + 4 jb] (o = 0..3); offset o's run is D_(o mod 4),
       moved one lane for o >= 4, and is written with one 8-wide store (its extra lanes land on
       the next runs of the same cols row, written right after; the runs within 8 floats of the
       end of a job's piece of the row are stored in 4 + 2 + 1 lanes). One job per (c, n, t_i) writes every t_j: the strided runs of 7 each cost ~18
       cycles of loop overhead before. Rows whose 8 * step float load would leave xp go the scalar way. */
    static inline __attribute__((always_inline)) void dlb_store_run(float *dst, __m256 v, long bb, int last) {
        if (!last) { _mm256_storeu_ps(dst, v); return; }
        __m128 h = _mm256_castps256_ps128(v);           /* bb <= 7: 4 + 2 + 1 lanes */
        if (bb & 4) { _mm_storeu_ps(dst, h); dst += 4; h = _mm256_extractf128_ps(v, 1); }
        if (bb & 2) { _mm_storel_pi((__m64 *) dst, h); dst += 2; h = _mm_movehl_ps(h, h); }
        if (bb & 1) _mm_store_ss(dst, h);
    }
    /* Column step 2 (t_w s_w = 2, offsets <= 3: 2 x 2 tiles at stride 1) works the same way on
       16 floats a row: E = row[2 jb], O = row[2 jb + 1] (two shuffles and a lane permute), offset
       o's run is E or O (o even / odd) moved o / 2 lanes. `step` is a constant at each call. */
    static inline __attribute__((always_inline)) int dlb_im2col_split_f(
            int step, const float *xp, long N, long C, long Hp, long Wp, long sh, long sw, long th, long tw,
            long R, long S, long a, long bb, float *cols) {
        const long CRS = C * R * S, M = N * a * bb, omax = (tw - 1) * sw + S - 1;
        if (tw * sw != step || bb > 7 || omax > 2 * step - 1 || S > 8) return 0;
        const float *xend = xp + N * C * Hp * Wp;
        const __m256i perm = step == 4 ? _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)
                                       : _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
        const __m256i perm1 = step == 4 ? _mm256_setr_epi32(4, 1, 5, 2, 6, 3, 7, 7)   /* moved one lane */
                                        : _mm256_setr_epi32(1, 4, 5, 2, 3, 6, 7, 7);
        #pragma omp parallel for schedule(static)
        for (long job = 0; job < th * C * N; job++) {
            long cn = job / th, ti = job - cn * th, c = cn / N, n = cn - c * N;
            const float *plane = xp + (n * C + c) * Hp * Wp;
            for (long r = 0; r < R; r++)
                for (long ia = 0; ia < a; ia++) {
                    const float *row = plane + ((ia * th + ti) * sh + r) * Wp;
                    int last = (a - ia) * bb < 8;   /* an 8-wide store would leave this job's runs */
                    if (row + 8 * step > xend) {            /* the last rows of xp: scalar */
                        for (long tj = 0; tj < tw; tj++)
                            for (long q = 0; q < S; q++) {
                                float *dst = cols + ((ti * tw + tj) * CRS + (c * R + r) * S + q) * M
                                             + (n * a + ia) * bb;
                                for (long jb = 0; jb < bb; jb++) dst[jb] = row[tj * sw + q + step * jb];
                            }
                        continue;
                    }
                    __m256 u[4];
                    if (step == 4) {
                        __m256 v0 = _mm256_loadu_ps(row), v1 = _mm256_loadu_ps(row + 8);
                        __m256 v2 = _mm256_loadu_ps(row + 16), v3 = _mm256_loadu_ps(row + 24);
                        __m256 t0 = _mm256_unpacklo_ps(v0, v1), t1 = _mm256_unpackhi_ps(v0, v1);
                        __m256 t2 = _mm256_unpacklo_ps(v2, v3), t3 = _mm256_unpackhi_ps(v2, v3);
                        u[0] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
                        u[1] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
                        u[2] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
                        u[3] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
                    } else {
                        __m256 v0 = _mm256_loadu_ps(row), v1 = _mm256_loadu_ps(row + 8);
                        u[0] = _mm256_shuffle_ps(v0, v1, _MM_SHUFFLE(2, 0, 2, 0));
                        u[1] = _mm256_shuffle_ps(v0, v1, _MM_SHUFFLE(3, 1, 3, 1));
                    }
                    for (long tj = 0; tj < tw; tj++)
                        for (long q = 0; q < S; q++) {
                            long o = tj * sw + q;
                            float *dst = cols + ((ti * tw + tj) * CRS + (c * R + r) * S + q) * M
                                         + (n * a + ia) * bb;
                            __m256 d = step == 4 ? _mm256_permutevar8x32_ps(u[o & 3], o < 4 ? perm : perm1)
                                                 : _mm256_permutevar8x32_ps(u[o & 1], o < 2 ? perm : perm1);
                            dlb_store_run(dst, d, bb, last);
                        }
                }
        }
        return 1;
    }
    #endif
    static void dlb_im2col_f(const float *xp, long N, long C, long Hp, long Wp, long sh, long sw, long th,
                             long tw, long R, long S, long a, long bb, float *cols) {
        const long T = th * tw, CRS = C * R * S, M = N * a * bb, step = tw * sw;
        const long rs = th * sh * Wp;
    #ifdef __AVX2__
        if (dlb_im2col_split_f(4, xp, N, C, Hp, Wp, sh, sw, th, tw, R, S, a, bb, cols)) return;
        if (dlb_im2col_split_f(2, xp, N, C, Hp, Wp, sh, sw, th, tw, R, S, a, bb, cols)) return;
    #endif
        #pragma omp parallel for schedule(static)
        for (long job = 0; job < T * C * N; job++) {
            long cn = job / T, t = job - cn * T, c = cn / N, n = cn - c * N;
            long ti = t / tw, tj = t - ti * tw;
            const float *plane = xp + (n * C + c) * Hp * Wp;
            for (long r = 0; r < R; r++)
                for (long s = 0; s < S; s++) {
                    float *dst = cols + (t * CRS + (c * R + r) * S + s) * M + n * a * bb;
                    const float *src = plane + (ti * sh + r) * Wp + tj * sw + s;
                    if (step == 1) dlb_im2col_piece_f(src, rs, 1, a, bb, dst);
                    else if (step == 2) dlb_im2col_piece_f(src, rs, 2, a, bb, dst);
                    else if (step == 4) dlb_im2col_piece_f(src, rs, 4, a, bb, dst);
                    else dlb_im2col_piece_f(src, rs, step, a, bb, dst);
                }
        }
    }
    /* Direct tiled / locally connected forward, float32 (eq. 9.9 / 9.10): per output location,
       the N gathered patches P (N x CRS) against the location's kernel stack W (K x CRS),
       y[n, k] = W[k] . P[n], in register blocks of 4 examples x 3 output channels (12 vector
       accumulators: each weight vector loaded is used 4 times, each patch vector 3 times; 4 x 4
       with AVX-512VL's 32 registers, DLB_FWD_KB; the
       Cython loop's 1 x 4 blocks ran 4 dependent FMA chains). The loop over examples is inside
       the loop over blocks of kernel rows, so each row comes from memory once per location
       (147 KB of weights a location at 64 x 576 for a locally connected layer) and is reused
       from L1; no software prefetch (the earlier non-temporal prefetch of the next rows kept
       them out of L2, so every later pass over them missed: with it, and the examples outside,
       2.3-3.3x slower side by side; a T0 prefetch was 1.0-1.5x slower than none). 40-60
       GFLOP/s a thread on the suite's locally connected shapes. 16-wide (AVX-512) vectors were
       1.1-1.3x slower here (unaligned rows). */
    #include <stdlib.h>
    #include <string.h>
    typedef float dlb_v8f __attribute__((vector_size(32)));
    /* kernel rows per register block of the direct forward: 4 where AVX-512VL gives 32 ymm
       registers (16 accumulators + 5 operands; 0.89-0.95x the time of 3 side by side), else 3 */
    #ifdef __AVX512VL__
    #define DLB_FWD_KB 4
    #else
    #define DLB_FWD_KB 3
    #endif
    static inline __attribute__((always_inline)) float dlb_hsum8(dlb_v8f v) {
        return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
    }
    /* out[a * KB + b] = P[a] . W[b] for a < 4, b < KB = DLB_FWD_KB (3 or 4): named accumulators
       (an array of vectors indexed in loops is kept on the stack by GCC, a load and a store per
       FMA); the fourth kernel row's lines compile away when KB is 3 */
    static inline __attribute__((always_inline)) void dlb_dot4k_f(
            const float *restrict w, long ldw, const float *restrict p, long ldp, long len,
            float *restrict out) {
        const int KB = DLB_FWD_KB;
        dlb_v8f c00 = {0}, c01 = {0}, c02 = {0}, c03 = {0}, c10 = {0}, c11 = {0}, c12 = {0}, c13 = {0};
        dlb_v8f c20 = {0}, c21 = {0}, c22 = {0}, c23 = {0}, c30 = {0}, c31 = {0}, c32 = {0}, c33 = {0};
        const float *w1 = w + ldw, *w2 = w + 2 * ldw, *w3 = w + 3 * ldw;
        const float *p1 = p + ldp, *p2 = p + 2 * ldp, *p3 = p + 3 * ldp;
        long q = 0;
        for (; q + 8 <= len; q += 8) {
            dlb_v8f a, b0, b1, b2, b3 = {0};
            memcpy(&b0, w + q, 32); memcpy(&b1, w1 + q, 32); memcpy(&b2, w2 + q, 32);
            if (KB == 4) memcpy(&b3, w3 + q, 32);
            memcpy(&a, p + q, 32);  c00 += a * b0; c01 += a * b1; c02 += a * b2; if (KB == 4) c03 += a * b3;
            memcpy(&a, p1 + q, 32); c10 += a * b0; c11 += a * b1; c12 += a * b2; if (KB == 4) c13 += a * b3;
            memcpy(&a, p2 + q, 32); c20 += a * b0; c21 += a * b1; c22 += a * b2; if (KB == 4) c23 += a * b3;
            memcpy(&a, p3 + q, 32); c30 += a * b0; c31 += a * b1; c32 += a * b2; if (KB == 4) c33 += a * b3;
        }
        dlb_v8f acc[16] = {c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33};
        for (int u = 0; u < 4; u++)
            for (int v = 0; v < KB; v++) out[u * KB + v] = dlb_hsum8(acc[4 * u + v]);
        for (; q < len; q++)
            for (int u = 0; u < 4; u++)
                for (int v = 0; v < KB; v++) out[u * KB + v] += p[u * ldp + q] * w[v * ldw + q];
    }
    /* one dot product (the remainders of the 4 x KB blocks): four vector accumulators */
    static inline float dlb_dot1_f(const float *restrict w, const float *restrict p, long len) {
        dlb_v8f c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0};
        long q = 0;
        for (; q + 32 <= len; q += 32) {
            dlb_v8f a, b;
            memcpy(&a, p + q, 32); memcpy(&b, w + q, 32); c0 += a * b;
            memcpy(&a, p + q + 8, 32); memcpy(&b, w + q + 8, 32); c1 += a * b;
            memcpy(&a, p + q + 16, 32); memcpy(&b, w + q + 16, 32); c2 += a * b;
            memcpy(&a, p + q + 24, 32); memcpy(&b, w + q + 24, 32); c3 += a * b;
        }
        float r = dlb_hsum8((c0 + c1) + (c2 + c3));
        for (; q < len; q++) r += p[q] * w[q];
        return r;
    }
    /* p[n, (c R + r) S + s] = xp[n, c, i0 + r, j0 + s]: the N patches of one output location */
    static inline void dlb_gather_patches_f(const float *restrict xp, long N, long C, long Hp, long Wp,
                                            long i0, long j0, long R, long S, float *restrict p) {
        for (long n = 0; n < N; n++) {
            const float *u = xp + (n * C * Hp + i0) * Wp + j0;
            for (long c = 0; c < C; c++, u += Hp * Wp) {
                const float *v = u;
                if (S == 3)     /* a runtime-length copy of 3 floats would be a memcpy call */
                    for (long r = 0; r < R; r++, v += Wp, p += 3) { p[0] = v[0]; p[1] = v[1]; p[2] = v[2]; }
                else
                    for (long r = 0; r < R; r++, v += Wp)
                        for (long q = 0; q < S; q++) *p++ = v[q];
            }
        }
    }
    static void dlb_direct_fwd_f(const float *xp, const float *w2, const float *b2, int has_bias, long N,
                                 long C, long Hp, long Wp, long K, long Ho, long Wo, long sh, long sw, long th,
                                 long tw, long R, long S, float *y, int *err) {
        const long crs = C * R * S, HW = Ho * Wo;
        const long KB = DLB_FWD_KB;
        #pragma omp parallel
        {
            float *p = (float *) malloc((size_t) N * crs * sizeof(float));
            if (!p) {
                #pragma omp atomic write
                *err = 1;
            }
            #pragma omp for schedule(static)
            for (long loc = 0; loc < HW; loc++) {
                if (!p) continue;
                long i = loc / Wo, j = loc - i * Wo, t = (i % th) * tw + (j % tw);
                const float *wt = w2 + t * K * crs;
                dlb_gather_patches_f(xp, N, C, Hp, Wp, i * sh, j * sw, R, S, p);
                /* each block of three kernel rows (7 KB at C R S = 576) is read from memory once
                   and used from L1 for every example; the patches (N x 9 KB) stay in L1 / L2 */
                float out[16];
                const long n4 = N - N % 4;
                long k0 = 0;
                for (; k0 + KB <= K; k0 += KB) {
                    for (long n0 = 0; n0 < n4; n0 += 4) {
                        dlb_dot4k_f(wt + k0 * crs, crs, p + n0 * crs, crs, crs, out);
                        for (long u = 0; u < 4; u++)
                            for (long v = 0; v < KB; v++)
                                y[((n0 + u) * K + k0 + v) * HW + loc] =
                                    out[u * KB + v] + (has_bias ? b2[t * K + k0 + v] : 0.0f);
                    }
                    for (long n = n4; n < N; n++)               /* the last N mod 4 examples */
                        for (long v = 0; v < KB; v++)
                            y[(n * K + k0 + v) * HW + loc] = dlb_dot1_f(wt + (k0 + v) * crs, p + n * crs, crs)
                                                             + (has_bias ? b2[t * K + k0 + v] : 0.0f);
                }
                for (; k0 < K; k0++)                            /* the last K mod KB channels */
                    for (long n = 0; n < N; n++)
                        y[(n * K + k0) * HW + loc] = dlb_dot1_f(wt + k0 * crs, p + n * crs, crs)
                                                     + (has_bias ? b2[t * K + k0] : 0.0f);
            }
            free(p);
        }
    }
    /* Direct backward, float32, per output location (eq. 9.11 and 9.13 per location): with
       G (N x K) the location's dy and P (N x CRS) its patches, dW (K x CRS) += G^T P and
       dP (N x CRS) = G W. Both are register blocks of 4 rows x 16 columns (8 vector
       accumulators, each output written once), vectorised along CRS; the axpy form they
       replace loaded and stored its output row once per 4 FMAs. */
    /* the scalar remainders of dlb_lc_gtp_f: rows [k0, k1), columns [q0, crs) */
    static inline void dlb_lc_gtp_tail_f(const float *restrict g, long ldg, const float *restrict p, long N,
                                         long k0, long k1, long q0, long crs, float *restrict dw, int init) {
        for (long k = k0; k < k1; k++)
            for (long q = q0; q < crs; q++) {
                float acc = init ? 0.0f : dw[k * crs + q];
                for (long n = 0; n < N; n++) acc += g[n * ldg + k] * p[n * crs + q];
                dw[k * crs + q] = acc;
            }
    }
    static inline void dlb_lc_gtp_f(const float *restrict g, long ldg, const float *restrict p, long N,
                                    long kb, long crs, float *restrict dw, int init) {
        long k0 = 0;
        for (; k0 + 4 <= kb; k0 += 4) {
            long q = 0;
            for (; q + 16 <= crs; q += 16) {
                dlb_v8f a00 = {0}, a01 = {0}, a10 = {0}, a11 = {0}, a20 = {0}, a21 = {0}, a30 = {0}, a31 = {0};
                for (long n = 0; n < N; n++) {
                    dlb_v8f p0, p1;
                    memcpy(&p0, p + n * crs + q, 32); memcpy(&p1, p + n * crs + q + 8, 32);
                    const float *gn = g + n * ldg + k0;
                    a00 += gn[0] * p0; a01 += gn[0] * p1; a10 += gn[1] * p0; a11 += gn[1] * p1;
                    a20 += gn[2] * p0; a21 += gn[2] * p1; a30 += gn[3] * p0; a31 += gn[3] * p1;
                }
                dlb_v8f r[8] = {a00, a01, a10, a11, a20, a21, a30, a31};
                for (int u = 0; u < 4; u++)
                    for (int v = 0; v < 2; v++) {
                        float *o = dw + (k0 + u) * crs + q + 8 * v;
                        dlb_v8f old = {0};
                        if (!init) memcpy(&old, o, 32);
                        old += r[2 * u + v];
                        memcpy(o, &old, 32);
                    }
            }
            dlb_lc_gtp_tail_f(g, ldg, p, N, k0, k0 + 4, q, crs, dw, init);
        }
        dlb_lc_gtp_tail_f(g, ldg, p, N, k0, kb, 0, crs, dw, init);
    }
    static inline void dlb_lc_gw_f(const float *restrict g, long K, const float *restrict w, long N, long crs,
                                   float *restrict d) {
        long q = 0;
        for (; q + 16 <= crs; q += 16) {
            long n0 = 0;
            for (; n0 + 4 <= N; n0 += 4) {
                dlb_v8f a00 = {0}, a01 = {0}, a10 = {0}, a11 = {0}, a20 = {0}, a21 = {0}, a30 = {0}, a31 = {0};
                const float *g0 = g + n0 * K, *g1 = g0 + K, *g2 = g1 + K, *g3 = g2 + K;
                for (long k = 0; k < K; k++) {
                    dlb_v8f w0, w1;
                    memcpy(&w0, w + k * crs + q, 32); memcpy(&w1, w + k * crs + q + 8, 32);
                    a00 += g0[k] * w0; a01 += g0[k] * w1; a10 += g1[k] * w0; a11 += g1[k] * w1;
                    a20 += g2[k] * w0; a21 += g2[k] * w1; a30 += g3[k] * w0; a31 += g3[k] * w1;
                }
                memcpy(d + n0 * crs + q, &a00, 32); memcpy(d + n0 * crs + q + 8, &a01, 32);
                memcpy(d + (n0 + 1) * crs + q, &a10, 32); memcpy(d + (n0 + 1) * crs + q + 8, &a11, 32);
                memcpy(d + (n0 + 2) * crs + q, &a20, 32); memcpy(d + (n0 + 2) * crs + q + 8, &a21, 32);
                memcpy(d + (n0 + 3) * crs + q, &a30, 32); memcpy(d + (n0 + 3) * crs + q + 8, &a31, 32);
            }
            for (; n0 < N; n0++) {
                dlb_v8f a0 = {0}, a1 = {0};
                for (long k = 0; k < K; k++) {
                    dlb_v8f w0, w1;
                    memcpy(&w0, w + k * crs + q, 32); memcpy(&w1, w + k * crs + q + 8, 32);
                    a0 += g[n0 * K + k] * w0; a1 += g[n0 * K + k] * w1;
                }
                memcpy(d + n0 * crs + q, &a0, 32); memcpy(d + n0 * crs + q + 8, &a1, 32);
            }
        }
        for (; q < crs; q++)
            for (long n = 0; n < N; n++) {
                float acc = 0;
                for (long k = 0; k < K; k++) acc += g[n * K + k] * w[k * crs + q];
                d[n * crs + q] = acc;
            }
    }
    /* weight gradient: tasks (tile pattern t, block [k0, k1) of K) over the tile's locations
       (one location a tile for a locally connected layer); db2 from the same G */
    static void dlb_direct_bwd_w_f(const float *dy, const float *xp, long N, long C, long Hp, long Wp, long K,
                                   long Ho, long Wo, long sh, long sw, long th, long tw, long R, long S,
                                   long kchunks, float *dw2, float *db2, int *err) {
        const long crs = C * R * S, HW = Ho * Wo, nt = th * tw;
        #pragma omp parallel
        {
            float *p = (float *) malloc((size_t) (N * crs + N * K) * sizeof(float));
            if (!p) {
                #pragma omp atomic write
                *err = 1;
            }
            float *g = p ? p + N * crs : NULL;
            #pragma omp for schedule(static)
            for (long task = 0; task < nt * kchunks; task++) {
                if (!p) continue;
                long t = task / kchunks, part = task - t * kchunks, ti = t / tw, tj = t - ti * tw;
                long k0 = part * K / kchunks, k1 = (part + 1) * K / kchunks, kb = k1 - k0;
                float *dwt = dw2 + (t * K + k0) * crs, *dbt = db2 + t * K + k0;
                for (long k = 0; k < kb; k++) dbt[k] = 0;
                int first = 1;
                for (long ia = 0; ia < Ho / th; ia++)
                    for (long jb = 0; jb < Wo / tw; jb++) {
                        long i = ia * th + ti, j = jb * tw + tj;
                        dlb_gather_patches_f(xp, N, C, Hp, Wp, i * sh, j * sw, R, S, p);
                        for (long n = 0; n < N; n++)
                            for (long k = 0; k < kb; k++) {
                                float v = dy[(n * K + k0 + k) * HW + i * Wo + j];
                                g[n * kb + k] = v;
                                dbt[k] += v;
                            }
                        dlb_lc_gtp_f(g, kb, p, N, kb, crs, dwt, first);
                        first = 0;
                    }
                if (first)                  /* a tile pattern no location uses */
                    for (long e = 0; e < kb * crs; e++) dwt[e] = 0;
            }
            free(p);
        }
    }
    /* patch gradients: dcols[loc, n, :] = sum_k dy[n, k, i, j] W[t(i, j)][k]; OpenMP over locations */
    static void dlb_direct_bwd_p_f(const float *dy, const float *w2, long N, long K, long Ho, long Wo, long th,
                                   long tw, long crs, float *dcols, int *err) {
        const long HW = Ho * Wo;
        #pragma omp parallel
        {
            float *g = (float *) malloc((size_t) N * K * sizeof(float));
            if (!g) {
                #pragma omp atomic write
                *err = 1;
            }
            #pragma omp for schedule(static)
            for (long loc = 0; loc < HW; loc++) {
                if (!g) continue;
                long i = loc / Wo, j = loc - i * Wo;
                const float *wt = w2 + ((i % th) * tw + (j % tw)) * K * crs;
                for (long n = 0; n < N; n++)
                    for (long k = 0; k < K; k++) g[n * K + k] = dy[(n * K + k) * HW + loc];
                dlb_lc_gw_f(g, K, wt, N, crs, dcols + loc * N * crs);
            }
            free(g);
        }
    }
    #define DLB_DOT4(T, NAME)                                                              \\
    static inline void NAME(const T *restrict w, long ld, const T *restrict p, long n,     \\
                            T *restrict out) {                                             \\
        T a0 = 0, a1 = 0, a2 = 0, a3 = 0;                                                  \\
        const T *w1 = w + ld, *w2 = w + 2 * ld, *w3 = w + 3 * ld;                          \\
        _Pragma("omp simd reduction(+:a0,a1,a2,a3)")                                       \\
        for (long q = 0; q < n; q++) {                                                     \\
            T v = p[q]; a0 += w[q] * v; a1 += w1[q] * v; a2 += w2[q] * v; a3 += w3[q] * v; \\
        }                                                                                  \\
        out[0] = a0; out[1] = a1; out[2] = a2; out[3] = a3;                                \\
    }
    #define DLB_DOT(T, NAME)                                                               \\
    static inline T NAME(const T *restrict w, const T *restrict p, long n) {               \\
        T a = 0;                                                                           \\
        _Pragma("omp simd reduction(+:a)")                                                 \\
        for (long q = 0; q < n; q++) a += w[q] * p[q];                                     \\
        return a;                                                                          \\
    }
    /* d[q] += g0 s0[q] + g1 s1[q] + g2 s2[q] + g3 s3[q]: rows s_i are ld apart. */
    #define DLB_AXPY4(T, NAME)                                                             \\
    static inline void NAME(T *restrict d, const T *restrict s, long ld, long n,           \\
                            T g0, T g1, T g2, T g3) {                                      \\
        const T *s1 = s + ld, *s2 = s + 2 * ld, *s3 = s + 3 * ld;                          \\
        for (long q = 0; q < n; q++)                                                       \\
            d[q] += (g0 * s[q] + g1 * s1[q]) + (g2 * s2[q] + g3 * s3[q]);                  \\
    }
    #define DLB_AXPY(T, NAME)                                                              \\
    static inline void NAME(T *restrict d, const T *restrict s, long n, T g) {             \\
        for (long q = 0; q < n; q++) d[q] += g * s[q];                                     \\
    }
    DLB_DOT4(float, dlb_dot4_f) DLB_DOT4(double, dlb_dot4_d)
    DLB_DOT(float, dlb_dot_f) DLB_DOT(double, dlb_dot_d)
    DLB_AXPY4(float, dlb_axpy4_f) DLB_AXPY4(double, dlb_axpy4_d)
    DLB_AXPY(float, dlb_axpy_f) DLB_AXPY(double, dlb_axpy_d)
    """
    void dlb_col2im_f(const float *cols, long N, long C, long Hp, long Wp, long sh, long sw, long th, long tw,
                      long R, long S, long a, long bb, float *xp) nogil
    void dlb_direct_fwd_f(const float *xp, const float *w2, const float *b2, int has_bias, long N, long C,
                          long Hp, long Wp, long K, long Ho, long Wo, long sh, long sw, long th, long tw, long R,
                          long S, float *y, int *err) nogil
    void dlb_direct_bwd_w_f(const float *dy, const float *xp, long N, long C, long Hp, long Wp, long K, long Ho,
                            long Wo, long sh, long sw, long th, long tw, long R, long S, long kchunks, float *dw2,
                            float *db2, int *err) nogil
    void dlb_direct_bwd_p_f(const float *dy, const float *w2, long N, long K, long Ho, long Wo, long th, long tw,
                            long crs, float *dcols, int *err) nogil
    void dlb_im2col_f(const float *xp, long N, long C, long Hp, long Wp, long sh, long sw, long th, long tw,
                      long R, long S, long a, long bb, float *cols) nogil
    void dlb_dot4_f(const float *w, long ld, const float *p, long n, float *out) nogil
    void dlb_dot4_d(const double *w, long ld, const double *p, long n, double *out) nogil
    float dlb_dot_f(const float *w, const float *p, long n) nogil
    double dlb_dot_d(const double *w, const double *p, long n) nogil
    void dlb_axpy4_f(float *d, const float *s, long ld, long n, float g0, float g1, float g2, float g3) nogil
    void dlb_axpy4_d(double *d, const double *s, long ld, long n, double g0, double g1, double g2,
                     double g3) nogil
    void dlb_axpy_f(float *d, const float *s, long n, float g) nogil
    void dlb_axpy_d(double *d, const double *s, long n, double g) nogil


cdef inline void dot4(const real *w, long ld, const real *p, long n, real *out) noexcept nogil:
    if real is float:
        dlb_dot4_f(w, ld, p, n, out)
    else:
        dlb_dot4_d(w, ld, p, n, out)


cdef inline real dot(const real *w, const real *p, long n) noexcept nogil:
    if real is float:
        return dlb_dot_f(w, p, n)
    else:
        return dlb_dot_d(w, p, n)


cdef inline void axpy4(real *d, const real *s, long ld, long n, real g0, real g1, real g2,
                       real g3) noexcept nogil:
    if real is float:
        dlb_axpy4_f(d, s, ld, n, g0, g1, g2, g3)
    else:
        dlb_axpy4_d(d, s, ld, n, g0, g1, g2, g3)


cdef inline void axpy(real *d, const real *s, long n, real g) noexcept nogil:
    if real is float:
        dlb_axpy_f(d, s, n, g)
    else:
        dlb_axpy_d(d, s, n, g)


cdef inline void gather(real[:, :, :, ::1] xp, Py_ssize_t n, Py_ssize_t i0, Py_ssize_t j0, Py_ssize_t C,
                        Py_ssize_t R, Py_ssize_t S, real *dst) noexcept nogil:
    cdef Py_ssize_t c, r, s, q = 0
    for c in range(C):
        for r in range(R):
            for s in range(S):
                dst[q] = xp[n, c, i0 + r, j0 + s]
                q += 1


def forward(real[:, :, :, ::1] xp, real[:, ::1] w2, real[:, ::1] b2, bint has_bias, int sh, int sw,
            int th, int tw, int R, int S, real[:, :, :, ::1] y):
    """y[n, k, i, j] = W[t(i, j)][k] . P[n] (+ b2[t, k]); w2 (t_h*t_w, K*CRS), y (N, K, Ho, Wo).
    float32 runs ``dlb_direct_fwd_f`` (C, 4 examples x 3 channels register blocks)."""
    cdef Py_ssize_t N = xp.shape[0], C = xp.shape[1], K = y.shape[1], Ho = y.shape[2], Wo = y.shape[3]
    cdef Py_ssize_t crs = C * R * S
    cdef Py_ssize_t loc, i, j, t, n, k
    cdef real *p
    cdef real *acc
    cdef real *wt
    cdef int err = 0
    if real is float:
        with nogil:
            dlb_direct_fwd_f(&xp[0, 0, 0, 0], &w2[0, 0], &b2[0, 0], has_bias, N, C, xp.shape[2], xp.shape[3],
                             K, Ho, Wo, sh, sw, th, tw, R, S, &y[0, 0, 0, 0], &err)
        if err:
            raise MemoryError("tiled/local forward: could not allocate the patch buffer")
        return
    with nogil, parallel():
        p = <real *> malloc((N * crs + 4) * sizeof(real))
        acc = p + N * crs
        for loc in prange(Ho * Wo, schedule="static"):
            i = loc // Wo
            j = loc - i * Wo
            t = (i % th) * tw + (j % tw)
            wt = &w2[t, 0]
            for n in range(N):
                gather(xp, n, i * sh, j * sw, C, R, S, p + n * crs)
            for n in range(N):
                k = 0
                while k + 4 <= K:
                    dot4(wt + k * crs, crs, p + n * crs, crs, acc)
                    if has_bias:
                        acc[0] = acc[0] + b2[t, k]
                        acc[1] = acc[1] + b2[t, k + 1]
                        acc[2] = acc[2] + b2[t, k + 2]
                        acc[3] = acc[3] + b2[t, k + 3]
                    y[n, k, i, j] = acc[0]
                    y[n, k + 1, i, j] = acc[1]
                    y[n, k + 2, i, j] = acc[2]
                    y[n, k + 3, i, j] = acc[3]
                    k = k + 4
                while k < K:
                    acc[0] = dot(wt + k * crs, p + n * crs, crs)
                    if has_bias:
                        acc[0] = acc[0] + b2[t, k]
                    y[n, k, i, j] = acc[0]
                    k = k + 1
        free(p)


def backward_weight(real[:, :, :, ::1] dy, real[:, :, :, ::1] xp, int sh, int sw, int th, int tw, int R,
                    int S, int kchunks, real[:, ::1] dw2, real[:, ::1] db2):
    """dw2[t, k*CRS:(k+1)*CRS] = sum over the tile's locations and n of dy[n, k, i, j] P[n]; db2 too.
    float32 runs ``dlb_direct_bwd_w_f`` (C, 4 x 16 register blocks)."""
    cdef Py_ssize_t N = xp.shape[0], C = xp.shape[1], K = dy.shape[1], Ho = dy.shape[2], Wo = dy.shape[3]
    cdef Py_ssize_t crs = C * R * S, nt = th * tw
    cdef int err = 0
    if real is float:
        with nogil:
            dlb_direct_bwd_w_f(&dy[0, 0, 0, 0], &xp[0, 0, 0, 0], N, C, xp.shape[2], xp.shape[3], K, Ho, Wo, sh, sw,
                               th, tw, R, S, kchunks, &dw2[0, 0], &db2[0, 0], &err)
        if err:
            raise MemoryError("tiled/local backward: could not allocate the patch buffer")
        return
    cdef Py_ssize_t task, t, part, ti, tj, k0, k1, i, j, ia, jb, n, k, q
    cdef real *p
    cdef real *dwt
    cdef real g0, g1, g2, g3
    with nogil, parallel():
        p = <real *> malloc(N * crs * sizeof(real))
        for task in prange(nt * kchunks, schedule="static"):
            t = task // kchunks
            part = task - t * kchunks
            ti = t // tw
            tj = t - ti * tw
            k0 = part * K // kchunks
            k1 = (part + 1) * K // kchunks
            dwt = &dw2[t, 0]
            for q in range(k0 * crs, k1 * crs):
                dwt[q] = 0
            for k in range(k0, k1):
                db2[t, k] = 0
            for ia in range(Ho // th):
                i = ia * th + ti
                for jb in range(Wo // tw):
                    j = jb * tw + tj
                    for n in range(N):
                        gather(xp, n, i * sh, j * sw, C, R, S, p + n * crs)
                    for k in range(k0, k1):
                        n = 0
                        while n + 4 <= N:
                            g0 = dy[n, k, i, j]
                            g1 = dy[n + 1, k, i, j]
                            g2 = dy[n + 2, k, i, j]
                            g3 = dy[n + 3, k, i, j]
                            axpy4(dwt + k * crs, p + n * crs, crs, crs, g0, g1, g2, g3)
                            db2[t, k] = db2[t, k] + ((g0 + g1) + (g2 + g3))
                            n = n + 4
                        while n < N:
                            g0 = dy[n, k, i, j]
                            axpy(dwt + k * crs, p + n * crs, crs, g0)
                            db2[t, k] = db2[t, k] + g0
                            n = n + 1
        free(p)


def patch_grads(const real[:, :, :, ::1] dy, const real[:, ::1] w2, int th, int tw, real[:, :, ::1] dcols):
    """dcols[loc, n, :] = sum_k dy[n, k, i, j] W[t(i, j)][k]: each location's kernels read once for all
    examples; OpenMP over locations. float32 runs ``dlb_direct_bwd_p_f`` (C, 4 x 16 register blocks)."""
    cdef Py_ssize_t N = dy.shape[0], K = dy.shape[1], Wo = dy.shape[3], L = dcols.shape[0]
    cdef Py_ssize_t crs = dcols.shape[2]
    cdef int err = 0
    if real is float:
        with nogil:
            dlb_direct_bwd_p_f(&dy[0, 0, 0, 0], &w2[0, 0], N, K, dy.shape[2], Wo, th, tw, crs, &dcols[0, 0, 0],
                               &err)
        if err:
            raise MemoryError("tiled/local backward: could not allocate the dy buffer")
        return
    cdef Py_ssize_t loc, i, j, n, k, q
    cdef real *d
    cdef const real *wt
    for loc in prange(L, nogil=True, schedule="static"):
        i = loc // Wo
        j = loc - i * Wo
        wt = &w2[(i % th) * tw + (j % tw), 0]
        for n in range(N):
            d = &dcols[loc, n, 0]
            for q in range(crs):
                d[q] = 0
            k = 0
            while k + 4 <= K:
                axpy4(d, wt + k * crs, crs, crs, dy[n, k, i, j], dy[n, k + 1, i, j], dy[n, k + 2, i, j],
                      dy[n, k + 3, i, j])
                k = k + 4
            while k < K:
                axpy(d, wt + k * crs, crs, dy[n, k, i, j])
                k = k + 1


def col2im_direct(const real[:, :, ::1] dcols, int sh, int sw, int R, int S, int Wo, real[:, :, :, ::1] dxp):
    """dxp[n, c] = sum over locations of the patch gradients dcols[loc, n] reading it; OpenMP over (n, c)."""
    cdef Py_ssize_t N = dxp.shape[0], C = dxp.shape[1], Hp = dxp.shape[2], Wp = dxp.shape[3]
    cdef Py_ssize_t L = dcols.shape[0]
    cdef Py_ssize_t job, n, c, loc, i, j, r, s, q, e
    cdef real *dst
    cdef const real *src
    for job in prange(N * C, nogil=True, schedule="static"):
        n = job // C
        c = job - n * C
        dst = &dxp[n, c, 0, 0]
        for e in range(Hp * Wp):
            dst[e] = 0
        for loc in range(L):
            i = loc // Wo
            j = loc - i * Wo
            src = &dcols[loc, n, c * R * S]
            q = 0
            for r in range(R):
                dst = &dxp[n, c, i * sh + r, j * sw]
                for s in range(S):
                    dst[s] = dst[s] + src[q + s]
                q = q + S


# ---------------------------------------------------------------- zero padding and its adjoint
cdef (Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t) overlap(Py_ssize_t H, Py_ssize_t W, Py_ssize_t Hp,
                                                             Py_ssize_t Wp, Py_ssize_t pt, Py_ssize_t pl):
    """(top, left, rows, cols): x[:, :, :rows, :cols] sits at xp[:, :, top:top + rows, left:left + cols]
    (pads clipped to xp; as ``dlbench.ops.local._overlap``)."""
    pt = min(max(pt, 0), Hp)
    pl = min(max(pl, 0), Wp)
    return pt, pl, max(0, min(H, Hp - pt)), max(0, min(W, Wp - pl))


def pad_planes(const real[:, :, :, ::1] x, Py_ssize_t pt, Py_ssize_t pl, real[:, :, :, ::1] xp):
    """xp[n, c, pt + i, pl + j] = x[n, c, i, j] where it fits, zero elsewhere (the zero-padded
    input of the convolution front-ends; x rows/columns beyond xp are dropped). OpenMP over the
    (n, c) planes: NumPy's slice copy walks 28-float rows one inner loop at a time (~0.4 ms for
    16x64x28^2)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t Hp = xp.shape[2], Wp = xp.shape[3], hi, wi, job, i
    cdef real *dst
    cdef const real *src
    pt, pl, hi, wi = overlap(H, W, Hp, Wp, pt, pl)
    for job in prange(N * C, nogil=True, schedule="static"):
        dst = &xp[0, 0, 0, 0] + job * Hp * Wp
        src = &x[0, 0, 0, 0] + job * H * W
        memset(dst, 0, pt * Wp * sizeof(real))
        for i in range(hi):
            memset(dst + (pt + i) * Wp, 0, pl * sizeof(real))
            memcpy(dst + (pt + i) * Wp + pl, src + i * W, wi * sizeof(real))
            memset(dst + (pt + i) * Wp + pl + wi, 0, (Wp - pl - wi) * sizeof(real))
        memset(dst + (pt + hi) * Wp, 0, (Hp - pt - hi) * Wp * sizeof(real))


def crop_planes(const real[:, :, :, ::1] dxp, Py_ssize_t pt, Py_ssize_t pl, real[:, :, :, ::1] dx):
    """The adjoint of ``pad_planes``: dx[n, c, i, j] = dxp[n, c, pt + i, pl + j] where that
    exists, zero for rows/columns of x the padded input never held. OpenMP over planes."""
    cdef Py_ssize_t N = dx.shape[0], C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t Hp = dxp.shape[2], Wp = dxp.shape[3], hi, wi, job, i
    cdef real *dst
    cdef const real *src
    pt, pl, hi, wi = overlap(H, W, Hp, Wp, pt, pl)
    for job in prange(N * C, nogil=True, schedule="static"):
        dst = &dx[0, 0, 0, 0] + job * H * W
        src = &dxp[0, 0, 0, 0] + job * Hp * Wp
        for i in range(hi):
            memcpy(dst + i * W, src + (pt + i) * Wp + pl, wi * sizeof(real))
            memset(dst + i * W + wi, 0, (W - wi) * sizeof(real))
        memset(dst + hi * W, 0, (H - hi) * W * sizeof(real))


# ---------------------------------------------------------------- im2col per tile pattern (layout passes)
def im2col(const real[:, :, :, ::1] xp, int sh, int sw, int th, int tw, int R, int S, int a, int bb,
           real[:, :, ::1] cols):
    """cols[t, (c*R + r)*S + s, (n*a + ia)*bb + jb] = xp[n, c, i*sh + r, j*sw + s], i = ia*t_h + t_i,
    j = jb*t_w + t_j; OpenMP over (t, c, n), n fastest: consecutive jobs fill consecutive pieces
    of the same rows of cols, so each cache line of cols is completed while it is hot. float32
    runs ``dlb_im2col_f`` (C, the column step a compile-time constant, jobs (c, n, t) so that
    each plane of xp is read once: 1.2-2.3x faster than this loop on the suite's shapes)."""
    cdef Py_ssize_t N = xp.shape[0], C = xp.shape[1], T = cols.shape[0]
    cdef Py_ssize_t job, t, rest, n, c, ti, tj, r, s, ia, jb, m0, o, step = tw * sw
    cdef const real *src
    cdef real *dst
    if real is float:
        if N > 0 and C > 0:
            with nogil:
                dlb_im2col_f(&xp[0, 0, 0, 0], N, C, xp.shape[2], xp.shape[3], sh, sw, th, tw, R, S, a, bb,
                             &cols[0, 0, 0])
            return
    for job in prange(T * N * C, nogil=True, schedule="static"):
        t = job // (N * C)
        rest = job - t * N * C
        c = rest // N
        n = rest - c * N
        ti = t // tw
        tj = t - ti * tw
        for r in range(R):
            for s in range(S):
                dst = &cols[t, (c * R + r) * S + s, 0]
                o = tj * sw + s
                for ia in range(a):
                    src = &xp[n, c, (ia * th + ti) * sh + r, 0]
                    m0 = (n * a + ia) * bb
                    for jb in range(bb):
                        dst[m0 + jb] = src[o + jb * step]


def cols_to_y(const real[:, :, ::1] yt, const real[:, ::1] b2, bint has_bias, int th, int tw, int a, int bb,
              real[:, :, :, ::1] y):
    """y[n, k, ia*t_h + t_i, jb*t_w + t_j] = yt[t, k, (n*a + ia)*bb + jb] (+ b2[t, k]); OpenMP over (n, k)."""
    cdef Py_ssize_t N = y.shape[0], K = y.shape[1], T = yt.shape[0]
    cdef Py_ssize_t job, n, k, t, ti, tj, ia, jb, m0
    cdef real bias
    cdef const real *src
    cdef real *dst
    for job in prange(N * K, nogil=True, schedule="static"):
        n = job // K
        k = job - n * K
        for t in range(T):
            ti = t // tw
            tj = t - ti * tw
            bias = b2[t, k] if has_bias else 0
            src = &yt[t, k, 0]
            for ia in range(a):
                dst = &y[n, k, ia * th + ti, 0]
                m0 = (n * a + ia) * bb
                for jb in range(bb):
                    dst[jb * tw + tj] = src[m0 + jb] + bias


def dy_to_cols(const real[:, :, :, ::1] dy, int th, int tw, int a, int bb, real[:, :, ::1] gt):
    """gt[t, k, (n*a + ia)*bb + jb] = dy[n, k, ia*t_h + t_i, jb*t_w + t_j]; OpenMP over (n, k)."""
    cdef Py_ssize_t N = dy.shape[0], K = dy.shape[1], T = gt.shape[0]
    cdef Py_ssize_t job, n, k, t, ti, tj, ia, jb, m0
    cdef const real *src
    cdef real *dst
    for job in prange(N * K, nogil=True, schedule="static"):
        n = job // K
        k = job - n * K
        for t in range(T):
            ti = t // tw
            tj = t - ti * tw
            dst = &gt[t, k, 0]
            for ia in range(a):
                src = &dy[n, k, ia * th + ti, 0]
                m0 = (n * a + ia) * bb
                for jb in range(bb):
                    dst[m0 + jb] = src[jb * tw + tj]


def col2im(const real[:, :, ::1] dcols, int sh, int sw, int th, int tw, int R, int S, int a, int bb,
           real[:, :, :, ::1] dxp):
    """dxp[n, c] = sum of the patch gradients dcols (T, CRS, M) that read it; OpenMP over (n, c).
    float32 runs ``dlb_col2im_f`` (C, (c, n) order, the step a compile-time constant)."""
    cdef Py_ssize_t N = dxp.shape[0], C = dxp.shape[1], Hp = dxp.shape[2], Wp = dxp.shape[3]
    cdef Py_ssize_t T = dcols.shape[0], step = tw * sw
    cdef Py_ssize_t job, n, c, t, ti, tj, r, s, ia, jb, m0, o, i
    cdef const real *src
    cdef real *dst
    if real is float:
        if N > 0 and C > 0:
            with nogil:
                dlb_col2im_f(&dcols[0, 0, 0], N, C, Hp, Wp, sh, sw, th, tw, R, S, a, bb, &dxp[0, 0, 0, 0])
            return
    for job in prange(N * C, nogil=True, schedule="static"):
        n = job // C
        c = job - n * C
        dst = &dxp[n, c, 0, 0]
        for i in range(Hp * Wp):
            dst[i] = 0
        for t in range(T):
            ti = t // tw
            tj = t - ti * tw
            for r in range(R):
                for s in range(S):
                    src = &dcols[t, (c * R + r) * S + s, 0]
                    o = tj * sw + s
                    for ia in range(a):
                        dst = &dxp[n, c, (ia * th + ti) * sh + r, 0]
                        m0 = (n * a + ia) * bb
                        for jb in range(bb):
                            dst[o + jb * step] = dst[o + jb * step] + src[m0 + jb]
