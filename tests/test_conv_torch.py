"""Convolutions against torch.nn.functional (conv1d/2d/3d, conv_transpose2d, autograd gradients),
the book's literal sums (eq. 9.4, 9.8) and finite differences in float64 (eq. 9.11-9.13)."""

from __future__ import annotations

import numpy as np
import pytest
from dlbench.kernels.reference import conv as ref
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlbench import ops
from dlbench.backends import backend_status

BACKENDS = ["numpy"] + [b for b in ("numba", "cython") if backend_status(b).available]
# numba goes through auto-selection; cython through one explicit algorithm (every algorithm is
# checked against the reference in test_conv_kernels; auto-tuning each drawn shape twice is slow)
ALG = {"numpy": "reference", "numba": "auto", "cython": "im2col"}
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def rng_arrays(*shapes, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


# ------------------------------------------------------------------ the book's sums
def test_reference_equals_literal_eq_9_8():
    x, w = rng_arrays((2, 3, 9, 8), (4, 3, 3, 2))
    for stride in [(1, 1), (2, 3)]:
        lit = ref.correlation_loops(x, w, stride)
        got = ops.conv2d(x, w, stride=stride, backend="numpy")
        np.testing.assert_allclose(got, lit, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_flip_is_true_convolution_eq_9_4(backend):
    image, kernel = rng_arrays((6, 7), (3, 4), seed=3)
    lit = ref.true_convolution2d(image, kernel)
    got = ops.conv2d(image[None, None], kernel[None, None], padding="full", flip=True, backend=backend)[0, 0]
    np.testing.assert_allclose(got, lit, rtol=1e-12, atol=1e-12)
    # and flip=False is cross-correlation (eq. 9.6): correlating with the flipped kernel
    corr = ops.conv2d(image[None, None], kernel[None, None, ::-1, ::-1], padding="full",
                      backend=backend)[0, 0]
    np.testing.assert_allclose(corr, lit, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ torch
torch = pytest.importorskip("torch")
F = torch.nn.functional


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


@st.composite
def torch_problems(draw, nd):
    groups = draw(st.sampled_from([1, 2]))
    c, k = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    ks = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dil = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    pad = tuple(draw(st.integers(0, 2)) for _ in range(nd))
    size = tuple(draw(st.integers(max(1, d * (kk - 1) + 1 - 2 * p), 8 if nd < 3 else 5))
                 for kk, d, p in zip(ks, dil, pad))
    return dict(N=draw(st.integers(1, 2)), C=c, K=k, groups=groups, kernel=ks, stride=stride,
                dilation=dil, padding=pad, size=size)


TORCH_FN = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
OURS = {1: ops.conv1d, 2: ops.conv2d, 3: ops.conv3d}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("nd", [1, 2, 3])
@settings(max_examples=10, **SETTINGS)
@given(data=st.data())
def test_forward_and_autograd_gradients_equal_torch(data, nd, backend):
    p = data.draw(torch_problems(nd))
    wshape = (p["K"], p["C"] // p["groups"]) + p["kernel"]
    x, w, b = rng_arrays((p["N"], p["C"]) + p["size"], wshape, (p["K"],))
    kw = dict(stride=p["stride"], padding=p["padding"], dilation=p["dilation"], groups=p["groups"])
    xt, wt = t(x).requires_grad_(), t(w).requires_grad_()
    yt = TORCH_FN[nd](xt, wt, t(b), **kw)
    kw_ = dict(kw, algorithm=ALG[backend], backend=backend)
    y = OURS[nd](x, w, b, **kw_)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    g = np.random.default_rng(1).standard_normal(y.shape)
    yt.backward(t(g))
    bd = {1: ops.conv1d_backward_data, 2: ops.conv2d_backward_data, 3: ops.conv3d_backward_data}[nd]
    bw = {1: ops.conv1d_backward_weight, 2: ops.conv2d_backward_weight, 3: ops.conv3d_backward_weight}[nd]
    np.testing.assert_allclose(bd(g, w, x.shape, **kw_), xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(bw(x, g, w.shape, **kw_), wt.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_conv2d_equals_torch_on_a_resnet_like_layer(backend):
    x, w = rng_arrays((2, 16, 14, 14), (32, 16, 3, 3), dtype=np.float32)
    y = ops.conv2d(x, w, padding=1, backend=backend)
    yt = F.conv2d(t(x), t(w), padding=1).numpy()
    assert y.dtype == np.float32
    assert np.max(np.abs(y - yt)) <= 1e-4 * np.sqrt(16 * 9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("stride,padding,output_padding,dilation,groups", [
    (1, 0, 0, 1, 1), (2, 1, 1, 1, 1), (3, (1, 2), (2, 0), 1, 2), (2, 0, 1, 2, 1)])
def test_conv_transpose2d_equals_torch(backend, stride, padding, output_padding, dilation, groups):
    x, w, b = rng_arrays((2, 4, 5, 6), (4, 3, 3, 2), (3 * groups,))
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups)
    yt = F.conv_transpose2d(t(x), t(w), t(b), **kw).numpy()
    y = ops.conv_transpose2d(x, w, b, **kw, backend=backend)
    np.testing.assert_allclose(y, yt, rtol=1e-10, atol=1e-10)
    # the same output through an explicit output_size (section 9.5: it must be told)
    y2 = ops.conv_transpose2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups,
                              output_size=yt.shape[2:], backend=backend)
    np.testing.assert_allclose(y2, yt, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_and_full_padding_match_torch_with_explicit_pads(backend):
    x, w = rng_arrays((1, 2, 7, 8), (3, 2, 4, 3))
    # "same" puts the extra pixel after (pads (1, 2) and (1, 1)); torch pads symmetrically, so pad first
    ys = ops.conv2d(x, w, padding="same", backend=backend)
    yt = F.conv2d(F.pad(t(x), (1, 1, 1, 2)), t(w)).numpy()
    np.testing.assert_allclose(ys, yt, rtol=1e-10, atol=1e-10)
    yf = ops.conv2d(x, w, padding="full", backend=backend)
    np.testing.assert_allclose(yf, F.conv2d(t(x), t(w), padding=(3, 2)).numpy(), rtol=1e-10, atol=1e-10)
    assert ys.shape[2:] == x.shape[2:] and yf.shape[2:] == (7 + 3, 8 + 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bias_per_channel_and_per_location(backend):
    x, w, bc = rng_arrays((2, 3, 6, 6), (4, 3, 3, 3), (4,))
    y0 = ops.conv2d(x, w, backend=backend)
    yb = ops.conv2d(x, w, bc, backend=backend)
    np.testing.assert_allclose(yb, y0 + bc[None, :, None, None], rtol=1e-12)
    bl = np.random.default_rng(5).standard_normal((4, 4, 4))
    np.testing.assert_allclose(ops.conv2d(x, w, bl, backend=backend), y0 + bl[None], rtol=1e-12)


# ------------------------------------------------------------------ finite differences (float64)
@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_match_finite_differences(backend):
    """dL/dx and dL/dw of L = sum(G * conv(x, w)) by central differences (eq. 9.11-9.13)."""
    x, w, g0 = rng_arrays((1, 2, 6, 7), (4, 1, 3, 2), (1,), seed=7)
    kw = dict(stride=(2, 1), padding=((1, 0), (2, 1)), dilation=(1, 2), groups=2)
    y = ops.conv2d(x, w, **kw, backend="numpy")
    g = np.random.default_rng(8).standard_normal(y.shape)
    loss = lambda xx, ww: float(np.sum(g * ops.conv2d(xx, ww, **kw, backend="numpy")))
    h = 1e-6

    def numgrad(a, f):
        out = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            e = np.zeros_like(a)
            e[i] = h
            out[i] = (f(a + e) - f(a - e)) / (2 * h)
        return out

    dx_fd = numgrad(x, lambda xx: loss(xx, w))
    dw_fd = numgrad(w, lambda ww: loss(x, ww))
    dx = ops.conv2d_backward_data(g, w, x.shape, **kw, backend=backend)
    dw = ops.conv2d_backward_weight(x, g, w.shape, **kw, backend=backend)
    np.testing.assert_allclose(dx, dx_fd, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dw, dw_fd, rtol=1e-6, atol=1e-7)
