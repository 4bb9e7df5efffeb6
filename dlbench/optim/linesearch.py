"""Strong-Wolfe line search (Nocedal & Wright 2006, Algorithms 3.5-3.6) for sec. 8.6 methods.

Finds a step epsilon along a descent direction d with
    J(x + eps d) <= J(x) + c1 eps g.d            (sufficient decrease)
    |grad J(x + eps d) . d| <= c2 |g.d|           (strong curvature condition)
by bracketing then zooming with safeguarded cubic interpolation. On a quadratic objective the
cubic interpolant through two points with their slopes is the objective itself, so one
interpolated step lands on the exact minimizer along d (eps* = argmin J(x + eps d), the
analytic line search of Alg. 8.9); ``refine=True`` then takes one secant step on the slope,
a * phi'(0) / (phi'(0) - phi'(a)) (also exact on a quadratic, and free of the cancellation in
J's values), which is what makes nonlinear CG finish a k-dimensional quadratic in k iterations.
Near convergence, where J's round-off exceeds the decrease, the approximate Wolfe conditions of
Hager & Zhang (2005) replace Armijo's test.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class LineSearchResult:
    ok: bool
    alpha: float
    f: float
    g: np.ndarray | None
    nfev: int
    message: str = ""


def cubic_min(a0: float, f0: float, d0: float, a1: float, f1: float, d1: float) -> float | None:
    """Minimizer of the cubic with values f0, f1 and slopes d0, d1 at a0, a1 (N&W eq. 3.59).

    None when the cubic has no real minimizer (the caller falls back to bisection).
    """
    if a0 == a1:
        return None
    e1 = d0 + d1 - 3.0 * (f0 - f1) / (a0 - a1)
    disc = e1 * e1 - d0 * d1
    if not disc >= 0 or not math.isfinite(disc):
        return None
    e2 = math.copysign(math.sqrt(disc), a1 - a0)
    den = d1 - d0 + 2.0 * e2
    if den == 0 or not math.isfinite(den):
        return None
    a = a1 - (a1 - a0) * (d1 + e2 - e1) / den
    return a if math.isfinite(a) else None


def strong_wolfe(fg: Callable[[np.ndarray], tuple[float, np.ndarray]], x: np.ndarray, d: np.ndarray,
                 f0: float, g0: np.ndarray, alpha1: float = 1.0, c1: float = 1e-4, c2: float = 0.9,
                 alpha_max: float = 1e10, maxiter: int = 40, refine: bool = False) -> LineSearchResult:
    """Strong-Wolfe step along ``d`` from ``x`` (f0 = J(x), g0 = grad J(x)); fg(z) -> (J(z), grad J(z)).

    Returns a LineSearchResult; ok=False when d is not a descent direction or no acceptable
    step was found in ``maxiter`` evaluations (then alpha/f/g are the best point seen, if any).
    """
    dphi0 = float(g0 @ d)
    nfev = 0
    if not dphi0 < 0:
        return LineSearchResult(False, 0.0, f0, g0, 0, "not a descent direction")
    best = (0.0, f0, g0)
    eps_f = 1e-10 * abs(f0)

    def phi(a):
        nonlocal nfev, best
        nfev += 1
        f, g = fg(x + a * d)
        f = float(f)
        if math.isfinite(f) and f < best[1]:
            best = (a, f, g)
        return f, g, (float(g @ d) if math.isfinite(f) else math.nan)

    def sufficient(a, f, dphi):
        """Armijo, or its approximate form (Hager & Zhang 2005) where J's round-off hides the decrease:
        J within eps_f of J(x) and the slope already flattened to the curvature condition."""
        return f <= f0 + c1 * a * dphi0 or (f <= f0 + eps_f and dphi <= (2 * c1 - 1) * dphi0)

    def finish(a, f, g, dphi):
        if refine and abs(dphi) > 1e-12 * abs(dphi0) and dphi != dphi0:
            a_s = a * dphi0 / (dphi0 - dphi)        # secant on the slope: exact on a quadratic
            if math.isfinite(a_s) and a_s > 0 and abs(a_s - a) > 1e-12 * a:
                f_s, g_s, d_s = phi(a_s)
                if math.isfinite(f_s) and abs(d_s) < abs(dphi) and sufficient(a_s, f_s, d_s):
                    return LineSearchResult(True, a_s, f_s, g_s, nfev)
        return LineSearchResult(True, a, f, g, nfev)

    def zoom(lo, hi, f_lo, f_hi, d_lo, d_hi):
        """N&W Alg. 3.6: lo satisfies sufficient decrease with the lowest J so far, d_lo (hi - lo) < 0.

        Trial points: the slope secant when the bracket's slopes differ in sign (exact on a
        quadratic), else the cubic; clamped 0.1 % inside the bracket; a bisection whenever two
        trials in a row failed to halve the bracket (regula-falsi stalls).
        """
        widths = [abs(hi - lo)]
        for _ in range(maxiter):
            width = hi - lo
            if abs(width) <= 1e-16 * max(1.0, abs(lo)):
                break
            if d_lo * d_hi < 0 and math.isfinite(d_hi):
                a = lo - d_lo * width / (d_hi - d_lo)     # secant on the slope (exact on quadratics)
            else:
                a = cubic_min(lo, f_lo, d_lo, hi, f_hi, d_hi) if math.isfinite(f_hi) else None
            lo_b, hi_b = min(lo, hi), max(lo, hi)
            margin = 1e-3 * abs(width)
            if a is None or not math.isfinite(a) or (len(widths) >= 3 and abs(width) > 0.5 * widths[-3]):
                a = lo + 0.5 * width
            a = min(max(a, lo_b + margin), hi_b - margin)
            f, g, dphi = phi(a)
            if not math.isfinite(f) or not sufficient(a, f, dphi) or f > f_lo + eps_f:
                hi, f_hi, d_hi = a, f, dphi
            else:
                if abs(dphi) <= -c2 * dphi0:
                    return finish(a, f, g, dphi)
                if dphi * (hi - lo) >= 0:
                    hi, f_hi, d_hi = lo, f_lo, d_lo
                lo, f_lo, d_lo = a, f, dphi
            widths.append(abs(hi - lo))
        a, f, g = best
        return LineSearchResult(False, a, f, g, nfev, "zoom did not satisfy the strong Wolfe conditions")

    a_prev, f_prev, d_prev = 0.0, f0, dphi0
    a = min(float(alpha1), alpha_max)
    for i in range(maxiter):
        f, g, dphi = phi(a)
        if not math.isfinite(f) or not sufficient(a, f, dphi) or (i > 0 and f > f_prev + eps_f):
            return zoom(a_prev, a, f_prev, f, d_prev, dphi)
        if abs(dphi) <= -c2 * dphi0:
            return finish(a, f, g, dphi)
        if dphi >= 0:
            return zoom(a, a_prev, f, f_prev, dphi, d_prev)
        if a >= alpha_max:
            break
        a_prev, f_prev, d_prev = a, f, dphi
        a = min(4.0 * a, alpha_max)
    a, f, g = best
    return LineSearchResult(False, a, f, g, nfev, "no strong-Wolfe step found")
