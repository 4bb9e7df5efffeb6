"""Continuation with blurred objectives (sec. 8.7.6, eq. 8.40).

J(θ) = Σ_i ½θ_i² + a (1 − cos(b θ_i)): a global minimum f* = 0 at θ = 0 among many local minima
(near the multiples of 2π/b). Its Gaussian blur J⁽σ⁾(θ) = E_{θ′∼N(θ, σ²I)} J(θ′) (eq. 8.40) is
analytic: Σ ½(θ_i² + σ²) + a (1 − e^{−b²σ²/2} cos(b θ_i)), convex once a b² e^{−b²σ²/2} < 1.
Continuation trains on J⁽σ_k⁾ with σ_k shrinking to 0 (the series J⁽⁰⁾ … J⁽ⁿ⁾ = J of 8.7.6);
``sampled=True`` estimates the blurred gradient by one sample θ′ ∼ N(θ, σ_k² I) per step, as the
book describes. The runner evaluates the true J.
"""

from __future__ import annotations

import numpy as np

from dlbench.problems import register
from dlbench.problems.base import Problem


@register("continuation")
class Continuation(Problem):
    """Rastrigin-like J with or without continuation (``schedule="blur"`` / ``"none"``).

    σ_k = σ₀ (1 − k / anneal) for k < anneal, then 0 (a linear schedule in the spirit of
    eq. 8.14). x0(seed) = 3.2 + 0.2 N(0, 1) per coordinate: inside the basin of a local minimum
    near 2π/b·1 ≈ 3.1 (b = 2), so plain descent stops there (excess ≈ 2.4 per coordinate)
    while the blurred problem leads to the global minimum. stochastic when ``sampled``.
    """

    section = "8.7.6"
    lr_grid = tuple(float(v) for v in 10.0 ** np.arange(-2, 0.01, 0.5))
    max_iters = 2000
    rel_tol = 1e-6

    def __init__(
        self,
        n: int = 2,
        a: float = 2.0,
        b: float = 2.0,
        schedule: str = "blur",
        sigma0: float = 2.0,
        anneal: int = 500,
        sampled: bool = False,
    ):
        super().__init__(n=n, a=a, b=b, schedule=schedule, sigma0=sigma0, anneal=anneal, sampled=sampled)
        if schedule not in ("blur", "none"):
            raise ValueError(f"schedule must be 'blur' or 'none', got {schedule!r}")
        self.n, self.a, self.b = int(n), float(a), float(b)
        self.schedule, self.sigma0, self.anneal, self.sampled = (
            schedule,
            float(sigma0),
            int(anneal),
            bool(sampled),
        )
        self.stochastic = self.sampled and schedule == "blur"
        self.f_star = 0.0
        self.x_star = np.zeros(self.n)

    def sigma(self, k: int) -> float:
        """The blur σ_k of the objective trained on at iteration k."""
        if self.schedule == "none" or k >= self.anneal:
            return 0.0
        return self.sigma0 * (1.0 - k / self.anneal)

    def blurred(self, x, sigma: float) -> float:
        """J⁽σ⁾(θ), eq. 8.40 in closed form."""
        damp = np.exp(-0.5 * (self.b * sigma) ** 2)
        return float((0.5 * (x * x + sigma**2) + self.a * (1 - damp * np.cos(self.b * x))).sum())

    def blurred_grad(self, x, sigma: float):
        damp = np.exp(-0.5 * (self.b * sigma) ** 2)
        return x + self.a * self.b * damp * np.sin(self.b * x)

    def f(self, x):
        return self.blurred(x, 0.0)

    def grad(self, x):
        return self.blurred_grad(x, 0.0)

    def hess(self, x):
        return np.diag(1.0 + self.a * self.b**2 * np.cos(self.b * x))

    def train_grad(self, x, rng=None, k=0):
        s = self.sigma(k)
        if s == 0.0:
            return self.grad(x)
        if self.sampled and rng is not None:
            return self.grad(x + s * rng.standard_normal(self.n))
        return self.blurred_grad(x, s)

    def x0(self, seed):
        return 3.2 + 0.2 * np.random.default_rng(seed).standard_normal(self.n)
