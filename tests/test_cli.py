"""The dlbench command line: user errors end with one line and a non-zero exit; --resume."""

import os
import subprocess
import sys

import pandas as pd
import pytest

from dlbench.results import VARIANT_KEY, load_rows


def dlbench(*args, cwd, env=None, check=False):
    e = dict(os.environ, DLBENCH_QUICK_CALIBRATION="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "dlbench.cli", *args], cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=600, check=check)


@pytest.mark.parametrize("args, needle", [
    (["run", "nosuch"], "unknown suite 'nosuch'"),
    (["run", "--backend", "nosuch"], "unknown backend 'nosuch'"),
    (["run", "--threads", "0"], "must be >= 1"),
    (["run", "--threads", "two"], "positive integer"),
    (["list", "--op", "nosuchop"], "unknown op"),
    (["report", "does/not/exist"], "does not exist"),
    (["run", "smoke", "--variant", "nosuch/*"], "no variant matches"),
])
def test_user_errors_are_one_line(tmp_path, args, needle):
    r = dlbench(*args, cwd=tmp_path)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert needle in lines[0]
    assert "Traceback" not in r.stderr


def test_run_writes_results_and_summary(tmp_path):
    r = dlbench("run", "smoke", "--no-progress", "--backend", "numba", "--backend", "numpy",
                "--out", "out", "--target-time", "0.02", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "median ms" in r.stdout and "numba/fused" in r.stdout
    df = load_rows(tmp_path / "out")
    assert (tmp_path / "out" / "results.csv").exists() and (tmp_path / "out" / "meta.json").exists()
    t = df[(df.metric == "time") & (df.status == "ok")]
    assert set(t.backend) == {"numba", "numpy"}
    assert (t.value > 0).all() and (t.n_samples >= 5).all()
    assert {"compile_time", "gbs", "frac_peak_bw", "gflops", "mparams_per_s"} <= set(df.metric)
    import json
    import platform

    heap = json.loads((tmp_path / "out" / "meta.json").read_text())["allocator"]
    assert heap["policy"] == ("reuse-freed" if platform.libc_ver()[0] == "glibc" else "default")


def test_fresh_pages_leaves_the_allocator_alone(tmp_path):
    import json

    r = dlbench("run", "smoke", "--no-progress", "--variant", "numpy/*", "--fresh-pages",
                "--out", "out", "--target-time", "0.01", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    heap = json.loads((tmp_path / "out" / "meta.json").read_text())["allocator"]
    assert heap == {"policy": "default", "reason": "--fresh-pages"}


def test_variant_globs_select_backend_algorithm(tmp_path):
    r = dlbench("run", "smoke", "--no-progress", "--variant", "torch/fu*", "--variant", "numba/*",
                "--out", "out", "--target-time", "0.02", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    df = load_rows(tmp_path / "out")
    assert set(zip(df.backend, df.algorithm)) <= {("torch", "fused"), ("numba", "fused")}
    assert ("numba", "fused") in set(zip(df.backend, df.algorithm))


def test_resume_after_kill_does_not_redo_or_duplicate(tmp_path):
    args = ["run", "smoke", "--full", "--no-progress", "--backend", "numpy", "--backend", "numba",
            "--out", "out", "--target-time", "0.02"]
    r = dlbench(*args, cwd=tmp_path, env={"DLBENCH_TEST_ABORT_AFTER": "2"})
    assert r.returncode == 137  # killed after two finished variants
    first = load_rows(tmp_path / "out")
    done = first.drop_duplicates(VARIANT_KEY)
    assert len(done) == 2
    r = dlbench(*args, "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    full = load_rows(tmp_path / "out")
    variants = full.drop_duplicates(VARIANT_KEY)
    assert len(variants) == 6  # 3 sizes x 2 backends
    assert not full.duplicated(VARIANT_KEY + ["metric"]).any()
    # the two variants finished before the kill were kept, not re-measured
    merged = first[first.metric == "time"].merge(full[full.metric == "time"], on=VARIANT_KEY)
    assert len(merged) == 2
    assert (merged.timestamp_x == merged.timestamp_y).all()
    assert (merged.value_x == merged.value_y).all()


def test_run_refuses_to_overwrite_without_resume(tmp_path):
    (tmp_path / "out").mkdir()
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "out" / "results.csv")
    r = dlbench("run", "smoke", "--out", "out", cwd=tmp_path)
    assert r.returncode == 2 and "--resume" in r.stderr


def test_list_shows_backends_and_reasons(tmp_path):
    r = dlbench("list", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for b in ("numpy", "numba", "cython", "numba-cuda", "torch", "scipy"):
        assert b in r.stdout
    assert "simulator" in r.stdout  # tests run numba-cuda on the CUDA simulator
