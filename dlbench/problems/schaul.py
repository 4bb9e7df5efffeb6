"""A port of Schaul, Antonoglou & Silver (2014), "Unit tests for stochastic optimization".

Each unit test is a small problem J(θ) = Σ_i p(c_i (Qθ)_i − o_i(k)) built from a 1-D prototype
shape p, a curvature scale c, an optional rotation Q, a noise model on the gradient and an
optional non-stationarity o(k) (a drifting optimum). Prototypes (each with infimum 0):

  quadratic ½x² · abs |x| · cliff (½x², and ½x² − 10x left of 0: a wall 10× steeper) ·
  gauss 1 − e^{−x²/2} (flat tails) · laplace 1 − e^{−|x|} (cusp, flat tails) ·
  relu max(x, 0) (a ramp onto a flat minimum set) · exp e^{−x} (an asymptote, no minimizer)

Noise on the gradient (as the original's noise prototypes): additive Gaussian g + σn,
multiplicative g·e^{σn} (n ∼ N(0, 1)), additive Cauchy g + σ·Cauchy (heavy tails), mask-out
(g zeroed with probability p). Curvature scales c ∈ {flat 0.1, normal 1, steep 10}.
Non-stationarity ``"offset"``: every 10 steps the optimum moves by N(0, (0.1/c)²) per
coordinate (a deterministic path per instance); J is measured against the optimum of the
current step (``f_at``). The bank (``bank()``) spans shapes × noises × scales × drift in 1, 2
and 10 dimensions; ``dlbench.convergence.schaul_scores`` scores each optimizer continuously
against tuned SGD. The prototypes and noise models are re-implemented from the paper's
description, not copied from the original Lua code.
"""

from __future__ import annotations

import itertools

import numpy as np

from dlbench.problems import register
from dlbench.problems.base import Problem, random_rotation

SHAPES = ("quadratic", "abs", "cliff", "gauss", "laplace", "relu", "exp")
NOISES = {
    "none": 0.0,
    "gauss_add": 0.1,
    "gauss_add_high": 1.0,
    "gauss_mul": 1.0,
    "cauchy": 0.1,
    "maskout": 0.5,
}
SCALES = {"flat": 0.1, "normal": 1.0, "steep": 10.0}


def _proto(shape: str, u):
    """(p(u), p'(u)) of a prototype, elementwise."""
    if shape == "quadratic":
        return 0.5 * u * u, u
    if shape == "abs":
        return np.abs(u), np.sign(u)
    if shape == "cliff":
        left = u < 0
        return 0.5 * u * u - np.where(left, 10.0 * u, 0.0), u - np.where(left, 10.0, 0.0)
    if shape == "gauss":
        e = np.exp(-0.5 * u * u)
        return 1.0 - e, u * e
    if shape == "laplace":
        e = np.exp(-np.abs(u))
        return 1.0 - e, np.sign(u) * e
    if shape == "relu":
        return np.maximum(u, 0.0), (u > 0).astype(float)
    if shape == "exp":
        e = np.exp(-u)
        return e, -e
    raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")


@register("schaul")
class SchaulUnitTest(Problem):
    """One unit test of Schaul et al. 2014: shape × noise × curvature scale × drift × dimension.

    x0(seed): every coordinate of Qθ starts at (1 + 0.1 N(0, 1)) / c (so c(Qθ)_i ≈ 1 whatever
    the scale). f* = 0 (an infimum for "exp"). A fixed budget of ``steps`` iterations; the
    score (see ``dlbench.convergence.schaul_scores``) is the excess averaged over the last 10 %.
    """

    section = "8.3"
    max_iters = 200
    rel_tol = 1e-12
    lr_grid = tuple(float(v) for v in 10.0 ** np.arange(-4, 1.01, 0.5))

    def __init__(
        self,
        shape: str = "quadratic",
        noise: str = "none",
        scale: str = "normal",
        drift: str = "none",
        dim: int = 1,
        rotate: bool = False,
        steps: int = 200,
        instance: int = 0,
    ):
        super().__init__(
            shape=shape,
            noise=noise,
            scale=scale,
            drift=drift,
            dim=dim,
            rotate=rotate,
            steps=steps,
            instance=instance,
        )
        _proto(shape, np.zeros(1))
        if noise not in NOISES:
            raise ValueError(f"unknown noise {noise!r}; known: {', '.join(NOISES)}")
        if scale not in SCALES:
            raise ValueError(f"unknown scale {scale!r}; known: {', '.join(SCALES)}")
        if drift not in ("none", "offset"):
            raise ValueError(f"drift must be 'none' or 'offset', got {drift!r}")
        rng = np.random.default_rng(instance)
        self.shape, self.noise, self.drift = shape, noise, drift
        self.n = int(dim)
        self.c = SCALES[scale]
        self.sigma = NOISES[noise]
        self.Q = random_rotation(self.n, rng) if rotate and self.n > 1 else np.eye(self.n)
        self.max_iters = int(steps)
        self.stochastic = noise != "none"
        self.f_star = 0.0
        self.x_star = None if shape == "exp" else np.zeros(self.n)
        n_moves = self.max_iters // 10 + 2
        walk = np.cumsum(rng.standard_normal((n_moves, self.n)) * 0.1 / self.c, axis=0)
        self.path = np.vstack([np.zeros(self.n), walk]) if drift == "offset" else None

    def offset(self, k: int) -> np.ndarray:
        """The optimum's displacement o(k) at iteration k (zero without drift)."""
        if self.path is None:
            return np.zeros(self.n)
        return self.path[min(k // 10, len(self.path) - 1)]

    def _value_grad(self, x, k=0):
        z = self.Q @ x - self.offset(k)
        p, dp = _proto(self.shape, self.c * z)
        return float(p.sum()), self.Q.T @ (self.c * dp)

    def f(self, x):
        return self._value_grad(x, 0)[0]

    def f_at(self, x, k):
        return self._value_grad(x, k)[0]

    def grad(self, x):
        return self._value_grad(x, 0)[1]

    def train_grad(self, x, rng=None, k=0):
        g = self._value_grad(x, k)[1]
        if rng is None or self.noise == "none":
            return g
        s = self.sigma
        if self.noise.startswith("gauss_add"):
            return g + s * rng.standard_normal(self.n)
        if self.noise == "gauss_mul":
            return g * np.exp(s * rng.standard_normal(self.n))
        if self.noise == "cauchy":
            return g + s * rng.standard_cauchy(self.n)
        return g * (rng.uniform(size=self.n) >= s)  # mask-out

    def hess(self, x):
        if self.shape not in ("quadratic", "cliff"):
            raise NotImplementedError(f"{self.shape}: no Hessian used")
        return self.c**2 * self.Q.T @ self.Q

    @property
    def has_hess(self) -> bool:
        return self.shape in ("quadratic", "cliff")

    def x0(self, seed):
        z = (1.0 + 0.1 * np.random.default_rng(seed).standard_normal(self.n)) / self.c
        return self.Q.T @ z


def bank(
    dims=(1, 2, 10),
    shapes=SHAPES,
    noises=tuple(NOISES),
    scales=tuple(SCALES),
    drifts=("none", "offset"),
    steps: int = 200,
) -> list[dict]:
    """Parameter sets of the unit-test bank: shapes × noises × scales × drifts, per dimension.

    In 2 and 10 dimensions only the normal scale is combined with a rotation (the original's
    rotated variants), to keep the bank's size reasonable: 1-d: 7 × 6 × 3 × 2 = 252 tests,
    2-d and 10-d: 7 × 6 × 2 (rotated or not) × 2 = 168 each.
    """
    out = []
    for d in dims:
        if d == 1:
            for sh, no, sc, dr in itertools.product(shapes, noises, scales, drifts):
                out.append({"shape": sh, "noise": no, "scale": sc, "drift": dr, "dim": 1, "steps": steps})
        else:
            for sh, no, rot, dr in itertools.product(shapes, noises, (False, True), drifts):
                out.append(
                    {
                        "shape": sh,
                        "noise": no,
                        "scale": "normal",
                        "drift": dr,
                        "dim": int(d),
                        "rotate": rot,
                        "steps": steps,
                    }
                )
    return out
