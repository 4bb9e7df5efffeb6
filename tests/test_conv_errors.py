"""Constraint violations raise ValueError naming the constraint; auto-selection and its cache;
the suite's cases and a measured variant through the runner."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dlbench import autotune, ops
from dlbench.backends import backend_status
from dlbench.registry import find_kernels, register_kernel

BACKENDS = [b for b in ("numba", "cython") if backend_status(b).available]


def arr(*shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("alg", ["winograd", "winograd_f2"])
def test_winograd_refuses_5x5_stride_and_dilation(backend, alg):
    x = arr(1, 2, 9, 9)
    with pytest.raises(ValueError, match="requires a 3x3 kernel"):
        ops.conv2d(x, arr(2, 2, 5, 5), algorithm=alg, backend=backend)
    with pytest.raises(ValueError, match="requires stride 1"):
        ops.conv2d(x, arr(2, 2, 3, 3), stride=2, algorithm=alg, backend=backend)
    with pytest.raises(ValueError, match="requires dilation 1"):
        ops.conv2d(x, arr(2, 2, 3, 3), dilation=2, algorithm=alg, backend=backend)
    with pytest.raises(ValueError, match="requires a 3x3 kernel"):
        ops.conv2d_backward_data(arr(1, 2, 5, 5), arr(2, 2, 5, 5), x.shape, algorithm=alg, backend=backend)


def test_gemm1x1_refuses_larger_kernels():
    with pytest.raises(ValueError, match="1x1 kernel"):
        ops.conv2d(arr(1, 2, 5, 5), arr(2, 2, 3, 3), algorithm="gemm1x1")


@pytest.mark.parametrize("backend", ["numpy"] + BACKENDS)
def test_groups_must_divide_channels(backend):
    with pytest.raises(ValueError, match="does not divide the 4 input channels"):
        ops.conv2d(arr(1, 4, 5, 5), arr(3, 1, 3, 3), groups=3, backend=backend)
    with pytest.raises(ValueError, match="does not divide the 3 output channels"):
        ops.conv2d(arr(1, 4, 5, 5), arr(3, 2, 3, 3), groups=2, backend=backend)
    with pytest.raises(ValueError, match="C/groups"):
        ops.conv2d(arr(1, 4, 5, 5), arr(4, 4, 3, 3), groups=2, backend=backend)
    with pytest.raises(ValueError, match="groups"):
        ops.conv2d(arr(1, 4, 5, 5), arr(4, 4, 3, 3), groups=0, backend=backend)


@pytest.mark.parametrize("backend", ["numpy"] + BACKENDS)
def test_negative_output_size(backend):
    with pytest.raises(ValueError, match="negative output size"):
        ops.conv2d(arr(1, 1, 4, 4), arr(1, 1, 5, 3), backend=backend)
    with pytest.raises(ValueError, match="negative output size"):
        ops.conv2d(arr(1, 1, 4, 4), arr(1, 1, 3, 3), dilation=3, backend=backend)
    with pytest.raises(ValueError, match="negative output size"):
        ops.conv1d(arr(1, 1, 2), arr(1, 1, 4), backend=backend)
    with pytest.raises(ValueError, match="negative output size|not reachable"):
        ops.conv_transpose2d(arr(1, 1, 1, 1), arr(1, 1, 1, 1), padding=1, backend=backend)


@pytest.mark.parametrize("backend", ["numpy"] + BACKENDS)
def test_mismatched_and_unsupported_dtypes(backend):
    x = arr(1, 2, 5, 5)
    with pytest.raises(ValueError, match="dtype mismatch"):
        ops.conv2d(x, arr(2, 2, 3, 3, dtype=np.float64), backend=backend)
    with pytest.raises(ValueError, match="dtype mismatch"):
        ops.conv2d(x, arr(2, 2, 3, 3), b=np.zeros(2), backend=backend)
    with pytest.raises(ValueError, match="dtype mismatch"):
        ops.conv2d_backward_weight(x, arr(1, 2, 3, 3, dtype=np.float64), (2, 2, 3, 3), backend=backend)
    with pytest.raises(ValueError, match="float32 or float64"):
        ops.conv2d(x.astype(np.int32), arr(2, 2, 3, 3), backend=backend)


def test_other_bad_arguments():
    x, w = arr(1, 2, 5, 5), arr(3, 2, 3, 3)
    with pytest.raises(ValueError, match="bias must have shape"):
        ops.conv2d(x, w, b=np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="stride must be >= 1"):
        ops.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match="padding must be"):
        ops.conv2d(x, w, padding="middle")
    with pytest.raises(ValueError, match="padding must be >= 0"):
        ops.conv2d(x, w, padding=-1)
    with pytest.raises(ValueError, match="same.*stride 1"):
        ops.conv2d(x, w, padding="same", stride=2)
    with pytest.raises(ValueError, match="dimensions"):
        ops.conv2d(x[0, 0], w)
    with pytest.raises(ValueError, match="dy has shape"):
        ops.conv2d_backward_data(arr(1, 3, 4, 4), w, x.shape)
    with pytest.raises(ValueError, match="not reachable"):
        ops.conv_transpose2d(arr(1, 3, 4, 4), arr(3, 2, 3, 3), stride=2, output_size=(12, 9))
    with pytest.raises(ValueError, match="unknown backend"):
        ops.conv2d(x, w, backend="fortran")
    with pytest.raises(ValueError, match="no kernel for op 'conv2d' with algorithm 'magic'"):
        ops.conv2d(x, w, algorithm="magic")


@pytest.mark.parametrize("backend", BACKENDS)
def test_separable_refuses_full_rank_kernels_and_auto_never_picks_it(backend):
    x = arr(1, 2, 8, 8)
    with pytest.raises(ValueError, match="rank-1"):
        ops.conv2d(x, arr(2, 2, 3, 3), algorithm="separable", backend=backend)
    w1 = np.einsum("kcr,kcs->kcrs", arr(2, 2, 3), arr(2, 2, 3)).astype(np.float32)
    ops.conv2d(x, w1, algorithm="separable", backend=backend)
    ops.conv2d(x, w1, backend=backend)
    assert autotune.last_choice("conv2d") != "separable"


def test_unbatched_input():
    x, w = arr(2, 6, 6), arr(3, 2, 3, 3)
    np.testing.assert_allclose(ops.conv2d(x, w, backend="numpy"), ops.conv2d(x[None], w, backend="numpy")[0])


# ------------------------------------------------------------------ autotune
def test_autotune_times_candidates_caches_on_disk_and_reuses(tmp_path, monkeypatch):
    monkeypatch.setenv("DLBENCH_CACHE_DIR", str(tmp_path))
    autotune.clear_cache(disk=False)
    x, w = arr(1, 3, 10, 9, seed=1), arr(4, 3, 3, 3, seed=2)
    y = ops.conv2d(x, w, padding=1, backend="numba")
    rec = autotune.last_record("conv2d")
    assert rec["source"] == "measured" and rec["algorithm"] == autotune.last_choice("conv2d")
    assert set(rec["times"]) >= {"direct", "im2col", "fft", "winograd", "winograd_f2"}
    assert rec["algorithm"] == min(rec["times"], key=rec["times"].get)
    data = json.loads((tmp_path / "autotune.json").read_text())
    assert len(data) == 1 and next(iter(data.values()))["algorithm"] == rec["algorithm"]
    autotune.clear_cache(disk=False)                      # a new process: reads the disk cache
    y2 = ops.conv2d(x, w, padding=1, backend="numba")
    assert autotune.last_record("conv2d")["source"] == "cache"
    np.testing.assert_allclose(y, y2, rtol=1e-5, atol=1e-5)
    assert len(autotune.cached_choices()) == 1
    autotune.clear_cache()
    assert not (tmp_path / "autotune.json").exists()


def test_autotune_key_separates_threads_dtype_and_shape():
    from dlbench.registry import find_kernels as fk

    cands = fk("conv2d", backend="numba")
    p = {"N": 1, "C": 2, "K": 2, "H": 5, "W": 5, "R": 3, "S": 3}
    k1 = autotune.problem_key("conv2d", "numba", "float32", p, cands, threads=1)
    assert k1 != autotune.problem_key("conv2d", "numba", "float32", p, cands, threads=2)
    assert k1 != autotune.problem_key("conv2d", "numba", "float64", p, cands, threads=1)
    assert k1 != autotune.problem_key("conv2d", "numba", "float32", {**p, "H": 6}, cands, threads=1)


def test_autotune_key_follows_the_kernel_code(monkeypatch):
    """A choice tuned for other kernel code (an edited or rebuilt kernel) is not reused."""
    from dlbench.registry import find_kernels as fk

    cands = fk("conv2d", backend="numba")
    p = {"N": 1, "C": 2, "K": 2, "H": 5, "W": 5, "R": 3, "S": 3}
    fp = autotune.kernels_fingerprint()
    assert len(fp) == 10 and fp == autotune.kernels_fingerprint()
    k1 = autotune.problem_key("conv2d", "numba", "float32", p, cands, threads=1)
    monkeypatch.setattr(autotune, "kernels_fingerprint", lambda: "0123456789")
    assert k1 != autotune.problem_key("conv2d", "numba", "float32", p, cands, threads=1)


def test_user_kernel_takes_part_in_auto(tmp_path, monkeypatch):
    monkeypatch.setenv("DLBENCH_CACHE_DIR", str(tmp_path))
    from dlbench.kernels.reference.conv import conv_forward

    from dlbench.registry import KERNELS

    calls = []

    @register_kernel("conv1d", "mine", "numba", description="test kernel")
    def mine(x, w, stride, padding, dilation, groups):
        calls.append(1)
        return conv_forward(x, w, stride, padding, dilation, groups)

    try:
        assert any(k.algorithm == "mine" for k in find_kernels("conv1d", backend="numba"))
        x, w = arr(1, 2, 11), arr(3, 2, 3)
        got = ops.conv1d(x, w, algorithm="mine")
        np.testing.assert_allclose(got, ops.conv1d(x, w, backend="numpy"), rtol=1e-6)
        ops.conv1d(x, w, padding=2)
        assert "mine" in autotune.last_record("conv1d")["times"]
    finally:
        KERNELS.pop(("conv1d", "mine", "numba"), None)


# ------------------------------------------------------------------ suite
def test_suite_has_the_issue_shapes_and_variants():
    from dlbench.suites.conv import SHAPES

    from dlbench.suite import get_suite

    cases = get_suite("conv").cases(True)
    assert len(SHAPES) == 12 and len(cases) == 36
    assert {c.params["N"] for c in cases} == {1}
    assert {c.params["N"] for c in get_suite("conv").cases(False)} == {8}
    by = {c.name: c for c in cases}
    labels = {v.label for v in by["resnet_3x3_56_fwd"].variants}
    assert {"numba/auto", "cython/auto", "numba/winograd", "numba/im2col", "numba/direct", "numba/fft",
            "torch/nn.functional", "numpy/reference"} <= labels
    assert "numba/gemm1x1" not in labels
    assert "numba/gemm1x1" in {v.label for v in by["resnet_1x1_56_expand_bwd_weight"].variants}
    assert "scipy/signal.correlate" in {v.label for v in by["deepbench_speech_fwd"].variants}
    flops = by["resnet_3x3_56_fwd"].flops()
    assert flops == 2 * 1 * 64 * 64 * 9 * 56 * 56


def test_suite_case_binds_and_runs_every_variant_on_a_tiny_shape():
    """Every variant of a tiny case computes the same thing; auto rows record the choice; the
    runner measures an auto variant and the torch peer into rows with GFLOP/s."""
    from dlbench.suites.conv import conv_cases

    from dlbench.runner import measure_variant

    tiny = [("tiny_3x3", 4, 8, 9, 10, 3, 3, 1, 1, 1), ("tiny_c1", 1, 4, 12, 15, 3, 5, 2, 0, 1)]
    ctx = {"run_id": "t", "git_rev": "", "machine": "", "calibration": {"peak_gflops": 100.0, "bw_gbs": 10.0}}
    for case in conv_cases(True, shapes=tiny):
        ref = None
        for var in case.variants:
            bound = case.bind(var, "float32")
            out = np.asarray(bound.fn())
            if var.algorithm == "auto":
                assert bound.extra["chosen"]
            if ref is None:
                ref = out
            elif var.algorithm != "separable":
                assert np.max(np.abs(out - ref)) < 1e-3, (case.name, var)
        if case.name == "tiny_3x3_fwd":
            for var in case.variants:
                if var.label in ("numba/auto", "torch/nn.functional"):
                    rows = measure_variant(case, var, 1, ctx, 0.01)
                    assert {r["status"] for r in rows} == {"ok"}
                    metrics = {r["metric"]: r for r in rows}
                    assert metrics["gflops"]["value"] > 0 and "compile_time" in metrics
                    if var.algorithm == "auto":
                        assert metrics["time"]["chosen"]
