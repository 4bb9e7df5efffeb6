"""The optim front-end: validation, check_finite, clipping, lists vs flat buffers, schedules,
averaging, delta-bar-delta's rate rule, device arrays (CUDA simulator)."""

import math

import numpy as np
import pytest

from dlbench import optim
from dlbench.optim import schedules

ALL = ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSProp", "RMSPropNesterov", "Adam", "AdamW", "AdaDelta",
       "DeltaBarDelta"]


def _params(dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((3, 5)).astype(dtype), rng.standard_normal(7).astype(dtype)]


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("name", ALL)
def test_bad_hyperparameters_raise_value_error(name):
    cls = getattr(optim, name)
    with pytest.raises(ValueError, match="lr"):
        cls(lr=-0.1, backend="numpy")
    with pytest.raises(ValueError, match="weight_decay"):
        cls(lr=0.1, weight_decay=-1.0, backend="numpy")
    with pytest.raises(ValueError, match="clip_norm"):
        cls(lr=0.1, clip_norm=0.0, backend="numpy")


@pytest.mark.parametrize("kw", [{"beta1": 1.0}, {"beta2": -0.1}, {"beta1": 1.5}])
def test_adam_betas_outside_unit_interval(kw):
    with pytest.raises(ValueError, match="beta"):
        optim.Adam(backend="numpy", **kw)


@pytest.mark.parametrize("cls,kw", [(optim.Momentum, {"alpha": 1.0}), (optim.RMSProp, {"rho": 1.0}),
                                    (optim.RMSProp, {"momentum": -0.5}), (optim.AdaDelta, {"rho": 2.0}),
                                    (optim.RMSPropNesterov, {"alpha": 1.2}), (optim.AdaDelta, {"eps": 0.0}),
                                    (optim.RMSProp, {"eps_placement": "middle"}),
                                    (optim.Nesterov, {"form": "sideways"})])
def test_other_bad_hyperparameters(cls, kw):
    with pytest.raises(ValueError):
        cls(backend="numpy", **kw)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_mismatched_params_and_grads(backend):
    opt = optim.Adam(backend=backend)
    ps = _params()
    st = opt.init(ps)
    with pytest.raises(ValueError, match="shape or dtype"):
        opt.step(ps, [np.zeros((3, 5), np.float32), np.zeros(8, np.float32)], st)
    with pytest.raises(ValueError, match="shape or dtype"):
        opt.step(ps, [np.zeros((3, 5), np.float64), np.zeros(7, np.float32)], st)
    with pytest.raises(ValueError, match="2 parameter arrays but 1"):
        opt.step(ps, [np.zeros((3, 5), np.float32)], st)
    with pytest.raises(ValueError, match="float32 or float64"):
        opt.init([np.zeros(3, np.int64)])
    with pytest.raises(ValueError, match="C-contiguous"):
        opt.init([np.zeros((4, 4), np.float32)[:, ::2]])
    with pytest.raises(ValueError, match="other parameters"):
        opt.step(ps[:1], [np.zeros((3, 5), np.float32)], st)
    with pytest.raises(ValueError, match="other parameters"):
        opt.step([p.astype(np.float64) for p in ps], [np.zeros(p.shape) for p in ps], st)
    with pytest.raises(ValueError, match="not made by"):
        opt.step(ps, [np.zeros_like(p) for p in ps], {})
    assert st["step"] == 0


def test_unknown_backend_is_a_value_error():
    with pytest.raises(ValueError, match="backend"):
        optim.Adam(backend="fortran")


# ------------------------------------------------------------------ check_finite
@pytest.mark.parametrize("backend", ["numpy", "numba", "cython"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_finite_refuses_the_step_untouched(backend, bad):
    opt = optim.Adam(lr=0.1, check_finite=True, backend=backend)
    ps = _params()
    st = opt.init(ps)
    opt.step(ps, [np.ones_like(p) for p in ps], st)
    before = [p.copy() for p in ps], [s.copy() for s in st["s"] + st["r"]], st["step"]
    grads = [np.ones_like(p) for p in ps]
    grads[1][3] = bad
    with pytest.raises(optim.NonFiniteGradientError, match="non-finite"):
        opt.step(ps, grads, st)
    with pytest.raises(ValueError):   # it is a ValueError too
        opt.step(ps, grads, st)
    for a, b in zip(ps, before[0]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(st["s"] + st["r"], before[1]):
        np.testing.assert_array_equal(a, b)
    assert st["step"] == before[2]


def test_without_check_finite_nan_propagates():
    opt = optim.SGD(lr=0.1, backend="numpy")
    x = np.zeros(3)
    opt.step(x, np.array([1.0, np.nan, 0.0]), opt.init(x))
    assert np.isnan(x[1]) and x[0] == -0.1


# ------------------------------------------------------------------ clipping
@pytest.mark.parametrize("backend", ["numpy", "numba", "cython"])
def test_fused_clip_norm_equals_explicit_clipping(backend):
    ps, ps2 = _params(np.float64), _params(np.float64)
    grads = [10 * np.ones_like(p) for p in ps]
    a = optim.Momentum(lr=0.1, alpha=0.9, clip_norm=1.0, backend=backend)
    b = optim.Momentum(lr=0.1, alpha=0.9, backend="numpy")
    sa, sb = a.init(ps), b.init(ps2)
    for _ in range(3):
        a.step(ps, grads, sa)
        g2 = [g.copy() for g in grads]
        norm = optim.clip_grad_norm(g2, 1.0, backend="numpy")
        assert norm == pytest.approx(10 * math.sqrt(22))
        assert optim.global_norm(g2, backend="numpy") == pytest.approx(1.0)
        b.step(ps2, g2, sb)
    for x, y in zip(ps, ps2):
        np.testing.assert_allclose(x, y, rtol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "numba", "cython"])
def test_fused_clip_value_and_weight_decay(backend):
    x = np.array([1.0, 2.0, -3.0, 0.5])
    g = np.array([5.0, -0.2, -7.0, 0.0])
    opt = optim.SGD(lr=0.1, clip_value=1.0, weight_decay=0.5, backend=backend)
    opt.step(x, g, opt.init(x))
    want = np.array([1.0, 2.0, -3.0, 0.5]) - 0.1 * (np.clip(g, -1, 1) + 0.5 * np.array([1.0, 2.0, -3.0, 0.5]))
    np.testing.assert_allclose(x, want, rtol=1e-12)
    g2 = g.copy()
    optim.clip_grad_value(g2, 1.0, backend=backend)
    np.testing.assert_array_equal(g2, np.clip(g, -1, 1))


def test_clip_norm_leaves_small_gradients_alone():
    g = [np.array([0.3, 0.4])]
    assert optim.clip_grad_norm(g, 1.0, backend="numpy") == pytest.approx(0.5)
    np.testing.assert_array_equal(g[0], [0.3, 0.4])
    with pytest.raises(ValueError):
        optim.clip_grad_norm(g, -1.0)


# ------------------------------------------------------------------ containers and backends
@pytest.mark.parametrize("name", ALL)
def test_list_of_arrays_equals_flat_buffer(name):
    cls = getattr(optim, name)
    ps = _params(np.float64, seed=1)
    flat, views = optim.flat_buffer(ps)
    for p, v in zip(ps, views):
        np.testing.assert_array_equal(p, v)
    a, b = cls(lr=0.01, backend="numpy"), cls(lr=0.01, backend="numpy")
    sa, sb = a.init(ps), b.init(flat)
    rng = np.random.default_rng(2)
    for _ in range(5):
        gs = [rng.standard_normal(p.shape) for p in ps]
        gflat, _ = optim.flat_buffer(gs)
        a.step(ps, gs, sa)
        b.step(flat, gflat, sb)
    for p, v in zip(ps, views):
        np.testing.assert_allclose(v, p, rtol=1e-13)


@pytest.mark.parametrize("backend", ["numba", "cython", "numba-cuda"])
def test_every_optimizer_on_every_backend_matches_numpy(backend):
    for name in ALL:
        cls = getattr(optim, name)
        ps, ps2 = _params(np.float32, 3), _params(np.float32, 3)
        a, b = cls(lr=0.01, backend="numpy"), cls(lr=0.01, backend=backend)
        sa, sb = a.init(ps), b.init(ps2)
        rng = np.random.default_rng(4)
        for _ in range(3):
            gs = [rng.standard_normal(p.shape).astype(np.float32) for p in ps]
            a.step(ps, gs, sa)
            b.step(ps2, gs, sb)
        for x, y in zip(ps, ps2):
            np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-6, err_msg=name)


def test_device_arrays_under_the_simulator():
    from numba import cuda

    host = _params(np.float32, 5)
    dev = [cuda.to_device(p) for p in host]
    a, b = optim.Adam(lr=0.01, backend="numpy"), optim.Adam(lr=0.01, backend="numba-cuda")
    sa, sb = a.init(host), b.init(dev)
    assert not isinstance(sb["s"][0], np.ndarray)          # state lives on the device
    rng = np.random.default_rng(6)
    for _ in range(3):
        gs = [rng.standard_normal(p.shape).astype(np.float32) for p in host]
        a.step(host, gs, sa)
        b.step(dev, [cuda.to_device(g) for g in gs], sb)
    for x, d in zip(host, dev):
        np.testing.assert_allclose(d.copy_to_host(), x, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ schedules
def test_linear_decay_eq_8_14():
    s = schedules.LinearDecay(1.0, tau=100)
    assert s(0) == 1.0 and s(100) == pytest.approx(0.01) and s(1000) == pytest.approx(0.01)
    assert s(50) == pytest.approx(0.5 * 1.0 + 0.5 * 0.01)
    assert schedules.LinearDecay(1.0, tau=10, lr_tau=0.5)(5) == pytest.approx(0.75)
    with pytest.raises(ValueError):
        schedules.LinearDecay(1.0, tau=0)


def test_other_schedules_and_callables():
    assert schedules.StepDecay(1.0, step_size=10, gamma=0.5)(25) == 0.25
    c = schedules.Cosine(1.0, T=10, lr_min=0.1)
    assert c(0) == 1.0 and c(5) == pytest.approx(0.55) and c(10) == 0.1
    assert schedules.InverseTime(1.0, 0.5)(2) == 0.5
    opt = optim.SGD(lr=lambda k: 0.1 / (k + 1), backend="numpy")
    x = np.zeros(2)
    st = opt.init(x)
    opt.step(x, np.ones(2), st)
    opt.step(x, np.ones(2), st)
    np.testing.assert_allclose(x, -(0.1 + 0.05))
    bad = optim.SGD(lr=lambda k: -1.0, backend="numpy")
    with pytest.raises(ValueError, match="schedule"):
        bad.step(x, np.ones(2), bad.init(x))


# ------------------------------------------------------------------ averaging
@pytest.mark.parametrize("backend", ["numpy", "numba", "cython"])
def test_polyak_average_is_the_running_mean(backend):
    avg = optim.PolyakAverage(backend=backend)
    x = np.zeros(5)
    st = avg.init(x)
    seen = []
    rng = np.random.default_rng(0)
    for _ in range(10):
        x[:] = rng.standard_normal(5)
        seen.append(x.copy())
        avg.update(x, st)
    np.testing.assert_allclose(avg.average(st)[0], np.mean(seen, axis=0), rtol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "numba", "cython"])
def test_ema_eq_8_39(backend):
    ema = optim.EMA(alpha=0.9, backend=backend)
    x = np.ones(4)
    st = ema.init(x)
    want = x.copy()
    for k in range(5):
        x[:] = k
        ema.update(x, st)
        want = 0.9 * want + 0.1 * x
    np.testing.assert_allclose(ema.average(st)[0], want, rtol=1e-12)
    with pytest.raises(ValueError):
        optim.EMA(alpha=1.0)


# ------------------------------------------------------------------ delta-bar-delta
def test_delta_bar_delta_rates_grow_with_consistent_sign_and_shrink_on_flips():
    opt = optim.DeltaBarDelta(lr=0.1, kappa=0.01, phi=0.5, mix=0.5, backend="numpy")
    x = np.zeros(2)
    st = opt.init(x)
    np.testing.assert_array_equal(st["rate"][0], [0.1, 0.1])
    opt.step(x, np.array([1.0, 1.0]), st)                # bar was 0: rates unchanged
    np.testing.assert_allclose(st["rate"][0], [0.1, 0.1])
    opt.step(x, np.array([1.0, -1.0]), st)               # same sign / flipped sign
    np.testing.assert_allclose(st["rate"][0], [0.11, 0.05])
    np.testing.assert_allclose(st["bar"][0], [0.75, -0.25])    # (1 - mix) g + mix bar
    with pytest.raises(ValueError, match="initial rate"):
        optim.DeltaBarDelta(lr=lambda k: 0.1)


def test_delta_bar_delta_converges_on_ill_conditioned_quadratic():
    """Full batch on a diagonal quadratic with curvatures 1 and 100: per-parameter rates adapt."""
    h = np.array([1.0, 100.0])
    x = np.array([1.0, 1.0])
    opt = optim.DeltaBarDelta(lr=0.001, kappa=0.001, phi=0.5, mix=0.7, backend="numpy")
    st = opt.init(x)
    for _ in range(500):
        opt.step(x, h * x, st)
    assert np.max(np.abs(x)) < 1e-3
    assert st["rate"][0][0] > st["rate"][0][1]          # the flat direction earned a larger rate


def test_bytes_per_param_models():
    assert optim.bytes_per_param("adam") == 28
    assert optim.bytes_per_param("sgd_momentum") == 20
    assert optim.bytes_per_param("adagrad") == 20
    assert optim.bytes_per_param("adam", "float64") == 56
