"""The foundation's end-to-end op: SGD with momentum (Algorithm 8.2) on every backend."""

import numpy as np
import pytest
from dlbench.suites.smoke import ALPHA, LR, bind_momentum, momentum_inputs

import dlbench as db
from dlbench import optim
from dlbench.registry import get_kernel
from dlbench.suite import Variant, get_suite

BACKENDS = ["numpy", "numba", "cython", "numba-cuda"]


def reference_steps(theta, v, g, steps):
    theta, v = theta.astype(np.float64), v.astype(np.float64)
    for _ in range(steps):
        v = ALPHA * v - LR * g
        theta = theta + v
    return theta, v


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_momentum_matches_algorithm_8_2(backend, dtype):
    n = 1000 if backend == "numba-cuda" else 10_001
    theta, v, g = momentum_inputs(n, dtype, seed=3)
    want_theta, want_v = reference_steps(theta, v, g.astype(np.float64), steps=5)
    kern = get_kernel("sgd_momentum", "fused", backend)
    for _ in range(5):
        kern(theta, v, g, LR, ALPHA)
    rtol = 1e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(theta, want_theta, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(v, want_v, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_momentum_optimizer_api(backend):
    params = [np.ones((3, 4), np.float32), np.ones(5, np.float32)]
    grads = [np.full((3, 4), 2.0, np.float32), np.full(5, -1.0, np.float32)]
    opt = optim.Momentum(lr=0.1, alpha=0.5, backend=backend)
    state = opt.init(params)
    opt.step(params, grads, state)
    opt.step(params, grads, state)
    # v1 = -0.1 g ; v2 = 0.5 v1 - 0.1 g = -0.15 g ; theta = 1 + v1 + v2 = 1 - 0.25 g
    np.testing.assert_allclose(params[0], 1 - 0.25 * 2.0, rtol=1e-6)
    np.testing.assert_allclose(params[1], 1 + 0.25, rtol=1e-6)


def test_momentum_bad_input():
    with pytest.raises(ValueError, match="lr"):
        optim.Momentum(lr=-1.0)
    opt = optim.Momentum(backend="numpy")
    p = [np.zeros(3, np.float32)]
    with pytest.raises(ValueError, match="differ"):
        opt.step(p, [np.zeros(4, np.float32)], opt.init(p))


def test_smoke_suite_binds_every_available_backend():
    cases = get_suite("smoke").cases(True)
    assert cases and all(c.op == "sgd_momentum" for c in cases)
    assert {v.backend for v in cases[0].variants} >= set(BACKENDS) | {"torch"}
    bound = bind_momentum(Variant("numba", "fused"), "float32", 100)
    bound.fn()
    assert set(db.kernels(op="sgd_momentum").backend) >= set(BACKENDS)
