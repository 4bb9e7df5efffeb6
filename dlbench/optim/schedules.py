"""Learning-rate schedules epsilon_k for the first-order optimizers (sec. 8.3.1).

A schedule is a callable ``k -> epsilon_k`` of the step count k = 0, 1, 2, ... (the number of
updates done before this one). Any optimizer accepts one as ``lr``; a float is a constant rate.
SGD converges when sum_k epsilon_k = inf and sum_k epsilon_k^2 < inf (eqs. 8.12-8.13):
:class:`InverseTime` satisfies both; the others are the practical choices the book describes.
"""

from __future__ import annotations

import math
from collections.abc import Callable


class Schedule:
    """Base class: ``__call__(k)`` returns the learning rate of step k (k >= 0)."""

    def __call__(self, k: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def _positive(name: str, value: float, allow_zero: bool = False) -> float:
    value = float(value)
    if not (value >= 0 if allow_zero else value > 0) or not math.isfinite(value):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite, got {value}")
    return value


class Constant(Schedule):
    """epsilon_k = lr for every k."""

    def __init__(self, lr: float):
        self.lr = _positive("lr", lr, allow_zero=True)

    def __call__(self, k: int) -> float:
        return self.lr


class LinearDecay(Schedule):
    """Linear decay of eq. 8.14: epsilon_k = (1 - a) eps0 + a eps_tau with a = k / tau, then
    constant eps_tau for k >= tau. Default eps_tau = 1 % of eps0 (the book's advice)."""

    def __init__(self, lr0: float, tau: int, lr_tau: float | None = None):
        self.lr0 = _positive("lr0", lr0)
        if int(tau) < 1:
            raise ValueError(f"tau must be a positive number of steps, got {tau}")
        self.tau = int(tau)
        self.lr_tau = 0.01 * self.lr0 if lr_tau is None else _positive("lr_tau", lr_tau, allow_zero=True)

    def __call__(self, k: int) -> float:
        if k >= self.tau:
            return self.lr_tau
        a = k / self.tau
        return (1 - a) * self.lr0 + a * self.lr_tau


class StepDecay(Schedule):
    """epsilon_k = lr0 * gamma^floor(k / step_size) (piecewise constant)."""

    def __init__(self, lr0: float, step_size: int, gamma: float = 0.1):
        self.lr0 = _positive("lr0", lr0)
        if int(step_size) < 1:
            raise ValueError(f"step_size must be >= 1, got {step_size}")
        self.step_size = int(step_size)
        if not 0 < gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {gamma}")
        self.gamma = float(gamma)

    def __call__(self, k: int) -> float:
        return self.lr0 * self.gamma ** (k // self.step_size)


class Cosine(Schedule):
    """Cosine annealing: epsilon_k = lr_min + (lr0 - lr_min)(1 + cos(pi k / T)) / 2, then lr_min."""

    def __init__(self, lr0: float, T: int, lr_min: float = 0.0):
        self.lr0 = _positive("lr0", lr0)
        if int(T) < 1:
            raise ValueError(f"T must be >= 1, got {T}")
        self.T = int(T)
        self.lr_min = _positive("lr_min", lr_min, allow_zero=True)

    def __call__(self, k: int) -> float:
        if k >= self.T:
            return self.lr_min
        return self.lr_min + (self.lr0 - self.lr_min) * 0.5 * (1 + math.cos(math.pi * k / self.T))


class InverseTime(Schedule):
    """epsilon_k = lr0 / (1 + decay k): sum = inf, sum of squares < inf (eqs. 8.12-8.13).

    With the same ``decay`` this is torch.optim.Adagrad's ``lr_decay``.
    """

    def __init__(self, lr0: float, decay: float):
        self.lr0 = _positive("lr0", lr0)
        self.decay = _positive("decay", decay, allow_zero=True)

    def __call__(self, k: int) -> float:
        return self.lr0 / (1 + self.decay * k)


class FromCallable(Schedule):
    """Wraps a user function ``k -> epsilon_k``; each value is checked (finite, >= 0) when used."""

    def __init__(self, fn: Callable[[int], float]):
        self.fn = fn

    def __call__(self, k: int) -> float:
        lr = float(self.fn(k))
        if not (lr >= 0 and math.isfinite(lr)):
            raise ValueError(f"the learning-rate schedule gave {lr} at step {k}; it must be finite and >= 0")
        return lr


def as_schedule(lr) -> Schedule:
    """A float becomes :class:`Constant`; a Schedule stays; any other callable is wrapped."""
    if isinstance(lr, Schedule):
        return lr
    if callable(lr):
        return FromCallable(lr)
    try:
        value = float(lr)
    except (TypeError, ValueError):
        raise ValueError(f"lr must be a number or a schedule k -> lr, got {lr!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"lr must be finite and >= 0, got {lr}")
    return Constant(value)
