"""NumPy reference optimizer updates (chapter 8 of Goodfellow, Bengio & Courville).

All updates work in place on flat 1-D arrays of one dtype; they are the executable
specification of the fused kernels in the other backends.
"""

import numpy as np

from dlbench.registry import register_kernel


@register_kernel("sgd_momentum", "fused", "numpy")
def sgd_momentum(theta: np.ndarray, v: np.ndarray, g: np.ndarray, lr: float, alpha: float) -> None:
    """SGD with momentum, Algorithm 8.2: v <- alpha*v - lr*g ; theta <- theta + v (in place).

    theta, v, g: 1-D arrays of the same length and float dtype. lr (epsilon) and alpha are scalars.
    """
    v *= alpha
    v -= lr * g
    theta += v
