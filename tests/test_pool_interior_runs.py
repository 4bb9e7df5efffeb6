"""Pooling (section 9.3): the compiled kernels' specialised interior runs (constant stride, full
windows: (stride, size) = (2, 3), (2, 2), (1, 3) and the generic constant-stride loop) with
padding, odd widths and ties, forward and backward vs the NumPy reference."""

import numpy as np
import pytest

from dlbench import ops
from dlbench.backends import backend_status

COMPILED = [pytest.param(b, marks=pytest.mark.skipif(not backend_status(b).available,
                                                      reason=backend_status(b).reason))
            for b in ("numba", "cython")]
TOL = {"float64": dict(rtol=1e-12, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-5)}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("kind", ["max", "avg", "l2", "gaussian"])
@pytest.mark.parametrize("size,stride,pad", [(3, 2, 1), (3, 2, 0), (2, 2, 0), (2, 2, 1), (3, 1, 1),
                                             (3, 1, 0), (4, 3, 1), (5, 2, 2)])
@pytest.mark.parametrize("hw", [(17, 23), (12, 31)])
def test_interior_runs_match_reference(backend, dtype, kind, size, stride, pad, hw):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3) + hw)
    if kind == "max":
        x = np.round(x * 2)                     # ties: the first (row-major) maximum must win
    x = x.astype(dtype)
    args = (kind, size, stride, pad, False, 1.0)
    y = ops.pool2d(x, *args, backend=backend)
    np.testing.assert_allclose(y, ops.pool2d(x, *args, backend="numpy"), **TOL[dtype])
    dy = rng.standard_normal(y.shape).astype(dtype)
    yl2 = y if kind == "l2" else None
    dx = ops.pool2d_backward(dy, x, *args, y=yl2, backend=backend)
    np.testing.assert_allclose(dx, ops.pool2d_backward(dy, x, *args, y=yl2, backend="numpy"), **TOL[dtype])
    if kind == "max":
        _, idx = ops.pool2d(x, *args, return_indices=True, backend=backend)
        np.testing.assert_array_equal(idx, ops.pool2d(x, *args, return_indices=True, backend="numpy")[1])
