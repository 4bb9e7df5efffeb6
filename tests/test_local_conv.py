"""Locally connected convolution (eq. 9.9): every backend vs the NumPy reference, vs torch (unfold +
per-location weights), float64 finite-difference gradients, and ValueError for bad arguments."""

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


@st.composite
def local_cases(draw):
    # n up to 9, k up to 7: the float32 direct kernel's 4 x 3 register blocks and their remainders
    n, c, k = draw(st.integers(1, 9)), draw(st.integers(1, 3)), draw(st.integers(1, 7))
    r, s = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pad = (draw(st.integers(0, r - 1)), draw(st.integers(0, s - 1)))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    assume(h + 2 * pad[0] >= r and w + 2 * pad[1] >= s)
    ho = (h + 2 * pad[0] - r) // stride[0] + 1
    wo = (w + 2 * pad[1] - s) // stride[1] + 1
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    b = rng.standard_normal((ho, wo, k)) if draw(st.booleans()) else None
    return rng.standard_normal((n, c, h, w)), rng.standard_normal((ho, wo, k, c, r, s)), b, stride, pad


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("algorithm", ["direct", "im2col"])
@pytest.mark.parametrize("backend", COMPILED)
@given(case=local_cases())
@settings(max_examples=6, deadline=None)
def test_local_backend_matches_reference(backend, algorithm, dtype, case):
    x, w, b = (None if a is None else a.astype(dtype) for a in case[:3])
    stride, pad = case[3:]
    y = ops.local_conv2d(x, w, b, stride, pad, backend=backend, algorithm=algorithm)
    np.testing.assert_allclose(y, ops.local_conv2d(x, w, b, stride, pad, backend="numpy"), **TOL[dtype])
    dy = np.random.default_rng(0).standard_normal(y.shape).astype(dtype)
    grads = ops.local_conv2d_backward(dy, x, w, stride, pad, backend=backend, algorithm=algorithm)
    for got, want in zip(grads, ops.local_conv2d_backward(dy, x, w, stride, pad, backend="numpy")):
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got, want, **TOL[dtype])


def torch_local_conv(x, w, b, stride, pad):
    """Eq. 9.9 in torch: unfold the patches, then one (K, C*R*S) matrix per output location."""
    import torch

    ho, wo, k, c, r, s = w.shape
    cols = torch.nn.functional.unfold(x, (r, s), padding=pad, stride=stride)       # (N, C*R*S, L)
    y = torch.einsum("nql,lkq->nkl", cols, w.reshape(ho * wo, k, c * r * s))
    if b is not None:
        y = y + b.reshape(ho * wo, k).T
    return y.reshape(x.shape[0], k, ho, wo)


@pytest.mark.parametrize("backend", ["numpy", *COMPILED])
@given(case=local_cases())
@settings(max_examples=6, deadline=None)
def test_local_matches_torch_unfold(backend, case):
    torch = pytest.importorskip("torch")
    x, w, b, stride, pad = case
    b = np.random.default_rng(1).standard_normal(w.shape[:3]) if b is None else b
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch_local_conv(tx, tw, tb, stride, pad)
    y = ops.local_conv2d(x, w, b, stride, pad, backend=backend)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    dy = np.random.default_rng(2).standard_normal(y.shape)
    ty.backward(torch.from_numpy(dy))
    dx, dw, db = ops.local_conv2d_backward(dy, x, w, stride, pad, backend=backend)
    for got, want in ((dx, tx.grad), (dw, tw.grad), (db, tb.grad)):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", ["numpy", *COMPILED])
def test_local_gradients_finite_differences(backend):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 6, 7))
    stride, pad = (2, 1), (1, 0)                  # output ((6 + 2 - 3) // 2 + 1) x (7 - 2 + 1) = 3 x 6
    w = rng.standard_normal((3, 6, 4, 3, 3, 2))
    b = rng.standard_normal((3, 6, 4))
    y = ops.local_conv2d(x, w, b, stride, pad, backend=backend)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = ops.local_conv2d_backward(dy, x, w, stride, pad, backend=backend)

    def check(loss, grad, arg):
        for _ in range(3):
            v = rng.standard_normal(arg.shape)
            fd = (loss(arg + 1e-6 * v) - loss(arg - 1e-6 * v)) / 2e-6
            assert fd == pytest.approx(float(np.sum(grad * v)), rel=1e-6, abs=1e-7)

    check(lambda a: np.sum(dy * ops.local_conv2d(a, w, b, stride, pad, backend=backend)), dx, x)
    check(lambda a: np.sum(dy * ops.local_conv2d(x, a, b, stride, pad, backend=backend)), dw, w)
    check(lambda a: np.sum(dy * ops.local_conv2d(x, w, a, stride, pad, backend=backend)), db, b)


def test_same_padding_and_unused_border():
    """'same' padding keeps the size; rows never read by a strided window get a zero gradient."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 2, 5, 5))
    w = rng.standard_normal((5, 5, 3, 2, 3, 3))
    assert ops.local_conv2d(x, w, padding="same", backend="numpy").shape == (1, 3, 5, 5)
    w2 = rng.standard_normal((2, 2, 3, 2, 2, 2))     # 2x2 windows, stride 2 on 5x5: row/col 4 unused
    dx, _, _ = ops.local_conv2d_backward(np.ones((1, 3, 2, 2)), x, w2, stride=2, backend="numpy")
    assert np.all(dx[:, :, 4, :] == 0) and np.all(dx[:, :, :, 4] == 0)


@pytest.mark.parametrize("backend", COMPILED)
@given(h=st.integers(1, 6), w=st.integers(1, 6), hp=st.integers(1, 9), wp=st.integers(1, 9),
       pt=st.integers(0, 4), pl=st.integers(0, 4), dtype=st.sampled_from(["float32", "float64"]))
@settings(max_examples=40, deadline=None)
def test_backend_padding_matches_numpy(backend, h, w, hp, wp, pt, pl, dtype):
    """A backend's registered zero padding and crop (its adjoint) equal NumPy's, pads larger than
    the padded input and x rows/columns the padded input drops included."""
    import dlbench.kernels  # noqa: F401  (registers the compiled backends)

    from dlbench.ops import local
    pad, crop = local._PADDING.get(backend, (local._pad_numpy, local._crop_numpy))
    x = np.random.default_rng(h * 7 + w).standard_normal((2, 3, h, w)).astype(dtype)
    want, got = np.full((2, 3, hp, wp), np.nan, dtype), np.full((2, 3, hp, wp), np.nan, dtype)
    local._pad_numpy(x, pt, pl, want)
    pad(x, pt, pl, got)
    np.testing.assert_array_equal(got, want)
    dxp = np.random.default_rng(1).standard_normal((2, 3, hp, wp)).astype(dtype)
    want, got = np.full(x.shape, np.nan, dtype), np.full(x.shape, np.nan, dtype)
    local._crop_numpy(dxp, pt, pl, want)
    crop(dxp, pt, pl, got)
    np.testing.assert_array_equal(got, want)
    # the crop is the padding's adjoint: <pad(x), dxp> == <x, crop(dxp)>
    px = np.empty((2, 3, hp, wp), dtype)
    pad(x, pt, pl, px)
    np.testing.assert_allclose(np.vdot(px.astype(np.float64), dxp), np.vdot(x.astype(np.float64), got),
                               rtol=1e-6, atol=1e-6)


def test_bad_arguments_raise_value_error():
    x = np.zeros((1, 2, 6, 6))
    with pytest.raises(ValueError, match="locations"):
        ops.local_conv2d(x, np.zeros((3, 4, 2, 2, 3, 3)), backend="numpy")        # output is 4x4
    with pytest.raises(ValueError, match="6 axes"):
        ops.local_conv2d(x, np.zeros((4, 4, 2, 2, 3)), backend="numpy")
    with pytest.raises(ValueError, match="input channels"):
        ops.local_conv2d(x, np.zeros((4, 4, 2, 3, 3, 3)), backend="numpy")
    with pytest.raises(ValueError, match=r"b must have shape \(Ho, Wo, K\)"):
        ops.local_conv2d(x, np.zeros((4, 4, 2, 2, 3, 3)), np.zeros((2, 4, 4)), backend="numpy")
    with pytest.raises(ValueError, match=r"x must be \(N, C, H, W\)"):
        ops.local_conv2d(x[0], np.zeros((4, 4, 2, 2, 3, 3)), backend="numpy")
    with pytest.raises(ValueError, match="stride"):
        ops.local_conv2d(x, np.zeros((4, 4, 2, 2, 3, 3)), stride=0, backend="numpy")
