"""First-order optimizers of chapter 8 (sec. 8.3, 8.5) over fused in-place kernels.

    opt = Adam(lr=1e-3, backend="numba")
    state = opt.init(params)          # params: one array or a list of arrays (host or CUDA device)
    opt.step(params, grads, state)    # in place: params and state change, grads are read

Each step is one fused pass per parameter array (one kernel call for a flat buffer, see
:func:`dlbench.optim.flat_buffer`) on the chosen backend (numpy, numba, cython, numba-cuda).
Options common to every optimizer:

* ``lr``: a float or a schedule ``k -> epsilon_k`` (:mod:`dlbench.optim.schedules`, eq. 8.14);
* ``weight_decay``: L2 penalty coefficient added to the gradient, ``g + wd theta`` (torch's
  ``weight_decay``; :class:`AdamW` decouples it);
* ``clip_norm``: clipping by global norm over all arrays, ``g <- g v/||g||`` when ``||g|| > v``
  (8.2.4), fused as a scale factor into the update after one norm pass;
* ``clip_value``: element-wise clipping to [-c, c], fused into the update;
* ``check_finite``: one extra read pass; a step whose gradients hold NaN or inf raises
  :class:`NonFiniteGradientError` (a ValueError) before touching params or state.

Order inside the update: ``g' = clip(scale * g, -c, c) + wd * theta``.

Where the book and torch.optim differ in form, the option that reproduces torch is named in the
class docstring (delta inside/outside the root, Nesterov's change of variables).
"""

from __future__ import annotations

import math

import numpy as np

from dlbench.optim.arrays import as_list, check_param, flat_view, zeros_like
from dlbench.optim.schedules import as_schedule
from dlbench.registry import get_kernel

INF = float("inf")


class NonFiniteGradientError(ValueError, FloatingPointError):
    """A gradient holds NaN or inf (raised by ``step`` when ``check_finite=True``)."""


def _unit_interval(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return value


def _nonneg(name: str, value: float) -> float:
    value = float(value)
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be finite and >= 0, got {value}")
    return value


def _positive_or_none(name: str, value):
    if value is None:
        return None
    value = float(value)
    if not value > 0:
        raise ValueError(f"{name} must be > 0 (or None for no clipping), got {value}")
    return value


def _eps_inside(placement: str) -> bool:
    if placement not in ("inside", "outside"):
        raise ValueError(f"eps_placement must be 'inside' (sqrt(delta + r)) or 'outside' (delta + sqrt(r)), "
                         f"got {placement!r}")
    return placement == "inside"


def _form(form: str) -> str:
    if form not in ("torch", "book"):
        raise ValueError(f"form must be 'torch' (change of variables, gradient at theta) or 'book' "
                         f"(gradient at the interim point, needs a gradient function), got {form!r}")
    return form


class Optimizer:
    """Base class. Subclasses set ``op`` (the registry op), ``state_names`` and ``_update``."""

    op = ""
    state_names: tuple[str, ...] = ()

    def __init__(self, lr, *, weight_decay: float = 0.0, clip_norm: float | None = None,
                 clip_value: float | None = None, check_finite: bool = False, backend: str = "numba",
                 algorithm: str = "fused"):
        self.lr = lr
        self.schedule = as_schedule(lr)
        self.weight_decay = _nonneg("weight_decay", weight_decay)
        self.clip_norm = _positive_or_none("clip_norm", clip_norm)
        self.clip_value = _positive_or_none("clip_value", clip_value)
        self.check_finite = bool(check_finite)
        self.backend, self.algorithm = backend, algorithm
        self.kernel = get_kernel(self.op, algorithm, backend)
        self._sumsq = None
        if self.clip_norm is not None or self.check_finite:
            self._sumsq = get_kernel("grad_sumsq", algorithm, backend)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.lr!r}, backend={self.backend!r})"

    # ------------------------------------------------------------------ state
    def _fill(self, name: str) -> float:
        return 0.0

    def init(self, params) -> dict:
        """Fresh state for ``params`` (one array or a list): ``{"step": 0, name: [arrays]}``.

        State arrays have the parameters' shapes and dtypes and live where they do (host/device).
        """
        ps = as_list(params)
        if not ps:
            raise ValueError("no parameter arrays given")
        for p in ps:
            check_param(p)
        state = {"step": 0, "shapes": [tuple(p.shape) for p in ps], "dtypes": [np.dtype(p.dtype) for p in ps]}
        for name in self.state_names:
            state[name] = [zeros_like(p, self._fill(name)) for p in ps]
        # flat 1-D views of each parameter's state arrays, made once (what the kernels take)
        state["flat"] = [[flat_view(state[name][i]) for name in self.state_names] for i in range(len(ps))]
        return state

    def _state_views(self, ps, state) -> list:
        try:
            shapes, flats = state["shapes"], state["flat"]
        except (KeyError, TypeError):
            raise ValueError(f"state was not made by {type(self).__name__}.init") from None
        if len(shapes) != len(ps) or any(n not in state for n in self.state_names):
            raise ValueError("state was made for other parameters (different count); call init")
        return flats

    # ------------------------------------------------------------------ step
    def _grad_point(self, params, ps: list, state: dict):
        """Where a callable ``grads`` is evaluated (the params; Nesterov's book form overrides)."""
        return params

    def _grad_scale(self, gs: list) -> float:
        """One read pass (float64 sum of squares) for clip_norm and check_finite; the scale factor."""
        if self._sumsq is None:
            return 1.0
        total = sum(self._sumsq(g) for g in gs)
        if not math.isfinite(total):
            if self.check_finite:
                raise NonFiniteGradientError("non-finite gradient (NaN or inf): step refused, params and "
                                             "state unchanged")
            return 1.0
        if self.clip_norm is not None:
            norm = math.sqrt(total)
            if norm > self.clip_norm:
                return self.clip_norm / norm
        return 1.0

    def step(self, params, grads, state: dict) -> None:
        """One update of ``params`` in place from ``grads`` (same structure, shapes and dtypes).

        ``grads`` may also be a function ``grads(points) -> gradients``, evaluated at the params
        (or, for the book form of Nesterov momentum, at the interim point theta + alpha v).
        """
        ps = params if isinstance(params, (list, tuple)) else (params,)
        flats = self._state_views(ps, state)
        shapes, dtypes = state["shapes"], state["dtypes"]
        k = state["step"]
        lr = self.schedule(k)
        if callable(grads):
            grads = grads(self._grad_point(params, ps, state))
        gs = grads if isinstance(grads, (list, tuple)) else (grads,)
        if len(gs) != len(ps):
            raise ValueError(f"{len(ps)} parameter arrays but {len(gs)} gradient arrays")
        pf, gf = [], []
        for i, (p, g) in enumerate(zip(ps, gs)):
            if (type(p) is np.ndarray and type(g) is np.ndarray and p.shape == shapes[i] == g.shape
                    and p.dtype == g.dtype == dtypes[i] and p.flags.c_contiguous
                    and g.flags.c_contiguous and p.flags.writeable):
                pf.append(p.reshape(-1))            # the fast path: checked, flat views, no copies
                gf.append(g.reshape(-1))
                continue
            check_param(p)
            check_param(g, "gradient")
            if tuple(p.shape) != tuple(g.shape) or np.dtype(p.dtype) != np.dtype(g.dtype):
                raise ValueError(f"param {i} ({tuple(p.shape)}, {np.dtype(p.dtype)}) and its gradient "
                                 f"({tuple(g.shape)}, {np.dtype(g.dtype)}) differ in shape or dtype")
            if tuple(p.shape) != shapes[i] or np.dtype(p.dtype) != dtypes[i]:
                raise ValueError("state was made for other parameters (other shapes or dtypes); call init")
            pf.append(flat_view(p))
            gf.append(flat_view(np.ascontiguousarray(g) if isinstance(g, np.ndarray) else g))
        gkw = {"wd": self.weight_decay, "gscale": self._grad_scale(gf),
               "clip": INF if self.clip_value is None else self.clip_value}
        for p, g, st in zip(pf, gf, flats):
            self._update(p, st, g, lr, k + 1, gkw)
        state["step"] = k + 1

    def _update(self, p, states, g, lr, t, gkw) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent, Algorithm 8.1: theta <- theta - epsilon_k g.

    lr: a float or a schedule (e.g. ``schedules.LinearDecay(lr0, tau)``, eq. 8.14).
    Matches torch.optim.SGD (momentum=0) step for step.
    """

    op = "sgd"

    def __init__(self, lr=0.01, **kw):
        super().__init__(lr, **kw)

    def _update(self, p, states, g, lr, t, gkw):
        self.kernel(p, g, lr, **gkw)


class Momentum(Optimizer):
    """SGD with momentum, Algorithm 8.2: v <- alpha v - epsilon g; theta <- theta + v.

    alpha in [0, 1) (0.5, 0.9, 0.99 typical). With a constant rate this equals
    torch.optim.SGD(momentum=alpha) (torch keeps b = -v/epsilon; with a schedule the two forms
    differ: here epsilon_k enters the velocity, in torch it scales the whole step).
    """

    op = "sgd_momentum"
    state_names = ("v",)
    nesterov = False

    def __init__(self, lr=0.01, alpha: float = 0.9, **kw):
        super().__init__(lr, **kw)
        self.alpha = _unit_interval("alpha", alpha)

    def _update(self, p, states, g, lr, t, gkw):
        self.kernel(p, states[0], g, lr, self.alpha, self.nesterov, **gkw)


class Nesterov(Momentum):
    """Nesterov momentum, Algorithm 8.3, in one of two equivalent forms.

    form="book": theta~ <- theta + alpha v; g <- gradient at theta~; v <- alpha v - epsilon g;
    theta <- theta + v. It needs the objective: pass ``grads`` as a function of the parameters
    (it is called at theta~, host arrays only).
    form="torch" (default): the change of variables phi = theta + alpha v (Sutskever et al.
    2013): with g the gradient at the current parameters, v <- alpha v - epsilon g;
    theta <- theta + alpha v - epsilon g. The parameters then hold the look-ahead point of the
    book form; this is torch.optim.SGD(momentum=alpha, nesterov=True) step for step.
    """

    def __init__(self, lr=0.01, alpha: float = 0.9, form: str = "torch", **kw):
        super().__init__(lr, alpha, **kw)
        self.form = _form(form)
        self.nesterov = self.form == "torch"

    def _grad_point(self, params, ps, state):
        if self.form == "torch":
            return params
        pts = [np.asarray(p) + self.alpha * np.asarray(v) for p, v in zip(ps, state["v"])]
        return pts if isinstance(params, (list, tuple)) else pts[0]

    def step(self, params, grads, state):
        if self.form == "book" and not callable(grads):
            raise ValueError("Nesterov(form='book') evaluates the gradient at the interim point theta + "
                             "alpha v: pass grads as a function of the parameters, or use form='torch'")
        super().step(params, grads, state)


class AdaGrad(Optimizer):
    """AdaGrad, Algorithm 8.4: r <- r + g*g; theta <- theta - epsilon g / (delta + sqrt(r)).

    eps (delta) defaults to the book's 1e-7, outside the root as in the book and in
    torch.optim.Adagrad (which matches with eps=1e-10, its default); ``eps_placement="inside"``
    gives sqrt(delta + r). initial_accumulator: starting value of r (torch's
    ``initial_accumulator_value``); torch's ``lr_decay`` is ``schedules.InverseTime``.
    """

    op = "adagrad"
    state_names = ("r",)

    def __init__(self, lr=0.01, eps: float = 1e-7, eps_placement: str = "outside",
                 initial_accumulator: float = 0.0, **kw):
        super().__init__(lr, **kw)
        self.eps = _nonneg("eps", eps)
        self.eps_inside = _eps_inside(eps_placement)
        self.initial_accumulator = _nonneg("initial_accumulator", initial_accumulator)

    def _fill(self, name):
        return self.initial_accumulator

    def _update(self, p, states, g, lr, t, gkw):
        self.kernel(p, states[0], g, lr, self.eps, self.eps_inside, **gkw)


class RMSProp(Optimizer):
    """RMSProp, Algorithm 8.5: r <- rho r + (1 - rho) g*g; theta <- theta - epsilon g / sqrt(delta + r).

    The book puts delta (default 1e-6) inside the root; torch.optim.RMSprop puts it outside,
    sqrt(r) + delta: ``eps_placement="outside"`` (with torch's alpha = rho, eps = delta)
    reproduces torch. momentum > 0 adds heavy-ball momentum on the scaled step,
    v <- momentum v - epsilon g / sqrt(delta + r); theta <- theta + v, which is
    torch.optim.RMSprop(momentum=...) (torch's buffer is -v/epsilon).
    """

    state_names = ("r",)

    def __init__(self, lr=1e-3, rho: float = 0.9, eps: float = 1e-6, momentum: float = 0.0,
                 eps_placement: str = "inside", **kw):
        self.momentum = _unit_interval("momentum", momentum)
        if self.momentum > 0:
            self.op, self.state_names = "rmsprop_momentum", ("r", "v")
        else:
            self.op = "rmsprop"
        super().__init__(lr, **kw)
        self.rho = _unit_interval("rho", rho)
        self.eps = _nonneg("eps", eps)
        self.eps_inside = _eps_inside(eps_placement)

    def _update(self, p, states, g, lr, t, gkw):
        if self.momentum > 0:
            self.kernel(p, states[0], states[1], g, lr, self.rho, self.eps, self.momentum, False,
                        self.eps_inside, **gkw)
        else:
            self.kernel(p, states[0], g, lr, self.rho, self.eps, self.eps_inside, **gkw)


class RMSPropNesterov(Optimizer):
    """RMSProp with Nesterov momentum, Algorithm 8.6:

    theta~ <- theta + alpha v; g at theta~; r <- rho r + (1 - rho) g*g;
    v <- alpha v - epsilon g / sqrt(delta + r); theta <- theta + v.
    form="book" evaluates a gradient function at theta~; form="torch" (default) is the change of
    variables (parameters hold the look-ahead point; g at the parameters):
    theta <- theta + alpha v - epsilon g / sqrt(delta + r). delta is inside the root (Alg. 8.6 has
    none; 1e-6 guards the first steps); ``eps_placement="outside"`` moves it out.
    """

    op = "rmsprop_momentum"
    state_names = ("r", "v")

    def __init__(self, lr=1e-3, rho: float = 0.9, alpha: float = 0.9, eps: float = 1e-6,
                 eps_placement: str = "inside", form: str = "torch", **kw):
        super().__init__(lr, **kw)
        self.rho = _unit_interval("rho", rho)
        self.alpha = _unit_interval("alpha", alpha)
        self.eps = _nonneg("eps", eps)
        self.eps_inside = _eps_inside(eps_placement)
        self.form = _form(form)

    def _grad_point(self, params, ps, state):
        if self.form == "torch":
            return params
        pts = [np.asarray(p) + self.alpha * np.asarray(v) for p, v in zip(ps, state["v"])]
        return pts if isinstance(params, (list, tuple)) else pts[0]

    def step(self, params, grads, state):
        if self.form == "book" and not callable(grads):
            raise ValueError("RMSPropNesterov(form='book') evaluates the gradient at theta + alpha v: pass "
                             "grads as a function of the parameters, or use form='torch'")
        super().step(params, grads, state)

    def _update(self, p, states, g, lr, t, gkw):
        self.kernel(p, states[0], states[1], g, lr, self.rho, self.eps, self.alpha, self.form == "torch",
                    self.eps_inside, **gkw)


class Adam(Optimizer):
    """Adam, Algorithm 8.7 (defaults epsilon = 1e-3, rho1 = 0.9, rho2 = 0.999, delta = 1e-8):

    t <- t + 1; s <- rho1 s + (1 - rho1) g; r <- rho2 r + (1 - rho2) g*g;
    theta <- theta - epsilon (s / (1 - rho1^t)) / (sqrt(r / (1 - rho2^t)) + delta).
    The book's form is torch.optim.Adam's (delta outside the root of the corrected r).
    weight_decay is the coupled L2 term (torch's Adam weight_decay); see :class:`AdamW`.
    """

    op = "adam"
    state_names = ("s", "r")
    decoupled = False

    def __init__(self, lr=1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, **kw):
        super().__init__(lr, **kw)
        self.beta1 = _unit_interval("beta1", beta1)
        self.beta2 = _unit_interval("beta2", beta2)
        self.eps = _nonneg("eps", eps)

    def _update(self, p, states, g, lr, t, gkw):
        if self.decoupled:
            gkw = dict(gkw, wd=0.0)
            self.kernel(p, states[0], states[1], g, lr, self.beta1, self.beta2, self.eps, t,
                        decoupled_wd=self.weight_decay, **gkw)
        else:
            self.kernel(p, states[0], states[1], g, lr, self.beta1, self.beta2, self.eps, t, **gkw)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019): theta <- theta (1 - epsilon wd)
    before the Adam step; torch.optim.AdamW step for step (default wd = 0.01)."""

    decoupled = True

    def __init__(self, lr=1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.01, **kw):
        super().__init__(lr, beta1, beta2, eps, weight_decay=weight_decay, **kw)


class AdaDelta(Optimizer):
    """AdaDelta (Zeiler 2012, sec. 8.5): r <- rho r + (1 - rho) g*g;
    Delta = -sqrt(d + delta) / sqrt(r + delta) g; d <- rho d + (1 - rho) Delta^2;
    theta <- theta + epsilon Delta (epsilon = 1 in the paper). torch.optim.Adadelta's form.
    """

    op = "adadelta"
    state_names = ("r", "d")

    def __init__(self, lr=1.0, rho: float = 0.9, eps: float = 1e-6, **kw):
        super().__init__(lr, **kw)
        self.rho = _unit_interval("rho", rho)
        self.eps = float(eps)
        if not self.eps > 0:
            raise ValueError(f"AdaDelta needs eps > 0 (its first step is sqrt(eps)/sqrt(r + eps)), got {eps}")

    def _update(self, p, states, g, lr, t, gkw):
        self.kernel(p, states[0], states[1], g, lr, self.rho, self.eps, **gkw)


class DeltaBarDelta(Optimizer):
    """Delta-bar-delta (Jacobs 1988, sec. 8.5), for full-batch gradients: one rate per parameter.

    bar is the exponential average of past gradients, bar <- (1 - mix) g + mix bar. Where
    bar * g > 0 (the partial derivative kept its sign) the rate grows additively, rate += kappa;
    where bar * g < 0 it shrinks multiplicatively, rate *= 1 - phi; then theta <- theta - rate g.
    lr: the initial rate of every parameter (a float; the rates then adapt on their own).
    """

    op = "delta_bar_delta"
    state_names = ("rate", "bar")

    def __init__(self, lr=0.01, kappa: float = 1e-4, phi: float = 0.1, mix: float = 0.7, **kw):
        if callable(lr):
            raise ValueError("DeltaBarDelta adapts its own per-parameter rates: lr is the initial rate, "
                             "a number")
        super().__init__(lr, **kw)
        self.lr0 = self.schedule(0)
        self.kappa = _nonneg("kappa", kappa)
        self.phi = _unit_interval("phi", phi)
        self.mix = _unit_interval("mix", mix)

    def _fill(self, name):
        return self.lr0 if name == "rate" else 0.0

    def _update(self, p, states, g, lr, t, gkw):
        self.kernel(p, states[0], states[1], g, self.kappa, self.phi, self.mix, **gkw)


OPTIMIZERS = {cls.__name__: cls for cls in (SGD, Momentum, Nesterov, AdaGrad, RMSProp, RMSPropNesterov,
                                             Adam, AdamW, AdaDelta, DeltaBarDelta)}
