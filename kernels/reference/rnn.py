"""NumPy reference of the recurrent networks of chapter 10 (sections 10.1-10.2.2).

The executable specification: one loop over time steps that mirrors the book's equations
(10.8-10.11 forward, 10.12-10.14 loss, 10.17-10.21 BPTT), in the row form that a batch of N
sequences gives (a row vector h per sequence, so ``W h`` becomes ``h @ W.T``). Arguments are
already validated by ``dlbench.ops.rnn``; ``lengths`` is an int64 array (N,), padding steps
t >= L_i produce zeros and no gradient.
"""

import numpy as np

from dlbench.registry import register_kernel


@register_kernel("rnn_forward", "default", "numpy")
def rnn_forward(x, h0, U, W, b, V, c, lengths):
    """Eq. 10.8-10.10 step by step. x (tau, N, n_in), h0 (N, n_h), U (n_h, n_in), W (n_h, n_h),
    b (n_h,), V (n_out, n_h) or None, c (n_out,) or None, lengths (N,) int64.
    Returns h (tau, N, n_h), o (tau, N, n_out) or None, h_last (N, n_h)."""
    tau, n, _ = x.shape
    n_h = U.shape[0]
    h = np.zeros((tau, n, n_h), x.dtype)
    o = None if V is None else np.zeros((tau, n, V.shape[0]), x.dtype)
    h_last = h0.copy()
    h_prev = h0
    for t in range(tau):
        live = t < lengths                                   # sequences still running at step t
        a = b + h_prev @ W.T + x[t] @ U.T                    # eq. 10.8
        ht = np.tanh(a)                                      # eq. 10.9
        ht[~live] = 0
        h[t] = ht
        if V is not None:
            o[t] = np.where(live[:, None], c + ht @ V.T, 0)  # eq. 10.10
        h_last[live] = ht[live]
        h_prev = ht
    return h, o, h_last


@register_kernel("rnn_backward", "default", "numpy")
def rnn_backward(x, h, h0, U, W, V, grad_o, grad_h, grad_h_last, lengths, truncate):
    """BPTT, eq. 10.17-10.21, step by step from t = tau down to 1.

    grad_o (tau, N, n_out) or None, grad_h (tau, N, n_h) or None, grad_h_last (N, n_h) or None,
    truncate: 0 (full) or k (no gradient from step t+1 into h(t) for t a positive multiple of k).
    Returns dU, dW, db, dV, dc, dh0 (dV, dc None without V)."""
    tau, n, n_h = h.shape
    dU, dW, db = np.zeros_like(U), np.zeros_like(W), np.zeros(n_h, h.dtype)
    dV = None if V is None else np.zeros_like(V)
    dc = None if V is None else np.zeros(V.shape[0], h.dtype)
    carry = np.zeros((n, n_h), h.dtype)    # W^T diag(1 - h(t+1)^2) dL/dh(t+1): what step t+1 sends back
    for t in range(tau - 1, -1, -1):
        live = (t < lengths)[:, None]
        g = carry.copy()                   # dL/dh(t), eq. 10.20-10.21 (eq. 10.19 at the last step)
        if V is not None:
            go = np.where(live, grad_o[t], 0)
            g += go @ V                    # V^T dL/do(t)
            dV += go.T @ h[t]              # sum_t dL/do(t) h(t)^T
            dc += go.sum(0)                # sum_t dL/do(t)
        if grad_h is not None:
            g += grad_h[t]
        if grad_h_last is not None:
            last = lengths == t + 1
            g[last] += grad_h_last[last]
        g = np.where(live, g, 0)
        da = (1 - h[t] ** 2) * g           # diag(1 - h(t)^2) dL/dh(t) = dL/da(t)
        h_prev = h[t - 1] if t > 0 else h0
        db += da.sum(0)
        dW += da.T @ h_prev
        dU += da.T @ x[t]
        carry = da @ W                     # W^T dL/da(t), sent to h(t-1)
        if truncate and t % truncate == 0 and t > 0:
            carry = np.zeros_like(carry)   # truncated BPTT: cut between block boundaries
    dh0 = carry
    if grad_h_last is not None:
        empty = lengths == 0
        dh0[empty] += grad_h_last[empty]   # a sequence of length 0: h(L_i) is h(0)
    return dU, dW, db, dV, dc, dh0


@register_kernel("rnn_nll", "default", "numpy")
def rnn_nll(o, y, lengths):
    """Eq. 10.11-10.14 and 10.18: L = -sum log softmax(o(t))_{y(t)} over live steps, and
    dL/do(t) = softmax(o(t)) - onehot(y(t)). Returns (loss float64, grad like o)."""
    tau, n, k = o.shape
    live = np.arange(tau)[:, None] < lengths[None, :]
    z = o.astype(np.float64)
    z = z - z.max(axis=2, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=2, keepdims=True))           # log softmax, eq. 10.11
    picked = np.take_along_axis(logp, y[..., None], axis=2)[..., 0]
    loss = -picked[live].sum()                                          # eq. 10.12-10.14
    grad = np.exp(logp)
    np.put_along_axis(grad, y[..., None], np.take_along_axis(grad, y[..., None], axis=2) - 1, axis=2)
    grad[~live] = 0                                                     # eq. 10.17-10.18
    return float(loss), grad.astype(o.dtype)


def _feedback_term(W, prev):
    """W onehot(prev) as rows: column prev of W, or 0 where prev < 0 (nothing fed back)."""
    out = W[:, np.maximum(prev, 0)].T.copy()
    out[prev < 0] = 0
    return out


@register_kernel("rnn_teacher_forcing", "default", "numpy")
def rnn_teacher_forcing(x, prev, U, W, b, V, c, lengths):
    """Fig. 10.4 with teacher forcing: a(t) = b + W onehot(prev(t)) + U x(t), h = tanh(a),
    o = c + V h; prev (tau, N) int64 is y(t-1) (-1: nothing fed). Returns h, o (0 past lengths)."""
    tau, n, _ = x.shape
    h = np.zeros((tau, n, U.shape[0]), x.dtype)
    o = np.zeros((tau, n, V.shape[0]), x.dtype)
    for t in range(tau):
        live = (t < lengths)[:, None]
        a = b + _feedback_term(W, prev[t]) + x[t] @ U.T
        h[t] = np.where(live, np.tanh(a), 0)
        o[t] = np.where(live, c + h[t] @ V.T, 0)
    return h, o


@register_kernel("rnn_teacher_forcing_backward", "default", "numpy")
def rnn_teacher_forcing_backward(x, prev, h, U, W, V, grad_o, lengths):
    """Gradients of fig. 10.4 under teacher forcing: no gradient crosses time steps.
    Returns dU, dW (n_h, n_out), db, dV, dc."""
    tau = x.shape[0]
    dU, dW, dV = np.zeros_like(U), np.zeros_like(W), np.zeros_like(V)
    db, dc = np.zeros(U.shape[0], x.dtype), np.zeros(V.shape[0], x.dtype)
    for t in range(tau):
        live = (t < lengths)[:, None]
        go = np.where(live, grad_o[t], 0)
        da = (1 - h[t] ** 2) * (go @ V)            # dL/da(t) = diag(1 - h(t)^2) V^T dL/do(t)
        dV += go.T @ h[t]
        dc += go.sum(0)
        db += da.sum(0)
        dU += da.T @ x[t]
        fed = prev[t] >= 0
        np.add.at(dW.T, prev[t][fed], da[fed])     # dW[:, y(t-1)] += dL/da(t)
    return dU, dW, db, dV, dc


def _softmax(o):
    z = o.astype(np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _choose(p, u):
    """argmax of p per row (u None) or the class whose cumulative probability first exceeds u."""
    if u is None:
        return np.argmax(p, axis=1)
    cum = np.cumsum(p, axis=1)
    k = (cum <= (u * cum[:, -1])[:, None]).sum(axis=1)
    return np.minimum(k, p.shape[1] - 1)


@register_kernel("rnn_generate", "default", "numpy")
def rnn_generate(x, U, W, b, V, c, y0, u):
    """Free-running generation of fig. 10.4: the model's own choice y_hat(t-1) is fed back.
    y0 (N,) start classes (-1: none); u (tau, N) uniforms for sampling, or None for argmax.
    Returns tokens (tau, N) int64, o (tau, N, n_out)."""
    tau, n, _ = x.shape
    tokens = np.zeros((tau, n), np.int64)
    o = np.zeros((tau, n, V.shape[0]), x.dtype)
    prev = y0.copy()
    for t in range(tau):
        a = b + _feedback_term(W, prev) + x[t] @ U.T
        ht = np.tanh(a)
        o[t] = c + ht @ V.T
        prev = _choose(_softmax(o[t]), None if u is None else u[t])
        tokens[t] = prev
    return tokens, o
