"""Polyak averaging and its exponential moving average (sec. 8.7.3, eq. 8.39) as fused kernels.

    avg = PolyakAverage(backend="numba")          # or EMA(alpha=0.999)
    astate = avg.init(params)
    ...; opt.step(params, grads, state); avg.update(params, astate)
    theta_hat = avg.average(astate)               # list of arrays (views of the state)

Both run the one kernel ``param_average``: avg <- avg + w (theta - avg), one pass reading theta
and avg and writing avg (12 B/param in float32).
"""

from __future__ import annotations

from dlbench.optim.arrays import as_list, check_param, copy_like, flat_view, zeros_like
from dlbench.optim.first_order import _unit_interval
from dlbench.registry import get_kernel


class PolyakAverage:
    """Running mean of the iterates, theta_hat(t) = (1/t) sum_{i=1..t} theta(i) (sec. 8.7.3).

    ``update`` after each optimizer step adds the current parameters with weight w = 1/t.
    """

    op = "param_average"

    def __init__(self, backend: str = "numba", algorithm: str = "fused"):
        self.backend = backend
        self.kernel = get_kernel(self.op, algorithm, backend)

    def init(self, params) -> dict:
        """State ``{"avg": [arrays], "count": 0}``; the first ``update`` sets avg = theta."""
        ps = as_list(params)
        for p in ps:
            check_param(p)
        return {"avg": [zeros_like(p) for p in ps], "count": 0}

    def _weight(self, state) -> float:
        return 1.0 / state["count"]

    def update(self, params, state: dict) -> None:
        """Fold the current ``params`` into the average, in place."""
        ps = as_list(params)
        avgs = state["avg"]
        if len(ps) != len(avgs) or any(tuple(p.shape) != tuple(a.shape) for p, a in zip(ps, avgs)):
            raise ValueError("params do not match the averaged arrays (count or shapes); call init")
        state["count"] += 1
        w = self._weight(state)
        for p, a in zip(ps, state["avg"]):
            self.kernel(flat_view(a), flat_view(p), w)

    @staticmethod
    def average(state: dict) -> list:
        """The averaged parameters (the state's arrays themselves, not copies)."""
        return state["avg"]


class EMA(PolyakAverage):
    """Exponential moving average of the iterates, eq. 8.39: theta_hat <- alpha theta_hat + (1 - alpha) theta.

    ``init`` starts the average at the current parameters; alpha in [0, 1) (0.999 typical).
    """

    def __init__(self, alpha: float = 0.999, backend: str = "numba", algorithm: str = "fused"):
        super().__init__(backend, algorithm)
        self.alpha = _unit_interval("alpha", alpha)

    def init(self, params) -> dict:
        ps = as_list(params)
        for p in ps:
            check_param(p)
        return {"avg": [copy_like(p) for p in ps], "count": 0}

    def _weight(self, state) -> float:
        return 1.0 - self.alpha
