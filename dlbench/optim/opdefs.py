"""The optimizer ops: what each fused update computes and the minimal work it must do.

Byte models count the compulsory traffic of one step over ``n`` parameters: every array the
update reads once plus every array it writes once (in place, so a written array is also read;
no write-allocate). Adam in float32, for example, reads theta, s, r, g and writes theta, s, r:
7 x 4 = 28 B/param. FLOP models count the arithmetic of the book's update per element, a
square root or a division counting as one operation; the optional clipping / weight decay
terms are not counted.
"""

from __future__ import annotations

import numpy as np

from dlbench.registry import define_op

# op -> (arrays moved per element (reads + writes), flops per element, description, equation)
OPTIM_OPS: dict[str, tuple[int, int, str, str]] = {
    "sgd": (3, 2, "SGD step theta -= lr g, in place", "Algorithm 8.1, eq. 8.14 (schedule)"),
    "sgd_momentum": (5, 4, "SGD with momentum (heavy ball or Nesterov), in place",
                     "Algorithm 8.2 / 8.3"),
    "adagrad": (5, 6, "AdaGrad update, in place", "Algorithm 8.4"),
    "rmsprop": (5, 8, "RMSProp update, in place", "Algorithm 8.5"),
    "rmsprop_momentum": (7, 11, "RMSProp with (Nesterov) momentum, in place", "Algorithm 8.6"),
    "adam": (7, 12, "Adam update with bias correction, in place", "Algorithm 8.7"),
    "adadelta": (7, 14, "AdaDelta update, in place", "sec. 8.5 (Zeiler 2012)"),
    "delta_bar_delta": (7, 7, "delta-bar-delta per-parameter rates, in place",
                        "sec. 8.5 (Jacobs 1988)"),
    "param_average": (3, 3, "Polyak average / exponential moving average of the parameters",
                      "sec. 8.7.3, eq. 8.39"),
    "grad_sumsq": (1, 2, "squared global gradient norm (float64 accumulation)", "sec. 8.2.4"),
    "clip_by_value": (2, 2, "element-wise gradient clipping, in place", "sec. 8.2.4, 10.11.1"),
    "scale_grad": (2, 1, "gradient scaling (clipping by norm), in place", "sec. 8.2.4, 10.11.1"),
}


def itemsize(dtype) -> int:
    return np.dtype(dtype).itemsize


def bytes_per_param(op: str, dtype="float32") -> int:
    """Minimal bytes one update moves per parameter (e.g. adam, float32: 28)."""
    return OPTIM_OPS[op][0] * itemsize(dtype)


def _define_all() -> None:
    for name, (arrays, flops, desc, eq) in OPTIM_OPS.items():
        define_op(name,
                  flops=lambda n, dtype="float32", _f=flops, **_: float(_f) * n,
                  bytes=lambda n, dtype="float32", _a=arrays, **_: float(_a) * n * itemsize(dtype),
                  description=desc, equation=eq)


_define_all()
