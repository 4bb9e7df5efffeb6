"""numba-cuda pooling (sec. 9.3), batch norm (eq. 8.35-8.37) and tiled / locally connected
convolution (eq. 9.9, 9.10) against the numpy reference, on the CUDA simulator (tiny shapes).

float64 to 1e-10 relative, float32 to 1e-4 relative (times sqrt of the reduction length for the
convolutions, as for the CPU backends).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from dlbench import ops
from dlbench.backends import backend_status
from dlbench.registry import get_kernel

pytestmark = pytest.mark.skipif(not backend_status("numba-cuda").available,
                                reason=backend_status("numba-cuda").reason or "numba-cuda unavailable")
CUDA = "numba-cuda"


@pytest.fixture(autouse=True, scope="module")
def fast_thread_switching():
    """Short GIL switch interval: the simulator's syncthreads() polling gets 5x cheaper."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(5e-5)
    yield
    sys.setswitchinterval(old)


def assert_close(got, want, dtype, fan=1):
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-30)
    err = float(np.abs(got - want).max(initial=0.0)) / scale
    tol = 1e-10 if dtype == "float64" else 1e-4 * math.sqrt(fan)
    assert err <= tol, f"relative error {err:.3g} > {tol:.3g}"


def rng_array(shape, dtype, seed=0, loc=0.0, scale=1.0):
    return (loc + scale * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


# ------------------------------------------------------------------ pooling
POOL_CASES = [(2, None, 0, False), (3, 2, 1, True), ((2, 3), (1, 2), ((1, 0), (0, 2)), False)]


@pytest.mark.parametrize("kind", ["max", "avg", "l2", "gaussian"])
def test_pool2d_forward_backward(kind):
    dtype = "float64" if kind in ("max", "gaussian") else "float32"
    x = rng_array((1, 2, 5, 6), dtype, seed=1)
    x[0, 0, 1, 1] = x[0, 0, 1, 2]            # a tie: the gradient goes to the first maximum
    for size, stride, pad, ceil in POOL_CASES:
        kw = dict(kind=kind, size=size, stride=stride, padding=pad, ceil_mode=ceil, sigma=0.8)
        y = ops.pool2d(x, backend=CUDA, **kw)
        want = ops.pool2d(x, backend="numpy", **kw)
        assert y.dtype == np.dtype(dtype)
        assert_close(y, want, dtype)
        dy = rng_array(want.shape, dtype, seed=2)
        assert_close(ops.pool2d_backward(dy, x, backend=CUDA, **kw),
                     ops.pool2d_backward(dy, x, backend="numpy", **kw), dtype)


@pytest.mark.parametrize("kind", ["max", "avg", "l2"])
def test_adaptive_pool2d_forward_backward(kind):
    x = rng_array((2, 1, 5, 7), "float64", seed=3)
    for out in [(2, 3), (5, 7), (3, 1)]:
        y = ops.adaptive_pool2d(x, out, kind, backend=CUDA)
        assert_close(y, ops.adaptive_pool2d(x, out, kind, backend="numpy"), "float64")
        dy = rng_array(y.shape, "float64", seed=4)
        assert_close(ops.adaptive_pool2d_backward(dy, x, out, kind, backend=CUDA),
                     ops.adaptive_pool2d_backward(dy, x, out, kind, backend="numpy"), "float64")


def test_maxout_and_global_average_pooling():
    x = rng_array((2, 6, 2, 3), "float32", seed=5)
    y = ops.maxout(x, 3, backend=CUDA)
    assert_close(y, ops.maxout(x, 3, backend="numpy"), "float32")
    dy = rng_array(y.shape, "float32", seed=6)
    assert_close(ops.maxout_backward(dy, x, 3, backend=CUDA), ops.maxout_backward(dy, x, 3, backend="numpy"),
                 "float32")
    g = ops.global_avg_pool2d(x, backend=CUDA)
    assert_close(g, ops.global_avg_pool2d(x, backend="numpy"), "float32")
    assert_close(ops.global_avg_pool2d_backward(g, x.shape, backend=CUDA),
                 ops.global_avg_pool2d_backward(g, x.shape, backend="numpy"), "float32")


def test_max_pool_propagates_nan():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan
    y = ops.pool2d(x, "max", 2, backend=CUDA)
    assert np.isnan(y[0, 0, 0, 0]) and not np.isnan(y[0, 0, 1, 1])


# ------------------------------------------------------------------ batch norm
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", [(3, 2, 2, 3), (5, 3)], ids=["conv", "dense"])
def test_batch_norm_train_and_eval(shape, dtype):
    c = shape[1]
    x = rng_array(shape, dtype, seed=7, loc=3.0, scale=2.0)     # offset mean: the shifted sums matter
    gamma = rng_array((c,), dtype, seed=8)
    beta = rng_array((c,), dtype, seed=9)
    y, mean, invstd = ops.batch_norm(x, gamma, beta, training=True, return_stats=True, backend=CUDA)
    ry, rmean, rinv = ops.batch_norm(x, gamma, beta, training=True, return_stats=True, backend="numpy")
    for a, b in ((y, ry), (mean, rmean), (invstd, rinv)):
        assert a.dtype == np.dtype(dtype)
        assert_close(a, b, dtype)
    dy = rng_array(shape, dtype, seed=10)
    for a, b in zip(ops.batch_norm_backward(dy, x, gamma, rmean, rinv, training=True, backend=CUDA),
                    ops.batch_norm_backward(dy, x, gamma, rmean, rinv, training=True, backend="numpy")):
        assert_close(a, b, dtype)
    rm = rng_array((c,), dtype, seed=11)
    rv = (np.abs(rng_array((c,), dtype, seed=12)) + 0.5).astype(dtype)
    assert_close(ops.batch_norm(x, gamma, beta, rm, rv, training=False, backend=CUDA),
                 ops.batch_norm(x, gamma, beta, rm, rv, training=False, backend="numpy"), dtype)
    for a, b in zip(ops.batch_norm_backward(dy, x, gamma, training=False, running_mean=rm, running_var=rv,
                                            backend=CUDA),
                    ops.batch_norm_backward(dy, x, gamma, training=False, running_mean=rm, running_var=rv,
                                            backend="numpy")):
        assert_close(a, b, dtype)


def test_batch_norm_running_statistics_update():
    x = rng_array((4, 2, 3, 3), "float64", seed=13)
    rm_a, rv_a = np.zeros(2), np.ones(2)
    rm_b, rv_b = np.zeros(2), np.ones(2)
    ops.batch_norm(x, np.ones(2), np.zeros(2), rm_a, rv_a, training=True, backend=CUDA)
    ops.batch_norm(x, np.ones(2), np.zeros(2), rm_b, rv_b, training=True, backend="numpy")
    assert_close(rm_a, rm_b, "float64")
    assert_close(rv_a, rv_b, "float64")


# ------------------------------------------------------------------ tiled and locally connected
@pytest.mark.parametrize("th,tw,stride,padding", [(2, 2, 1, 0), (1, 1, 2, 1), (3, 1, 1, "same")])
def test_tiled_conv2d_forward_backward(th, tw, stride, padding):
    dtype = "float64" if th * tw > 1 else "float32"
    x = rng_array((2, 2, 6, 5), dtype, seed=14)
    w = rng_array((th, tw, 3, 2, 3, 2), dtype, seed=15)
    b = rng_array((th, tw, 3), dtype, seed=16)
    y = ops.tiled_conv2d(x, w, b, stride, padding, backend=CUDA)
    assert_close(y, ops.tiled_conv2d(x, w, b, stride, padding, backend="numpy"), dtype, 12)
    dy = rng_array(y.shape, dtype, seed=17)
    got = ops.tiled_conv2d_backward(dy, x, w, stride, padding, backend=CUDA)
    want = ops.tiled_conv2d_backward(dy, x, w, stride, padding, backend="numpy")
    for a, r, fan in zip(got, want, (3 * 6, 2 * 4 * 4, 2 * 4 * 4)):
        assert_close(a, r, dtype, fan)


def test_local_conv2d_forward_backward_and_device_inputs():
    from numba import cuda

    x = rng_array((2, 2, 5, 4), "float64", seed=18)
    w = rng_array((3, 3, 2, 2, 3, 2), "float64", seed=19)
    b = rng_array((3, 3, 2), "float64", seed=20)
    y = ops.local_conv2d(x, w, b, 1, 0, backend=CUDA)
    assert_close(y, ops.local_conv2d(x, w, b, 1, 0, backend="numpy"), "float64")
    dy = rng_array(y.shape, "float64", seed=21)
    for a, r in zip(ops.local_conv2d_backward(dy, x, w, 1, 0, backend=CUDA),
                    ops.local_conv2d_backward(dy, x, w, 1, 0, backend="numpy")):
        assert_close(a, r, "float64")
    # device inputs: the kernel returns a device array, equal to the host result
    kern = get_kernel("local_conv2d", "direct", CUDA)
    dev = kern(cuda.to_device(x[:, :, :5, :4]), cuda.to_device(w), cuda.to_device(b), (1, 1))
    assert not isinstance(dev, np.ndarray)
    assert_close(dev.copy_to_host(), y, "float64")
