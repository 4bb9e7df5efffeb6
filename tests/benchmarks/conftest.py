"""pytest-benchmark setup for dlbench: machine facts and the cached calibration go into the JSON.

``pytest tests/benchmarks --benchmark-json=results/pytest-benchmark.json`` writes a file that
``dlbench report`` reads (``dlbench.ingest.from_pytest_benchmark``): the ``dlbench`` entry of
``machine_info`` carries the machine fingerprint, machine facts, thread settings and — when this
machine has been calibrated (``dlbench info``) — the calibration, so the report can show % of peak.
Calibration is never measured here (it takes a minute); only a cached one is read.
"""

import json
import os
import sys


def _cached_calibration(threads: int) -> dict:
    try:
        from dlbench.calibrate import cache_dir
        from dlbench.machine import fingerprint

        candidates = [cache_dir()]
        home = os.path.join(os.path.expanduser("~"), ".cache", "dlbench")
        if str(candidates[0]) != home:
            from pathlib import Path

            candidates.append(Path(home))
        for d in candidates:
            p = d / f"calibration-{fingerprint()}-t{threads}.json"
            if p.exists():
                return json.loads(p.read_text())
    except Exception:  # noqa: BLE001 - machine info is best effort
        pass
    return {}


def pytest_configure(config):
    from dlbench.allocator import keep_freed_memory

    keep_freed_memory()  # the heap policy of `dlbench run`: timed outputs reuse freed pages


def pytest_benchmark_update_machine_info(config, machine_info):
    try:
        from dlbench.allocator import keep_freed_memory
        from dlbench.machine import fingerprint, versions
        from dlbench.machine import machine_info as dl_machine
        from dlbench.threads import blas_info, default_threads

        threads = default_threads()
        machine_info["dlbench"] = {
            "fingerprint": fingerprint(),
            "machine": dl_machine(),
            "versions": versions(),
            "blas": blas_info(),
            "threads": {"threads": threads},
            "calibration": _cached_calibration(threads),
            "argv": sys.argv[1:],
            "allocator": keep_freed_memory(),
        }
    except Exception as e:  # noqa: BLE001
        machine_info["dlbench"] = {"error": f"{type(e).__name__}: {e}"}
