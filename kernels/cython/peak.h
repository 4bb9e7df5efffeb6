/* Compute-bound micro-kernels for `dlbench info`: independent FMA chains in vector registers,
 * one OpenMP team over all threads. Each chain does a = a*b + c (2 flops per lane per step).
 * The widest ISA the CPU reports (cpuid via __builtin_cpu_supports) is used. */
#ifndef DLBENCH_PEAK_H
#define DLBENCH_PEAK_H
#ifdef _OPENMP
#include <omp.h>
#endif

typedef float dlb_v8sf __attribute__((vector_size(32)));
typedef float dlb_v16sf __attribute__((vector_size(64)));

#define DLB_CHAINS8 12
#define DLB_CHAINS16 24

__attribute__((target("avx2,fma"), noinline))
static float dlb_fma_avx2(long iters, float seed) {
    dlb_v8sf acc[DLB_CHAINS8];
    dlb_v8sf b, c;
    for (int l = 0; l < 8; l++) { b[l] = 0.999999f; c[l] = 1e-6f * seed; }
    for (int k = 0; k < DLB_CHAINS8; k++) for (int l = 0; l < 8; l++) acc[k][l] = seed + k + l;
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int k = 0; k < DLB_CHAINS8; k++) acc[k] = acc[k] * b + c;
    }
    float s = 0.f;
    for (int k = 0; k < DLB_CHAINS8; k++) for (int l = 0; l < 8; l++) s += acc[k][l];
    return s;
}

__attribute__((target("avx512f"), noinline))
static float dlb_fma_avx512(long iters, float seed) {
    dlb_v16sf acc[DLB_CHAINS16];
    dlb_v16sf b, c;
    for (int l = 0; l < 16; l++) { b[l] = 0.999999f; c[l] = 1e-6f * seed; }
    for (int k = 0; k < DLB_CHAINS16; k++) for (int l = 0; l < 16; l++) acc[k][l] = seed + k + l;
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 24
        for (int k = 0; k < DLB_CHAINS16; k++) acc[k] = acc[k] * b + c;
    }
    float s = 0.f;
    for (int k = 0; k < DLB_CHAINS16; k++) for (int l = 0; l < 16; l++) s += acc[k][l];
    return s;
}

/* Widest supported: 512 (AVX-512F), 256 (AVX2+FMA), 0 (neither). */
static int dlb_fma_width(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return 512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 256;
    return 0;
}

/* Runs the chains on `nthreads` threads; returns flops done (per-thread flops * threads).
 * `sink` receives a value depending on every chain so nothing is optimized away. */
static double dlb_fma_run(long iters, int nthreads, int width, float *sink) {
    float total = 0.f;
    int used = 1;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) reduction(+:total)
    {
#pragma omp single
        used = omp_get_num_threads();
        float seed = 1.0f + 0.001f * omp_get_thread_num();
#else
    {
        (void)nthreads;
        float seed = 1.0f;
#endif
        if (width == 512) total += dlb_fma_avx512(iters, seed);
        else total += dlb_fma_avx2(iters, seed);
    }
    *sink = total;
    double per_iter = (width == 512) ? (double)DLB_CHAINS16 * 16 * 2 : (double)DLB_CHAINS8 * 8 * 2;
    return per_iter * (double)iters * used;
}
#endif
