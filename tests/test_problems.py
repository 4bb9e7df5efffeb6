"""Convergence problems: gradients by finite differences (float64), f* at the known optimum,
Hessian(-vector) products, seeds, stochastic gradients, registry errors."""

import numpy as np
import pytest

from dlbench import problems
from dlbench.errors import UserError
from dlbench.problems import check_gradient, check_hessp

# (name, params) — every registered problem at its defaults plus the variants the suite uses
SMALL_DEFAULTS = {
    "sparse_coding": {"m": 20, "d": 8, "k": 4}
}  # the default instance's reference costs seconds
CASES = [(name, SMALL_DEFAULTS.get(name, {})) for name in problems.list()] + [
    ("quadratic", {"kappa": 10.0}),
    ("quadratic", {"kappa": 1e4}),
    ("deep_linear", {"batch_norm": True}),
    ("deep_linear", {"width": 3}),
    ("deep_linear", {"width": 3, "batch_norm": True}),
    ("wrong_side", {"start": "right"}),
    ("rosenbrock", {"n": 5}),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in p.items())}" for n, p in CASES]


@pytest.fixture(scope="module", params=list(zip(CASES, IDS)), ids=IDS)
def prob(request):
    (name, params), _ = request.param
    return problems.get(name, **params)


def _points(p):
    x0 = p.x0(3)
    rng = np.random.default_rng(11)
    near = (p.x_star if p.x_star is not None else x0) + 0.05 * rng.standard_normal(p.n)
    return [x0, near]


# ReLU / |x| kinks: a central difference that straddles one is off by O(h); allow more there
KINKED = {"cnn_digits": 1e-4}


def test_gradient_finite_differences(prob):
    n_dirs = 3 if prob.n > 1000 else 6
    for x in _points(prob):
        assert check_gradient(prob, x, n_dirs=n_dirs) < KINKED.get(prob.name, 1e-5), prob


def test_f_star_at_known_optimum(prob):
    if prob.x_star is None:
        pytest.skip(f"{prob.name}: no closed-form minimizer; reference loss {prob.reference_loss}")
    fx = prob.f(prob.x_star.copy())
    assert fx == pytest.approx(prob.f_star, abs=1e-10 * (1 + abs(prob.f_star)))
    g = prob.grad(prob.x_star.copy())
    assert np.linalg.norm(g) < 1e-8 * (1 + np.linalg.norm(prob.x_star))
    # a minimum: no nearby point is lower
    rng = np.random.default_rng(0)
    for _ in range(5):
        assert prob.f(prob.x_star + 1e-3 * rng.standard_normal(prob.n)) >= prob.f_star - 1e-12


def test_hessian_vector_product(prob):
    if not prob.has_hessp:
        pytest.skip(f"{prob.name}: no cheap Hessian")
    for x in _points(prob):
        assert check_hessp(prob, x) < 1e-5
        if prob.has_hess:
            v = np.random.default_rng(1).standard_normal(prob.n)
            np.testing.assert_allclose(prob.hess(x) @ v, prob.hessp(x, v), rtol=1e-9, atol=1e-12)


def test_x0_is_a_function_of_the_seed(prob):
    a, b, c = prob.x0(5), prob.x0(5), prob.x0(6)
    assert a.dtype == np.float64 and a.shape == (prob.n,)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.isfinite(prob.f(a))


def test_target_is_between_optimum_and_start(prob):
    f0 = prob.f(prob.x0(0))
    t = prob.target(f0)
    assert prob.ref <= t <= max(f0, prob.ref) + 1e-12


def test_quadratic_condition_number():
    for k in (10.0, 1e2, 1e3, 1e4):
        p = problems.get("quadratic", kappa=k)
        ev = np.linalg.eigvalsh(p.hess(p.x0(0)))
        assert ev.max() / ev.min() == pytest.approx(k, rel=1e-6)
        assert ev.max() == pytest.approx(1.0)


def test_noisy_quadratic_minibatch_gradient_is_unbiased():
    p = problems.get("noisy_quadratic")
    assert p.stochastic
    x = p.x0(0)
    rng = np.random.default_rng(0)
    gs = np.array([p.train_grad(x, rng, k) for k in range(4000)])
    full = p.grad(x)
    se = gs.std(0) / np.sqrt(len(gs))
    assert np.all(np.abs(gs.mean(0) - full) < 5 * se + 1e-12)
    assert np.linalg.norm(gs.std(0)) > 0.05 * np.linalg.norm(full)  # really noisy


def test_cliff_is_steep_and_clipping_bounds_the_step():
    p = problems.get("cliff")
    g = p.grad(p.x0(0))
    assert np.linalg.norm(g) > 10.0  # the wall
    assert p.f(p.x_star) == 0.0


def test_saddle_start_is_on_the_ridge():
    p = problems.get("saddle")
    x = p.x0(0)
    assert abs(x[0]) == pytest.approx(1e-6)
    h = p.hess(np.zeros(p.n))
    assert np.linalg.eigvalsh(h).min() == pytest.approx(-1.0)  # one negative curvature at the saddle


def test_wrong_side_has_no_minimum_on_the_start_side():
    p = problems.get("wrong_side", n=1)
    x = p.x0(0)
    assert x[0] < 0
    ts = np.linspace(-7, 0, 400)
    gs = np.array([p.grad(np.array([t]))[0] for t in ts[:-1]])
    assert np.all(gs > 0)  # descent always heads to -inf, towards the 0.3 asymptote
    assert min(p.f(np.array([t])) for t in ts) > 0.3


def test_deep_linear_batch_norm_matches_ops_batch_norm():
    from dlbench import ops
    from dlbench.problems.deep_linear import bn_backward, bn_forward

    if not hasattr(ops, "batch_norm"):
        pytest.skip("dlbench.ops.batch_norm not available")
    rng = np.random.default_rng(0)
    z, g, b, dy = (
        rng.standard_normal((64, 3)),
        rng.standard_normal(3),
        rng.standard_normal(3),
        rng.standard_normal((64, 3)),
    )
    y, st = bn_forward(z, g, b, 1e-5)
    y_ref, mean, invstd = ops.batch_norm(z, g, b, eps=1e-5, return_stats=True, backend="numpy")
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
    dz, dg, db = bn_backward(dy, g, st)
    ref = ops.batch_norm_backward(dy, z, g, mean, invstd, eps=1e-5, backend="numpy")
    for a, r in zip((dz, dg, db), ref):
        np.testing.assert_allclose(a, r, rtol=1e-9, atol=1e-12)


def test_blocks_partition_the_parameters():
    for name, params in [("coupled", {}), ("deep_linear", {"batch_norm": True, "width": 2})]:
        p = problems.get(name, **params)
        idx = np.sort(np.concatenate(p.blocks))
        np.testing.assert_array_equal(idx, np.arange(p.n))


def test_registry_errors():
    with pytest.raises(UserError, match="unknown problem"):
        problems.get("no_such_problem")
    with pytest.raises(UserError):
        problems.get("quadratic", nonsense=1)
    with pytest.raises(ValueError):
        problems.get("quadratic", kappa=0.5)
    d = problems.get("quadratic").describe()
    assert d["problem"] == "quadratic" and d["section"] == "8.2.1" and d["hessian"]


# ----------------------------------------------------------------------------- data and structured problems
def test_logistic_f_star_matches_scipy():
    from scipy.optimize import minimize

    p = problems.get("logistic")
    res = minimize(
        p.f, p.x0(0), jac=p.grad, method="L-BFGS-B", options={"gtol": 1e-12, "ftol": 0, "maxiter": 5000}
    )
    assert p.f_star <= res.fun + 1e-12
    assert res.fun - p.f_star < 1e-9


def test_cnn_convolution_matches_ops_conv2d():
    from dlbench import ops

    p = problems.get("cnn_digits", channels=4)
    x = p.x0(0)
    X = p.X[:7]
    K, bc, _, _ = p.unpack(x)
    ref = ops.conv2d(X, K.reshape(4, 1, 3, 3), bc, padding=1, backend="numpy")
    np.testing.assert_allclose(p.conv_forward(x, X), ref, rtol=1e-10, atol=1e-12)


def test_cnn_col2im_is_the_adjoint_of_im2col():
    from dlbench.problems.data import col2im_3x3, im2col_3x3

    rng = np.random.default_rng(0)
    a, c = rng.standard_normal((2, 3, 5, 6)), rng.standard_normal((2 * 5 * 6, 27))
    assert np.sum(im2col_3x3(a) * c) == pytest.approx(np.sum(a * col2im_3x3(c, a.shape)))


def test_mlp_init_strategies():
    x0s = {}
    for init in ("uniform", "glorot", "orthogonal", "sparse", "lsuv", "small"):
        p = problems.get("mlp_digits", init=init)
        x0s[init] = p.x0(0)
        (W1, _), (_, b2) = p.unpack(x0s[init])
        np.testing.assert_allclose(np.exp(b2) / np.exp(b2).sum(), p.classes, rtol=1e-10)  # softmax(b) = c
        if init == "sparse":
            assert np.all((W1 != 0).sum(0) == 15)  # k = 15 non-zero inputs per unit
        if init == "lsuv":
            var = np.var(p.X[:512] @ W1)
            assert 0.5 < var < 2.0
        if init == "small":
            assert np.abs(W1).max() < 1e-2
    assert len({v.tobytes() for v in x0s.values()}) == 6


def test_curriculum_starts_easy_and_ends_uniform():
    p = problems.get("mlp_digits", curriculum=True, ramp=100)
    assert p.uniform_share(0) == pytest.approx(0.2) and p.uniform_share(100) == 1.0
    rng = np.random.default_rng(0)
    early = np.concatenate([p._sample(rng, 0) for _ in range(50)])
    easy = set(p.easy.tolist())
    assert np.mean([i in easy for i in early]) > 0.75
    late = np.concatenate([p._sample(rng, 1000) for _ in range(50)])
    assert np.mean([i in easy for i in late]) < 0.45


def test_pretraining_stage_gradients():
    p = problems.get("pretraining", mode="greedy", stage_iters=10)
    x = p.x0(0)
    rng = np.random.default_rng(1)
    for k, stage in ((0, 1), (10, 2), (25, 3), (40, 4)):
        assert p.stage(k) == stage
        g = p.train_grad(x, None, k)
        depth, first = (p.L, 1) if stage > p.L else (stage, stage)
        fn = lambda z, d=depth: p._loss_grad_depth(z, p.X, p.Y, d, 1, need_grad=False)[0]
        d = rng.standard_normal(p.n) * (g != 0)  # a direction within the trained blocks
        h = 1e-6
        fd = (fn(x + h * d) - fn(x - h * d)) / (2 * h)
        assert fd == pytest.approx(g @ d, rel=1e-5)
        hidden_grads = p._arrays(g)[0]
        assert all(np.all(w == 0) for w, _ in hidden_grads[: first - 1])  # frozen layers below
    joint = problems.get("pretraining", mode="joint")
    assert joint.stage(0) == joint.L + 1


def test_continuation_blur_is_the_gaussian_expectation():
    p = problems.get("continuation")
    x = p.x0(0)
    rng = np.random.default_rng(0)
    s = 0.7
    mc = np.mean([p.f(x + s * rng.standard_normal(p.n)) for _ in range(40000)])
    assert p.blurred(x, s) == pytest.approx(mc, rel=1e-2)
    gmc = np.mean([p.grad(x + s * rng.standard_normal(p.n)) for _ in range(40000)], axis=0)
    np.testing.assert_allclose(p.blurred_grad(x, s), gmc, rtol=0.05, atol=0.02)
    assert p.sigma(0) == p.sigma0 and p.sigma(p.anneal) == 0.0
    assert problems.get("continuation", schedule="none").sigma(0) == 0.0


def test_sparse_coding_reference_is_a_stationary_point_and_blocks_solve_exactly():
    p = problems.get("sparse_coding", m=20, d=8, k=4)
    x = p.x0(0)
    scale = np.abs(p.grad(x)).max()
    assert np.abs(p.grad(p.x_ref)).max() < 1e-5 * scale
    assert p.f(p.x_ref) == pytest.approx(p.reference_loss)
    for i in (1, 0):
        y = p.block_minimize(x, i)
        assert p.f(y) <= p.f(x)
        assert np.abs(p.grad(y)[p.blocks[i]]).max() < 1e-5 * scale
        x = y


def test_schaul_noise_models_and_drift():
    rng = np.random.default_rng(0)
    x = np.array([0.5])
    exact = problems.get("schaul").grad(x)
    add = problems.get("schaul", noise="gauss_add")
    g = np.array([add.train_grad(x, rng, 0) for _ in range(4000)])
    assert g.mean() == pytest.approx(exact[0], abs=0.01) and g.std() == pytest.approx(0.1, rel=0.1)
    mask = problems.get("schaul", noise="maskout")
    g = np.array([mask.train_grad(x, rng, 0) for _ in range(4000)])
    assert np.mean(g == 0) == pytest.approx(0.5, abs=0.05)
    cau = problems.get("schaul", noise="cauchy")
    g = np.array([cau.train_grad(x, rng, 0) for _ in range(4000)])
    assert np.abs(g - exact).max() > 10  # heavy tails
    drift = problems.get("schaul", drift="offset", dim=2)
    z = drift.x0(0)
    assert drift.f_at(z, 0) == drift.f(z) and drift.f_at(z, 100) != drift.f(z)
    assert np.all(drift.offset(9) == 0) and not np.all(drift.offset(10) == 0)
    from dlbench.problems.schaul import bank

    b = bank()
    assert len(b) == 588 and {t["dim"] for t in b} == {1, 2, 10}
