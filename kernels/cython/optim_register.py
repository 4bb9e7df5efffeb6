"""Registers the compiled Cython optimizer updates (``optim.pyx``) under the backend ``cython``.

Each wrapper computes the per-step coefficients once in float64 (``optim_coeffs``, shared with
the other backends) and calls the float32 or float64 entry point of the extension.
"""

import numpy as np
from dlbench.kernels.cython import optim as _cy
from dlbench.kernels.reference.optim_coeffs import INF, adam_coeffs, eps_split, grad_coeffs, momentum_coeffs

from dlbench.registry import register_kernel

_NAMES = ("sgd", "momentum", "rmsprop", "rmsprop_momentum", "adam", "adadelta", "dbd", "average",
          "clip_scale", "sumsq")
_ENTRIES = {(name, np.dtype(dt)): getattr(_cy, f"{name}_{sfx}") for name in _NAMES
            for dt, sfx in ((np.float32, "f32"), (np.float64, "f64"))}


def _entry(name: str, a):
    try:
        return _ENTRIES[name, a.dtype]
    except KeyError:
        raise ValueError(f"cython optimizer kernels take float32 or float64 arrays, not {a.dtype}") from None


@register_kernel("sgd", "fused", "cython")
def sgd(theta, g, lr, wd=0.0, gscale=1.0, clip=INF):
    """Algorithm 8.1 fused with OpenMP + SIMD: theta -= lr g' (1-D contiguous)."""
    _entry("sgd", theta)(theta, g, lr, *grad_coeffs(wd, gscale, clip))


@register_kernel("sgd_momentum", "fused", "cython")
def sgd_momentum(theta, v, g, lr, alpha, nesterov=False, wd=0.0, gscale=1.0, clip=INF):
    """Algorithm 8.2 fused with OpenMP + SIMD: v = alpha*v - lr*g; theta += v (nesterov: Alg. 8.3)."""
    _entry("momentum", theta)(theta, v, g, *momentum_coeffs(lr, alpha, nesterov),
                              *grad_coeffs(wd, gscale, clip))


@register_kernel("adagrad", "fused", "cython")
def adagrad(theta, r, g, lr, eps=1e-7, eps_inside=False, wd=0.0, gscale=1.0, clip=INF):
    """Algorithm 8.4 fused (the RMSProp loop with rho = 1 and unit weight, exactly r + g*g)."""
    _entry("rmsprop", theta)(theta, r, g, lr, 1.0, 1.0, *eps_split(eps, eps_inside),
                             *grad_coeffs(wd, gscale, clip))


@register_kernel("rmsprop", "fused", "cython")
def rmsprop(theta, r, g, lr, rho=0.9, eps=1e-6, eps_inside=True, wd=0.0, gscale=1.0, clip=INF):
    """Algorithm 8.5 fused: r = rho r + (1-rho) g*g; theta -= lr g / sqrt(delta + r)."""
    _entry("rmsprop", theta)(theta, r, g, lr, rho, 1.0 - rho, *eps_split(eps, eps_inside),
                             *grad_coeffs(wd, gscale, clip))


@register_kernel("rmsprop_momentum", "fused", "cython")
def rmsprop_momentum(theta, r, v, g, lr, rho, eps, alpha, nesterov=False, eps_inside=True,
                     wd=0.0, gscale=1.0, clip=INF):
    """Algorithm 8.6 fused: r, v and theta in one pass (heavy ball, or Nesterov by change of variables)."""
    a, _, cv, cg = momentum_coeffs(lr, alpha, nesterov)
    _entry("rmsprop_momentum", theta)(theta, r, v, g, lr, rho, 1.0 - rho, *eps_split(eps, eps_inside),
                                      a, cv, cg, *grad_coeffs(wd, gscale, clip))


@register_kernel("adam", "fused", "cython")
def adam(theta, s, r, g, lr, beta1, beta2, eps, t, wd=0.0, decoupled_wd=0.0, gscale=1.0, clip=INF):
    """Algorithm 8.7 fused at step t, bias corrections folded into two scalars."""
    _entry("adam", theta)(theta, s, r, g, *adam_coeffs(lr, beta1, beta2, eps, t, decoupled_wd),
                          *grad_coeffs(wd, gscale, clip))


@register_kernel("adadelta", "fused", "cython")
def adadelta(theta, r, d, g, lr=1.0, rho=0.9, eps=1e-6, wd=0.0, gscale=1.0, clip=INF):
    """AdaDelta fused, one square root per element."""
    _entry("adadelta", theta)(theta, r, d, g, lr, rho, 1.0 - rho, eps, *grad_coeffs(wd, gscale, clip))


@register_kernel("delta_bar_delta", "fused", "cython")
def delta_bar_delta(theta, rate, bar, g, kappa, phi, mix, wd=0.0, gscale=1.0, clip=INF):
    """Delta-bar-delta (Jacobs 1988) fused, branch-free SIMD selects."""
    _entry("dbd", theta)(theta, rate, bar, g, kappa, 1.0 - phi, mix, 1.0 - mix,
                         *grad_coeffs(wd, gscale, clip))


@register_kernel("param_average", "fused", "cython")
def param_average(avg, theta, w):
    """Polyak average / EMA (8.7.3, eq. 8.39): avg += w (theta - avg)."""
    _entry("average", avg)(avg, theta, w)


@register_kernel("grad_sumsq", "fused", "cython")
def grad_sumsq(g) -> float:
    """sum(g*g) accumulated in float64 (OpenMP SIMD reduction)."""
    return _entry("sumsq", g)(g)


@register_kernel("clip_by_value", "fused", "cython")
def clip_by_value(g, clip):
    """Element-wise clipping (8.2.4), in place."""
    _entry("clip_scale", g)(g, 1.0, clip)


@register_kernel("scale_grad", "fused", "cython")
def scale_grad(g, factor):
    """g *= factor, in place."""
    _entry("clip_scale", g)(g, factor, INF)
