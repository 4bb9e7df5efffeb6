"""Registers the compiled BLIS-style GEMM (``gemm.pyx`` + ``gemm_kernel.h``) with the registry."""

from dlbench.kernels.cython import gemm as _cy

from dlbench.registry import register_kernel

register_kernel("gemm", "blocked", "cython",
                constraints="x86-64 AVX2+FMA (built with -march=native)")(_cy.gemm)
register_kernel("batched_gemm", "blocked", "cython",
                constraints="x86-64 AVX2+FMA (built with -march=native)")(_cy.batched_gemm)
