"""numba-cuda convolutions against the numpy reference (eq. 9.7-9.13), on the CUDA simulator.

Tiny shapes: the simulator runs every GPU thread as a Python thread (and uses 4-thread blocks
with 4x4 tiles, so split-K, partial tiles and the padding paths are all exercised). The same
tests run on a real GPU with DLBENCH_TEST_REAL_GPU=1 (scripts/gpu_check.sh), with the GPU tiles.
Tolerances: float64 1e-10 relative; float32 1e-4 relative after normalising by sqrt(C*R*S),
the growth of a float32 dot product of that length.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from dlbench import ops
from dlbench.backends import backend_status
from dlbench.registry import find_kernels, get_kernel

pytestmark = pytest.mark.skipif(not backend_status("numba-cuda").available,
                                reason=backend_status("numba-cuda").reason or "numba-cuda unavailable")

OPS = {1: "conv1d", 2: "conv2d", 3: "conv3d"}


@pytest.fixture(autouse=True, scope="module")
def fast_thread_switching():
    """The simulator's block manager polls its Python threads; a short GIL switch interval makes
    each syncthreads() cost microseconds instead of the default 5 ms (5x faster tests)."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(5e-5)
    yield
    sys.setswitchinterval(old)


def assert_close(got, want, dtype, fan_in):
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-30)
    err = float(np.abs(got - want).max(initial=0.0)) / scale
    tol = 1e-10 if dtype == "float64" else 1e-4 * math.sqrt(fan_in)
    assert err <= tol, f"relative error {err:.3g} > {tol:.3g}"


def reference(nd, x, w, stride, padding, dilation, groups):
    """(pads, y, dy, dx, dw) from the numpy reference kernels for one problem."""
    from dlbench.ops._common import resolve_padding

    op = OPS[nd]
    pads = resolve_padding(padding, w.shape[2:], dilation, stride)
    y = get_kernel(op, "reference", "numpy")(x, w, stride, pads, dilation, groups)
    dy = np.random.default_rng(7).standard_normal(y.shape).astype(x.dtype)
    geo = (stride, pads, dilation, groups)
    dx = get_kernel(op + "_backward_data", "reference", "numpy")(dy, w, x.shape, *geo)
    dw = get_kernel(op + "_backward_weight", "reference", "numpy")(x, dy, w.shape, *geo)
    return pads, y, dy, dx, dw


def check_all_three(nd, alg, x, w, stride, padding, dilation, groups, dtype):
    op = OPS[nd]
    pads, y, dy, dx, dw = reference(nd, x, w, stride, padding, dilation, groups)
    fan = (x.shape[1] // groups) * math.prod(w.shape[2:])
    got = get_kernel(op, alg, "numba-cuda")(x, w, stride, pads, dilation, groups)
    assert isinstance(got, np.ndarray) and got.dtype == np.dtype(dtype)
    assert_close(got, y, dtype, fan)
    geo = (stride, pads, dilation, groups)
    got = get_kernel(op + "_backward_data", alg, "numba-cuda")(dy, w, x.shape, *geo)
    assert_close(got, dx, dtype, w.shape[0] // groups * math.prod(w.shape[2:]))
    got = get_kernel(op + "_backward_weight", alg, "numba-cuda")(x, dy, w.shape, *geo)
    assert_close(got, dw, dtype, x.shape[0] * math.prod(y.shape[2:]))


def problem(x_shape, w_shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)


CASES_2D = [
    # id, x shape, w shape, stride, padding, dilation, groups, dtype
    ("3x3-pad1", (1, 2, 5, 5), (3, 2, 3, 3), (1, 1), 1, (1, 1), 1, "float32"),
    ("3x3-pad1-f64", (1, 2, 5, 5), (3, 2, 3, 3), (1, 1), 1, (1, 1), 1, "float64"),
    ("stride-asym-pad-dil-groups", (2, 4, 6, 5), (4, 2, 3, 2), (2, 1), ((1, 0), (2, 1)), (1, 2), 2,
     "float64"),
]


@pytest.mark.parametrize("alg", ["implicit_gemm", "direct"])
@pytest.mark.parametrize("case", CASES_2D, ids=[c[0] for c in CASES_2D])
def test_conv2d_forward_and_gradients_equal_reference(case, alg):
    _, xs, ws, stride, padding, dilation, groups, dtype = case
    x, w = problem(xs, ws, dtype)
    check_all_three(2, alg, x, w, stride, padding, dilation, groups, dtype)


@pytest.mark.parametrize("alg", ["depthwise", "implicit_gemm"])
def test_depthwise_with_channel_multiplier(alg):
    x, w = problem((1, 3, 5, 5), (6, 1, 3, 3), "float32", seed=1)
    check_all_three(2, alg, x, w, (2, 2), 1, (1, 1), 3, "float32")


def test_gemm1x1_strided_padded():
    x, w = problem((2, 3, 4, 4), (4, 3, 1, 1), "float64", seed=2)
    check_all_three(2, "gemm1x1", x, w, (2, 2), 1, (1, 1), 1, "float64")


@pytest.mark.parametrize("alg", ["implicit_gemm", "direct"])
def test_conv1d_and_conv3d(alg):
    x, w = problem((1, 2, 7), (3, 2, 3), "float64", seed=3)
    check_all_three(1, alg, x, w, (2,), 1, (2,), 1, "float64")
    x, w = problem((1, 2, 3, 4, 4), (2, 2, 2, 3, 2), "float64", seed=4)
    check_all_three(3, alg, x, w, (1, 2, 1), ((1, 0), (1, 1), (0, 1)), (1, 1, 1), 1, "float64")


def test_conv2d_implicit_gemm_fuzzed_shapes():
    """Random small problems (hypothesis; the GPU machine may lack it, hence the import here)."""
    hyp = pytest.importorskip("hypothesis")
    st = hyp.strategies

    @hyp.settings(max_examples=4, deadline=None)
    @hyp.given(h=st.integers(3, 6), w_=st.integers(3, 6), r=st.integers(1, 3), s=st.integers(1, 3),
               stride=st.integers(1, 2), pad=st.integers(0, 1), dil=st.integers(1, 2),
               groups=st.sampled_from([1, 2]))
    def check(h, w_, r, s, stride, pad, dil, groups):
        hyp.assume(h + 2 * pad >= dil * (r - 1) + 1 and w_ + 2 * pad >= dil * (s - 1) + 1)
        one_problem(h, w_, r, s, stride, pad, dil, groups)

    check()


def one_problem(h, w_, r, s, stride, pad, dil, groups):
    x, w = problem((1, 2, h, w_), (2, 2 // groups, r, s), "float32", seed=h * 7 + w_)
    pads, y, *_ = reference(2, x, w, (stride, stride), pad, (dil, dil), groups)
    kern = get_kernel("conv2d", "implicit_gemm", "numba-cuda")
    got = kern(x, w, (stride, stride), pads, (dil, dil), groups)
    assert_close(got, y, "float32", 2 // groups * r * s)


def test_front_end_bias_flip_and_transpose():
    """ops.conv2d with a bias and flip=True, and conv_transpose2d, through the numba-cuda kernels."""
    x, w = problem((1, 2, 5, 4), (3, 2, 2, 3), "float64", seed=5)
    b = np.arange(3.0)
    kw = dict(stride=2, padding=1, flip=True)
    got = ops.conv2d(x, w, b, algorithm="implicit_gemm", backend="numba-cuda", **kw)
    assert_close(got, ops.conv2d(x, w, b, algorithm="reference", backend="numpy", **kw), "float64", 12)
    wt = np.random.default_rng(6).standard_normal((2, 3, 3, 3))
    got = ops.conv_transpose2d(x, wt, stride=2, padding=1, output_padding=1, algorithm="implicit_gemm",
                               backend="numba-cuda")
    want = ops.conv_transpose2d(x, wt, stride=2, padding=1, output_padding=1, algorithm="reference",
                                backend="numpy")
    assert_close(got, want, "float64", 18)


def test_device_arrays_stay_on_device_and_splits_agree():
    """Device inputs give device outputs (no copy back); the split-K factor does not change the result;
    a caller's ``out`` buffer is filled in place."""
    from numba import cuda

    x, w = problem((2, 3, 5, 5), (4, 3, 3, 3), "float64", seed=8)
    pads, y, dy, dx, dw = reference(2, x, w, (1, 1), 1, (1, 1), 1)
    xd, wd = cuda.to_device(x), cuda.to_device(w)
    f = get_kernel("conv2d", "implicit_gemm", "numba-cuda")
    out = cuda.device_array(y.shape, np.float64)
    res = f(xd, wd, (1, 1), pads, (1, 1), 1, out=out)
    assert res is out and not isinstance(res, np.ndarray)
    assert_close(out.copy_to_host(), y, "float64", 27)
    for splits in (1, 3):
        got = f(xd, wd, (1, 1), pads, (1, 1), 1, splits=splits)
        assert_close(got.copy_to_host(), y, "float64", 27)
    gw = get_kernel("conv2d_backward_weight", "implicit_gemm", "numba-cuda")
    assert_close(gw(xd, cuda.to_device(dy), w.shape, (1, 1), pads, (1, 1), 1, splits=5).copy_to_host(), dw,
                 "float64", 50)
    with pytest.raises(ValueError, match="out must be"):
        f(xd, wd, (1, 1), pads, (1, 1), 1, out=cuda.device_array((1, 1), np.float64))


def test_every_conv_op_has_numba_cuda_kernels_and_checks():
    for op in OPS.values():
        for suffix in ("", "_backward_data", "_backward_weight"):
            algs = {k.algorithm for k in find_kernels(op + suffix, backend="numba-cuda")}
            assert {"implicit_gemm", "direct", "gemm1x1", "depthwise"} <= algs, (op + suffix, algs)
    k = get_kernel("conv2d", "gemm1x1", "numba-cuda")
    assert "1x1" in k.applies("float32", N=1, C=2, K=2, H=4, W=4, R=3, S=3)
    assert k.applies("float32", N=1, C=2, K=2, H=4, W=4, R=1, S=1) is None
    d = get_kernel("conv2d", "depthwise", "numba-cuda")
    assert "depthwise" in d.applies("float32", N=1, C=4, K=4, H=4, W=4, R=3, S=3, groups=2)
    assert d.applies("float32", N=1, C=4, K=8, H=4, W=4, R=3, S=3, groups=4) is None
    with pytest.raises(ValueError, match="gemm1x1"):
        ops.conv2d(np.zeros((1, 2, 4, 4), np.float32), np.zeros((2, 2, 3, 3), np.float32),
                   algorithm="gemm1x1", backend="numba-cuda")
