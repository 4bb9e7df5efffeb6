"""Registry, backends, timing, results store and calibration."""

import time

import numba
import numpy as np
import pandas as pd
import pytest

import dlbench as db
from dlbench.calibrate import calibrate
from dlbench.errors import UserError
from dlbench.registry import KERNELS, get_kernel, register_kernel
from dlbench.results import ResultStore, load_rows
from dlbench.threads import blas_info, set_threads
from dlbench.timing import measure


def test_backends_table_has_reasons():
    b = db.backends().set_index("backend")
    assert list(b.index) == ["numpy", "numba", "cython", "numba-cuda", "torch", "scipy"]
    assert b.loc["numpy", "available"] and b.loc["numba", "available"]
    assert b.loc["cython", "available"], b.loc["cython", "reason"]
    assert b.loc["numba-cuda", "mode"] == "simulator" and not b.loc["numba-cuda", "timed"]
    assert (b[~b.available].reason.str.len() > 0).all()


def test_user_kernel_registration_and_lookup():
    @register_kernel("sgd_momentum", algorithm="user-test", backend="numpy", constraints="none")
    def mine(theta, v, g, lr, alpha):
        v *= alpha
        v -= lr * g
        theta += v

    try:
        k = db.kernels(op="sgd_momentum")
        assert "user-test" in set(k.algorithm)
        assert not k.set_index("algorithm").loc["user-test", "builtin"]
        assert get_kernel("sgd_momentum", "user-test", "numpy").fn is mine
        with pytest.raises(ValueError, match="already registered"):
            register_kernel("sgd_momentum", "user-test", "numpy")(lambda *a: None)
    finally:
        KERNELS.pop(("sgd_momentum", "user-test", "numpy"), None)
    with pytest.raises(ValueError, match="unknown backend"):
        register_kernel("x", "y", "nosuch")
    with pytest.raises(UserError, match="unknown op"):
        get_kernel("nosuchop", "direct", "numpy")
    with pytest.raises(UserError, match="available"):
        get_kernel("sgd_momentum", "nosuch", "numpy")


def test_measure_separates_compile_time_from_steady_state():
    @numba.njit(cache=False)
    def f(a):
        s = 0.0
        for x in a:
            s += x * x
        return s

    a = np.ones(10_000)
    t = measure(lambda: f(a), target_time=0.05)
    assert t.n_samples >= 5 and t.min <= t.median
    assert t.first_call > 20 * t.median  # the first call compiled
    assert t.compile_time > 0.01
    assert t.iqr >= 0 and t.cv >= 0 and len(t.samples) == t.n_samples


def test_measure_batches_tiny_calls():
    t = measure(lambda: None, target_time=0.02, min_sample_time=1e-4)
    assert t.inner > 1 and t.median < 1e-5


def test_threads_applied_everywhere():
    applied = set_threads(1)
    assert applied["numba"] == 1 and applied["openmp"] == 1 and applied["blas"] == 1
    set_threads(None)
    with pytest.raises(UserError):
        set_threads(0)
    info = blas_info()
    assert info["blas"] and "blas_kernel" in info


def test_results_store_roundtrip_and_bad_folders(tmp_path):
    st = ResultStore(tmp_path / "run")
    st.append([{"suite": "s", "benchmark": "b", "params": "{}", "backend": "numpy", "algorithm": "a",
                "dtype": "float32", "threads": 2, "metric": "time", "value": 1.5, "unit": "s",
                "status": "ok"}])
    df = load_rows(tmp_path / "run")
    assert len(df) == 1 and df.value.iloc[0] == 1.5 and df.threads.iloc[0] == 2
    assert st.done_keys() == {("s", "b", "{}", "numpy", "a", "float32", "2")}
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no results"):
        load_rows(tmp_path / "empty")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "results.parquet").write_bytes(b"not parquet")
    with pytest.raises(UserError, match="unreadable"):
        load_rows(tmp_path / "corrupt")
    # a corrupt parquet with an intact CSV copy still loads
    (tmp_path / "run" / "results.parquet").write_bytes(b"garbage")
    assert len(load_rows(tmp_path / "run")) == 1


def test_run_api_returns_tidy_frame(tmp_path):
    cal = {"peak_gflops": 100.0, "bw_gbs": 10.0}
    df = db.run("smoke", backends=["numpy", "numba-cuda"], out=tmp_path / "r", progress=False,
                target_time=0.02, calibration=cal)
    assert isinstance(df, pd.DataFrame)
    skipped = df[df.backend == "numba-cuda"]
    assert (skipped.status == "skipped").all() and skipped.message.str.contains("simulator").all()
    gbs = df[(df.metric == "gbs") & (df.backend == "numpy")].value.iloc[0]
    frac = df[(df.metric == "frac_peak_bw") & (df.backend == "numpy")].value.iloc[0]
    assert frac == pytest.approx(gbs / 10.0)
    # the bandwidth probe timed next to the case (calibrate.BandwidthProbe) and the fraction of it
    probe = df[(df.metric == "probe_bw_gbs") & (df.backend == "numpy")].value.iloc[0]
    now = df[(df.metric == "frac_probe_bw") & (df.backend == "numpy")].value.iloc[0]
    assert probe > 0.1 and now == pytest.approx(gbs / probe)


def test_interleaved_rounds_pool_samples_of_every_variant(tmp_path):
    cal = {"peak_gflops": 100.0, "bw_gbs": 10.0}
    one = db.run("smoke", backends=["numpy", "numba"], out=tmp_path / "one", progress=False,
                 target_time=0.02, calibration=cal)
    three = db.run("smoke", backends=["numpy", "numba", "numba-cuda"], out=tmp_path / "three",
                   progress=False, target_time=0.02, calibration=cal, rounds=3)
    # interleaved rounds: one probe figure per case, shared by its variants
    probes = three[three.metric == "probe_bw_gbs"].groupby("benchmark").value.nunique()
    assert len(probes) and (probes == 1).all()
    key = ["benchmark", "backend", "algorithm", "metric"]
    assert set(map(tuple, one[key].values)) <= set(map(tuple, three[key].values))  # same rows
    t = three[(three.metric == "time") & (three.status == "ok")]
    assert set(t.backend) == {"numpy", "numba"}
    assert (t.n_samples >= 15).all()  # >= min_samples from each of the three rounds
    assert (three[three.backend == "numba-cuda"].status == "skipped").all()
    comp = three[(three.metric == "compile_time") & (three.backend == "numba")].value
    assert (comp >= 0).all()
    with pytest.raises(UserError, match="rounds"):
        db.run("smoke", out=tmp_path / "bad", progress=False, calibration=cal, rounds=0)


def test_calibration_is_a_real_ceiling(tmp_path, monkeypatch):
    monkeypatch.setenv("DLBENCH_CACHE_DIR", str(tmp_path))
    t0 = time.perf_counter()
    cal = calibrate(quick=True)
    assert time.perf_counter() - t0 < 60
    assert cal["peak_gflops"] >= cal["gemm_gflops_numpy"] > 0
    assert cal["fma_gflops_cython"] > 0 and cal["fma_gflops_numba"] > 0
    assert cal["bw_gbs"] >= max(cal["bw_copy_gbs"], cal["bw_triad_gbs"], cal["bw_write_gbs"]) > 0
    if not cal["busy"]:  # a calibration taken on a busy machine is deliberately not cached
        assert calibrate(quick=True)["measured_at"] == cal["measured_at"]  # cached per fingerprint


def test_measure_settles_before_timing(monkeypatch):
    """``settle`` sleeps before the first call (spinning thread pools of a previous measurement go
    idle); DLBENCH_SETTLE sets the runner's pause."""
    import time as _time

    from dlbench import timing

    slept = []
    monkeypatch.setattr(_time, "sleep", lambda s: slept.append(s))
    timing.measure(lambda: None, target_time=0.001, settle=0.25)
    assert slept == [0.25]
    monkeypatch.setenv("DLBENCH_SETTLE", "0.05")
    assert timing.settle_seconds() == 0.05
    monkeypatch.setenv("DLBENCH_SETTLE", "junk")
    assert timing.settle_seconds() == 0.12


def test_cpu_caches_are_read_from_sysfs_and_change_the_fingerprint(tmp_path, monkeypatch):
    """Cache sizes come from sysfs (instruction caches left out; '' without sysfs) and are part of
    the fingerprint: a VM moved to a host with another L3 must not reuse the old calibration."""
    from dlbench import machine

    for i, (level, kind, size) in enumerate([(1, "Data", "48K"), (1, "Instruction", "64K"),
                                             (2, "Unified", "2048K"), (3, "Unified", "32768K")]):
        d = tmp_path / f"index{i}"
        d.mkdir()
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    assert machine.cpu_caches(str(tmp_path)) == "L1d 48K, L2 2048K, L3 32768K"
    assert machine.cpu_caches(str(tmp_path / "missing")) == ""
    base = dict(machine.machine_info())
    fps = []
    for caches in ("L1d 48K, L2 2048K, L3 32768K", "L1d 48K, L2 2048K, L3 491520K"):
        monkeypatch.setattr(machine, "machine_info", lambda c=caches: {**base, "caches": c})
        fps.append(machine.fingerprint())
    assert fps[0] != fps[1]
