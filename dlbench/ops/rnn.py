"""Recurrent networks of chapter 10 (sections 10.1-10.2.2): forward, loss, BPTT, teacher forcing.

Layout is time-major, like ``torch.nn.RNN``: ``x`` is (tau, N, n_in) for tau time steps and a
batch of N sequences. Parameters follow the book (eq. 10.8-10.11), column-vector convention:

    U (n_h, n_in)   input -> hidden        b (n_h,)    hidden bias
    W (n_h, n_h)    hidden -> hidden       c (n_out,)  output bias
    V (n_out, n_h)  hidden -> output       h0 (N, n_h) initial state h(0) (zeros by default)

so ``U``/``W``/``V``/``b + c`` are torch's ``weight_ih_l0``/``weight_hh_l0``/``Linear.weight``/
``bias_ih_l0 + bias_hh_l0``. ``lengths`` (N,) gives each sequence's length L_i <= tau: steps
t >= L_i are padding: their h and o are 0, they add nothing to the loss or to any gradient, and
each sequence's last state ``h_last[i] = h(L_i)``, so a padded batch gives exactly what running
each sequence alone gives. float32 (default) and float64; every array of a call shares one dtype.

Functions (each dispatches to the kernel registered for ``(op, algorithm, backend)``; backends
numpy = the reference, numba, cython, numba-cuda):

- :func:`rnn_forward` (eq. 10.8-10.11) and :func:`rnn_backward` (BPTT, eq. 10.17-10.21, with the
  parameter gradients, h(0)'s gradient and optional truncation);
- :func:`rnn_nll`: the loss of eq. 10.12-10.14 and its gradient eq. 10.18;
- :func:`rnn_loss_and_grads`: forward + loss + BPTT (+ clipping by norm) in one call;
- :func:`rnn_teacher_forcing` / :func:`rnn_teacher_forcing_backward`: the output-recurrent network
  of fig. 10.4 trained with teacher forcing (10.2.1, eq. 10.15-10.16); :func:`rnn_generate`: its
  free-running (open-loop) generation;
- :func:`rnn_seq2one`: the sequence-to-one network of fig. 10.5 (one output at the end);
- :func:`rnn_clip_grads`: gradient clipping by norm (8.2.4 / 10.11.1) of a set of gradients.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dlbench.ops._common import check_float_dtypes
from dlbench.registry import define_op, get_kernel

__all__ = ["RNNForward", "RNNGrads", "RNNLoss", "rnn_init", "rnn_forward", "rnn_backward", "rnn_nll",
           "rnn_loss_and_grads", "rnn_teacher_forcing", "rnn_teacher_forcing_backward",
           "rnn_teacher_forcing_loss_and_grads", "rnn_generate", "rnn_seq2one", "rnn_clip_grads",
           "rnn_activation_bytes"]


# ----------------------------------------------------------------------------------------------
# FLOP and byte models (params: hidden, batch, n_in, n_out, tau; tanh and exp count as one FLOP)

def _isz(dtype) -> int:
    return np.dtype(dtype).itemsize


def _param_count(hidden, n_in, n_out):
    return hidden * n_in + hidden * hidden + hidden + n_out * hidden + n_out


def _forward_flops(hidden, batch, n_in, tau, n_out=0, **_):
    per = 2 * hidden * (n_in + hidden) + 3 * hidden + 2 * n_out * hidden + n_out
    return float(tau * batch * per)


def _nll_flops(batch, tau, n_out, **_):
    return float(5 * tau * batch * n_out)


def _backward_flops(hidden, batch, n_in, tau, n_out=0, **_):
    per = 4 * n_out * hidden + n_out + 4 * hidden * hidden + 2 * hidden * n_in + 5 * hidden
    return float(tau * batch * per)


def _forward_bytes(hidden, batch, n_in, tau, n_out=0, dtype="float32", **_):
    return float(_isz(dtype) * (tau * batch * (n_in + hidden + n_out) + _param_count(hidden, n_in, n_out)))


def _backward_bytes(hidden, batch, n_in, tau, n_out=0, dtype="float32", **_):
    params = _param_count(hidden, n_in, n_out)
    return float(_isz(dtype) * (tau * batch * (n_in + hidden + n_out) + 2 * params))


def _train_flops(**p):
    return _forward_flops(**p) + _nll_flops(**p) + _backward_flops(**p)


def _train_bytes(hidden, batch, n_in, tau, n_out=0, dtype="float32", **_):
    # read x and the targets, write and read back the stored activations h, params and grads
    return float(_isz(dtype) * (tau * batch * (n_in + 2 * hidden) + 2 * _param_count(hidden, n_in, n_out))
                 + 8 * tau * batch)


define_op("rnn_forward", flops=_forward_flops, bytes=_forward_bytes,
          description="vanilla RNN forward over a padded batch: h(t), o(t)", equation="eq. 10.8-10.11")
define_op("rnn_backward", flops=_backward_flops, bytes=_backward_bytes,
          description="back-propagation through time: dU, dW, db, dV, dc, dh(0)", equation="eq. 10.17-10.21")
define_op("rnn_nll", flops=_nll_flops,
          bytes=lambda batch, tau, n_out, dtype="float32", **_: float(2 * _isz(dtype) * tau * batch * n_out
                                                                         + 8 * tau * batch),
          description="softmax negative log-likelihood summed over time and its gradient",
          equation="eq. 10.12-10.14, 10.18")
define_op("rnn_forward_backward", flops=_train_flops, bytes=_train_bytes,
          description="forward + NLL + BPTT (one training step's gradients)", equation="eq. 10.8-10.21")
define_op("rnn_teacher_forcing", flops=_forward_flops, bytes=_forward_bytes,
          description="output-recurrent RNN (fig. 10.4) with teacher forcing",
          equation="10.2.1, eq. 10.15-10.16")
define_op("rnn_teacher_forcing_backward", flops=_backward_flops, bytes=_backward_bytes,
          description="gradients of the teacher-forced output-recurrent RNN", equation="10.2.1, fig. 10.4")
define_op("rnn_generate", flops=_forward_flops, bytes=_forward_bytes,
          description="free-running generation of the output-recurrent RNN", equation="fig. 10.4, 10.2.1")


# ----------------------------------------------------------------------------------------------
# results


class RNNForward(NamedTuple):
    """h: (tau, N, n_h) states h(1..tau); o: (tau, N, n_out) outputs or None; h_last: (N, n_h) = h(L_i)."""

    h: np.ndarray
    o: np.ndarray | None
    h_last: np.ndarray | None


class RNNGrads(NamedTuple):
    """Gradients of the loss with respect to each parameter (same shapes; None where absent)."""

    U: np.ndarray
    W: np.ndarray
    b: np.ndarray
    V: np.ndarray | None
    c: np.ndarray | None
    h0: np.ndarray | None


class RNNLoss(NamedTuple):
    """loss (float, summed over steps and sequences), grads, the forward result, and the gradients'
    global L2 norm before clipping."""

    loss: float
    grads: RNNGrads
    forward: RNNForward
    grad_norm: float


# ----------------------------------------------------------------------------------------------
# validation


def _arr(a, name, ndim):
    a = np.asarray(a)
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    return np.ascontiguousarray(a)


def _lengths(lengths, tau: int, n: int) -> np.ndarray:
    if lengths is None:
        return np.full(n, tau, dtype=np.int64)
    lens = np.asarray(lengths)
    if lens.shape != (n,):
        raise ValueError(f"lengths must have shape ({n},) (one per sequence), got {lens.shape}")
    if lens.dtype.kind not in "iu":
        if lens.dtype.kind == "f" and np.all(lens == np.round(lens)):
            lens = lens.astype(np.int64)
        else:
            raise ValueError(f"lengths must be integers, got {lens.dtype}")
    lens = lens.astype(np.int64)
    if lens.size and lens.max() > tau:
        raise ValueError(f"lengths longer than the sequence: max length {int(lens.max())} > tau = {tau}")
    if lens.size and lens.min() < 0:
        raise ValueError(f"lengths must be >= 0, got {int(lens.min())}")
    return np.ascontiguousarray(lens)


def _targets(y, tau: int, n: int, n_out: int, name="y") -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (tau, n):
        raise ValueError(f"{name} must have shape (tau, N) = ({tau}, {n}) of class indices, got {y.shape}")
    if y.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer class indices, got {y.dtype}")
    y = np.ascontiguousarray(y, dtype=np.int64)
    if y.size and (y.min() < 0 or y.max() >= n_out):
        raise ValueError(f"{name} class indices must lie in [0, {n_out}), got [{y.min()}, {y.max()}]")
    return y


class _Shapes(NamedTuple):
    tau: int
    n: int
    n_in: int
    n_h: int
    n_out: int
    dtype: np.dtype


def _check_params(x, U, W, b, V, c, h0, *, w_cols: str = "hidden"):
    """Validate shapes and dtypes; returns the normalised arrays and the sizes.

    w_cols: "hidden" (W is n_h x n_h, eq. 10.8) or "output" (W is n_h x n_out, fig. 10.4).
    """
    x = _arr(x, "x (tau, N, n_in)", 3)
    U = _arr(U, "U (n_h, n_in)", 2)
    W = _arr(W, "W", 2)
    tau, n, n_in = x.shape
    n_h = U.shape[0]
    if U.shape[1] != n_in:
        raise ValueError(f"U is {U.shape} but x has n_in = {n_in} features: U must be (n_h, {n_in})")
    b = np.zeros(n_h, x.dtype) if b is None else _arr(b, "b (n_h,)", 1)  # None: not needed (backward)
    if b.shape != (n_h,):
        raise ValueError(f"hidden sizes disagree: U has n_h = {n_h} rows but b has shape {b.shape}")
    if V is not None:
        V = _arr(V, "V (n_out, n_h)", 2)
        if V.shape[1] != n_h:
            raise ValueError(f"hidden sizes disagree: U has n_h = {n_h} rows but V is {V.shape} "
                             f"(must be (n_out, {n_h}))")
        n_out = V.shape[0]
        c = np.zeros(n_out, x.dtype) if c is None else _arr(c, "c (n_out,)", 1)
        if c.shape != (n_out,):
            raise ValueError(f"output sizes disagree: V has n_out = {n_out} rows but c has shape {c.shape}")
    elif c is not None:
        raise ValueError("c given without V")
    else:
        n_out = 0
    want_w = (n_h, n_h) if w_cols == "hidden" else (n_h, n_out)
    if W.shape != want_w:
        what = "W (n_h, n_h)" if w_cols == "hidden" else "W (n_h, n_out) of the output recurrence"
        raise ValueError(f"hidden sizes disagree: U has n_h = {n_h} rows but W is {W.shape}; "
                         f"{what} must be {want_w}")
    if h0 is None:
        h0 = np.zeros((n, n_h), x.dtype)
    else:
        h0 = _arr(h0, "h0 (N, n_h)", 2)
        if h0.shape != (n, n_h):
            raise ValueError(f"h0 must be (N, n_h) = ({n}, {n_h}), got {h0.shape} (hidden sizes disagree?)")
    arrays = [x, U, W, b, h0] + ([V, c] if V is not None else [])
    names = ["x", "U", "W", "b", "h0"] + (["V", "c"] if V is not None else [])
    dt = check_float_dtypes(*arrays, names=names)
    if tau < 1 or n < 1:
        raise ValueError(f"x must hold at least one step and one sequence, got shape {x.shape}")
    return x, U, W, b, V, c, h0, _Shapes(tau, n, n_in, n_h, n_out, dt)


def _like(a, shape, name, dtype):
    if a is None:
        return None
    a = _arr(a, name, len(shape))
    if a.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {a.shape}")
    if a.dtype != dtype:
        raise ValueError(f"dtype mismatch: {name} is {a.dtype} but the parameters are {dtype}")
    return a


# ----------------------------------------------------------------------------------------------
# public API


def rnn_init(n_in: int, n_hidden: int, n_out: int, dtype="float32", seed=0,
             output_recurrent: bool = False) -> dict:
    """Parameters {U, W, b, V, c} drawn U(-1/sqrt(n_h), 1/sqrt(n_h)) like torch.nn.RNN (8.4).

    output_recurrent: W is (n_h, n_out) for the network of fig. 10.4 instead of (n_h, n_h).
    """
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(n_hidden)

    def u(*shape):
        return rng.uniform(-k, k, size=shape).astype(dtype)

    w_cols = n_out if output_recurrent else n_hidden
    return {"U": u(n_hidden, n_in), "W": u(n_hidden, w_cols), "b": u(n_hidden), "V": u(n_out, n_hidden),
            "c": u(n_out)}


def rnn_forward(x, U, W, b, V=None, c=None, h0=None, lengths=None, *, backend: str = "numba",
                algorithm: str = "default") -> RNNForward:
    """Vanilla RNN forward over a padded batch (eq. 10.8-10.11).

    a(t) = b + W h(t-1) + U x(t) (10.8); h(t) = tanh(a(t)) (10.9); o(t) = c + V h(t) (10.10);
    the softmax of eq. 10.11 is taken by :func:`rnn_nll`.
    x: (tau, N, n_in); U (n_h, n_in), W (n_h, n_h), b (n_h,), V (n_out, n_h) or None (no output
    layer), c (n_out,) or None (zeros); h0 (N, n_h) or None (zeros); lengths (N,) ints in [0, tau]
    or None (all tau). Returns :class:`RNNForward` (h, o, h_last); h and o are 0 past each length.
    The stored activations h are O(tau) memory: tau * N * n_h elements. ValueError on bad shapes.
    """
    x, U, W, b, V, c, h0, s = _check_params(x, U, W, b, V, c, h0)
    lens = _lengths(lengths, s.tau, s.n)
    kern = get_kernel("rnn_forward", algorithm, backend)
    h, o, h_last = kern(x, h0, U, W, b, V, c, lens)
    return RNNForward(h, o, h_last)


def rnn_backward(x, h, grad_o, U, W, V=None, h0=None, lengths=None, *, grad_h=None, grad_h_last=None,
                 truncate: int | None = None, backend: str = "numba", algorithm: str = "default") -> RNNGrads:
    """Back-propagation through time (eq. 10.17-10.21) from the stored activations ``h``.

    grad_o: (tau, N, n_out) = dL/do(t) (e.g. eq. 10.18 from :func:`rnn_nll`), or None without V.
    grad_h: optional extra dL/dh(t) (tau, N, n_h); grad_h_last: optional dL/dh(L_i) (N, n_h)
    (the sequence-to-one network, fig. 10.5). Recurrence, row form of 10.20-10.21:
    dL/dh(t) = V^T dL/do(t) + W^T diag(1 - h(t+1)^2) dL/dh(t+1); then
    dL/dc = sum_t dL/do(t), dL/db = sum_t diag(1 - h(t)^2) dL/dh(t),
    dL/dV = sum_t dL/do(t) h(t)^T, dL/dW = sum_t diag(1 - h(t)^2) dL/dh(t) h(t-1)^T,
    dL/dU = sum_t diag(1 - h(t)^2) dL/dh(t) x(t)^T, and dL/dh(0) = W^T diag(1 - h(1)^2) dL/dh(1).
    truncate=k: truncated BPTT, the gradient does not flow from step t+1 into h(t) when t is a
    positive multiple of k (the same as detaching the state every k steps); None: full BPTT.
    Padding steps (t >= L_i) contribute nothing, whatever grad_o holds there (h must be as
    rnn_forward returns it: 0 on padding steps).
    Returns :class:`RNNGrads` (U, W, b, V, c, h0); V and c are None without V.
    """
    x, U, W, _b, V, _c, h0, s = _check_params(x, U, W, None, V, None, h0)
    lens = _lengths(lengths, s.tau, s.n)
    h = _like(h, (s.tau, s.n, s.n_h), "h (tau, N, n_h)", s.dtype)
    if h is None:
        raise ValueError("h (the stored forward activations) is required")
    if V is not None:
        if grad_o is None:
            raise ValueError("grad_o is required when V is given")
        grad_o = _like(grad_o, (s.tau, s.n, s.n_out), "grad_o (tau, N, n_out)", s.dtype)
    elif grad_o is not None:
        raise ValueError("grad_o given without V")
    grad_h = _like(grad_h, (s.tau, s.n, s.n_h), "grad_h (tau, N, n_h)", s.dtype)
    grad_h_last = _like(grad_h_last, (s.n, s.n_h), "grad_h_last (N, n_h)", s.dtype)
    if truncate is not None and (int(truncate) != truncate or truncate < 1):
        raise ValueError(f"truncate must be a positive number of steps or None, got {truncate!r}")
    k = 0 if truncate is None or truncate >= s.tau else int(truncate)
    kern = get_kernel("rnn_backward", algorithm, backend)
    dU, dW, db, dV, dc, dh0 = kern(x, h, h0, U, W, V, grad_o, grad_h, grad_h_last, lens, k)
    return RNNGrads(dU, dW, db, dV, dc, dh0)


def rnn_nll(o, y, lengths=None, *, backend: str = "numba", algorithm: str = "default"):
    """Softmax negative log-likelihood summed over steps and sequences, and its gradient.

    L = sum_i sum_{t < L_i} -log softmax(o(t))_{y(t)} (eq. 10.11-10.14);
    dL/do(t) = softmax(o(t)) - onehot(y(t)) (eq. 10.18), 0 on padding steps.
    o: (tau, N, n_out) float; y: (tau, N) class indices (values on padding steps are ignored);
    lengths (N,) or None. Returns (loss: float, grad_o: array like o). The loss is accumulated in
    float64.
    """
    o = _arr(o, "o (tau, N, n_out)", 3)
    check_float_dtypes(o, names=["o"])
    tau, n, n_out = o.shape
    lens = _lengths(lengths, tau, n)
    yy = np.asarray(y)
    if yy.shape == (tau, n) and yy.dtype.kind in "iu":
        yy = np.where(np.arange(tau)[:, None] < lens[None, :], yy, 0)   # padding labels are ignored
    y = _targets(yy, tau, n, n_out)
    kern = get_kernel("rnn_nll", algorithm, backend)
    loss, grad = kern(o, y, lens)
    return float(loss), grad


def rnn_clip_grads(grads, max_norm: float | None, *, backend: str = "numpy"):
    """Gradient clipping by norm (8.2.4, 10.11.1): if ||g|| > v then g <- g v / ||g||.

    grads: an :class:`RNNGrads` (or a list of arrays/None); ||g|| is the L2 norm over all of them
    together. max_norm None: no clipping. Returns (clipped copy of the same type, norm before
    clipping); the inputs are not modified, non-finite norms leave them unscaled. Runs
    ``dlbench.optim.clip_grad_norm`` on ``backend`` (numpy, numba, cython; others use numpy).
    """
    if max_norm is not None and not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    arrays = [g for g in grads if g is not None]
    if max_norm is None:
        return grads, _global_norm(arrays)
    clipped = [None if g is None else g.copy() for g in grads]
    live = [g for g in clipped if g is not None]
    try:
        from dlbench.optim import clip_grad_norm
    except ImportError:  # pragma: no cover - the optimizers package is optional here
        clip_grad_norm = None
    if clip_grad_norm is not None:
        norm = clip_grad_norm(live, max_norm, backend=backend if backend in ("numpy", "numba", "cython")
                              else "numpy")
    else:  # pragma: no cover
        norm = _global_norm(live)
        if np.isfinite(norm) and norm > max_norm:
            for g in live:
                g *= g.dtype.type(max_norm / norm)
    return (RNNGrads(*clipped) if isinstance(grads, RNNGrads) else clipped), float(norm)


def _global_norm(arrays) -> float:
    return float(np.sqrt(sum(float(np.sum(np.square(a, dtype=np.float64))) for a in arrays)))


def rnn_loss_and_grads(x, y, U, W, b, V, c, h0=None, lengths=None, *, truncate: int | None = None,
                       clip: float | None = None, backend: str = "numba",
                       algorithm: str = "default") -> RNNLoss:
    """One training step's loss and gradients: forward (10.8-10.11), NLL (10.12-10.14), BPTT
    (10.17-10.21), then clipping by norm when ``clip`` is given. y: (tau, N) class indices.
    Returns :class:`RNNLoss` (loss, grads, forward, grad_norm before clipping).
    """
    fwd = rnn_forward(x, U, W, b, V, c, h0, lengths, backend=backend, algorithm=algorithm)
    loss, grad_o = rnn_nll(fwd.o, y, lengths, backend=backend)
    grads = rnn_backward(x, fwd.h, grad_o, U, W, V, h0, lengths, truncate=truncate, backend=backend,
                         algorithm=algorithm)
    grads, norm = rnn_clip_grads(grads, clip, backend=backend)
    return RNNLoss(loss, grads, fwd, norm)


def _feedback(y, y0, tau, n, n_out):
    """prev[t] = the class fed back at step t: y0 (or -1: nothing) at t = 0, y(t-1) after."""
    prev = np.empty((tau, n), np.int64)
    prev[0] = _start(y0, n, n_out)
    prev[1:] = y[:-1]
    return prev


def _start(y0, n, n_out):
    if y0 is None:
        return np.full(n, -1, np.int64)
    y0 = np.broadcast_to(np.asarray(y0), (n,))
    if y0.dtype.kind not in "iu" or y0.min() < -1 or y0.max() >= n_out:
        raise ValueError(f"y0 must be class indices in [0, {n_out}) or -1 (no feedback), got {y0}")
    return np.ascontiguousarray(y0, dtype=np.int64)


def rnn_teacher_forcing(x, y, U, W, b, V, c=None, lengths=None, y0=None, *, backend: str = "numba",
                        algorithm: str = "default") -> RNNForward:
    """Output-recurrent network of fig. 10.4 under teacher forcing (10.2.1, eq. 10.15-10.16).

    The state is fed by the previous *output*, and during training the true output y(t-1) is
    fed instead of o(t-1) (as a one-hot vector): a(t) = b + W onehot(y(t-1)) + U x(t),
    h(t) = tanh(a(t)), o(t) = c + V h(t). Nothing is fed at t = 1 unless y0 (a start class per
    sequence) is given. x: (tau, N, n_in); y: (tau, N) class indices; U (n_h, n_in),
    W (n_h, n_out), b (n_h,), V (n_out, n_h), c (n_out,). Returns RNNForward (h, o, h_last=None).
    Because the targets replace the recurrence, the time steps are independent (parallel).
    """
    if V is None:
        raise ValueError("the output-recurrent network needs V (its output feeds back)")
    x, U, W, b, V, c, _h0, s = _check_params(x, U, W, b, V, c, None, w_cols="output")
    lens = _lengths(lengths, s.tau, s.n)
    y = _targets(y, s.tau, s.n, s.n_out)
    prev = _feedback(y, y0, s.tau, s.n, s.n_out)
    kern = get_kernel("rnn_teacher_forcing", algorithm, backend)
    h, o = kern(x, prev, U, W, b, V, c, lens)
    return RNNForward(h, o, None)


def rnn_teacher_forcing_backward(x, y, h, grad_o, U, W, V, lengths=None, y0=None, *, backend: str = "numba",
                                 algorithm: str = "default") -> RNNGrads:
    """Gradients of the teacher-forced output-recurrent network (fig. 10.4).

    With the targets fed back no gradient flows between time steps: per step
    dL/da(t) = diag(1 - h(t)^2) V^T dL/do(t), and dL/dW = sum_t dL/da(t) onehot(y(t-1))^T,
    dL/dU, dL/db, dL/dV, dL/dc as in eq. 10.21's parameter gradients. Returns RNNGrads with h0=None.
    """
    x, U, W, _b, V, _c, _h0, s = _check_params(x, U, W, None, V, None, None, w_cols="output")
    lens = _lengths(lengths, s.tau, s.n)
    y = _targets(y, s.tau, s.n, s.n_out)
    prev = _feedback(y, y0, s.tau, s.n, s.n_out)
    h = _like(h, (s.tau, s.n, s.n_h), "h (tau, N, n_h)", s.dtype)
    grad_o = _like(grad_o, (s.tau, s.n, s.n_out), "grad_o (tau, N, n_out)", s.dtype)
    if h is None or grad_o is None:
        raise ValueError("h and grad_o are required")
    kern = get_kernel("rnn_teacher_forcing_backward", algorithm, backend)
    dU, dW, db, dV, dc = kern(x, prev, h, U, W, V, grad_o, lens)
    return RNNGrads(dU, dW, db, dV, dc, None)


def rnn_teacher_forcing_loss_and_grads(x, y, U, W, b, V, c, lengths=None, y0=None, *,
                                       clip: float | None = None, backend: str = "numba",
                                       algorithm: str = "default") -> RNNLoss:
    """Teacher-forced training step of fig. 10.4: loss -sum_t log p(y(t) | y(t-1), x(1..t))
    (eq. 10.15-10.16 summed over t) and its gradients (optionally clipped by norm)."""
    fwd = rnn_teacher_forcing(x, y, U, W, b, V, c, lengths, y0, backend=backend, algorithm=algorithm)
    loss, grad_o = rnn_nll(fwd.o, y, lengths, backend=backend)
    grads = rnn_teacher_forcing_backward(x, y, fwd.h, grad_o, U, W, V, lengths, y0, backend=backend,
                                         algorithm=algorithm)
    grads, norm = rnn_clip_grads(grads, clip, backend=backend)
    return RNNLoss(loss, grads, fwd, norm)


def rnn_generate(x, U, W, b, V, c=None, y0=None, *, mode: str = "argmax", seed=None, backend: str = "numba",
                 algorithm: str = "default"):
    """Free-running (open-loop) generation with the output-recurrent network of fig. 10.4.

    The model's own output is fed back: a(t) = b + W onehot(y_hat(t-1)) + U x(t), h = tanh(a),
    o(t) = c + V h(t), y_hat(t) = argmax softmax(o(t)) (mode="argmax") or a draw from it
    (mode="sample", uniforms from ``np.random.default_rng(seed)``, identical on every backend).
    x: (tau, N, n_in) conditioning inputs (zeros for an unconditioned model). Returns
    (tokens (tau, N) int64, o (tau, N, n_out)).
    """
    if V is None:
        raise ValueError("generation needs V")
    x, U, W, b, V, c, _h0, s = _check_params(x, U, W, b, V, c, None, w_cols="output")
    start = _start(y0, s.n, s.n_out)
    if mode == "argmax":
        u = None
    elif mode == "sample":
        u = np.random.default_rng(seed).random((s.tau, s.n))
    else:
        raise ValueError(f"mode must be 'argmax' or 'sample', got {mode!r}")
    kern = get_kernel("rnn_generate", algorithm, backend)
    return kern(x, U, W, b, V, c, start, u)


def rnn_seq2one(x, y, U, W, b, V, c=None, h0=None, lengths=None, *, truncate: int | None = None,
                clip: float | None = None, backend: str = "numba", algorithm: str = "default"):
    """Sequence-to-one network of fig. 10.5: one output o = c + V h(L_i) at the end of each sequence.

    y: (N,) class per sequence. Loss L = -sum_i log softmax(o_i)_{y_i}; gradients by BPTT entering
    at h(L_i) (dL/dh(L_i) = V^T dL/do, then eq. 10.20-10.21 backwards). Returns (RNNLoss, o (N, n_out)).
    """
    fwd = rnn_forward(x, U, W, b, None, None, h0, lengths, backend=backend, algorithm=algorithm)
    V = np.ascontiguousarray(V)
    if V.ndim != 2 or V.shape[1] != fwd.h.shape[2]:
        raise ValueError(f"hidden sizes disagree: V is {V.shape} but n_h = {fwd.h.shape[2]}")
    c = np.zeros(V.shape[0], V.dtype) if c is None else np.asarray(c)
    check_float_dtypes(fwd.h, V, c, names=["x", "V", "c"])
    o = fwd.h_last @ V.T + c                                   # eq. 10.10 at the last step only
    loss, g = rnn_nll(o[None], np.asarray(y).reshape(1, -1), backend=backend)
    g = g[0]
    grad_h_last = g @ V                                        # eq. 10.19 at h(L_i)
    gr = rnn_backward(x, fwd.h, None, U, W, None, h0, lengths, grad_h_last=grad_h_last, truncate=truncate,
                      backend=backend, algorithm=algorithm)
    grads = RNNGrads(gr.U, gr.W, gr.b, g.T @ fwd.h_last, g.sum(0), gr.h0)
    grads, norm = rnn_clip_grads(grads, clip, backend=backend)
    return RNNLoss(loss, grads, fwd, norm), o


def rnn_activation_bytes(tau: int, batch: int, hidden: int, n_out: int = 0, dtype="float32") -> int:
    """Bytes of the activations a forward pass stores for BPTT: h (tau*N*n_h) and o (tau*N*n_out)."""
    return int(tau * batch * (hidden + n_out) * _isz(dtype))
