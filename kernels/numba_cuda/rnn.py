"""numba.cuda kernels of the chapter-10 recurrent networks (eq. 10.8-10.21, fig. 10.4).

Same structure as the CPU backends: one tiled GEMM launch for each product over all time steps
(U x(t), V h(t), V^T dL/do(t), dL/dV, dL/dW, dL/dU), and per time step one GEMM launch with W
plus one element-wise launch (bias + tanh + masking forward, (1 - h^2) masking backward).
Inputs may be NumPy arrays (copied in, results copied back: host-to-host) or device arrays
(numba device arrays or any ``__cuda_array_interface__`` object: results stay on the device).
Under the simulator (NUMBA_ENABLE_CUDASIM=1) blocks are small (4x4 GEMM tiles, 8 threads) so
that tests stay fast.
"""

import math
import os

import numpy as np
from dlbench.kernels.numba_cuda._util import is_device_array, launch_1d
from numba import cuda, float32, float64

from dlbench.registry import register_kernel

_SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
TILE = 4 if _SIMULATOR else 16              # GEMM tile edge (threads per block = TILE^2)
THREADS = 8 if _SIMULATOR else 256          # threads per block of the element-wise launches


def _make_gemm(dt):
    @cuda.jit(cache=False)
    def gemm(a, b, c, ta, tb, beta):
        """c (m, n) = op(a) @ op(b) + beta c; op(x) = x.T when the flag is set. Shared-memory tiles."""
        sa = cuda.shared.array((TILE, TILE), dt)
        sb = cuda.shared.array((TILE, TILE), dt)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        row = cuda.blockIdx.y * TILE + ty
        col = cuda.blockIdx.x * TILE + tx
        m, n = c.shape
        k = a.shape[0] if ta else a.shape[1]
        acc = dt(0)
        for k0 in range(0, k, TILE):
            kk = k0 + tx
            if row < m and kk < k:
                sa[ty, tx] = a[kk, row] if ta else a[row, kk]
            else:
                sa[ty, tx] = 0
            kk = k0 + ty
            if col < n and kk < k:
                sb[ty, tx] = b[col, kk] if tb else b[kk, col]
            else:
                sb[ty, tx] = 0
            cuda.syncthreads()
            for q in range(TILE):
                acc += sa[ty, q] * sb[q, tx]
            cuda.syncthreads()
        if row < m and col < n:
            if beta != 0:
                c[row, col] = acc + beta * c[row, col]
            else:
                c[row, col] = acc

    return gemm


_GEMM = {np.dtype(np.float32): _make_gemm(float32), np.dtype(np.float64): _make_gemm(float64)}


def _mm(a, b, c, trans_a=False, trans_b=False, beta=0.0):
    """Device c = op(a) @ op(b) + beta c (2-D device arrays of one dtype)."""
    m, n = c.shape
    grid = ((n + TILE - 1) // TILE, (m + TILE - 1) // TILE)
    kern = _GEMM[np.dtype(c.dtype)]
    kern[grid, (TILE, TILE)](a, b, c, int(trans_a), int(trans_b), c.dtype.type(beta))


@cuda.jit(cache=False)
def _forward_step(h, tmp, b, lengths, t, h_last):
    """h(t) = tanh(U x(t) + b + h(t-1) W^T) on live rows (eq. 10.8-10.9), 0 on padding."""
    n, n_h = tmp.shape
    for idx in range(cuda.grid(1), n * n_h, cuda.gridsize(1)):
        i = idx // n_h
        j = idx - i * n_h
        if t < lengths[i]:
            v = math.tanh(h[t, i, j] + b[j] + tmp[i, j])
            h[t, i, j] = v
            if t == lengths[i] - 1:
                h_last[i, j] = v
        else:
            h[t, i, j] = 0


@cuda.jit(cache=False)
def _backward_step(da, h, carry, lengths, ghl, has_last, t):
    """dL/da(t) = (1 - h(t)^2)(V^T dL/do(t) + carry [+ dL/dh(L_i)]) on live rows (eq. 10.20-10.21)."""
    n, n_h = carry.shape
    for idx in range(cuda.grid(1), n * n_h, cuda.gridsize(1)):
        i = idx // n_h
        j = idx - i * n_h
        if t < lengths[i]:
            g = da[t, i, j] + carry[i, j]
            if has_last and t == lengths[i] - 1:
                g += ghl[i, j]
            hv = h[t, i, j]
            da[t, i, j] = (1 - hv * hv) * g
        else:
            da[t, i, j] = 0


@cuda.jit(cache=False)
def _add_rows(dst, src, mask_len, lengths):
    """dst[i, j] += src[i, j] where lengths[i] == mask_len (h(0)'s gradient for empty sequences)."""
    n, n_h = dst.shape
    for idx in range(cuda.grid(1), n * n_h, cuda.gridsize(1)):
        i = idx // n_h
        if lengths[i] == mask_len:
            dst[i, idx - i * n_h] += src[i, idx - i * n_h]


@cuda.jit(cache=False)
def _add(dst, src):
    m, n = dst.shape
    for idx in range(cuda.grid(1), m * n, cuda.gridsize(1)):
        dst[idx // n, idx % n] += src[idx // n, idx % n]


@cuda.jit(cache=False)
def _fill(a2, value):
    m, n = a2.shape
    for idx in range(cuda.grid(1), m * n, cuda.gridsize(1)):
        a2[idx // n, idx % n] = value


@cuda.jit(cache=False)
def _bias_mask(o, c, lengths):
    tau, n, k = o.shape
    for idx in range(cuda.grid(1), tau * n * k, cuda.gridsize(1)):
        t = idx // (n * k)
        r = idx - t * n * k
        i = r // k
        j = r - i * k
        if t < lengths[i]:
            o[t, i, j] += c[j]
        else:
            o[t, i, j] = 0


@cuda.jit(cache=False)
def _masked_colsum(a, lengths, out):
    """out[j] = sum over live (t, i) of a[t, i, j]: one thread per column."""
    tau, n, k = a.shape
    for j in range(cuda.grid(1), k, cuda.gridsize(1)):
        acc = a[0, 0, j] * 0
        for t in range(tau):
            for i in range(n):
                if t < lengths[i]:
                    acc += a[t, i, j]
        out[j] = acc


@cuda.jit(cache=False)
def _nll_rows(o, y, lengths, grad, loss_rows):
    """Per (t, i) row: softmax, -log p(y), grad = softmax - onehot (eq. 10.11-10.14, 10.18)."""
    tau, n, k = o.shape
    for r in range(cuda.grid(1), tau * n, cuda.gridsize(1)):
        t = r // n
        i = r - t * n
        if t >= lengths[i]:
            for j in range(k):
                grad[t, i, j] = 0
            loss_rows[r] = 0.0
            continue
        m = o[t, i, 0]
        for j in range(1, k):
            m = max(m, o[t, i, j])
        s = 0.0
        for j in range(k):
            s += math.exp(o[t, i, j] - m)
        for j in range(k):
            grad[t, i, j] = math.exp(o[t, i, j] - m) / s
        grad[t, i, y[t, i]] -= 1
        loss_rows[r] = math.log(s) + m - o[t, i, y[t, i]]


@cuda.jit(cache=False)
def _tf_activate(h, prev, Wt, b, lengths):
    tau, n, n_h = h.shape
    for idx in range(cuda.grid(1), tau * n * n_h, cuda.gridsize(1)):
        t = idx // (n * n_h)
        r = idx - t * n * n_h
        i = r // n_h
        j = r - i * n_h
        if t < lengths[i]:
            a = h[t, i, j] + b[j]
            if prev[t, i] >= 0:
                a += Wt[prev[t, i], j]
            h[t, i, j] = math.tanh(a)
        else:
            h[t, i, j] = 0


@cuda.jit(cache=False)
def _tf_backward(da, h, prev, lengths, dWt):
    tau, n, n_h = h.shape
    for idx in range(cuda.grid(1), tau * n * n_h, cuda.gridsize(1)):
        t = idx // (n * n_h)
        r = idx - t * n * n_h
        i = r // n_h
        j = r - i * n_h
        if t < lengths[i]:
            hv = h[t, i, j]
            g = (1 - hv * hv) * da[t, i, j]
            da[t, i, j] = g
            if prev[t, i] >= 0:
                cuda.atomic.add(dWt, (prev[t, i], j), g)
        else:
            da[t, i, j] = 0


@cuda.jit(cache=False)
def _gen_activate(a_in, t, Wt, b, prev, hbuf):
    n, n_h = hbuf.shape
    for idx in range(cuda.grid(1), n * n_h, cuda.gridsize(1)):
        i = idx // n_h
        j = idx - i * n_h
        a = a_in[t, i, j] + b[j]
        if prev[i] >= 0:
            a += Wt[prev[i], j]
        hbuf[i, j] = math.tanh(a)


@cuda.jit(cache=False)
def _gen_choose(o, t, c, u, sample, prev, tokens):
    """One thread per sequence: o(t) += c, then argmax or the inverse-CDF draw at u."""
    n, k = o.shape[1], o.shape[2]
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        best = 0
        for j in range(k):
            o[t, i, j] += c[j]
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


# ---------------------------------------------------------------------------------------------
# host side


class _Io:
    """Device views of the inputs; outputs come back to the host when the inputs were host arrays."""

    def __init__(self, first):
        self.host = not is_device_array(first)

    def dev(self, a):
        if a is None:
            return None
        if is_device_array(a):
            return cuda.as_cuda_array(a)
        return cuda.to_device(np.ascontiguousarray(a))

    def out(self, d):
        if d is None or not self.host:
            return d
        return d.copy_to_host()


def _launch(n):
    return launch_1d(max(int(n), 1), threads=THREADS)


def _flat(a, rows):
    return a.reshape(rows, a.size // rows)


def _zeros(shape, dtype):
    return cuda.to_device(np.zeros(shape, dtype))


def _colsum(a, lengths, k):
    out = cuda.device_array(k, a.dtype)
    _masked_colsum[_launch(k)](a, lengths, out)
    return out


def _output_projection(dh, dV, dc, dlen):
    tau, n, n_h = dh.shape
    o = cuda.device_array((tau, n, dV.shape[0]), dh.dtype)
    _mm(_flat(dh, tau * n), dV, _flat(o, tau * n), trans_b=True)
    _bias_mask[_launch(o.size)](o, dc, dlen)
    return o


@register_kernel("rnn_forward", "default", "numba-cuda")
def rnn_forward(x, h0, U, W, b, V, c, lengths):
    """Eq. 10.8-10.10 on the GPU: GEMM for U x(t), per step a GEMM with W and a tanh launch,
    GEMM for V h(t). Returns h, o (or None), h_last."""
    io = _Io(x)
    dx, dh0, dU, dW, db, dlen = (io.dev(a) for a in (x, h0, U, W, b, lengths))
    tau, n, n_in = dx.shape
    n_h = dU.shape[0]
    dh = cuda.device_array((tau, n, n_h), dx.dtype)
    _mm(_flat(dx, tau * n), dU, _flat(dh, tau * n), trans_b=True)
    tmp = cuda.device_array((n, n_h), dx.dtype)
    h_last = cuda.device_array((n, n_h), dx.dtype)
    h_last.copy_to_device(dh0)
    for t in range(tau):
        _mm(dh0 if t == 0 else dh[t - 1], dW, tmp, trans_b=True)
        _forward_step[_launch(n * n_h)](dh, tmp, db, dlen, t, h_last)
    o = None if V is None else _output_projection(dh, io.dev(V), io.dev(c), dlen)
    return io.out(dh), io.out(o), io.out(h_last)


@register_kernel("rnn_backward", "default", "numba-cuda")
def rnn_backward(x, h, h0, U, W, V, grad_o, grad_h, grad_h_last, lengths, truncate):
    """BPTT (eq. 10.17-10.21) on the GPU: GEMM for V^T dL/do(t), per step an element-wise launch
    and a GEMM with W (backwards in t), then one GEMM per parameter gradient over all t."""
    io = _Io(x)
    dx, dh, dh0, dW_, dlen = (io.dev(a) for a in (x, h, h0, W, lengths))
    tau, n, n_h = dh.shape
    rows = tau * n
    da = cuda.device_array((tau, n, n_h), dh.dtype)
    if V is not None:
        dV_, dgo = io.dev(V), io.dev(grad_o)
        _mm(_flat(dgo, rows), dV_, _flat(da, rows))
        if grad_h is not None:
            _add[_launch(rows * n_h)](_flat(da, rows), _flat(io.dev(grad_h), rows))
    elif grad_h is not None:
        da.copy_to_device(io.dev(grad_h))
    else:
        _fill[_launch(rows * n_h)](_flat(da, rows), 0.0)
    has_last = grad_h_last is not None
    ghl = io.dev(grad_h_last) if has_last else _zeros((1, 1), dh.dtype)
    carry = _zeros((n, n_h), dh.dtype)
    for t in range(tau - 1, -1, -1):
        _backward_step[_launch(n * n_h)](da, dh, carry, dlen, ghl, has_last, t)
        if t > 0 and truncate > 0 and t % truncate == 0:
            _fill[_launch(n * n_h)](carry, 0.0)
        else:
            _mm(da[t], dW_, carry)
    if has_last:
        _add_rows[_launch(n * n_h)](carry, ghl, 0, dlen)
    dUg = cuda.device_array(U.shape, dh.dtype)
    _mm(_flat(da, rows), _flat(dx, rows), dUg, trans_a=True)
    dWg = cuda.device_array((n_h, n_h), dh.dtype)
    _mm(da[0], dh0, dWg, trans_a=True)
    if tau > 1:
        _mm(_flat(da, rows)[n:], _flat(dh, rows)[:rows - n], dWg, trans_a=True, beta=1.0)
    dbg = _colsum(da, dlen, n_h)
    dVg = dcg = None
    if V is not None:
        dVg = cuda.device_array(dV_.shape, dh.dtype)
        _mm(_flat(dgo, rows), _flat(dh, rows), dVg, trans_a=True)
        dcg = _colsum(dgo, dlen, dgo.shape[2])
    return tuple(io.out(a) for a in (dUg, dWg, dbg, dVg, dcg, carry))


@register_kernel("rnn_nll", "default", "numba-cuda")
def rnn_nll(o, y, lengths):
    """Eq. 10.11-10.14 and 10.18, one thread per (t, i) row; the loss is summed on the host."""
    io = _Io(o)
    do, dy, dlen = io.dev(o), io.dev(y), io.dev(lengths)
    tau, n, _ = do.shape
    grad = cuda.device_array(do.shape, do.dtype)
    rows = cuda.device_array(tau * n, np.float64)
    _nll_rows[_launch(tau * n)](do, dy, dlen, grad, rows)
    return float(rows.copy_to_host().sum()), io.out(grad)


@register_kernel("rnn_teacher_forcing", "default", "numba-cuda")
def rnn_teacher_forcing(x, prev, U, W, b, V, c, lengths):
    """Fig. 10.4 under teacher forcing: GEMM, gather + tanh launch, GEMM. Returns h, o."""
    io = _Io(x)
    dx, dprev, dU, db, dlen = (io.dev(a) for a in (x, prev, U, b, lengths))
    Wt = io.dev(np.ascontiguousarray(W.T)) if io.host else _transpose(io.dev(W))
    tau, n, n_in = dx.shape
    n_h = dU.shape[0]
    dh = cuda.device_array((tau, n, n_h), dx.dtype)
    _mm(_flat(dx, tau * n), dU, _flat(dh, tau * n), trans_b=True)
    _tf_activate[_launch(dh.size)](dh, dprev, Wt, db, dlen)
    o = _output_projection(dh, io.dev(V), io.dev(c), dlen)
    return io.out(dh), io.out(o)


def _transpose(d):
    return cuda.to_device(np.ascontiguousarray(d.copy_to_host().T))


@register_kernel("rnn_teacher_forcing_backward", "default", "numba-cuda")
def rnn_teacher_forcing_backward(x, prev, h, U, W, V, grad_o, lengths):
    """Gradients of fig. 10.4 under teacher forcing (atomic scatter-add for W). dU, dW, db, dV, dc."""
    io = _Io(x)
    dx, dprev, dh, dV_, dgo, dlen = (io.dev(a) for a in (x, prev, h, V, grad_o, lengths))
    tau, n, n_h = dh.shape
    rows = tau * n
    da = cuda.device_array((tau, n, n_h), dh.dtype)
    _mm(_flat(dgo, rows), dV_, _flat(da, rows))
    dWt = _zeros((W.shape[1], n_h), dh.dtype)
    _tf_backward[_launch(da.size)](da, dh, dprev, dlen, dWt)
    dUg = cuda.device_array(U.shape, dh.dtype)
    _mm(_flat(da, rows), _flat(dx, rows), dUg, trans_a=True)
    dVg = cuda.device_array(dV_.shape, dh.dtype)
    _mm(_flat(dgo, rows), _flat(dh, rows), dVg, trans_a=True)
    dbg = _colsum(da, dlen, n_h)
    dcg = _colsum(dgo, dlen, dgo.shape[2])
    dW = np.ascontiguousarray(dWt.copy_to_host().T)
    return io.out(dUg), dW if io.host else cuda.to_device(dW), io.out(dbg), io.out(dVg), io.out(dcg)


@register_kernel("rnn_generate", "default", "numba-cuda")
def rnn_generate(x, U, W, b, V, c, y0, u):
    """Free-running generation of fig. 10.4: per step a gather + tanh launch, a GEMM with V and a
    choice launch (one thread per sequence). Returns tokens (tau, N) int64, o (tau, N, n_out)."""
    io = _Io(x)
    dx, dU, db, dV_, dc = (io.dev(a) for a in (x, U, b, V, c))
    Wt = io.dev(np.ascontiguousarray(W.T)) if io.host else _transpose(io.dev(W))
    tau, n, n_in = dx.shape
    n_h = dU.shape[0]
    a_in = cuda.device_array((tau, n, n_h), dx.dtype)
    _mm(_flat(dx, tau * n), dU, _flat(a_in, tau * n), trans_b=True)
    prev = io.dev(np.array(y0, dtype=np.int64))
    sample = u is not None
    du = io.dev(u if sample else np.zeros((1, 1)))
    tokens = cuda.device_array((tau, n), np.int64)
    o = cuda.device_array((tau, n, dV_.shape[0]), dx.dtype)
    hbuf = cuda.device_array((n, n_h), dx.dtype)
    for t in range(tau):
        _gen_activate[_launch(n * n_h)](a_in, t, Wt, db, prev, hbuf)
        _mm(hbuf, dV_, o[t], trans_b=True)
        _gen_choose[_launch(n)](o, t, dc, du, sample, prev, tokens)
    return io.out(tokens), io.out(o)
