"""Registers the compiled Cython optimizer updates (``optim.pyx``)."""

from dlbench.kernels.cython import optim as _cy
from dlbench.registry import register_kernel


@register_kernel("sgd_momentum", "fused", "cython")
def sgd_momentum(theta, v, g, lr, alpha):
    """Algorithm 8.2 fused with OpenMP: v = alpha*v - lr*g; theta += v (1-D contiguous)."""
    _cy.momentum(theta, v, g, lr, alpha)
