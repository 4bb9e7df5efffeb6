"""Second-order and line-search methods of sec. 8.6-8.7 behind a scipy-compatible ``minimize``.

    res = minimize(fun, x0, method="bfgs", jac=grad)     # scipy.optimize.OptimizeResult
    res.x, res.fun, res.jac, res.nit, res.nfev, res.njev, res.success, res.message

Methods (``method=``, case-insensitive):

* ``"newton"`` -- Newton's method, Algorithm 8.8 / eq. 8.27, with Levenberg-Marquardt damping
  (eq. 8.28): the step solves (H + lambda I) p = -g. ``damping`` is the initial lambda (0:
  the pure Newton step, so a quadratic is solved in one step); with ``adaptive=True`` a step
  that does not lower J is rejected and lambda grows tenfold, an accepted one shrinks it
  tenfold. ``saddle_free=True`` (or ``method="saddle-free-newton"``) uses |H| = V |Lambda| V^T from
  the eigendecomposition (Dauphin et al. 2014): a negative-curvature direction is followed
  downhill instead of towards the saddle (8.2.3). H from ``hess``; else from ``hessp``
  (truncated CG, or by columns for saddle-free); else by differences of ``jac``.
* ``"cg"`` -- nonlinear conjugate gradients, Algorithm 8.9: d_t = -g_t + beta_t d_{t-1} (eq. 8.29)
  with Fletcher-Reeves (eq. 8.30, ``beta="fr"``), Polak-Ribiere (eq. 8.31, ``"pr"``) or PR+
  (``"pr+"``, max(beta_PR, 0), the default), restarts (beta = 0) every ``restart`` iterations
  (default n) and when successive gradients lose orthogonality (Powell: |g_t.g_{t-1}| >=
  0.2 |g_t|^2), and a strong-Wolfe line search (c2 = 0.1) that is exact on quadratics.
* ``"bfgs"`` -- BFGS (8.6.3): M_t approximates H^-1 by rank-two updates; direction -M_t g_t;
  strong-Wolfe line search (eq. 8.33); M_0 = I (``scale_init=True``: y.s / y.y I after the
  first step, N&W eq. 6.20).
* ``"lbfgs"`` -- L-BFGS: the two-loop recursion over the last ``m`` (s, y) pairs (default 10).
* ``"bcd"`` -- block coordinate descent (8.7.2): cycles over ``blocks`` (index arrays; taken from
  the problem object when ``fun`` is a bound method of one that declares ``blocks``) minimizing
  J over one block with the others fixed: exactly with ``block_minimize(x, i)`` when given (or
  declared by the problem), else by L-BFGS on the block.

Common options: ``gtol`` (stop when max|g_i| <= gtol; default 1e-5 as scipy), ``maxiter``,
``ftol`` (also stop when the relative decrease of J falls below it; default 0 = off),
``disp``. ``jac=True`` means ``fun`` returns (J, grad); ``jac=None`` or ``"2-point"`` uses forward
differences, ``"3-point"`` central differences.
``callback(xk)`` runs after each iteration; raising StopIteration in it ends the run.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.optimize import OptimizeResult

from dlbench.optim.linesearch import strong_wolfe

METHODS = ("newton", "saddle-free-newton", "cg", "bfgs", "lbfgs", "bcd")
_ALIASES = {"newton": "newton", "newton-lm": "newton", "lm": "newton",
            "saddle-free-newton": "saddle-free-newton", "saddle-free": "saddle-free-newton",
            "sfn": "saddle-free-newton", "cg": "cg", "nonlinear-cg": "cg", "bfgs": "bfgs",
            "lbfgs": "lbfgs", "l-bfgs": "lbfgs", "bcd": "bcd", "block-cd": "bcd",
            "coordinate-descent": "bcd"}
_EPS = np.finfo(np.float64).eps


class _Stop(Exception):
    pass


class _Objective:
    """Counts evaluations and supplies (f, g) from fun/jac (finite differences when jac is None)."""

    def __init__(self, fun, jac, args):
        if not (jac is None or jac is True or callable(jac) or jac in ("2-point", "3-point")):
            raise ValueError(f"jac must be a callable, True, None, '2-point' or '3-point', got {jac!r}")
        self.fun, self.jac, self.args = fun, jac, tuple(args)
        self.nfev = self.njev = self.nhev = 0

    def f(self, x) -> float:
        self.nfev += 1
        if self.jac is True:
            return float(self.fun(x, *self.args)[0])
        return float(self.fun(x, *self.args))

    def fg(self, x):
        if self.jac is True:
            self.nfev += 1
            self.njev += 1
            f, g = self.fun(x, *self.args)
            return float(f), np.asarray(g, dtype=np.float64).reshape(-1).copy()
        f = self.f(x)
        return f, self.grad(x, f)

    def grad(self, x, f=None):
        if self.jac is True:
            return self.fg(x)[1]
        if callable(self.jac):
            self.njev += 1
            return np.asarray(self.jac(x, *self.args), dtype=np.float64).reshape(-1).copy()
        g = np.empty_like(x)
        if self.jac == "3-point":                     # central differences, O(h^2)
            h = _EPS ** (1 / 3) * np.maximum(1.0, np.abs(x))
            for i in range(x.size):
                e = x.copy()
                e[i] += h[i]
                fp = self.f(e)
                e[i] -= 2 * h[i]
                g[i] = (fp - self.f(e)) / (2 * h[i])
            return g
        f = self.f(x) if f is None else f             # forward differences (scipy's 2-point rule)
        h = math.sqrt(_EPS) * np.maximum(1.0, np.abs(x))
        for i in range(x.size):
            e = x.copy()
            e[i] += h[i]
            g[i] = (self.f(e) - f) / h[i]
        return g


def _result(x, f, g, nit, obj, status, message, **extra) -> OptimizeResult:
    return OptimizeResult(x=x, fun=f, jac=g, nit=nit, nfev=obj.nfev, njev=obj.njev, nhev=obj.nhev,
                          status=status, success=status == 0, message=message, **extra)


def _gnorm(g) -> float:
    return float(np.max(np.abs(g))) if g.size else 0.0


def _callback(callback, x):
    if callback is None:
        return
    try:
        callback(np.copy(x))
    except StopIteration:
        raise _Stop from None


MSG_OK = "Optimization terminated successfully (max |g_i| <= gtol)."
MSG_MAXITER = "Maximum number of iterations has been exceeded."
MSG_LS = "Desired error not necessarily achieved due to precision loss (line search failed)."
MSG_CB = "Stopped by the callback."
MSG_FTOL = "Optimization terminated: relative reduction of f <= ftol."


def _first_alpha(g) -> float:
    return min(1.0, 1.0 / max(float(np.linalg.norm(g)), 1e-300))


def _next_alpha(f_old, f, g, Hinv) -> float:
    """Initial trial step: 1 (the quasi-Newton step), shortened to the minimizer of the quadratic
    through the last decrease, 1.01 * 2 (f - f_old) / phi'(0) (N&W eq. 3.60; scipy's rule)."""
    dphi = -float(g @ Hinv @ g)
    if dphi < 0 and f_old > f:
        return min(1.0, 1.01 * 2.0 * (f - f_old) / dphi)
    return 1.0


# ------------------------------------------------------------------------------ quasi-Newton
def _bfgs(obj, x, callback, gtol, maxiter, ftol, scale_init=False, **_):
    n = x.size
    f, g = obj.fg(x)
    Hinv = np.eye(n)
    scaled = not scale_init
    nit, status, msg = 0, 1, MSG_MAXITER
    alpha0 = _first_alpha(g)
    restarted = False
    try:
        while nit < maxiter:
            if _gnorm(g) <= gtol:
                status, msg = 0, MSG_OK
                break
            d = -Hinv @ g
            ls = strong_wolfe(obj.fg, x, d, f, g, alpha1=alpha0, c1=1e-4, c2=0.9)
            if not ls.ok and nit > 0 and not restarted:     # restart from the identity once
                Hinv = np.eye(n)
                restarted = True
                d = -g
                ls = strong_wolfe(obj.fg, x, d, f, g, alpha1=_first_alpha(g), c1=1e-4, c2=0.9)
            if not ls.ok:
                status, msg = 2, MSG_LS
                break
            s = ls.alpha * d
            x_new, f_new, g_new = x + s, ls.f, ls.g
            y = g_new - g
            sy = float(s @ y)
            if sy > 1e-10 * float(np.linalg.norm(s)) * float(np.linalg.norm(y)):
                if not scaled:                 # N&W eq. 6.20 (option scale_init)
                    Hinv = np.eye(n) * (sy / float(y @ y))
                    scaled = True
                rho = 1.0 / sy
                Hy = Hinv @ y
                Hinv += (rho * rho * float(y @ Hy) + rho) * np.outer(s, s) - rho * (np.outer(Hy, s)
                                                                                    + np.outer(s, Hy))
            f_old, x, f, g = f, x_new, f_new, g_new
            nit += 1
            alpha0 = _next_alpha(f_old, f, g, Hinv)
            _callback(callback, x)
            if ftol and (f_old - f) <= ftol * max(abs(f_old), abs(f), 1.0):
                status, msg = (0, MSG_FTOL)
                break
        else:
            if _gnorm(g) <= gtol:
                status, msg = 0, MSG_OK
    except _Stop:
        status, msg = 99, MSG_CB
    return _result(x, f, g, nit, obj, status, msg, hess_inv=Hinv)


def _two_loop(g, S, Y, gamma):
    """L-BFGS two-loop recursion: returns M g with M the L-BFGS inverse-Hessian approximation."""
    q = g.copy()
    rhos = [1.0 / float(y @ s) for s, y in zip(S, Y)]
    alphas = []
    for s, y, rho in zip(reversed(S), reversed(Y), reversed(rhos)):
        a = rho * float(s @ q)
        alphas.append(a)
        q -= a * y
    r = gamma * q
    for (s, y, rho), a in zip(zip(S, Y, rhos), reversed(alphas)):
        b = rho * float(y @ r)
        r += (a - b) * s
    return r


def _lbfgs(obj, x, callback, gtol, maxiter, ftol, m=10, **_):
    if int(m) < 1:
        raise ValueError(f"L-BFGS history m must be >= 1, got {m}")
    m = int(m)
    f, g = obj.fg(x)
    S, Y = [], []
    gamma = 1.0
    nit, status, msg = 0, 1, MSG_MAXITER
    alpha0 = _first_alpha(g)
    try:
        while nit < maxiter:
            if _gnorm(g) <= gtol:
                status, msg = 0, MSG_OK
                break
            d = -_two_loop(g, S, Y, gamma)
            ls = strong_wolfe(obj.fg, x, d, f, g, alpha1=alpha0, c1=1e-4, c2=0.9)
            if not ls.ok and S:                 # drop the history once and retry along -g
                S, Y, gamma = [], [], 1.0
                d = -g
                ls = strong_wolfe(obj.fg, x, d, f, g, alpha1=_first_alpha(g), c1=1e-4, c2=0.9)
            if not ls.ok:
                status, msg = 2, MSG_LS
                break
            s = ls.alpha * d
            y = ls.g - g
            sy = float(s @ y)
            if sy > 1e-10 * float(np.linalg.norm(s)) * float(np.linalg.norm(y)):
                S.append(s)
                Y.append(y)
                if len(S) > m:
                    S.pop(0)
                    Y.pop(0)
                gamma = sy / float(y @ y)
            f_old, x, f, g = f, x + s, ls.f, ls.g
            nit += 1
            alpha0 = 1.0
            _callback(callback, x)
            if ftol and (f_old - f) <= ftol * max(abs(f_old), abs(f), 1.0):
                status, msg = 0, MSG_FTOL
                break
        else:
            if _gnorm(g) <= gtol:
                status, msg = 0, MSG_OK
    except _Stop:
        status, msg = 99, MSG_CB
    return _result(x, f, g, nit, obj, status, msg)


# ------------------------------------------------------------------------------ conjugate gradients
def _cg(obj, x, callback, gtol, maxiter, ftol, beta="pr+", restart=None, **_):
    beta = str(beta).lower()
    if beta not in ("fr", "pr", "pr+"):
        raise ValueError(f"beta must be 'fr' (eq. 8.30), 'pr' (eq. 8.31) or 'pr+', got {beta!r}")
    n = x.size
    restart = n if restart is None else int(restart)
    f, g = obj.fg(x)
    d = -g
    gg = float(g @ g)
    nit, status, msg = 0, 1, MSG_MAXITER
    alpha0 = _first_alpha(g)
    since_restart = 0
    nrestarts = 0
    try:
        while nit < maxiter:
            if _gnorm(g) <= gtol:
                status, msg = 0, MSG_OK
                break
            ls = strong_wolfe(obj.fg, x, d, f, g, alpha1=alpha0, c1=1e-4, c2=0.1, refine=True)
            if not ls.ok and since_restart > 0:      # restart along the steepest descent
                d = -g
                since_restart = 0
                nrestarts += 1
                ls = strong_wolfe(obj.fg, x, d, f, g, alpha1=_first_alpha(g), c1=1e-4, c2=0.1,
                                  refine=True)
            if not ls.ok:
                status, msg = 2, MSG_LS
                break
            dg_old = float(g @ d)
            x_new, f_new, g_new = x + ls.alpha * d, ls.f, ls.g
            gg_new = float(g_new @ g_new)
            since_restart += 1
            if since_restart >= restart or abs(float(g_new @ g)) >= 0.2 * gg_new:
                b = 0.0                                   # restart (Powell's test, or every n steps)
            elif beta == "fr":
                b = gg_new / gg                           # eq. 8.30
            else:
                b = float((g_new - g) @ g_new) / gg       # eq. 8.31
                if beta == "pr+":
                    b = max(b, 0.0)
            if b == 0.0:
                since_restart = 0
                nrestarts += 1
            d_new = -g_new + b * d
            if not float(g_new @ d_new) < 0:              # not a descent direction: restart
                d_new = -g_new
                since_restart = 0
                nrestarts += 1
            # initial step of the next search: N&W eq. 3.60
            alpha0 = min(1.0, ls.alpha * dg_old / float(g_new @ d_new)) if float(g_new @ d_new) else 1.0
            f_old = f
            x, f, g, gg, d = x_new, f_new, g_new, gg_new, d_new
            nit += 1
            _callback(callback, x)
            if ftol and (f_old - f) <= ftol * max(abs(f_old), abs(f), 1.0):
                status, msg = 0, MSG_FTOL
                break
        else:
            if _gnorm(g) <= gtol:
                status, msg = 0, MSG_OK
    except _Stop:
        status, msg = 99, MSG_CB
    return _result(x, f, g, nit, obj, status, msg, nrestarts=nrestarts)


# ------------------------------------------------------------------------------ Newton
def _fd_hessian(obj, x, g):
    n = x.size
    H = np.empty((n, n))
    h = math.sqrt(_EPS) * np.maximum(1.0, np.abs(x))
    for i in range(n):
        e = x.copy()
        e[i] += h[i]
        H[:, i] = (obj.grad(e) - g) / h[i]
    return 0.5 * (H + H.T)


def _cg_solve(matvec, b, tol, maxiter):
    """Truncated CG for A p = b (A = H + lambda I via matvec); stops at negative curvature."""
    p = np.zeros_like(b)
    r = b.copy()
    d = r.copy()
    rr = float(r @ r)
    bnorm = math.sqrt(rr)
    for k in range(maxiter):
        Ad = matvec(d)
        dAd = float(d @ Ad)
        if dAd <= 0:
            return (d if k == 0 else p), True
        a = rr / dAd
        p += a * d
        r -= a * Ad
        rr_new = float(r @ r)
        if math.sqrt(rr_new) <= tol * bnorm:
            break
        d = r + (rr_new / rr) * d
        rr = rr_new
    return p, False


def _newton(obj, x, callback, gtol, maxiter, ftol, hess=None, hessp=None, args=(), damping=0.0,
            adaptive=True, saddle_free=False, max_damping=1e12, **_):
    """Newton / Levenberg-Marquardt (eq. 8.27-8.28), optionally saddle-free (|H|).

    Damping update (Nielsen 1999): after a step with gain ratio rho = actual / predicted decrease
    > 0, lambda <- lambda max(1/3, 1 - (2 rho - 1)^3); after a rejected step lambda <- nu lambda,
    nu <- 2 nu (lambda = 1e-3 max|H_ii| when it was 0). lambda = 0 stays 0 while steps succeed.
    """
    lam = float(damping)
    if lam < 0:
        raise ValueError(f"damping must be >= 0, got {damping}")
    n = x.size
    f, g = obj.fg(x)
    nu = 2.0
    nit, status, msg = 0, 1, MSG_MAXITER
    nrejected = 0

    def hessian(z, gz):
        if hess is not None:
            obj.nhev += 1
            return np.atleast_2d(np.asarray(hess(z, *args), dtype=np.float64))
        if hessp is not None:
            cols = []
            for i in range(n):
                e = np.zeros(n)
                e[i] = 1.0
                obj.nhev += 1
                cols.append(np.asarray(hessp(z, e, *args), dtype=np.float64))
            H = np.column_stack(cols)
            return 0.5 * (H + H.T)
        return _fd_hessian(obj, z, gz)

    def hvp(z, v):
        obj.nhev += 1
        return np.asarray(hessp(z, v, *args), dtype=np.float64)

    use_cg = hess is None and hessp is not None and not saddle_free
    try:
        while nit < maxiter:
            if _gnorm(g) <= gtol:
                status, msg = 0, MSG_OK
                break
            if use_cg:
                H = None
                scale = _gnorm(g)
            else:
                H = hessian(x, g)
                scale = float(np.max(np.abs(np.diag(H)))) if n else 1.0
                if saddle_free:
                    w, V = np.linalg.eigh(H)
                    Vg = V.T @ g
            while True:                                  # damped steps until J decreases
                p = None
                if use_cg:
                    def matvec(v, _x=x, _lam=lam):
                        return hvp(_x, v) + _lam * v
                    p, neg = _cg_solve(matvec, -g, tol=min(0.5, math.sqrt(_gnorm(g))), maxiter=2 * n)
                    if neg and float(p @ g) > 0:
                        p = -p
                elif saddle_free:
                    with np.errstate(divide="ignore", invalid="ignore"):
                        p = -V @ (Vg / (np.abs(w) + lam))    # (|H| + lambda I)^-1 g, Dauphin et al. 2014
                else:
                    try:
                        p = -np.linalg.solve(H + lam * np.eye(n), g)   # eq. 8.28 (eq. 8.27 at lambda = 0)
                    except np.linalg.LinAlgError:
                        p = None
                if p is not None and np.all(np.isfinite(p)):
                    x_new = x + p
                    f_new, g_new = obj.fg(x_new)
                    actual = f - f_new
                    if not adaptive or (math.isfinite(f_new) and (actual > 0 or (
                            actual >= 0 and _gnorm(g_new) <= gtol))):
                        break
                nrejected += 1
                lam = lam * nu if lam > 0 else 1e-3 * max(scale, 1e-12)
                nu *= 2.0
                if lam > max_damping:
                    raise _LMFail
            if adaptive and lam > 0:
                if use_cg:
                    Hp = hvp(x, p)
                elif saddle_free:
                    Hp = V @ (np.abs(w) * (V.T @ p))
                else:
                    Hp = H @ p
                pred = -(float(g @ p) + 0.5 * float(p @ Hp))
                rho = actual / pred if pred > 0 else 1.0
                lam *= max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
                nu = 2.0
            f_old = f
            x, f, g = x_new, f_new, g_new
            nit += 1
            _callback(callback, x)
            if ftol and (f_old - f) <= ftol * max(abs(f_old), abs(f), 1.0):
                status, msg = 0, MSG_FTOL
                break
        else:
            if _gnorm(g) <= gtol:
                status, msg = 0, MSG_OK
    except _Stop:
        status, msg = 99, MSG_CB
    except _LMFail:
        status, msg = 2, "No damped step lowers f (Levenberg-Marquardt damping exceeded max_damping)."
    return _result(x, f, g, nit, obj, status, msg, damping=lam, nrejected=nrejected)


class _LMFail(Exception):
    pass


# ------------------------------------------------------------------------------ block coordinate descent
def _bcd(obj, x, callback, gtol, maxiter, ftol, fun=None, blocks=None, block_minimize=None,
         inner_maxiter=50, inner_gtol=None, **_):
    owner = getattr(fun, "__self__", None)
    if blocks is None:
        blocks = getattr(owner, "blocks", None)
    if blocks is None:
        raise ValueError("method='bcd' needs options={'blocks': [index arrays]} (or a problem that "
                         "declares its blocks)")
    blocks = [np.atleast_1d(np.asarray(b, dtype=np.intp)) for b in blocks]
    covered = np.concatenate(blocks) if blocks else np.array([], np.intp)
    if covered.size == 0 or covered.min() < 0 or covered.max() >= x.size:
        raise ValueError(f"blocks must hold indices in [0, {x.size})")
    if block_minimize is None and owner is not None and hasattr(owner, "block_minimize"):
        block_minimize = owner.block_minimize
    f, g = obj.fg(x)
    nit, status, msg = 0, 1, MSG_MAXITER
    try:
        while nit < maxiter:
            if _gnorm(g) <= gtol:
                status, msg = 0, MSG_OK
                break
            f_old = f
            for i, idx in enumerate(blocks):
                if block_minimize is not None:
                    x = np.asarray(block_minimize(x, i), dtype=np.float64).copy()
                else:
                    base = x.copy()

                    def sub_fg(z, _idx=idx, _base=base):
                        full = _base.copy()
                        full[_idx] = z
                        fz, gz = obj.fg(full)
                        return fz, gz[_idx]

                    sub = _Objective(sub_fg, True, ())
                    r = _lbfgs(sub, x[idx].copy(), None, inner_gtol if inner_gtol is not None else gtol,
                               inner_maxiter, 0.0)
                    x = base
                    x[idx] = r.x
            f, g = obj.fg(x)
            nit += 1
            _callback(callback, x)
            if ftol and (f_old - f) <= ftol * max(abs(f_old), abs(f), 1.0):
                status, msg = 0, MSG_FTOL
                break
        else:
            if _gnorm(g) <= gtol:
                status, msg = 0, MSG_OK
    except _Stop:
        status, msg = 99, MSG_CB
    return _result(x, f, g, nit, obj, status, msg)


# ------------------------------------------------------------------------------ front door
def minimize(fun: Callable, x0, args=(), method: str = "bfgs", jac=None, hess=None, hessp=None,
             callback=None, tol: float | None = None, options: dict | None = None) -> OptimizeResult:
    """Minimize J(x) from x0 (array-like, flattened to 1-D float64) with a sec. 8.6-8.7 method.

    Arguments follow scipy.optimize.minimize: ``jac`` (callable, True, or None for forward
    differences), ``hess(x)`` / ``hessp(x, v)`` for Newton, ``tol`` (sets gtol), ``options``
    (gtol, maxiter, ftol and the method's own, see the module docstring). Returns a
    ``scipy.optimize.OptimizeResult`` with x, fun, jac, nit, nfev, njev, nhev, status,
    success, message (plus hess_inv for BFGS, damping / nrejected for Newton).
    Raises ValueError for an unknown method or option, or a non-finite x0.
    """
    key = _ALIASES.get(str(method).lower())
    if key is None:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    x = np.array(x0, dtype=np.float64).reshape(-1)
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError("x0 must be a non-empty array of finite numbers")
    opts = dict(options or {})
    opts.pop("disp", None)
    gtol = float(opts.pop("gtol", tol if tol is not None else 1e-5))
    maxiter = int(opts.pop("maxiter", 200 * x.size if key in ("cg", "bfgs", "lbfgs") else 100 * x.size))
    ftol = float(opts.pop("ftol", 0.0))
    allowed = {"newton": {"damping", "adaptive", "saddle_free", "max_damping"},
               "saddle-free-newton": {"damping", "adaptive", "max_damping"},
               "cg": {"beta", "restart"}, "bfgs": {"scale_init"}, "lbfgs": {"m"},
               "bcd": {"blocks", "block_minimize", "inner_maxiter", "inner_gtol"}}[key]
    unknown = set(opts) - allowed
    if unknown:
        known = ", ".join(["gtol", "maxiter", "ftol", "disp", *sorted(allowed)])
        raise ValueError(f"unknown option(s) for method {key!r}: {', '.join(sorted(unknown))}; "
                         f"allowed: {known}")
    obj = _Objective(fun, jac, args)
    common = dict(callback=callback, gtol=gtol, maxiter=maxiter, ftol=ftol)
    if key == "bfgs":
        return _bfgs(obj, x, **common)
    if key == "lbfgs":
        return _lbfgs(obj, x, **common, **opts)
    if key == "cg":
        return _cg(obj, x, **common, **opts)
    if key == "bcd":
        return _bcd(obj, x, **common, fun=fun, **opts)
    if key == "saddle-free-newton":
        opts["saddle_free"] = True
    return _newton(obj, x, **common, hess=hess, hessp=hessp, args=tuple(args), **opts)
