"""Parameter initialization (sec. 8.4): bounds, variances, orthogonality, sparsity, output
biases from marginals, LSUV."""

import math

import numpy as np
import pytest

from dlbench.optim import init


def test_fans_dense_and_conv():
    assert init.fans((20, 30)) == (30, 20)
    assert init.fans((16, 8, 3, 3)) == (72, 144)
    with pytest.raises(ValueError):
        init.fans((5,))
    with pytest.raises(ValueError):
        init.fans((0, 3))


def test_glorot_uniform_eq_8_23():
    m, n = 300, 200
    w = init.glorot_uniform((n, m), rng=0)
    a = math.sqrt(6 / (m + n))
    assert w.dtype == np.float32 and w.shape == (n, m)
    assert np.abs(w).max() <= a and np.abs(w).max() > 0.99 * a
    assert w.var() == pytest.approx(2 / (m + n), rel=0.03)        # Var U(-a, a) = a^2 / 3
    w2 = init.glorot_uniform((n, m), rng=0, gain=2.0, dtype=np.float64)
    assert w2.dtype == np.float64 and np.abs(w2).max() <= 2 * a
    np.testing.assert_array_equal(init.glorot_uniform((4, 5), rng=7), init.glorot_uniform((4, 5), rng=7))


def test_uniform_fan_in_heuristic():
    w = init.uniform_fan_in((50, 400), rng=1)
    assert np.abs(w).max() <= 1 / math.sqrt(400)
    assert w.var() == pytest.approx(1 / (3 * 400), rel=0.05)


@pytest.mark.parametrize("shape", [(8, 8), (5, 12), (12, 5), (6, 3, 2, 2)])
def test_orthogonal_with_gain(shape):
    g = init.gain("relu")
    w = init.orthogonal(shape, gain=g, rng=2, dtype=np.float64)
    mat = w.reshape(shape[0], -1)
    small = min(mat.shape)
    gram = mat @ mat.T if mat.shape[0] <= mat.shape[1] else mat.T @ mat
    np.testing.assert_allclose(gram, g * g * np.eye(small), atol=1e-12)
    assert init.gain("tanh") == pytest.approx(5 / 3)
    with pytest.raises(ValueError):
        init.gain("softsign")


def test_sparse_init_k_nonzeros_per_unit():
    w = init.sparse((40, 100), k=15, rng=3)
    assert ((w != 0).sum(axis=1) == 15).all()
    wc = init.sparse((4, 3, 2, 2), k=5, rng=3)
    assert ((wc.reshape(4, -1) != 0).sum(axis=1) == 5).all()
    with pytest.raises(ValueError):
        init.sparse((4, 10), k=11)


def test_output_bias_from_marginals():
    c = np.array([0.5, 0.3, 0.15, 0.05])
    b = init.output_bias_from_marginals(c, dtype=np.float64)
    soft = np.exp(b) / np.exp(b).sum()
    np.testing.assert_allclose(soft, c, rtol=1e-12)
    p = np.array([0.9, 0.2])
    bs = init.output_bias_from_marginals(p, kind="sigmoid", dtype=np.float64)
    np.testing.assert_allclose(1 / (1 + np.exp(-bs)), p, rtol=1e-12)
    with pytest.raises(ValueError):
        init.output_bias_from_marginals([0.5, 0.6])
    with pytest.raises(ValueError):
        init.output_bias_from_marginals([0.0, 1.0])
    with pytest.raises(ValueError):
        init.output_bias_from_marginals([0.5, 0.5], kind="tanh")


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_lsuv_gives_unit_output_variance_on_the_batch(activation):
    rng = np.random.default_rng(4)
    x = 3.0 * rng.standard_normal((256, 40))
    weights = [np.empty((64, 40)), np.empty((64, 64)), np.empty((10, 64))]
    fwd = init.mlp_forward(activation)
    variances = init.lsuv(weights, x, fwd, tol=0.02, rng=5)
    np.testing.assert_allclose(variances, 1.0, rtol=0.02)
    outs = fwd(weights, x)
    assert all(abs(np.var(o) - 1) <= 0.02 for o in outs)
    # rescaled orthogonal: each W W^T stays a multiple of I
    for w in weights[:2]:
        gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        np.testing.assert_allclose(gram / gram[0, 0], np.eye(len(gram)), atol=1e-10)
