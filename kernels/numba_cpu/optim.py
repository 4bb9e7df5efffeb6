"""Numba CPU optimizer updates: one fused, parallel pass over memory per step, in place.

One ``@njit`` per update rule; each compiles lazily for the dtype it is first called with
(float32 and float64 are separate specialisations, compiled on demand only). The element update
is an inlined function shared by a serial loop (fewer than ``SERIAL_MAX`` elements: waking the
thread pool costs more than the loop) and the ``prange`` loop. Scalars are cast
to the arrays' dtype by the wrappers, so float32 updates run in float32 SIMD. The per-step
coefficients come from :mod:`dlbench.kernels.reference.optim_coeffs` (computed once in float64,
identical on every backend). No fastmath: the kernels keep IEEE order so that they match the
NumPy reference step for step.

Every element first forms the effective gradient ``clip(gscale*g, -clip, clip) + wd*theta``
(clipping by global norm and by value, 8.2.4, and L2 weight decay) in registers.
"""

import numba as nb
import numpy as np
from dlbench.kernels.reference.optim_coeffs import INF, adam_coeffs, eps_split, grad_coeffs, momentum_coeffs

from dlbench.registry import register_kernel

SERIAL_MAX = 32768     # below this many elements one thread runs the loop (no thread wake-up)


def _cast(dt, *xs):
    """Scalars cast to the arrays' dtype; a trailing bool (the ``plain`` flag) stays a bool."""
    return tuple(x if isinstance(x, bool) else dt(x) for x in xs)


def _gc(wd, gscale, clip):
    """(gscale, clip, wd, plain): plain=True when the preprocessing is a no-op, so the loop reads g
    as it is (the branch is loop-invariant: LLVM unswitches it)."""
    gs, c, w = grad_coeffs(wd, gscale, clip)
    return gs, c, w, bool(gs == 1.0 and c == INF and w == 0.0)


@nb.njit(inline="always")
def _geff(gi, th, gscale, clip, wd):
    gi = gi * gscale
    if gi > clip:
        gi = clip
    elif gi < -clip:
        gi = -clip
    return gi + wd * th


@nb.njit(inline="always")
def _sgd_at(i, theta, g, lr, gscale, clip, wd, plain):
    th = theta[i]
    gi = g[i] if plain else _geff(g[i], th, gscale, clip, wd)
    theta[i] = th - lr * gi


@nb.njit(parallel=True, cache=True)
def _sgd(theta, g, lr, gscale, clip, wd, plain):
    n = theta.shape[0]
    if n < SERIAL_MAX:
        for i in range(n):
            _sgd_at(i, theta, g, lr, gscale, clip, wd, plain)
    else:
        for i in nb.prange(n):
            _sgd_at(i, theta, g, lr, gscale, clip, wd, plain)


@register_kernel("sgd", "fused", "numba")
def sgd(theta, g, lr, wd=0.0, gscale=1.0, clip=INF):
    """Algorithm 8.1 fused: theta -= lr * g'. 1-D float32/float64 arrays."""
    _sgd(theta, g, *_cast(theta.dtype.type, lr, *_gc(wd, gscale, clip)))


@nb.njit(inline="always")
def _momentum_at(i, theta, v, g, alpha, lr, cv, cg, gscale, clip, wd, plain):
    th = theta[i]
    gi = g[i] if plain else _geff(g[i], th, gscale, clip, wd)
    vi = alpha * v[i] - lr * gi
    v[i] = vi
    theta[i] = th + (cv * vi - cg * gi)


@nb.njit(parallel=True, cache=True)
def _momentum(theta, v, g, alpha, lr, cv, cg, gscale, clip, wd, plain):
    n = theta.shape[0]
    if n < SERIAL_MAX:
        for i in range(n):
            _momentum_at(i, theta, v, g, alpha, lr, cv, cg, gscale, clip, wd, plain)
    else:
        for i in nb.prange(n):
            _momentum_at(i, theta, v, g, alpha, lr, cv, cg, gscale, clip, wd, plain)


@register_kernel("sgd_momentum", "fused", "numba")
def sgd_momentum(theta, v, g, lr, alpha, nesterov=False, wd=0.0, gscale=1.0, clip=INF):
    """Algorithm 8.2 fused (nesterov=True: Alg. 8.3, change-of-variables form): per element
    v = alpha*v - lr*g; theta += v (or alpha*v - lr*g). 1-D float32/float64 arrays."""
    _momentum(theta, v, g, *_cast(theta.dtype.type, *momentum_coeffs(lr, alpha, nesterov),
                                   *_gc(wd, gscale, clip)))


@nb.njit(inline="always")
def _rmsprop_at(i, theta, r, g, lr, rho, c, d_in, d_out, gscale, clip, wd, plain):
    th = theta[i]
    gi = g[i] if plain else _geff(g[i], th, gscale, clip, wd)
    ri = rho * r[i] + c * gi * gi
    r[i] = ri
    theta[i] = th - lr * gi / (np.sqrt(ri + d_in) + d_out)


@nb.njit(parallel=True, cache=True)
def _rmsprop(theta, r, g, lr, rho, c, d_in, d_out, gscale, clip, wd, plain):
    n = theta.shape[0]
    if n < SERIAL_MAX:
        for i in range(n):
            _rmsprop_at(i, theta, r, g, lr, rho, c, d_in, d_out, gscale, clip, wd, plain)
    else:
        for i in nb.prange(n):
            _rmsprop_at(i, theta, r, g, lr, rho, c, d_in, d_out, gscale, clip, wd, plain)


@register_kernel("adagrad", "fused", "numba")
def adagrad(theta, r, g, lr, eps=1e-7, eps_inside=False, wd=0.0, gscale=1.0, clip=INF):
    """Algorithm 8.4 fused: r += g*g; theta -= lr g/(delta + sqrt(r)) (eps_inside: sqrt(r + delta)).

    Runs the RMSProp kernel with rho = 1 and unit weight: r*1 + 1*g*g is exactly r + g*g.
    """
    _rmsprop(theta, r, g, *_cast(theta.dtype.type, lr, 1.0, 1.0, *eps_split(eps, eps_inside),
                                 *_gc(wd, gscale, clip)))


@register_kernel("rmsprop", "fused", "numba")
def rmsprop(theta, r, g, lr, rho=0.9, eps=1e-6, eps_inside=True, wd=0.0, gscale=1.0, clip=INF):
    """Algorithm 8.5 fused: r = rho r + (1-rho) g*g; theta -= lr g / sqrt(delta + r)."""
    _rmsprop(theta, r, g, *_cast(theta.dtype.type, lr, rho, 1.0 - rho, *eps_split(eps, eps_inside),
                                 *_gc(wd, gscale, clip)))


@nb.njit(inline="always")
def _rmsprop_momentum_at(i, theta, r, v, g, lr, rho, c, d_in, d_out, alpha, cv, cg, gscale, clip, wd, plain):
    th = theta[i]
    gi = g[i] if plain else _geff(g[i], th, gscale, clip, wd)
    ri = rho * r[i] + c * gi * gi
    r[i] = ri
    u = gi / (np.sqrt(ri + d_in) + d_out)
    vi = alpha * v[i] - lr * u
    v[i] = vi
    theta[i] = th + (cv * vi - cg * u)


@nb.njit(parallel=True, cache=True)
def _rmsprop_momentum(theta, r, v, g, lr, rho, c, d_in, d_out, alpha, cv, cg, gscale, clip, wd, plain):
    n = theta.shape[0]
    if n < SERIAL_MAX:
        for i in range(n):
            _rmsprop_momentum_at(i, theta, r, v, g, lr, rho, c, d_in, d_out, alpha, cv, cg, gscale, clip, wd,
                                 plain)
    else:
        for i in nb.prange(n):
            _rmsprop_momentum_at(i, theta, r, v, g, lr, rho, c, d_in, d_out, alpha, cv, cg, gscale, clip, wd,
                                 plain)


@register_kernel("rmsprop_momentum", "fused", "numba")
def rmsprop_momentum(theta, r, v, g, lr, rho, eps, alpha, nesterov=False, eps_inside=True,
                     wd=0.0, gscale=1.0, clip=INF):
    """Algorithm 8.6 fused (heavy ball from the interim-point gradient, or nesterov=True from the
    gradient at theta): r, v and theta in one pass."""
    a, _, cv, cg = momentum_coeffs(lr, alpha, nesterov)
    _rmsprop_momentum(theta, r, v, g, *_cast(theta.dtype.type, lr, rho, 1.0 - rho,
                                             *eps_split(eps, eps_inside), a, cv, cg,
                                             *_gc(wd, gscale, clip)))


@nb.njit(inline="always")
def _adam_at(i, theta, s, r, g, step, rbc2, b1, c1, b2, c2, eps, decay, gscale, clip, wd, plain):
    th = theta[i]
    gi = g[i] if plain else _geff(g[i], th, gscale, clip, wd)
    si = b1 * s[i] + c1 * gi
    ri = b2 * r[i] + c2 * gi * gi
    s[i] = si
    r[i] = ri
    theta[i] = th * decay - step * si / (np.sqrt(ri) * rbc2 + eps)


@nb.njit(parallel=True, cache=True)
def _adam(theta, s, r, g, step, rbc2, b1, c1, b2, c2, eps, decay, gscale, clip, wd, plain):
    n = theta.shape[0]
    if n < SERIAL_MAX:
        for i in range(n):
            _adam_at(i, theta, s, r, g, step, rbc2, b1, c1, b2, c2, eps, decay, gscale, clip, wd, plain)
    else:
        for i in nb.prange(n):
            _adam_at(i, theta, s, r, g, step, rbc2, b1, c1, b2, c2, eps, decay, gscale, clip, wd, plain)


@register_kernel("adam", "fused", "numba")
def adam(theta, s, r, g, lr, beta1, beta2, eps, t, wd=0.0, decoupled_wd=0.0, gscale=1.0, clip=INF):
    """Algorithm 8.7 fused at step t, bias corrections folded into two scalars (see optim_coeffs)."""
    _adam(theta, s, r, g, *_cast(theta.dtype.type, *adam_coeffs(lr, beta1, beta2, eps, t, decoupled_wd),
                                 *_gc(wd, gscale, clip)))


@nb.njit(inline="always")
def _adadelta_at(i, theta, r, d, g, lr, rho, c, eps, gscale, clip, wd, plain):
    th = theta[i]
    gi = g[i] if plain else _geff(g[i], th, gscale, clip, wd)
    ri = rho * r[i] + c * gi * gi
    r[i] = ri
    di = d[i]
    delta = -np.sqrt((di + eps) / (ri + eps)) * gi   # one root: sqrt(a)/sqrt(b) = sqrt(a/b)
    d[i] = rho * di + c * delta * delta
    theta[i] = th + lr * delta


@nb.njit(parallel=True, cache=True)
def _adadelta(theta, r, d, g, lr, rho, c, eps, gscale, clip, wd, plain):
    n = theta.shape[0]
    if n < SERIAL_MAX:
        for i in range(n):
            _adadelta_at(i, theta, r, d, g, lr, rho, c, eps, gscale, clip, wd, plain)
    else:
        for i in nb.prange(n):
            _adadelta_at(i, theta, r, d, g, lr, rho, c, eps, gscale, clip, wd, plain)


@register_kernel("adadelta", "fused", "numba")
def adadelta(theta, r, d, g, lr=1.0, rho=0.9, eps=1e-6, wd=0.0, gscale=1.0, clip=INF):
    """AdaDelta fused: r, d and theta in one pass, one square root per element."""
    _adadelta(theta, r, d, g, *_cast(theta.dtype.type, lr, rho, 1.0 - rho, eps,
                                     *_gc(wd, gscale, clip)))


@nb.njit(inline="always")
def _delta_bar_delta_at(i, theta, rate, bar, g, kappa, shrink, mix, cmix, gscale, clip, wd, plain):
    th = theta[i]
    gi = g[i] if plain else _geff(g[i], th, gscale, clip, wd)
    b = bar[i]
    sg = b * gi
    ri = rate[i]
    if sg < 0:
        ri = ri * shrink
    elif sg > 0:
        ri = ri + kappa
    rate[i] = ri
    bar[i] = cmix * gi + mix * b
    theta[i] = th - ri * gi


@nb.njit(parallel=True, cache=True)
def _delta_bar_delta(theta, rate, bar, g, kappa, shrink, mix, cmix, gscale, clip, wd, plain):
    n = theta.shape[0]
    if n < SERIAL_MAX:
        for i in range(n):
            _delta_bar_delta_at(i, theta, rate, bar, g, kappa, shrink, mix, cmix, gscale, clip, wd, plain)
    else:
        for i in nb.prange(n):
            _delta_bar_delta_at(i, theta, rate, bar, g, kappa, shrink, mix, cmix, gscale, clip, wd, plain)


@register_kernel("delta_bar_delta", "fused", "numba")
def delta_bar_delta(theta, rate, bar, g, kappa, phi, mix, wd=0.0, gscale=1.0, clip=INF):
    """Delta-bar-delta (Jacobs 1988) fused: rate, bar and theta in one pass."""
    _delta_bar_delta(theta, rate, bar, g, *_cast(theta.dtype.type, kappa, 1.0 - phi, mix, 1.0 - mix,
                                                 *_gc(wd, gscale, clip)))


@nb.njit(inline="always")
def _average_at(i, avg, theta, w):
    a = avg[i]
    avg[i] = a + w * (theta[i] - a)


@nb.njit(parallel=True, cache=True)
def _average(avg, theta, w):
    n = avg.shape[0]
    if n < SERIAL_MAX:
        for i in range(n):
            _average_at(i, avg, theta, w)
    else:
        for i in nb.prange(n):
            _average_at(i, avg, theta, w)


@register_kernel("param_average", "fused", "numba")
def param_average(avg, theta, w):
    """Polyak average / EMA (8.7.3, eq. 8.39) fused: avg += w (theta - avg)."""
    _average(avg, theta, avg.dtype.type(w))


@nb.njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})
def _sumsq(g):
    # reassociation lets LLVM vectorize the sum (a norm needs no fixed order); no nnan/ninf flags,
    # so NaN and inf still propagate (check_finite relies on it)
    acc = 0.0
    for i in nb.prange(g.shape[0]):
        x = np.float64(g[i])
        acc += x * x
    return acc


@register_kernel("grad_sumsq", "fused", "numba")
def grad_sumsq(g) -> float:
    """sum(g*g) accumulated in float64 (parallel reduction)."""
    return float(_sumsq(g))


@nb.njit(inline="always")
def _clip_scale_at(i, g, f, c):
    x = g[i] * f
    if x > c:
        x = c
    elif x < -c:
        x = -c
    g[i] = x


@nb.njit(parallel=True, cache=True)
def _clip_scale(g, f, c):
    n = g.shape[0]
    if n < SERIAL_MAX:
        for i in range(n):
            _clip_scale_at(i, g, f, c)
    else:
        for i in nb.prange(n):
            _clip_scale_at(i, g, f, c)


@register_kernel("clip_by_value", "fused", "numba")
def clip_by_value(g, clip):
    """Element-wise clipping (8.2.4), in place."""
    dt = g.dtype.type
    _clip_scale(g, dt(1.0), dt(clip))


@register_kernel("scale_grad", "fused", "numba")
def scale_grad(g, factor):
    """g *= factor, in place."""
    dt = g.dtype.type
    _clip_scale(g, dt(factor), dt(INF))
