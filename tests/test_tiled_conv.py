"""Tiled convolution (eq. 9.10): every backend vs the NumPy reference, the einsum baseline, the two
identities (t = 1 is conv2d, t = output size is local_conv2d), float64 finite-difference
gradients, and ValueError for bad arguments."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dlbench import ops
from dlbench.backends import backend_status

COMPILED = [pytest.param(b, marks=pytest.mark.skipif(not backend_status(b).available,
                                                      reason=backend_status(b).reason))
            for b in ("numba", "cython")]
TOL = {"float64": dict(rtol=1e-10, atol=1e-10), "float32": dict(rtol=2e-4, atol=2e-4)}


def divisors(m):
    return [d for d in range(1, m + 1) if m % d == 0]


@st.composite
def tiled_cases(draw, local=False):
    """(x, w, b, stride, padding) with small odd shapes, stride up to 2 and padding below the kernel."""
    # n up to 9, k up to 7: the float32 direct kernel's 4 x 3 register blocks and their remainders
    n, c, k = draw(st.integers(1, 9)), draw(st.integers(1, 3)), draw(st.integers(1, 7))
    r, s = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pad = (draw(st.integers(0, r - 1)), draw(st.integers(0, s - 1)))
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    ho = (h + 2 * pad[0] - r) // stride[0] + 1
    wo = (w + 2 * pad[1] - s) // stride[1] + 1
    assume(h + 2 * pad[0] >= r and w + 2 * pad[1] >= s)
    th, tw = (ho, wo) if local else (draw(st.sampled_from(divisors(ho))), draw(st.sampled_from(divisors(wo))))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal((th, tw, k, c, r, s))
    b = rng.standard_normal((th, tw, k)) if draw(st.booleans()) else None
    return x, wt, b, stride, pad


def cast(dtype, *arrays):
    return [None if a is None else a.astype(dtype) for a in arrays]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("algorithm", ["direct", "im2col", "patterns"])
@pytest.mark.parametrize("backend", COMPILED)
@given(case=tiled_cases())
@settings(max_examples=8, deadline=None)
def test_tiled_backend_matches_reference(backend, algorithm, dtype, case):
    x, w, b, stride, pad = case
    if algorithm == "patterns":
        from dlbench.kernels.numba_cpu.tiled_patterns import MAX_PATTERNS

        if w.shape[0] * w.shape[1] > MAX_PATTERNS:
            with pytest.raises(ValueError, match="tile patterns"):
                ops.tiled_conv2d(*cast(dtype, x, w, b), stride, pad, backend=backend, algorithm=algorithm)
            return
    x, w, b = cast(dtype, x, w, b)
    y = ops.tiled_conv2d(x, w, b, stride, pad, backend=backend, algorithm=algorithm)
    ref = ops.tiled_conv2d(x, w, b, stride, pad, backend="numpy")
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_allclose(y, ref, **TOL[dtype])
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    grads = ops.tiled_conv2d_backward(dy, x, w, stride, pad, backend=backend, algorithm=algorithm)
    for got, want in zip(grads, ops.tiled_conv2d_backward(dy, x, w, stride, pad, backend="numpy")):
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got, want, **TOL[dtype])


@given(case=tiled_cases())
@settings(max_examples=10, deadline=None)
def test_reference_matches_einsum_baseline_and_eq_9_10(case):
    x, w, b, stride, pad = case
    y = ops.tiled_conv2d(x, w, b, stride, pad, backend="numpy")
    np.testing.assert_allclose(ops.tiled_conv2d(x, w, b, stride, pad, backend="numpy", algorithm="einsum"), y,
                               rtol=1e-10, atol=1e-10)
    # eq. 9.10 written out position by position
    th, tw = w.shape[:2]
    r, s = w.shape[4:]
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    for i in range(y.shape[2]):
        for j in range(y.shape[3]):
            patch = xp[:, :, i * stride[0]:i * stride[0] + r, j * stride[1]:j * stride[1] + s]
            z = np.einsum("ncrs,kcrs->nk", patch, w[i % th, j % tw])
            if b is not None:
                z = z + b[i % th, j % tw]
            np.testing.assert_allclose(y[:, :, i, j], z, rtol=1e-10, atol=1e-10)
    dy = np.random.default_rng(2).standard_normal(y.shape)
    baseline = ops.tiled_conv2d_backward(dy, x, w, stride, pad, backend="numpy", algorithm="einsum")
    for got, want in zip(baseline, ops.tiled_conv2d_backward(dy, x, w, stride, pad, backend="numpy")):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def _conv2d_reference(x, w, b, stride, pad):
    """ops.conv2d's NumPy reference when it is there, else eq. 9.8 written directly."""
    from dlbench.registry import find_kernels

    if hasattr(ops, "conv2d") and find_kernels(op="conv2d", backend="numpy"):
        alg = find_kernels(op="conv2d", backend="numpy")[0].algorithm
        return ops.conv2d(x, w, b, stride, pad, algorithm=alg, backend="numpy")
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    r, s = w.shape[2:]
    ho = (xp.shape[2] - r) // stride[0] + 1
    wo = (xp.shape[3] - s) // stride[1] + 1
    y = np.zeros((x.shape[0], w.shape[0], ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * stride[0]:i * stride[0] + r, j * stride[1]:j * stride[1] + s]
            y[:, :, i, j] = np.einsum("ncrs,kcrs->nk", patch, w)
    return y if b is None else y + b[None, :, None, None]


@pytest.mark.parametrize("backend", ["numpy", *COMPILED])
def test_identity_t1_is_conv2d(backend):
    """t = 1: one kernel stack everywhere, i.e. conv2d (eq. 9.8) with w[0, 0]; "auto" picks the algorithm."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 9, 8))
    w = rng.standard_normal((1, 1, 5, 3, 3, 2))
    b = rng.standard_normal((1, 1, 5))
    for stride, pad in (((1, 1), (1, 0)), ((2, 1), (0, 1))):
        y = ops.tiled_conv2d(x, w, b, stride, pad, backend=backend, algorithm="auto")
        want = _conv2d_reference(x, w[0, 0], b[0, 0], stride, pad)
        np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend,algorithm", [("numpy", "direct"), ("numpy", "einsum"), *[
    pytest.param(b, a, marks=pytest.mark.skipif(not backend_status(b).available,
                                                reason=backend_status(b).reason))
    for b in ("numba", "cython") for a in ("direct", "im2col")]])
def test_identity_t_output_size_is_local_conv2d(backend, algorithm):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 2, 7, 6))
    w = rng.standard_normal((4, 3, 3, 2, 3, 3))        # stride 2, padding 1 -> output 4 x 3
    b = rng.standard_normal((4, 3, 3))
    kw = dict(backend=backend, algorithm=algorithm)
    y = ops.tiled_conv2d(x, w, b, 2, 1, **kw)
    np.testing.assert_allclose(y, ops.local_conv2d(x, w, b, 2, 1, **kw), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    for got, want in zip(ops.tiled_conv2d_backward(dy, x, w, 2, 1, **kw),
                         ops.local_conv2d_backward(dy, x, w, 2, 1, **kw)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def directional_check(loss, grad, arg, rng, h=1e-6, n=3):
    """(loss(arg + h v) - loss(arg - h v)) / 2h == <grad, v> for random directions v (float64)."""
    for _ in range(n):
        v = rng.standard_normal(arg.shape)
        fd = (loss(arg + h * v) - loss(arg - h * v)) / (2 * h)
        assert fd == pytest.approx(float(np.sum(grad * v)), rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("backend", ["numpy", *COMPILED])
def test_tiled_gradients_finite_differences(backend):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 7, 8))
    stride, pad = (1, 2), (0, 1)                   # output (7 - 3 + 1) x ((8 + 2 - 2) // 2 + 1) = 5 x 5
    w = rng.standard_normal((1, 5, 4, 3, 3, 2))   # t = (1, 5): tiled along rows only
    b = rng.standard_normal((1, 5, 4))
    y = ops.tiled_conv2d(x, w, b, stride, pad, backend=backend)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = ops.tiled_conv2d_backward(dy, x, w, stride, pad, backend=backend)
    def loss(xa, wa, ba):
        return np.sum(dy * ops.tiled_conv2d(xa, wa, ba, stride, pad, backend=backend))

    directional_check(lambda a: loss(a, w, b), dx, x, rng)
    directional_check(lambda a: loss(x, a, b), dw, w, rng)
    directional_check(lambda a: loss(x, w, a), db, b, rng)


def test_bad_arguments_raise_value_error():
    x = np.zeros((1, 2, 6, 6))
    with pytest.raises(ValueError, match="must divide the output size 4x4"):
        ops.tiled_conv2d(x, np.zeros((3, 1, 2, 2, 3, 3)), backend="numpy")      # output 4x4, t_h = 3
    with pytest.raises(ValueError, match="6 axes"):
        ops.tiled_conv2d(x, np.zeros((2, 2, 3, 3)), backend="numpy")
    with pytest.raises(ValueError, match="input channels"):
        ops.tiled_conv2d(x, np.zeros((1, 1, 2, 3, 3, 3)), backend="numpy")
    with pytest.raises(ValueError, match="b must have shape"):
        ops.tiled_conv2d(x, np.zeros((2, 2, 4, 2, 3, 3)), np.zeros((4,)), backend="numpy")
    with pytest.raises(ValueError, match="larger|negative output size"):
        ops.tiled_conv2d(x, np.zeros((1, 1, 1, 2, 7, 7)), backend="numpy")
    with pytest.raises(ValueError, match="dtype mismatch"):
        ops.tiled_conv2d(x, np.zeros((1, 1, 1, 2, 3, 3), np.float32), backend="numpy")
    with pytest.raises(ValueError, match="dy must have"):
        ops.tiled_conv2d_backward(np.zeros((1, 2, 3, 3)), x, np.zeros((1, 1, 2, 2, 3, 3)), backend="numpy")


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("t,stride,hw", [(1, 1, 9), (2, 1, 10), (2, 1, 14), (2, 2, 15), (4, 1, 12),
                                         (3, 2, 11), (1, 3, 13), (2, 3, 16)])
def test_tiled_im2col_column_steps_float32(backend, t, stride, hw):
    """The float32 layout passes (im2col, col2im) have code per column step t_w * s_w (1, 2, 4,
    any): each against the reference, forward and all gradients, with padding 1 and n > 1."""
    rng = np.random.default_rng(t * 10 + stride)
    x = rng.standard_normal((3, 2, hw, hw)).astype(np.float32)
    assert ((hw + 2 - 3) // stride + 1) % t == 0
    w = rng.standard_normal((t, t, 4, 2, 3, 3)).astype(np.float32)
    y = ops.tiled_conv2d(x, w, None, stride, 1, backend=backend, algorithm="im2col")
    np.testing.assert_allclose(y, ops.tiled_conv2d(x, w, None, stride, 1, backend="numpy"), **TOL["float32"])
    dy = rng.standard_normal(y.shape).astype(np.float32)
    got = ops.tiled_conv2d_backward(dy, x, w, stride, 1, backend=backend, algorithm="im2col")
    for g, want in zip(got, ops.tiled_conv2d_backward(dy, x, w, stride, 1, backend="numpy")):
        np.testing.assert_allclose(g, want, **TOL["float32"])


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("tiles", [(1, 1), (2, 4), (8, 8)])
def test_float32_direct_register_blocks(backend, tiles):
    """A shape that runs the float32 direct kernel's 4 x 3 blocks, both remainders (N = 9,
    K = 7) and a patch length (C R S = 45) that is no multiple of the vector width."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((9, 5, 8, 8)).astype(np.float32)
    w = rng.standard_normal((*tiles, 7, 5, 3, 3)).astype(np.float32)
    b = rng.standard_normal((*tiles, 7)).astype(np.float32)
    want = ops.tiled_conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), 1, 1,
                            backend="numpy", algorithm="direct")
    got = ops.tiled_conv2d(x, w, b, 1, 1, backend=backend, algorithm="direct")
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("kernel,hw", [((3, 1), 14), ((2, 2), 13), ((1, 3), 12), ((3, 3), 30)])
def test_tiled_im2col_step2_kernel_widths_float32(backend, kernel, hw):
    """2 x 2 tiles at stride 1 (column step 2): kernel widths 1-3 (the split rows' offsets 0-3),
    runs of up to 7 and longer ones (the generic loop), rows near the end of x (scalar)."""
    rng = np.random.default_rng(hw)
    x = rng.standard_normal((3, 2, hw, hw)).astype(np.float32)
    r, s = kernel
    w = rng.standard_normal((2, 2, 4, 2, r, s)).astype(np.float32)
    pad = ((r - 1) // 2, (s - 1) // 2)
    y = ops.tiled_conv2d(x, w, None, 1, pad, backend=backend, algorithm="im2col")
    np.testing.assert_allclose(y, ops.tiled_conv2d(x, w, None, 1, pad, backend="numpy"), **TOL["float32"])
