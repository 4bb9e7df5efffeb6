"""GEMM kernels (the product under im2col / 1x1 / Winograd convolution) against the reference.

Values are checked against a float64 ``a @ b`` on hypothesis-drawn shapes that include 1, odd
sizes and sizes that are not multiples of the micro-tile (6x16 / 6x8), with transposes,
strided and column-major C, alpha and beta != 0, in float32 and float64. The Cython kernel is
also run with tiny cache blocks and no serial threshold, so that small shapes cross every
MC/KC/NC block edge and take the multi-threaded path.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import pytest
from dlbench.kernels.reference import gemm as ref
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlbench.registry import get_kernel

cy = pytest.importorskip("dlbench.kernels.cython.gemm", reason="Cython GEMM extension not built")

TOL = {"float32": 2e-6, "float64": 1e-13}
HYP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def expected(a, b, c0, alpha, beta, trans_a, trans_b):
    """alpha * op(a) @ op(b) + beta * c0 in float64 (c0 None or beta == 0: no C term)."""
    opa = (a.T if trans_a else a).astype(np.float64)
    opb = (b.T if trans_b else b).astype(np.float64)
    r = alpha * (opa @ opb)
    if c0 is not None and beta != 0:
        r = r + beta * c0.astype(np.float64)
    return r


def assert_gemm_close(got, want, a, b, c0, alpha, beta, k):
    """|got - want| <= tol * sqrt(k) * scale, scale = |alpha| max|a| max|b| + |beta| max|c0|."""
    dt = str(got.dtype)
    scale = abs(alpha) * np.abs(a).max(initial=0) * np.abs(b).max(initial=0)
    if c0 is not None:
        scale += abs(beta) * np.abs(c0).max(initial=0)
    atol = TOL[dt] * np.sqrt(max(k, 1)) * max(scale, 1.0)
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=0, atol=atol)


def operands(rng, m, n, k, dtype, trans_a, trans_b):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return a, b


@contextlib.contextmanager
def tiny_blocks():
    """MC=12, KC=7, NC=32 and no serial threshold: small shapes hit every block edge on 2 threads."""
    old = {dt: cy.get_blocking(dt) for dt in ("float32", "float64")}
    old_thr = cy.set_serial_threshold(0.0)
    try:
        cy.set_blocking("float32", 12, 7, 32)
        cy.set_blocking("float64", 12, 7, 32)
        yield
    finally:
        for dt, (mc, kc, nc) in old.items():
            cy.set_blocking(dt, mc, kc, nc)
        cy.set_serial_threshold(old_thr)


dims = st.one_of(st.sampled_from([1, 2, 5, 6, 7, 8, 15, 16, 17, 33]), st.integers(1, 40))
case = st.fixed_dictionaries({
    "m": dims, "n": dims, "k": dims,
    "dtype": st.sampled_from(["float32", "float64"]),
    "trans_a": st.booleans(), "trans_b": st.booleans(),
    "alpha": st.sampled_from([1.0, -0.5, 2.5]), "beta": st.sampled_from([0.0, 1.0, -1.5]),
    "c_layout": st.sampled_from(["C", "F", "strided", "none"]),
    "blocks": st.sampled_from(["default", "tiny"]),
    "seed": st.integers(0, 2**16),
})


def make_c(rng, m, n, dtype, layout):
    """Initial C in the given layout (None for 'none'); also returned as a plain copy."""
    if layout == "none":
        return None, None
    c0 = rng.standard_normal((m, n)).astype(dtype)
    if layout == "F":
        c = np.asfortranarray(c0.copy())
    elif layout == "strided":
        big = np.zeros((2 * m, 3 * n), dtype=dtype)
        c = big[::2, ::3]
        c[...] = c0
    else:
        c = c0.copy()
    return c, c0


@HYP
@given(p=case)
def test_cython_gemm_matches_reference(p):
    rng = np.random.default_rng(p["seed"])
    m, n, k = p["m"], p["n"], p["k"]
    a, b = operands(rng, m, n, k, p["dtype"], p["trans_a"], p["trans_b"])
    c, c0 = make_c(rng, m, n, p["dtype"], p["c_layout"])
    ctx = tiny_blocks() if p["blocks"] == "tiny" else contextlib.nullcontext()
    with ctx:
        got = cy.gemm(a, b, c, alpha=p["alpha"], beta=p["beta"], trans_a=p["trans_a"], trans_b=p["trans_b"])
    if c is not None:
        assert got is c
    assert got.dtype == np.dtype(p["dtype"]) and got.shape == (m, n)
    want = expected(a, b, c0, p["alpha"], p["beta"], p["trans_a"], p["trans_b"])
    assert_gemm_close(got, want, a, b, c0, p["alpha"], p["beta"], k)


@settings(max_examples=15, deadline=None)
@given(p=case)
def test_numba_gemm_matches_reference(p):
    kern = get_kernel("gemm", "blocked", "numba")
    rng = np.random.default_rng(p["seed"])
    m, n, k = p["m"], p["n"], p["k"]
    a, b = operands(rng, m, n, k, p["dtype"], p["trans_a"], p["trans_b"])
    c, c0 = make_c(rng, m, n, p["dtype"], p["c_layout"])
    got = kern(a, b, c, alpha=p["alpha"], beta=p["beta"], trans_a=p["trans_a"], trans_b=p["trans_b"])
    want = expected(a, b, c0, p["alpha"], p["beta"], p["trans_a"], p["trans_b"])
    assert_gemm_close(got, want, a, b, c0, p["alpha"], p["beta"], k)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_reference_is_blas_semantics(dtype):
    rng = np.random.default_rng(1)
    a, b = operands(rng, 9, 7, 5, dtype, True, False)
    c0 = rng.standard_normal((9, 7)).astype(dtype)
    c = c0.copy()
    out = ref.gemm(a, b, c, alpha=2.0, beta=-1.0, trans_a=True)
    assert out is c
    np.testing.assert_allclose(c, 2.0 * a.T @ b - c0, rtol=1e-5)
    c = c0.copy()
    ref.gemm(a, b, c, alpha=3.0, trans_a=True)
    np.testing.assert_allclose(c, 3.0 * a.T @ b, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("m,n,k,order", [(150, 70, 300, "C"), (64, 97, 576, "C"), (7, 300, 260, "C"),
                                         (300, 5, 33, "C"), (200, 49, 700, "C"), (200, 49, 700, "F"),
                                         (150, 70, 300, "F")])
def test_cython_multiblock_shapes(dtype, m, n, k, order):
    """Shapes past one MC/KC block at the default blocking, on the threaded path; narrow N runs
    as C^T = B^T A^T with the transposing store, an F-ordered C natively transposed."""
    rng = np.random.default_rng(m + n + k)
    a, b = operands(rng, m, n, k, dtype, False, False)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    c = np.array(c0, order=order)
    cy.gemm(a, b, c, alpha=0.5, beta=2.0)
    assert_gemm_close(c, expected(a, b, c0, 0.5, 2.0, False, False), a, b, c0, 0.5, 2.0, k)


@pytest.mark.parametrize("kernel", ["cython", "numba", "numpy"])
def test_beta_zero_never_reads_c(kernel):
    kern = {"cython": cy.gemm, "numba": get_kernel("gemm", "blocked", "numba"), "numpy": ref.gemm}[kernel]
    a = np.ones((13, 9), np.float32)
    b = np.ones((9, 21), np.float32)
    c = np.full((13, 21), np.nan, np.float32)
    kern(a, b, c, beta=0.0)
    np.testing.assert_array_equal(c, np.full((13, 21), 9.0, np.float32))


def test_strided_and_negative_stride_operands():
    rng = np.random.default_rng(2)
    big_a = rng.standard_normal((40, 50)).astype(np.float32)
    big_b = rng.standard_normal((60, 30)).astype(np.float32)
    a = big_a[::-2, 3::3]        # (20, 16), negative row stride
    b = big_b[::-3, ::-1][:16]   # (16, 30)
    got = cy.gemm(a, b)
    assert_gemm_close(got, expected(a, b, None, 1.0, 0.0, False, False), a, b, None, 1.0, 0.0, 16)


def test_degenerate_sizes():
    a = np.zeros((5, 0), np.float64)
    b = np.zeros((0, 4), np.float64)
    c = np.full((5, 4), 3.0)
    cy.gemm(a, b, c, beta=2.0)
    np.testing.assert_array_equal(c, np.full((5, 4), 6.0))
    cy.gemm(a, b, c)
    np.testing.assert_array_equal(c, np.zeros((5, 4)))
    assert cy.gemm(np.zeros((0, 3), np.float32), np.zeros((3, 2), np.float32)).shape == (0, 2)


@pytest.mark.parametrize("m,n,k", [(200, 150, 300), (300, 40, 700)])
def test_thread_count_does_not_change_the_result(m, n, k):
    """Each micro-tile is owned by one thread and K is summed in one order: bitwise equal
    (column slices on the fused path, row slices for a tall C)."""
    rng = np.random.default_rng(3)
    a, b = operands(rng, m, n, k, "float32", False, True)
    one = cy.gemm(a, b, trans_b=True, threads=1)
    two = cy.gemm(a, b, trans_b=True, threads=2)
    three = cy.gemm(a, b, trans_b=True, threads=3)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, three)
    assert_gemm_close(one, expected(a, b, None, 1.0, 0.0, False, True), a, b, None, 1.0, 0.0, k)


def test_concurrent_python_threads():
    """The GIL is released and packing buffers are per call: concurrent calls stay correct."""
    rng = np.random.default_rng(4)
    pairs = [operands(rng, 70 + i, 90, 110, "float32", False, False) for i in range(4)]
    out = [None] * 4

    def work(i):
        for _ in range(5):
            out[i] = cy.gemm(*pairs[i], threads=1)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for (a, b), got in zip(pairs, out):
        assert_gemm_close(got, expected(a, b, None, 1.0, 0.0, False, False), a, b, None, 1.0, 0.0, 110)


@pytest.mark.parametrize("kernel", ["cython", "numba", "numpy"])
def test_bad_input_raises_value_error(kernel):
    kern = {"cython": cy.gemm, "numba": get_kernel("gemm", "blocked", "numba"), "numpy": ref.gemm}[kernel]
    f32 = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="dtype"):
        kern(f32, np.ones((4, 2), np.float64))
    with pytest.raises(ValueError, match="inner dimensions"):
        kern(f32, np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match="2-D"):
        kern(np.ones(3, np.float32), f32)
    with pytest.raises(ValueError, match="float32 or float64"):
        kern(np.ones((3, 4), np.int64), np.ones((4, 2), np.int64))
    with pytest.raises(ValueError, match="shape"):
        kern(f32, np.ones((4, 2), np.float32), np.ones((3, 3), np.float32))


@settings(max_examples=20, deadline=None)
@given(batch=st.integers(1, 9), m=dims, n=dims, k=dims, dtype=st.sampled_from(["float32", "float64"]),
       trans_a=st.booleans(), trans_b=st.booleans(), shared=st.sampled_from(["none", "a", "b"]),
       beta=st.sampled_from([0.0, 0.5]), seed=st.integers(0, 2**16))
def test_batched_gemm_matches_reference(batch, m, n, k, dtype, trans_a, trans_b, shared, beta, seed):
    rng = np.random.default_rng(seed)
    sa = (k, m) if trans_a else (m, k)
    sb = (n, k) if trans_b else (k, n)
    a = rng.standard_normal(sa if shared == "a" else (batch, *sa)).astype(dtype)
    b = rng.standard_normal(sb if shared == "b" else (batch, *sb)).astype(dtype)
    c0 = rng.standard_normal((batch, m, n)).astype(dtype)
    c = c0.copy()
    with tiny_blocks():
        got = cy.batched_gemm(a, b, c, alpha=1.5, beta=beta, trans_a=trans_a, trans_b=trans_b)
    want = ref.batched_gemm(a.astype(np.float64), b.astype(np.float64), c0.astype(np.float64), alpha=1.5,
                            beta=beta, trans_a=trans_a, trans_b=trans_b)
    assert got is c
    assert_gemm_close(got, want, a, b, c0, 1.5, beta, k)


def test_batched_gemm_winograd_shape_on_both_paths():
    """36 items (one per thread at a time) and 3 items (each item on all threads)."""
    rng = np.random.default_rng(5)
    for batch in (36, 3):
        a = rng.standard_normal((batch, 64, 48)).astype(np.float32)
        b = rng.standard_normal((batch, 48, 130)).astype(np.float32)
        got = cy.batched_gemm(a, b)
        want = np.matmul(a.astype(np.float64), b.astype(np.float64))
        assert_gemm_close(got, want, a, b, None, 1.0, 0.0, 48)


def test_batched_gemm_bad_batch():
    with pytest.raises(ValueError, match="batch"):
        cy.batched_gemm(np.ones((2, 3, 4), np.float32), np.ones((3, 4, 5), np.float32))


def test_matches_torch_matmul():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    for dtype in ("float32", "float64"):
        a, b = operands(rng, 64, 196, 288, dtype, False, False)
        ta, tb = (torch.from_numpy(x.astype(np.float64)) for x in (a, b))
        want = torch.matmul(ta, tb).numpy()
        assert_gemm_close(cy.gemm(a, b), want, a, b, None, 1.0, 0.0, 288)


def test_flop_and_byte_models():
    from dlbench.registry import OPS

    assert OPS["gemm"].flops(m=64, n=3136, k=576) == 2.0 * 64 * 3136 * 576
    assert OPS["gemm"].bytes(m=2, n=3, k=4, dtype="float64") == (8 + 12 + 6) * 8
    assert OPS["batched_gemm"].flops(batch=36, m=2, n=3, k=4) == 36 * 2 * 24
