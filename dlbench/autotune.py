"""``algorithm="auto"``: time the eligible kernels once per problem, cache the winner on disk.

Like cuDNN's benchmark mode: the first call of an op at a given (op, backend, dtype, shape
parameters, threads) runs every eligible candidate on the caller's inputs: one warm-up call each
(which includes any JIT compilation), then up to three rounds in which every remaining candidate
is timed once (interleaved, so that a burst of load on a shared machine hits all of them; after
each round candidates more than twice as slow as the best are dropped). The fastest minimum
wins and its result is returned. Later calls, in this
process or another one on the same machine, read the choice from the cache
(``<dlbench.calibrate.cache_dir()>/autotune.json``) and call the winner directly.

The choice is recorded: :func:`last_choice` gives the algorithm picked by the latest ``auto``
call of an op (the runner stores it in the ``chosen`` column) and :func:`last_record` the whole
record with the candidates' timings. :func:`cached_choices` lists the cache; :func:`clear_cache`
empties it. ``DLBENCH_AUTOTUNE_CACHE=0`` disables the disk cache (the in-process cache stays).
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

AUTOTUNE_VERSION = 1
ROUNDS = 3              # timed calls per candidate, interleaved across candidates
SLOWER_STOP = 2.0       # candidates this much slower than the best after a round are not timed again
BUDGET = 3.0            # seconds of timed rounds per problem (after the warm-up calls)

_memory: dict[str, dict] = {}
_keys: dict[tuple, str] = {}
_disk_loaded = False
_last: dict[str, dict] = {}
_last_any: dict | None = None


def _cache_path():
    from dlbench.calibrate import cache_dir

    return cache_dir() / "autotune.json"


def _disk_enabled() -> bool:
    return os.environ.get("DLBENCH_AUTOTUNE_CACHE", "1") not in ("0", "", "off", "false")


def _read_disk() -> dict:
    try:
        data = json.loads(_cache_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_disk(key: str, record: dict) -> None:
    """Merge one record into the cache file (read-merge-replace, so concurrent processes keep theirs)."""
    path = _cache_path()
    data = _read_disk()
    data[key] = record
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass


@functools.lru_cache(maxsize=1)
def kernels_fingerprint() -> str:
    """A short hash of the kernel sources and built extensions (path, size, mtime of every .py,
    .pyx and .so under ``dlbench.kernels``): a choice tuned for other kernel code is not reused."""
    import hashlib

    import dlbench.kernels as kpkg

    h = hashlib.sha1()
    for root in getattr(kpkg, "__path__", []):
        base = Path(root)
        for f in sorted(base.rglob("*")):
            if f.suffix in (".py", ".pyx", ".so", ".h") and "__pycache__" not in f.parts:
                st = f.stat()
                h.update(f"{f.relative_to(base)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:10]


def problem_key(op: str, backend: str, dtype: str, params: dict, candidates: Sequence,
                threads: int | None = None) -> str:
    """The cache key: op, backend, dtype, threads, shape parameters, candidate set, machine and
    kernel code (``kernels_fingerprint``)."""
    from dlbench.machine import fingerprint
    from dlbench.threads import current_threads

    threads = threads or current_threads()
    cands = ",".join(sorted(f"{k.algorithm}:{k.extra.get('impl', '')}" for k in candidates))
    return (f"v{AUTOTUNE_VERSION}|{fingerprint()}|k{kernels_fingerprint()}|{op}|{backend}|{dtype}|"
            f"t{threads}|"
            f"{json.dumps(params, sort_keys=True, default=str)}|{cands}")


def _lookup(key: str) -> dict | None:
    global _disk_loaded
    if key in _memory:
        return _memory[key]
    if _disk_enabled():
        if not _disk_loaded or key not in _memory:
            data = _read_disk()
            _disk_loaded = True
            for k, v in data.items():
                _memory.setdefault(k, v)
        return _memory.get(key)
    return None


def _current_threads() -> int:
    from dlbench.threads import current_threads

    return current_threads()


def _remember(op: str, record: dict) -> None:
    global _last_any
    _last[op] = record
    _last_any = record


def choose(op: str, backend: str, dtype: str, params: dict, candidates: Sequence,
           run: Callable[[Any], Any]) -> tuple[Any, Any]:
    """Pick the fastest of ``candidates`` (registry Kernels) for this problem.

    run(kernel) computes the op with that kernel on the caller's inputs and returns the result.
    Returns (kernel, result) where result is the winner's output when it was computed while
    timing (first call for this problem), else None (the caller then runs the kernel).
    A candidate raising ValueError (a constraint only visible in the values, e.g. a kernel
    that is not rank-1 for ``separable``) is left out.
    """
    if not candidates:
        raise ValueError(f"no kernel of {op!r} on backend {backend!r} can run these parameters")
    by_alg = {k.algorithm: k for k in candidates}
    memo = (op, backend, dtype, repr(params), tuple(by_alg), _current_threads())
    key = _keys.get(memo)
    if key is None:
        key = _keys[memo] = problem_key(op, backend, dtype, params, candidates)
    rec = _lookup(key)
    if rec is not None and rec.get("algorithm") in by_alg:
        _remember(op, {**rec, "source": "cache"})
        return by_alg[rec["algorithm"]], None
    if len(candidates) == 1:
        k = candidates[0]
        rec = {"op": op, "backend": backend, "dtype": dtype, "params": params, "algorithm": k.algorithm,
               "times": {}, "source": "single"}
        _memory[key] = rec
        _remember(op, rec)
        return k, None
    times: dict[str, float] = {}
    refused: dict[str, str] = {}
    clock = time.perf_counter
    live = []
    for k in candidates:                      # warm-up: JIT compilation, page faults
        try:
            t0 = clock()
            run(k)
            times[k.algorithm] = clock() - t0  # an upper bound until timed
            live.append(k)
        except ValueError as e:
            refused[k.algorithm] = str(e)
    best, best_t, best_out = None, math.inf, None
    start = clock()
    for rnd in range(ROUNDS):                 # round-robin, so a burst of load hits every candidate
        for k in list(live):
            t0 = clock()
            out = run(k)
            dt = clock() - t0
            if rnd == 0 or dt < times[k.algorithm]:
                times[k.algorithm] = dt
            if times[k.algorithm] < best_t:
                best, best_t, best_out = k, times[k.algorithm], out
            del out
        live = [k for k in live if times[k.algorithm] <= SLOWER_STOP * best_t]
        if len(live) <= 1 or clock() - start > BUDGET:
            break
    if best is None:
        raise ValueError(f"every candidate of {op!r} on {backend!r} refused these inputs: {refused}")
    rec = {"op": op, "backend": backend, "dtype": dtype, "params": params, "algorithm": best.algorithm,
           "times": times, "refused": refused, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "source": "measured"}
    _memory[key] = rec
    if _disk_enabled() and not refused:   # value-dependent refusals are not a property of the shape
        _write_disk(key, rec)
    _remember(op, rec)
    return best, best_out


def last_choice(op: str | None = None) -> str | None:
    """Algorithm chosen by the latest ``auto`` call of ``op`` (any op when None), or None."""
    rec = _last.get(op) if op is not None else _last_any
    return rec["algorithm"] if rec else None


def last_record(op: str | None = None) -> dict | None:
    """The whole record of the latest ``auto`` choice: algorithm, candidates' times (s), source."""
    rec = _last.get(op) if op is not None else _last_any
    return dict(rec) if rec else None


def cached_choices():
    """The on-disk cache as a DataFrame (one row per problem)."""
    import pandas as pd

    rows = []
    for key, rec in _read_disk().items():
        rows.append({"op": rec.get("op"), "backend": rec.get("backend"), "dtype": rec.get("dtype"),
                     "params": json.dumps(rec.get("params"), sort_keys=True),
                     "algorithm": rec.get("algorithm"),
                     "times": rec.get("times"), "measured_at": rec.get("measured_at"), "key": key})
    return pd.DataFrame(rows)


def clear_cache(disk: bool = True) -> None:
    """Forget every choice (in this process, and on disk unless ``disk=False``)."""
    global _disk_loaded, _last_any
    _memory.clear()
    _keys.clear()
    _last.clear()
    _last_any = None
    _disk_loaded = False
    if disk:
        try:
            _cache_path().unlink()
        except OSError:
            pass
