"""Convergence problems: gradients by finite differences (float64), f* at the known optimum,
Hessian(-vector) products, seeds, stochastic gradients, registry errors."""

import numpy as np
import pytest

from dlbench import problems
from dlbench.errors import UserError
from dlbench.problems import check_gradient, check_hessp

# (name, params) — every registered problem at its defaults plus the variants the suite uses
CASES = [(name, {}) for name in problems.list()] + [
    ("quadratic", {"kappa": 10.0}), ("quadratic", {"kappa": 1e4}),
    ("deep_linear", {"batch_norm": True}), ("deep_linear", {"width": 3}),
    ("deep_linear", {"width": 3, "batch_norm": True}), ("wrong_side", {"start": "right"}),
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


def test_gradient_finite_differences(prob):
    for x in _points(prob):
        assert check_gradient(prob, x) < 1e-5, prob


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
    assert np.linalg.norm(gs.std(0)) > 0.05 * np.linalg.norm(full)     # really noisy


def test_cliff_is_steep_and_clipping_bounds_the_step():
    p = problems.get("cliff")
    g = p.grad(p.x0(0))
    assert np.linalg.norm(g) > 10.0           # the wall
    assert p.f(p.x_star) == 0.0


def test_saddle_start_is_on_the_ridge():
    p = problems.get("saddle")
    x = p.x0(0)
    assert abs(x[0]) == pytest.approx(1e-6)
    h = p.hess(np.zeros(p.n))
    assert np.linalg.eigvalsh(h).min() == pytest.approx(-1.0)   # one negative curvature at the saddle


def test_wrong_side_has_no_minimum_on_the_start_side():
    p = problems.get("wrong_side", n=1)
    x = p.x0(0)
    assert x[0] < 0
    ts = np.linspace(-7, 0, 400)
    gs = np.array([p.grad(np.array([t]))[0] for t in ts[:-1]])
    assert np.all(gs > 0)                     # descent always heads to -inf, towards the 0.3 asymptote
    assert min(p.f(np.array([t])) for t in ts) > 0.3


def test_deep_linear_batch_norm_matches_ops_batch_norm():
    from dlbench import ops
    from dlbench.problems.deep_linear import bn_backward, bn_forward

    if not hasattr(ops, "batch_norm"):
        pytest.skip("dlbench.ops.batch_norm not available")
    rng = np.random.default_rng(0)
    z, g, b, dy = rng.standard_normal((64, 3)), rng.standard_normal(3), rng.standard_normal(3), \
        rng.standard_normal((64, 3))
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
    df = problems.describe()
    assert set(problems.list()) <= set(df["problem"])
