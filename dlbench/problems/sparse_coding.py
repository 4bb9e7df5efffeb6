"""Sparse coding by block coordinate descent (sec. 8.7.2, eq. 8.38).

J(H, W) = λ Σ_{i,j} |H_{i,j}| + Σ_{i,j} (X − H Wᵀ)²_{i,j} + (α/2) ‖W‖²_F.

The weight-decay term is not in eq. 8.38: without it J has no minimum (shrinking H and growing W
by the same factor lowers the penalty at no cost). |h| is smoothed as √(h² + μ²) − μ so that
gradients exist everywhere (μ = 1e-2 by default). J is convex in H with W fixed and in W with H
fixed: the blocks are H and W; ``block_minimize`` solves the W block exactly (ridge least
squares) and the H block by L-BFGS to tight tolerance — the alternating scheme of 8.7.2.
"""

from __future__ import annotations

import numpy as np

from dlbench.problems import register
from dlbench.problems.base import Problem


@register("sparse_coding")
class SparseCoding(Problem):
    """Sparse coding (eq. 8.38 with weight decay α on W): m examples of dimension d, k atoms.

    X = H₀ W₀ᵀ + 0.01 noise with sparse H₀ (``density``). θ = [H (m × k), W (d × k)], blocks
    [H, W]. Non-convex: the reference loss is J at a local minimum found from (H₀, W₀) by two
    block-coordinate sweeps and a joint L-BFGS polish (BCD alone creeps along the H ↔ W scale
    valley); the target is J ≤ ref + 1e-3 (J(θ0) − ref).
    x0(seed): H ~ N(0, 0.1²), W ~ N(0, 1/d).
    """

    section = "8.7.2"
    lr_grid = tuple(float(v) for v in 10.0 ** np.arange(-4, -0.99, 0.5))
    max_iters = 3000
    rel_tol = 1e-3
    eval_every = 5

    def __init__(
        self,
        m: int = 50,
        d: int = 16,
        k: int = 8,
        lam: float = 0.1,
        alpha: float = 0.1,
        mu: float = 1e-2,
        density: float = 0.3,
        instance: int = 0,
    ):
        super().__init__(m=m, d=d, k=k, lam=lam, alpha=alpha, mu=mu, density=density, instance=instance)
        rng = np.random.default_rng(instance)
        self.m, self.d, self.k = int(m), int(d), int(k)
        self.lam, self.alpha, self.mu = float(lam), float(alpha), float(mu)
        H0 = rng.standard_normal((self.m, self.k)) * (rng.uniform(size=(self.m, self.k)) < density)
        W0 = rng.standard_normal((self.d, self.k)) / np.sqrt(self.k)
        self.X = H0 @ W0.T + 0.01 * rng.standard_normal((self.m, self.d))
        self.n = self.m * self.k + self.d * self.k
        self.blocks = [np.arange(self.m * self.k), np.arange(self.m * self.k, self.n)]
        x = np.concatenate([H0.ravel(), W0.ravel()])
        for _ in range(2):
            x = self.block_minimize(self.block_minimize(x, 0), 1)
        from scipy.optimize import minimize

        res = minimize(
            lambda z: (self.f(z), self.grad(z)),
            x,
            jac=True,
            method="L-BFGS-B",
            options={"gtol": 1e-10, "ftol": 0.0, "maxiter": 20_000, "maxcor": 30},
        )
        self.x_ref = res.x
        self.reference_loss = self.f(res.x)

    def unpack(self, x):
        """(H (m × k), W (d × k)) as views of θ."""
        return x[: self.m * self.k].reshape(self.m, self.k), x[self.m * self.k :].reshape(self.d, self.k)

    def _abs(self, h):
        return np.sqrt(h * h + self.mu**2) - self.mu

    def f(self, x):
        H, W = self.unpack(x)
        r = self.X - H @ W.T
        return float(self.lam * self._abs(H).sum() + (r * r).sum() + 0.5 * self.alpha * (W * W).sum())

    def grad(self, x):
        H, W = self.unpack(x)
        r = self.X - H @ W.T
        gH = self.lam * H / np.sqrt(H * H + self.mu**2) - 2 * r @ W
        gW = -2 * r.T @ H + self.alpha * W
        return np.concatenate([gH.ravel(), gW.ravel()])

    def block_minimize(self, x, i):
        """Minimize J over block i (0: H, 1: W) with the other fixed; returns the new θ."""
        x = x.copy()
        H, W = self.unpack(x)
        if i == 1:  # ridge: W (2 HᵀH + α I) = 2 Xᵀ H
            W[...] = np.linalg.solve(2 * H.T @ H + self.alpha * np.eye(self.k), 2 * H.T @ self.X).T
            return x
        from scipy.optimize import minimize

        def fg(h):
            z = x.copy()
            z[: self.m * self.k] = h
            return self.f(z), self.grad(z)[: self.m * self.k]

        res = minimize(
            fg, H.ravel(), jac=True, method="L-BFGS-B", options={"gtol": 1e-10, "ftol": 0.0, "maxiter": 1000}
        )
        H[...] = res.x.reshape(H.shape)
        return x

    def x0(self, seed):
        rng = np.random.default_rng(seed)
        return np.concatenate(
            [
                0.1 * rng.standard_normal(self.m * self.k),
                rng.standard_normal(self.d * self.k) / np.sqrt(self.d),
            ]
        )
