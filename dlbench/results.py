"""Results store: one tidy long-format table, written incrementally to ``results/<run-id>/``.

One row per (benchmark, parameters, backend, algorithm, dtype, threads, metric). Files in a
run folder:

- ``results.parquet`` and ``results.csv``: every row so far, rewritten atomically after each
  finished variant, so an interrupted run loses at most the variant in flight;
- ``meta.json``: run id, command line, git revision, machine fingerprint and facts, the
  calibration used, thread settings, BLAS library and kernel, versions, status.

Reports, comparisons, asv and pytest-benchmark imports read and write this same schema.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from dlbench.errors import UserError

COLUMNS = [
    "run_id", "timestamp", "suite", "benchmark", "op", "params", "backend", "algorithm", "chosen",
    "dtype", "threads", "device", "metric", "value", "unit", "min", "median", "iqr", "cv",
    "n_samples", "samples", "status", "message", "git_rev", "machine",
]
# identifies one measured variant; --resume skips variants whose rows are already stored
VARIANT_KEY = ["suite", "benchmark", "params", "backend", "algorithm", "dtype", "threads"]
STATUSES = ("ok", "skipped", "error", "diverged")

_DTYPES = {"threads": "Int64", "n_samples": "Int64", "value": "float64", "min": "float64",
           "median": "float64", "iqr": "float64", "cv": "float64"}


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def empty_frame() -> pd.DataFrame:
    return normalize(pd.DataFrame(columns=COLUMNS))


def normalize(df: pd.DataFrame) -> pd.DataFrame:
    """Columns in schema order with schema dtypes; unknown columns are kept after them."""
    for c in COLUMNS:
        if c not in df.columns:
            df[c] = np.nan if c in _DTYPES else ""
    extra = [c for c in df.columns if c not in COLUMNS]
    df = df[COLUMNS + extra].copy()
    for c, dt in _DTYPES.items():
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(dt)
    for c in COLUMNS:
        if c not in _DTYPES:
            df[c] = df[c].fillna("").astype(str)
    return df


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


class ResultStore:
    """A run folder. ``append(rows)`` persists immediately (parquet + CSV, atomically)."""

    def __init__(self, path: str | os.PathLike, run_id: str | None = None, resume: bool = False):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.meta_path = self.path / "meta.json"
        self.df = empty_frame()
        has_rows = (self.path / "results.parquet").exists() or (self.path / "results.csv").exists()
        if has_rows and not resume:
            raise UserError(f"{self.path} already holds results: pass --resume to continue that run, "
                            "or choose a new --out folder")
        if has_rows:
            self.df = load_rows(self.path)
        meta = self.read_meta() if resume else {}
        self.run_id = run_id or meta.get("run_id") or self.path.name

    # ------------------------------------------------------------------ meta
    def read_meta(self) -> dict:
        try:
            return json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return {}

    def write_meta(self, meta: dict) -> None:
        old = self.read_meta()
        old.update(meta)
        _atomic_write(self.meta_path, lambda p: p.write_text(json.dumps(old, indent=1, default=str)))

    # ------------------------------------------------------------------ rows
    def done_keys(self) -> set[tuple]:
        """Variant keys already finished (any status) in this folder."""
        if self.df.empty:
            return set()
        return set(map(tuple, self.df[VARIANT_KEY].astype(str).drop_duplicates().itertuples(index=False)))

    def append(self, rows: list[dict]) -> None:
        if not rows:
            return
        new = normalize(pd.DataFrame(rows))
        self.df = new if self.df.empty else pd.concat([self.df, new], ignore_index=True)
        _atomic_write(self.path / "results.parquet", lambda p: self.df.to_parquet(p, index=False))
        _atomic_write(self.path / "results.csv", lambda p: self.df.to_csv(p, index=False))


def variant_key(row: dict) -> tuple:
    return tuple(str(row[k]) if k != "threads" else str(int(row[k])) for k in VARIANT_KEY)


def load_rows(path: str | os.PathLike) -> pd.DataFrame:
    """Rows of one run folder (parquet, else CSV); UserError if neither is readable."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"results folder {path} does not exist")
    if not path.is_dir():
        raise UserError(f"{path} is not a results folder (expected a directory with results.parquet)")
    pq, csv = path / "results.parquet", path / "results.csv"
    errors = []
    if pq.exists():
        try:
            return normalize(pd.read_parquet(pq))
        except Exception as e:  # noqa: BLE001 - fall back to the CSV copy
            errors.append(f"results.parquet unreadable ({type(e).__name__})")
    if csv.exists():
        try:
            return normalize(pd.read_csv(csv, dtype=str, keep_default_na=False))
        except Exception as e:  # noqa: BLE001
            errors.append(f"results.csv unreadable ({type(e).__name__})")
    if not errors:
        raise UserError(f"{path} holds no results (no results.parquet or results.csv): an empty or "
                        "unfinished run folder")
    raise UserError(f"{path}: " + "; ".join(errors))


def load_run(path: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """(rows, meta) of one run folder."""
    df = load_rows(path)
    try:
        meta = json.loads((Path(path) / "meta.json").read_text())
    except (OSError, ValueError):
        meta = {}
    return df, meta


def latest_run(root: str | os.PathLike = "results") -> Path | None:
    """The most recent run folder under ``root`` (by the ``latest`` link, else by name)."""
    root = Path(root)
    link = root / "latest"
    if link.exists():
        return link.resolve()
    runs = sorted(p for p in root.glob("*") if p.is_dir() and (p / "meta.json").exists())
    return runs[-1] if runs else None


def point_latest(root: Path, run_dir: Path) -> None:
    """Make ``root/latest`` point at ``run_dir`` (a relative symlink; best effort)."""
    link = root / "latest"
    try:
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(run_dir.resolve(), root.resolve()), target_is_directory=True)
    except OSError:
        pass
