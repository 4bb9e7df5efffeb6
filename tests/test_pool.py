"""Pooling (section 9.3): windowed (max / avg / l2 / gaussian), adaptive, maxout and global average
pooling on every backend vs the NumPy reference, vs torch where torch has the op, float64
finite-difference gradients, and ValueError for bad arguments."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dlbench import ops
from dlbench.backends import backend_status

COMPILED = [pytest.param(b, marks=pytest.mark.skipif(not backend_status(b).available,
                                                      reason=backend_status(b).reason))
            for b in ("numba", "cython")]
TOL = {"float64": dict(rtol=1e-12, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-5)}


@st.composite
def window_cases(draw):
    """(x, kind, size, stride, padding, ceil_mode, sigma), padding below the window size."""
    kind = draw(st.sampled_from(["max", "avg", "l2", "gaussian"]))
    size = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pad = ((draw(st.integers(0, size[0] - 1)), draw(st.integers(0, size[0] - 1))),
           (draw(st.integers(0, size[1] - 1)), draw(st.integers(0, size[1] - 1))))
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    assume(h + sum(pad[0]) >= size[0] and w + sum(pad[1]) >= size[1])
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    x = rng.standard_normal((draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w))
    return x, kind, size, stride, pad, draw(st.booleans()), draw(st.sampled_from([0.5, 1.0, 2.0]))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", COMPILED)
@given(case=window_cases())
@settings(max_examples=25, deadline=None)
def test_pool2d_backend_matches_reference(backend, dtype, case):
    x, kind, size, stride, pad, ceil_mode, sigma = case
    x = x.astype(dtype)
    args = (kind, size, stride, pad, ceil_mode, sigma)
    y = ops.pool2d(x, *args, backend=backend)
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_allclose(y, ops.pool2d(x, *args, backend="numpy"), **TOL[dtype])
    dy = np.random.default_rng(0).standard_normal(y.shape).astype(dtype)
    dx = ops.pool2d_backward(dy, x, *args, backend=backend)
    np.testing.assert_allclose(dx, ops.pool2d_backward(dy, x, *args, backend="numpy"), **TOL[dtype])
    if kind == "max":
        _, idx = ops.pool2d(x, *args, return_indices=True, backend=backend)
        np.testing.assert_array_equal(idx, ops.pool2d(x, *args, return_indices=True, backend="numpy")[1])
        np.testing.assert_allclose(ops.pool2d_backward(dy, x, *args, indices=idx, backend=backend), dx,
                                   **TOL[dtype])


@st.composite
def adaptive_cases(draw):
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    out = (draw(st.integers(1, h + 2)), draw(st.integers(1, w + 2)))      # more regions than rows: overlap
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    kind = draw(st.sampled_from(["max", "avg", "l2"]))
    return rng.standard_normal((2, draw(st.integers(1, 3)), h, w)), out, kind


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", COMPILED)
@given(case=adaptive_cases())
@settings(max_examples=15, deadline=None)
def test_adaptive_backend_matches_reference(backend, dtype, case):
    x, out, kind = case
    x = x.astype(dtype)
    y = ops.adaptive_pool2d(x, out, kind, backend=backend)
    np.testing.assert_allclose(y, ops.adaptive_pool2d(x, out, kind, backend="numpy"), **TOL[dtype])
    dy = np.random.default_rng(0).standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(ops.adaptive_pool2d_backward(dy, x, out, kind, backend=backend),
                               ops.adaptive_pool2d_backward(dy, x, out, kind, backend="numpy"), **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", COMPILED)
@given(pieces=st.integers(1, 4), groups=st.integers(1, 3), hw=st.sampled_from([(), (5,), (3, 4)]),
       seed=st.integers(0, 2**31))
@settings(max_examples=10, deadline=None)
def test_maxout_and_global_avg_match_reference(backend, dtype, pieces, groups, hw, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, pieces * groups) + hw).astype(dtype)
    y = ops.maxout(x, pieces, backend=backend)
    assert y.shape == (2, groups) + hw
    np.testing.assert_allclose(y, ops.maxout(x, pieces, backend="numpy"), **TOL[dtype])
    dy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(ops.maxout_backward(dy, x, pieces, backend=backend),
                               ops.maxout_backward(dy, x, pieces, backend="numpy"), **TOL[dtype])
    if len(hw) == 2:
        g = ops.global_avg_pool2d(x, backend=backend)
        np.testing.assert_allclose(g, x.mean(axis=(2, 3)), **TOL[dtype])
        dg = rng.standard_normal(g.shape).astype(dtype)
        np.testing.assert_allclose(ops.global_avg_pool2d_backward(dg, x.shape, backend=backend),
                                   ops.global_avg_pool2d_backward(dg, x.shape, backend="numpy"), **TOL[dtype])


# ---------------------------------------------------------------- against torch
def _torch_pool(torch, x, kind, size, stride, pad, ceil_mode):
    f = torch.nn.functional
    if kind == "max":
        return f.max_pool2d(x, size, stride, pad, ceil_mode=ceil_mode)
    if kind == "avg":
        return f.avg_pool2d(x, size, stride, pad, ceil_mode=ceil_mode, count_include_pad=False)
    return f.lp_pool2d(x, 2, size, stride)


@pytest.mark.parametrize("backend", ["numpy", *COMPILED])
@pytest.mark.parametrize("kind,size,stride,pad,ceil_mode", [
    ("max", 3, 2, 1, False), ("max", 3, 2, 1, True), ("max", (2, 3), (2, 1), (1, 0), True),
    ("max", 2, 2, 0, False),
    ("avg", 3, 2, 1, False), ("avg", 3, 2, 1, True), ("avg", (3, 2), (1, 2), (1, 1), True),
    ("l2", 3, 2, 0, False), ("l2", (2, 3), (1, 2), 0, False)])
def test_pool2d_matches_torch(backend, kind, size, stride, pad, ceil_mode):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 9, 8))
    tx = torch.tensor(x, requires_grad=True)
    ty = _torch_pool(torch, tx, kind, size, stride, pad, ceil_mode)
    y = ops.pool2d(x, kind, size, stride, pad, ceil_mode, backend=backend)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    ty.backward(torch.from_numpy(dy))
    dx = ops.pool2d_backward(dy, x, kind, size, stride, pad, ceil_mode, backend=backend)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    if kind == "max":           # the argmax indices are torch's, and the backward from them agrees
        y2, idx = ops.pool2d(x, kind, size, stride, pad, ceil_mode, return_indices=True, backend=backend)
        _, tidx = torch.nn.functional.max_pool2d(tx, size, stride, pad, ceil_mode=ceil_mode,
                                                 return_indices=True)
        np.testing.assert_array_equal(idx, tidx.numpy())
        np.testing.assert_array_equal(y2, y)
        dx = ops.pool2d_backward(dy, x, kind, size, stride, pad, ceil_mode, indices=idx, backend=backend)
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", *COMPILED])
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("out", [(1, 1), (3, 3), (4, 5), (11, 6)])
def test_adaptive_matches_torch(backend, kind, out):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 9, 8))
    tx = torch.tensor(x, requires_grad=True)
    f = torch.nn.functional.adaptive_max_pool2d if kind == "max" else torch.nn.functional.adaptive_avg_pool2d
    ty = f(tx, out)
    y = ops.adaptive_pool2d(x, out, kind, backend=backend)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    ty.backward(torch.from_numpy(dy))
    dx = ops.adaptive_pool2d_backward(dy, x, out, kind, backend=backend)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    if kind == "max":
        _, idx = ops.adaptive_pool2d(x, out, kind, return_indices=True, backend=backend)
        np.testing.assert_array_equal(idx, torch.nn.functional.adaptive_max_pool2d(tx, out, True)[1].numpy())
        dx = ops.adaptive_pool2d_backward(dy, x, out, kind, indices=idx, backend=backend)
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_global_avg_matches_torch_and_maxout_matches_reshape_max():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(9).standard_normal((2, 6, 5, 4))
    want = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x), 1).numpy()
    np.testing.assert_allclose(ops.global_avg_pool2d(x, keepdims=True, backend="numpy"), want, rtol=1e-12)
    np.testing.assert_allclose(ops.maxout(x, 3, backend="numpy"),
                               torch.from_numpy(x).reshape(2, 2, 3, 5, 4).amax(dim=2).numpy())


@pytest.mark.parametrize("backend", ["numpy", *COMPILED])
def test_max_pool_gradient_goes_to_first_argmax_and_fig_9_10_last_region(backend):
    x = np.zeros((1, 1, 2, 5))
    x[0, 0, 1, 1] = x[0, 0, 0, 2] = 3.0                     # a tie: row-major first is (0, 2)
    dx = ops.pool2d_backward(np.ones((1, 1, 1, 1)), x, "max", size=(2, 3), stride=(2, 3), backend=backend)
    assert dx[0, 0, 0, 2] == 1 and dx[0, 0, 1, 1] == 0 and dx.sum() == 1
    # fig. 9.10: width 6, pools of 3 with stride 2: the smaller last pool (columns 4-5) when asked for
    row = np.arange(6.0).reshape(1, 1, 1, 6)
    np.testing.assert_allclose(ops.pool2d(row, "avg", (1, 3), 2, backend=backend).ravel(), [1.0, 3.0])
    np.testing.assert_allclose(ops.pool2d(row, "avg", (1, 3), 2, ceil_mode=True, backend=backend).ravel(),
                               [1.0, 3.0, 4.5])


def test_gaussian_weights_favour_the_centre():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 1.0
    g = ops.pool2d(x, "gaussian", 3, sigma=1.0, backend="numpy")[0, 0, 0, 0]
    d = np.arange(3) - 1.0
    w = np.exp(-np.add.outer(d**2, d**2) / 2)                # exp(-(dr^2 + dc^2) / (2 sigma^2))
    assert g == pytest.approx(1 / w.sum())
    assert ops.pool2d(x, "gaussian", 3, sigma=0.3, backend="numpy")[0, 0, 0, 0] > g > 1 / 9


# ---------------------------------------------------------------- gradients by finite differences
def _directional(loss, grad, x, rng, n=3, h=1e-6):
    for _ in range(n):
        v = rng.standard_normal(x.shape)
        fd = (loss(x + h * v) - loss(x - h * v)) / (2 * h)
        assert fd == pytest.approx(float(np.sum(grad * v)), rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("backend", ["numpy", *COMPILED])
def test_gradients_finite_differences(backend):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 4, 7, 6))
    for kind in ("max", "avg", "l2", "gaussian"):
        args = (kind, 3, 2, 1, True, 0.8)
        dy = rng.standard_normal(ops.pool2d(x, *args, backend=backend).shape)
        _directional(lambda a, dy=dy, args=args: np.sum(dy * ops.pool2d(a, *args, backend=backend)),
                     ops.pool2d_backward(dy, x, *args, backend=backend), x, rng)
    for kind in ("max", "avg", "l2"):
        dy = rng.standard_normal((2, 4, 3, 4))
        grad = ops.adaptive_pool2d_backward(dy, x, (3, 4), kind, backend=backend)
        _directional(lambda a, dy=dy, k=kind: np.sum(dy * ops.adaptive_pool2d(a, (3, 4), k, backend=backend)),
                     grad, x, rng)
    dy = rng.standard_normal((2, 2, 7, 6))
    _directional(lambda a: np.sum(dy * ops.maxout(a, 2, backend=backend)),
                 ops.maxout_backward(dy, x, 2, backend=backend), x, rng)
    dy = rng.standard_normal((2, 4))
    _directional(lambda a: np.sum(dy * ops.global_avg_pool2d(a, backend=backend)),
                 ops.global_avg_pool2d_backward(dy, x.shape, backend=backend), x, rng)


def test_bad_arguments_raise_value_error():
    x = np.zeros((1, 2, 4, 4))
    with pytest.raises(ValueError, match="larger than the padded input 6x6"):
        ops.pool2d(x, "max", 7, padding=1, backend="numpy")
    with pytest.raises(ValueError, match="smaller than the window"):
        ops.pool2d(x, "avg", 2, padding=2, backend="numpy")
    with pytest.raises(ValueError, match="kind must be one of"):
        ops.pool2d(x, "median", 2, backend="numpy")
    with pytest.raises(ValueError, match="sigma"):
        ops.pool2d(x, "gaussian", 2, sigma=0, backend="numpy")
    with pytest.raises(ValueError, match="stride"):
        ops.pool2d(x, "max", 2, stride=0, backend="numpy")
    with pytest.raises(ValueError, match="not divisible into groups of pieces=3"):
        ops.maxout(x, 3, backend="numpy")
    with pytest.raises(ValueError, match="kind must be one of"):
        ops.adaptive_pool2d(x, 2, "gaussian", backend="numpy")
    with pytest.raises(ValueError, match="dy must have shape"):
        ops.pool2d_backward(np.zeros((1, 2, 3, 3)), x, "max", 2, backend="numpy")
    with pytest.raises(ValueError, match="return_indices is for max"):
        ops.pool2d(x, "avg", 2, return_indices=True, backend="numpy")
    with pytest.raises(ValueError, match="indices must lie in"):
        ops.pool2d_backward(np.zeros((1, 2, 2, 2)), x, "max", 2, indices=np.full((1, 2, 2, 2), 16),
                            backend="numpy")
    with pytest.raises(ValueError, match="float32 or float64"):
        ops.pool2d(x.astype(np.int64), "max", 2, backend="numpy")


@pytest.mark.parametrize("backend", ["numpy", *COMPILED])
def test_out_of_range_indices_raise_in_every_kernel(backend):
    """The [0, H*W) check lives in the kernels' scatter (no separate pass): every backend raises."""
    x = np.random.default_rng(3).standard_normal((2, 3, 6, 6)).astype(np.float32)
    y, idx = ops.pool2d(x, "max", 2, return_indices=True, backend=backend)
    dy = np.ones_like(y)
    bad = idx.copy()
    bad[0, 1, 0, 0], bad[1, 2, 2, 1] = 36, -1
    with pytest.raises(ValueError, match=r"indices must lie in \[0, H\*W\) = \[0, 36\): 2 do not"):
        ops.pool2d_backward(dy, x, "max", 2, indices=bad, backend=backend)
    with pytest.raises(ValueError, match="indices must lie in"):
        ops.adaptive_pool2d_backward(dy, x, (3, 3), "max", indices=bad, backend=backend)
    np.testing.assert_array_equal(ops.pool2d_backward(dy, x, "max", 2, indices=idx, backend=backend),
                                  ops.pool2d_backward(dy, x, "max", 2, backend="numpy"))


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("pieces,shape", [(4, (3, 8, 7, 7)), (2, (2, 6, 3, 5)), (3, (2, 9, 17)),
                                          (1, (2, 3, 11))])
def test_maxout_float32_with_ties_matches_reference(backend, pieces, shape):
    """float32 maxout (the cython backend's vectorised path: 8 columns at a time plus a tail) with
    many ties: the gradient goes to the first channel of the group holding the maximum."""
    rng = np.random.default_rng(pieces)
    x = np.round(rng.standard_normal(shape) * 1.5).astype(np.float32)
    y = ops.maxout(x, pieces, backend=backend)
    np.testing.assert_array_equal(y, ops.maxout(x, pieces, backend="numpy"))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(ops.maxout_backward(dy, x, pieces, backend=backend),
                                  ops.maxout_backward(dy, x, pieces, backend="numpy"))
