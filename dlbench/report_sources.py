"""What a report or a comparison reads: dlbench run folders, asv results, pytest-benchmark JSON.

:func:`load_sources` turns each argument (a path or a DataFrame of result rows) into one or more
:class:`Source` objects: rows in the results schema, the run's meta (machine, calibration,
versions), a short label for table columns, and the convergence side tables a run folder may
hold (``curves.parquet``, ``sensitivity.parquet``, ``profiles.parquet``, ...). Problems with a
path (missing, empty, corrupt, not a result at all) raise :class:`dlbench.errors.UserError` with
a message that says what was expected; a run that did not finish is loaded with a warning.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dlbench.errors import UserError
from dlbench.results import load_rows, normalize

# side tables a convergence run folder may hold (written by dlbench.convergence)
SIDE_TABLES = ("curves", "runs", "sensitivity", "tuning_budget", "convergence", "profiles")


@dataclass
class Source:
    """One set of results: a dlbench run, one asv result file (machine x commit) or one
    pytest-benchmark JSON file."""

    label: str
    kind: str  # "dlbench" | "asv" | "pytest-benchmark" | "dataframe"
    rows: pd.DataFrame
    meta: dict = field(default_factory=dict)
    path: str = ""
    tables: dict = field(default_factory=dict)  # name -> DataFrame (curves, sensitivity, ...)
    warnings: list = field(default_factory=list)
    history: list = field(default_factory=list)  # asv: every commit's Source (oldest first)

    @property
    def calibration(self) -> dict:
        return self.meta.get("calibration") or {}

    @property
    def machine(self) -> dict:
        m = self.meta.get("machine")
        return m if isinstance(m, dict) else {}


def _is_run_folder(p: Path) -> bool:
    return any((p / n).exists() for n in ("results.parquet", "results.csv", "meta.json"))


def _read_side_tables(p: Path, warnings: list) -> dict:
    out = {}
    for name in SIDE_TABLES:
        f = p / f"{name}.parquet"
        if not f.exists():
            continue
        try:
            out[name] = pd.read_parquet(f)
        except Exception as e:  # noqa: BLE001 - a corrupt side table loses only its section
            warnings.append(f"{f.name} is unreadable ({type(e).__name__}); its section is left out")
    return out


def load_dlbench_run(path: Path) -> Source:
    warnings: list[str] = []
    rows = load_rows(path)  # UserError for missing / empty / corrupt
    meta: dict = {}
    mp = path / "meta.json"
    if mp.exists():
        try:
            meta = json.loads(mp.read_text())
        except (OSError, ValueError) as e:
            warnings.append(f"meta.json is unreadable ({type(e).__name__}): machine and calibration unknown")
    else:
        warnings.append("no meta.json: machine and calibration unknown")
    if not isinstance(meta, dict):
        meta, _ = {}, warnings.append("meta.json does not hold an object: ignored")
    if meta.get("status") == "running":
        n = rows[["benchmark", "backend", "algorithm"]].drop_duplicates().shape[0] if not rows.empty else 0
        warnings.append(
            f"partial run: the run did not finish ({n} variants recorded); continue it with "
            f"`dlbench run --resume --out {path}`"
        )
    if (path / "results.parquet").exists():
        try:
            pd.read_parquet(path / "results.parquet", columns=["run_id"])
        except Exception:  # noqa: BLE001
            warnings.append("results.parquet is unreadable: read results.csv instead")
    if rows.empty:
        warnings.append("the run folder holds no result rows yet")
    label = str(meta.get("run_id") or (rows.run_id.iloc[0] if not rows.empty else "") or path.name)
    meta.setdefault("source", "dlbench")
    return Source(label, "dlbench", rows, meta, str(path), _read_side_tables(path, warnings), warnings)


def _runs_under(p: Path) -> list[Path]:
    try:
        return sorted(d for d in p.iterdir() if d.is_dir() and _is_run_folder(d))
    except OSError:
        return []


def load_path(path: str | os.PathLike) -> list[Source]:
    """The source(s) at ``path``; UserError naming what was expected when it is none of them."""
    from dlbench import ingest

    p = Path(path)
    if not p.exists():
        raise UserError(
            f"{p} does not exist (expected a results folder, an asv results folder or a "
            "pytest-benchmark JSON file)"
        )
    if p.is_file():
        if ingest.is_pytest_benchmark_json(p):
            df, meta = ingest.from_pytest_benchmark(p)
            return [Source(meta["run_id"], "pytest-benchmark", df, meta, str(p))]
        if ingest.is_asv_result_file(p):
            return _asv_sources(ingest.from_asv(p))
        if p.name in ("results.parquet", "results.csv", "meta.json"):
            return [load_dlbench_run(p.parent)]
        if p.suffix == ".json":
            raise UserError(
                f"{p}: a JSON file that is neither pytest-benchmark output (--benchmark-json) nor "
                "an asv result file"
            )
        raise UserError(f"{p} is not a results folder, an asv results folder or a pytest-benchmark JSON file")
    if _is_run_folder(p):
        return [load_dlbench_run(p)]
    if ingest.asv_results_dir(p) is not None:
        return _asv_sources(ingest.from_asv(p))
    jsons = sorted(p.glob("*.json"))
    pb = [j for j in jsons if ingest.is_pytest_benchmark_json(j)]
    if pb:
        out = []
        for j in pb:
            df, meta = ingest.from_pytest_benchmark(j)
            out.append(Source(meta["run_id"], "pytest-benchmark", df, meta, str(j)))
        return out
    runs = _runs_under(p)
    if runs:
        names = ", ".join(r.name for r in runs[-5:])
        raise UserError(
            f"{p} holds {len(runs)} run folders, not results itself: pass one or more of them "
            f"(e.g. {p / 'latest'} or {runs[-1]}); latest ones: {names}"
        )
    raise UserError(
        f"{p} holds no results (no results.parquet or results.csv, no asv results, no "
        "pytest-benchmark JSON): an empty or unfinished run folder?"
    )


def _asv_sources(pairs) -> list[Source]:
    """asv: the latest commit per machine becomes a source; every commit is kept in ``history``."""
    by_machine: dict[str, list[Source]] = {}
    for df, meta in pairs:
        s = Source(
            f"asv {meta['git_rev'][:8]} ({meta['machine']['hostname']})", "asv", df, meta, meta["path"]
        )
        by_machine.setdefault(meta["machine"]["hostname"], []).append(s)
    out = []
    for srcs in by_machine.values():
        latest = srcs[-1]
        latest.history = srcs
        out.append(latest)
    return out


def from_frame(df: pd.DataFrame, label: str = "") -> Source:
    """A DataFrame of result rows (e.g. what ``db.run`` returns) as a source; when it came from a
    run folder (``df.attrs['path']``) that folder's meta and side tables are read too."""
    p = df.attrs.get("path")
    if p and Path(p).is_dir():
        try:
            src = load_dlbench_run(Path(p))
            src.rows = normalize(df.copy())
            return src
        except UserError:
            pass
    rows = normalize(df.copy())
    if not label:
        ids = [r for r in rows.run_id.unique() if r] if not rows.empty else []
        label = ids[0] if len(ids) == 1 else "results"
    return Source(label, "dataframe", rows, {"run_id": label, "source": "dataframe"})


def load_sources(items) -> list[Source]:
    """Sources from paths and/or DataFrames (one item or a list); labels made unique."""
    if isinstance(items, (str, os.PathLike, pd.DataFrame)):
        items = [items]
    items = list(items or [])
    if not items:
        raise UserError("no results given: pass one or more result folders")
    out: list[Source] = []
    for it in items:
        if isinstance(it, pd.DataFrame):
            out.append(from_frame(it))
        elif isinstance(it, Source):
            out.append(it)
        else:
            out.extend(load_path(it))
    seen: dict[str, int] = {}
    for s in out:
        if s.label in seen:
            seen[s.label] += 1
            s.label = f"{s.label} #{seen[s.label]}"
        else:
            seen[s.label] = 1
    return out
