"""Recurrent networks (chapter 10): the reference against torch and finite differences, every CPU
backend against the reference, masking, teacher forcing, generation, clipping and bad input."""

import numpy as np
import pytest

from dlbench import ops
from dlbench.backends import backend_status

CPU_BACKENDS = [b for b in ("numba", "cython") if backend_status(b).available]
TOL = {"float32": 2e-5, "float64": 1e-11}


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def problem(dtype="float64", tau=7, n=4, n_in=3, n_h=5, k=4, seed=0, lengths=(7, 3, 5, 1),
            output_recurrent=False):
    rng = np.random.default_rng(seed)
    p = ops.rnn_init(n_in, n_h, k, dtype, seed=seed + 1, output_recurrent=output_recurrent)
    p["W"] *= 2.0  # a recurrence strong enough that BPTT matters
    x = rng.standard_normal((tau, n, n_in)).astype(dtype)
    y = rng.integers(0, k, (tau, n))
    h0 = (0.5 * rng.standard_normal((n, n_h))).astype(dtype)
    lens = None if lengths is None else np.array(lengths[:n])
    return p, x, y, h0, lens


# ---------------------------------------------------------------------------------------------
# the reference against torch (nn.RNN + Linear) and against finite differences


def torch_rnn(p, x, y, h0, lengths, truncate=None):
    """nn.RNN(tanh) + Linear + cross-entropy (sum over live steps), packed by length, float64.
    truncate=k: the state is detached every k steps (truncated BPTT)."""
    torch = pytest.importorskip("torch")
    tau, n, n_in = x.shape
    n_h, k = p["U"].shape[0], p["V"].shape[0]
    rnn = torch.nn.RNN(n_in, n_h, nonlinearity="tanh").double()
    lin = torch.nn.Linear(n_h, k).double()
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.tensor(p["U"]))
        rnn.weight_hh_l0.copy_(torch.tensor(p["W"]))
        rnn.bias_ih_l0.copy_(torch.tensor(p["b"]))
        rnn.bias_hh_l0.zero_()
        lin.weight.copy_(torch.tensor(p["V"]))
        lin.bias.copy_(torch.tensor(p["c"]))
    h0t = torch.tensor(h0, requires_grad=True)
    lens = torch.tensor(lengths)
    xt = torch.tensor(x)
    chunks, state, start = [], h0t[None], 0
    step = truncate or tau
    while start < tau:
        seg = xt[start:start + step]
        seg_len = (lens - start).clamp(0, seg.shape[0])
        live = seg_len > 0
        out = torch.zeros(seg.shape[0], n, n_h, dtype=torch.float64)
        new_state = state.clone()
        if live.any():
            idx = torch.nonzero(live)[:, 0]
            packed = torch.nn.utils.rnn.pack_padded_sequence(seg[:, idx], seg_len[idx], enforce_sorted=False)
            o_p, h_n = rnn(packed, state[:, idx])
            o_p, _ = torch.nn.utils.rnn.pad_packed_sequence(o_p, total_length=seg.shape[0])
            out = out.index_copy(1, idx, o_p)
            new_state = new_state.index_copy(1, idx, h_n)
        chunks.append(out)
        state = new_state.detach() if truncate else new_state
        start += step
    h = torch.cat(chunks)
    o = lin(h)
    mask = torch.arange(tau)[:, None] < lens[None]
    loss = torch.nn.functional.cross_entropy(o[mask], torch.tensor(y)[mask], reduction="sum")
    loss.backward()
    grads = {"U": rnn.weight_ih_l0.grad, "W": rnn.weight_hh_l0.grad, "b": rnn.bias_ih_l0.grad,
             "V": lin.weight.grad, "c": lin.bias.grad, "h0": h0t.grad}
    return loss.item(), h.detach().numpy(), {k_: v.numpy() for k_, v in grads.items()}


@pytest.mark.parametrize("truncate", [None, 2])
def test_reference_equals_torch_forward_and_every_gradient(truncate):
    p, x, y, h0, lens = problem()
    r = ops.rnn_loss_and_grads(x, y, **p, h0=h0, lengths=lens, truncate=truncate, backend="numpy")
    loss, h, g = torch_rnn(p, x, y, h0, lens, truncate)
    assert r.loss == pytest.approx(loss, rel=1e-12)
    assert rel(r.forward.h, h) < 1e-12
    for name in ("U", "W", "b", "V", "c", "h0"):
        assert rel(getattr(r.grads, name), g[name]) < 1e-11, name


def test_reference_forward_equals_torch_without_lengths():
    torch = pytest.importorskip("torch")
    p, x, _, h0, _ = problem(lengths=None)
    f = ops.rnn_forward(x, **p, h0=h0, backend="numpy")
    rnn = torch.nn.RNN(x.shape[2], p["U"].shape[0]).double()
    with torch.no_grad():
        for name, v in (("weight_ih_l0", p["U"]), ("weight_hh_l0", p["W"]), ("bias_ih_l0", p["b"])):
            getattr(rnn, name).copy_(torch.tensor(v))
        rnn.bias_hh_l0.zero_()
        out, hn = rnn(torch.tensor(x), torch.tensor(h0)[None])
        o = torch.nn.functional.linear(out, torch.tensor(p["V"]), torch.tensor(p["c"]))
    assert rel(f.h, out.numpy()) < 1e-12 and rel(f.o, o.numpy()) < 1e-12
    assert rel(f.h_last, hn[0].numpy()) < 1e-12


def fd_check(loss_fn, params, grads, rng, eps=1e-6, picks=4):
    for name, g in grads.items():
        a = params[name]
        for flat in rng.choice(a.size, size=min(picks, a.size), replace=False):
            idx = np.unravel_index(flat, a.shape)
            old = a[idx]
            a[idx] = old + eps
            up = loss_fn()
            a[idx] = old - eps
            down = loss_fn()
            a[idx] = old
            num = (up - down) / (2 * eps)
            assert abs(num - g[idx]) <= 1e-6 * max(1.0, abs(num)), (name, idx, num, g[idx])


def test_bptt_finite_differences_float64():
    p, x, y, h0, lens = problem(seed=3)
    params = {**p, "h0": h0}
    r = ops.rnn_loss_and_grads(x, y, **params, lengths=lens, backend="numpy")
    fd_check(lambda: ops.rnn_loss_and_grads(x, y, **params, lengths=lens, backend="numpy").loss,
             params, r.grads._asdict(), np.random.default_rng(0))


def test_teacher_forcing_and_seq2one_finite_differences_float64():
    p, x, y, _, lens = problem(seed=4, output_recurrent=True)
    r = ops.rnn_teacher_forcing_loss_and_grads(x, y, **p, lengths=lens, y0=2, backend="numpy")
    grads = {k: v for k, v in r.grads._asdict().items() if v is not None}
    def tf_loss():
        return ops.rnn_teacher_forcing_loss_and_grads(x, y, **p, lengths=lens, y0=2, backend="numpy").loss

    fd_check(tf_loss, p, grads, np.random.default_rng(1))
    q, x, _, h0, lens = problem(seed=5)
    cls = np.array([0, 3, 1, 2])
    params = {**q, "h0": h0}
    res, _ = ops.rnn_seq2one(x, cls, **params, lengths=lens, backend="numpy")
    fd_check(lambda: ops.rnn_seq2one(x, cls, **params, lengths=lens, backend="numpy")[0].loss,
             params, res.grads._asdict(), np.random.default_rng(2))


def test_seq2one_equals_torch():
    torch = pytest.importorskip("torch")
    p, x, _, h0, lens = problem(seed=6)
    cls = np.array([1, 0, 3, 2])
    res, o = ops.rnn_seq2one(x, cls, **p, h0=h0, lengths=lens, backend="numpy")
    rnn = torch.nn.RNN(x.shape[2], p["U"].shape[0]).double()
    with torch.no_grad():
        for name, v in (("weight_ih_l0", p["U"]), ("weight_hh_l0", p["W"]), ("bias_ih_l0", p["b"])):
            getattr(rnn, name).copy_(torch.tensor(v))
        rnn.bias_hh_l0.zero_()
    V = torch.tensor(p["V"], requires_grad=True)
    c = torch.tensor(p["c"], requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(x), torch.tensor(lens),
                                                     enforce_sorted=False)
    _, hn = rnn(packed, torch.tensor(h0)[None])
    ot = hn[0] @ V.T + c
    loss = torch.nn.functional.cross_entropy(ot, torch.tensor(cls), reduction="sum")
    loss.backward()
    assert res.loss == pytest.approx(loss.item(), rel=1e-12)
    assert rel(o, ot.detach().numpy()) < 1e-12
    for name, tg in (("U", rnn.weight_ih_l0.grad), ("W", rnn.weight_hh_l0.grad), ("b", rnn.bias_ih_l0.grad),
                     ("V", V.grad), ("c", c.grad)):
        assert rel(getattr(res.grads, name), tg.numpy()) < 1e-11, name


# ---------------------------------------------------------------------------------------------
# masking, teacher forcing by hand, generation


@pytest.mark.parametrize("backend", ["numpy"] + CPU_BACKENDS)
def test_padded_batch_equals_each_sequence_alone(backend):
    p, x, y, h0, lens = problem(lengths=(7, 2, 5, 0))
    r = ops.rnn_loss_and_grads(x, y, **p, h0=h0, lengths=lens, backend=backend)
    total = {k: 0 for k in ("U", "W", "b", "V", "c")}
    loss = 0.0
    for i, L in enumerate(lens):
        if L == 0:
            assert np.allclose(r.forward.h_last[i], h0[i]) and not r.forward.h[:, i].any()
            continue
        s = ops.rnn_loss_and_grads(x[:L, i:i + 1], y[:L, i:i + 1], **p, h0=h0[i:i + 1], backend=backend)
        assert rel(r.forward.h[:L, i], s.forward.h[:, 0]) < 1e-12
        assert rel(r.forward.o[:L, i], s.forward.o[:, 0]) < 1e-12
        assert not r.forward.h[L:, i].any() and not r.forward.o[L:, i].any()
        assert rel(r.forward.h_last[i], s.forward.h_last[0]) < 1e-12
        assert rel(r.grads.h0[i], s.grads.h0[0]) < 1e-11
        loss += s.loss
        for k in total:
            total[k] = total[k] + getattr(s.grads, k)
    assert r.loss == pytest.approx(loss, rel=1e-12)
    for k, v in total.items():
        assert rel(getattr(r.grads, k), v) < 1e-11, k


def test_teacher_forced_loss_equals_hand_unrolled():
    p, x, y, _, lens = problem(seed=7, output_recurrent=True, lengths=None)
    U, W, b, V, c = (p[k] for k in ("U", "W", "b", "V", "c"))
    k = V.shape[0]
    loss = 0.0
    for i in range(x.shape[1]):
        fed = np.zeros(k)                                       # nothing fed at t = 1
        for t in range(x.shape[0]):
            h = np.tanh(b + W @ fed + U @ x[t, i])              # fig. 10.4, teacher forcing
            o = c + V @ h
            loss -= o[y[t, i]] - np.log(np.exp(o).sum())
            fed = np.eye(k)[y[t, i]]                            # the true y(t) feeds step t + 1
    r = ops.rnn_teacher_forcing_loss_and_grads(x, y, **p, backend="numpy")
    assert r.loss == pytest.approx(loss, rel=1e-12)


def test_generation_feeds_its_own_argmax_back():
    p, x, _, _, _ = problem(seed=8, output_recurrent=True, lengths=None)
    tokens, o = ops.rnn_generate(x, **p, y0=1, backend="numpy")
    tf = ops.rnn_teacher_forcing(x, tokens, **p, y0=1, backend="numpy")   # same feedback, forced
    assert rel(o, tf.o) < 1e-12
    assert (tokens == o.argmax(axis=2)).all()
    drawn, _ = ops.rnn_generate(x, **p, y0=1, mode="sample", seed=0, backend="numpy")
    again, _ = ops.rnn_generate(x, **p, y0=1, mode="sample", seed=0, backend="numpy")
    assert (drawn == again).all() and drawn.min() >= 0 and drawn.max() < p["V"].shape[0]


# ---------------------------------------------------------------------------------------------
# every CPU backend against the reference


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_backend_training_step_equals_reference(backend, dtype):
    tol = TOL[dtype]
    p, x, y, h0, lens = problem(dtype, tau=9, n=5, n_in=4, n_h=6, k=3, lengths=(9, 3, 5, 0, 2))
    for truncate in (None, 2):
        r = ops.rnn_loss_and_grads(x, y, **p, h0=h0, lengths=lens, truncate=truncate, backend=backend)
        q = ops.rnn_loss_and_grads(x, y, **p, h0=h0, lengths=lens, truncate=truncate, backend="numpy")
        assert r.loss == pytest.approx(q.loss, rel=tol)
        for a, b in zip(r.forward, q.forward):
            assert a.dtype == b.dtype and rel(a, b) < tol
        for name, a, b in zip(r.grads._fields, r.grads, q.grads):
            assert a.dtype == np.dtype(dtype) and rel(a, b) < 10 * tol, name
    ghl = np.random.default_rng(1).standard_normal(h0.shape).astype(dtype)
    gh = np.random.default_rng(2).standard_normal(q.forward.h.shape).astype(dtype)
    a = ops.rnn_backward(x, q.forward.h, None, p["U"], p["W"], None, h0, lens, grad_h=gh, grad_h_last=ghl,
                         backend=backend)
    b = ops.rnn_backward(x, q.forward.h, None, p["U"], p["W"], None, h0, lens, grad_h=gh, grad_h_last=ghl,
                         backend="numpy")
    assert a.V is None and all(rel(u, v) < 10 * tol for u, v in zip(a[:3] + a[5:], b[:3] + b[5:]))


# Numba's teacher-forcing / generation kernels are checked in float64 only (each dtype is one more
# set of JIT compilations against the CI budget); they share their element-wise code with float32.
@pytest.mark.parametrize("backend,dtype", [(b, d) for b in CPU_BACKENDS for d in ("float32", "float64")
                                           if not (b == "numba" and d == "float32")])
def test_backend_teacher_forcing_and_generation_equal_reference(backend, dtype):
    tol = TOL[dtype]
    pt, x, y, _, lens = problem(dtype, tau=9, n=5, n_in=4, n_h=6, k=3, lengths=(9, 3, 5, 0, 2),
                                output_recurrent=True)
    r = ops.rnn_teacher_forcing_loss_and_grads(x, y, **pt, lengths=lens, y0=1, backend=backend)
    q = ops.rnn_teacher_forcing_loss_and_grads(x, y, **pt, lengths=lens, y0=1, backend="numpy")
    assert r.loss == pytest.approx(q.loss, rel=tol)
    assert all(rel(a, b) < tol for a, b in zip(r.forward[:2], q.forward[:2]))
    assert all(rel(u, v) < 10 * tol for u, v in zip(r.grads[:5], q.grads[:5]))
    for mode in ("argmax", "sample"):
        ta, oa = ops.rnn_generate(x, **pt, y0=0, mode=mode, seed=5, backend=backend)
        tb, ob = ops.rnn_generate(x, **pt, y0=0, mode=mode, seed=5, backend="numpy")
        assert (ta == tb).all() and rel(oa, ob) < tol


# ---------------------------------------------------------------------------------------------
# clipping, models, bad input


def test_clip_grads_by_norm():
    p, x, y, h0, lens = problem(seed=9)
    r = ops.rnn_loss_and_grads(x, y, **p, h0=h0, lengths=lens, backend="numpy")
    c = ops.rnn_loss_and_grads(x, y, **p, h0=h0, lengths=lens, clip=0.5 * r.grad_norm, backend="numpy")
    assert c.grad_norm == pytest.approx(r.grad_norm)
    norm = np.sqrt(sum(float((g ** 2).sum()) for g in c.grads))
    assert norm == pytest.approx(0.5 * r.grad_norm, rel=1e-12)
    for a, b in zip(c.grads, r.grads):
        assert rel(a, 0.5 * b) < 1e-12                          # same direction, g v / ||g||
    same, n0 = ops.rnn_clip_grads(r.grads, 2 * r.grad_norm)    # below the threshold: unchanged
    assert n0 == pytest.approx(r.grad_norm) and all(rel(a, b) == 0 for a, b in zip(same, r.grads))
    with pytest.raises(ValueError):
        ops.rnn_clip_grads(r.grads, 0.0)


def test_flop_models_and_activation_bytes():
    from dlbench.registry import OPS

    p = {"hidden": 256, "batch": 32, "n_in": 64, "n_out": 64, "tau": 200}
    fwd = OPS["rnn_forward"].flops(**p)
    assert fwd == pytest.approx(200 * 32 * 2 * 256 * (64 + 256 + 64), rel=0.01)
    assert 2.5 * fwd < OPS["rnn_forward_backward"].flops(**p) < 3.2 * fwd   # BPTT ~ twice the forward
    assert ops.rnn_activation_bytes(200, 32, 256, 64) == 200 * 32 * 320 * 4


def test_bad_input_raises_value_error():
    p, x, y, h0, lens = problem()
    bad = dict(p)
    bad["W"] = np.zeros((5, 4))
    with pytest.raises(ValueError, match="hidden sizes disagree"):
        ops.rnn_forward(x, **bad, backend="numpy")
    with pytest.raises(ValueError, match="hidden sizes disagree"):
        ops.rnn_forward(x, **{**p, "V": np.zeros((4, 3))}, backend="numpy")
    with pytest.raises(ValueError, match="hidden sizes disagree"):
        ops.rnn_forward(x, **{**p, "b": np.zeros(6)}, backend="numpy")
    with pytest.raises(ValueError):
        ops.rnn_forward(x, **p, h0=np.zeros((4, 6)), backend="numpy")
    with pytest.raises(ValueError, match="longer"):
        ops.rnn_forward(x, **p, lengths=[8, 1, 1, 1], backend="numpy")
    with pytest.raises(ValueError):
        ops.rnn_forward(x, **p, lengths=[-1, 1, 1, 1], backend="numpy")
    with pytest.raises(ValueError):
        ops.rnn_forward(x, **p, lengths=[1, 1], backend="numpy")
    with pytest.raises(ValueError, match="dtype"):
        ops.rnn_forward(x.astype(np.float32), **p, backend="numpy")
    with pytest.raises(ValueError):
        ops.rnn_forward(x[0], **p, backend="numpy")
    with pytest.raises(ValueError):
        ops.rnn_nll(np.zeros((7, 4, 4)), y + 4, backend="numpy")
    with pytest.raises(ValueError):
        ops.rnn_backward(x, np.zeros((7, 4, 5)), np.zeros((7, 4, 4)), p["U"], p["W"], p["V"], truncate=0,
                         backend="numpy")
    with pytest.raises(ValueError, match="hidden sizes disagree"):
        ops.rnn_teacher_forcing(x, y, **p, backend="numpy")   # W is n_h x n_h, not n_h x n_out
    with pytest.raises(ValueError):
        ops.rnn_generate(x, **ops.rnn_init(3, 5, 4, "float64", output_recurrent=True), mode="beam",
                         backend="numpy")
    with pytest.raises(ValueError):
        ops.rnn_forward(x, **p, backend="no-such-backend")


def test_suite_cases_bind_and_report_throughput_and_memory():
    from dlbench.suite import Variant, get_suite

    cases = get_suite("rnn").cases(True)
    assert {c.op for c in cases} == {"rnn_forward", "rnn_forward_backward"}
    assert all(np.isfinite(c.flops()) and c.flops() > 0 for c in cases)
    case = next(c for c in cases if c.op == "rnn_forward_backward" and c.params["tau"] == 50)
    for variant in (Variant("numba"), Variant("torch", "nn.RNN")):
        if variant.backend == "torch":
            pytest.importorskip("torch")
        bound = case.bind(variant, "float32")
        bound.fn()
        metrics = case.metrics(type("T", (), {"median": 0.01})())
        assert metrics["steps_per_s"][0] == pytest.approx(case.params["tau"] * case.params["batch"] / 0.01)
        metrics = bound.extra["metrics"]  # measured at bind time, recorded by the runner
        assert metrics["activation_bytes"][0] > 0
        if variant.backend == "numba":
            assert metrics["peak_mem"][0] >= ops.rnn_activation_bytes(50, 32, 256, 64)
