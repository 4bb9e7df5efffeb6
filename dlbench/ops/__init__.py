"""Ops front-end: NumPy arrays in and out (NCHW, float32 default, float64 supported).

Each function validates and normalises its arguments, then dispatches to the registered kernel
``(op, algorithm, backend)``; ``algorithm="auto"`` picks the fastest eligible one (cached).
"""

from dlbench.ops.batchnorm import *  # noqa: F401,F403
from dlbench.ops.conv import *  # noqa: F401,F403
from dlbench.ops.local import *  # noqa: F401,F403
from dlbench.ops.pool import *  # noqa: F401,F403
from dlbench.ops.rnn import *  # noqa: F401,F403
