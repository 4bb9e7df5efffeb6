"""Pooling (section 9.3): the compiled kernels' specialised interior runs (constant stride, full
windows: (stride, size) = (2, 3), (2, 2), (1, 3) and the generic constant-stride loop) with
padding, odd widths and ties, forward and backward vs the NumPy reference."""

import numpy as np
import pytest

from dlbench import ops
from dlbench.backends import backend_status

COMPILED = [pytest.param(b, marks=pytest.mark.skipif(not backend_status(b).available,
                                                      reason=backend_status(b).reason))
            for b in ("numba", "cython")]
TOL = {"float64": dict(rtol=1e-12, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-5)}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("kind", ["max", "avg", "l2", "gaussian"])
@pytest.mark.parametrize("size,stride,pad", [(3, 2, 1), (3, 2, 0), (2, 2, 0), (2, 2, 1), (3, 1, 1),
                                             (3, 1, 0), (4, 3, 1), (5, 2, 2)])
@pytest.mark.parametrize("hw", [(17, 23), (12, 31)])
def test_interior_runs_match_reference(backend, dtype, kind, size, stride, pad, hw):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3) + hw)
    if kind == "max":
        x = np.round(x * 2)                     # ties: the first (row-major) maximum must win
    x = x.astype(dtype)
    args = (kind, size, stride, pad, False, 1.0)
    y = ops.pool2d(x, *args, backend=backend)
    np.testing.assert_allclose(y, ops.pool2d(x, *args, backend="numpy"), **TOL[dtype])
    dy = rng.standard_normal(y.shape).astype(dtype)
    yl2 = y if kind == "l2" else None
    dx = ops.pool2d_backward(dy, x, *args, y=yl2, backend=backend)
    np.testing.assert_allclose(dx, ops.pool2d_backward(dy, x, *args, y=yl2, backend="numpy"), **TOL[dtype])
    if kind == "max":
        _, idx = ops.pool2d(x, *args, return_indices=True, backend=backend)
        np.testing.assert_array_equal(idx, ops.pool2d(x, *args, return_indices=True, backend="numpy")[1])


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("kind", ["max", "avg", "l2", "gaussian"])
@pytest.mark.parametrize("hw,pad,ceil_mode", [((16, 40), 1, True), ((9, 18), 0, True), ((112, 112), 1, False),
                                              ((7, 33), 1, False), ((3, 19), 1, True)])
def test_3x3_stride2_fused_path_matches_reference(backend, kind, hw, pad, ceil_mode):
    """float32 3x3/s2 pooling takes the cython backend's fused two-map C path: borders, 1-3 row
    windows, the smaller last region and odd map counts."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 5) + hw).astype(np.float32)
    if kind == "max":
        x = np.round(x * 2)
    args = (kind, 3, 2, pad, ceil_mode, 1.0)
    np.testing.assert_allclose(ops.pool2d(x, *args, backend=backend), ops.pool2d(x, *args, backend="numpy"),
                               **TOL["float32"])


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("kind", ["max", "avg", "l2", "gaussian"])
@pytest.mark.parametrize("w", range(3, 18))
def test_3x3_stride2_short_runs_match_reference(backend, kind, w):
    """Interior runs of 1-7 windows (the fused path's masked block: no column past the row is
    read, no output past the run written), with and without padding; adaptive 13 -> 6 too."""
    rng = np.random.default_rng(w)
    x = rng.standard_normal((2, 3, 7, w)).astype(np.float32)
    if kind == "max":
        x = np.round(x * 2)
    for pad, ceil_mode in ((0, False), (1, False), (0, True)):
        args = (kind, 3, 2, pad, ceil_mode, 1.0)
        want = ops.pool2d(x, *args, backend="numpy")
        np.testing.assert_allclose(ops.pool2d(x, *args, backend=backend), want, **TOL["float32"])
    if kind != "gaussian":
        x = rng.standard_normal((2, 3, 13, 13)).astype(np.float32)
        np.testing.assert_allclose(ops.adaptive_pool2d(x, 6, kind, backend=backend),
                                   ops.adaptive_pool2d(x, 6, kind, backend="numpy"), **TOL["float32"])


@pytest.mark.parametrize("kind", ["avg", "l2", "gaussian"])
@pytest.mark.parametrize("size,stride,pad,ceil_mode", [(3, 2, 1, False), (3, 2, 0, True), (2, 2, 0, False),
                                                       (2, 2, 1, True), (4, 2, 1, False), (2, 3, 0, False),
                                                       (3, 1, 1, False)])
@pytest.mark.parametrize("hw", [(9, 16), (14, 32), (6, 112)])
def test_16_column_block_backward_matches_reference(kind, size, stride, pad, ceil_mode, hw):
    """float32 weighted-sum / L2 backward on widths that are multiples of 16: the cython backend's
    block path (uncovered rows and columns, windows clipped by the padding, the smaller last
    region) or, where the plan does not fit it, the buffered path; dx always equals the reference."""
    if not backend_status("cython").available:
        pytest.skip(backend_status("cython").reason)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3) + hw).astype(np.float32)
    args = (kind, size, stride, pad, ceil_mode, 1.0)
    y = ops.pool2d(x, *args, backend="numpy")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    yl2 = y if kind == "l2" else None
    dx = ops.pool2d_backward(dy, x, *args, y=yl2, backend="cython")
    assert dx.ctypes.data % 64 == 0
    ref = ops.pool2d_backward(dy, x, *args, y=yl2, backend="numpy")
    np.testing.assert_allclose(dx, ref, **TOL["float32"])


@pytest.mark.parametrize("kind", ["avg", "l2", "gaussian"])
def test_resnet_pooling_backward_takes_the_block_path(kind):
    """The suite's 3x3/s2/pad-1 pooling of 112-wide maps fits the 16-column block plan; a 3x3/s1
    plan (a column covered by three windows) does not."""
    if not backend_status("cython").available:
        pytest.skip(backend_status("cython").reason)
    from dlbench.kernels.cython import variants_pool
    from dlbench.kernels.reference.pool import region_plan

    plan = region_plan((112, 112), kind, (3, 3), (2, 2), ((1, 1), (1, 1)), (56, 56), 1.0, np.float32)
    assert variants_pool.block_plan_applies(plan.ws, plan.we, plan.wc, plan.code, 112)
    plan = region_plan((32, 32), kind, (3, 3), (1, 1), ((1, 1), (1, 1)), (32, 32), 1.0, np.float32)
    assert not variants_pool.block_plan_applies(plan.ws, plan.we, plan.wc, plan.code, 32)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("hw,size,stride,pad", [((20, 112), 3, 2, 1), ((9, 32), 2, 2, 0), ((13, 13), 3, 2, 0),
                                                ((11, 32), 3, 1, 1)])
@pytest.mark.parametrize("remap", ["window", "reversed", "first", "out of range"])
def test_max_backward_from_any_indices(backend, hw, size, stride, pad, remap):
    """Max pooling's backward scatters dy wherever the given indices point, not only inside the
    windows (reversed, all 0), like the reference; out-of-range ones (too large, or negative with
    the low 32 bits in range) are counted and raise. float32 on the compiled kernels."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3) + hw).astype(np.float32)
    args = ("max", size, stride, pad)
    y, idx = ops.pool2d(x, *args, return_indices=True, backend=backend)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    if remap == "reversed":
        idx = hw[0] * hw[1] - 1 - idx
    elif remap == "first":
        idx = np.zeros_like(idx)
    elif remap == "out of range":
        idx = idx.copy()
        idx[1, 2, 0, 0], idx[0, 1, -1, -1] = hw[0] * hw[1], -(2**32) + 5
        with pytest.raises(ValueError, match=r"indices must lie in \[0, H\*W\).*: 2 do not"):
            ops.pool2d_backward(dy, x, *args, indices=idx, backend=backend)
        return
    dx = ops.pool2d_backward(dy, x, *args, indices=idx, backend=backend)
    np.testing.assert_allclose(dx, ops.pool2d_backward(dy, x, *args, indices=idx, backend="numpy"),
                               **TOL["float32"])
    adx = ops.adaptive_pool2d_backward(dy, x, y.shape[2:], "max", indices=idx, backend=backend)
    np.testing.assert_allclose(adx, ops.adaptive_pool2d_backward(dy, x, y.shape[2:], "max", indices=idx,
                                                                 backend="numpy"), **TOL["float32"])


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("hw,pad,ceil_mode", [((13, 13), 0, False), ((14, 14), 1, False), ((7, 15), 1, False),
                                              ((40, 16), 0, True), ((5, 3), 1, True), ((9, 12), 1, True)])
def test_small_map_max_matches_reference(backend, hw, pad, ceil_mode):
    """float32 3x3/s2 max pooling of maps at most 16 columns wide (with the padding) and 7 windows
    across: the cython backend's whole-row AVX-512 path (windows clipped by padding, the smaller
    last region, ties, infinities); adaptive 13 -> 6 takes it too."""
    rng = np.random.default_rng(hw[0] * 31 + hw[1])
    x = np.round(rng.standard_normal((3, 4) + hw) * 2).astype(np.float32)
    x[0, 0, 0, :2] = -np.inf
    x[1, 2, -1, -1] = np.inf
    args = ("max", 3, 2, pad, ceil_mode, 1.0)
    want = ops.pool2d(x, *args, backend="numpy")
    np.testing.assert_array_equal(ops.pool2d(x, *args, backend=backend), want)
    np.testing.assert_array_equal(ops.adaptive_pool2d(x[..., :13, :13], 6, "max", backend=backend),
                                  ops.adaptive_pool2d(x[..., :13, :13], 6, "max", backend="numpy"))


def test_small_map_max_path_is_taken_where_it_applies():
    """The plans of the suite's adaptive 13 -> 6 row and of 3x3/s2 on 13^2 / 14^2 maps fit the
    small-map path; 16 columns with padding (17 lanes) or 8 windows across do not."""
    if not backend_status("cython").available:
        pytest.skip(backend_status("cython").reason)
    from dlbench.kernels.cython import variants_pool
    from dlbench.kernels.reference.pool import adaptive_plan, region_plan

    if not variants_pool.HAVE_AVX512:
        pytest.skip("built without AVX-512: the row-by-row path serves these maps")

    def pad_of(w, pad, out):
        pads = ((pad, pad), (pad, pad))
        plan = region_plan((w, w), "max", (3, 3), (2, 2), pads, (out, out), 1.0, np.float32)
        return variants_pool.small_max_applies(plan.ws, plan.we, w)

    plan = adaptive_plan((13, 13), "max", (6, 6), np.float32)
    assert variants_pool.small_max_applies(plan.ws, plan.we, 13) == 0
    assert pad_of(13, 0, 6) == 0 and pad_of(14, 1, 7) == 1
    assert pad_of(16, 1, 8) == -1 and pad_of(16, 0, 7) == 0 and pad_of(17, 0, 8) == -1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("P,L,M", [(1, 4, 3), (3, 48, 10), (5, 2240, 560), (7, 169, 36), (2, 20, 100),
                                   (2051, 4096, 64), (3, 2**22, 500)])
@pytest.mark.parametrize("aligned", [True, False])
def test_scatter_max_matches_add_at(dtype, P, L, M, aligned):
    """The cython scatter equals np.add.at: repeated indices add up, out-of-range ones are skipped
    and counted, maps fewer than the threads. float32 outputs of >= 32 MiB on a cache line with L a
    multiple of 16 take the double-buffered path (groups of two 4096-float maps and a last group
    of one; single 16 MiB maps, fewer than the threads' groups); the rest zero and scatter in place."""
    if dtype == "float64" and P * L > 2**20:
        pytest.skip("the large shapes exercise the float32 path")
    if not backend_status("cython").available:
        pytest.skip(backend_status("cython").reason)
    from dlbench.kernels.cython import variants_pool

    from dlbench.allocator import empty_aligned

    rng = np.random.default_rng(P * L + M)
    dy = rng.standard_normal((P, M)).astype(dtype)
    idx = rng.integers(0, L, (P, M))
    idx[0, : min(M, 5)] = 0                       # collisions
    idx[-1, -1] = L                               # out of range: skipped, counted
    if P > 1:
        idx[1, 0] = -(2**32) + 1
    raw = empty_aligned((P * L + 1,), dtype)
    dx = (raw[:-1] if aligned else raw[1:]).reshape(P, L)
    dx[...] = np.nan                              # every element must be written
    buffered = dtype == "float32" and aligned and P * L * 4 >= 32 << 20
    assert variants_pool.scatter_max_buffered(dx) == buffered
    bad = variants_pool.scatter_max(dy, idx, dx)
    want = np.zeros((P, L), dtype)
    ok = (idx >= 0) & (idx < L)
    for p in range(P):
        np.add.at(want[p], idx[p][ok[p]], dy[p][ok[p]])
    assert bad == (~ok).sum()
    np.testing.assert_allclose(dx, want, rtol=1e-6, atol=1e-6)
