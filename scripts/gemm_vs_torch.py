"""Our Cython GEMM against torch.matmul (oneDNN/MKL) and NumPy's BLAS, side by side.

For each shape the implementations are timed in interleaved rounds (one sample of each per
round), so that load from other processes hits them alike; each sample batches calls up to
``--sample-time`` seconds. Prints GFLOP/s of the median (or best) sample, the IQR in percent,
and the ratios ours/torch and ours/numpy, plus the FMA peak measured before and after (the
machine's ceiling at that moment).

    .venv/bin/python scripts/gemm_vs_torch.py                 # float32, 2 threads, all shapes
    .venv/bin/python scripts/gemm_vs_torch.py --dtype float64 --numba --rounds 9
    .venv/bin/python scripts/gemm_vs_torch.py --threads 1 --clock cpu   # per core, on a busy machine
"""

from __future__ import annotations

import argparse
import time

import numpy as np

SHAPES = [  # (label, m, n, k)
    ("3x3 64ch 56^2 im2col", 64, 3136, 576),
    ("3x3 128ch 28^2 im2col", 128, 784, 1152),
    ("3x3 256ch 14^2 im2col", 256, 196, 2304),
    ("3x3 512ch 7^2 im2col", 512, 49, 4608),
    ("1x1 64->256 56^2", 256, 3136, 64),
    ("1x1 256->64 56^2", 64, 3136, 256),
    ("square 512", 512, 512, 512),
    ("square 1024", 1024, 1024, 1024),
    ("square 2048", 2048, 2048, 2048),
]


def fma_peak(threads: int) -> float:
    """GFLOP/s of independent FMA chains on `threads` threads (best of 3 short runs)."""
    from dlbench.kernels.cython import _omp

    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        flops, _sink = _omp.fma_peak(5_000_000, threads)
        best = max(best, flops / (time.perf_counter() - t0) / 1e9)
    return best


def sample(fn, min_time: float, clock=time.perf_counter) -> float:
    """Seconds per call, from as many calls as fit in min_time (at least one)."""
    n, t0 = 0, clock()
    while True:
        fn()
        n += 1
        el = clock() - t0
        if el >= min_time:
            return el / n


def implementations(m, n, k, dtype, with_numba, rng):
    """name -> zero-arg callable writing a @ b into a preallocated C."""
    from dlbench.kernels.cython import gemm as cy

    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    c = np.empty((m, n), dtype=dtype)
    impls = {"ours": lambda: cy.gemm(a, b, c)}
    try:
        import torch

        ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(np.empty_like(c))
        impls["torch"] = lambda: torch.matmul(ta, tb, out=tc)
    except ImportError:
        pass
    c2 = np.empty_like(c)
    impls["numpy"] = lambda: np.matmul(a, b, out=c2)
    if with_numba:
        from dlbench.kernels.numba_cpu.gemm import gemm as nb_gemm

        c3 = np.empty_like(c)
        impls["numba"] = lambda: nb_gemm(a, b, c3)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    impls["ours"]()
    err = np.abs(c - ref).max() / (np.abs(ref).max() + 1e-30)
    return impls, err


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--rounds", type=int, default=7, help="interleaved samples per implementation")
    p.add_argument("--sample-time", type=float, default=0.05, help="seconds per sample")
    p.add_argument("--numba", action="store_true", help="include the blocked Numba GEMM")
    p.add_argument("--only", default="", help="substring of the shape labels to run")
    p.add_argument("--stat", default="median", choices=["median", "best"],
                   help="table statistic: median sample, or best sample (the quiet moments of a "
                        "busy machine)")
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                   help="cpu: this thread's CPU time (needs --threads 1; robust when other "
                        "processes load the machine)")
    args = p.parse_args(argv)
    if args.clock == "cpu" and args.threads != 1:
        p.error("--clock cpu measures one thread: use it with --threads 1")
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter

    from dlbench.threads import blas_info, set_threads

    set_threads(args.threads)
    info = blas_info()
    rng = np.random.default_rng(0)
    peak0 = fma_peak(args.threads)
    print(f"{args.dtype}, {args.threads} threads, {args.clock} clock; NumPy BLAS: {info.get('blas')} "
          f"{info.get('blas_version')} kernel {info.get('blas_kernel')}; "
          f"FMA peak now {peak0:.0f} GFLOP/s (float32)")
    names = None
    rows = []
    for label, m, n, k in SHAPES:
        if args.only and args.only not in label:
            continue
        impls, err = implementations(m, n, k, args.dtype, args.numba, rng)
        for fn in impls.values():   # warm-up (JIT, buffers, thread pools)
            fn()
        times = {name: [] for name in impls}
        for _ in range(args.rounds):
            for name, fn in impls.items():
                times[name].append(sample(fn, args.sample_time, clock))
        flops = 2.0 * m * n * k
        stats = {}
        for name, ts in times.items():
            q25, q50, q75 = np.percentile(ts, [25, 50, 75])
            t = q50 if args.stat == "median" else min(ts)
            stats[name] = (flops / t / 1e9, 100.0 * (q75 - q25) / q50)
        names = list(impls)
        rows.append((label, m, n, k, stats, err))
        cells = "  ".join(f"{nm} {g:6.1f} ±{iqr:3.0f}%" for nm, (g, iqr) in stats.items())
        print(f"{label:24s} {m:5d}x{n:5d}x{k:5d}  {cells}  rel.err {err:.1e}", flush=True)
    peak1 = fma_peak(args.threads)
    print(f"FMA peak after: {peak1:.0f} GFLOP/s")
    if not rows:
        return
    print()
    hdr = " | ".join(f"{nm} GFLOP/s" for nm in names)
    print(f"| shape | M x N x K | {hdr} | ours/torch | ours/numpy |")
    print("|---|---|" + "---|" * len(names) + "---|---|")
    ratios_t, ratios_n = [], []
    for label, m, n, k, stats, _err in rows:
        g = {nm: v[0] for nm, v in stats.items()}
        rt = g["ours"] / g["torch"] if "torch" in g else float("nan")
        rn = g["ours"] / g["numpy"]
        ratios_t.append(rt)
        ratios_n.append(rn)
        vals = " | ".join(f"{g[nm]:.1f}" for nm in names)
        print(f"| {label} | {m}x{n}x{k} | {vals} | {rt:.2f} | {rn:.2f} |")
    gm = lambda xs: float(np.exp(np.mean(np.log(xs))))
    print(f"| geometric mean | | {' | '.join('' for _ in names)} | {gm(ratios_t):.2f} | {gm(ratios_n):.2f} |")


if __name__ == "__main__":
    main()
