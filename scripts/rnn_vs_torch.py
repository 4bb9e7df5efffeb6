"""Side-by-side RNN throughput against torch.nn.RNN(tanh) + nn.Linear, and O(tau) scaling fits.

    .venv/bin/python scripts/rnn_vs_torch.py                    # hidden 256, batch 32, tau 200, 2 threads
    .venv/bin/python scripts/rnn_vs_torch.py --hidden 512 --batch 1 --reps 15
    .venv/bin/python scripts/rnn_vs_torch.py --scaling 50,100,200,400,700,1000

Every variant is timed in one process, in rounds: each round times every variant in turn, a
short block of consecutive calls each (A A A, B B B, C C C, then again), so that a noisy machine
slows them alike while each runtime's thread pool (OpenMP spin-waiting: ours, torch's own) is not
disturbed call by call. The table gives medians over all rounds and the ratio of torch's median
time to ours (> 1: we are faster). "fwd" is eq. 10.8-10.10 (RNN + output layer);
"fwd+bptt" adds the NLL (eq. 10.12-10.14) and BPTT (eq. 10.17-10.21): all parameter gradients.
--scaling fits time and peak memory (tracemalloc for ours; torch's saved-for-backward bytes) to
a + b * tau and prints R^2.

torch is imported first, before Numba starts its "omp" threading layer: when Numba's layer
comes first, torch's parallel regions run on the system libgomp that Numba loaded (torch's own
libgomp.so.1 is then not loaded) and torch.nn.RNN, which opens a few OpenMP regions per time
step, runs 10-30x slower (600-700 ms instead of 20-80 ms here). ``--numba-layer`` picks Numba's
threading layer (workqueue also avoids it, but mixes two thread pools for our kernels).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc

try:
    import torch  # noqa: F401 - first: see the module docstring
except ImportError:
    sys.exit("rnn_vs_torch.py needs torch (pip install dlbench[torch])")

import numpy as np


def build(hidden, batch, tau, dtype, backends):
    """{(name, kind): fn} for kind in (fwd, fwd+bptt)."""
    import torch
    from dlbench.suites.rnn import rnn_inputs

    from dlbench import ops
    from dlbench.backends import backend_status

    p, x, y = rnn_inputs(hidden, batch, tau, dtype=dtype)
    fns = {}
    for b in backends:
        if not backend_status(b).available:
            print(f"# {b}: unavailable ({backend_status(b).reason})")
            continue
        fns[(b, "fwd")] = lambda b=b: ops.rnn_forward(x, **p, backend=b)
        fns[(b, "fwd+bptt")] = lambda b=b: ops.rnn_loss_and_grads(x, y, **p, backend=b)
    tdt = torch.float32 if dtype == "float32" else torch.float64
    rnn = torch.nn.RNN(x.shape[2], hidden, nonlinearity="tanh").to(tdt)
    lin = torch.nn.Linear(hidden, p["V"].shape[0]).to(tdt)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(p["U"]))
        rnn.weight_hh_l0.copy_(torch.from_numpy(p["W"]))
        rnn.bias_ih_l0.copy_(torch.from_numpy(p["b"]))
        rnn.bias_hh_l0.zero_()
        lin.weight.copy_(torch.from_numpy(p["V"]))
        lin.bias.copy_(torch.from_numpy(p["c"]))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).reshape(-1)
    params = list(rnn.parameters()) + list(lin.parameters())

    def t_fwd():
        with torch.no_grad():
            return lin(rnn(xt)[0])

    def t_train():
        for q in params:
            q.grad = None
        loss = torch.nn.functional.cross_entropy(lin(rnn(xt)[0]).reshape(-1, lin.out_features), yt,
                                                 reduction="sum")
        loss.backward()
        return loss

    fns[("torch", "fwd")] = t_fwd
    fns[("torch", "fwd+bptt")] = t_train
    return fns


def interleaved(fns, reps, block=3, warmup=1):
    """Median seconds per fn over ceil(reps / block) rounds of ``block`` consecutive timed calls
    (each block after ``warmup`` untimed calls)."""
    samples = {k: [] for k in fns}
    for _ in range(-(-reps // block)):
        for k, f in fns.items():
            for _ in range(warmup):
                f()
            for _ in range(block):
                t0 = time.perf_counter()
                f()
                samples[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in samples.items()}, samples


def peak_bytes(fn):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def torch_saved_bytes(fn):
    import torch

    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(saved)


def r2_line(xs, ys):
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    b, a = np.polyfit(xs, ys, 1)
    pred = a + b * xs
    ss_res = float(((ys - pred) ** 2).sum())
    ss_tot = float(((ys - ys.mean()) ** 2).sum())
    return a, b, 1 - ss_res / ss_tot if ss_tot > 0 else 1.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--tau", type=int, default=200)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=21)
    ap.add_argument("--backends", default="numba,cython", help="ours, comma-separated (numpy is slow)")
    ap.add_argument("--scaling", default="", help="comma-separated taus for the O(tau) fit (fwd+bptt)")
    ap.add_argument("--scaling-backend", default="numba")
    ap.add_argument("--numba-layer", default=None, help="NUMBA_THREADING_LAYER (default: Numba's choice)")
    args = ap.parse_args(argv)
    if args.numba_layer:
        if "numba" in sys.modules:
            print("# numba already imported: its threading layer cannot be chosen here")
        os.environ["NUMBA_THREADING_LAYER"] = args.numba_layer

    from dlbench.kernels.numba_cpu.rnn_blas import gemm_backend

    from dlbench.registry import OPS
    from dlbench.threads import set_threads

    applied = set_threads(args.threads)
    import numba

    print(f"# threads {applied}; numba layer {numba.threading_layer()}; "
          f"big GEMMs via {gemm_backend()}; dtype {args.dtype}; load {os.getloadavg()[0]:.2f}")
    shape = {"hidden": args.hidden, "batch": args.batch, "n_in": 64, "n_out": 64, "tau": args.tau}
    fns = build(args.hidden, args.batch, args.tau, args.dtype, args.backends.split(","))
    med, _ = interleaved(fns, args.reps)
    print(f"\nhidden {args.hidden}, batch {args.batch}, tau {args.tau}, input/output 64; "
          f"median of {args.reps} runs in rounds")
    print(f"{'variant':<10} {'pass':<9} {'median ms':>10} {'step*seq/s':>12} {'GFLOP/s':>8} "
          f"{'torch/ours':>10}")
    for (name, kind), t in sorted(med.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        op = "rnn_forward" if kind == "fwd" else "rnn_forward_backward"
        gf = OPS[op].flops(**shape) / t / 1e9
        ratio = med[("torch", kind)] / t
        rate = args.tau * args.batch / t
        print(f"{name:<10} {kind:<9} {t * 1e3:>10.2f} {rate:>12.0f} {gf:>8.1f} {ratio:>10.2f}")

    if args.scaling:
        taus = [int(v) for v in args.scaling.split(",")]
        rows = []
        for tau in taus:
            f = build(args.hidden, args.batch, tau, args.dtype, [args.scaling_backend])
            ours, theirs = f[(args.scaling_backend, "fwd+bptt")], f[("torch", "fwd+bptt")]
            m, _ = interleaved({"ours": ours, "torch": theirs}, max(5, args.reps // 2))
            rows.append((tau, m["ours"], peak_bytes(ours), m["torch"], torch_saved_bytes(theirs)))
        print(f"\nscaling in tau (fwd+bptt, hidden {args.hidden}, batch {args.batch}): "
              f"{args.scaling_backend} vs torch")
        print(f"{'tau':>6} {'ours ms':>9} {'ours peak MiB':>14} {'torch ms':>9} {'torch saved MiB':>16}")
        for tau, t, mem, tt, tm in rows:
            print(f"{tau:>6} {t * 1e3:>9.2f} {mem / 2**20:>14.2f} {tt * 1e3:>9.2f} {tm / 2**20:>16.2f}")
        cols = list(zip(*rows))
        for label, ys in (("ours time", cols[1]), ("ours peak memory", cols[2]), ("torch time", cols[3]),
                          ("torch saved memory", cols[4])):
            a, b, r2 = r2_line(cols[0], ys)
            print(f"fit {label:<20} a + b*tau: a = {a:.4g}, b = {b:.4g} per step, R^2 = {r2:.4f}")
    print(f"# load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
