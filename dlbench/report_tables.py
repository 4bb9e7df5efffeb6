"""Tables of a report, computed from result rows (numbers) and formatted for display (strings).

``variant_table(rows)`` is the wide, numeric view: one row per measured variant (suite,
benchmark, params, dtype, backend, algorithm) with the ``time`` statistics and every other
metric as a column, plus speedups against the reference backends:

- ``x_numpy`` = best NumPy median / this median, ``x_torch`` = best torch median / this median
  (> 1: this variant is faster);
- ``best_of_ours`` picks, per benchmark, the fastest of *our* kernels (every backend except the
  ``numpy`` reference and the ``torch``/``scipy`` peers) and states its speedup over the best
  torch variant and over the best NumPy variant: the headline figure of a suite.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from dlbench.report_render import fmt

REFERENCE = "numpy"
PEERS = ("torch", "scipy")
STD_METRICS = (
    "time",
    "compile_time",
    "first_call",
    "gflops",
    "frac_peak_flops",
    "gbs",
    "frac_peak_bw",
    "probe_bw_gbs",
    "frac_probe_bw",
    "max_rel_error",
)
KEY = ["suite", "benchmark", "params", "dtype", "backend", "algorithm"]
CASE = ["suite", "benchmark", "params", "dtype"]


def is_ours(backend: str) -> bool:
    return backend not in (REFERENCE, *PEERS)


def variant_label(backend: str, algorithm: str, chosen: str = "") -> str:
    lab = f"{backend}/{algorithm}" if algorithm and algorithm != "default" else backend
    if chosen and chosen != algorithm:
        lab += f" → {chosen}"
    return lab


def short_params(params: str, limit: int = 60) -> str:
    """'{"n": 1000000}' -> 'n=1000000'."""
    try:
        d = json.loads(params) if params else {}
    except (TypeError, ValueError):
        return str(params)[:limit]
    if not isinstance(d, dict):
        return str(d)[:limit]
    s = " ".join(f"{k}={v}" for k, v in d.items())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def variant_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One numeric row per variant; metric columns hold values; ``attrs['units']`` maps metric -> unit."""
    if rows.empty:
        return pd.DataFrame(columns=KEY)
    r = rows.copy()
    r["threads"] = r["threads"].astype("float64")
    units = r.drop_duplicates("metric").set_index("metric")["unit"].to_dict()
    first = r.sort_values("metric", key=lambda m: m != "time").drop_duplicates(KEY)
    base = first[KEY + ["chosen", "device", "threads", "status", "message"]].set_index(KEY)
    tm = (
        r[r.metric == "time"]
        .drop_duplicates(KEY)
        .set_index(KEY)[["min", "iqr", "n_samples", "cv", "samples"]]
    )
    wide = r.pivot_table(index=KEY, columns="metric", values="value", aggfunc="first", dropna=False)
    wide.columns = [str(c) for c in wide.columns]
    out = base.join(tm, how="left").join(wide, how="left")
    order = r[KEY].drop_duplicates().set_index(KEY).index  # the suite's own order of variants
    out = out.reindex(order).reset_index()
    if "time" not in out:
        out["time"] = np.nan
    out = add_speedups(out)
    out.attrs["units"] = units
    return out


def add_speedups(vt: pd.DataFrame) -> pd.DataFrame:
    ok = vt[(vt.status == "ok") & (vt.time > 0)]
    for ref, col in ((REFERENCE, "x_numpy"), ("torch", "x_torch")):
        best = ok[ok.backend == ref].groupby(CASE)["time"].min().rename(f"_best_{ref}")
        vt = vt.join(best, on=CASE)
        vt[col] = vt[f"_best_{ref}"] / vt["time"].where(vt.status == "ok")
        vt = vt.drop(columns=f"_best_{ref}")
    return vt


def best_of_ours(vt: pd.DataFrame) -> pd.DataFrame:
    """Per benchmark: the fastest of our kernels against the best torch and best NumPy variants."""
    rows = []
    ok = vt[(vt.status == "ok") & (vt.time > 0)]
    for key, g in ok.groupby(CASE, sort=False):
        ours = g[g.backend.map(is_ours)]
        if ours.empty:
            continue
        b = ours.loc[ours.time.idxmin()]
        rec = {
            "suite": key[0],
            "benchmark": key[1],
            "params": key[2],
            "dtype": key[3],
            "best": variant_label(b.backend, b.algorithm, b.chosen),
            "time": b.time,
            "gflops": b.get("gflops", np.nan),
            "gbs": b.get("gbs", np.nan),
            "frac_peak_flops": b.get("frac_peak_flops", np.nan),
            "frac_peak_bw": b.get("frac_peak_bw", np.nan),
            "frac_probe_bw": b.get("frac_probe_bw", np.nan),
        }
        for ref in ("torch", REFERENCE, "scipy"):
            rg = g[g.backend == ref]
            if rg.empty:
                rec[f"{ref}_best"], rec[f"{ref}_time"], rec[f"x_{ref}"] = "", np.nan, np.nan
            else:
                rb = rg.loc[rg.time.idxmin()]
                rec[f"{ref}_best"] = variant_label(rb.backend, rb.algorithm, rb.chosen)
                rec[f"{ref}_time"] = rb.time
                rec[f"x_{ref}"] = rb.time / b.time
        rows.append(rec)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ display
def _x(v) -> str:
    s = fmt(v, 3)
    return s + "×" if s else ""


def _ms(v) -> str:
    return fmt(v * 1e3 if v is not None and not pd.isna(v) else v, 4)


def _pct(v) -> str:
    return fmt(v, 3, pct=True)


def extra_metrics(vt: pd.DataFrame) -> list[str]:
    """Suite-specific metric columns (e.g. mparams_per_s) present in a variant table."""
    skip = (
        set(STD_METRICS)
        | set(KEY)
        | {
            "chosen",
            "device",
            "threads",
            "status",
            "message",
            "min",
            "iqr",
            "n_samples",
            "cv",
            "samples",
            "x_numpy",
            "x_torch",
        }
    )
    return [
        c
        for c in vt.columns
        if c not in skip
        and not c.startswith("_")
        and vt[c].notna().any()
        and pd.api.types.is_numeric_dtype(vt[c])
    ]


def throughput_display(vt: pd.DataFrame, with_params: bool = True) -> pd.DataFrame:
    """The per-variant table as text: ms, IQR, samples, GFLOP/s, GB/s, % of peaks, speedups, extras."""
    units = vt.attrs.get("units", {})
    out = pd.DataFrame()
    out["benchmark"] = vt.benchmark
    if with_params and vt.params.nunique() > 1 and (vt.groupby("benchmark").params.nunique() > 1).any():
        out["params"] = vt.params.map(short_params)
    if vt.dtype.nunique() > 1:
        out["dtype"] = vt.dtype
    out["variant"] = [variant_label(b, a, c) for b, a, c in zip(vt.backend, vt.algorithm, vt.chosen)]
    if (vt.device[vt.status == "ok"].astype(str) != "cpu").any():
        out["device"] = vt.device
    out["status"] = vt.status
    out["median ms"] = vt.time.map(_ms)
    out["IQR %"] = (vt.iqr / vt.time).map(_pct)
    out["n"] = vt.n_samples.map(lambda v: "" if pd.isna(v) else str(int(v)))
    for col, name, f in (
        ("gflops", "GFLOP/s", fmt),
        ("gbs", "GB/s", fmt),
        ("frac_peak_flops", "% peak FLOP/s", _pct),
        ("frac_peak_bw", "% peak BW", _pct),
        ("frac_probe_bw", "% BW probe", _pct),
        ("x_numpy", "× numpy", _x),
        ("x_torch", "× torch", _x),
    ):
        if col in vt and vt[col].notna().any():
            out[name] = vt[col].map(f)
    for m in extra_metrics(vt):
        out[f"{m} ({units.get(m, '')})" if units.get(m) else m] = vt[m].map(fmt)
    if "compile_time" in vt and vt.compile_time.notna().any():
        out["compile s"] = vt.compile_time.map(lambda v: fmt(v, 3))
    if "max_rel_error" in vt and vt.max_rel_error.notna().any():
        out["max rel err"] = vt.max_rel_error.map(lambda v: fmt(v, 2))
    return out.reset_index(drop=True)


def best_display(best: pd.DataFrame, run_col: pd.Series | None = None) -> pd.DataFrame:
    out = pd.DataFrame()
    if run_col is not None:
        out["run"] = run_col.values
    out["benchmark"] = best.benchmark.values
    out["best of ours"] = best.best.values
    out["median ms"] = best.time.map(_ms).values
    if best.gflops.notna().any():
        out["GFLOP/s"] = best.gflops.map(fmt).values
        out["% peak FLOP/s"] = best.frac_peak_flops.map(_pct).values
    if best.gbs.notna().any():
        out["GB/s"] = best.gbs.map(fmt).values
        out["% peak BW"] = best.frac_peak_bw.map(_pct).values
        if "frac_probe_bw" in best and best.frac_probe_bw.notna().any():
            out["% BW probe"] = best.frac_probe_bw.map(_pct).values
    for ref in ("torch", REFERENCE, "scipy"):
        if best[f"{ref}_time"].notna().any():
            out[f"best {ref}"] = best[f"{ref}_best"].values
            out[f"{ref} ms"] = best[f"{ref}_time"].map(_ms).values
            out[f"speedup vs {ref}"] = best[f"x_{ref}"].map(_x).values
    return out


def side_by_side(vts: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Several sources' variant tables joined on (benchmark, params, dtype, variant): per source the
    median ms, GFLOP/s (or GB/s), % of peak and speedup vs torch; plus new/old time ratios."""
    frames = []
    labels = list(vts)
    for label, vt in vts.items():
        if vt.empty:
            continue
        v = vt.assign(variant=[variant_label(b, a) for b, a in zip(vt.backend, vt.algorithm)])
        d = pd.DataFrame(
            {"benchmark": v.benchmark, "params": v.params, "dtype": v.dtype, "variant": v.variant}
        )
        d[f"{label}: ms"] = [_ms(t) if st == "ok" else st for t, st in zip(v.time, v.status)]
        if "gflops" in v and v.gflops.notna().any():
            d[f"{label}: GFLOP/s"] = v.gflops.map(fmt)
            if "frac_peak_flops" in v and v.frac_peak_flops.notna().any():
                d[f"{label}: % peak"] = v.frac_peak_flops.map(_pct)
        elif "gbs" in v and v.gbs.notna().any():
            d[f"{label}: GB/s"] = v.gbs.map(fmt)
            if "frac_peak_bw" in v and v.frac_peak_bw.notna().any():
                d[f"{label}: % peak BW"] = v.frac_peak_bw.map(_pct)
        if v.x_torch.notna().any():
            d[f"{label}: × torch"] = v.x_torch.map(_x)
        d[f"_{label}_t"] = v.time.where(v.status == "ok").values
        frames.append(d.drop_duplicates(["benchmark", "params", "dtype", "variant"]))
    if not frames:
        return pd.DataFrame()
    out = frames[0]
    for f in frames[1:]:
        out = out.merge(f, on=["benchmark", "params", "dtype", "variant"], how="outer")
    present = [lab for lab in labels if f"_{lab}_t" in out]
    if len(present) >= 2:
        first = out[f"_{present[0]}_t"]
        for lab in present[1:]:
            out[f"{lab} / {present[0]} time"] = (out[f"_{lab}_t"] / first).map(lambda v: fmt(v, 3))
    out = out.drop(columns=[c for c in out.columns if c.startswith("_")])
    if out.params.nunique() <= 1 or not (out.groupby("benchmark").params.nunique() > 1).any():
        out = out.drop(columns="params")
    else:
        out["params"] = out.params.map(short_params)
    if out.dtype.nunique() <= 1:
        out = out.drop(columns="dtype")
    return out.fillna("").reset_index(drop=True)


def chosen_table(vt: pd.DataFrame) -> pd.DataFrame:
    """Variants run with ``algorithm='auto'`` (or that report a choice): what was chosen per shape."""
    sel = vt[(vt.algorithm == "auto") | (vt.chosen.astype(str) != "")]
    if sel.empty:
        return pd.DataFrame()
    return pd.DataFrame(
        {
            "benchmark": sel.benchmark.values,
            "params": sel.params.map(short_params).values,
            "dtype": sel.dtype.values,
            "backend": sel.backend.values,
            "algorithm": sel.algorithm.values,
            "chosen": sel.chosen.replace("", "(not recorded)").values,
            "median ms": sel.time.map(_ms).values,
        }
    )


def compile_table(vt: pd.DataFrame) -> pd.DataFrame:
    """JIT/compile cost per variant: the largest first-call overhead over the suite's cases (the
    compile happens once per signature), its total, and the steady-state median beside it."""
    if "compile_time" not in vt or vt.compile_time.isna().all():
        return pd.DataFrame()
    v = vt[vt.compile_time.notna()]
    v = v.assign(variant=[variant_label(b, a) for b, a in zip(v.backend, v.algorithm)])
    g = v.groupby("variant", sort=False)
    out = pd.DataFrame(
        {
            "cases": g.size(),
            "max compile s": g.compile_time.max().map(lambda x: fmt(x, 3)),
            "total compile s": g.compile_time.sum().map(lambda x: fmt(x, 3)),
            "max first call s": (
                g.first_call.max() if "first_call" in v else g.compile_time.max() * np.nan
            ).map(lambda x: fmt(x, 3)),
            "median steady ms": g.time.median().map(_ms),
        }
    ).reset_index()
    order = g.compile_time.max().sort_values(ascending=False).index
    return out.set_index("variant").loc[order].reset_index()


def problems_table(vt: pd.DataFrame) -> pd.DataFrame:
    """Skipped, failed and diverged variants with their reasons."""
    bad = vt[vt.status != "ok"]
    if bad.empty:
        return pd.DataFrame()
    return pd.DataFrame(
        {
            "benchmark": bad.benchmark.values,
            "variant": [variant_label(b, a) for b, a in zip(bad.backend, bad.algorithm)],
            "status": bad.status.values,
            "reason": bad.message.astype(str).str.slice(0, 200).values,
        }
    )


def status_counts(rows: pd.DataFrame) -> dict:
    if rows.empty:
        return {}
    v = rows.drop_duplicates(KEY)
    return v.status.value_counts().to_dict()


def finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False
