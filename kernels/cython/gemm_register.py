"""Registers the compiled BLIS-style GEMM (``gemm.pyx`` + ``gemm_kernel.h``) with the registry."""

from dlbench.kernels.cython import gemm as _cy

from dlbench.registry import register_kernel

_WHAT = ("packed AVX2+FMA micro-kernels (-march=native build)" if _cy.simd()
         else "portable C fallback: built without AVX2+FMA, correct but slow")

register_kernel("gemm", "blocked", "cython", constraints=_WHAT)(_cy.gemm)
register_kernel("batched_gemm", "blocked", "cython", constraints=_WHAT)(_cy.batched_gemm)
