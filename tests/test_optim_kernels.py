"""Every fused optimizer kernel on every backend against the NumPy reference, step for step.

100 steps of fresh random gradients; parameters and every state array must agree to
rtol 1e-5 (float32) / 1e-6 (float64) at every step (atol scaled by the array's magnitude, since
state entries pass through zero). Options that change the update (Nesterov, delta placement,
weight decay, clipping, decoupled decay) are switched on in some cases. CUDA kernels run on the
simulator with a tiny array.
"""

import zlib

import numpy as np
import pytest

from dlbench.registry import get_kernel

STEPS = 100
# op -> list of (number of state arrays, kwargs, initial fill of the state arrays)
CASES = {
    "sgd": (0, {"lr": 0.05, "wd": 0.01}),
    "sgd_momentum": (1, {"lr": 0.05, "alpha": 0.9, "nesterov": True, "clip": 1.5}),
    "adagrad": (1, {"lr": 0.1, "eps": 1e-7, "eps_inside": True, "gscale": 0.7}),
    "rmsprop": (1, {"lr": 0.01, "rho": 0.9, "eps": 1e-6, "eps_inside": True, "wd": 0.01}),
    "rmsprop_momentum": (2, {"lr": 0.01, "rho": 0.9, "eps": 1e-6, "alpha": 0.9, "nesterov": True,
                             "eps_inside": False}),
    "adam": (2, {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "decoupled_wd": 0.1,
                 "clip": 2.0}),
    "adadelta": (2, {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "wd": 0.001}),
    "delta_bar_delta": (2, {"kappa": 0.001, "phi": 0.1, "mix": 0.7}),
}
SIZES = {"numba": 1037, "cython": 1037, "numba-cuda": 33}
BIG = 2**17 + 5          # above the one-thread thresholds (Numba, Cython): every thread's block and tail
TOL = {"float32": 1e-5, "float64": 1e-6}


def _state(op, ns, n, dtype):
    st = [np.zeros(n, dtype) for _ in range(ns)]
    if op == "delta_bar_delta":
        st[0][:] = 0.01            # per-parameter rates start at the initial rate
    return st


def _close(got, want, tol, what):
    scale = float(np.max(np.abs(want))) or 1.0
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, err_msg=what)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", ["numba", "cython", "numba-cuda"])
@pytest.mark.parametrize("op", list(CASES))
def test_kernel_matches_reference_for_100_steps(op, backend, dtype):
    ns, kw = CASES[op]
    ref, kern = get_kernel(op, "fused", "numpy"), get_kernel(op, "fused", backend)
    n = SIZES[backend]
    rng = np.random.default_rng(zlib.crc32(f"{op}{backend}{dtype}".encode()))
    theta = rng.standard_normal(n).astype(dtype)
    st = _state(op, ns, n, dtype)
    theta2, st2 = theta.copy(), [s.copy() for s in st]
    tol = TOL[dtype]
    for t in range(1, STEPS + 1):
        g = rng.standard_normal(n).astype(dtype)
        extra = {"t": t} if op == "adam" else {}
        ref(theta, *st, g, **kw, **extra)
        kern(theta2, *st2, g, **kw, **extra)
        if t % 10 == 0 or t == 1:
            _close(theta2, theta, tol, f"{op}/{backend} theta at step {t}")
            for i, (a, b) in enumerate(zip(st2, st)):
                _close(a, b, tol, f"{op}/{backend} state {i} at step {t}")
    assert theta.dtype == np.dtype(dtype) and theta2.dtype == np.dtype(dtype)


@pytest.mark.parametrize("op", ["adam", "rmsprop_momentum", "delta_bar_delta"])
def test_threaded_kernels_match_reference(op):
    """Large arrays: every thread's block and the scalar tails (5 steps)."""
    ns, kw = CASES[op]
    for backend in ("numba", "cython"):
        kern = get_kernel(op, "fused", backend)
        rng = np.random.default_rng(11)
        theta = rng.standard_normal(BIG).astype(np.float32)
        st = _state(op, ns, BIG, np.float32)
        theta2, st2 = theta.copy(), [s.copy() for s in st]
        for t in range(1, 6):
            g = rng.standard_normal(BIG).astype(np.float32)
            extra = {"t": t} if op == "adam" else {}
            get_kernel(op, "fused", "numpy")(theta, *st, g, **kw, **extra)
            kern(theta2, *st2, g, **kw, **extra)
        _close(theta2, theta, 1e-5, f"{op}/{backend} theta")


@pytest.mark.parametrize("backend", ["numpy", "numba", "cython", "numba-cuda"])
def test_average_clip_and_norm_kernels(backend):
    rng = np.random.default_rng(5)
    n = 41 if backend == "numba-cuda" else BIG
    for dtype in ("float32", "float64"):
        theta = rng.standard_normal(n).astype(dtype)
        avg = rng.standard_normal(n).astype(dtype)
        want = avg + 0.25 * (theta - avg)
        get_kernel("param_average", "fused", backend)(avg, theta, 0.25)
        _close(avg, want, TOL[dtype], "param_average")
        g = (3 * rng.standard_normal(n)).astype(dtype)
        g64 = g.astype(np.float64)
        assert get_kernel("grad_sumsq", "fused", backend)(g) == pytest.approx(float(g64 @ g64), rel=1e-10)
        gc = g.copy()
        get_kernel("clip_by_value", "fused", backend)(gc, 1.0)
        np.testing.assert_array_equal(gc, np.clip(g, -1, 1))
        get_kernel("scale_grad", "fused", backend)(gc, 0.5)
        np.testing.assert_array_equal(gc, np.clip(g, -1, 1) * np.asarray(0.5, dtype))


@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_kernels_handle_empty_and_tiny_arrays(backend):
    """Lengths below one SIMD vector (scalar tail only) and zero length."""
    for n in (0, 1, 3, 7, 9, 17):
        theta = np.linspace(-1, 1, n).astype(np.float32)
        s, r = np.zeros(n, np.float32), np.zeros(n, np.float32)
        g = np.linspace(1, 2, n).astype(np.float32)
        t2, s2, r2 = theta.copy(), s.copy(), r.copy()
        get_kernel("adam", "fused", "numpy")(theta, s, r, g, 0.1, 0.9, 0.999, 1e-8, 1)
        get_kernel("adam", "fused", backend)(t2, s2, r2, g, 0.1, 0.9, 0.999, 1e-8, 1)
        np.testing.assert_allclose(t2, theta, rtol=1e-6)


def test_cython_rejects_mismatched_lengths():
    pytest.importorskip("dlbench.kernels.cython.optim")
    with pytest.raises(ValueError, match="different lengths"):
        get_kernel("adam", "fused", "cython")(np.zeros(4, np.float32), np.zeros(4, np.float32),
                                              np.zeros(3, np.float32), np.zeros(4, np.float32),
                                              0.1, 0.9, 0.999, 1e-8, 1)
