"""Per-step scalar coefficients of the fused optimizer kernels, computed once in float64.

Every accelerated backend (numba, cython, numba-cuda) calls these helpers and casts the results
to the parameters' dtype, so that all of them multiply by bit-identical scalars; the NumPy
reference (``optim.py`` beside this file) computes the same quantities literally, as the book
writes them. Algebraically identical rewrites used by the fused kernels are documented here:

* Adam (Algorithm 8.7): ``eps * s_hat / (sqrt(r_hat) + delta)`` with ``s_hat = s / (1 - rho1^t)``,
  ``r_hat = r / (1 - rho2^t)`` equals ``step * s / (sqrt(r) * rbc2 + delta)`` with
  ``step = eps / (1 - rho1^t)`` and ``rbc2 = 1 / sqrt(1 - rho2^t)``: no per-element bias division.
* delta placement (Alg. 8.4 vs 8.5): ``sqrt(r + d_in) + d_out`` with one of the two zero covers
  both forms exactly (adding 0.0 is exact), so one kernel serves both.
* Nesterov in the change-of-variables form (Sutskever et al. 2013; torch's form): with
  ``v' = alpha v - eps g`` the update is ``theta += cv * v' - cg * g`` with ``(cv, cg) = (1, 0)``
  for heavy-ball momentum (Alg. 8.2) and ``(alpha, eps)`` for Nesterov (Alg. 8.3 rewritten at
  the look-ahead point), again one kernel for both.
"""

from __future__ import annotations

import math

INF = float("inf")


def grad_coeffs(wd: float = 0.0, gscale: float = 1.0, clip: float = INF) -> tuple[float, float, float]:
    """(gscale, clip, wd): the fused gradient preprocessing ``clip(gscale*g, -clip, clip) + wd*theta``.

    gscale carries clipping by global norm (8.2.4: ``g <- g v/||g||``), clip the element-wise
    clipping threshold (``inf`` = off), wd the L2 weight decay coefficient (gradient of
    ``wd/2 ||theta||^2``).
    """
    return float(gscale), float(clip), float(wd)


def momentum_coeffs(lr: float, alpha: float, nesterov: bool = False) -> tuple[float, float, float, float]:
    """(alpha, lr, cv, cg) for ``v = alpha v - lr g; theta += cv v - cg g`` (Alg. 8.2 / 8.3)."""
    if nesterov:
        return float(alpha), float(lr), float(alpha), float(lr)
    return float(alpha), float(lr), 1.0, 0.0


def eps_split(eps: float, inside: bool) -> tuple[float, float]:
    """(d_in, d_out) for ``sqrt(r + d_in) + d_out``: delta inside (Alg. 8.5) or outside (Alg. 8.4)."""
    return (float(eps), 0.0) if inside else (0.0, float(eps))


def adam_coeffs(lr: float, beta1: float, beta2: float, eps: float, t: int,
                decoupled_wd: float = 0.0) -> tuple[float, ...]:
    """(step, rbc2, b1, c1, b2, c2, eps, decay) for the fused Adam update (Alg. 8.7, step t >= 1).

    ``theta = theta * decay - step * s / (sqrt(r) * rbc2 + eps)`` with step = lr/(1 - beta1^t),
    rbc2 = 1/sqrt(1 - beta2^t) and decay = 1 - lr*decoupled_wd (AdamW, Loshchilov & Hutter 2019).
    """
    if t < 1:
        raise ValueError(f"Adam step count t must be >= 1, got {t}")
    step = lr / (1.0 - beta1 ** t)
    rbc2 = 1.0 / math.sqrt(1.0 - beta2 ** t)
    return (step, rbc2, float(beta1), 1.0 - beta1, float(beta2), 1.0 - beta2, float(eps),
            1.0 - lr * decoupled_wd)
