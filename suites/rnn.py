"""Suite ``rnn``: recurrent networks of chapter 10 (eq. 10.8-10.21), forward and forward + BPTT.

Throughput in time steps x sequences per second (and GFLOP/s from the op models) for hidden
128/256/512, batch 1/32, input and output 64, tau = 50/200/1000, against ``torch.nn.RNN(tanh)``
+ ``torch.nn.Linear`` (+ cross-entropy and ``backward()`` for the training step). A tau sweep at
hidden 256, batch 32 records time and peak memory as tau grows, so that both can be fitted by a
line (BPTT keeps O(tau) activations, eq. 10.12-10.14). Memory metrics: ``peak_mem`` (tracemalloc
peak of one call: every NumPy allocation, inputs excluded; not available for torch),
``activation_bytes`` (bytes kept for the backward pass: our stored h and o; torch's tensors
saved for backward).
"""

from __future__ import annotations

import tracemalloc

import numpy as np

try:
    # torch must load before Numba starts its "omp" threading layer: otherwise torch's parallel
    # regions run on the system libgomp that Numba loaded (torch's own libgomp.so.1 is skipped)
    # and torch.nn.RNN, a few OpenMP regions per time step, runs 10-30x slower (measured here:
    # 600-700 ms instead of 20-80 ms at hidden 256, batch 32, tau 200). The runner loads suites
    # before it sets the thread counts, so importing torch here keeps the peer honest.
    import torch  # noqa: F401
except ImportError:  # pragma: no cover - torch is an optional peer
    pass

from dlbench.suite import Bound, Case, Skip, Variant, define_suite

N_IN = N_OUT = 64
VARIANTS = [Variant("numpy"), Variant("numba"), Variant("cython"), Variant("numba-cuda"),
            Variant("torch", "nn.RNN")]


def rnn_inputs(hidden, batch, tau, n_in=N_IN, n_out=N_OUT, dtype="float32", seed=0):
    """Parameters (torch's default init), x (tau, batch, n_in), targets y (tau, batch), h0 = 0."""
    from dlbench import ops

    rng = np.random.default_rng(seed)
    p = ops.rnn_init(n_in, hidden, n_out, dtype, seed=seed + 1)
    x = rng.standard_normal((tau, batch, n_in)).astype(dtype)
    y = rng.integers(0, n_out, (tau, batch))
    return p, x, y


def peak_numpy_bytes(fn) -> float:
    """Peak bytes NumPy allocates during one call of fn (tracemalloc)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return float(peak)


def bind_ours(variant, dtype, hidden, batch, tau, train):
    from dlbench import ops

    if variant.backend == "numba-cuda":
        return bind_cuda(dtype, hidden, batch, tau, train)
    if variant.backend == "numpy" and tau * hidden > 200 * 256:
        raise Skip("the NumPy reference (a Python loop over steps) is timed up to tau*hidden = 200*256 only")
    p, x, y = rnn_inputs(hidden, batch, tau, dtype=dtype)
    b = variant.backend
    if train:
        fn = lambda: ops.rnn_loss_and_grads(x, y, **p, backend=b, algorithm=variant.algorithm)
    else:
        fn = lambda: ops.rnn_forward(x, **p, backend=b, algorithm=variant.algorithm)
    fn()  # compile / warm before measuring memory
    stored = ops.rnn_activation_bytes(tau, batch, hidden, N_OUT, dtype)
    # memory figures measured at bind time: the runner records Bound.extra["metrics"] with the row
    return Bound(fn, extra={"metrics": {"peak_mem": (peak_numpy_bytes(fn), "B"),
                                        "activation_bytes": (float(stored), "B")}})


def bind_cuda(dtype, hidden, batch, tau, train):
    """Device-resident: inputs on the GPU, the registered kernels called directly (no copies)."""
    from numba import cuda

    from dlbench.registry import get_kernel

    p, x, y = rnn_inputs(hidden, batch, tau, dtype=dtype)
    d = {k: cuda.to_device(v) for k, v in p.items()}
    dx, dy = cuda.to_device(x), cuda.to_device(y)
    h0 = cuda.to_device(np.zeros((batch, hidden), dtype))
    lens = cuda.to_device(np.full(batch, tau, np.int64))
    fwd = get_kernel("rnn_forward", "default", "numba-cuda")
    if not train:
        return Bound(lambda: fwd(dx, h0, d["U"], d["W"], d["b"], d["V"], d["c"], lens), timer="cuda")
    nll = get_kernel("rnn_nll", "default", "numba-cuda")
    bwd = get_kernel("rnn_backward", "default", "numba-cuda")

    def step():
        h, o, _ = fwd(dx, h0, d["U"], d["W"], d["b"], d["V"], d["c"], lens)
        _, go = nll(o, dy, lens)
        return bwd(dx, h, h0, d["U"], d["W"], d["V"], go, None, None, lens, 0)

    return Bound(step, timer="cuda")


def bind_torch(variant, dtype, hidden, batch, tau, train):
    """torch.nn.RNN(tanh) + nn.Linear; training step: cross-entropy (sum) and backward()."""
    try:
        import torch
    except ImportError as e:
        raise Skip(f"torch is not importable: {e}") from e
    p, x, y = rnn_inputs(hidden, batch, tau, dtype=dtype)
    tdt = torch.float32 if dtype == "float32" else torch.float64
    rnn = torch.nn.RNN(N_IN, hidden, nonlinearity="tanh").to(tdt)
    lin = torch.nn.Linear(hidden, N_OUT).to(tdt)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(p["U"]))
        rnn.weight_hh_l0.copy_(torch.from_numpy(p["W"]))
        rnn.bias_ih_l0.copy_(torch.from_numpy(p["b"]))
        rnn.bias_hh_l0.zero_()
        lin.weight.copy_(torch.from_numpy(p["V"]))
        lin.bias.copy_(torch.from_numpy(p["c"]))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).reshape(-1)
    params = list(rnn.parameters()) + list(lin.parameters())

    if not train:
        def fn():
            with torch.no_grad():
                h, _ = rnn(xt)
                return lin(h)
        fn()
        return Bound(fn)

    def fn():
        for q in params:
            q.grad = None
        h, _ = rnn(xt)
        loss = torch.nn.functional.cross_entropy(lin(h).reshape(-1, N_OUT), yt, reduction="sum")
        loss.backward()
        return loss

    fn()
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return Bound(fn, extra={"metrics": {"activation_bytes": (float(sum(saved)), "B")}})


def make_case(hidden, batch, tau, train, name_prefix=""):
    params = {"hidden": hidden, "batch": batch, "n_in": N_IN, "n_out": N_OUT, "tau": tau}
    op = "rnn_forward_backward" if train else "rnn_forward"
    kind = "fwd_bptt" if train else "fwd"

    def bind(variant, dtype):
        if variant.backend == "torch":
            return bind_torch(variant, dtype, hidden, batch, tau, train)
        return bind_ours(variant, dtype, hidden, batch, tau, train)

    def metrics(timing):
        return {"steps_per_s": (tau * batch / timing.median, "step*seq/s")}

    return Case("rnn", f"{name_prefix}{kind}_h{hidden}_b{batch}_t{tau}", op, params, VARIANTS, bind,
                dtype="float32", metrics=metrics)


SCALING_TAUS = (50, 100, 200, 400, 700, 1000)


@define_suite("rnn", "vanilla RNN forward and forward+BPTT (eq. 10.8-10.21) vs torch.nn.RNN; O(tau) scaling")
def rnn_suite(quick: bool):
    if quick:
        shapes = [(128, 32, 50), (256, 32, 200)]
        cases = [make_case(h, b, t, train) for (h, b, t) in shapes for train in (False, True)]
        return cases + [make_case(256, 32, t, True, "scaling_") for t in (50, 100)]
    cases = [make_case(h, b, t, train) for h in (128, 256, 512) for b in (1, 32) for t in (50, 200, 1000)
             for train in (False, True)]
    return cases + [make_case(256, 32, t, True, "scaling_") for t in SCALING_TAUS if t not in (50, 200, 1000)]
