"""Numba CPU kernels of the recurrent networks of chapter 10 (eq. 10.8-10.21, fig. 10.4).

Work split (what only the recurrence needs is sequential):

- outside the time loop, one big GEMM each (``rnn_blas.matmul``): U x(t) for all t before the
  recurrence; V h(t) for all t after it; in BPTT V^T dL/do(t) for all t before, and
  dL/dV, dL/dW, dL/dU summed over t after it (eq. 10.21's parameter gradients);
- the recurrence: the sequences of a batch are independent, so the batch is split into one
  block of rows per thread (``prange``) and each thread runs every time step of its block on
  its own: the product of its rows with W (``np.dot``, serial BLAS) and a fused element-wise
  pass (bias, tanh, masking). No synchronisation per step: the only barrier is at the end.

float32 uses a vectorisable rational tanh (|error| < 4e-7, 3 ulp near 1); float64 uses libm's.
Kernels use ``error_model="numpy"`` (a division by zero gives inf, no exception check), without
which a loop holding a division does not vectorise.
Stored activations: h (tau, N, n_h), plus one (tau, N, n_h) work array in BPTT: O(tau) memory,
all allocated by NumPy (visible to tracemalloc).
"""

import math

import numba as nb
import numpy as np
from dlbench.kernels.numba_cpu.rnn_blas import batch_parts, blas_single_thread, matmul
from numba import types
from numba.extending import overload

from dlbench.registry import register_kernel

# Rational minimax approximation of tanh on [-7.905, 7.905] (numerator odd degree 13,
# denominator even degree 6), the one Eigen uses for float32: within 4e-7 of tanh everywhere.
_CLAMP = np.float32(7.90531110763549805)
_A1, _A3 = np.float32(4.89352455891786e-03), np.float32(6.37261928875436e-04)
_A5 = np.float32(1.48572235717979e-05)
_A7, _A9 = np.float32(5.12229709037114e-08), np.float32(-8.60467152213735e-11)
_A11, _A13 = np.float32(2.00018790482477e-13), np.float32(-2.76076847742355e-16)
_B0, _B2 = np.float32(4.89352518554385e-03), np.float32(2.26843463243900e-03)
_B4, _B6 = np.float32(1.18534705686654e-04), np.float32(1.19825839466702e-06)


@nb.njit(cache=True, error_model="numpy")
def tanh32(x):
    """float32 tanh by a rational approximation (vectorises: no libm call, no branch)."""
    x = min(max(x, -_CLAMP), _CLAMP)
    x2 = x * x
    p = ((((((_A13 * x2 + _A11) * x2 + _A9) * x2 + _A7) * x2 + _A5) * x2 + _A3) * x2 + _A1) * x
    q = ((_B6 * x2 + _B4) * x2 + _B2) * x2 + _B0
    return p / q


def act(x):
    """tanh: the rational approximation for float32, libm's for float64 (chosen at compile time)."""
    return math.tanh(x)


@overload(act)
def _act_overload(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return lambda x: tanh32(x)
    return lambda x: math.tanh(x)


# ---------------------------------------------------------------------------------------------
# forward (eq. 10.8-10.10)


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _forward_recurrence(h, h0, Wt, b, lengths, h_last, tmp, parts):
    """h holds U x(t) on entry and h(t) on exit. Each thread takes rows parts[p]:parts[p+1] and
    for every t: tmp = h(t-1) W^T on its rows (BLAS), h(t) = tanh(U x(t) + b + tmp)
    (eq. 10.8-10.9) on live rows, 0 on padding rows; h_last[i] = h(L_i)."""
    tau, n, n_h = h.shape
    for p in nb.prange(parts.shape[0] - 1):
        i0 = parts[p]
        i1 = parts[p + 1]
        tp = tmp[i0:i1]
        for t in range(tau):
            if t == 0:
                np.dot(h0[i0:i1], Wt, tp)
            else:
                np.dot(h[t - 1, i0:i1], Wt, tp)
            for i in range(i0, i1):
                if t < lengths[i]:
                    for j in range(n_h):
                        h[t, i, j] = act(h[t, i, j] + b[j] + tmp[i, j])
                    if t == lengths[i] - 1:
                        for j in range(n_h):
                            h_last[i, j] = h[t, i, j]
                else:
                    for j in range(n_h):
                        h[t, i, j] = 0


@nb.njit(cache=True, error_model="numpy")
def _add_bias_mask(o, c, lengths):
    """o(t) += c (eq. 10.10) on live steps; 0 on padding steps (tau*N*n_out: serial is enough)."""
    tau, n, k = o.shape
    for i in range(n):
        for t in range(tau):
            if t < lengths[i]:
                for j in range(k):
                    o[t, i, j] += c[j]
            else:
                for j in range(k):
                    o[t, i, j] = 0


def _output_projection(h, V, c, lengths):
    tau, n, n_h = h.shape
    o = np.empty((tau, n, V.shape[0]), h.dtype)
    matmul(h.reshape(tau * n, n_h), V, o.reshape(tau * n, -1), trans_b=True)
    _add_bias_mask(o, c, lengths)
    return o


@register_kernel("rnn_forward", "default", "numba")
def rnn_forward(x, h0, U, W, b, V, c, lengths):
    """Eq. 10.8-10.10: one GEMM for U x(t) over all t, the recurrence h(t-1) W^T + tanh per step
    (njit, BLAS), one GEMM for V h(t) over all t. Returns h, o (or None), h_last."""
    tau, n, n_in = x.shape
    n_h = U.shape[0]
    h = np.empty((tau, n, n_h), x.dtype)
    matmul(x.reshape(tau * n, n_in), U, h.reshape(tau * n, n_h), trans_b=True)
    h_last = h0.copy()
    with blas_single_thread():
        _forward_recurrence(h, h0, np.ascontiguousarray(W.T), b, lengths, h_last, np.empty((n, n_h), x.dtype),
                            batch_parts(n, nb.get_num_threads()))
    o = None if V is None else _output_projection(h, V, c, lengths)
    return h, o, h_last


# ---------------------------------------------------------------------------------------------
# BPTT (eq. 10.17-10.21)


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _backward_recurrence(da, h, W, lengths, grad_h_last, has_last, truncate, carry, parts):
    """da holds V^T dL/do(t) (+ any direct dL/dh(t)) on entry and dL/da(t) on exit.

    Each thread takes rows parts[p]:parts[p+1] and goes from t = tau down to 1: dL/dh(t) =
    da[t] + carry (eq. 10.20-10.21), dL/da(t) = (1 - h(t)^2) dL/dh(t) on live rows (0 on
    padding), then carry = dL/da(t) W on its rows (BLAS), cut at truncation boundaries. On exit
    carry = dL/dh(0)."""
    tau, n, n_h = h.shape
    for p in nb.prange(parts.shape[0] - 1):
        i0 = parts[p]
        i1 = parts[p + 1]
        cp = carry[i0:i1]
        for i in range(i0, i1):
            for j in range(n_h):
                carry[i, j] = 0
        for t in range(tau - 1, -1, -1):
            for i in range(i0, i1):
                if t < lengths[i]:
                    if has_last and t == lengths[i] - 1:
                        for j in range(n_h):
                            carry[i, j] += grad_h_last[i, j]
                    for j in range(n_h):
                        hv = h[t, i, j]
                        da[t, i, j] = (1 - hv * hv) * (da[t, i, j] + carry[i, j])
                else:
                    for j in range(n_h):
                        da[t, i, j] = 0
            if t > 0 and truncate > 0 and t % truncate == 0:
                for i in range(i0, i1):
                    for j in range(n_h):
                        carry[i, j] = 0
            else:
                np.dot(da[t, i0:i1], W, cp)
        if has_last:
            for i in range(i0, i1):
                if lengths[i] == 0:
                    for j in range(n_h):
                        carry[i, j] += grad_h_last[i, j]


@nb.njit(cache=True, error_model="numpy")
def _masked_sum(a, lengths):
    """sum over the live steps (t < L_i) of a[t, i, :]."""
    tau, n, k = a.shape
    out = np.zeros(k, a.dtype)
    for t in range(tau):
        for i in range(n):
            if t < lengths[i]:
                for j in range(k):
                    out[j] += a[t, i, j]
    return out


def _param_grads(da, x, h, h0, go, lengths):
    """dL/dW = sum_t da(t)^T h(t-1), dL/dU = sum_t da(t)^T x(t), dL/db = sum_t da(t), and with an
    output layer dL/dV = sum_t go(t)^T h(t), dL/dc = sum_t go(t): one GEMM each over all t."""
    tau, n, n_h = h.shape
    rows = tau * n
    da2 = da.reshape(rows, n_h)
    dW = matmul(da[0], h0, trans_a=True)
    if tau > 1:
        matmul(da2[n:], h.reshape(rows, n_h)[:rows - n], dW, trans_a=True, beta=1.0)
    dU = matmul(da2, x.reshape(rows, -1), trans_a=True)
    db = da2.sum(axis=0)
    dV = dc = None
    if go is not None:
        dV = matmul(go.reshape(rows, -1), h.reshape(rows, n_h), trans_a=True)   # h is 0 on padding
        dc = go.reshape(rows, -1).sum(axis=0) if np.all(lengths == tau) else _masked_sum(go, lengths)
    return dU, dW, db, dV, dc


@register_kernel("rnn_backward", "default", "numba")
def rnn_backward(x, h, h0, U, W, V, grad_o, grad_h, grad_h_last, lengths, truncate):
    """BPTT (eq. 10.17-10.21): one GEMM for V^T dL/do(t) over all t, the reverse recurrence
    (njit, per step one BLAS product with W), then one GEMM per parameter gradient over all t.
    Returns dU, dW, db, dV, dc, dh0."""
    tau, n, n_h = h.shape
    da = np.empty((tau, n, n_h), h.dtype)
    if V is not None:
        matmul(grad_o.reshape(tau * n, -1), V, da.reshape(tau * n, n_h))
        if grad_h is not None:
            da += grad_h
    elif grad_h is not None:
        da[...] = grad_h
    else:
        da[...] = 0
    has_last = grad_h_last is not None
    ghl = grad_h_last if has_last else np.zeros((1, 1), h.dtype)
    dh0 = np.empty((n, n_h), h.dtype)
    with blas_single_thread():
        _backward_recurrence(da, h, W, lengths, ghl, has_last, truncate, dh0,
                             batch_parts(n, nb.get_num_threads()))
    dU, dW, db, dV, dc = _param_grads(da, x, h, h0, grad_o, lengths)
    return dU, dW, db, dV, dc, dh0


# ---------------------------------------------------------------------------------------------
# loss (eq. 10.11-10.14, 10.18)


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _nll(o, y, lengths, grad):
    tau, n, k = o.shape
    loss = 0.0
    for r in nb.prange(tau * n):
        t = r // n
        i = r - t * n
        if t >= lengths[i]:
            for j in range(k):
                grad[t, i, j] = 0
            continue
        m = o[t, i, 0]
        for j in range(1, k):
            m = max(m, o[t, i, j])
        s = 0.0
        for j in range(k):
            e = math.exp(o[t, i, j] - m)
            grad[t, i, j] = e
            s += e
        inv = 1.0 / s
        for j in range(k):
            grad[t, i, j] *= inv                     # softmax, eq. 10.11
        grad[t, i, y[t, i]] -= 1                     # eq. 10.18
        loss += math.log(s) + m - o[t, i, y[t, i]]   # -log softmax_y, eq. 10.12-10.14
    return loss


@register_kernel("rnn_nll", "default", "numba")
def rnn_nll(o, y, lengths):
    """Eq. 10.11-10.14 and 10.18 fused: one parallel pass per (t, i) row. Returns (loss, grad)."""
    grad = np.empty_like(o)
    loss = _nll(o, y, lengths, grad)
    return float(loss), grad


# ---------------------------------------------------------------------------------------------
# output recurrence with teacher forcing, and free-running generation (fig. 10.4, 10.2.1)


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _tf_activate(h, prev, Wt, b, lengths):
    """h holds U x(t): h = tanh(U x(t) + b + W[:, y(t-1)]) on live steps, 0 on padding."""
    tau, n, n_h = h.shape
    for r in nb.prange(tau * n):
        t = r // n
        i = r - t * n
        if t < lengths[i]:
            p = prev[t, i]
            if p >= 0:
                for j in range(n_h):
                    h[t, i, j] = act(h[t, i, j] + b[j] + Wt[p, j])
            else:
                for j in range(n_h):
                    h[t, i, j] = act(h[t, i, j] + b[j])
        else:
            for j in range(n_h):
                h[t, i, j] = 0


@register_kernel("rnn_teacher_forcing", "default", "numba")
def rnn_teacher_forcing(x, prev, U, W, b, V, c, lengths):
    """Fig. 10.4 under teacher forcing: every step is independent (y(t-1) replaces o(t-1)), so
    the whole pass is GEMM, fused gather + tanh, GEMM. Returns h, o."""
    tau, n, n_in = x.shape
    n_h = U.shape[0]
    h = np.empty((tau, n, n_h), x.dtype)
    matmul(x.reshape(tau * n, n_in), U, h.reshape(tau * n, n_h), trans_b=True)
    _tf_activate(h, prev, np.ascontiguousarray(W.T), b, lengths)
    return h, _output_projection(h, V, c, lengths)


@nb.njit(parallel=True, cache=True, error_model="numpy")
def _tf_backward(da, h, lengths):
    tau, n, n_h = h.shape
    for r in nb.prange(tau * n):
        t = r // n
        i = r - t * n
        if t < lengths[i]:
            for j in range(n_h):
                hv = h[t, i, j]
                da[t, i, j] *= 1 - hv * hv
        else:
            for j in range(n_h):
                da[t, i, j] = 0


@nb.njit(cache=True, error_model="numpy")
def _scatter_rows(dWt, prev, da):
    """dW[:, y(t-1)] += dL/da(t) (the one-hot input's weight gradient), as rows of W^T."""
    tau, n, n_h = da.shape
    for t in range(tau):
        for i in range(n):
            p = prev[t, i]
            if p >= 0:
                for j in range(n_h):
                    dWt[p, j] += da[t, i, j]


@register_kernel("rnn_teacher_forcing_backward", "default", "numba")
def rnn_teacher_forcing_backward(x, prev, h, U, W, V, grad_o, lengths):
    """Gradients of fig. 10.4 under teacher forcing: GEMM, element-wise, GEMMs, a scatter-add
    for W. Returns dU, dW, db, dV, dc."""
    tau, n, n_h = h.shape
    rows = tau * n
    da = np.empty((tau, n, n_h), h.dtype)
    matmul(grad_o.reshape(rows, -1), V, da.reshape(rows, n_h))
    _tf_backward(da, h, lengths)
    da2 = da.reshape(rows, n_h)
    dU = matmul(da2, x.reshape(rows, -1), trans_a=True)
    dWt = np.zeros((W.shape[1], n_h), h.dtype)
    _scatter_rows(dWt, prev, da)
    dV = matmul(grad_o.reshape(rows, -1), h.reshape(rows, n_h), trans_a=True)
    dc = grad_o.reshape(rows, -1).sum(axis=0) if np.all(lengths == tau) else _masked_sum(grad_o, lengths)
    return dU, np.ascontiguousarray(dWt.T), da2.sum(axis=0), dV, dc


@nb.njit(cache=True, error_model="numpy")
def _generate(a_in, Wt, b, Vt, c, y0, u, sample, tokens, o):
    """Per step: a = U x(t) + b + W[:, y_hat(t-1)], h = tanh(a), o = h V^T + c (BLAS), then
    y_hat(t) = argmax o (== argmax softmax) or the inverse-CDF draw of softmax(o) at u."""
    tau, n, n_h = a_in.shape
    k = Vt.shape[1]
    hbuf = np.empty((n, n_h), a_in.dtype)
    prev = y0.copy()
    for t in range(tau):
        for i in range(n):
            p = prev[i]
            for j in range(n_h):
                a = a_in[t, i, j] + b[j]
                if p >= 0:
                    a += Wt[p, j]
                hbuf[i, j] = act(a)
        np.dot(hbuf, Vt, o[t])
        for i in range(n):
            for j in range(k):
                o[t, i, j] += c[j]
            best = 0
            m = o[t, i, 0]
            for j in range(1, k):
                if o[t, i, j] > m:
                    m = o[t, i, j]
                    best = j
            if sample:
                s = 0.0
                for j in range(k):
                    s += math.exp(o[t, i, j] - m)
                target = u[t, i] * s
                cum = 0.0
                best = k - 1
                for j in range(k):
                    cum += math.exp(o[t, i, j] - m)
                    if cum > target:
                        best = j
                        break
            tokens[t, i] = best
            prev[i] = best


@register_kernel("rnn_generate", "default", "numba")
def rnn_generate(x, U, W, b, V, c, y0, u):
    """Free-running generation of fig. 10.4 (the model's own output fed back): one GEMM for
    U x(t), then a sequential njit loop. Returns tokens (tau, N) int64, o (tau, N, n_out)."""
    tau, n, n_in = x.shape
    n_h = U.shape[0]
    a_in = matmul(x.reshape(tau * n, n_in), U, trans_b=True).reshape(tau, n, n_h)
    tokens = np.empty((tau, n), np.int64)
    o = np.empty((tau, n, V.shape[0]), x.dtype)
    sample = u is not None
    uu = u if sample else np.zeros((1, 1))
    with blas_single_thread():
        _generate(a_in, np.ascontiguousarray(W.T), b, np.ascontiguousarray(V.T), c, y0, uu, sample, tokens, o)
    return tokens, o
