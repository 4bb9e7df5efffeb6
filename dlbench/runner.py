"""The benchmark runner behind ``dlbench run`` and ``db.run``.

For each case of each suite and each variant (backend, algorithm): check availability (an
unavailable backend or an inapplicable kernel is a *skipped* row with the reason), bind fresh
inputs, time the call (first call = compile time, then warm-up and adaptive repeats), derive
GFLOP/s, GB/s and fractions of the calibrated peaks from the op's models, and append the rows
to the run folder at once. ``resume=True`` skips variants already stored.
"""

from __future__ import annotations

import fnmatch
import math
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

import pandas as pd

from dlbench.errors import UserError
from dlbench.results import ResultStore, new_run_id, point_latest, variant_key
from dlbench.suite import Bound, Case, Skip, Variant, get_suite, list_suites
from dlbench.timing import Timing, stats_from_samples

QUICK_TARGET, FULL_TARGET = 0.2, 1.0


def _device_of(backend: str) -> str:
    """Where a variant runs by default; a suite's Bound(extra={"device": ...}) overrides it."""
    from dlbench.backends import backend_status

    if backend == "numba-cuda":
        return backend_status(backend).mode or "cuda"
    return "cpu"


def _base_row(case: Case, var: Variant, threads: int, ctx: dict | None) -> dict:
    """The identifying columns of a result row (schema in dlbench.results); ctx may lack keys."""
    ctx = ctx or {}
    return {"run_id": ctx.get("run_id", ""), "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "suite": case.suite, "benchmark": case.name, "op": case.op, "params": case.params_json,
            "backend": var.backend, "algorithm": var.algorithm, "chosen": "", "dtype": case.dtype,
            "threads": threads, "device": _device_of(var.backend), "git_rev": ctx.get("git_rev", ""),
            "machine": ctx.get("machine", ""), "status": "ok", "message": ""}


def _metric(base: dict, metric: str, value: float, unit: str, **extra) -> dict:
    return {**base, "metric": metric, "value": float(value), "unit": unit, **extra}


def _not_runnable(case: Case, var: Variant) -> str | None:
    """Reason this variant cannot run here, or None."""
    from dlbench.backends import backend_status
    from dlbench.registry import KERNELS, load_builtin_kernels

    st = backend_status(var.backend)
    if not st.available:
        return st.reason
    if not st.timed:
        return st.reason or f"{var.backend} is not timed here"
    load_builtin_kernels([var.backend])
    kern = KERNELS.get((case.op, var.algorithm, var.backend))
    if kern is not None:
        return kern.applies(case.dtype, **case.params)
    return None


def _status_rows(base: dict, status: str, message: str) -> list[dict]:
    """The one row of a variant that was not timed ("skipped" or "error", with the reason)."""
    return [_metric({**base, "status": status, "message": message}, "time", math.nan, "s")]


def _is_convergence(case: Case) -> bool:
    return getattr(case, "kind", "throughput") == "convergence"


def _prepare(case: Case, var: Variant, threads: int, ctx: dict):
    """Bind one variant: ``(base_row, bound)``, or ``(rows, None)`` when it is skipped, fails, or is
    a convergence case (whose protocol runs here and returns its rows)."""
    base = _base_row(case, var, threads, ctx)
    reason = _not_runnable(case, var)
    if reason:
        return _status_rows(base, "skipped", reason), None
    if _is_convergence(case):
        from dlbench.convergence import run_case

        return run_case(case, var, threads, ctx, out_dir=ctx.get("out_dir")), None
    try:
        bound = case.bind(var, case.dtype)
    except Exception as e:  # noqa: BLE001 - recorded as a skipped/error row, the run goes on
        return _failure_rows(base, e), None
    if not isinstance(bound, Bound):
        bound = Bound(bound)
    return base, bound


def _failure_rows(base: dict, e: BaseException) -> list[dict]:
    """A Skip or a constraint violation is "skipped"; anything else an "error" row."""
    if isinstance(e, Skip):
        return _status_rows(base, "skipped", str(e))
    if isinstance(e, (ValueError, NotImplementedError)):
        return _status_rows(base, "skipped", f"{type(e).__name__}: {e}")
    if os.environ.get("DLBENCH_DEBUG"):
        traceback.print_exc()
    return _status_rows(base, "error", f"{type(e).__name__}: {e}")


def _last_choice(op: str) -> str:
    """The algorithm the latest ``auto`` call of op picked ("" when none)."""
    try:
        from dlbench.autotune import last_choice
    except ImportError:  # pragma: no cover
        return ""
    return last_choice(op) or ""


def _time_bound(bound: Bound, target_time: float, first_call: bool = True) -> Timing:
    from dlbench.timing import measure, measure_cuda, settle_seconds

    if bound.timer == "cuda":
        return measure_cuda(bound.fn, target_time=target_time)
    return measure(bound.fn, target_time=target_time, sync=bound.sync, first_call=first_call,
                   settle=settle_seconds())


def _probe(case: Case, bound: Bound | None, ctx: dict) -> float | None:
    """The bandwidth probe's GB/s now (``calibrate.BandwidthProbe``), for a CPU case with a byte
    model when the run has a probe; None otherwise."""
    probe = ctx.get("probe")
    if probe is None or bound is None or bound.timer == "cuda" or bound.extra.get("device"):
        return None
    nbytes = case.bytes()
    if not (math.isfinite(nbytes) and nbytes > 0):
        return None
    return probe()


def measure_variant(case: Case, var: Variant, threads: int, ctx: dict, target_time: float) -> list[dict]:
    """Rows for one variant of one case (ok, skipped or error)."""
    base, bound = _prepare(case, var, threads, ctx)
    if bound is None:
        return base
    try:
        probe = _probe(case, bound, ctx)
        t = _time_bound(bound, case.target_time or target_time)
    except Exception as e:  # noqa: BLE001
        return _failure_rows(base, e)
    return timing_rows(case, var, base, bound, t, ctx if probe is None else {**ctx, "probe_gbs": probe})


def measure_interleaved(case: Case, variants: list[Variant], threads: int, ctx: dict, target_time: float,
                        rounds: int) -> list[list[dict]]:
    """Rows for several variants of one case, timed side by side in ``rounds`` round-robin passes.

    Every variant is bound first; then each round times each variant for target_time / rounds and
    the samples of all rounds are pooled (the first call, i.e. the compile time, comes from round
    one). A slow drift of the machine (memory bandwidth shared with other tenants, clock changes)
    then lands on every variant alike instead of on whichever ran during the dip, so the ratios
    between variants are fairer than with one block of samples per variant.
    """
    prepared = [_prepare(case, v, threads, ctx) for v in variants]
    samples: list[list[float]] = [[] for _ in variants]
    first: list[Timing | None] = [None] * len(variants)
    failed: list[list[dict] | None] = [None] * len(variants)
    tt = (case.target_time or target_time) / rounds
    probes: list[float] = []
    first_bound = next((b for _, b in prepared if b is not None), None)
    for r in range(rounds):
        p = _probe(case, first_bound, ctx)      # the bandwidth now, next to this round's timings
        if p is not None:
            probes.append(p)
        for i, (base, bound) in enumerate(prepared):
            if bound is None or failed[i] is not None:
                continue
            try:
                t = _time_bound(bound, tt, first_call=r == 0)
            except Exception as e:  # noqa: BLE001
                failed[i] = _failure_rows(base, e)
                continue
            first[i] = first[i] or t
            samples[i].extend(t.samples)
            if variants[i].algorithm == "auto":  # record it before another variant calls auto
                bound.extra.setdefault("chosen", _last_choice(case.op))
    out = []
    for i, (base, bound) in enumerate(prepared):
        if bound is None:
            out.append(base)
        elif failed[i] is not None:
            out.append(failed[i])
        else:
            t = stats_from_samples(samples[i], first[i].inner, first[i].first_call)
            out.append(timing_rows(case, variants[i], base, bound, t,
                                   {**ctx, "probe_gbs": statistics.median(probes)} if probes else ctx))
    return out


def timing_rows(case: Case, var: Variant, base: dict, bound: Bound, t: Timing, ctx: dict) -> list[dict]:
    """The metric rows of one measured variant: time statistics, compile time, derived rates."""
    base = dict(base)
    if bound.extra.get("device"):
        base["device"] = bound.extra["device"]
    on_gpu = bound.timer == "cuda" or str(base["device"]).startswith(("cuda", "gpu"))
    base["chosen"] = bound.extra.get("chosen") or (_last_choice(case.op) if var.algorithm == "auto" else "")
    stats = {"min": t.min, "median": t.median, "iqr": t.iqr, "cv": t.cv, "n_samples": t.n_samples,
             "samples": ",".join(f"{s:.6g}" for s in t.samples)}
    rows = [_metric(base, "time", t.median, "s", **stats),
            _metric(base, "compile_time", t.compile_time, "s",
                    message="first call minus steady-state median"),
            _metric(base, "first_call", t.first_call, "s")]
    flops, nbytes = case.flops(), case.bytes()
    cal = ctx["calibration"]
    # GPU rows divide by the device's ceilings (when calibrated), CPU rows by the CPU's
    peak_f = cal.get("gpu_peak_gflops", math.nan) if on_gpu else cal["peak_gflops"]
    peak_b = cal.get("gpu_bw_gbs", math.nan) if on_gpu else cal["bw_gbs"]
    if math.isfinite(flops) and flops > 0:
        gf = flops / t.median / 1e9
        rows.append(_metric(base, "gflops", gf, "GFLOP/s"))
        rows.append(_metric(base, "frac_peak_flops", gf / peak_f, "fraction"))
    if math.isfinite(nbytes) and nbytes > 0:
        gb = nbytes / t.median / 1e9
        rows.append(_metric(base, "gbs", gb, "GB/s"))
        rows.append(_metric(base, "frac_peak_bw", gb / peak_b, "fraction"))
        probe = ctx.get("probe_gbs")
        if probe and not on_gpu:
            rows.append(_metric(base, "probe_bw_gbs", probe, "GB/s",
                                message="the calibration's in-place update, timed in the same rounds"))
            rows.append(_metric(base, "frac_probe_bw", gb / probe, "fraction"))
    if case.metrics is not None:
        for name, (value, unit) in case.metrics(t).items():
            rows.append(_metric(base, name, value, unit))
    for name, (value, unit) in bound.extra.get("metrics", {}).items():  # measured at bind time
        rows.append(_metric(base, name, value, unit))
    if bound.check is not None:
        rows.append(_metric(base, "max_rel_error", bound.check(), "relative"))
    return rows


def machine_load() -> tuple[float, int]:
    """(1-minute load average, processes runnable right now besides this one) from /proc/loadavg."""
    try:
        fields = Path("/proc/loadavg").read_text().split()
        return float(fields[0]), max(int(fields[3].split("/")[0]) - 1, 0)
    except (OSError, IndexError, ValueError):
        return (os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0), 0


def _by_case(todo):
    """(case, [variants]) in suite order from a list of (case, variant) pairs."""
    groups: dict[int, tuple] = {}
    for case, var in todo:
        groups.setdefault(id(case), (case, []))[1].append(var)
    return list(groups.values())


def select_cases(suites: list[str], quick: bool, pattern: str | None) -> list[Case]:
    cases = []
    for name in suites:
        for c in get_suite(name).cases(quick):
            full = f"{c.suite}/{c.name}"
            if pattern and not (fnmatch.fnmatch(full, f"*{pattern}*") or pattern in full):
                continue
            cases.append(c)
    return cases


def run(suites=None, backends=None, quick: bool = True, threads: int | None = None, filter: str | None = None,
        out: str | os.PathLike | None = None, resume: bool = False, progress: bool = True,
        target_time: float | None = None, calibration: dict | None = None, executor: str | None = None,
        scheduler: str | None = None, variants=None, rounds: int = 1,
        reuse_memory: bool = True) -> pd.DataFrame:
    """Run suites and return the results table (also written to ``out``, default results/<run-id>).

    suites: a name or list of names (default: the default suites); backends: restrict variants to
    these backends; quick: small sizes; threads: one setting for every CPU backend; filter: a
    substring or glob on "suite/benchmark"; variants: globs on "backend/algorithm" (e.g.
    ``["*/auto", "torch/*"]``), a variant runs when any matches; rounds: time the variants of
    each case side by side in this many round-robin passes (see ``measure_interleaved``);
    resume: continue the run in ``out`` (or the latest); reuse_memory: keep freed large buffers in
    the heap for every backend (``dlbench.allocator.keep_freed_memory``: outputs allocated per call
    do not pay page faults; False measures with glibc's default, fresh pages per large output).
    executor/scheduler: how convergence sweeps run their cells ("process" by default, "serial",
    or "dask" with a scheduler address).
    """
    from dlbench.allocator import keep_freed_memory
    from dlbench.backends import check_backend
    from dlbench.calibrate import BandwidthProbe, calibrate
    from dlbench.machine import fingerprint, git_revision, machine_info, versions
    from dlbench.threads import blas_info, set_threads
    from dlbench.timing import settle_seconds

    if rounds < 1:
        raise UserError(f"--rounds must be >= 1, got {rounds}")
    if isinstance(suites, str):
        suites = [suites]
    suites = list(suites or [s.name for s in list_suites() if s.default])
    for s in suites:
        get_suite(s)  # validates
    if isinstance(backends, str):
        backends = [backends]
    for b in backends or []:
        check_backend(b)
    applied = set_threads(threads)
    threads = applied["threads"]
    root = Path("results")
    if resume and out is None:
        from dlbench.results import latest_run

        last = latest_run(root)
        if last is None:
            raise UserError("--resume: no earlier run under results/ (pass --out DIR)")
        out = last
    out = Path(out) if out is not None else root / new_run_id()
    cases = select_cases(suites, quick, filter)
    if not cases:
        raise UserError(f"no benchmark matches --filter {filter!r} in suites {', '.join(suites)}")
    if isinstance(variants, str):
        variants = [variants]
    todo = [(c, v) for c in cases for v in c.variants if (not backends or v.backend in backends)
            and (not variants or any(fnmatch.fnmatch(f"{v.backend}/{v.algorithm}", p) for p in variants))]
    if not todo:
        raise UserError("no variant matches " + " ".join(
            [f"--backend {b}" for b in backends or []] + [f"--variant {v}" for v in variants or []]))
    store = ResultStore(out, run_id=None if resume else out.name, resume=resume)
    say = (lambda m: print(m, file=sys.stderr)) if progress else (lambda m: None)
    load, others = machine_load()
    if others >= 1 or load > 0.75 * (os.cpu_count() or 1):
        print(f"warning: {others} other runnable process(es), load average {load:.1f} on {os.cpu_count()} "
              "cores: other processes distort the timings (recorded in meta.json)", file=sys.stderr)
    heap = keep_freed_memory() if reuse_memory else {"policy": "default", "reason": "--fresh-pages"}
    quick_cal = os.environ.get("DLBENCH_QUICK_CALIBRATION", "") not in ("", "0")  # tests: small, no torch
    cal = calibration or calibrate(threads, quick=quick_cal, progress=lambda m: say(f"calibrating: {m}"))
    ctx = {"run_id": store.run_id, "git_rev": git_revision(), "machine": fingerprint(), "calibration": cal,
           "out_dir": out, "executor": executor, "scheduler": scheduler,
           "probe": BandwidthProbe(1 << 22 if quick_cal else 10_000_000)}
    store.write_meta({"run_id": store.run_id, "suites": suites, "quick": quick, "threads": applied,
                      "backends": backends, "variants": variants, "rounds": rounds, "filter": filter,
                      "load_avg_start": load, "other_runnable_start": others, "allocator": heap,
                      "settle_s": settle_seconds(),
                      "command": " ".join(sys.argv),
                      "git_rev": ctx["git_rev"], "fingerprint": ctx["machine"], "machine": machine_info(),
                      "calibration": cal, "blas": blas_info(), "versions": versions(), "status": "running",
                      "started": store.read_meta().get("started") or time.strftime("%Y-%m-%dT%H:%M:%S")})
    if root in out.parents or out.parent == root:
        point_latest(root, out)
    done = store.done_keys()
    tt = target_time or (QUICK_TARGET if quick else FULL_TARGET)
    abort_after = int(os.environ.get("DLBENCH_TEST_ABORT_AFTER", "0"))  # fault injection for tests
    finished = 0
    with _progress(progress, len(todo)) as advance:
        for case, group in _by_case(todo):
            pending = []
            for var in group:
                label = f"{case.suite}/{case.name} {var.label}"
                if variant_key(_base_row(case, var, threads, ctx)) in done:
                    advance(label + " (done)")
                else:
                    pending.append(var)
            if rounds > 1 and len(pending) > 1 and not _is_convergence(case):
                results = measure_interleaved(case, pending, threads, ctx, tt, rounds)
            else:
                results = (measure_variant(case, var, threads, ctx, tt) for var in pending)
            for var, rows in zip(pending, results):
                store.append(rows)
                finished += 1
                advance(f"{case.suite}/{case.name} {var.label}")
                if abort_after and finished >= abort_after:
                    os._exit(137)
    store.write_meta({"status": "complete", "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
    df = store.df
    df.attrs["path"] = str(out)
    return df


class _progress:
    """A rich progress bar on stderr (or nothing when disabled / not a terminal and quiet)."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total = enabled, total

    def __enter__(self):
        if not self.enabled:
            return lambda label: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.p = Progress(TextColumn("{task.description:<60}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=Console(stderr=True), transient=False)
        self.p.__enter__()
        self.task = self.p.add_task("benchmarks", total=self.total)

        def advance(label):
            self.p.update(self.task, advance=1, description=label[:60])

        return advance

    def __exit__(self, *exc):
        if self.enabled:
            self.p.__exit__(*exc)
        return False


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """One row per measured variant: median time, GFLOP/s, GB/s, % of peaks, status."""
    if df.empty:
        return df
    key = ["suite", "benchmark", "backend", "algorithm", "dtype"]
    wide = df.pivot_table(index=key, columns="metric", values="value", aggfunc="first")
    st = df.drop_duplicates(key).set_index(key)[["status", "message", "chosen"]]
    out = st.join(wide, how="left").reset_index()
    cols = [c for c in key + ["chosen", "status", "time", "gflops", "gbs", "frac_peak_flops", "frac_peak_bw",
                              "frac_probe_bw", "compile_time", "message"] if c in out.columns]
    return out[cols]
