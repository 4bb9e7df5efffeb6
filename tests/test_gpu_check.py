"""Rehearsal of the prepared device check (scripts/gpu_check.sh) and of the ``gpu`` suite on the CPU.

What can run without a GPU runs here: the import shim (dlbench importable from a directory of
symlinks, never from the repository root), the suite's cases and byte/FLOP models, every
numba-cuda bind (device-resident and +h2h) on tiny shapes under the simulator, the Markdown
table from synthetic results, and the empty GPU calibration. The full script rehearsal
(every stage, ~2 minutes here) is marked slow.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlbench.backends import backend_status
from dlbench.suite import Skip, Variant

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_check.sh"
sim = pytest.mark.skipif(backend_status("numba-cuda").mode != "simulator", reason="needs the CUDA simulator")


@pytest.fixture(scope="module")
def gpu():
    from dlbench.suites import gpu as module

    return module


@pytest.fixture(autouse=True, scope="module")
def fast_thread_switching():
    old = sys.getswitchinterval()
    sys.setswitchinterval(5e-5)
    yield
    sys.setswitchinterval(old)


def run_script(tmp_path, stages, budget=120, timeout=180):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable, "GPU_CHECK_REHEARSE": "1",
           "GPU_CHECK_STAGES": stages, "GPU_CHECK_BUDGET": str(budget)}
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=timeout)


def test_script_is_executable_and_parses():
    assert os.access(SCRIPT, os.X_OK)
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_shim_makes_the_package_importable_without_install(tmp_path):
    """The env stage imports dlbench through the shim (kernels/ and suites/ mapped under dlbench)."""
    res = run_script(tmp_path, "env")
    assert res.returncode == 0, res.stderr[-2000:]
    env = (tmp_path / "env.txt").read_text()
    line = next(ln for ln in env.splitlines() if ln.startswith("dlbench from"))
    path = line.split("from", 1)[1].strip()
    assert "dlbench-shim" in path and not path.startswith(str(REPO)), line
    assert "backend numba-cuda: available=True mode='simulator'" in env
    assert "env rc=0" in (tmp_path / "stages.txt").read_text()
    assert "build rc=skipped" in (tmp_path / "stages.txt").read_text()


def test_suite_cases_and_models(gpu):
    quick = gpu.gpu_suite(True)
    names = [c.name for c in quick]
    assert len(names) == len(set(names)) == 14
    assert {c.op for c in quick} == {"conv2d", "pool2d", "batch_norm", "batch_norm_backward", "adam",
                                     "sgd_momentum"}
    for c in quick:
        assert c.dtype == "float32"
        assert any(v.backend == "torch" for v in c.variants)
        assert any(v.backend == "numba-cuda" and not v.algorithm.endswith("+h2h") for v in c.variants)
        assert math.isfinite(c.bytes()) and c.bytes() > 0, c.name
    conv = [c for c in quick if c.op == "conv2d"]
    assert [c.params["C"] for c in conv] == [64, 128, 256, 512] and all(c.params["N"] == 8 for c in conv)
    # 2 N K C R S P Q for 64@56: 8 * 64 * 64 * 9 * 56 * 56 * 2
    assert conv[0].flops() == pytest.approx(2 * 8 * 64 * 64 * 9 * 56 * 56)
    full = gpu.gpu_suite(False)
    assert len(full) > len(quick)
    assert {"conv2d_backward_data", "conv2d_backward_weight", "pool2d_backward"} <= {c.op for c in full}


@sim
def test_calibrate_gpu_is_empty_without_a_gpu():
    from dlbench.calibrate_gpu import calibrate_gpu

    assert calibrate_gpu() == {}


@sim
def test_standalone_runner_records_skips(gpu):
    df = gpu.run_standalone(quick=True, filter="optim_adam_n1e7")
    assert set(df["status"]) == {"skipped"} and len(df) == 3
    assert df["message"].str.contains("real GPU|CUDA device").all()


def _rel(a, b):
    return float(np.abs(np.asarray(a, np.float64) - b).max() / max(np.abs(b).max(), 1e-30))


@sim
def test_numba_cuda_binds_run_on_the_simulator(gpu, monkeypatch):
    """Every numba-cuda bind of the suite, device-resident and +h2h, on tiny shapes: the calls run,
    the device-resident output buffer holds the reference result, the torch check degrades to NaN."""
    from dlbench.registry import get_kernel

    monkeypatch.setattr(gpu, "need_gpu", lambda: None)
    dev, h2h = Variant("numba-cuda", "implicit_gemm"), Variant("numba-cuda", "implicit_gemm+h2h")
    params = {"N": 1, "C": 2, "K": 3, "H": 4, "W": 4, "R": 3, "S": 3, "stride": 1, "padding": 1,
              "dilation": 1, "groups": 1}
    g, x, w, dy = gpu._conv_inputs(params, "float32")
    ref = get_kernel("conv2d", "reference", "numpy")(x, w, g.stride, g.padding, g.dilation, 1)
    b = gpu.bind_conv("fwd", dev, "float32", params)
    assert b.timer == "cuda" and b.extra["transfer"] == "device-resident"
    b.fn()
    assert _rel(b.extra["result"](), ref) < 1e-5     # the preallocated device output
    assert math.isnan(b.check())                     # no torch CUDA here
    hb = gpu.bind_conv("fwd", h2h, "float32", params)
    assert hb.timer == "cpu" and hb.sync is not None
    assert _rel(hb.fn(), ref) < 1e-5
    for which in ("bwd_data", "bwd_weight"):
        assert gpu.bind_conv(which, dev, "float32", params).fn() is not None
    pool = {"n": 1, "c": 2, "h": 5, "w": 5, "size": 3, "stride": 2, "pad": 1, "kind": "max"}
    for backward in (False, True):
        for v in (Variant("numba-cuda", "direct"), Variant("numba-cuda", "direct+h2h")):
            gpu.bind_pool(backward, v, "float32", pool).fn()
    for backward in (False, True):
        for v in (Variant("numba-cuda", "direct"), Variant("numba-cuda", "direct+h2h")):
            gpu.bind_bn(backward, v, "float32", (2, 3, 2, 2)).fn()
    for rule in ("adam", "momentum"):
        for v in (Variant("numba-cuda", "fused"), Variant("numba-cuda", "fused+h2h")):
            bound = gpu.bind_optim(rule, v, "float32", 50)
            bound.fn()
            assert bound.check is None


@sim
def test_torch_binds_skip_without_cuda(gpu):
    with pytest.raises(Skip, match="CUDA"):
        gpu.bind_conv("fwd", Variant("torch", "cudnn"), "float32", gpu.conv_params(64, 56))
    with pytest.raises(Skip, match="CUDA"):
        gpu.bind_optim("adam", Variant("torch", "fused"), "float32", 10)


def _rows(bench, op, variants):
    rows = []
    for backend, alg, status, t, extra in variants:
        base = {"suite": "gpu", "benchmark": bench, "op": op, "backend": backend, "algorithm": alg,
                "status": status, "message": "" if status == "ok" else "no GPU"}
        rows.append({**base, "metric": "time", "value": t})
        for metric, v in extra.items():
            rows.append({**base, "metric": metric, "value": v})
    return rows


def test_markdown_table_from_synthetic_results(gpu):
    rows = (_rows("conv_fwd_resnet_3x3_64x56_n8", "conv2d", [
                ("numba-cuda", "implicit_gemm", "ok", 200e-6, {"gflops": 9000.0, "max_rel_error": 2e-6}),
                ("numba-cuda", "implicit_gemm+h2h", "ok", 4000e-6, {}),
                ("torch", "cudnn", "ok", 100e-6, {})])
            + _rows("optim_adam_n1e8", "adam", [
                ("numba-cuda", "fused", "ok", 1000e-6, {"gbs": 2800.0}),
                ("torch", "fused", "ok", 1200e-6, {})])
            + _rows("bn_fwd_64x56_n8", "batch_norm", [
                ("numba-cuda", "direct", "skipped", float("nan"), {}),
                ("torch", "cudnn", "ok", 20e-6, {})]))
    df = pd.DataFrame(rows)
    cal = {"gpu_name": "Test GPU", "gpu_peak_gflops": 60000.0, "gpu_bw_gbs": 3000.0,
           "gpu_fma_gflops": 58000.0, "gpu_torch_sgemm_gflops": 60000.0}
    s = gpu.summarize(df, cal).set_index("benchmark")
    conv = s.loc["conv_fwd_resnet_3x3_64x56_n8"]
    assert conv["speed_vs_torch"] == pytest.approx(0.5) and conv["met"] == "yes"
    assert conv["h2h_us"] == pytest.approx(4000.0) and conv["frac_peak"] == pytest.approx(0.15)
    adam = s.loc["optim_adam_n1e8"]
    assert adam["speed_vs_torch"] == pytest.approx(1.2) and adam["frac_peak"] == pytest.approx(2800 / 3000)
    assert adam["met"] == "yes"
    assert s.loc["bn_fwd_64x56_n8", "met"] == "n/a" and "skipped" in s.loc["bn_fwd_64x56_n8", "notes"]
    md = gpu.markdown_table(df, cal)
    lines = md.splitlines()
    assert lines[0].startswith("| benchmark |") and lines[1].startswith("|---|")
    assert "| conv_fwd_resnet_3x3_64x56_n8 | implicit_gemm | 200.0 | 4000.0 | 100.0 | 0.50 | 9000 |" in md
    assert "Test GPU" in md and "Skipped / failed variants" in md
    assert all(ln.count("|") == 13 for ln in lines[:5])


@pytest.mark.slow
@sim
def test_full_rehearsal_writes_the_table(tmp_path):
    res = run_script(tmp_path, "env,build,calibrate,tests,suites,table", budget=300, timeout=420)
    assert res.returncode == 0, res.stderr[-3000:]
    table = (tmp_path / "gpu_table.md").read_text()
    assert "conv_fwd_resnet_3x3_512x7_n8" in table and "optim_momentum_n1e8" in table
    assert (tmp_path / "run_gpu" / "results.csv").exists()
