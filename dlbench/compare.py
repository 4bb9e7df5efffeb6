"""Regression tracking: compare two runs, or two backends within one run, benchmark by benchmark.

For each benchmark variant present on both sides (matched on suite, benchmark, params, dtype,
backend and algorithm; or, with ``backends=(A, B)``, on suite, benchmark, params and dtype
between backend A and backend B of one run) the ratio of medians ``new / base`` of the ``time``
metric and a noise-aware verdict:

- **regressed**: ratio > ``threshold`` *and* the samples differ significantly (two-sided
  Mann–Whitney U test from ``scipy.stats`` on the stored per-sample timings, p < ``alpha``);
- **improved**: ratio < 1 / ``threshold`` and p < ``alpha``;
- **unchanged**: otherwise; a ratio beyond the threshold that the samples do not support is
  noted "within noise";
- **broken**: the base measured fine and the new side failed (status error/diverged): counts as
  a regression; **missing**/**new**: measured on one side only (not a regression).

Without stored samples on a side (asv without ``--record-samples``, hand-made rows) the test
falls back to the interquartile ranges: a change counts only if the ratio passes the threshold
and the two IQR intervals do not overlap. ``dlbench compare`` exits 1 when anything regressed.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from dlbench.errors import UserError
from dlbench.report_render import Heading, Note, Para, Table, fmt, render_html, render_md
from dlbench.report_sources import Source, load_sources
from dlbench.report_tables import short_params, variant_label

MATCH = ["suite", "benchmark", "params", "dtype", "backend", "algorithm"]
CASE = ["suite", "benchmark", "params", "dtype"]
VERDICTS = ("regressed", "broken", "improved", "unchanged", "missing", "new")
COLUMNS = [
    "suite",
    "benchmark",
    "params",
    "dtype",
    "variant",
    "base_variant",
    "new_variant",
    "base_median",
    "new_median",
    "ratio",
    "change_pct",
    "p_value",
    "test",
    "n_base",
    "n_new",
    "base_status",
    "new_status",
    "verdict",
    "note",
]


def parse_samples(s) -> np.ndarray:
    """The comma-separated ``samples`` column as an array of seconds (empty when absent)."""
    if s is None or (isinstance(s, float) and math.isnan(s)) or not str(s).strip():
        return np.empty(0)
    try:
        a = np.array([float(x) for x in str(s).split(",") if x.strip()])
    except ValueError:
        return np.empty(0)
    return a[np.isfinite(a)]


def verdict(
    base: dict, new: dict, threshold: float = 1.10, alpha: float = 0.05, min_samples: int = 3
) -> dict:
    """Ratio, p-value and verdict for one matched pair of ``time`` rows (dicts with value/median,
    iqr, samples, status)."""
    out = {
        "base_status": base.get("status", "ok"),
        "new_status": new.get("status", "ok"),
        "ratio": math.nan,
        "change_pct": math.nan,
        "p_value": math.nan,
        "test": "",
        "note": "",
        "n_base": 0,
        "n_new": 0,
    }
    bm, nm = _median(base), _median(new)
    out["base_median"], out["new_median"] = bm, nm
    if out["base_status"] != "ok" or not (bm > 0):
        if out["new_status"] == "ok" and nm > 0:
            out.update(verdict="new", note=f"base {out['base_status']}: {str(base.get('message', ''))[:80]}")
        else:
            out.update(verdict="missing", note="measured on neither side")
        return out
    if out["new_status"] != "ok" or not (nm > 0):
        if out["new_status"] in ("error", "diverged"):
            out.update(verdict="broken", note=f"new {out['new_status']}: {str(new.get('message', ''))[:80]}")
        else:
            out.update(verdict="missing", note=f"new {out['new_status']}: {str(new.get('message', ''))[:80]}")
        return out
    ratio = nm / bm
    out["ratio"], out["change_pct"] = ratio, (ratio - 1) * 100
    sb, sn = parse_samples(base.get("samples")), parse_samples(new.get("samples"))
    out["n_base"], out["n_new"] = (
        len(sb) or _int(base.get("n_samples")),
        len(sn) or _int(new.get("n_samples")),
    )
    beyond = ratio > threshold or ratio < 1 / threshold
    if len(sb) >= min_samples and len(sn) >= min_samples:
        from scipy.stats import mannwhitneyu

        p = float(mannwhitneyu(sn, sb, alternative="two-sided").pvalue)
        out["p_value"], out["test"] = p, "mann-whitney"
        significant = p < alpha
    else:
        # no samples: the IQR intervals around the medians must not overlap
        bi, ni = _iqr(base), _iqr(new)
        out["test"] = "iqr"
        if math.isfinite(bi) and math.isfinite(ni):
            significant = (nm - ni / 2 > bm + bi / 2) if ratio > 1 else (nm + ni / 2 < bm - bi / 2)
        else:
            significant = True
            out["note"] = "no samples or IQR: ratio threshold only"
    if beyond and significant:
        out["verdict"] = "regressed" if ratio > 1 else "improved"
    else:
        out["verdict"] = "unchanged"
        if beyond:
            out["note"] = (
                f"within noise (p={p:.2g})"
                if out["test"] == "mann-whitney"
                else "within noise (IQRs overlap)"
            )
    return out


def _median(r: dict) -> float:
    for k in ("median", "value"):
        v = r.get(k)
        try:
            v = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(v):
            return v
    return math.nan


def _iqr(r: dict) -> float:
    try:
        return float(r.get("iqr"))
    except (TypeError, ValueError):
        return math.nan


def _int(v) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def _time_rows(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    return rows[rows.metric == metric].drop_duplicates(MATCH, keep="last")


def _one_source(x, what: str) -> Source:
    if isinstance(x, Source):
        return x
    srcs = load_sources(x)
    if len(srcs) != 1:
        raise UserError(
            f"{what}: expected one run, got {len(srcs)} ({', '.join(s.label for s in srcs)}); "
            "pass a single run folder or result file"
        )
    return srcs[0]


def _split_backend(spec: str) -> tuple[str, str | None]:
    b, _, a = spec.partition("/")
    return b, (a or None)


def compare(
    base,
    new=None,
    threshold: float = 1.10,
    backends: tuple[str, str] | None = None,
    alpha: float = 0.05,
    metric: str = "time",
) -> pd.DataFrame:
    """Per-benchmark comparison (see the module docstring); one row per matched variant.

    base, new: run folders, result files or DataFrames of rows. ``new=None`` with ``backends=
    ("numba", "torch")`` compares two backends of ``base`` (a backend may be "backend/algorithm"
    to pick one variant; otherwise variants with the same algorithm are paired, else each side's
    fastest). ``threshold``: ratio that counts as a change (1.10 = 10 %); ``alpha``: significance.
    Columns: see ``COLUMNS``; ``df.attrs`` holds the labels, threshold and counts.
    """
    if threshold <= 1:
        raise UserError(f"--threshold must be > 1 (e.g. 1.10 for 10 %), got {threshold}")
    b_src = _one_source(base, "base")
    if backends:
        n_src = _one_source(new, "new") if new is not None else b_src
        df = _compare_backends(b_src.rows, n_src.rows, backends, threshold, alpha, metric)
        labels = (f"{b_src.label}: {backends[0]}", f"{n_src.label}: {backends[1]}")
    else:
        if new is None:
            raise UserError("compare needs two runs (BASE NEW), or one run with --backends BASE NEW")
        n_src = _one_source(new, "new")
        df = _compare_runs(b_src.rows, n_src.rows, threshold, alpha, metric)
        labels = (b_src.label, n_src.label)
    df.attrs.update(
        base=labels[0],
        new=labels[1],
        threshold=threshold,
        alpha=alpha,
        metric=metric,
        counts=df.verdict.value_counts().to_dict() if not df.empty else {},
    )
    return df


def _compare_runs(brows, nrows, threshold, alpha, metric) -> pd.DataFrame:
    b, n = _time_rows(brows, metric), _time_rows(nrows, metric)
    if b.empty or n.empty:
        raise UserError(f"no {metric!r} rows to compare in the {'base' if b.empty else 'new'} run")
    m = b.merge(n, on=MATCH, how="outer", suffixes=("_b", "_n"), indicator=True)
    rows = []
    for r in m.to_dict("records"):
        side_b = {k[:-2]: v for k, v in r.items() if k.endswith("_b")}
        side_n = {k[:-2]: v for k, v in r.items() if k.endswith("_n")}
        if r["_merge"] == "right_only":
            side_b = {"status": "absent", "message": "not in the base run"}
        if r["_merge"] == "left_only":
            side_n = {"status": "absent", "message": "not in the new run"}
        res = verdict(side_b, side_n, threshold, alpha)
        lab = variant_label(r["backend"], r["algorithm"])
        rows.append(
            {**{k: r[k] for k in CASE}, "variant": lab, "base_variant": lab, "new_variant": lab, **res}
        )
    return _finish(rows)


def _compare_backends(brows, nrows, backends, threshold, alpha, metric) -> pd.DataFrame:
    (bb, ba), (nb, na) = _split_backend(backends[0]), _split_backend(backends[1])
    b, n = _time_rows(brows, metric), _time_rows(nrows, metric)
    b = b[(b.backend == bb) & ((b.algorithm == ba) if ba else True)]
    n = n[(n.backend == nb) & ((n.algorithm == na) if na else True)]
    if b.empty or n.empty:
        have = sorted(set(brows.backend) | set(nrows.backend))
        raise UserError(
            f"--backends: no {metric!r} rows for {backends[0] if b.empty else backends[1]!r}; "
            f"backends in the run: {', '.join(have)}"
        )
    rows = []
    nb_cases = {k: g for k, g in n.groupby(CASE, sort=False)}
    for key, gb in b.groupby(CASE, sort=False):
        gn = nb_cases.get(key)
        if gn is None:
            continue
        common = sorted(set(gb.algorithm) & set(gn.algorithm))
        if common:
            pairs = [(gb[gb.algorithm == a].iloc[0], gn[gn.algorithm == a].iloc[0]) for a in common]
        else:
            pairs = [(_fastest(gb), _fastest(gn))]
        for rb, rn in pairs:
            res = verdict(rb.to_dict(), rn.to_dict(), threshold, alpha)
            lb, ln = variant_label(rb.backend, rb.algorithm), variant_label(rn.backend, rn.algorithm)
            rows.append(
                {
                    **dict(zip(CASE, key)),
                    "variant": f"{ln} vs {lb}",
                    "base_variant": lb,
                    "new_variant": ln,
                    **res,
                }
            )
    if not rows:
        raise UserError(f"--backends: {backends[0]} and {backends[1]} share no benchmark")
    return _finish(rows)


def _fastest(g: pd.DataFrame) -> pd.Series:
    ok = g[(g.status == "ok") & (g.value > 0)]
    return ok.loc[ok.value.idxmin()] if not ok.empty else g.iloc[0]


def _finish(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for c in COLUMNS:
        if c not in df:
            df[c] = np.nan
    order = {v: i for i, v in enumerate(VERDICTS)}
    df["_o"] = df.verdict.map(order)
    df = df.sort_values(["_o", "ratio"], ascending=[True, False], na_position="last").drop(columns="_o")
    return df[COLUMNS].reset_index(drop=True)


def has_regression(df: pd.DataFrame) -> bool:
    return bool(df.verdict.isin(["regressed", "broken"]).any()) if not df.empty else False


# ------------------------------------------------------------------------------ rendering
SYMBOL = {
    "regressed": "🔴 regressed",
    "broken": "🔴 broken",
    "improved": "🟢 improved",
    "unchanged": "unchanged",
    "missing": "missing",
    "new": "new",
}


def display(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame()
    if df.empty:
        return out
    if df.suite.nunique() > 1:
        out["suite"] = df.suite
    out["benchmark"] = df.benchmark
    if df.params.nunique() > 1 and (df.groupby("benchmark").params.nunique() > 1).any():
        out["params"] = df.params.map(short_params)
    if df.dtype.nunique() > 1:
        out["dtype"] = df.dtype
    out["variant"] = df.variant
    out["base ms"] = (df.base_median * 1e3).map(fmt)
    out["new ms"] = (df.new_median * 1e3).map(fmt)
    out["ratio"] = df.ratio.map(lambda v: fmt(v, 3))
    out["change"] = df.change_pct.map(
        lambda v: (("+" if v > 0 else "") + fmt(v, 3) + "%") if pd.notna(v) else ""
    )
    out["p"] = df.p_value.map(lambda v: fmt(v, 2))
    out["n"] = [f"{a}/{b}" if a or b else "" for a, b in zip(df.n_base, df.n_new)]
    out["verdict"] = df.verdict.map(SYMBOL)
    out["note"] = df.note.fillna("")
    return out.reset_index(drop=True)


def summary_line(df: pd.DataFrame) -> str:
    c = df.attrs.get("counts") or (df.verdict.value_counts().to_dict() if not df.empty else {})
    parts = [f"{c[v]} {v}" for v in VERDICTS if c.get(v)]
    return ", ".join(parts) or "nothing to compare"


def _blocks(df: pd.DataFrame) -> list:
    a = df.attrs
    blocks = [
        Para(
            f"Base `{a.get('base', '')}` → new `{a.get('new', '')}`: ratio = new median / base median "
            f"of the `{a.get('metric', 'time')}` metric; regressed/improved needs the ratio beyond "
            f"{a.get('threshold', 1.1):.3g}× (or below 1/{a.get('threshold', 1.1):.3g}) and a significant "
            f"two-sided Mann–Whitney U test on the samples (p < {a.get('alpha', 0.05):g})."
        )
    ]
    kind = "error" if has_regression(df) else "info"
    blocks.append(Note(summary_line(df), kind))
    blocks.append(Heading(2, "Per benchmark"))

    def cls(col, text):
        if col == "verdict":
            return (
                "bad" if ("regressed" in text or "broken" in text) else ("good" if "improved" in text else "")
            )
        return ""

    blocks.append(Table(display(df), cell_class=cls, max_md_rows=200))
    return blocks


def render(df: pd.DataFrame, format: str = "md") -> str:
    title = f"dlbench compare: {df.attrs.get('base', '')} → {df.attrs.get('new', '')}"
    if format == "md":
        return render_md(_blocks(df), title)
    if format == "html":
        return render_html(_blocks(df), title)
    if format == "csv":
        return df.to_csv(index=False)
    raise UserError(f"unknown format {format!r}; choose md, html or csv")


def cli_compare(args) -> int:
    """``dlbench compare BASE [NEW] [--threshold T] [--backends A B] [--format md|html|csv] [-o PATH]``;
    returns 1 when a benchmark regressed (or broke), else 0."""
    backends = tuple(args.backends) if getattr(args, "backends", None) else None
    df = compare(args.base, args.new, threshold=args.threshold, backends=backends)
    text = render(df, args.format or "md")
    if args.output:
        p = Path(args.output)
        if p.is_dir():
            p = p / f"compare.{args.format or 'md'}"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
        print(f"wrote {p}")
    else:
        print(text, end="")
    print(f"compare: {summary_line(df)}", file=sys.stderr)
    return 1 if has_regression(df) else 0


class _CallableModule(__import__("types").ModuleType):
    """``import dlbench.compare`` rebinds ``dlbench.compare`` (the function in ``dlbench/__init__``)
    to this module; making the module callable keeps ``db.compare(base, new, ...)`` working."""

    def __call__(self, base, new=None, threshold: float = 1.10, **kw):
        return compare(base, new, threshold=threshold, **kw)


sys.modules[__name__].__class__ = _CallableModule
