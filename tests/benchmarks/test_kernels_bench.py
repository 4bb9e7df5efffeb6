"""pytest-benchmark: one representative kernel per op family, grouped by op, parametrized by backend.

Families (the op each one times): ``sgd_momentum`` (Alg. 8.2), ``adam`` (Alg. 8.7), ``conv2d``
(eq. 9.7-9.8), ``pool2d`` (sec. 9.3), ``batch_norm`` (eq. 8.35-8.37), ``rnn_forward`` (eq.
10.8-10.11). Shapes are small and rounds few (``DLBENCH_BENCH_ROUNDS``, default 5, after one
warm-up round that absorbs JIT compilation), so the whole file is a quick regression probe:

    pytest tests/benchmarks --benchmark-json=results/pytest-benchmark.json
    dlbench report results/pytest-benchmark.json

A family whose op or backend kernel does not exist (yet) is skipped with the reason; the torch
peer runs where torch has the op. ``extra_info`` carries the op, params, backend, algorithm,
dtype and the FLOP/byte counts from the op's models, which ``dlbench report`` turns into
GFLOP/s and GB/s. Under the CUDA simulator (the test session default) numba-cuda is skipped:
simulated timings mean nothing.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

ROUNDS = int(os.environ.get("DLBENCH_BENCH_ROUNDS", "5"))
BACKENDS = ["numpy", "numba", "cython", "numba-cuda", "torch"]
PREFERRED_ALGORITHMS = ("default", "fused", "direct", "im2col", "naive")
DTYPE = "float32"


def _rng():
    return np.random.default_rng(0)


def _algorithm(op: str, backend: str) -> str:
    """The algorithm to time for (op, backend): a preferred one if registered, else the first."""
    from dlbench.registry import find_kernels

    algs = sorted(k.algorithm for k in find_kernels(op=op, backend=backend))
    if not algs:
        from dlbench.registry import KERNELS

        if not any(k[0] == op for k in KERNELS):
            pytest.skip(f"op {op!r} is not implemented yet")
        pytest.skip(f"no {backend} kernel for {op!r} yet")
    return next((a for a in PREFERRED_ALGORITHMS if a in algs), algs[0])


def _front_end(module: str, name: str):
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        pytest.skip(f"{module}.{name} is not available yet: {e}")


# ------------------------------------------------------------------------------ families
# each returns (fn, params for the op's FLOP/byte models, algorithm)
def momentum(backend):
    n, lr, alpha = 100_000, 0.01, 0.9
    r = _rng()
    theta, v, g = (r.standard_normal(n).astype(DTYPE) for _ in range(3))
    if backend == "torch":
        import torch

        p = torch.nn.Parameter(torch.from_numpy(theta))
        p.grad = torch.from_numpy(g)
        opt = torch.optim.SGD([p], lr=lr, momentum=alpha, foreach=True)
        return opt.step, {"n": n}, "foreach"
    from dlbench.registry import get_kernel

    alg = _algorithm("sgd_momentum", backend)
    kern = get_kernel("sgd_momentum", alg, backend)
    return (lambda: kern(theta, v, g, lr, alpha)), {"n": n}, alg


def adam(backend):
    n = 100_000
    r = _rng()
    theta, g = r.standard_normal(n).astype(DTYPE), r.standard_normal(n).astype(DTYPE)
    if backend == "torch":
        import torch

        p = torch.nn.Parameter(torch.from_numpy(theta))
        p.grad = torch.from_numpy(g)
        opt = torch.optim.Adam([p], lr=1e-3, foreach=True)
        return opt.step, {"n": n}, "foreach"
    _algorithm("adam", backend)
    Adam = _front_end("dlbench.optim", "Adam")
    opt = Adam(lr=1e-3, backend=backend)
    state = opt.init(theta)
    return (lambda: opt.step(theta, g, state)), {"n": n}, "default"


def conv2d(backend):
    N, C, H, W, K, R, S = 4, 16, 16, 16, 16, 3, 3
    r = _rng()
    x = r.standard_normal((N, C, H, W)).astype(DTYPE)
    w = r.standard_normal((K, C, R, S)).astype(DTYPE)
    params = {"N": N, "C": C, "H": H, "W": W, "K": K, "R": R, "S": S, "stride": 1, "padding": 1}
    if backend == "torch":
        import torch
        import torch.nn.functional as F

        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        return (lambda: F.conv2d(tx, tw, padding=1)), params, "oneDNN"
    alg = _algorithm("conv2d", backend)
    f = _front_end("dlbench.ops", "conv2d")
    return (lambda: f(x, w, padding=1, algorithm=alg, backend=backend)), params, alg


def pool2d(backend):
    n, c, h, w = 8, 16, 32, 32
    x = _rng().standard_normal((n, c, h, w)).astype(DTYPE)
    params = {"n": n, "c": c, "h": h, "w": w, "size": 2, "stride": 2, "kind": "max"}
    if backend == "torch":
        import torch
        import torch.nn.functional as F

        tx = torch.from_numpy(x)
        return (lambda: F.max_pool2d(tx, 2)), params, "max_pool2d"
    alg = _algorithm("pool2d", backend)
    f = _front_end("dlbench.ops", "pool2d")
    return (lambda: f(x, kind="max", size=2, algorithm=alg, backend=backend)), params, alg


def batch_norm(backend):
    shape = (16, 32, 16, 16)
    r = _rng()
    x = r.standard_normal(shape).astype(DTYPE)
    gamma, beta = np.ones(shape[1], DTYPE), np.zeros(shape[1], DTYPE)
    params = {"shape": list(shape), "training": True}
    if backend == "torch":
        import torch
        import torch.nn.functional as F

        tx, tg, tb = torch.from_numpy(x), torch.from_numpy(gamma), torch.from_numpy(beta)
        return (lambda: F.batch_norm(tx, None, None, tg, tb, training=True)), params, "native"
    alg = _algorithm("batch_norm", backend)
    f = _front_end("dlbench.ops", "batch_norm")
    return (lambda: f(x, gamma, beta, algorithm=alg, backend=backend)), params, alg


def rnn_forward(backend):
    tau, batch, n_in, hidden, n_out = 16, 8, 16, 32, 10
    r = _rng()
    x = r.standard_normal((tau, batch, n_in)).astype(DTYPE)
    U = (0.1 * r.standard_normal((hidden, n_in))).astype(DTYPE)
    W = (0.1 * r.standard_normal((hidden, hidden))).astype(DTYPE)
    b = np.zeros(hidden, DTYPE)
    V = (0.1 * r.standard_normal((n_out, hidden))).astype(DTYPE)
    params = {"tau": tau, "batch": batch, "n_in": n_in, "hidden": hidden, "n_out": n_out}
    if backend == "torch":
        pytest.skip("torch has no vanilla-RNN forward with an output layer of this form (eq. 10.8-10.10)")
    alg = _algorithm("rnn_forward", backend)
    f = _front_end("dlbench.ops", "rnn_forward")
    return (lambda: f(x, U, W, b, V, backend=backend, algorithm=alg)), params, alg


FAMILIES = {
    "sgd_momentum": momentum,
    "adam": adam,
    "conv2d": conv2d,
    "pool2d": pool2d,
    "batch_norm": batch_norm,
    "rnn_forward": rnn_forward,
}


def _work(op: str, params: dict) -> tuple[float, float]:
    """(FLOPs, bytes) per call from the op's models; NaN where a model is missing or disagrees."""
    from dlbench.registry import OPS, load_builtin_kernels

    load_builtin_kernels()
    spec = OPS.get(op)
    out = []
    for model in (getattr(spec, "flops", None), getattr(spec, "bytes", None)):
        try:
            out.append(float(model(dtype=DTYPE, **params)) if model else math.nan)
        except Exception:  # noqa: BLE001 - a model with other parameter names: no rate, still a timing
            out.append(math.nan)
    return out[0], out[1]


def _skip_unavailable(backend: str) -> None:
    from dlbench.backends import backend_status

    st = backend_status(backend)
    if not st.available:
        pytest.skip(f"{backend}: {st.reason}")
    if not st.timed:
        pytest.skip(f"{backend}: {st.reason or 'not timed here'}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", list(FAMILIES))
def test_kernel(benchmark, op, backend):
    _skip_unavailable(backend)
    fn, params, alg = FAMILIES[op](backend)
    sync = None
    if backend == "numba-cuda":
        from numba import cuda

        sync = cuda.synchronize
    call = fn if sync is None else (lambda: (fn(), sync()))
    flops, nbytes = _work(op, params)
    benchmark.group = op
    benchmark.extra_info.update(
        {
            "suite": "pytest-benchmark",
            "case": f"{op}_small",
            "op": op,
            "params": params,
            "backend": backend,
            "algorithm": alg,
            "dtype": DTYPE,
            "flops": flops,
            "bytes": nbytes,
            "device": "gpu" if backend == "numba-cuda" else "cpu",
        }
    )
    benchmark.pedantic(call, rounds=ROUNDS, iterations=1, warmup_rounds=1)
