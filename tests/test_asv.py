"""asv wiring: the classes generated in suites/asv_benchmarks.py, and a real ``asv run
--python=same --quick`` of one small smoke benchmark, ``asv publish``, and a report that shows a
dlbench run, the asv results and pytest-benchmark JSON together.

The asv run uses the top-level asv.conf.json with only its output folders (results, html, env)
redirected to a temporary directory and HOME pointed there (``asv machine --yes`` writes
~/.asv-machine.json), so it works from a clean clone and leaves the checkout untouched.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import dlbench as db

ROOT = Path(__file__).resolve().parents[1]


def _load_asv_module():
    spec = importlib.util.spec_from_file_location(
        "asv_benchmarks_under_test", ROOT / "suites" / "asv_benchmarks.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_classes_are_generated_from_the_suites():
    from dlbench.suite import get_suite

    mod = _load_asv_module()
    smoke = mod.smoke
    cases = get_suite("smoke").cases(True)
    assert smoke.params[0] == [c.name for c in cases]
    assert "numpy/fused" in smoke.params[1] and smoke.param_names == ["case", "variant"]
    for method in ("time_call", "track_gflops", "track_gbs", "peakmem_call"):
        assert callable(getattr(smoke, method))
    assert smoke.track_gflops.unit == "GFLOP/s"
    assert callable(mod.smoke_compile.track_compile_time)
    # asv discovers public module attributes only: no helper class may look like a benchmark
    public = [k for k, v in vars(mod).items() if isinstance(v, type) and not k.startswith("_")]
    assert all(getattr(getattr(mod, k), "suite", None) for k in public), public


def test_a_generated_benchmark_runs_in_process():
    mod = _load_asv_module()
    b = mod.smoke()
    case = b.params[0][0]
    b.setup(case, "numpy/fused")
    b.time_call(case, "numpy/fused")
    assert b.track_gflops(case, "numpy/fused") > 0
    with pytest.raises(NotImplementedError):  # simulator / no GPU: asv records n/a
        b.setup(case, "numba-cuda/fused")
    with pytest.raises(NotImplementedError):
        b.setup(case, "nosuch/variant")


def _conf_for(tmp: Path) -> Path:
    text = (ROOT / "asv.conf.json").read_text()
    conf = json.loads(re.sub(r"^\s*//.*$", "", text, flags=re.M))
    assert conf["benchmark_dir"] == "suites" and conf["repo"] == "."
    conf.update(
        repo=str(ROOT),
        benchmark_dir=str(ROOT / "suites"),
        results_dir=str(tmp / "results"),
        html_dir=str(tmp / "html"),
        env_dir=str(tmp / "env"),
    )
    p = tmp / "asv.conf.json"
    p.write_text(json.dumps(conf))
    return p


@pytest.fixture(scope="module")
def asv_results(tmp_path_factory):
    if importlib.util.find_spec("asv") is None:
        pytest.skip("asv is not installed (pip install 'dlbench[dev]')")
    git = shutil.which("git")
    head = (
        subprocess.run([git, "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
        if git
        else None
    )
    if head is None or head.returncode != 0:
        pytest.skip("not a git checkout: asv records results under a commit hash")
    tmp = tmp_path_factory.mktemp("asv")
    conf = _conf_for(tmp)
    env = {**os.environ, "HOME": str(tmp)}
    asv = [sys.executable, "-m", "asv"]

    def run(*args, timeout=300):
        r = subprocess.run(
            [*asv, *args, "--config", str(conf)],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert r.returncode == 0, f"asv {' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        return r.stdout

    run("machine", "--yes", "--machine", "ci")
    out = run(
        "run",
        "--python=same",
        "--quick",
        "--machine",
        "ci",
        "--show-stderr",
        "--set-commit-hash",
        head.stdout.strip(),
        "--bench",
        r"asv_benchmarks\.smoke\.time_call\(.*numpy/fused",
    )
    assert "asv_benchmarks.smoke.time_call" in out
    run("publish")
    return tmp


def test_asv_run_and_publish(asv_results):
    results = asv_results / "results"
    files = [f for f in (results / "ci").glob("*.json") if f.name != "machine.json"]
    assert len(files) == 1
    d = json.loads(files[0].read_text())
    value = d["results"]["asv_benchmarks.smoke.time_call"][0]
    assert any(isinstance(v, float) and math.isfinite(v) and v > 0 for v in value)
    assert (asv_results / "html" / "index.html").exists()


def test_one_report_from_three_sources(asv_results, tmp_path):
    from test_report_data import throughput_run

    run = throughput_run(tmp_path / "run", "dlrun")
    pb = tmp_path / "pb.json"
    pb.write_text(
        json.dumps(
            {
                "machine_info": {"node": "vm", "cpu": {"brand_raw": "Test CPU", "count": 2}},
                "commit_info": {"id": "abc"},
                "datetime": "2026-01-01T00:00:00",
                "version": "5.0",
                "benchmarks": [
                    {
                        "group": "sgd_momentum",
                        "name": "test_kernel[sgd_momentum-numpy]",
                        "fullname": "x",
                        "params": {"backend": "numpy"},
                        "extra_info": {
                            "op": "sgd_momentum",
                            "backend": "numpy",
                            "case": "sgd_momentum_small",
                        },
                        "stats": {
                            "min": 1e-4,
                            "max": 2e-4,
                            "mean": 1.5e-4,
                            "stddev": 1e-5,
                            "median": 1.5e-4,
                            "iqr": 1e-5,
                            "rounds": 3,
                            "data": [1e-4, 1.5e-4, 2e-4],
                        },
                    }
                ],
            }
        )
    )
    md = db.report([run, asv_results / "results", pb], format="md")
    assert "`dlrun` (dlbench)" in md and "(asv)" in md and "(pytest-benchmark)" in md
    assert "## Suite demo" in md and "## Suite smoke" in md and "## Suite pytest-benchmark" in md
    assert "sgd_momentum_small" in md and "momentum_n1e6" in md
