"""Ingest: pytest-benchmark JSON (from tests/benchmarks, as ``make test`` writes it) and asv result
files become rows of the results schema, and ``dlbench report`` shows them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dlbench as db
from dlbench import ingest
from dlbench.cli import main
from dlbench.results import COLUMNS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench_json(tmp_path_factory):
    """Run two of tests/benchmarks (sgd_momentum on numpy and numba) the way ``make test`` does."""
    out = tmp_path_factory.mktemp("pb") / "pytest-benchmark.json"
    env = {**os.environ, "DLBENCH_BENCH_ROUNDS": "3"}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(ROOT / "tests" / "benchmarks" / "test_kernels_bench.py"),
            "-k",
            "sgd_momentum and (numpy or numba) and not cuda",
            f"--benchmark-json={out}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return out


def test_pytest_benchmark_json_is_ingested(bench_json):
    df, meta = ingest.from_pytest_benchmark(bench_json)
    assert list(df.columns[: len(COLUMNS)]) == COLUMNS
    t = df[df.metric == "time"].set_index("backend")
    assert set(t.index) == {"numpy", "numba"}
    assert (t.op == "sgd_momentum").all() and (t.algorithm == "fused").all() and (t.dtype == "float32").all()
    assert (t.n_samples == 3).all() and all(len(s.split(",")) == 3 for s in t.samples)
    assert (t.value > 0).all() and json.loads(t.params.iloc[0]) == {"n": 100_000}
    g = df[df.metric == "gflops"].set_index("backend").value
    from dlbench.registry import OPS, load_builtin_kernels

    load_builtin_kernels()
    flops = OPS["sgd_momentum"].flops(n=100_000, dtype="float32")
    assert g["numpy"] == pytest.approx(flops / t.loc["numpy", "value"] / 1e9, rel=1e-6)
    assert meta["source"] == "pytest-benchmark" and meta["machine"]["cores"]


def test_dlbench_report_reads_pytest_benchmark_json(bench_json, tmp_path, capsys):
    assert main(["report", str(bench_json), "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert "(pytest-benchmark)" in md and "sgd_momentum_small" in md and "numba/fused" in md
    # a folder of such files (``--benchmark-save`` / ``.benchmarks/<machine>/``) works too
    d = tmp_path / "saved"
    d.mkdir()
    (d / "0001_a.json").write_text(bench_json.read_text())
    assert len(db.report(d, format="csv").splitlines()) > 4
    # and compare accepts two of them
    assert main(["compare", str(bench_json), str(bench_json)]) == 0


ASV_RESULT = {
    "commit_hash": "0123456789abcdef0123456789abcdef01234567",
    "env_name": "existing-py",
    "date": 1767225600000,
    "params": {"machine": "ci", "python": "3.11"},
    "python": "3.11",
    "requirements": {},
    "env_vars": {},
    "result_columns": [
        "result",
        "params",
        "version",
        "started_at",
        "duration",
        "stats_ci_99_a",
        "stats_ci_99_b",
        "stats_q_25",
        "stats_q_75",
        "stats_number",
        "stats_repeat",
        "samples",
        "profile",
    ],
    "results": {
        "asv_benchmarks.smoke.time_call": [
            [0.002, 0.001, None],
            [["'momentum_n1e6'"], ["'numpy/fused'", "'numba/fused'", "'numba-cuda/fused'"]],
            "v1",
            0,
            1.0,
            [0, 0, None],
            [1, 1, None],
            [0.0019, 0.0009, None],
            [0.0021, 0.0011, None],
            [1, 1, None],
            [3, 3, None],
            [[0.0019, 0.002, 0.0021], [0.0009, 0.001, 0.0011], None],
        ],
        "asv_benchmarks.smoke.track_gflops": [
            [2.5, 5.0, None],
            [["'momentum_n1e6'"], ["'numpy/fused'", "'numba/fused'", "'numba-cuda/fused'"]],
            "v1",
        ],
        "asv_benchmarks.smoke_compile.track_compile_time": [
            [0.0, 0.8, None],
            [["'momentum_n1e6'"], ["'numpy/fused'", "'numba/fused'", "'numba-cuda/fused'"]],
            "v1",
        ],
        "other_module.time_something": [0.5, [], "v1"],
    },
    "durations": {},
    "version": 2,
}


def _asv_tree(root: Path, commits=("01234567", "89abcdef")) -> Path:
    res = root / ".asv" / "results"
    (res / "ci").mkdir(parents=True)
    (res / "ci" / "machine.json").write_text(
        json.dumps(
            {
                "machine": "ci",
                "cpu": "Test CPU",
                "num_cpu": "2",
                "os": "Linux",
                "ram": "24000000",
                "version": 1,
            }
        )
    )
    (res / "benchmarks.json").write_text(
        json.dumps(
            {
                "asv_benchmarks.smoke.time_call": {
                    "type": "time",
                    "unit": "seconds",
                    "param_names": ["case", "variant"],
                },
                "asv_benchmarks.smoke.track_gflops": {"type": "track", "unit": "GFLOP/s"},
                "version": 2,
            }
        )
    )
    for i, c in enumerate(commits):
        d = json.loads(json.dumps(ASV_RESULT))
        d["commit_hash"] = c * 5
        d["date"] += i * 86_400_000
        d["results"]["asv_benchmarks.smoke.time_call"][0] = [0.002 * (1 + i), 0.001, None]
        (res / "ci" / f"{c}-existing-py.json").write_text(json.dumps(d))
    return res


def test_asv_results_are_ingested(tmp_path):
    res = _asv_tree(tmp_path)
    pairs = ingest.from_asv(tmp_path)  # project root, .asv/results or the machine folder all work
    assert len(pairs) == 2 and len(ingest.from_asv(res / "ci")) == 2
    df, meta = pairs[-1]
    assert meta["source"] == "asv" and meta["git_rev"] == "89abcdef89ab"
    t = df[(df.metric == "time") & (df.suite == "smoke")].set_index("backend")
    assert t.loc["numpy", "benchmark"] == "momentum_n1e6" and t.loc["numpy", "algorithm"] == "fused"
    assert t.loc["numpy", "op"] == "sgd_momentum"  # from the smoke suite definition
    assert t.loc["numpy", "value"] == pytest.approx(0.004) and t.loc["numpy", "iqr"] == pytest.approx(0.0002)
    assert t.loc["numba", "samples"] == "0.0009,0.001,0.0011"
    assert t.loc["numba-cuda", "status"] == "skipped"
    assert df[(df.metric == "compile_time") & (df.backend == "numba")].value.iloc[0] == 0.8
    assert (df[df.suite == "asv"].benchmark == "other_module.time_something").all()


def test_report_shows_asv_history(tmp_path):
    _asv_tree(tmp_path, commits=("01234567", "89abcdef", "fedcba98"))
    md = db.report(tmp_path / ".asv" / "results", format="md")
    assert "asv fedcba98 (ci)" in md and "asv history: ci" in md
    assert "first (01234567) vs latest (fedcba98) commit" in md


def test_bad_asv_and_pytest_files(tmp_path):
    p = tmp_path / "r.json"
    p.write_text(json.dumps({"benchmarks": "nope", "machine_info": {}}))
    with pytest.raises(db.UserError):
        db.report(p)
    (tmp_path / "res" / "m").mkdir(parents=True)
    (tmp_path / "res" / "m" / "machine.json").write_text("{}")
    with pytest.raises(db.UserError, match="no result files"):
        ingest.from_asv(tmp_path / "res")
