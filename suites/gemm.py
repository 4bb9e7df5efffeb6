"""Suite ``gemm``: the matrix products that convolution lowers to, against torch and NumPy's BLAS.

Shapes are M x N x K of the im2col GEMM (K_out x C*R*S) @ (C*R*S x P*Q) for the ResNet 3x3
layers (eq. 9.6-9.7 lowered), the 1x1 layers as (K x C) @ (C x H*W), and square sizes; the
batched cases are Winograd F(4x4,3x3) / F(2x2,3x3) products ((m+2)^2 items of K x C @ C x tiles).
Variants: the NumPy reference (NumPy's BLAS), the blocked Cython kernel, the blocked Numba
kernel and ``torch.matmul`` / ``torch.bmm`` as the peer. GFLOP/s come from the op models
(2*m*n*k) in ``dlbench.kernels.reference.gemm``.
"""

from __future__ import annotations

import numpy as np

from dlbench.suite import Bound, Case, Skip, Variant, define_suite

CONV_SHAPES = [  # (name, m, n, k)
    ("resnet3x3_64c_56", 64, 3136, 576),
    ("resnet3x3_128c_28", 128, 784, 1152),
    ("resnet3x3_256c_14", 256, 196, 2304),
    ("resnet3x3_512c_7", 512, 49, 4608),
    ("resnet1x1_64to256_56", 256, 3136, 64),
    ("resnet1x1_256to64_56", 64, 3136, 256),
]
SQUARE = [512, 1024, 2048]
WINOGRAD = [  # (name, batch, m, n, k): F(4x4,3x3) -> 36 items, F(2x2,3x3) -> 16 items
    ("winograd4x4_64c_56", 36, 64, 196, 64),
    ("winograd2x2_128c_28", 16, 128, 196, 128),
    ("winograd4x4_256c_14", 36, 256, 16, 256),
]

GEMM_VARIANTS = [Variant("numpy", "numpy"), Variant("cython", "blocked"), Variant("numba", "blocked"),
                 Variant("torch", "matmul")]
BATCHED_VARIANTS = [Variant("numpy", "numpy"), Variant("cython", "blocked"), Variant("torch", "bmm")]


def _inputs(shape_a, shape_b, shape_c, dtype, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape_a).astype(dtype)
    b = rng.standard_normal(shape_b).astype(dtype)
    return a, b, np.zeros(shape_c, dtype=dtype)


def _max_rel_error(c, a, b):
    ref = np.matmul(a.astype(np.float64), b.astype(np.float64))
    return float(np.abs(c - ref).max() / max(np.abs(ref).max(), 1e-30))


def bind_gemm(variant: Variant, dtype: str, m: int, n: int, k: int) -> Bound:
    """C = A @ B into a preallocated C (A m x k, B k x n, C-contiguous) for one variant."""
    a, b, c = _inputs((m, k), (k, n), (m, n), dtype)
    if variant.backend == "torch":
        try:
            import torch
        except ImportError as e:
            raise Skip(f"torch is not installed: {e}") from e
        ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)
        return Bound(lambda: torch.matmul(ta, tb, out=tc), check=lambda: _max_rel_error(c, a, b))
    from dlbench.registry import get_kernel

    kern = get_kernel("gemm", variant.algorithm, variant.backend)
    return Bound(lambda: kern(a, b, c), check=lambda: _max_rel_error(c, a, b))


def bind_batched(variant: Variant, dtype: str, batch: int, m: int, n: int, k: int) -> Bound:
    """C[i] = A[i] @ B[i] for i < batch into a preallocated C, for one variant."""
    a, b, c = _inputs((batch, m, k), (batch, k, n), (batch, m, n), dtype)
    if variant.backend == "torch":
        try:
            import torch
        except ImportError as e:
            raise Skip(f"torch is not installed: {e}") from e
        ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)
        return Bound(lambda: torch.bmm(ta, tb, out=tc), check=lambda: _max_rel_error(c, a, b))
    from dlbench.registry import get_kernel

    kern = get_kernel("batched_gemm", variant.algorithm, variant.backend)
    return Bound(lambda: kern(a, b, c), check=lambda: _max_rel_error(c, a, b))


def _gemm_case(name, m, n, k, dtype):
    import dlbench.kernels.reference.gemm  # noqa: F401 - defines the op models

    suffix = "" if dtype == "float32" else "_f64"
    return Case("gemm", f"{name}_{m}x{n}x{k}{suffix}", "gemm", {"m": m, "n": n, "k": k}, GEMM_VARIANTS,
                lambda var, dt, m=m, n=n, k=k: bind_gemm(var, dt, m, n, k), dtype=dtype)


def _batched_case(name, batch, m, n, k, dtype):
    import dlbench.kernels.reference.gemm  # noqa: F401 - defines the op models

    suffix = "" if dtype == "float32" else "_f64"
    return Case("gemm", f"{name}_{batch}x{m}x{n}x{k}{suffix}", "batched_gemm",
                {"batch": batch, "m": m, "n": n, "k": k}, BATCHED_VARIANTS,
                lambda var, dt, b=batch, m=m, n=n, k=k: bind_batched(var, dt, b, m, n, k), dtype=dtype)


@define_suite("gemm", "GEMMs of im2col / 1x1 / Winograd convolution and square sizes vs torch and BLAS")
def gemm_suite(quick: bool):
    if quick:
        return [_gemm_case("resnet3x3_64c_56", 64, 3136, 576, "float32"),
                _gemm_case("resnet1x1_64to256_56", 256, 3136, 64, "float32"),
                _gemm_case("square", 512, 512, 512, "float32"),
                _batched_case(*WINOGRAD[0], "float32")]
    cases = [_gemm_case(name, m, n, k, "float32") for name, m, n, k in CONV_SHAPES]
    cases += [_gemm_case("square", s, s, s, "float32") for s in SQUARE]
    cases += [_batched_case(*w, "float32") for w in WINOGRAD]
    cases += [_gemm_case(name, m, n, k, "float64") for name, m, n, k in CONV_SHAPES[:2]]
    cases += [_gemm_case("square", 1024, 1024, 1024, "float64")]
    return cases
