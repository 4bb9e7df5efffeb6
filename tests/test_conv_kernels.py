"""Every convolution kernel (op, algorithm, backend) against the NumPy reference (eq. 9.7-9.13).

Shapes are drawn by hypothesis: odd and even sizes, stride 1-3 per direction, every padding
mode (valid, same, full, symmetric ints, asymmetric pairs), dilation 1-2, groups (incl.
depthwise), 1 or 2 images. Tolerance: the max error over the output, divided by
sqrt(number of terms in one output sum) (C/g*R*S forward, K/g*R*S data gradient, N*P*Q weight
gradient; inputs are unit normal), must be below 1e-4 in float32 and 1e-10 in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dlbench import ops
from dlbench.backends import backend_status
from dlbench.ops._common import output_size, resolve_padding
from dlbench.registry import find_kernels

BACKENDS = [b for b in ("numba", "cython") if backend_status(b).available]
TOL = {"float32": 1e-4, "float64": 1e-10}
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                derandomize=True)
FWD = {1: ops.conv1d, 2: ops.conv2d, 3: ops.conv3d}
BWD_DATA = {1: ops.conv1d_backward_data, 2: ops.conv2d_backward_data, 3: ops.conv3d_backward_data}
BWD_WEIGHT = {1: ops.conv1d_backward_weight, 2: ops.conv2d_backward_weight, 3: ops.conv3d_backward_weight}
OPNAME = {1: "conv1d", 2: "conv2d", 3: "conv3d"}


@st.composite
def problems(draw, nd=2, kernel=None, stride=None, dilation=None, max_size=9):
    """A valid convolution problem: dict of shapes and options (output size >= 1)."""
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg, kg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    if draw(st.integers(0, 5)) == 0:
        cg, kg = 1, 1                       # depthwise
    ks = kernel or tuple(draw(st.integers(1, 4)) for _ in range(nd))
    st_ = stride or tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dl = dilation or tuple(draw(st.integers(1, 2)) for _ in range(nd))
    pad_kind = draw(st.sampled_from(["valid", "same", "full", "int", "pairs"]))
    if pad_kind == "same":
        st_ = (1,) * nd
        padding = "same"
    elif pad_kind == "int":
        padding = draw(st.integers(0, 2))
    elif pad_kind == "pairs":
        padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd))
    else:
        padding = pad_kind
    size = tuple(draw(st.integers(1, max_size)) for _ in range(nd))
    pads = resolve_padding(padding, ks, dl, st_)
    assume(all(m + lo + hi >= d * (k - 1) + 1 for m, (lo, hi), d, k in zip(size, pads, dl, ks)))
    out = output_size(size, ks, st_, pads, dl)
    n = draw(st.integers(1, 2))
    return dict(nd=nd, N=n, C=cg * groups, K=kg * groups, groups=groups, size=size, kernel=ks,
                stride=st_, padding=padding, pads=pads, dilation=dl, out=out)


def arrays(p, dtype, seed=0, rank1=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((p["N"], p["C"]) + p["size"]).astype(dtype)
    wshape = (p["K"], p["C"] // p["groups"]) + p["kernel"]
    if rank1:
        u = rng.standard_normal(wshape[:3])
        v = rng.standard_normal(wshape[:2] + wshape[3:])
        w = (u[..., :, None] * v[..., None, :]).astype(dtype)
    else:
        w = rng.standard_normal(wshape).astype(dtype)
    dy = rng.standard_normal((p["N"], p["K"]) + p["out"]).astype(dtype)
    return x, w, dy


def kw(p):
    return dict(stride=p["stride"], padding=p["padding"], dilation=p["dilation"], groups=p["groups"])


def terms(p, which):
    if which == "fwd":
        return p["C"] // p["groups"] * math.prod(p["kernel"])
    if which == "bwd_data":
        return p["K"] // p["groups"] * math.prod(p["kernel"])
    return p["N"] * math.prod(p["out"])


def check_all(p, which, backend, dtype, only=None, rank1=False):
    """Run every registered algorithm of backend that applies to p; compare with the reference."""
    nd = p["nd"]
    x, w, dy = arrays(p, dtype, rank1=rank1)
    opname = OPNAME[nd] + {"fwd": "", "bwd_data": "_backward_data", "bwd_weight": "_backward_weight"}[which]
    if which == "fwd":
        call = lambda alg, be: FWD[nd](x, w, **kw(p), algorithm=alg, backend=be)
    elif which == "bwd_data":
        call = lambda alg, be: BWD_DATA[nd](dy, w, x.shape, **kw(p), algorithm=alg, backend=be)
    else:
        call = lambda alg, be: BWD_WEIGHT[nd](x, dy, w.shape, **kw(p), algorithm=alg, backend=be)
    ref = call("reference", "numpy")
    bound = TOL[dtype] * math.sqrt(terms(p, which))
    ran = []
    from dlbench.ops.conv import ConvGeometry

    params = ConvGeometry.make(nd, p["N"], p["C"], p["K"], p["groups"], p["size"], p["kernel"], p["stride"],
                               p["padding"], p["dilation"]).params()
    for kern in find_kernels(opname, backend=backend):
        if only is not None and kern.algorithm not in only:
            continue
        if kern.algorithm == "separable" and not rank1:
            continue
        if kern.applies(dtype, **params) is not None:
            continue
        got = call(kern.algorithm, backend)
        assert got.shape == ref.shape and got.dtype == ref.dtype, (kern.algorithm, got.shape, ref.shape)
        err = float(np.max(np.abs(got.astype(np.float64) - ref))) if got.size else 0.0
        assert err <= bound, (f"{opname}/{kern.algorithm}/{backend} {dtype}: max error {err:.3g} > "
                              f"{bound:.3g} for {p}")
        ran.append(kern.algorithm)
    return ran


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("which", ["fwd", "bwd_data", "bwd_weight"])
@settings(max_examples=25, **SETTINGS)
@given(p=problems(nd=2))
def test_conv2d_every_algorithm_matches_reference(p, which, backend):
    for dtype in ("float32", "float64"):
        ran = check_all(p, which, backend, dtype)
        assert {"direct", "im2col", "fft"} <= set(ran)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("which", ["fwd", "bwd_data"])
@settings(max_examples=12, **SETTINGS)
@given(p=problems(nd=2, kernel=(3, 3), stride=(1, 1), dilation=(1, 1), max_size=11))
def test_winograd_matches_reference(p, which, backend):
    for dtype in ("float32", "float64"):
        ran = check_all(p, which, backend, dtype, only={"winograd", "winograd_f2"})
        assert set(ran) == {"winograd", "winograd_f2"}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("which", ["fwd", "bwd_data", "bwd_weight"])
@settings(max_examples=8, **SETTINGS)
@given(p=problems(nd=2, kernel=(1, 1)))
def test_gemm1x1_matches_reference(p, which, backend):
    for dtype in ("float32", "float64"):
        assert "gemm1x1" in check_all(p, which, backend, dtype, only={"gemm1x1"})


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=8, **SETTINGS)
@given(p=problems(nd=2))
def test_separable_matches_reference_on_rank1_kernels(p, backend):
    for dtype in ("float32", "float64"):
        assert check_all(p, "fwd", backend, dtype, only={"separable"}, rank1=True) == ["separable"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("nd", [1, 3])
@pytest.mark.parametrize("which", ["fwd", "bwd_data", "bwd_weight"])
@settings(max_examples=6, **SETTINGS)
@given(data=st.data())
def test_conv1d_conv3d_match_reference(data, nd, which, backend):
    p = data.draw(problems(nd=nd, max_size=7 if nd == 1 else 5))
    for dtype in ("float32", "float64"):
        ran = check_all(p, which, backend, dtype)
        assert {"direct", "im2col", "fft"} <= set(ran)


@pytest.mark.parametrize("backend", BACKENDS)
def test_auto_equals_reference_and_records_choice(backend):
    from dlbench import autotune

    p = dict(nd=2, N=2, C=4, K=6, groups=2, size=(9, 8), kernel=(3, 3), stride=(1, 1), padding=1,
             pads=((1, 1), (1, 1)), dilation=(1, 1), out=(9, 8))
    x, w, dy = arrays(p, "float32")
    ref = ops.conv2d(x, w, padding=1, groups=2, backend="numpy")
    got = ops.conv2d(x, w, padding=1, groups=2, backend=backend)
    assert np.max(np.abs(got - ref)) <= 1e-4 * math.sqrt(18)
    rec = autotune.last_record("conv2d")
    assert rec["backend"] == backend and rec["algorithm"] == autotune.last_choice("conv2d")
    assert rec["algorithm"] in {k.algorithm for k in find_kernels("conv2d", backend=backend)}
    again = ops.conv2d(x, w, padding=1, groups=2, backend=backend)     # cached: same choice
    assert autotune.last_record("conv2d")["source"] in ("cache", "single")
    assert np.max(np.abs(again - ref)) <= 1e-4 * math.sqrt(18)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_conv1d_algorithm_adds_the_bias_when_no_padding_column_is_dropped(backend):
    """Grouped conv1d, 3 samples, kernel 2, no padding: kn2row's valid-position view of its wide
    output is then C-contiguous and was returned read-only, so the bias add failed."""
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((1, 2, 3)), rng.standard_normal((2, 1, 2)), rng.standard_normal(2)
    want = ops.conv1d(x, w, b, groups=2, backend="numpy")
    algorithms = {k.algorithm for k in find_kernels(op="conv1d", backend=backend)}
    assert "kn2row" in algorithms
    for algorithm in sorted(algorithms):
        try:
            got = ops.conv1d(x, w, b, groups=2, backend=backend, algorithm=algorithm)
        except ValueError as e:
            if "cannot run this problem" in str(e):
                continue                      # the algorithm's constraints exclude this problem
            raise
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
