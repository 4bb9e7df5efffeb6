"""The problem interface of the convergence suite, and the finite-difference gradient check.

A :class:`Problem` is a differentiable objective J(θ) over one flat float64 parameter vector θ
(data problems pack their weight arrays into it; ``unpack`` gives them back). It provides:

- ``f(θ)``: the objective J(θ) the runner evaluates (the full-batch / noise-free loss);
- ``grad(θ)``: ∇J(θ), exact; ``hess(θ)`` / ``hessp(θ, v)`` where they are cheap;
- ``train_grad(θ, rng, k)``: the training signal an optimizer sees at iteration k — a minibatch
  gradient (sec. 8.1.3), a noisy gradient (sec. 8.2.6), or the gradient of a scheduled surrogate
  (continuation, eq. 8.40; curriculum; greedy pretraining). Defaults to ``grad(θ)``;
- ``x0(seed)``: the initial point, a pure function of the seed;
- ``f_star`` (the known minimum) or ``reference_loss`` (a stated reference when the minimum is
  unknown) — excess error is J(θ) − J* (sec. 8.1.3), measured against whichever is given;
- ``stochastic`` (``train_grad`` draws from ``rng``), ``blocks`` (index groups for block
  coordinate descent, sec. 8.7.2) where declared, ``x_star`` (a known minimizer) where known.
"""

from __future__ import annotations

import math

import numpy as np


class Problem:
    """Base class: subclasses set ``n`` and implement ``f``, ``grad`` and ``x0``.

    Class attributes a subclass may override:
      stochastic: ``train_grad`` is random (minibatch or injected noise).
      rel_tol: default target, relative excess (J − J*) / (J(θ0) − J*) (when ``f_star`` is known).
      max_iters: default iteration budget; eval_every: iterations between evaluations.
      lr_grid: learning rates tried when tuning (log grid, DeepOBS protocol).
      clip_norm: gradient-norm threshold v used by the "+clip" variants (sec. 8.2.4, 10.11.1).
      blowup: divergence when J − ref exceeds blowup · (J(θ0) − ref).
    """

    name = "problem"
    section = ""  # book section, e.g. "8.2.1"
    stochastic = False
    f_star: float | None = None
    reference_loss: float | None = None
    target_loss: float | None = None  # absolute target (overrides rel_tol when set)
    rel_tol = 1e-6
    max_iters = 2000
    eval_every = 1
    lr_grid: tuple = tuple(10.0 ** np.arange(-4, 0.01, 0.5))
    clip_norm = 1.0
    blowup = 1e4
    blocks: list | None = None
    x_star: np.ndarray | None = None
    n: int = 0

    def __init__(self, **params):
        self.params = dict(params)

    # ---------------------------------------------------------------- interface
    def f(self, x: np.ndarray) -> float:
        raise NotImplementedError

    def grad(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def x0(self, seed: int) -> np.ndarray:
        raise NotImplementedError

    def f_at(self, x: np.ndarray, k: int) -> float:
        """J at iteration k: ``f(x)`` except for non-stationary problems (a moving optimum)."""
        return self.f(x)

    def train_grad(self, x: np.ndarray, rng: np.random.Generator | None = None, k: int = 0) -> np.ndarray:
        """The gradient an optimizer sees at iteration k (default: the exact gradient)."""
        return self.grad(x)

    def hess(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{self.name}: no cheap Hessian")

    def hessp(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Hessian-vector product H(x) v; defaults to ``hess(x) @ v`` when a Hessian exists."""
        return self.hess(x) @ v

    @property
    def has_hess(self) -> bool:
        return type(self).hess is not Problem.hess

    @property
    def has_hessp(self) -> bool:
        return self.has_hess or type(self).hessp is not Problem.hessp

    # ---------------------------------------------------------------- targets
    @property
    def ref(self) -> float:
        """J*: the known minimum, else the reference loss (NaN when neither is stated)."""
        if self.f_star is not None:
            return float(self.f_star)
        if self.reference_loss is not None:
            return float(self.reference_loss)
        return math.nan

    def excess(self, fval: float) -> float:
        """Excess error J(θ) − J* (sec. 8.1.3)."""
        return float(fval) - self.ref

    def target(self, f0: float, rel_tol: float | None = None) -> float:
        """Absolute loss threshold: ``target_loss`` if set, else J* + rel_tol · (J(θ0) − J*)."""
        if self.target_loss is not None and rel_tol is None:
            return float(self.target_loss)
        tol = self.rel_tol if rel_tol is None else rel_tol
        ref = self.ref
        if not math.isfinite(ref):
            raise ValueError(f"{self.name}: neither f_star nor reference_loss is known; give a target")
        return ref + tol * max(f0 - ref, 0.0)

    def describe(self) -> dict:
        """One line of metadata for listings and reports."""
        return {
            "problem": self.name,
            "section": self.section,
            "n": self.n,
            "stochastic": self.stochastic,
            "f_star": self.f_star,
            "reference_loss": self.reference_loss,
            "hessian": self.has_hess,
            "hessp": self.has_hessp,
            "blocks": len(self.blocks or []),
            "params": dict(self.params),
            "doc": (type(self).__doc__ or "").strip().split("\n")[0],
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


def check_gradient(problem: Problem, x: np.ndarray, h: float = 1e-6, n_dirs: int = 6, seed: int = 0) -> float:
    """Largest relative error of ∇J against central differences along random directions.

    For each random unit direction d: (J(x + h d) − J(x − h d)) / 2h against ∇J(x)·d. Returns
    max |fd − an| / max(|fd|, |an|, scale), scale = 1e-8 · (1 + |J(x)|) / h guarding flat spots.
    Float64 only.
    """
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=np.float64)
    g = problem.grad(x.copy())
    f0 = abs(problem.f(x.copy()))
    worst = 0.0
    for _ in range(n_dirs):
        d = rng.standard_normal(x.shape)
        d /= np.linalg.norm(d)
        fd = (problem.f(x + h * d) - problem.f(x - h * d)) / (2 * h)
        an = float(g.ravel() @ d.ravel())
        scale = max(abs(fd), abs(an), 1e-8 * (1 + f0) / h)
        worst = max(worst, abs(fd - an) / scale)
    return worst


def check_hessp(problem: Problem, x: np.ndarray, h: float = 1e-5, seed: int = 0) -> float:
    """Relative error of H(x) v against the central difference of the gradient along v."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(x.shape)
    v /= np.linalg.norm(v)
    fd = (problem.grad(x + h * v) - problem.grad(x - h * v)) / (2 * h)
    an = problem.hessp(x, v)
    return float(np.linalg.norm(fd - an) / max(np.linalg.norm(fd), np.linalg.norm(an), 1e-12))


def random_rotation(n: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-random orthogonal n × n matrix (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))
