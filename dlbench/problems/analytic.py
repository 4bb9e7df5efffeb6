"""Analytic test problems of sec. 8.2: ill-conditioning, saddles, cliffs, long-term dependencies,
plateaus, the wrong side of the mountain, inexact (minibatch) gradients, coupled coordinates.

Every problem here has a known minimum f* (tested at its minimizer) and a cheap Hessian or
Hessian-vector product except ``long_term``.
"""

from __future__ import annotations

import numpy as np

from dlbench.problems import register
from dlbench.problems.base import Problem, random_rotation


def _grid(lo: float, hi: float, step: float = 0.5) -> tuple:
    return tuple(float(v) for v in 10.0 ** np.arange(lo, hi + 1e-9, step))


@register("quadratic")
class Quadratic(Problem):
    """Ill-conditioned quadratic J(θ) = ½ (θ − θ*)ᵀ H (θ − θ*), cond(H) = κ (sec. 8.2.1).

    H = Q diag(λ) Qᵀ with a random rotation Q and eigenvalues in [1/κ, 1] (so that the stable
    step size, < 2/λ_max = 2, is the same for every κ), spaced evenly (``spectrum="linear"``,
    default) or log-evenly (``"log"``). A gradient step −εg changes the cost by ½ε²gᵀHg − εgᵀg
    (sec. 8.2.1): plain SGD needs O(κ) steps, momentum O(√κ), CG at most n in exact arithmetic.
    In float64, CG keeps that bound on the linear spectrum but needs ~1.6 n iterations on the
    log spectrum at κ = 1e4 (isolated large eigenvalues make the residuals lose orthogonality
    — textbook linear CG with exact steps behaves the same).
    Params: kappa (condition number), n (dimension), spectrum, instance (seed of Q and θ*).
    x0(seed) = θ* + N(0, I). f* = 0.
    """

    section = "8.2.1"
    lr_grid = _grid(-3, 0.5)

    def __init__(self, kappa: float = 100.0, n: int = 50, spectrum: str = "linear", instance: int = 0):
        super().__init__(kappa=kappa, n=n, spectrum=spectrum, instance=instance)
        if kappa < 1:
            raise ValueError(f"kappa must be >= 1, got {kappa}")
        if spectrum not in ("linear", "log"):
            raise ValueError(f"spectrum must be 'linear' or 'log', got {spectrum!r}")
        rng = np.random.default_rng(instance)
        self.n = int(n)
        self.eigenvalues = (
            np.linspace(1.0 / kappa, 1.0, self.n)
            if spectrum == "linear"
            else np.logspace(-np.log10(kappa), 0.0, self.n)
        )
        self.Q = random_rotation(self.n, rng)
        self.H = (self.Q * self.eigenvalues) @ self.Q.T
        self.H = 0.5 * (self.H + self.H.T)
        self.x_star = rng.standard_normal(self.n)
        self.f_star = 0.0
        self.max_iters = int(min(max(20 * kappa, 2000), 200_000))

    def f(self, x):
        d = x - self.x_star
        return 0.5 * float(d @ (self.H @ d))

    def grad(self, x):
        return self.H @ (x - self.x_star)

    def hess(self, x):
        return self.H.copy()

    def hessp(self, x, v):
        return self.H @ v

    def x0(self, seed):
        return self.x_star + np.random.default_rng(seed).standard_normal(self.n)


@register("rosenbrock")
class Rosenbrock(Problem):
    """Rosenbrock's banana valley J(θ) = Σ 100 (θ_{i+1} − θ_i²)² + (1 − θ_i)², f* = 0 at θ = 1.

    A curved, narrow valley: the Hessian's condition number is ~2500 at the minimum and varies
    along the valley (a non-quadratic sec. 8.2.1). x0(seed): the classic start (−1.2, 1, −1.2, ...)
    plus N(0, 0.1²).
    """

    section = "8.2.1"
    lr_grid = _grid(-5, -0.5)
    max_iters = 20_000
    rel_tol = 1e-6

    def __init__(self, n: int = 2):
        super().__init__(n=n)
        if n < 2:
            raise ValueError(f"rosenbrock needs n >= 2, got {n}")
        self.n = int(n)
        self.f_star = 0.0
        self.x_star = np.ones(self.n)

    def f(self, x):
        from scipy.optimize import rosen

        return float(rosen(x))

    def grad(self, x):
        from scipy.optimize import rosen_der

        return rosen_der(x)

    def hess(self, x):
        from scipy.optimize import rosen_hess

        return rosen_hess(x)

    def hessp(self, x, v):
        from scipy.optimize import rosen_hess_prod

        return rosen_hess_prod(x, v)

    def x0(self, seed):
        base = np.tile([-1.2, 1.0], self.n // 2 + 1)[: self.n]
        return base + 0.1 * np.random.default_rng(seed).standard_normal(self.n)


@register("saddle")
class Saddle(Problem):
    """Saddle-point escape (sec. 8.2.3): J(θ) = ¼θ₀⁴ − ½θ₀² + ½ Σ_{i≥1} λ_i θ_i².

    A saddle at θ = 0 (one negative curvature, −1), minima f* = −¼ at θ₀ = ±1, θ_{1:} = 0.
    x0(seed) starts on the saddle's ridge: θ₀ = ±escape (default 1e-6, random sign), the other
    coordinates N(0, 1) with λ_i log-spaced in [0.1, 1]. Gradient descent must amplify the tiny
    θ₀ (it grows like (1 + ε)^k); Newton's method is attracted to the saddle (Hessian provided).
    """

    section = "8.2.3"
    lr_grid = _grid(-2.5, 0.5)
    max_iters = 5000

    def __init__(self, n: int = 10, escape: float = 1e-6):
        super().__init__(n=n, escape=escape)
        self.n = int(n)
        self.escape = float(escape)
        self.lam = np.logspace(-1, 0, self.n - 1)
        self.f_star = -0.25
        self.x_star = np.zeros(self.n)
        self.x_star[0] = 1.0

    def f(self, x):
        return float(0.25 * x[0] ** 4 - 0.5 * x[0] ** 2 + 0.5 * (self.lam * x[1:] ** 2).sum())

    def grad(self, x):
        g = np.empty_like(x)
        g[0] = x[0] ** 3 - x[0]
        g[1:] = self.lam * x[1:]
        return g

    def hess(self, x):
        return np.diag(np.concatenate([[3 * x[0] ** 2 - 1.0], self.lam]))

    def hessp(self, x, v):
        return np.concatenate([[(3 * x[0] ** 2 - 1.0) * v[0]], self.lam * v[1:]])

    def x0(self, seed):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(self.n)
        x[0] = self.escape * rng.choice([-1.0, 1.0])
        return x


@register("cliff")
class Cliff(Problem):
    """A cliff from a product of weights (sec. 8.2.4, fig. 8.3): J(w) = ½ (w₁ w₂ ⋯ w_L − y)².

    Where the weights are large the product makes the wall extremely steep: one gradient step
    from it catapults the parameters far away, and since the gradient grows like |w|^(2L−1) the
    next steps blow up — unless the gradient is clipped, g ← g v / ‖g‖ when ‖g‖ > v. f* = 0 on
    the manifold ∏w = y (x_star = y^(1/L) · 1). x0(seed) = 1.3 + 0.1 N(0, 1) per weight: the
    product starts near 1.3^L, on the wall.
    """

    section = "8.2.4"
    lr_grid = _grid(-4, 0)
    max_iters = 3000
    rel_tol = 1e-6
    clip_norm = 1.0
    blowup = 1e3

    def __init__(self, n_weights: int = 8, y: float = 1.0, start: float = 1.3):
        super().__init__(n_weights=n_weights, y=y, start=start)
        self.n = int(n_weights)
        self.y, self.start = float(y), float(start)
        if self.y <= 0:
            raise ValueError("y must be > 0")
        self.f_star = 0.0
        self.x_star = np.full(self.n, self.y ** (1.0 / self.n))

    @staticmethod
    def _others(w):
        """∏_{j≠i} w_j for every i, without division (prefix and suffix products)."""
        pre = np.concatenate([[1.0], np.cumprod(w[:-1])])
        suf = np.concatenate([np.cumprod(w[::-1][:-1])[::-1], [1.0]])
        return pre * suf

    def f(self, x):
        with np.errstate(over="ignore", invalid="ignore"):
            return float(0.5 * (np.prod(x) - self.y) ** 2)

    def grad(self, x):
        with np.errstate(over="ignore", invalid="ignore"):
            return (np.prod(x) - self.y) * self._others(x)

    def hess(self, x):
        o = self._others(x)
        r = np.prod(x) - self.y
        h = np.outer(o, o)
        n = self.n
        for i in range(n):  # ∂²∏/∂w_i∂w_j = ∏_{k≠i,j} w_k
            for j in range(i + 1, n):
                m = np.prod(np.delete(x, [i, j]))
                h[i, j] += r * m
                h[j, i] += r * m
        return h

    def x0(self, seed):
        return self.start + 0.1 * np.random.default_rng(seed).standard_normal(self.n)


@register("long_term")
class LongTerm(Problem):
    """Long-term dependency (sec. 8.2.5): the state is multiplied by W, T times.

    h(t) = W h(t−1), J(W) = 1/(2m) Σ_i ‖h_i(T) − y_i‖² with h_i(0) the m columns of H0 and
    y_i = W*ᵀ h_i(0) for a random orthogonal W* (|λ| = 1, f* = 0 at W = W*). Since
    Wᵗ = V diag(λ)ᵗ V⁻¹ (eq. 8.11), eigenvalues of W off the unit circle make the loss and its
    gradient (back-propagated through the T products) explode or vanish. x0(seed) = W* + σ N / √d.
    θ = W.ravel() (row-major, d × d).
    """

    section = "8.2.5"
    lr_grid = _grid(-5, -0.5)
    max_iters = 3000
    rel_tol = 1e-6
    clip_norm = 1.0

    def __init__(self, d: int = 4, T: int = 20, m: int = 8, sigma: float = 0.3, instance: int = 0):
        super().__init__(d=d, T=T, m=m, sigma=sigma, instance=instance)
        rng = np.random.default_rng(instance)
        self.d, self.T, self.m, self.sigma = int(d), int(T), int(m), float(sigma)
        self.n = self.d * self.d
        self.W_star = random_rotation(self.d, rng)
        self.H0 = rng.standard_normal((self.d, self.m))
        self.Y = np.linalg.matrix_power(self.W_star, self.T) @ self.H0
        self.f_star = 0.0
        self.x_star = self.W_star.ravel().copy()

    def _forward(self, W):
        hs = [self.H0]
        with np.errstate(over="ignore", invalid="ignore"):
            for _ in range(self.T):
                hs.append(W @ hs[-1])
        return hs

    def f(self, x):
        hT = self._forward(x.reshape(self.d, self.d))[-1]
        with np.errstate(over="ignore", invalid="ignore"):
            return float(0.5 / self.m * ((hT - self.Y) ** 2).sum())

    def grad(self, x):
        """Back-propagation through the T multiplications (the linear case of BPTT, 10.2.2)."""
        W = x.reshape(self.d, self.d)
        hs = self._forward(W)
        with np.errstate(over="ignore", invalid="ignore"):
            delta = (hs[-1] - self.Y) / self.m
            gW = np.zeros_like(W)
            for t in range(self.T, 0, -1):
                gW += delta @ hs[t - 1].T
                delta = W.T @ delta
        return gW.ravel()

    def x0(self, seed):
        rng = np.random.default_rng(seed)
        return (self.W_star + self.sigma * rng.standard_normal((self.d, self.d)) / np.sqrt(self.d)).ravel()


@register("plateau")
class Plateau(Problem):
    """A plateau (sec. 8.2.3): J(θ) = 1 − exp(−‖θ‖² / 2s²), flat far from the minimum f* = 0 at 0.

    x0(seed) lies at radius r0 · s in a random direction, where ‖∇J‖ ≈ (r0/s) e^(−r0²/2) is tiny
    (1.8e-4 at r0 = 4.5): methods whose step does not scale with ‖g‖ cross it quickly, plain
    gradient descent crawls; near the minimum the curvature is 1/s², so a large step diverges.
    """

    section = "8.2.3"
    lr_grid = _grid(-3, 1)
    max_iters = 5000

    def __init__(self, n: int = 10, s: float = 1.0, r0: float = 4.5):
        super().__init__(n=n, s=s, r0=r0)
        self.n, self.s, self.r0 = int(n), float(s), float(r0)
        self.f_star = 0.0
        self.x_star = np.zeros(self.n)

    def f(self, x):
        return float(-np.expm1(-(x @ x) / (2 * self.s**2)))

    def grad(self, x):
        return np.exp(-(x @ x) / (2 * self.s**2)) / self.s**2 * x

    def hess(self, x):
        e = np.exp(-(x @ x) / (2 * self.s**2))
        return e * (np.eye(self.n) / self.s**2 - np.outer(x, x) / self.s**4)

    def hessp(self, x, v):
        e = np.exp(-(x @ x) / (2 * self.s**2))
        return e * (v / self.s**2 - x * (x @ v) / self.s**4)

    def x0(self, seed):
        u = np.random.default_rng(seed).standard_normal(self.n)
        return self.r0 * self.s * u / np.linalg.norm(u)


@register("wrong_side")
class WrongSide(Problem):
    """The wrong side of the mountain (sec. 8.2.7, fig. 8.4): no local minimum on the start side.

    In the first coordinate θ₀: left of the mountain top (θ₀ ≤ 0), J = 0.3 + 0.7 e^(−θ₀²/2), which
    only has an asymptote (0.3 as θ₀ → −∞); right of it, J = (1 − θ₀²/9)², with the global
    minimum f* = 0 at θ₀ = 3. The other coordinates add ½‖θ_{1:}‖². ``start="wrong"`` starts at
    θ₀ = −1 − |N(0, ½²)|: local descent slides towards the asymptote forever and never reaches the
    target (the recorded outcome: excess ≈ 0.3); ``start="right"`` starts at θ₀ = 1 + |N|.
    """

    section = "8.2.7"
    lr_grid = _grid(-2, 1)
    max_iters = 2000
    rel_tol = 1e-4

    def __init__(self, n: int = 2, start: str = "wrong"):
        super().__init__(n=n, start=start)
        if start not in ("wrong", "right"):
            raise ValueError(f"start must be 'wrong' or 'right', got {start!r}")
        self.n, self.start = int(n), start
        self.f_star = 0.0
        self.x_star = np.zeros(self.n)
        self.x_star[0] = 3.0

    @staticmethod
    def _f0(t):
        if t <= 0:
            return (
                0.3 + 0.7 * np.exp(-0.5 * t * t),
                -0.7 * t * np.exp(-0.5 * t * t),
                0.7 * (t * t - 1) * np.exp(-0.5 * t * t),
            )
        u = 1.0 - t * t / 9.0
        return u * u, -4.0 * t * u / 9.0, -4.0 / 9.0 * u + 8.0 * t * t / 81.0

    def f(self, x):
        return float(self._f0(x[0])[0] + 0.5 * (x[1:] @ x[1:]))

    def grad(self, x):
        g = x.copy()
        g[0] = self._f0(x[0])[1]
        return g

    def hess(self, x):
        h = np.eye(self.n)
        h[0, 0] = self._f0(x[0])[2]
        return h

    def x0(self, seed):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(self.n)
        x[0] = (-1.0 if self.start == "wrong" else 1.0) * (1.0 + abs(0.5 * rng.standard_normal()))
        return x


@register("noisy_quadratic")
class NoisyQuadratic(Problem):
    """Least squares with minibatch noise (sec. 8.2.6, inexact gradients; sec. 8.1.3 minibatches).

    J(θ) = 1/(2m) ‖Aθ − b‖² over m examples, A with column scales spanning √κ (so cond(H) = κ),
    b = Aθ_true + σ·noise. ``train_grad`` is the gradient on a minibatch of ``batch`` examples drawn
    with replacement (unbiased, variance ∝ 1/batch); f* is the exact least-squares minimum.
    """

    section = "8.2.6"
    stochastic = True
    lr_grid = _grid(-3, 0.5)
    max_iters = 3000
    rel_tol = 1e-2

    def __init__(
        self,
        n: int = 20,
        m: int = 1000,
        kappa: float = 100.0,
        batch: int = 10,
        noise: float = 0.5,
        instance: int = 0,
    ):
        super().__init__(n=n, m=m, kappa=kappa, batch=batch, noise=noise, instance=instance)
        rng = np.random.default_rng(instance)
        self.n, self.m, self.batch = int(n), int(m), int(batch)
        scales = np.logspace(-0.5 * np.log10(kappa), 0.0, self.n)
        self.A = rng.standard_normal((self.m, self.n)) * scales
        theta = rng.standard_normal(self.n)
        self.b = self.A @ theta + noise * rng.standard_normal(self.m)
        self.x_star = np.linalg.lstsq(self.A, self.b, rcond=None)[0]
        r = self.A @ self.x_star - self.b
        self.f_star = float(0.5 / self.m * (r @ r))
        self.H = self.A.T @ self.A / self.m

    def f(self, x):
        r = self.A @ x - self.b
        return float(0.5 / self.m * (r @ r))

    def grad(self, x):
        return self.A.T @ (self.A @ x - self.b) / self.m

    def train_grad(self, x, rng=None, k=0):
        if rng is None:
            return self.grad(x)
        idx = rng.integers(0, self.m, self.batch)
        a = self.A[idx]
        return a.T @ (a @ x - self.b[idx]) / self.batch

    def hess(self, x):
        return self.H.copy()

    def hessp(self, x, v):
        return self.H @ v

    def x0(self, seed):
        return self.x_star + np.random.default_rng(seed).standard_normal(self.n)


@register("coupled")
class Coupled(Problem):
    """The bad case for coordinate descent (sec. 8.7.2): J = (θ₀ − θ₁)² + α(θ₀² + θ₁²).

    With small α the two coordinates are strongly coupled: minimizing one at a time moves in tiny
    zig-zag steps. Blocks [[0], [1]]; f* = 0 at θ = 0; x0(seed) = N(0, I) + (3, −3)... shifted
    off the diagonal.
    """

    section = "8.7.2"
    lr_grid = _grid(-3, 0)
    max_iters = 5000

    def __init__(self, alpha: float = 0.01):
        super().__init__(alpha=alpha)
        self.alpha = float(alpha)
        self.n = 2
        self.f_star = 0.0
        self.x_star = np.zeros(2)
        self.blocks = [np.array([0]), np.array([1])]
        self.H = np.array([[2 + 2 * self.alpha, -2.0], [-2.0, 2 + 2 * self.alpha]])

    def f(self, x):
        return float((x[0] - x[1]) ** 2 + self.alpha * (x @ x))

    def grad(self, x):
        return self.H @ x

    def hess(self, x):
        return self.H.copy()

    def block_minimize(self, x, i):
        """Exact minimization over block i, the others fixed: θ_i = θ_j / (1 + α)."""
        x = x.copy()
        x[i] = x[1 - i] / (1 + self.alpha)
        return x

    def x0(self, seed):
        return np.array([3.0, -3.0]) + np.random.default_rng(seed).standard_normal(2)
