"""The ``conv-variants`` suite side by side: our backends against torch and the NumPy einsum baseline.

Every case of the suite is bound once per variant (first calls, i.e. JIT compilation, happen
before timing), then timed in interleaved rounds (one sample of each variant per round, each
sample batching calls up to ``--sample-time`` seconds), so that load from other processes hits
all variants alike. Prints, per case and variant, the median time, GB/s and GFLOP/s from the
ops' models, the fraction of the memory bandwidth measured by a STREAM copy before and after,
and the throughput ratios against torch and against the einsum baseline (conv cases).

    .venv/bin/python scripts/variants_vs_torch.py                   # --quick shapes, 2 threads
    .venv/bin/python scripts/variants_vs_torch.py --full --rounds 9 --filter bn_
    .venv/bin/python scripts/variants_vs_torch.py --threads 1 --clock cpu   # per core, busy machine
"""

from __future__ import annotations

import argparse
import re
import time

import numpy as np


def sample(fn, min_time: float, clock) -> float:
    """Seconds per call, from as many calls as fit in min_time (at least one)."""
    n, t0 = 0, clock()
    while True:
        fn()
        n += 1
        el = clock() - t0
        if el >= min_time:
            return el / n


def stream_copy_gbs() -> float:
    """Best-of-7 STREAM copy GB/s on 10M float32 (all threads set by --threads)."""
    from dlbench.calibrate import _bandwidth_at

    return _bandwidth_at(10_000_000)["copy"]


def bind_all(case, dtype):
    """variant label -> zero-arg callable, or the reason it was skipped."""
    from dlbench.backends import backend_status
    from dlbench.suite import Skip

    out = {}
    for v in case.variants:
        st = backend_status(v.backend)
        if not st.available or not st.timed:
            out[v.label] = f"skip: {st.reason or 'not timed (simulator)'}"
            continue
        try:
            b = case.bind(v, dtype)
            fn = b.fn if hasattr(b, "fn") else b
            fn()          # first call: compilation, page faults
            fn()
            out[v.label] = fn
        except Skip as e:
            out[v.label] = f"skip: {e}"
        except Exception as e:  # noqa: BLE001 - reported in the table
            out[v.label] = f"error: {type(e).__name__}: {e}"
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="the full suite's shapes (default: --quick)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--sample-time", type=float, default=0.02)
    ap.add_argument("--filter", default="", help="regular expression on case names")
    ap.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                    help="cpu: process CPU time (meaningful with --threads 1 on a busy machine)")
    args = ap.parse_args(argv)

    from dlbench.suite import get_suite
    from dlbench.threads import set_threads

    set_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    cases = [c for c in get_suite("conv-variants").cases(not args.full) if re.search(args.filter, c.name)]
    bw0 = stream_copy_gbs()
    print(f"# conv-variants, {args.dtype}, {args.threads} threads, {args.rounds} rounds, clock={args.clock}; "
          f"STREAM copy {bw0:.1f} GB/s before")
    print(f"{'case':44s} {'variant':16s} {'median ms':>10s} {'IQR%':>5s} {'GB/s':>7s} {'GFLOP/s':>8s} "
          f"{'x torch':>8s} {'x einsum':>8s}")
    rows = []
    for case in cases:
        case.dtype = args.dtype
        fns = bind_all(case, args.dtype)
        live = {k: f for k, f in fns.items() if callable(f)}
        times = {k: [] for k in live}
        for _ in range(args.rounds):
            for k, f in live.items():
                times[k].append(sample(f, args.sample_time, clock))
        nbytes, flops = case.bytes(), case.flops()
        med = {k: float(np.median(v)) for k, v in times.items()}
        torch_t = next((t for k, t in med.items() if k.startswith("torch/")), None)
        einsum_t = med.get("numpy/einsum")
        for k, f in fns.items():
            if k not in med:
                print(f"{case.name:44s} {k:16s} {f}")
                continue
            t = med[k]
            q1, q3 = np.percentile(times[k], [25, 75])
            row = dict(case=case.name, variant=k, ms=t * 1e3, iqr=100 * (q3 - q1) / t,
                       gbs=nbytes / t / 1e9 if np.isfinite(nbytes) else float("nan"),
                       gflops=flops / t / 1e9 if np.isfinite(flops) else float("nan"),
                       vs_torch=torch_t / t if torch_t else float("nan"),
                       vs_einsum=einsum_t / t if einsum_t else float("nan"))
            rows.append(row)
            print(f"{case.name:44s} {k:16s} {row['ms']:10.3f} {row['iqr']:5.0f} {row['gbs']:7.1f} "
                  f"{row['gflops']:8.1f} {row['vs_torch']:8.2f} {row['vs_einsum']:8.2f}", flush=True)
    bw1 = stream_copy_gbs()
    print(f"# STREAM copy {bw1:.1f} GB/s after; bandwidth-bound rows as a fraction of "
          f"max({bw0:.1f}, {bw1:.1f}) GB/s:")
    bw = max(bw0, bw1)
    for r in rows:
        if not (r["case"].startswith(("local", "tiled"))) and np.isfinite(r["gbs"]):
            print(f"#   {r['case']:44s} {r['variant']:16s} {100 * r['gbs'] / bw:5.0f} %")
    return rows


if __name__ == "__main__":
    main()
