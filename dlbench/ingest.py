"""Import asv results and pytest-benchmark JSON into the dlbench results schema.

Both importers return ``(rows, meta)`` pairs like :func:`dlbench.results.load_run`: ``rows`` in
the long-format schema (``dlbench.results.COLUMNS``), ``meta`` with ``source`` ("asv" or
"pytest-benchmark"), run id, machine facts and (when known) the calibration. Reports and
comparisons then treat them like any dlbench run.

asv: the classes in ``suites/asv_benchmarks.py`` are named after the suite and parametrized by
``(case, variant)``, so ``asv_benchmarks.smoke.time_call`` with params ``('momentum_n1e6',
'numba/fused')`` maps back to suite ``smoke``, benchmark ``momentum_n1e6``, backend ``numba``,
algorithm ``fused``; the op and its parameters come from the suite definition. Method names
give the metric: ``time_*`` -> ``time`` (s), ``track_gflops`` -> ``gflops``, ``track_gbs`` ->
``gbs``, ``track_compile_time`` -> ``compile_time``, ``peakmem_*`` -> ``peakmem`` (bytes),
``track_<name>`` -> ``<name>``. One (rows, meta) per asv result file, i.e. per machine, commit
and environment; other asv benchmarks are kept with suite ``asv``.

pytest-benchmark: each benchmark's ``extra_info`` written by ``tests/benchmarks`` carries the
suite, case, op, params, backend, algorithm, dtype and the FLOP/byte counts; without it the
group becomes the op and the ``backend`` parameter the backend. The per-round timings
(``stats.data``, always present in ``--benchmark-json`` output) become the ``samples``.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dlbench.errors import UserError
from dlbench.results import normalize

ASV_METRICS = {
    "time": ("time", "s"),
    "peakmem": ("peakmem", "bytes"),
    "mem": ("mem", "bytes"),
    "track_gflops": ("gflops", "GFLOP/s"),
    "track_gbs": ("gbs", "GB/s"),
    "track_compile_time": ("compile_time", "s"),
}


# ------------------------------------------------------------------------------ detection
def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not readable JSON ({type(e).__name__}: {e})") from e


def is_pytest_benchmark_json(path: Path) -> bool:
    if path.suffix != ".json" or not path.is_file():
        return False
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(d, dict) and isinstance(d.get("benchmarks"), list) and "machine_info" in d


def is_asv_result_file(path: Path) -> bool:
    if path.suffix != ".json" or not path.is_file() or path.name in ("machine.json", "benchmarks.json"):
        return False
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(d, dict) and "commit_hash" in d and "results" in d


def asv_results_dir(path: Path) -> Path | None:
    """The asv results folder at or under ``path`` (a project root, ``.asv``, results or machine dir)."""
    for cand in (path, path / "results", path / ".asv" / "results"):
        if not cand.is_dir():
            continue
        if (cand / "benchmarks.json").exists() or any((d / "machine.json").exists() for d in _subdirs(cand)):
            return cand
        if (cand / "machine.json").exists():  # a machine folder
            return cand
    return None


def _subdirs(p: Path):
    try:
        return [d for d in p.iterdir() if d.is_dir()]
    except OSError:
        return []


# ------------------------------------------------------------------------------ asv
def _unquote(s: str) -> str:
    s = str(s)
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        return s[1:-1]
    return s


def _suite_lookup():
    """asv class name -> suite name, and (suite, case name) -> Case (quick and full sizes)."""
    from dlbench.suite import list_suites

    try:
        from dlbench.suites.asv_benchmarks import class_name
    except Exception:  # noqa: BLE001

        def class_name(s):
            return re.sub(r"\W", "_", s)

    names, cases = {}, {}
    try:
        suites = list_suites()
    except Exception:  # noqa: BLE001 - a broken suite module must not stop an import
        suites = []
    for s in suites:
        names[class_name(s.name)] = s.name
        names["suite_" + class_name(s.name).lstrip("_")] = s.name
        for quick in (True, False):
            try:
                for c in s.cases(quick):
                    cases.setdefault((s.name, c.name), c)
            except Exception:  # noqa: BLE001
                pass
    return names, cases


def _asv_metric(method: str, bench_type: str, unit: str) -> tuple[str, str]:
    if method in ASV_METRICS:
        return ASV_METRICS[method]
    if bench_type == "time" or method.startswith("time_"):
        return "time", "s"
    if bench_type == "peakmemory" or method.startswith("peakmem_"):
        return "peakmem", "bytes"
    if method.startswith("mem_"):
        return "mem", "bytes"
    if method.startswith("track_"):
        return method[len("track_") :], unit or ""
    return method, unit or ""


def _iso(ts_ms) -> str:
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(float(ts_ms) / 1000))
    except (TypeError, ValueError, OverflowError):
        return ""


def _num(x) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v


def from_asv_file(
    path: str | Path, benchmarks: dict | None = None, machine: dict | None = None, lookup=None
) -> tuple[pd.DataFrame, dict]:
    """Rows and meta of one asv result file (``<results>/<machine>/<commit>-<env>.json``)."""
    path = Path(path)
    d = _read_json(path)
    if not (isinstance(d, dict) and "results" in d):
        raise UserError(f"{path}: not an asv result file (no 'results')")
    if benchmarks is None:
        bj = path.parent.parent / "benchmarks.json"
        benchmarks = _read_json(bj) if bj.exists() else {}
    if machine is None:
        mj = path.parent / "machine.json"
        machine = _read_json(mj) if mj.exists() else {}
    names, cases = lookup or _suite_lookup()
    cols = d.get("result_columns") or [
        "result",
        "params",
        "version",
        "started_at",
        "duration",
        "stats_ci_99_a",
        "stats_ci_99_b",
        "stats_q_25",
        "stats_q_75",
        "stats_number",
        "stats_repeat",
        "samples",
        "profile",
    ]
    commit = str(d.get("commit_hash", ""))
    mname = str(d.get("params", {}).get("machine") or machine.get("machine") or path.parent.name)
    run_id = f"asv-{commit[:8]}-{mname}"
    stamp = _iso(d.get("date"))
    rows = []
    for name, values in (d.get("results") or {}).items():
        rec = dict(zip(cols, values)) if isinstance(values, list) else {"result": values}
        info = benchmarks.get(name, {})
        params = rec.get("params") or info.get("params") or []
        param_names = info.get("param_names") or [f"param{i + 1}" for i in range(len(params))]
        combos = list(itertools.product(*params)) if params else [()]
        result = rec.get("result")
        if not isinstance(result, list):
            result = [result]

        def col(key, i, _rec=rec):
            v = _rec.get(key)
            if isinstance(v, list) and i < len(v):
                return v[i]
            return None

        parts = name.split(".")
        method = parts[-1]
        cls = parts[-2] if len(parts) >= 3 else ""
        metric, unit = _asv_metric(method, info.get("type", ""), info.get("unit", ""))
        for i, combo in enumerate(combos):
            value = _num(result[i]) if i < len(result) else math.nan
            pvals = [_unquote(p) for p in combo]
            row = {
                "run_id": run_id,
                "timestamp": stamp,
                "git_rev": commit[:12],
                "machine": mname,
                "metric": metric,
                "unit": unit,
                "value": value,
                "dtype": "",
                "threads": np.nan,
                "device": "cpu",
                "chosen": "",
                "message": "",
                "status": "ok",
            }
            suite_cls = cls[: -len("_compile")] if cls.endswith("_compile") else cls
            if parts[0] == "asv_benchmarks" and suite_cls in names and len(pvals) == 2:
                suite, case_name, variant = names[suite_cls], pvals[0], pvals[1]
                backend, _, algorithm = variant.partition("/")
                case = cases.get((suite, case_name))
                row.update(
                    suite=suite,
                    benchmark=case_name,
                    backend=backend,
                    algorithm=algorithm or "default",
                    op=case.op if case else "",
                    dtype=case.dtype if case else "",
                    params=case.params_json if case else json.dumps({}),
                    device="gpu" if backend == "numba-cuda" else "cpu",
                )
            else:
                row.update(
                    suite="asv",
                    benchmark=".".join(parts[:-1] + [method]),
                    op=method,
                    params=json.dumps(dict(zip(param_names, pvals)), sort_keys=True),
                    backend="",
                    algorithm="default",
                )
            if not math.isfinite(value):
                row.update(status="skipped", message="asv: n/a (skipped in setup, failed or not run)")
            if metric == "time" and math.isfinite(value):
                q25, q75 = _num(col("stats_q_25", i)), _num(col("stats_q_75", i))
                samples = col("samples", i)
                row.update(
                    median=value,
                    iqr=q75 - q25 if math.isfinite(q25) and math.isfinite(q75) else np.nan,
                    n_samples=_num(col("stats_repeat", i)),
                )
                if isinstance(samples, list) and samples:
                    s = np.asarray([_num(x) for x in samples], float)
                    row.update(
                        samples=",".join(f"{x:.6g}" for x in s),
                        min=float(np.nanmin(s)),
                        n_samples=len(s),
                        cv=float(np.nanstd(s, ddof=1) / np.nanmean(s)) if len(s) > 1 else np.nan,
                    )
            rows.append(row)
    df = normalize(pd.DataFrame(rows)) if rows else normalize(pd.DataFrame(columns=["run_id"]))
    df = _add_derived(df, cases)
    meta = {
        "run_id": run_id,
        "source": "asv",
        "path": str(path),
        "git_rev": commit[:12],
        "commit_hash": commit,
        "started": stamp,
        "status": "complete",
        "fingerprint": mname,
        "machine": {
            "hostname": mname,
            "cpu_model": machine.get("cpu", ""),
            "cores": machine.get("num_cpu", ""),
            "os": machine.get("os", ""),
            "mem_gib": _ram_gib(machine.get("ram")),
            "arch": machine.get("arch", ""),
        },
        "asv": {
            "env_name": d.get("env_name", ""),
            "python": d.get("python", ""),
            "requirements": d.get("requirements", {}),
            "machine": mname,
        },
    }
    return df, meta


def _ram_gib(ram) -> str:
    v = _num(ram)
    return f"{v / 2**20:.1f}" if math.isfinite(v) and v > 0 else str(ram or "")


def _add_derived(df: pd.DataFrame, cases: dict) -> pd.DataFrame:
    """GFLOP/s and GB/s rows from ``time`` rows where the op's models say the work and the source
    did not record them itself."""
    if df.empty:
        return df
    have = set(
        map(
            tuple,
            df[df.metric.isin(["gflops", "gbs"])][["benchmark", "backend", "algorithm", "metric"]].itertuples(
                index=False
            ),
        )
    )
    extra = []
    for _, r in df[(df.metric == "time") & (df.status == "ok")].iterrows():
        case = cases.get((r.suite, r.benchmark))
        if case is None or not (r.value > 0):
            continue
        for metric, unit, work in (("gflops", "GFLOP/s", case.flops), ("gbs", "GB/s", case.bytes)):
            if (r.benchmark, r.backend, r.algorithm, metric) in have:
                continue
            try:
                w = float(work())
            except Exception:  # noqa: BLE001
                continue
            if math.isfinite(w) and w > 0:
                extra.append(
                    {
                        **r.to_dict(),
                        "metric": metric,
                        "unit": unit,
                        "value": w / r.value / 1e9,
                        "min": np.nan,
                        "median": np.nan,
                        "iqr": np.nan,
                        "cv": np.nan,
                        "n_samples": np.nan,
                        "samples": "",
                        "message": "derived from the median time",
                    }
                )
    if extra:
        df = normalize(pd.concat([df, pd.DataFrame(extra)], ignore_index=True))
    return df


def from_asv(path: str | Path) -> list[tuple[pd.DataFrame, dict]]:
    """Every asv result file under ``path`` (project root, ``.asv``, results or machine folder, or
    one result file), oldest commit first per machine."""
    path = Path(path)
    if path.is_file():
        if not is_asv_result_file(path):
            raise UserError(f"{path}: not an asv result file")
        return [from_asv_file(path)]
    root = asv_results_dir(path)
    if root is None:
        raise UserError(f"{path}: no asv results found (expected .asv/results with machine folders)")
    if (root / "machine.json").exists() and not (root / "benchmarks.json").exists():
        machine_dirs, bench_path = [root], root.parent / "benchmarks.json"
    else:
        machine_dirs, bench_path = (
            [d for d in _subdirs(root) if (d / "machine.json").exists()],
            root / "benchmarks.json",
        )
    benchmarks = _read_json(bench_path) if bench_path.exists() else {}
    lookup = _suite_lookup()
    out = []
    for mdir in sorted(machine_dirs):
        machine = _read_json(mdir / "machine.json") if (mdir / "machine.json").exists() else {}
        for f in sorted(mdir.glob("*.json")):
            if f.name == "machine.json":
                continue
            try:
                out.append(from_asv_file(f, benchmarks, machine, lookup))
            except UserError:
                continue
    if not out:
        raise UserError(
            f"{root}: asv results folder holds no result files (run `asv run --python=same "
            "--set-commit-hash HEAD` first)"
        )
    out.sort(key=lambda rm: (rm[1]["machine"]["hostname"], rm[1]["started"]))
    return out


# ------------------------------------------------------------------------------ pytest-benchmark
def from_pytest_benchmark(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """Rows and meta of one pytest-benchmark JSON file (``--benchmark-json`` or ``--benchmark-save``)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist")
    d = _read_json(path)
    if not (isinstance(d, dict) and isinstance(d.get("benchmarks"), list)):
        raise UserError(f"{path}: not a pytest-benchmark JSON file (no 'benchmarks' list)")
    mi = d.get("machine_info") or {}
    ci = d.get("commit_info") or {}
    dl = mi.get("dlbench") or {}
    stamp = str(d.get("datetime", ""))[:19]
    run_id = "pytest-" + (re.sub(r"[^0-9T]", "", stamp)[:15] or path.stem)
    rev = str(ci.get("id") or "")[:12] + ("+dirty" if ci.get("dirty") else "")
    fp = dl.get("fingerprint") or mi.get("node", "")
    rows = []
    for b in d["benchmarks"]:
        st = b.get("stats") or {}
        ex = b.get("extra_info") or {}
        bparams = b.get("params") or {}
        backend = ex.get("backend") or bparams.get("backend", "")
        params = ex.get("params")
        if params is None:
            params = {k: v for k, v in bparams.items() if k != "backend"}
        base = {
            "run_id": run_id,
            "timestamp": stamp,
            "suite": ex.get("suite") or "pytest-benchmark",
            "benchmark": ex.get("case") or b.get("name", ""),
            "op": ex.get("op") or b.get("group") or "",
            "params": params if isinstance(params, str) else json.dumps(params, sort_keys=True, default=str),
            "backend": backend,
            "algorithm": ex.get("algorithm") or "default",
            "chosen": ex.get("chosen", ""),
            "dtype": ex.get("dtype", ""),
            "threads": ex.get("threads", np.nan),
            "device": ex.get("device") or ("gpu" if backend == "numba-cuda" else "cpu"),
            "git_rev": rev,
            "machine": fp,
            "status": "ok",
            "message": b.get("fullname", ""),
        }
        data = st.get("data") or []
        median = _num(st.get("median"))
        row = {
            **base,
            "metric": "time",
            "value": median,
            "unit": "s",
            "median": median,
            "min": _num(st.get("min")),
            "iqr": _num(st.get("iqr")),
            "n_samples": st.get("rounds"),
            "cv": _num(st.get("stddev")) / _num(st.get("mean")) if _num(st.get("mean")) > 0 else np.nan,
            "samples": ",".join(f"{_num(x):.6g}" for x in data),
        }
        if not math.isfinite(median):
            row.update(status="error", message="pytest-benchmark recorded no timing")
        rows.append(row)
        for key, metric, unit in (("flops", "gflops", "GFLOP/s"), ("bytes", "gbs", "GB/s")):
            w = _num(ex.get(key))
            if math.isfinite(w) and w > 0 and median > 0:
                rows.append({**base, "metric": metric, "value": w / median / 1e9, "unit": unit})
        cal = dl.get("calibration") or {}
        if median > 0 and cal:
            for key, metric, ceil in (
                ("flops", "frac_peak_flops", "peak_gflops"),
                ("bytes", "frac_peak_bw", "bw_gbs"),
            ):
                w, c = _num(ex.get(key)), _num(cal.get(ceil))
                if math.isfinite(w) and w > 0 and c > 0:
                    rows.append({**base, "metric": metric, "value": w / median / 1e9 / c, "unit": "fraction"})
    df = normalize(pd.DataFrame(rows)) if rows else normalize(pd.DataFrame(columns=["run_id"]))
    cpu = mi.get("cpu") or {}
    machine = dl.get("machine") or {
        "hostname": mi.get("node", ""),
        "cpu_model": cpu.get("brand_raw", ""),
        "cores": cpu.get("count", ""),
        "os": f"{mi.get('system', '')} {mi.get('release', '')}",
        "arch": cpu.get("arch", mi.get("machine", "")),
    }
    meta = {
        "run_id": run_id,
        "source": "pytest-benchmark",
        "path": str(path),
        "git_rev": rev,
        "started": stamp,
        "status": "complete",
        "fingerprint": fp,
        "machine": machine,
        "calibration": dl.get("calibration") or {},
        "threads": dl.get("threads") or {},
        "versions": dl.get("versions")
        or {"python": mi.get("python_version", ""), "pytest-benchmark": d.get("version", "")},
        "blas": dl.get("blas") or {},
        "command": "pytest " + " ".join(str(x) for x in dl.get("argv", [])),
    }
    return df, meta
