"""Synthetic result folders for the report / compare / browser tests (plus checks of the builders).

``throughput_run`` writes a run folder like ``dlbench run`` does (rows through ``ResultStore``,
``meta.json`` with machine and calibration): a conv-like suite with NumPy, Numba (``auto`` with
the chosen algorithm), Cython and torch variants, samples, compile times, a skipped and a failed
variant. ``convergence_run`` adds a convergence suite's rows and the side tables that
``dlbench.convergence.write_outputs`` writes (curves, sensitivity, tuning budget, profiles).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from dlbench.results import ResultStore

CAL = {
    "peak_gflops": 200.0,
    "peak_source": "fma_gflops_numba",
    "bw_gbs": 40.0,
    "bw_source": "bw_update_gbs",
    "fma_gflops_numba": 200.0,
    "gemm_gflops_numpy": 75.0,
    "conv_gflops_torch": 160.0,
    "bw_copy_gbs": 30.0,
    "bw_update_gbs": 40.0,
    "threads": 2,
    "measured_at": "2026-01-01T00:00:00",
}
MACHINE = {
    "hostname": "testbox",
    "cpu_model": "Test CPU",
    "llvm_cpu": "haswell",
    "cores": 2,
    "isa": "avx2,fma",
    "mem_gib": 24,
    "os": "Linux",
    "gpu": "",
}


def _samples(rng, median, n=15, spread=0.03):
    return median * np.exp(rng.normal(0, spread, n))


def throughput_run(path, run_id="runA", scale=1.0, seed=0, machine=None, status="complete", suite="demo"):
    """A finished (or ``status='running'``: partial) throughput run; ``scale`` multiplies all times."""
    rng = np.random.default_rng(seed)
    store = ResultStore(path, run_id=run_id)
    base = {
        "run_id": run_id,
        "timestamp": "2026-01-01T00:00:00",
        "suite": suite,
        "dtype": "float32",
        "threads": 2,
        "device": "cpu",
        "git_rev": "abc123",
        "machine": "fp1",
        "status": "ok",
        "message": "",
        "chosen": "",
    }
    variants = [
        ("numpy", "direct", 8e-3),
        ("numba", "auto", 2e-3),
        ("cython", "im2col", 3e-3),
        ("torch", "default", 2.5e-3),
    ]
    rows = []
    for bench, n, flops, nbytes in (("conv_small", 8, 2e8, 4e6), ("conv_large", 32, 8e8, 1.6e7)):
        params = json.dumps({"N": n, "C": 64, "H": 28, "W": 28, "K": 64, "R": 3, "S": 3}, sort_keys=True)
        for backend, alg, t in variants:
            t = t * scale * n / 8
            s = _samples(rng, t)
            b = {
                **base,
                "benchmark": bench,
                "op": "conv2d",
                "params": params,
                "backend": backend,
                "algorithm": alg,
                "chosen": "winograd" if alg == "auto" else "",
            }
            med = float(np.median(s))
            q1, q3 = np.percentile(s, [25, 75])
            rows.append(
                {
                    **b,
                    "metric": "time",
                    "value": med,
                    "unit": "s",
                    "min": float(s.min()),
                    "median": med,
                    "iqr": float(q3 - q1),
                    "cv": float(s.std() / s.mean()),
                    "n_samples": len(s),
                    "samples": ",".join(f"{x:.6g}" for x in s),
                }
            )
            rows.append(
                {**b, "metric": "compile_time", "value": 1.5 if backend == "numba" else 0.0, "unit": "s"}
            )
            rows.append(
                {**b, "metric": "first_call", "value": 1.5 + med if backend == "numba" else med, "unit": "s"}
            )
            rows.append({**b, "metric": "gflops", "value": flops / med / 1e9, "unit": "GFLOP/s"})
            rows.append(
                {
                    **b,
                    "metric": "frac_peak_flops",
                    "value": flops / med / 1e9 / CAL["peak_gflops"],
                    "unit": "fraction",
                }
            )
            rows.append({**b, "metric": "gbs", "value": nbytes / med / 1e9, "unit": "GB/s"})
            rows.append(
                {
                    **b,
                    "metric": "frac_peak_bw",
                    "value": nbytes / med / 1e9 / CAL["bw_gbs"],
                    "unit": "fraction",
                }
            )
        rows.append(
            {
                **base,
                "benchmark": bench,
                "op": "conv2d",
                "params": params,
                "backend": "numba-cuda",
                "algorithm": "direct",
                "metric": "time",
                "value": np.nan,
                "unit": "s",
                "status": "skipped",
                "message": "no CUDA GPU found",
            }
        )
        rows.append(
            {
                **base,
                "benchmark": bench,
                "op": "conv2d",
                "params": params,
                "backend": "cython",
                "algorithm": "fft",
                "metric": "time",
                "value": np.nan,
                "unit": "s",
                "status": "error",
                "message": "RuntimeError: boom",
            }
        )
    store.append(rows)
    store.write_meta(
        {
            "run_id": run_id,
            "suites": [suite],
            "quick": True,
            "threads": {"threads": 2},
            "command": "dlbench run demo",
            "git_rev": "abc123",
            "fingerprint": "fp1",
            "machine": machine or MACHINE,
            "calibration": CAL,
            "blas": {"blas_all": "openblas"},
            "versions": {"python": "3.11", "numpy": "2"},
            "status": status,
            "started": "2026-01-01T00:00:00",
        }
    )
    return path


def convergence_run(path, run_id="convA", seed=0):
    """A run folder with a convergence suite's rows and the convergence side tables."""
    rng = np.random.default_rng(seed)
    store = ResultStore(path, run_id=run_id)
    opts = {"sgd": 400, "momentum": 120, "adam": 90}
    base = {
        "run_id": run_id,
        "timestamp": "2026-01-01T00:00:00",
        "suite": "convergence",
        "op": "convergence",
        "dtype": "float64",
        "threads": 2,
        "device": "cpu",
        "git_rev": "abc",
        "machine": "fp1",
        "status": "ok",
        "message": "5/5 seeds reached the target; 0/5 diverged",
        "chosen": "",
    }
    rows, curves, sens = [], [], []
    for prob, hard in (("quadratic", 1.0), ("rosenbrock", 3.0)):
        params = json.dumps({"problem": prob}, sort_keys=True)
        for opt, iters in opts.items():
            it = iters * hard
            b = {**base, "benchmark": prob, "params": params, "backend": "numpy", "algorithm": opt}
            for metric, v, unit in (
                ("iters_to_target", it, "iter"),
                ("seconds_to_target", it * 1e-4, "s"),
                ("final_excess", 1e-7, "loss"),
                ("reached", 1.0, "fraction"),
                ("diverged", 0.0, "fraction"),
                ("best_lr", 0.01, "lr"),
            ):
                rows.append(
                    {
                        **b,
                        "metric": metric,
                        "value": v,
                        "unit": unit,
                        "median": v,
                        "ci_low": v * 0.9,
                        "ci_high": v * 1.1,
                        "n_samples": 5,
                    }
                )
            for s in range(5):
                k = np.unique(np.geomspace(1, it * 1.2, 30).astype(int))
                loss = 10.0 * np.exp(-5 * k / it) * np.exp(rng.normal(0, 0.05)) + 1e-8
                curves += [
                    {
                        "problem": prob,
                        "params": "{}",
                        "optimizer": opt,
                        "lr": 0.01,
                        "seed": s,
                        "iteration": int(i),
                        "seconds": i * 1e-4 * (1 + 0.02 * s),
                        "loss": float(f),
                        "excess": float(f),
                        "benchmark": prob,
                    }
                    for i, f in zip(k, loss)
                ]
            for lr in (1e-3, 1e-2, 1e-1, 1.0):
                sens.append(
                    {
                        "problem": prob,
                        "params_json": "{}",
                        "optimizer": opt,
                        "backend": "numpy",
                        "lr": lr,
                        "seed": 1000,
                        "status": "ok",
                        "iters_to_target": it * abs(np.log10(lr) + 2.2),
                        "final_excess": 1e-7 * 10 ** abs(np.log10(lr) + 2),
                        "benchmark": prob,
                    }
                )
    store.append(rows)
    pd.DataFrame(curves).to_parquet(f"{path}/curves.parquet")
    pd.DataFrame(sens).to_parquet(f"{path}/sensitivity.parquet")
    taus = np.logspace(-1, 1, 21)
    prof = [
        {
            "optimizer": o,
            "tau": t,
            "rho": float(min(1.0, t * (0.5 + i / 4))),
            "n_problems": 2,
            "reference": "sgd",
            "metric": "iters_to_target",
        }
        for i, o in enumerate(opts)
        for t in taus
    ]
    pd.DataFrame(prof).to_parquet(f"{path}/profiles.parquet")
    pd.DataFrame(
        [
            {
                "problem": "quadratic",
                "params": "{}",
                "optimizer": o,
                "budget": b,
                "grid_size": 4,
                "p_reached": min(1.0, b / 4 + 0.1 * i),
            }
            for i, o in enumerate(opts)
            for b in range(1, 5)
        ]
    ).to_parquet(f"{path}/tuning_budget.parquet")
    store.write_meta(
        {
            "run_id": run_id,
            "suites": ["convergence"],
            "machine": MACHINE,
            "calibration": CAL,
            "status": "complete",
            "started": "2026-01-01T00:00:00",
        }
    )
    return path


def test_builders_write_loadable_runs(tmp_path):
    from dlbench.results import load_run

    df, meta = load_run(throughput_run(tmp_path / "a"))
    assert set(df.backend) == {"numpy", "numba", "cython", "torch", "numba-cuda"}
    assert meta["calibration"]["peak_gflops"] == 200.0
    df, _ = load_run(convergence_run(tmp_path / "c"))
    assert "iters_to_target" in set(df.metric) and "ci_low" in df.columns
