"""The numba-cuda RNN kernels against the reference, on the CUDA simulator (tiny shapes: the
simulator runs every GPU thread as a Python thread)."""

import numpy as np
import pytest

from dlbench import ops
from dlbench.backends import backend_status

pytestmark = pytest.mark.skipif(not backend_status("numba-cuda").available,
                                reason=backend_status("numba-cuda").reason or "numba-cuda unavailable")


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def tiny(dtype, output_recurrent=False):
    rng = np.random.default_rng(0)
    p = ops.rnn_init(2, 5, 3, dtype, seed=1, output_recurrent=output_recurrent)
    x = rng.standard_normal((4, 3, 2)).astype(dtype)
    y = rng.integers(0, 3, (4, 3))
    h0 = (0.5 * rng.standard_normal((3, 5))).astype(dtype)
    return p, x, y, h0, np.array([4, 0, 2])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cuda_forward_loss_bptt_equal_reference(dtype):
    tol = 1e-12 if dtype == "float64" else 2e-6
    p, x, y, h0, lens = tiny(dtype)
    r = ops.rnn_loss_and_grads(x, y, **p, h0=h0, lengths=lens, truncate=2, backend="numba-cuda")
    q = ops.rnn_loss_and_grads(x, y, **p, h0=h0, lengths=lens, truncate=2, backend="numpy")
    assert r.loss == pytest.approx(q.loss, rel=tol)
    assert all(rel(a, b) < tol for a, b in zip(r.forward, q.forward))
    for name, a, b in zip(r.grads._fields, r.grads, q.grads):
        assert a.dtype == np.dtype(dtype) and rel(a, b) < 10 * tol, name


def test_cuda_direct_state_gradients_equal_reference():
    p, x, _, h0, lens = tiny("float64")
    h = ops.rnn_forward(x, p["U"], p["W"], p["b"], h0=h0, lengths=lens, backend="numpy").h
    rng = np.random.default_rng(3)
    gh, ghl = rng.standard_normal(h.shape), rng.standard_normal(h0.shape)
    a = ops.rnn_backward(x, h, None, p["U"], p["W"], None, h0, lens, grad_h=gh, grad_h_last=ghl,
                         backend="numba-cuda")
    b = ops.rnn_backward(x, h, None, p["U"], p["W"], None, h0, lens, grad_h=gh, grad_h_last=ghl,
                         backend="numpy")
    assert a.V is None and a.c is None
    for u, v in zip(a[:3] + a[5:], b[:3] + b[5:]):
        assert rel(u, v) < 1e-12


def test_cuda_teacher_forcing_and_generation_equal_reference():
    p, x, y, _, lens = tiny("float64", output_recurrent=True)
    r = ops.rnn_teacher_forcing_loss_and_grads(x, y, **p, lengths=lens, y0=1, backend="numba-cuda")
    q = ops.rnn_teacher_forcing_loss_and_grads(x, y, **p, lengths=lens, y0=1, backend="numpy")
    assert r.loss == pytest.approx(q.loss, rel=1e-12)
    assert all(rel(a, b) < 1e-12 for a, b in zip(r.grads[:5], q.grads[:5]))
    for mode in ("argmax", "sample"):
        ta, oa = ops.rnn_generate(x, **p, mode=mode, seed=2, backend="numba-cuda")
        tb, ob = ops.rnn_generate(x, **p, mode=mode, seed=2, backend="numpy")
        assert (ta == tb).all() and rel(oa, ob) < 1e-12
