"""matplotlib figures of a report, returned as base64 PNG (embedded in the HTML as data: URIs).

Only the object-oriented API is used (``matplotlib.figure.Figure``, no pyplot): no global state,
no GUI backend, safe in threads and inside a user's notebook.

- :func:`roofline`: operational intensity (FLOP/byte, from the op's models: GFLOP/s / GB/s of the
  same measurement) against attained GFLOP/s, under the calibrated compute ceiling
  (``peak_gflops``) and bandwidth slope (``bw_gbs`` × intensity), with the other measured
  ceilings (GEMM, torch conv, STREAM kernels) dashed;
- :func:`throughput_bars`: GFLOP/s (or another rate, or time) per benchmark and variant;
- :func:`loss_curves`: loss vs iterations and vs seconds per optimizer, median over seeds with
  a min-max band;
- :func:`lr_sensitivity`, :func:`performance_profile`, :func:`tuning_budget`, :func:`history`.
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import pandas as pd

BACKEND_COLORS = {
    "numpy": "#7f7f7f",
    "numba": "#1f77b4",
    "cython": "#2ca02c",
    "numba-cuda": "#9467bd",
    "torch": "#d62728",
    "scipy": "#8c564b",
}
_CYCLE = [
    "#ff7f0e",
    "#17becf",
    "#bcbd22",
    "#e377c2",
    "#1f77b4",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#d62728",
    "#7f7f7f",
    "#aec7e8",
    "#ffbb78",
]
MARKERS = "os^Dv<>pP*hX"


def color_for(name: str, i: int = 0) -> str:
    return BACKEND_COLORS.get(name) or _CYCLE[i % len(_CYCLE)]


def _figure(
    w: float = 7.0, h: float = 4.2, ncols: int = 1, nrows: int = 1, left_in: float = 0.75, title: bool = False
):
    """A figure with fixed margins (in inches; no layout engine: those cost seconds per figure)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    top = 1 - (0.55 if title else 0.35) / h
    fig.subplots_adjust(
        left=left_in / w,
        right=1 - 0.15 / w,
        bottom=0.6 / h,
        top=top,
        wspace=1.25 / (w / ncols),
        hspace=0.9 / (h / nrows),
    )
    return fig, axes


def to_png(fig, dpi: int = 100) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return base64.b64encode(buf.getvalue()).decode("ascii")


# ------------------------------------------------------------------------------ roofline
def roofline(panels: list[dict]) -> str | None:
    """One panel per source: ``{"title", "points": DataFrame[oi, gflops, backend], "peak", "bw",
    "ceilings": {name: GFLOP/s}, "bw_ceilings": {name: GB/s}}``. None when no panel has a point."""
    panels = [p for p in panels if not p["points"].empty]
    if not panels:
        return None
    n = len(panels)
    fig, axes = _figure(
        6.2 * min(n, 2), 4.3 * math.ceil(n / 2), ncols=min(n, 2), nrows=math.ceil(n / 2), left_in=0.8
    )
    flat = axes.ravel()
    for ax in flat[n:]:
        ax.set_visible(False)
    for ax, p in zip(flat, panels):
        pts = p["points"]
        peak, bw = p.get("peak") or math.nan, p.get("bw") or math.nan
        oi_lo, oi_hi = pts.oi.min(), pts.oi.max()
        if math.isfinite(peak) and math.isfinite(bw) and bw > 0:
            ridge = peak / bw
            oi_lo, oi_hi = min(oi_lo, ridge), max(oi_hi, ridge)
        x = np.logspace(math.log10(oi_lo / 4), math.log10(oi_hi * 4), 200)
        if math.isfinite(peak) and math.isfinite(bw) and bw > 0:
            ax.plot(
                x,
                np.minimum(peak, bw * x),
                color="black",
                lw=2,
                label=f"roofline: {peak:.0f} GFLOP/s, {bw:.1f} GB/s",
            )
            for i, (name, v) in enumerate(sorted((p.get("ceilings") or {}).items(), key=lambda kv: -kv[1])):
                if v and v < peak * 0.999:
                    ax.plot(
                        x,
                        np.minimum(v, bw * x),
                        ls="--",
                        lw=1,
                        color=_CYCLE[i % len(_CYCLE)],
                        alpha=0.7,
                        label=f"{name} {v:.0f}",
                    )
            for i, (name, v) in enumerate(
                sorted((p.get("bw_ceilings") or {}).items(), key=lambda kv: -kv[1])
            ):
                if v and v < bw * 0.999:
                    ax.plot(
                        x,
                        np.minimum(peak, v * x),
                        ls=":",
                        lw=1,
                        color=_CYCLE[(i + 5) % len(_CYCLE)],
                        alpha=0.7,
                        label=f"{name} {v:.1f} GB/s",
                    )
        else:
            ax.text(
                0.02,
                0.96,
                "no calibration: ceilings unknown",
                transform=ax.transAxes,
                va="top",
                fontsize=8,
                color="#a33",
            )
        for i, (backend, g) in enumerate(pts.groupby("backend", sort=True)):
            ax.scatter(
                g.oi,
                g.gflops,
                s=34,
                color=color_for(backend, i),
                marker=MARKERS[i % len(MARKERS)],
                edgecolor="black",
                linewidth=0.4,
                label=backend,
                zorder=3,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("operational intensity (FLOP/byte)")
        ax.set_ylabel("attained GFLOP/s")
        ax.set_title(p.get("title", ""), fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7, loc="lower right")
    return to_png(fig)


# ------------------------------------------------------------------------------ bars
def throughput_bars(vt: pd.DataFrame, metric: str, unit: str, title: str, max_bars: int = 60) -> str | None:
    """Horizontal bars of ``metric`` per (benchmark, variant) for one or several sources
    (column ``source`` when several)."""
    d = vt[vt[metric].notna() & (vt.status == "ok")] if metric in vt else vt.iloc[0:0]
    if d.empty:
        return None
    d = d.copy()
    if "source" not in d:
        d["source"] = ""
    d["variant"] = [f"{b}/{a}" if a and a != "default" else b for b, a in zip(d.backend, d.algorithm)]
    benches = list(dict.fromkeys(d.benchmark))
    variants = list(dict.fromkeys(d.variant))
    sources = list(dict.fromkeys(d.source))
    labels, vals, colors, hatches = [], [], [], []
    for bench in benches:
        for var in variants:
            for si, src in enumerate(sources):
                r = d[(d.benchmark == bench) & (d.variant == var) & (d.source == src)]
                if r.empty:
                    continue
                labels.append(f"{bench} · {var}" + (f" [{src}]" if len(sources) > 1 else ""))
                vals.append(float(r[metric].iloc[0]))
                colors.append(color_for(var.split("/")[0], variants.index(var)))
                hatches.append(["", "//", "..", "xx"][si % 4])
    labels, vals, colors, hatches = (
        labels[:max_bars],
        vals[:max_bars],
        colors[:max_bars],
        hatches[:max_bars],
    )
    left = min(4.5, 0.2 + 0.055 * max(len(lab) for lab in labels))
    fig, axes = _figure(max(8.0, left + 5.0), max(2.2, 0.24 * len(vals) + 1.0), left_in=left)
    ax = axes[0, 0]
    y = np.arange(len(vals))[::-1]
    bars = ax.barh(y, vals, color=colors, edgecolor="black", linewidth=0.3)
    for b, h in zip(bars, hatches):
        b.set_hatch(h)
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlabel(unit)
    if max(vals) / max(min(v for v in vals if v > 0) if any(v > 0 for v in vals) else 1, 1e-300) > 100:
        ax.set_xscale("log")
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    return to_png(fig)


# ------------------------------------------------------------------------------ convergence
def _band(ax, x, curves: list[tuple[np.ndarray, np.ndarray]], color, label, log_x: bool = False):
    """Median over seeds with a min-max band, each seed interpolated onto the grid ``x``."""
    ys = []
    for cx, cy in curves:
        order = np.argsort(cx)
        cx, cy = cx[order], cy[order]
        ok = np.isfinite(cx) & np.isfinite(cy)
        if ok.sum() < 1:
            continue
        cx, cy = cx[ok], cy[ok]
        xi = np.log(np.maximum(x, 1e-300)) if log_x else x
        cxi = np.log(np.maximum(cx, 1e-300)) if log_x else cx
        yi = np.interp(xi, cxi, cy, left=np.nan, right=cy[-1])  # a finished seed holds its last loss
        ys.append(yi)
    if not ys:
        return
    Y = np.vstack(ys)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med, lo, hi = np.nanmedian(Y, 0), np.nanmin(Y, 0), np.nanmax(Y, 0)
    ax.plot(x, med, color=color, lw=1.6, label=f"{label} (n={len(ys)})")
    if len(ys) > 1:
        ax.fill_between(x, lo, hi, color=color, alpha=0.18, lw=0)


def loss_curves(curves: pd.DataFrame, title: str, value: str = "loss") -> str | None:
    """Loss (or excess) vs iterations and vs seconds; one line per optimizer, band over seeds."""
    if curves.empty or value not in curves:
        return None
    has_sec = "seconds" in curves and curves.seconds.notna().any()
    fig, axes = _figure(11 if has_sec else 6, 4.2, ncols=2 if has_sec else 1, title=True)
    positive = bool((curves[value] > 0).all())
    opts = list(dict.fromkeys(curves.optimizer))
    for i, opt in enumerate(opts):
        g = curves[curves.optimizer == opt]
        seeds = [s for _, s in g.groupby("seed" if "seed" in g else "optimizer")]
        color = _CYCLE[i % len(_CYCLE)]
        it = np.unique(g.iteration.to_numpy(float))
        _band(
            axes[0, 0],
            it,
            [(s.iteration.to_numpy(float), s[value].to_numpy(float)) for s in seeds],
            color,
            opt,
        )
        if has_sec:
            sec = g.seconds.to_numpy(float)
            sec = sec[np.isfinite(sec) & (sec > 0)]
            if sec.size:
                grid = np.logspace(math.log10(sec.min()), math.log10(sec.max()), 120)
                _band(
                    axes[0, 1],
                    grid,
                    [(s.seconds.to_numpy(float), s[value].to_numpy(float)) for s in seeds],
                    color,
                    opt,
                    log_x=True,
                )
    for ax, xl in zip(axes[0], ("iterations", "seconds (evaluation excluded)")):
        ax.set_xlabel(xl)
        ax.set_ylabel(value if value != "excess" else "excess error J(θ) − J*")
        if positive:
            ax.set_yscale("log")
        if xl == "iterations":
            ax.set_xscale("symlog", linthresh=1)
            ax.set_xlim(left=0)
        else:
            ax.set_xscale("log")
        ax.grid(True, which="both", alpha=0.25)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return to_png(fig)


def lr_sensitivity(sens: pd.DataFrame, title: str, value: str) -> str | None:
    """``value`` (median over tuning seeds) against the learning rate, one line per optimizer."""
    d = sens[sens.lr.notna() & (sens.lr > 0)] if "lr" in sens else sens.iloc[0:0]
    if d.empty or value not in d:
        return None
    fig, axes = _figure(6.5, 4.0)
    ax = axes[0, 0]
    vals = d[value].replace([np.inf, -np.inf], np.nan)
    positive = bool((vals.dropna() > 0).all())
    for i, (opt, g) in enumerate(d.assign(_v=vals).groupby("optimizer", sort=False)):
        m = g.groupby("lr")["_v"].median()
        ax.plot(
            m.index,
            m.values,
            marker=MARKERS[i % len(MARKERS)],
            ms=4,
            color=_CYCLE[i % len(_CYCLE)],
            label=opt,
        )
    ax.set_xscale("log")
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel("learning rate ε")
    ax.set_ylabel(f"median {value} over tuning seeds")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7)
    return to_png(fig)


def performance_profile(prof: pd.DataFrame, title: str) -> str | None:
    """Dolan–Moré ρ_s(τ) step curves, one panel per metric."""
    d = prof[prof.tau.notna()] if "tau" in prof else prof.iloc[0:0]
    if d.empty:
        return None
    metrics = list(dict.fromkeys(d.metric)) if "metric" in d else [""]
    fig, axes = _figure(5.6 * len(metrics), 4.2, ncols=len(metrics), title=True)
    for ax, metric in zip(axes[0], metrics):
        g = d[d.metric == metric] if metric else d
        for i, (opt, o) in enumerate(g.groupby("optimizer", sort=False)):
            o = o.sort_values("tau")
            ax.step(o.tau, o.rho, where="post", color=_CYCLE[i % len(_CYCLE)], label=opt)
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ref = g.reference.iloc[0] if "reference" in g and len(g) else "best"
        ax.set_xlabel(f"τ (ratio to {ref})")
        ax.set_ylabel("ρ(τ): fraction of problems")
        ax.set_title(metric, fontsize=9)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=10)
    return to_png(fig)


def tuning_budget(budget: pd.DataFrame, title: str) -> str | None:
    if budget.empty or "budget" not in budget or "p_reached" not in budget:
        return None
    fig, axes = _figure(6.0, 3.8)
    ax = axes[0, 0]
    for i, (key, g) in enumerate(budget.groupby(["problem", "optimizer"], sort=False)):
        ax.plot(
            g.budget, g.p_reached, marker=".", color=_CYCLE[i % len(_CYCLE)], label=" · ".join(map(str, key))
        )
    ax.set_xlabel("learning rates tried (random, without replacement)")
    ax.set_ylabel("P(best trial reaches the target)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=6)
    return to_png(fig)


# ------------------------------------------------------------------------------ history
def history(hist: pd.DataFrame, title: str, max_lines: int = 12) -> str | None:
    """Median time per commit (x: commit date) for each benchmark variant (asv history)."""
    if hist.empty:
        return None
    fig, axes = _figure(8.0, 4.2)
    ax = axes[0, 0]
    keys = list(dict.fromkeys(hist.key))[:max_lines]
    for i, k in enumerate(keys):
        g = hist[hist.key == k].sort_values("date")
        ax.plot(g.date, g.value * 1e3, marker="o", ms=3, color=_CYCLE[i % len(_CYCLE)], label=k)
    ax.set_yscale("log")
    ax.set_ylabel("median ms")
    ax.set_xlabel("commit date")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=6)
    fig.autofmt_xdate()
    fig.subplots_adjust(bottom=1.1 / 4.2)
    return to_png(fig)
