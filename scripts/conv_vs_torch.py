"""Our best convolution (``algorithm="auto"``) against torch, side by side, on the suite's shapes.

    .venv/bin/python scripts/conv_vs_torch.py [--n 8] [--threads 2] [--ops fwd,bwd_data,bwd_weight]
        [--backends numba,cython] [--shapes PATTERN] [--rounds 7] [--md PATH]

For every shape of the ``conv`` suite and each op it autotunes ours once (not timed), then
alternates one call of torch and one call of each of our backends for ``--rounds`` rounds and
reports medians (alternating spreads the noise of a shared machine over both sides). Prints a
table of GFLOP/s (2 N K C/g R S P Q per call), the ratio ours/torch and the algorithm ``auto``
chose, the geometric means per op, and the issue's targets: >= 0.6x torch on each 3x3 ResNet
shape, >= 0.8x on the 1x1 shapes, geometric mean >= 0.6x forward and >= 0.5x each gradient.
"""

from __future__ import annotations

import argparse
import fnmatch
import math
import statistics
import sys
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=8, help="batch size (suite: 1 quick, 8 full)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ops", default="fwd,bwd_data,bwd_weight")
    ap.add_argument("--backends", default="numba,cython")
    ap.add_argument("--shapes", default="*", help="glob on the shape names")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--md", default=None, help="also write the table as Markdown here")
    args = ap.parse_args(argv)

    import numpy as np
    from dlbench.kernels.numba_cpu.conv_gemm import GEMM_IMPL
    from dlbench.suites.conv import OPS, SHAPES, bind_ours, bind_torch, shape_params

    from dlbench import autotune
    from dlbench.backends import backend_status
    from dlbench.suite import Variant
    from dlbench.threads import blas_info, set_threads

    set_threads(args.threads)
    backends = [b for b in args.backends.split(",") if backend_status(b).available]
    ops = args.ops.split(",")
    rows = []
    print(f"threads={args.threads} N={args.n} dtype={args.dtype} GEMM={GEMM_IMPL} "
          f"BLAS={blas_info().get('blas_kernel')} backends={backends}", file=sys.stderr)
    for shape in SHAPES:
        if not fnmatch.fnmatch(shape[0], args.shapes):
            continue
        params = shape_params(shape, args.n)
        from dlbench.ops.conv import ConvGeometry

        flops = ConvGeometry.from_params(2, params).flops()
        for which in ops:
            calls = {"torch": bind_torch(which, args.dtype, params).fn}
            chosen = {}
            for b in backends:
                fn = bind_ours(which, Variant(b, "auto"), args.dtype, params).fn
                t0 = time.perf_counter()
                fn()                                   # autotune (or cache hit) + compile
                tune = time.perf_counter() - t0
                fn()
                chosen[b] = (autotune.last_choice(OPS[which]), tune)
                calls[b] = fn
            calls["torch"]()
            times = {k: [] for k in calls}
            for _ in range(args.rounds):
                for k, f in calls.items():
                    t0 = time.perf_counter()
                    f()
                    times[k].append(time.perf_counter() - t0)
            med = {k: statistics.median(v) for k, v in times.items()}
            best = min(backends, key=lambda b: med[b])
            row = {"shape": shape[0], "op": which, "torch_gflops": flops / med["torch"] / 1e9,
                   "ours_gflops": flops / med[best] / 1e9, "ratio": med["torch"] / med[best],
                   "best": f"{best}/{chosen[best][0]}"}
            for b in backends:
                row[f"{b}_gflops"] = flops / med[b] / 1e9
                row[f"{b}_chosen"] = chosen[b][0]
                row[f"{b}_tune_s"] = chosen[b][1]
            rows.append(row)
            print(f"{shape[0]:22s} {which:10s} torch {row['torch_gflops']:7.1f}  ours "
                  f"{row['ours_gflops']:7.1f} "
                  f"GFLOP/s  x{row['ratio']:.2f}  ({row['best']}; "
                  + ", ".join(f"{b} {row[f'{b}_gflops']:.1f} {row[f'{b}_chosen']}" for b in backends) + ")",
                  flush=True)
    lines = ["| shape | op | torch GFLOP/s | ours GFLOP/s | ours/torch | chosen | "
             + " | ".join(f"{b} GFLOP/s (alg)" for b in backends) + " |",
             "|---|---|---:|---:|---:|---|" + "---|" * len(backends)]
    for r in rows:
        lines.append(f"| {r['shape']} | {r['op']} | {r['torch_gflops']:.1f} | {r['ours_gflops']:.1f} | "
                     f"{r['ratio']:.2f} | {r['best']} | "
                     + " | ".join(f"{r[f'{b}_gflops']:.1f} ({r[f'{b}_chosen']})" for b in backends) + " |")
    verdicts = []
    for which in ops:
        sel = [r["ratio"] for r in rows if r["op"] == which]
        if sel:
            gm = math.exp(sum(math.log(v) for v in sel) / len(sel))
            need = 0.6 if which == "fwd" else 0.5
            verdicts.append(f"geomean {which}: {gm:.2f} (target >= {need}: "
                            f"{'ok' if gm >= need else 'MISSED'})")
    for r in rows:
        if r["shape"].startswith("resnet_3x3") and r["ratio"] < 0.6:
            verdicts.append(f"{r['shape']} {r['op']}: {r['ratio']:.2f} < 0.6 (3x3 target MISSED)")
        if r["shape"].startswith("resnet_1x1") and r["ratio"] < 0.8:
            verdicts.append(f"{r['shape']} {r['op']}: {r['ratio']:.2f} < 0.8 (1x1 target MISSED)")
    text = "\n".join(lines + [""] + verdicts)
    print(text)
    if args.md:
        with open(args.md, "w") as f:
            f.write(f"threads={args.threads}, N={args.n}, {args.dtype}, GEMM={GEMM_IMPL}, medians of "
                    f"{args.rounds} alternating rounds\n\n" + text + "\n")
    np.seterr(all="ignore")
    return 0


if __name__ == "__main__":
    sys.exit(main())
