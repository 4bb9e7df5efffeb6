"""NumPy reference optimizer updates (chapter 8 of Goodfellow, Bengio & Courville).

The executable specification of the fused kernels of the other backends: each function writes
the book's algorithm literally (bias-corrected moments as arrays, delta where the book puts it),
in place, on flat 1-D arrays of one float dtype. Arithmetic happens in the arrays' dtype (Python
scalars are cast to it, NumPy 2 rules), like the fused kernels.

Every update takes the optional gradient preprocessing ``wd, gscale, clip`` (see
:func:`effective_grad`): L2 weight decay, a global scale (clipping by global norm) and
element-wise clipping, applied in that order: ``g' = clip(gscale*g, -clip, clip) + wd*theta``.
"""

from __future__ import annotations

import numpy as np

from dlbench.registry import register_kernel

INF = float("inf")


def effective_grad(theta, g, wd=0.0, gscale=1.0, clip=INF):
    """g' = clip(gscale * g, -clip, clip) + wd * theta (a new array; 8.2.4 clipping, L2 decay)."""
    ge = g * gscale
    if clip != INF:
        np.clip(ge, -clip, clip, out=ge)
    if wd:
        ge += wd * theta
    return ge


@register_kernel("sgd", "fused", "numpy")
def sgd(theta, g, lr, wd=0.0, gscale=1.0, clip=INF):
    """SGD step, Algorithm 8.1: theta <- theta - lr * g (lr = epsilon_k of the schedule, eq. 8.14)."""
    g = effective_grad(theta, g, wd, gscale, clip)
    theta -= lr * g


@register_kernel("sgd_momentum", "fused", "numpy")
def sgd_momentum(theta, v, g, lr, alpha, nesterov=False, wd=0.0, gscale=1.0, clip=INF):
    """SGD with momentum, Algorithm 8.2: v <- alpha v - lr g; theta <- theta + v (in place).

    nesterov=True: Nesterov momentum (Alg. 8.3) in the change-of-variables form that needs only
    the gradient at theta (Sutskever et al. 2013; torch's form): theta <- theta + alpha v - lr g
    with the updated v. theta, v, g: 1-D arrays of one length and float dtype.
    """
    g = effective_grad(theta, g, wd, gscale, clip)
    v *= alpha
    v -= lr * g
    if nesterov:
        theta += alpha * v - lr * g
    else:
        theta += v


@register_kernel("adagrad", "fused", "numpy")
def adagrad(theta, r, g, lr, eps=1e-7, eps_inside=False, wd=0.0, gscale=1.0, clip=INF):
    """AdaGrad, Algorithm 8.4: r <- r + g*g; theta <- theta - lr g / (delta + sqrt(r)).

    eps_inside=True puts delta inside the root instead: lr g / sqrt(delta + r).
    """
    g = effective_grad(theta, g, wd, gscale, clip)
    r += g * g
    denom = np.sqrt(r + eps) if eps_inside else eps + np.sqrt(r)
    theta -= lr * g / denom


def _rms_denom(r, eps, eps_inside):
    return np.sqrt(eps + r) if eps_inside else np.sqrt(r) + eps


@register_kernel("rmsprop", "fused", "numpy")
def rmsprop(theta, r, g, lr, rho=0.9, eps=1e-6, eps_inside=True, wd=0.0, gscale=1.0, clip=INF):
    """RMSProp, Algorithm 8.5: r <- rho r + (1-rho) g*g; theta <- theta - lr g / sqrt(delta + r).

    eps_inside=False puts delta outside the root, sqrt(r) + delta (torch.optim.RMSprop's form).
    """
    g = effective_grad(theta, g, wd, gscale, clip)
    r *= rho
    r += (1 - rho) * g * g
    theta -= lr * g / _rms_denom(r, eps, eps_inside)


@register_kernel("rmsprop_momentum", "fused", "numpy")
def rmsprop_momentum(theta, r, v, g, lr, rho, eps, alpha, nesterov=False, eps_inside=True,
                     wd=0.0, gscale=1.0, clip=INF):
    """RMSProp with momentum, Algorithm 8.6 from the gradient g at the point it was taken:

    r <- rho r + (1-rho) g*g; v <- alpha v - lr g / sqrt(delta + r); then theta <- theta + v
    (heavy ball: Alg. 8.6 when g was evaluated at the interim point theta + alpha v, or
    torch.optim.RMSprop(momentum=alpha) when g was evaluated at theta), or, with nesterov=True,
    theta <- theta + alpha v - lr g / sqrt(delta + r) (Alg. 8.6 by change of variables, g at theta).
    """
    g = effective_grad(theta, g, wd, gscale, clip)
    r *= rho
    r += (1 - rho) * g * g
    u = g / _rms_denom(r, eps, eps_inside)
    v *= alpha
    v -= lr * u
    if nesterov:
        theta += alpha * v - lr * u
    else:
        theta += v


@register_kernel("adam", "fused", "numpy")
def adam(theta, s, r, g, lr, beta1, beta2, eps, t, wd=0.0, decoupled_wd=0.0, gscale=1.0, clip=INF):
    """Adam, Algorithm 8.7, at step t >= 1 (the caller counts steps; t was incremented already):

    s <- rho1 s + (1-rho1) g; r <- rho2 r + (1-rho2) g*g; s_hat = s/(1-rho1^t); r_hat = r/(1-rho2^t);
    theta <- theta - lr s_hat / (sqrt(r_hat) + delta). decoupled_wd (AdamW) first shrinks
    theta <- theta (1 - lr decoupled_wd); wd is the coupled L2 decay of Adam/torch's weight_decay.
    """
    g = effective_grad(theta, g, wd, gscale, clip)
    s *= beta1
    s += (1 - beta1) * g
    r *= beta2
    r += (1 - beta2) * g * g
    s_hat = s / (1 - beta1 ** t)
    r_hat = r / (1 - beta2 ** t)
    if decoupled_wd:
        theta *= 1 - lr * decoupled_wd
    theta -= lr * s_hat / (np.sqrt(r_hat) + eps)


@register_kernel("adadelta", "fused", "numpy")
def adadelta(theta, r, d, g, lr=1.0, rho=0.9, eps=1e-6, wd=0.0, gscale=1.0, clip=INF):
    """AdaDelta (Zeiler 2012; named in 8.5): r <- rho r + (1-rho) g*g;
    delta = -sqrt(d + eps)/sqrt(r + eps) * g; d <- rho d + (1-rho) delta^2; theta <- theta + lr delta.
    """
    g = effective_grad(theta, g, wd, gscale, clip)
    r *= rho
    r += (1 - rho) * g * g
    delta = -(np.sqrt(d + eps) / np.sqrt(r + eps)) * g
    d *= rho
    d += (1 - rho) * delta * delta
    theta += lr * delta


@register_kernel("delta_bar_delta", "fused", "numpy")
def delta_bar_delta(theta, rate, bar, g, kappa, phi, mix, wd=0.0, gscale=1.0, clip=INF):
    """Delta-bar-delta (Jacobs 1988; named in 8.5), full batch: one learning rate per parameter.

    With bar the exponential average of past gradients: where bar*g > 0 (the partial derivative
    kept its sign) rate <- rate + kappa; where bar*g < 0 rate <- rate (1 - phi); then
    bar <- (1-mix) g + mix bar and theta <- theta - rate g (with the updated rate).
    """
    g = effective_grad(theta, g, wd, gscale, clip)
    sign = bar * g
    rate[sign < 0] *= 1 - phi
    rate[sign > 0] += kappa
    bar *= mix
    bar += (1 - mix) * g
    theta -= rate * g


@register_kernel("param_average", "fused", "numpy")
def param_average(avg, theta, w):
    """Polyak averaging (8.7.3): avg <- avg + w (theta - avg).

    w = 1/t gives the running mean theta_hat(t) = (1/t) sum_i theta(i); w = 1 - alpha gives the
    exponential moving average of eq. 8.39, theta_hat <- alpha theta_hat + (1-alpha) theta.
    """
    avg += w * (theta - avg)


@register_kernel("grad_sumsq", "fused", "numpy")
def grad_sumsq(g) -> float:
    """sum(g*g) accumulated in float64 (squared L2 norm; finite iff every element is finite)."""
    g64 = g.astype(np.float64, copy=False)
    return float(np.dot(g64, g64))


@register_kernel("clip_by_value", "fused", "numpy")
def clip_by_value(g, clip):
    """Element-wise gradient clipping (8.2.4 / 10.11.1): g <- min(max(g, -clip), clip), in place."""
    np.clip(g, -clip, clip, out=g)


@register_kernel("scale_grad", "fused", "numpy")
def scale_grad(g, factor):
    """g <- factor g in place (clipping by norm: factor = v/||g|| when ||g|| > v)."""
    g *= factor
