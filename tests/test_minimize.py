"""dlbench.optim.minimize (sec. 8.6-8.7) against scipy.optimize on the same problems.

CG, BFGS and L-BFGS (and Newton where a Hessian exists) must reach scipy's minimum:
|f - f_scipy| <= 1e-8 max(1, |f|), on Rosenbrock (n = 2, 10, 100), a kappa = 1e4 quadratic
(n = 100) and L2-regularized logistic regression on scikit-learn's breast-cancer data. Plus the
book's claims: CG finishes an n = 50 quadratic in <= 50 iterations, Newton a quadratic in one
step, saddle-free Newton leaves a saddle that plain Newton converges to (8.2.3).
"""

import numpy as np
import pytest
from scipy import optimize as sopt
from threadpoolctl import threadpool_limits

from dlbench.optim import minimize

GTOL = 1e-8
SCIPY = {"cg": "CG", "bfgs": "BFGS", "lbfgs": "L-BFGS-B", "newton": "Newton-CG"}


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """Small dense algebra: one BLAS thread (no thread wake-ups in every iteration)."""
    with threadpool_limits(1):
        yield


def quadratic(n, kappa, seed=0):
    """f = 1/2 x^T A x - b^T x with eigenvalues log-spaced in [1, kappa]."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = (q * np.logspace(0, np.log10(kappa), n)) @ q.T
    A = 0.5 * (A + A.T)
    b = rng.standard_normal(n)
    return (lambda x: 0.5 * x @ A @ x - b @ x, lambda x: A @ x - b, lambda x: A, A, b)


def logistic_breast_cancer(lam=1e-2):
    """Mean logistic loss + lam/2 |w|^2 on standardized features with a bias column (31 params)."""
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    X = np.hstack([X, np.ones((X.shape[0], 1))])
    s = 2.0 * y - 1.0
    m = X.shape[0]

    def f(w):
        z = s * (X @ w)
        return float(np.mean(np.logaddexp(0.0, -z)) + 0.5 * lam * w @ w)

    def grad(w):
        z = s * (X @ w)
        return X.T @ (-s / (1.0 + np.exp(z))) / m + lam * w

    def hess(w):
        p = 1.0 / (1.0 + np.exp(-(X @ w)))
        return (X.T * (p * (1 - p))) @ X / m + lam * np.eye(X.shape[1])

    return f, grad, hess, np.zeros(X.shape[1])


def problems():
    out = {}
    for n in (2, 10, 100):
        out[f"rosenbrock{n}"] = (sopt.rosen, sopt.rosen_der, sopt.rosen_hess, np.zeros(n))
    f, g, h, _, _ = quadratic(100, 1e4)
    out["quadratic_k1e4"] = (f, g, h, np.zeros(100))
    out["logreg_breast_cancer"] = "logreg"
    return out


PROBLEMS = problems()


def _get(name):
    p = PROBLEMS[name]
    return logistic_breast_cancer() if p == "logreg" else p


def scipy_min(method, f, g, h, x0):
    opts = {"gtol": GTOL}
    if method == "lbfgs":
        opts.update(ftol=1e-15, maxiter=20000)
    if method == "newton":
        opts = {"xtol": 1e-12}
    return sopt.minimize(f, x0, method=SCIPY[method], jac=g, hess=h if method == "newton" else None,
                         options=opts)


@pytest.mark.parametrize("method", ["cg", "bfgs", "lbfgs", "newton"])
@pytest.mark.parametrize("name", list(PROBLEMS))
def test_reaches_scipys_minimum(name, method):
    f, g, h, x0 = _get(name)
    ours = minimize(f, x0, method=method, jac=g, hess=h, options={"gtol": GTOL})
    ref = scipy_min(method, f, g, h, x0)
    assert ours.success, ours.message
    assert abs(ours.fun - ref.fun) <= 1e-8 * max(1.0, abs(ours.fun)), (ours.fun, ref.fun)
    assert np.max(np.abs(g(ours.x))) <= 10 * GTOL
    assert ours.nfev >= ours.nit >= 1 and ours.njev >= 1
    assert isinstance(ours, sopt.OptimizeResult)


def test_cg_solves_an_n50_quadratic_in_at_most_50_iterations():
    f, g, h, A, b = quadratic(50, 10.0, seed=1)      # kappa = 10: textbook CG reaches round-off by step 40
    x0 = np.zeros(50)
    g0 = np.max(np.abs(g(x0)))
    for beta in ("fr", "pr", "pr+"):
        res = minimize(f, x0, method="cg", jac=g, options={"gtol": 1e-12 * g0, "beta": beta})
        assert res.success and res.nit <= 50, (beta, res.nit, res.message)
        np.testing.assert_allclose(res.x, np.linalg.solve(A, b), rtol=1e-7, atol=1e-9)


def test_newton_solves_a_quadratic_in_one_step():
    f, g, h, A, b = quadratic(30, 1e3, seed=2)
    res = minimize(f, np.ones(30), method="newton", jac=g, hess=h, options={"gtol": 1e-9})
    assert res.nit == 1 and res.success
    np.testing.assert_allclose(res.x, np.linalg.solve(A, b), rtol=1e-9)
    # the same with only Hessian-vector products (truncated CG inner solve), in a few steps
    res = minimize(f, np.ones(30), method="newton", jac=g, hessp=lambda x, v: A @ v, options={"gtol": 1e-9})
    assert res.success and res.nhev > 0


def saddle():
    """f = x^2 + y^4/4 - y^2/2: a saddle at (0, 0), minima f = -1/4 at (0, +-1)."""
    f = lambda z: z[0] ** 2 + z[1] ** 4 / 4 - z[1] ** 2 / 2  # noqa: E731
    g = lambda z: np.array([2 * z[0], z[1] ** 3 - z[1]])  # noqa: E731
    h = lambda z: np.array([[2.0, 0.0], [0.0, 3 * z[1] ** 2 - 1]])  # noqa: E731
    return f, g, h


def test_saddle_free_newton_escapes_the_saddle_plain_newton_converges_to():
    f, g, h = saddle()
    x0 = np.array([0.5, 0.1])
    plain = minimize(f, x0, method="newton", jac=g, hess=h, options={"adaptive": False, "gtol": 1e-10})
    assert plain.success and np.allclose(plain.x, 0.0, atol=1e-8)          # attracted to the saddle
    assert np.linalg.eigvalsh(h(plain.x)).min() < 0
    sfn = minimize(f, x0, method="saddle-free-newton", jac=g, hess=h, options={"gtol": 1e-10})
    assert sfn.success and abs(abs(sfn.x[1]) - 1) < 1e-8 and sfn.fun == pytest.approx(-0.25)
    same = minimize(f, x0, method="newton", jac=g, hess=h, options={"saddle_free": True, "gtol": 1e-10})
    np.testing.assert_allclose(same.x, sfn.x)


def test_levenberg_marquardt_damping_rejects_uphill_steps():
    x0 = np.array([-1.2, 1.0])
    res = minimize(sopt.rosen, x0, method="newton", jac=sopt.rosen_der, hess=sopt.rosen_hess,
                   options={"damping": 1.0, "gtol": 1e-9})
    assert res.success and np.allclose(res.x, 1.0, atol=1e-6)
    pure = minimize(sopt.rosen, np.array([2.0, -2.0]), method="newton", jac=sopt.rosen_der,
                    hess=sopt.rosen_hess, options={"gtol": 1e-9})
    assert pure.success and pure.nrejected >= 0


def test_finite_difference_gradient_and_jac_true():
    res = minimize(sopt.rosen, np.zeros(2), method="bfgs", options={"gtol": 1e-4})
    assert res.success and abs(res.fun) < 1e-8 and res.njev == 0 and res.nfev > 3 * res.nit
    res = minimize(sopt.rosen, np.zeros(2), method="bfgs", jac="3-point", options={"gtol": 1e-7})
    assert res.success and abs(res.fun) < 1e-12
    res = minimize(lambda x: (sopt.rosen(x), sopt.rosen_der(x)), np.zeros(5), method="lbfgs", jac=True)
    assert res.success and res.nfev == res.njev


class CoupledPair:
    """(x1 - x2)^2 + alpha (x1^2 + x2^2): coordinate descent's bad case (sec. 8.7.2)."""

    def __init__(self, alpha):
        self.alpha = alpha
        self.blocks = [[0], [1]]

    def f(self, x):
        return float((x[0] - x[1]) ** 2 + self.alpha * (x @ x))

    def grad(self, x):
        d = 2 * (x[0] - x[1])
        return np.array([d + 2 * self.alpha * x[0], -d + 2 * self.alpha * x[1]])

    def block_minimize(self, x, i):
        x = x.copy()
        x[i] = x[1 - i] / (1 + self.alpha)
        return x


def test_block_coordinate_descent_slow_when_coupled_fast_when_not():
    x0 = np.array([3.0, -3.0])
    slow_p, fast_p = CoupledPair(0.01), CoupledPair(1.0)
    slow = minimize(slow_p.f, x0, method="bcd", jac=slow_p.grad, options={"gtol": 1e-8, "maxiter": 5000})
    fast = minimize(fast_p.f, x0, method="bcd", jac=fast_p.grad, options={"gtol": 1e-8})
    assert slow.success and fast.success
    assert fast.nit < 20 < 10 * fast.nit < slow.nit
    # inner L-BFGS instead of the exact block solution, blocks given explicitly
    inner = minimize(lambda x: fast_p.f(x), x0, method="bcd", jac=fast_p.grad,
                     options={"gtol": 1e-8, "blocks": [[0], [1]]})
    assert inner.success and np.allclose(inner.x, 0.0, atol=1e-7)
    with pytest.raises(ValueError, match="blocks"):
        minimize(lambda x: fast_p.f(x), x0, method="bcd", jac=fast_p.grad)


def test_callback_and_errors():
    seen = []

    def cb(xk):
        seen.append(xk)
        if len(seen) == 3:
            raise StopIteration

    res = minimize(sopt.rosen, np.zeros(4), method="bfgs", jac=sopt.rosen_der, callback=cb)
    assert res.status == 99 and res.nit == 3 and not res.success and len(seen) == 3
    with pytest.raises(ValueError, match="unknown method"):
        minimize(sopt.rosen, np.zeros(2), method="nelder-mead")
    with pytest.raises(ValueError, match="unknown option"):
        minimize(sopt.rosen, np.zeros(2), method="bfgs", options={"beta": "fr"})
    with pytest.raises(ValueError, match="finite"):
        minimize(sopt.rosen, np.array([np.nan, 0.0]), method="cg")
    r = minimize(sopt.rosen, np.zeros(3), method="cg", jac=sopt.rosen_der, options={"maxiter": 2})
    assert r.status == 1 and r.nit == 2 and "iterations" in r.message


def test_newton_with_hessian_vector_products_only():
    """Newton-CG path (truncated CG on H p = -g with hessp) and saddle-free from hessp columns."""
    f, g, h, x0 = logistic_breast_cancer()
    ref = scipy_min("newton", f, g, h, x0)
    res = minimize(f, x0, method="newton", jac=g, hessp=lambda w, v: h(w) @ v, options={"gtol": GTOL})
    assert res.success and abs(res.fun - ref.fun) <= 1e-8 * max(1.0, abs(ref.fun)) and res.nhev > 0
    fs, gs, hs = saddle()
    sfn = minimize(fs, np.array([0.5, 0.1]), method="saddle-free-newton", jac=gs,
                   hessp=lambda z, v: hs(z) @ v, options={"gtol": 1e-10})
    assert sfn.success and sfn.fun == pytest.approx(-0.25)
