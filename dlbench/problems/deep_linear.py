"""Deep linear chain with and without batch normalization (sec. 8.7.1).

ŷ = x W₁ W₂ ⋯ W_L (width d; d = 1 is the book's chain of scalars ŷ = x w₁ w₂ ⋯ w_l). The
first-order update of one layer assumes the others stay fixed, but they all move at once: a
step changes ŷ by terms of order ε^L, and the curvature of J in w_i scales with ∏_{j≠i} w_j².
Batch normalization (eq. 8.35-8.37) after each layer, h_i = γ_i (z_i − μ_i)/σ_i + β_i with
z_i = h_{i−1} W_i, makes the statistics of every layer depend only on (γ_i, β_i): in a linear
chain the earlier weights then only set signs, and learning reduces to the last layer's γ, β.
"""

from __future__ import annotations

import numpy as np

from dlbench.problems import register
from dlbench.problems.base import Problem


def bn_forward(z, gamma, beta, eps):
    """Batch normalization over the rows of z (eq. 8.35-8.37): returns (γ ẑ + β, (ẑ, 1/σ)).

    A local NumPy copy of ``dlbench.ops.batch_norm`` (tested equal to it): the front-end's
    argument checks cost more than the arithmetic at these sizes, and every iteration calls it.
    """
    mean = z.mean(0)
    invstd = 1.0 / np.sqrt(eps + ((z - mean) ** 2).mean(0))
    zhat = (z - mean) * invstd
    return gamma * zhat + beta, (zhat, invstd)


def bn_backward(dy, gamma, stats):
    """Gradients of :func:`bn_forward` through μ and σ: (dz, dγ, dβ)."""
    zhat, invstd = stats
    m = dy.shape[0]
    dgamma, dbeta = (dy * zhat).sum(0), dy.sum(0)
    dz = gamma * invstd / m * (m * dy - dbeta - zhat * dgamma)
    return dz, dgamma, dbeta


@register("deep_linear")
class DeepLinear(Problem):
    """Deep linear chain ŷ = x W₁⋯W_L, optionally batch-normalized after every layer (8.7.1).

    Data: m inputs x ~ N(0, I_d) (centred), targets y = x A + 0.1 noise (centred); J = 1/(2m)
    ‖ŷ − y‖². Both models can represent the least-squares fit, so f* is that fit's loss.
    θ = [W₁, …, W_L] (+ [γ₁, β₁, …, γ_L, β_L] with batch_norm), blocks = one per layer.
    x0(seed): W_i = scale · (I + 0.1 N(0, 1)) — a small scale (default 0.6) puts the chain on the
    plateau of a vanishing product; γ = 1, β = 0 (sec. 8.4: precision-like parameters start at 1).
    """

    section = "8.7.1"
    lr_grid = tuple(float(v) for v in 10.0 ** np.arange(-3, 0.51, 0.5))
    max_iters = 3000
    rel_tol = 1e-4
    eps = 1e-8

    def __init__(
        self,
        depth: int = 8,
        width: int = 1,
        batch_norm: bool = False,
        m: int = 128,
        scale: float = 0.6,
        instance: int = 0,
    ):
        super().__init__(depth=depth, width=width, batch_norm=batch_norm, m=m, scale=scale, instance=instance)
        rng = np.random.default_rng(instance)
        self.L, self.d, self.bn, self.m, self.scale = (
            int(depth),
            int(width),
            bool(batch_norm),
            int(m),
            float(scale),
        )
        x = rng.standard_normal((self.m, self.d))
        self.X = x - x.mean(0)
        self.A = 2.0 * np.eye(self.d) + 0.5 * rng.standard_normal((self.d, self.d))
        y = self.X @ self.A + 0.1 * rng.standard_normal((self.m, self.d))
        self.Y = y - y.mean(0)
        fit = np.linalg.lstsq(self.X, self.Y, rcond=None)[0]
        self.f_star = float(0.5 / self.m * ((self.X @ fit - self.Y) ** 2).sum())
        nw = self.L * self.d * self.d
        self.n = nw + (2 * self.L * self.d if self.bn else 0)
        self.blocks = []
        for i in range(self.L):
            idx = list(range(i * self.d * self.d, (i + 1) * self.d * self.d))
            if self.bn:
                idx += list(range(nw + 2 * i * self.d, nw + 2 * (i + 1) * self.d))
            self.blocks.append(np.array(idx))
        self.x_star = self._minimizer(fit)

    def _minimizer(self, fit):
        """A θ attaining f*: W₁ = fit, other W = I; with BN, the last layer rescales (γ_L = σ_z)."""
        x = np.zeros(self.n)
        Ws, gs, bs = self.unpack(x)
        for W in Ws:
            W[...] = np.eye(self.d)
        if not self.bn:
            Ws[0][...] = fit
            return x
        for gm in gs:
            gm[...] = 1.0
        sx = np.sqrt(self.eps + (self.X**2).mean(0))
        h = self.X / sx
        for _ in range(self.L - 1):  # standardizing a standardized input leaves it (almost) alone
            h = h / np.sqrt(self.eps + (h**2).mean(0))
        Ws[-1][...] = np.linalg.lstsq(h, self.X @ fit, rcond=None)[0]
        z = h @ Ws[-1]
        gs[-1][...] = np.sqrt(self.eps + (z**2).mean(0))
        return x

    def unpack(self, x):
        """(list of W_i (d × d), list of γ_i, list of β_i) as views of θ."""
        d, L = self.d, self.L
        nw = L * d * d
        Ws = [x[i * d * d : (i + 1) * d * d].reshape(d, d) for i in range(L)]
        if not self.bn:
            return Ws, [], []
        gs = [x[nw + 2 * i * d : nw + 2 * i * d + d] for i in range(L)]
        bs = [x[nw + 2 * i * d + d : nw + 2 * (i + 1) * d] for i in range(L)]
        return Ws, gs, bs

    def _forward(self, x):
        Ws, gs, bs = self.unpack(x)
        h = self.X
        cache = []
        for i in range(self.L):
            z = h @ Ws[i]
            if self.bn:
                hn, st = bn_forward(z, gs[i], bs[i], self.eps)
            else:
                hn, st = z, None
            cache.append((h, z, st))
            h = hn
        return h, cache

    def f(self, x):
        with np.errstate(over="ignore", invalid="ignore"):
            yhat, _ = self._forward(x)
            return float(0.5 / self.m * ((yhat - self.Y) ** 2).sum())

    def grad(self, x):
        Ws, gs, bs = self.unpack(x)
        g = np.zeros_like(x)
        gW, gg, gb = self.unpack(g)
        with np.errstate(over="ignore", invalid="ignore"):
            yhat, cache = self._forward(x)
            dh = (yhat - self.Y) / self.m
            for i in range(self.L - 1, -1, -1):
                h_prev, z, st = cache[i]
                if self.bn:
                    dz, dgam, dbet = bn_backward(dh, gs[i], st)
                    gg[i][...] = dgam
                    gb[i][...] = dbet
                else:
                    dz = dh
                gW[i][...] = h_prev.T @ dz
                dh = dz @ Ws[i].T
        return g

    def x0(self, seed):
        rng = np.random.default_rng(seed)
        x = np.zeros(self.n)
        Ws, gs, bs = self.unpack(x)
        for W in Ws:
            W[...] = self.scale * (np.eye(self.d) + 0.1 * rng.standard_normal((self.d, self.d)))
        for gm in gs:
            gm[...] = 1.0
        return x
