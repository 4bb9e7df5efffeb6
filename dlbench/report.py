"""Reports: self-contained HTML, Markdown summary and CSV from one or more result sources.

Sources are dlbench run folders (``results/<run-id>/``), asv results (``.asv/results``: the
latest commit per machine is shown beside the runs, every commit in an "asv history" section)
and pytest-benchmark JSON files, in any mix: several runs or machines appear side by side.

Contents, in order:

1. runs and machines (CPU, cores, ISA, GPU, BLAS, threads, command, git revision, status) and the
   calibration each run used (peak GFLOP/s, memory bandwidth and their component figures);
2. warnings: partial (interrupted) runs, unreadable files, failed variants;
3. one section per suite, from a renderer looked up in :data:`SECTIONS` by suite name (register
   one with :func:`register_section`); suites with convergence metrics default to
   :func:`convergence_section`, the others to :func:`throughput_section`:

   - throughput: best of our kernels vs the best torch / NumPy variants, the per-variant table
     (median time, IQR, samples, GFLOP/s, GB/s, % of the calibrated peaks, × numpy, × torch,
     suite metrics), side-by-side columns for several sources, a roofline plot, a bar chart,
     the algorithm ``auto`` chose per shape, JIT compile times, skipped/failed variants;
   - convergence: time-to-target table (median and 95 % CI over seeds), loss vs iterations and
     vs seconds with seed bands, learning-rate sensitivity, tuning budget and Dolan–Moré
     performance profiles (from the side tables of the run folder, or computed from the rows);
4. asv history: median time per commit.

CSV is the long-format rows of every source (the results schema), so a CSV report of an asv
or pytest-benchmark source is that source imported into the schema.
"""

from __future__ import annotations

import contextvars
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from dlbench.errors import UserError
from dlbench.report_render import Details, Figure, Heading, Note, Para, Table, fmt, render_html, render_md
from dlbench.report_sources import Source, load_sources
from dlbench.report_tables import (
    best_display,
    best_of_ours,
    chosen_table,
    compile_table,
    problems_table,
    short_params,
    side_by_side,
    throughput_display,
    variant_label,
    variant_table,
)

FORMATS = ("html", "md", "csv")
CONVERGENCE_METRICS = ("iters_to_target", "seconds_to_target", "final_excess", "grads_to_target", "reached")
SectionRenderer = Callable[[str, list], list]
SECTIONS: dict[str, SectionRenderer] = {}


def register_section(suite: str):
    """Decorator: ``fn(suite, sources) -> list of blocks`` renders suite ``suite``'s section."""

    def deco(fn):
        SECTIONS[suite] = fn
        return fn

    return deco


def is_convergence(rows: pd.DataFrame) -> bool:
    return bool(rows.metric.isin(CONVERGENCE_METRICS).any())


def section_for(suite: str, rows: pd.DataFrame) -> SectionRenderer:
    if suite in SECTIONS:
        return SECTIONS[suite]
    return convergence_section if is_convergence(rows) else throughput_section


def _suite_description(suite: str) -> str:
    try:
        from dlbench.suite import SUITES, load_suites

        load_suites()
        return SUITES[suite].description if suite in SUITES else ""
    except Exception:  # noqa: BLE001 - a report never fails on a broken suite module
        return ""


_FIGURES = contextvars.ContextVar("dlbench_report_figures", default=True)


def _plot(fn, *args, **kw) -> str | None:
    """A figure's PNG, or None when figures are off (Markdown and CSV have none) or it fails."""
    if not _FIGURES.get():
        return None
    return fn(*args, **kw)


def _fig(png: str | None, caption: str) -> list:
    return [Figure(png, caption, alt=caption)] if png else []


def _suite_rows(src: Source, suite: str) -> pd.DataFrame:
    return src.rows[src.rows.suite == suite]


# ------------------------------------------------------------------------------ header
def _machine_line(m: dict) -> str:
    parts = [str(m.get("cpu_model") or "")]
    if m.get("llvm_cpu"):
        parts[0] += f" ({m['llvm_cpu']})"
    if m.get("cores"):
        parts.append(f"{m['cores']} cores")
    if m.get("caches"):
        parts.append(str(m["caches"]))
    if m.get("mem_gib"):
        parts.append(f"{m['mem_gib']} GiB")
    return ", ".join(p for p in parts if p)


def runs_table(sources: list[Source]) -> pd.DataFrame:
    """Run and machine metadata: one column per source."""
    fields = {}
    for s in sources:
        m, meta = s.machine, s.meta
        th = meta.get("threads")
        threads = th.get("threads", "") if isinstance(th, dict) else (th or "")
        blas = meta.get("blas") or {}
        versions = meta.get("versions") or {}
        vers = ", ".join(
            f"{k} {v}"
            for k, v in versions.items()
            if v and k in ("python", "numpy", "numba", "torch", "Cython", "scipy", "pytest-benchmark")
        )
        counts = (
            s.rows.drop_duplicates(["suite", "benchmark", "params", "backend", "algorithm", "dtype"])
            .status.value_counts()
            .to_dict()
            if not s.rows.empty
            else {}
        )
        fields[s.label] = {
            "source": s.kind,
            "path": s.path,
            "run id": meta.get("run_id", ""),
            "started": meta.get("started", ""),
            "finished": meta.get("finished", ""),
            "status": meta.get("status", "") + (" (partial)" if meta.get("status") == "running" else ""),
            "suites": ", ".join(sorted(set(s.rows.suite))) if not s.rows.empty else "",
            "variants": ", ".join(f"{v} {k}" for k, v in counts.items()),
            "quick": str(meta.get("quick", "")),
            "git revision": meta.get("git_rev", ""),
            "command": meta.get("command", ""),
            "host": m.get("hostname", ""),
            "machine": _machine_line(m),
            "ISA": m.get("isa", ""),
            "GPU": m.get("gpu", "") or ("none" if m else ""),
            "OS": m.get("os", ""),
            "fingerprint": meta.get("fingerprint", ""),
            "threads": str(threads),
            "BLAS": blas.get("blas_all", "") if isinstance(blas, dict) else str(blas),
            "versions": vers,
        }
    df = pd.DataFrame(fields)
    df = df[(df.astype(str) != "").any(axis=1)]
    return df.rename_axis("").reset_index()


def calibration_table(sources: list[Source]) -> pd.DataFrame:
    cols = {}
    for s in sources:
        cal = s.calibration
        if not cal:
            continue
        d = {
            "peak GFLOP/s (ceiling)": f"{fmt(cal.get('peak_gflops'))} ({cal.get('peak_source', '')})",
            "bandwidth GB/s (ceiling)": f"{fmt(cal.get('bw_gbs'))} ({cal.get('bw_source', '')})",
            "ridge point FLOP/byte": fmt(_ratio(cal.get("peak_gflops"), cal.get("bw_gbs")), 3),
            "threads": str(cal.get("threads", "")),
            "measured at": str(cal.get("measured_at", "")),
        }
        for k, v in cal.items():
            if (
                isinstance(v, (int, float))
                and not isinstance(v, bool)
                and (k.endswith("_gflops") or k.endswith("_gbs"))
                and "_n" not in k
                and k not in ("peak_gflops", "bw_gbs")
            ):
                d[k] = fmt(v)
        cols[s.label] = d
    if not cols:
        return pd.DataFrame()
    return pd.DataFrame(cols).fillna("").rename_axis("").reset_index()


def _ratio(a, b) -> float:
    try:
        return float(a) / float(b)
    except (TypeError, ValueError, ZeroDivisionError):
        return math.nan


def header_blocks(sources: list[Source]) -> list:
    import dlbench

    blocks = [
        Para(
            f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} by dlbench {dlbench.__version__} from "
            f"{len(sources)} source{'s' if len(sources) != 1 else ''}: "
            + ", ".join(f"`{s.label}` ({s.kind})" for s in sources)
            + "."
        )
    ]
    for s in sources:
        for w in s.warnings:
            blocks.append(Note(f"{s.label}: {w}", "warn"))
        n_err = int(((s.rows.status == "error") & (s.rows.metric == "time")).sum()) if not s.rows.empty else 0
        if n_err:
            blocks.append(Note(f"{s.label}: {n_err} variant(s) failed; see the suite sections", "error"))
    blocks.append(Heading(2, "Runs and machines", "runs"))
    blocks.append(Table(runs_table(sources)))
    cal = calibration_table(sources)
    if not cal.empty:
        blocks.append(Heading(3, 'Calibration (the ceilings every "% of peak" divides by)'))
        blocks.append(Table(cal, md=True))
        if any((not s.rows.empty) and (s.rows.metric == "frac_probe_bw").any() for s in sources):
            blocks.append(Para('"% BW probe" divides by the calibration\'s in-place update timed again in '
                               "the same rounds as each case (the bandwidth at that moment; it drifts by "
                               '+-25 % within minutes on a shared machine); "% peak BW" by the cached '
                               "ceiling above."))
    return blocks


# ------------------------------------------------------------------------------ throughput
def _roofline_panel(src: Source, vt: pd.DataFrame) -> dict:
    pts = pd.DataFrame(columns=["oi", "gflops", "backend"])
    if {"gflops", "gbs"} <= set(vt.columns):
        ok = vt[(vt.status == "ok") & (vt.gflops > 0) & (vt.gbs > 0)]
        pts = pd.DataFrame({"oi": ok.gflops / ok.gbs, "gflops": ok.gflops, "backend": ok.backend})
    cal = src.calibration
    ceilings = {
        k.replace("_gflops", ""): float(v)
        for k, v in cal.items()
        if isinstance(v, (int, float)) and k.endswith("_gflops") and k != "peak_gflops" and "_n" not in k
    }
    bw_ceilings = {
        k.replace("_gbs", ""): float(v)
        for k, v in cal.items()
        if isinstance(v, (int, float)) and k.endswith("_gbs") and k != "bw_gbs" and "_n" not in k
    }
    return {
        "title": src.label,
        "points": pts,
        "peak": cal.get("peak_gflops"),
        "bw": cal.get("bw_gbs"),
        "ceilings": ceilings,
        "bw_ceilings": bw_ceilings,
    }


def _bar_metric(vt: pd.DataFrame) -> tuple[str, str]:
    for m, u in (("gflops", "GFLOP/s"), ("gbs", "GB/s")):
        if m in vt and vt[m].notna().any():
            return m, u
    return "time", "median seconds per call"


def throughput_section(suite: str, sources: list[Source]) -> list:
    """Default suite section: headline, per-variant table(s), roofline, bars, auto choices, compile times."""
    from dlbench import report_figures as figs

    blocks: list = []
    vts = {s.label: variant_table(_suite_rows(s, suite)) for s in sources}
    vts = {k: v for k, v in vts.items() if not v.empty}
    if not vts:
        return blocks
    srcs = {s.label: s for s in sources}
    multi = len(vts) > 1

    bests = []
    for label, vt in vts.items():
        b = best_of_ours(vt)
        if not b.empty:
            bests.append(b.assign(_run=label))
    if bests:
        b = pd.concat(bests, ignore_index=True)
        blocks.append(Heading(3, "Best of our kernels vs the peers"))
        blocks.append(
            Para(
                "Per benchmark, the fastest of our kernels (numba, cython, numba-cuda, user "
                "kernels) against the fastest torch and NumPy variants; speedup > 1× means ours is "
                "faster.",
                md=False,
            )
        )
        blocks.append(Table(best_display(b, b._run if multi else None), cell_class=_speedup_class))

    blocks.append(Heading(3, "Throughput"))
    if multi:
        sbs = side_by_side(vts)
        blocks.append(
            Para(
                "Side by side (median per call; the last columns are time ratios to the first "
                "source: > 1 is slower)."
            )
        )
        blocks.append(Table(sbs, cell_class=_ratio_class))
        for label, vt in vts.items():
            blocks.append(
                Details(f"All columns: {label}", [Table(throughput_display(vt), cell_class=_speedup_class)])
            )
    else:
        ((label, vt),) = vts.items()
        blocks.append(Table(throughput_display(vt), cell_class=_speedup_class))

    panels = [_roofline_panel(srcs[label], vt) for label, vt in vts.items()]
    png = _plot(figs.roofline, panels)
    blocks += _fig(
        png,
        f"Roofline of suite {suite}: operational intensity (FLOP/byte from the op's models) vs "
        "attained GFLOP/s, under the measured compute ceiling and bandwidth slope "
        "(dashed: other measured ceilings).",
    )
    allv = pd.concat([vt.assign(source=label) for label, vt in vts.items()], ignore_index=True)
    allv.attrs["units"] = next(iter(vts.values())).attrs.get("units", {})
    metric, unit = _bar_metric(allv)
    png = _plot(
        figs.throughput_bars,
        allv,
        metric,
        unit,
        f"{suite}: {unit} per variant" + (" (hatching: source)" if multi else ""),
    )
    blocks += _fig(png, f"{unit} per benchmark and variant.")

    chosen = [chosen_table(vt).assign(run=label) for label, vt in vts.items()]
    chosen = [c for c in chosen if not c.empty]
    if chosen:
        c = pd.concat(chosen, ignore_index=True)
        if not multi:
            c = c.drop(columns="run")
        blocks.append(Heading(3, "Algorithm chosen by auto"))
        blocks.append(Table(c))

    comp = [compile_table(vt).assign(run=label) for label, vt in vts.items()]
    comp = [c for c in comp if not c.empty]
    if comp:
        c = pd.concat(comp, ignore_index=True)
        if not multi:
            c = c.drop(columns="run")
        blocks.append(Heading(3, "JIT / compile time (first call minus a steady-state call)", md=False))
        blocks.append(Table(c, md=False))

    probs = [problems_table(vt).assign(run=label) for label, vt in vts.items()]
    probs = [p for p in probs if not p.empty]
    if probs:
        p = pd.concat(probs, ignore_index=True)
        n_err = int((p.status == "error").sum())
        summary = f"{len(p)} variant(s) not measured: " + ", ".join(
            f"{v} {k}" for k, v in p.status.value_counts().items()
        )
        if n_err:
            blocks.append(Note(summary, "error"))
        blocks.append(Details(summary, [Table(p if multi else p.drop(columns="run"))]))
    return blocks


def _speedup_class(col: str, text: str) -> str:
    if ("×" in col or "speedup" in col) and text.endswith("×"):
        try:
            v = float(text[:-1])
        except ValueError:
            return ""
        return "good" if v >= 1.1 else ("bad" if v <= 0.9 else "")
    if col == "status" and text in ("error", "diverged"):
        return "bad"
    if col == "status" and text == "skipped":
        return "muted"
    return ""


def _ratio_class(col: str, text: str) -> str:
    if col.endswith(" time") and text:
        try:
            v = float(text)
        except ValueError:
            return ""
        return "bad" if v >= 1.1 else ("good" if v <= 1 / 1.1 else "")
    return _speedup_class(col, text)


# ------------------------------------------------------------------------------ convergence
def _conv_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (benchmark, optimizer backend, optimizer): median [95 % CI] of the convergence metrics."""
    out = []
    for (bench, _params, backend, opt), g in rows.groupby(
        ["benchmark", "params", "backend", "algorithm"], sort=False
    ):
        rec = {"benchmark": bench, "optimizer": opt, "backend": backend}
        st = g.status.iloc[0]
        by = g.drop_duplicates("metric").set_index("metric")
        for metric, name, digits in (
            ("iters_to_target", "iterations to target", 4),
            ("seconds_to_target", "seconds to target", 3),
            ("final_excess", "final excess", 3),
        ):
            if metric not in by.index:
                continue
            r = by.loc[metric]
            txt = fmt(r.value, digits)
            lo, hi = r.get("ci_low", np.nan), r.get("ci_high", np.nan)
            if txt and pd.notna(lo) and pd.notna(hi):
                txt += f" [{fmt(lo, 3)}, {fmt(hi, 3)}]"
            rec[name] = txt
        for metric, name in (("reached", "reached"), ("diverged", "diverged")):
            if metric in by.index:
                rec[name] = fmt(by.loc[metric].value, 3, pct=True) + "%"
        if "best_lr" in by.index:
            rec["best lr"] = fmt(by.loc["best_lr"].value, 3)
        elif "lr" in by.columns and by["lr"].notna().any():
            rec["best lr"] = fmt(by["lr"].dropna().iloc[0], 3)
        rec["status"] = st
        rec["message"] = str(g.message.iloc[0])[:120]
        out.append(rec)
    return pd.DataFrame(out).fillna("")


def _filter_bench(t: pd.DataFrame | None, benches: set) -> pd.DataFrame:
    if t is None or t.empty:
        return pd.DataFrame()
    if "benchmark" in t.columns:
        return t[t.benchmark.isin(benches)]
    return t


def profiles_from_rows(rows: pd.DataFrame, metric: str = "iters_to_target") -> pd.DataFrame:
    """Dolan–Moré performance profiles against the best optimizer per problem (when the run folder
    has no ``profiles.parquet``): r_{p,s} = t_{p,s} / min_s t_{p,s}, unreached = inf."""
    d = rows[(rows.metric == metric) & (rows.status != "skipped")]
    if d.empty:
        return pd.DataFrame()
    wide = d.pivot_table(index=["benchmark", "params"], columns="algorithm", values="value", aggfunc="first")
    if "reached" in set(rows.metric):
        reach = rows[rows.metric == "reached"].pivot_table(
            index=["benchmark", "params"], columns="algorithm", values="value", aggfunc="first"
        )
        wide = wide.where(reach.reindex_like(wide).fillna(1) >= 0.5, np.inf)
    best = wide.replace(np.inf, np.nan).min(axis=1)
    taus = np.logspace(0, 3, 91)
    out = []
    for opt in wide.columns:
        r = (wide[opt] / best).replace(np.nan, np.inf).to_numpy(float)
        for tau in taus:
            out.append(
                {
                    "optimizer": opt,
                    "tau": tau,
                    "rho": float((r <= tau).mean()),
                    "metric": metric,
                    "reference": "best per problem",
                }
            )
    return pd.DataFrame(out)


def convergence_section(suite: str, sources: list[Source]) -> list:
    """Time to target, curves with seed bands, learning-rate sensitivity, tuning budget, profiles."""
    from dlbench import report_figures as figs

    blocks: list = []
    for s in sources:
        rows = _suite_rows(s, suite)
        if rows.empty:
            continue
        tag = f" ({s.label})" if len(sources) > 1 else ""
        benches = set(rows.benchmark)
        summ = _conv_summary(rows)
        if not summ.empty:
            blocks.append(Heading(3, "Time to target" + tag))
            blocks.append(
                Para(
                    "Median over the final seeds at the best learning rate, with the 95 % bootstrap CI "
                    "in brackets; seconds exclude the evaluation of J(θ)."
                )
            )
            blocks.append(Table(summ, cell_class=_speedup_class))
        curves = _filter_bench(s.tables.get("curves"), benches)
        if not curves.empty:
            blocks.append(Heading(3, "Convergence curves" + tag, md=False))
            value = "excess" if "excess" in curves and (curves.excess > 0).all() else "loss"
            keys = ["problem", "params"] if "params" in curves else ["problem"]
            for key, g in curves.groupby(keys, sort=False):
                key = key if isinstance(key, tuple) else (key,)
                title = " ".join([str(key[0])] + [t for t in (short_params(str(k)) for k in key[1:]) if t])
                png = _plot(figs.loss_curves, g, title, value)
                blocks += _fig(
                    png,
                    f"{title}: {value} vs iterations and vs seconds; line = median over seeds, "
                    "band = min–max.",
                )
        sens = _filter_bench(s.tables.get("sensitivity"), benches)
        if not sens.empty:
            blocks.append(Heading(3, "Learning-rate sensitivity" + tag, md=False))
            value = "final_excess" if "final_excess" in sens else "final_loss"
            for prob, g in sens.groupby("problem", sort=False):
                png = _plot(figs.lr_sensitivity, g, f"{prob}", value)
                blocks += _fig(
                    png, f"{prob}: median {value} over the tuning seeds at each learning rate of the grid."
                )
            if "iters_to_target" in sens:
                t = sens.groupby(["problem", "optimizer", "lr"]).iters_to_target.median().unstack("lr")
                t.columns = [fmt(c, 2) for c in t.columns]
                blocks.append(
                    Details(
                        "Median iterations to target per learning rate", [Table(t.map(fmt).reset_index())]
                    )
                )
        budget = _filter_bench(s.tables.get("tuning_budget"), benches)
        png = _plot(figs.tuning_budget, budget, "Tuning budget") if not budget.empty else None
        if png:
            blocks.append(Heading(3, "Tuning budget" + tag, md=False))
            blocks += _fig(png, "Probability that the best of b random learning rates reaches the target.")
        prof = s.tables.get("profiles")
        if prof is None or prof.empty:
            prof = pd.concat(
                [profiles_from_rows(rows, m) for m in ("iters_to_target", "seconds_to_target")],
                ignore_index=True,
            )
        if prof is not None and not prof.empty and len(set(prof.optimizer)) > 1:
            blocks.append(Heading(3, "Performance profiles" + tag, md="score" in prof))
            png = _plot(figs.performance_profile, prof, "Dolan–Moré performance profiles")
            blocks += _fig(
                png, "ρ(τ): fraction of problems an optimizer solves within τ times the reference."
            )
            if "score" in prof:
                sc = prof[prof.tau.isna() & prof.score.notna()]
                if not sc.empty:
                    blocks.append(
                        Table(
                            pd.DataFrame(
                                {
                                    "optimizer": sc.optimizer.values,
                                    "metric": sc.metric.values,
                                    "score (area under ρ)": sc.score.map(fmt).values,
                                }
                            )
                        )
                    )
    if not blocks:
        return blocks
    other = [
        s
        for s in sources
        if not _suite_rows(s, suite).empty and _suite_rows(s, suite).metric.isin(["time"]).any()
    ]
    if other:
        blocks += throughput_section(suite, other)
    return blocks


def _orphan_curves(sources: list[Source], covered: set) -> list:
    """Curves of a run whose convergence rows are not in any suite section (e.g. a sweep written
    by ``dlbench.convergence.write_outputs`` without suite rows)."""
    from dlbench import report_figures as figs

    blocks = []
    for s in sources:
        c = s.tables.get("curves")
        if c is None or c.empty or s.label in covered:
            continue
        blocks.append(Heading(2, f"Convergence curves ({s.label})"))
        value = "excess" if "excess" in c and (c.excess > 0).all() else "loss"
        for prob, g in c.groupby("problem", sort=False):
            blocks += _fig(
                _plot(figs.loss_curves, g, str(prob), value),
                f"{prob}: {value}, median over seeds, min–max band.",
            )
    return blocks


# ------------------------------------------------------------------------------ asv history
def history_blocks(sources: list[Source]) -> list:
    from dlbench import report_figures as figs

    blocks = []
    for s in sources:
        if s.kind != "asv" or len(s.history) < 2:
            continue
        frames = []
        for h in s.history:
            t = h.rows[(h.rows.metric == "time") & (h.rows.status == "ok")]
            frames.append(
                pd.DataFrame(
                    {
                        "key": [
                            f"{a}/{b} {variant_label(c, d)}"
                            for a, b, c, d in zip(t.suite, t.benchmark, t.backend, t.algorithm)
                        ],
                        "date": pd.to_datetime(h.meta.get("started") or None),
                        "commit": h.meta.get("git_rev", "")[:8],
                        "value": t.value.values,
                    }
                )
            )
        hist = pd.concat(frames, ignore_index=True)
        if hist.empty:
            continue
        blocks.append(Heading(2, f"asv history: {s.machine.get('hostname', '')}", f"asv-{s.label}"))
        blocks += _fig(
            _plot(figs.history, hist, f"median time per commit ({len(s.history)} commits)"),
            "Median seconds per call at each benchmarked commit (asv).",
        )
        first, last = s.history[0].meta.get("git_rev", "")[:8], s.history[-1].meta.get("git_rev", "")[:8]
        w = hist.pivot_table(index="key", columns="commit", values="value", aggfunc="first")
        if first in w and last in w:
            t = pd.DataFrame(
                {
                    "benchmark": w.index,
                    f"{first} ms": (w[first] * 1e3).map(fmt),
                    f"{last} ms": (w[last] * 1e3).map(fmt),
                    "ratio": (w[last] / w[first]).map(lambda v: fmt(v, 3)),
                }
            )
            blocks.append(
                Table(
                    t.reset_index(drop=True),
                    f"first ({first}) vs latest ({last}) commit",
                    cell_class=lambda c, x: _ratio_class(c + " time", x) if c == "ratio" else "",
                )
            )
    return blocks


# ------------------------------------------------------------------------------ assembly
def build(sources: list[Source]) -> list:
    """The report's blocks for these sources."""
    blocks = header_blocks(sources)
    suites = list(dict.fromkeys(x for s in sources for x in s.rows.suite.tolist() if x))
    covered = set()
    for suite in suites:
        rows = pd.concat([_suite_rows(s, suite) for s in sources], ignore_index=True)
        renderer = section_for(suite, rows)
        try:
            body = renderer(suite, sources)
        except Exception as e:  # noqa: BLE001 - one broken section must not lose the report
            body = [Note(f"the {suite} section could not be rendered: {type(e).__name__}: {e}", "error")]
        if renderer is convergence_section:
            covered |= {s.label for s in sources if not _suite_rows(s, suite).empty}
        if not body:
            continue
        desc = _suite_description(suite)
        blocks.append(Heading(2, f"Suite {suite}", f"suite-{suite}"))
        if desc:
            blocks.append(Para(desc))
        blocks += body
    blocks += _orphan_curves(sources, covered)
    blocks += history_blocks(sources)
    return blocks


def rows_of(sources: list[Source]) -> pd.DataFrame:
    frames = [s.rows for s in sources if not s.rows.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def render(sources: list[Source], format: str = "html", title: str | None = None) -> str:
    if format not in FORMATS:
        raise UserError(f"unknown report format {format!r}; choose from {', '.join(FORMATS)}")
    if all(s.rows.empty for s in sources):
        raise UserError(
            "no result rows in "
            + ", ".join(s.path or s.label for s in sources)
            + " (an empty or unfinished run?)"
        )
    if format == "csv":
        return rows_of(sources).to_csv(index=False)
    title = title or (
        "dlbench report: " + ", ".join(s.label for s in sources[:3]) + (" …" if len(sources) > 3 else "")
    )
    token = _FIGURES.set(format == "html")
    try:
        blocks = build(sources)
    finally:
        _FIGURES.reset(token)
    return render_html(blocks, title) if format == "html" else render_md(blocks, title)


def report(results, format: str = "html", path=None, title: str | None = None):
    """Write a report of ``results`` (paths to run folders / asv results / pytest-benchmark JSON,
    DataFrames of rows, or a list of those) in ``format`` ("html", "md" or "csv").

    With ``path`` the file is written and its Path returned; without, the text is returned.
    """
    sources = load_sources(results)
    text = render(sources, format, title)
    if path is None:
        return text
    p = Path(path)
    if p.is_dir():
        p = p / f"report.{format}"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def _outputs(formats: list[str], output: str | None, sources: list[Source]) -> list[tuple[str, Path | None]]:
    """Where each format goes: a file, a folder (report.<fmt> inside), or stdout (None)."""
    if output is None:
        out = []
        for f in formats:
            if f == "html":
                first = next((Path(s.path) for s in sources if s.kind == "dlbench" and s.path), None)
                out.append((f, (first / "report.html") if first else Path("report.html")))
            else:
                out.append((f, None))
        return out
    o = Path(output)
    is_dir = output.endswith(("/", os.sep)) or o.is_dir()
    if is_dir:
        return [(f, o / f"report.{f}") for f in formats]
    if len(formats) == 1:
        return [(formats[0], o)]
    stem = o.with_suffix("") if o.suffix.lstrip(".") in FORMATS else o
    return [(f, stem.with_suffix(f".{f}")) for f in formats]


def cli_report(args) -> int:
    """``dlbench report RUN... [--format html|md|csv ...] [-o PATH]``."""
    formats = list(dict.fromkeys(args.format or []))
    if not formats:
        suffix = Path(args.output).suffix.lstrip(".") if args.output else ""
        formats = [suffix] if suffix in FORMATS else ["html"]
    sources = load_sources(args.runs)
    for fmt_, dest in _outputs(formats, args.output, sources):
        text = render(sources, fmt_)
        if dest is None:
            print(text, end="")
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            dest.write_text(text, encoding="utf-8")
        except OSError as e:
            raise UserError(f"cannot write {dest}: {e.strerror or e}") from e
        print(f"wrote {dest}")
    return 0


def describe_sources(sources: list[Source]) -> str:
    return json.dumps(
        [{"label": s.label, "kind": s.kind, "path": s.path, "rows": len(s.rows)} for s in sources]
    )


class _CallableModule(__import__("types").ModuleType):
    """``import dlbench.report`` rebinds ``dlbench.report`` (the function in ``dlbench/__init__``)
    to this module; making the module callable keeps ``db.report(results, ...)`` working."""

    def __call__(self, results, format: str = "html", path=None, **kw):
        return report(results, format=format, path=path, **kw)


__import__("sys").modules[__name__].__class__ = _CallableModule
