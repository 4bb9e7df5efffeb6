"""Optimizers of chapter 8 as fused in-place kernels on every backend.

    opt = optim.Momentum(lr=0.01, alpha=0.9, backend="numba")
    state = opt.init(params)          # params: one array or a list of arrays
    opt.step(params, grads, state)    # in place
"""

from __future__ import annotations

import numpy as np

from dlbench.registry import define_op, get_kernel


def _itemsize(dtype) -> int:
    return np.dtype(dtype).itemsize


define_op("sgd_momentum",
          flops=lambda n, dtype="float32", **_: 4.0 * n,
          bytes=lambda n, dtype="float32", **_: 5.0 * n * _itemsize(dtype),   # read theta,v,g; write theta,v
          description="SGD with momentum update, in place", equation="Algorithm 8.2")


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


class Momentum:
    """SGD with momentum (Algorithm 8.2): v <- alpha v - lr g; theta <- theta + v.

    lr: learning rate epsilon > 0; alpha: momentum in [0, 1); backend: numpy, numba, cython,
    numba-cuda. Parameters are updated in place; state holds one velocity per parameter array.
    """

    op = "sgd_momentum"

    def __init__(self, lr: float = 0.01, alpha: float = 0.9, backend: str = "numba",
                 algorithm: str = "fused"):
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not 0 <= alpha < 1:
            raise ValueError(f"alpha must be in [0, 1), got {alpha}")
        self.lr, self.alpha = float(lr), float(alpha)
        self.kernel = get_kernel(self.op, algorithm, backend)

    def init(self, params):
        return {"v": [np.zeros_like(p) for p in _as_list(params)]}

    def step(self, params, grads, state) -> None:
        ps, gs = _as_list(params), _as_list(grads)
        if len(ps) != len(gs):
            raise ValueError(f"{len(ps)} parameter arrays but {len(gs)} gradient arrays")
        for p, g, v in zip(ps, gs, state["v"]):
            if p.shape != g.shape or p.dtype != g.dtype:
                raise ValueError(f"param {p.shape} {p.dtype} and grad {g.shape} {g.dtype} differ")
            self.kernel(p.reshape(-1), v.reshape(-1), g.reshape(-1), self.lr, self.alpha)
