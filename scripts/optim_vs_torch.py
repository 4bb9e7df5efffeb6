"""Side-by-side optimizer-step throughput: dlbench kernels vs torch.optim fused / foreach.

    .venv/bin/python scripts/optim_vs_torch.py                  # n = 1e7 float32, 2 threads
    .venv/bin/python scripts/optim_vs_torch.py --n 1e6 --reps 31 --rules adam,adagrad

Everything runs in one process with the same thread count for every runtime
(``dlbench.threads.set_threads``), in interleaved rounds: each round times every candidate
(``--inner`` consecutive steps each, per-step time) in a rotating order, so machine noise hits all
of them alike; the table reports medians over rounds. Each round also times a STREAM-like
4-read/3-write in-place update (``calibrate._update3``, the stream shape of an Adam step) as the
bandwidth ceiling measured under the same conditions.

Columns: median / min ms per step, Mparam/s, GB/s from the op's byte model (minimal traffic,
e.g. Adam 28 B/param), the ratio torch-fused-time / our-time (> 1: we are faster) and the
fraction of the in-run STREAM ceiling.

Page size matters at 1e7: NumPy asks for transparent huge pages on large arrays (madvise), so our
parameters and state live in 2 MiB pages; torch's own allocations (its optimizer state) do not
unless ``THP_MEM_ALLOC_ENABLE=1`` is set before torch is imported: ``--torch-thp`` does that, to
compare both on huge pages.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

RULES = {  # name -> (registry op, dlbench class, kwargs, torch class, torch kwargs)
    "adam": ("adam", "Adam", {}, "Adam", {}),
    "momentum": ("sgd_momentum", "Momentum", {"alpha": 0.9}, "SGD", {"momentum": 0.9}),
    "adagrad": ("adagrad", "AdaGrad", {"eps": 1e-10}, "Adagrad", {}),
    "sgd": ("sgd", "SGD", {}, "SGD", {}),
    "adamw": ("adam", "AdamW", {"weight_decay": 0.01}, "AdamW", {"weight_decay": 0.01}),
    "rmsprop": ("rmsprop", "RMSProp", {"rho": 0.99, "eps": 1e-8, "eps_placement": "outside"}, "RMSprop", {}),
    "adadelta": ("adadelta", "AdaDelta", {}, "Adadelta", {}),
}
LR = 1e-3


def candidates(rule: str, n: int, backends: list[str]):
    """name -> zero-arg step function, for one rule."""
    import torch

    from dlbench import optim

    _, cls, kw, tcls, tkw = RULES[rule]
    rng = np.random.default_rng(0)
    out = {}
    for impl in ("fused", "foreach"):
        p = torch.nn.Parameter(torch.from_numpy(rng.standard_normal(n).astype(np.float32)))
        p.grad = torch.from_numpy(rng.standard_normal(n).astype(np.float32))
        try:
            opt = getattr(torch.optim, tcls)([p], lr=LR, **tkw, **{impl: True})
            opt.step()
        except (RuntimeError, TypeError, ValueError):
            continue
        out[f"torch {impl}"] = opt.step
    for backend in backends:
        theta = rng.standard_normal(n).astype(np.float32)
        g = rng.standard_normal(n).astype(np.float32)
        o = getattr(optim, cls)(lr=LR, backend=backend, **kw)
        st = o.init(theta)
        o.step(theta, g, st)
        out[f"dlbench {backend}"] = (lambda o=o, theta=theta, g=g, st=st: o.step(theta, g, st))
    return out


def stream_ceiling(n: int):
    from dlbench.calibrate import _update3

    a, b, c, d = (np.ones(n, np.float32) for _ in range(4))
    s = np.float32(1e-7)
    _update3(a, b, c, d, s)
    return lambda: _update3(a, b, c, d, s)


def run(rules, n, reps, inner, backends):
    from dlbench.optim import bytes_per_param

    stream = stream_ceiling(n)
    rows = []
    for rule in rules:
        cands = candidates(rule, n, backends)
        cands["STREAM 4r/3w"] = stream
        names = list(cands)
        times = {k: [] for k in names}
        for r in range(reps):
            order = names[r % len(names):] + names[:r % len(names)]
            for k in order:
                fn = cands[k]
                fn()
                t0 = time.perf_counter()
                for _ in range(inner):
                    fn()
                times[k].append((time.perf_counter() - t0) / inner)
        nbytes = bytes_per_param(RULES[rule][0], "float32") * n
        ref = statistics.median(times["torch fused"]) if "torch fused" in times else float("nan")
        ceil = 28.0 * n / statistics.median(times["STREAM 4r/3w"])
        for k in names:
            med, lo = statistics.median(times[k]), min(times[k])
            gbs = (28.0 if k.startswith("STREAM") else nbytes / n) * n / med / 1e9
            rows.append((rule, k, med * 1e3, lo * 1e3, n / med / 1e6, gbs, ref / med, gbs * 1e9 / ceil))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=float, default=1e7, help="float32 parameters (default 1e7)")
    ap.add_argument("--reps", type=int, default=21, help="interleaved rounds (default 21)")
    ap.add_argument("--inner", type=int, default=3, help="consecutive steps timed per round")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rules", default="adam,momentum,adagrad", help=f"comma list of {','.join(RULES)}")
    ap.add_argument("--backends", default="cython,numba")
    ap.add_argument("--torch-thp", action="store_true",
                    help="torch allocates its state in transparent huge pages too (THP_MEM_ALLOC_ENABLE=1)")
    args = ap.parse_args(argv)
    if args.torch_thp:
        import os
        import sys

        if "torch" in sys.modules:
            ap.error("--torch-thp must be set before torch is imported")
        os.environ["THP_MEM_ALLOC_ENABLE"] = "1"
    from dlbench.threads import set_threads

    applied = set_threads(args.threads)
    n = int(args.n)
    rules = [r for r in args.rules.split(",") if r]
    for r in rules:
        if r not in RULES:
            ap.error(f"unknown rule {r!r}; known: {', '.join(RULES)}")
    rows = run(rules, n, args.reps, args.inner, [b for b in args.backends.split(",") if b])
    print(f"n = {n:.0e} float32, threads = {applied}, {args.reps} rounds x {args.inner} steps, medians"
          f"{', torch state in huge pages' if args.torch_thp else ''}")
    print(f"{'rule':9s} {'implementation':16s} {'ms':>7s} {'min ms':>7s} {'Mparam/s':>9s} {'GB/s':>6s} "
          f"{'vs torch fused':>14s} {'of STREAM':>9s}")
    for rule, k, med, lo, mps, gbs, ratio, frac in rows:
        print(f"{rule:9s} {k:16s} {med:7.2f} {lo:7.2f} {mps:9.0f} {gbs:6.1f} {ratio:13.2f}x {frac:8.0%}")


if __name__ == "__main__":
    main()
