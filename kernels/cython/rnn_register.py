"""Registers the Cython + OpenMP RNN kernels (``rnn.pyx``) for forward, BPTT, the loss, teacher
forcing and generation (eq. 10.8-10.21, fig. 10.4).

Same split as the Numba backend: the one-shot GEMMs over all time steps go through
``rnn_blas.matmul``; the recurrences and the fused element-wise passes run in ``rnn.pyx``
without the GIL, one block of sequences per OpenMP thread (per step one product of the block
with W, packed once per call, by a register-blocked kernel).
"""

import numpy as np
from dlbench.kernels.cython import rnn as _cy
from dlbench.kernels.numba_cpu.rnn_blas import batch_parts, blas_single_thread, matmul

from dlbench.registry import register_kernel


def _parts(n):
    """One block of sequences per OpenMP thread (the thread count dlbench.threads set)."""
    from dlbench.kernels.cython import _omp

    return batch_parts(n, _omp.get_max_threads())


def _packed(B):
    """B (K x N) packed into column panels for the recurrences' per-step kernel."""
    nr = _cy.panel_width(B.dtype)
    P = np.empty(-(-B.shape[1] // nr) * B.shape[0] * nr, B.dtype)
    _cy.pack_panels(np.ascontiguousarray(B), P)
    return P


def _output_projection(h, V, c, lengths):
    tau, n, n_h = h.shape
    o = np.empty((tau, n, V.shape[0]), h.dtype)
    matmul(h.reshape(tau * n, n_h), V, o.reshape(tau * n, -1), trans_b=True)
    _cy.bias_mask(o, c, lengths)
    return o


def _masked_sum(a, lengths):
    tau = a.shape[0]
    if np.all(lengths == tau):
        return a.reshape(-1, a.shape[2]).sum(axis=0)
    out = np.empty(a.shape[2], a.dtype)
    _cy.masked_sum(a, lengths, out)
    return out


@register_kernel("rnn_forward", "default", "cython")
def rnn_forward(x, h0, U, W, b, V, c, lengths):
    """Eq. 10.8-10.10: one GEMM for U x(t) over all t, the recurrence in Cython (per step the
    product with the packed W and a fused tanh pass, a block of sequences per OpenMP thread),
    one GEMM for V h(t)."""
    tau, n, n_in = x.shape
    n_h = U.shape[0]
    h = np.empty((tau, n, n_h), x.dtype)
    matmul(x.reshape(tau * n, n_in), U, h.reshape(tau * n, n_h), trans_b=True)
    h_last = h0.copy()
    _cy.forward_recurrence(h, h0, _packed(W.T), b, lengths, h_last, np.empty((n, n_h), x.dtype), _parts(n))
    o = None if V is None else _output_projection(h, V, c, lengths)
    return h, o, h_last


@register_kernel("rnn_backward", "default", "cython")
def rnn_backward(x, h, h0, U, W, V, grad_o, grad_h, grad_h_last, lengths, truncate):
    """BPTT (eq. 10.17-10.21): GEMM for V^T dL/do(t) over all t, the reverse recurrence in
    Cython, one GEMM per parameter gradient over all t. Returns dU, dW, db, dV, dc, dh0."""
    tau, n, n_h = h.shape
    rows = tau * n
    da = np.empty((tau, n, n_h), h.dtype)
    if V is not None:
        matmul(grad_o.reshape(rows, -1), V, da.reshape(rows, n_h))
        if grad_h is not None:
            da += grad_h
    elif grad_h is not None:
        da[...] = grad_h
    else:
        da[...] = 0
    has_last = grad_h_last is not None
    ghl = grad_h_last if has_last else np.zeros((1, 1), h.dtype)
    dh0 = np.empty((n, n_h), h.dtype)
    _cy.backward_recurrence(da, h, _packed(W), lengths, ghl, has_last, truncate, dh0, _parts(n))
    da2 = da.reshape(rows, n_h)
    dW = matmul(da[0], h0, trans_a=True)
    if tau > 1:
        matmul(da2[n:], h.reshape(rows, n_h)[:rows - n], dW, trans_a=True, beta=1.0)
    dU = matmul(da2, x.reshape(rows, -1), trans_a=True)
    db = da2.sum(axis=0)
    dV = dc = None
    if V is not None:
        dV = matmul(grad_o.reshape(rows, -1), h.reshape(rows, n_h), trans_a=True)
        dc = _masked_sum(grad_o, lengths)
    return dU, dW, db, dV, dc, dh0


@register_kernel("rnn_nll", "default", "cython")
def rnn_nll(o, y, lengths):
    """Eq. 10.11-10.14 and 10.18 fused, OpenMP over the (t, i) rows. Returns (loss, grad)."""
    grad = np.empty_like(o)
    loss = _cy.nll(o, y, lengths, grad)
    return float(loss), grad


@register_kernel("rnn_teacher_forcing", "default", "cython")
def rnn_teacher_forcing(x, prev, U, W, b, V, c, lengths):
    """Fig. 10.4 under teacher forcing: GEMM, fused gather + tanh (OpenMP), GEMM. Returns h, o."""
    tau, n, n_in = x.shape
    n_h = U.shape[0]
    h = np.empty((tau, n, n_h), x.dtype)
    matmul(x.reshape(tau * n, n_in), U, h.reshape(tau * n, n_h), trans_b=True)
    _cy.tf_activate(h, prev, np.ascontiguousarray(W.T), b, lengths)
    return h, _output_projection(h, V, c, lengths)


@register_kernel("rnn_teacher_forcing_backward", "default", "cython")
def rnn_teacher_forcing_backward(x, prev, h, U, W, V, grad_o, lengths):
    """Gradients of fig. 10.4 under teacher forcing. Returns dU, dW, db, dV, dc."""
    tau, n, n_h = h.shape
    rows = tau * n
    da = np.empty((tau, n, n_h), h.dtype)
    matmul(grad_o.reshape(rows, -1), V, da.reshape(rows, n_h))
    dWt = np.zeros((W.shape[1], n_h), h.dtype)
    _cy.tf_backward(da, h, prev, lengths, dWt)
    da2 = da.reshape(rows, n_h)
    dU = matmul(da2, x.reshape(rows, -1), trans_a=True)
    dV = matmul(grad_o.reshape(rows, -1), h.reshape(rows, n_h), trans_a=True)
    return dU, np.ascontiguousarray(dWt.T), da2.sum(axis=0), dV, _masked_sum(grad_o, lengths)


@register_kernel("rnn_generate", "default", "cython")
def rnn_generate(x, U, W, b, V, c, y0, u):
    """Free-running generation of fig. 10.4 (own output fed back), sequential in Cython.
    Returns tokens (tau, N) int64, o (tau, N, n_out)."""
    tau, n, n_in = x.shape
    n_h = U.shape[0]
    a_in = matmul(x.reshape(tau * n, n_in), U, trans_b=True).reshape(tau, n, n_h)
    tokens = np.empty((tau, n), np.int64)
    o = np.empty((tau, n, V.shape[0]), x.dtype)
    sample = u is not None
    uu = np.ascontiguousarray(u, dtype=np.float64) if sample else np.zeros((1, 1))
    with blas_single_thread():
        _cy.generate(np.ascontiguousarray(a_in), np.ascontiguousarray(W.T), b, np.ascontiguousarray(V.T), c,
                     y0, uu, sample, tokens, o, np.empty((n, n_h), x.dtype))
    return tokens, o
