"""Batch normalization (eq. 8.35-8.37): every backend vs the NumPy reference on hypothesis-drawn dense
and convolutional shapes, vs torch in training and eval (running statistics included), float64
finite-difference gradients through mu and sigma, and ValueError for bad arguments."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbench import ops
from dlbench.backends import backend_status

COMPILED = [pytest.param(b, marks=pytest.mark.skipif(not backend_status(b).available,
                                                      reason=backend_status(b).reason))
            for b in ("numba", "cython")]
TOL = {"float64": dict(rtol=1e-10, atol=1e-10), "float32": dict(rtol=1e-4, atol=2e-5)}


@st.composite
def bn_cases(draw):
    """x (N, D) or (N, C, H, W) with an offset mean (tests the shifted statistics), gamma, beta, stats."""
    conv = draw(st.booleans())
    # dense: row counts that exercise the 4-row unrolling, the 32-row float64 folds and two threads
    n = draw(st.integers(2, 4)) if conv else draw(st.sampled_from([2, 3, 5, 9, 38, 70]))
    c = draw(st.integers(1, 5)) if conv else draw(st.sampled_from([1, 3, 17, 300]))
    shape = (n, c, draw(st.integers(1, 5)), draw(st.integers(1, 5))) if conv else (n, c)
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    scale, offset = draw(st.sampled_from([0.1, 1.0, 3.0])), draw(st.sampled_from([0.0, 5.0]))
    x = rng.standard_normal(shape) * scale + offset
    vec = [rng.standard_normal(c) for _ in range(3)] + [rng.random(c) + 0.5]
    return (x, *vec)


def cast(dtype, *arrays):
    return [a.astype(dtype) for a in arrays]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", COMPILED)
@given(case=bn_cases(), training=st.booleans())
@settings(max_examples=20, deadline=None)
def test_backend_matches_reference(backend, dtype, case, training):
    x, gamma, beta, rmean, rvar = cast(dtype, *case)
    runs = {}
    for be in (backend, "numpy"):
        rm, rv = rmean.copy(), rvar.copy()
        y, mean, invstd = ops.batch_norm(x, gamma, beta, rm, rv, training, 0.1, 1e-5, return_stats=True,
                                         backend=be)
        dy = np.random.default_rng(0).standard_normal(x.shape).astype(dtype)
        grads = ops.batch_norm_backward(dy, x, gamma, mean, invstd, training, rm, rv, backend=be)
        runs[be] = (y, mean, invstd, rm, rv, *grads)
    for got, want in zip(runs[backend], runs["numpy"]):
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got, want, **TOL[dtype])


@pytest.mark.parametrize("backend", ["numpy", *COMPILED])
@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 5, 6)])
def test_matches_torch_train_and_eval(backend, shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape) * 2 + 1
    c = shape[1]
    gamma, beta, rmean = (rng.standard_normal(c) for _ in range(3))
    rvar = rng.random(c) + 0.5
    trm, trv = torch.tensor(rmean), torch.tensor(rvar)
    tx, tg, tb = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    rm, rv = rmean.copy(), rvar.copy()
    # training: batch statistics, running averages updated (unbiased variance), backward through mu, sigma
    ty = torch.nn.functional.batch_norm(tx, trm, trv, tg, tb, training=True, momentum=0.1, eps=1e-5)
    y, mean, invstd = ops.batch_norm(x, gamma, beta, rm, rv, True, 0.1, 1e-5, return_stats=True,
                                     backend=backend)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(rm, trm.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rv, trv.numpy(), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(shape)
    ty.backward(torch.from_numpy(dy))
    for got, want in zip(ops.batch_norm_backward(dy, x, gamma, mean, invstd, backend=backend),
                         (tx.grad, tg.grad, tb.grad)):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-9, atol=1e-10)
    # eval: the running averages, constants for the backward
    for t in (tx, tg, tb):
        t.grad = None
    ty = torch.nn.functional.batch_norm(tx, trm, trv, tg, tb, training=False, eps=1e-5)
    y = ops.batch_norm(x, gamma, beta, rm, rv, training=False, eps=1e-5, backend=backend)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    ty.backward(torch.from_numpy(dy))
    grads = ops.batch_norm_backward(dy, x, gamma, training=False, running_mean=rm, running_var=rv,
                                    backend=backend)
    for got, want in zip(grads, (tx.grad, tg.grad, tb.grad)):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-9, atol=1e-10)


@pytest.mark.skipif(not backend_status("cython").available, reason=backend_status("cython").reason)
@pytest.mark.parametrize("path", [1, 2])
@pytest.mark.parametrize("shape", [(5, 7, 3, 5), (2, 70, 4, 4), (1, 3, 1, 2), (9, 130, 2, 3)])
def test_cython_train_paths_match_reference(path, shape):
    """Both float32 training paths of ``variants_bn.train`` on (N, C, L) maps: 1 sweeps channel
    groups (channels that fit in L2; groups of up to 64, a partial last group), 2 splits the examples
    over the threads. Forward (y, mean, biased var) and backward (dx, dgamma, dbeta)."""
    from dlbench.kernels.cython import variants_bn

    rng = np.random.default_rng(4)
    x = (rng.standard_normal(shape) * 2 + 3).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    c = shape[1]
    gamma, beta = (rng.standard_normal(c).astype(np.float32) for _ in range(2))
    x3, dy3 = x.reshape(shape[0], c, -1), dy.reshape(shape[0], c, -1)
    y, mean, var = np.empty_like(x3), np.empty(c), np.empty(c)
    assert variants_bn.train(False, x3, x3, gamma, beta, gamma, gamma, 1e-5, y, mean, var, path)
    want_y, want_mean, want_invstd = ops.batch_norm(x, gamma, beta, training=True, return_stats=True,
                                                    backend="numpy")
    np.testing.assert_allclose(y.reshape(shape), want_y, **TOL["float32"])
    np.testing.assert_allclose(mean, want_mean, **TOL["float32"])
    np.testing.assert_allclose(1 / np.sqrt(var + 1e-5), want_invstd, **TOL["float32"])
    dx, dgamma, dbeta = np.empty_like(x3), np.empty(c), np.empty(c)
    assert variants_bn.train(True, x3, dy3, gamma, gamma, want_mean, want_invstd, 0.0, dx, dgamma, dbeta,
                             path)
    want = ops.batch_norm_backward(dy, x, gamma, want_mean, want_invstd, training=True, backend="numpy")
    for got, w in zip((dx.reshape(shape), dgamma, dbeta), want):
        np.testing.assert_allclose(got, w, rtol=1e-4, atol=1e-4)


def test_running_statistics_converge_and_conv_shares_statistics_across_locations():
    rng = np.random.default_rng(2)
    c = 3
    rm, rv = np.zeros(c), np.ones(c)
    gamma, beta = np.ones(c), np.zeros(c)
    for _ in range(200):
        x = rng.standard_normal((16, c, 4, 4)) * 2.0 + 3.0
        y = ops.batch_norm(x, gamma, beta, rm, rv, momentum=0.1, backend="numpy")
    np.testing.assert_allclose(rm, 3.0, atol=0.15)
    np.testing.assert_allclose(rv, 4.0, atol=0.4)
    # the same mu, sigma at every spatial location: per-channel mean 0, variance 1 over (N, H, W) only
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-4)
    assert np.abs(y.mean(axis=0)).max() > 1e-3     # not normalised per location


@pytest.mark.parametrize("backend", ["numpy", *COMPILED])
@pytest.mark.parametrize("shape", [(6, 4), (3, 2, 3, 4)])
def test_gradients_finite_differences(backend, shape):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape) * 1.5 + 0.5
    c = shape[1]
    gamma, beta = rng.standard_normal(c), rng.standard_normal(c)
    rm, rv = rng.standard_normal(c), rng.random(c) + 0.5
    dy = rng.standard_normal(shape)
    for training in (True, False):
        def loss(xa, ga, ba, training=training):
            return np.sum(dy * ops.batch_norm(xa, ga, ba, rm.copy(), rv.copy(), training, backend=backend))

        dx, dgamma, dbeta = ops.batch_norm_backward(dy, x, gamma, training=training, running_mean=rm,
                                                    running_var=rv, backend=backend)
        for grad, arg, f in ((dx, x, lambda a, ls=loss: ls(a, gamma, beta)),
                             (dgamma, gamma, lambda a, ls=loss: ls(x, a, beta)),
                             (dbeta, beta, lambda a, ls=loss: ls(x, gamma, a))):
            for _ in range(3):
                v = rng.standard_normal(arg.shape)
                fd = (f(arg + 1e-6 * v) - f(arg - 1e-6 * v)) / 2e-6
                assert fd == pytest.approx(float(np.sum(grad * v)), rel=1e-6, abs=1e-8)


def test_bad_arguments_raise_value_error():
    x = np.zeros((4, 3, 2, 2))
    g, b = np.ones(3), np.zeros(3)
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\)"):
        ops.batch_norm(x, np.ones(4), b, backend="numpy")
    with pytest.raises(ValueError, match="training=False"):
        ops.batch_norm(x, g, b, training=False, backend="numpy")
    with pytest.raises(ValueError, match="both running_mean and running_var"):
        ops.batch_norm(x, g, b, running_mean=np.zeros(3), backend="numpy")
    with pytest.raises(ValueError, match="more than one value|> 1 value"):
        ops.batch_norm(np.zeros((1, 3)), g, b, backend="numpy")
    with pytest.raises(ValueError, match=r"\(N, D\) or \(N, C, H, W\)"):
        ops.batch_norm(np.zeros((4, 3, 2)), g, b, backend="numpy")
    with pytest.raises(ValueError, match="dtype mismatch"):
        ops.batch_norm(x.astype(np.float32), g, b, backend="numpy")
    with pytest.raises(ValueError, match="dy must have"):
        ops.batch_norm_backward(np.zeros((4, 3)), x, g, backend="numpy")
