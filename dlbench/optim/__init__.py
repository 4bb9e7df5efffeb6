"""Optimizers of chapter 8: fused first-order updates on every backend, second-order methods,
initialization.

    from dlbench import optim
    opt = optim.Adam(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, backend="numba")
    state = opt.init(params)          # params: one array or a list of arrays
    opt.step(params, grads, state)    # in place

    res = optim.minimize(fun, x0, method="bfgs", jac=grad)      # scipy-compatible OptimizeResult
    W = optim.init.glorot_uniform((n_out, n_in), rng=0)          # eq. 8.23

First-order (sec. 8.3, 8.5): SGD (schedules, eq. 8.14), Momentum, Nesterov (book and torch
forms), AdaGrad, RMSProp, RMSPropNesterov, Adam, AdamW, AdaDelta, DeltaBarDelta; clipping by
global norm and by value; Polyak averaging and EMA (eq. 8.39). Second-order (sec. 8.6-8.7):
``minimize`` with Newton (Levenberg-Marquardt damping, saddle-free), nonlinear CG, BFGS, L-BFGS,
block coordinate descent.
"""

from dlbench.optim import init, opdefs, schedules  # noqa: F401 - opdefs defines the ops
from dlbench.optim.arrays import flat_buffer
from dlbench.optim.averaging import EMA, PolyakAverage
from dlbench.optim.clipping import clip_grad_norm, clip_grad_value, global_norm
from dlbench.optim.first_order import (
                                       OPTIMIZERS,
                                       SGD,
                                       AdaDelta,
                                       AdaGrad,
                                       Adam,
                                       AdamW,
                                       DeltaBarDelta,
                                       Momentum,
                                       Nesterov,
                                       NonFiniteGradientError,
                                       Optimizer,
                                       RMSProp,
                                       RMSPropNesterov,
)
from dlbench.optim.minimize import METHODS, minimize
from dlbench.optim.opdefs import bytes_per_param

__all__ = ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSProp", "RMSPropNesterov", "Adam", "AdamW",
           "AdaDelta", "DeltaBarDelta", "Optimizer", "OPTIMIZERS", "NonFiniteGradientError",
           "PolyakAverage", "EMA", "clip_grad_norm", "clip_grad_value", "global_norm", "flat_buffer",
           "minimize", "METHODS", "init", "schedules", "bytes_per_param"]
