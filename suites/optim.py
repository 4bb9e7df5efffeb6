"""Suite ``optim``: update throughput of the chapter-8 optimizers (sec. 8.3, 8.5, 8.7.3, 8.2.4).

One case per (update rule, number of float32 parameters n in 1e4 .. 1e7): one ``opt.step`` on a
flat parameter buffer (the front-end call users make, one fused kernel pass) for every backend,
beside torch.optim's ``foreach`` and ``fused`` implementations where torch has the rule (the
same update: see tests/test_optim_torch.py). GB/s and the fraction of the calibrated bandwidth
come from the ops' byte models: the minimal bytes each update moves (Adam: 28 B/param in
float32, SGD with momentum: 20, AdaGrad: 20, ...); the extra metric is Mparam/s.

quick: n = 1e6 and five rules (SGD, momentum, AdaGrad, RMSProp, Adam). full: every rule at
1e4, 1e5, 1e6, 1e7, plus the Polyak/EMA average, the global gradient norm and value clipping.
"""

from __future__ import annotations

import numpy as np

from dlbench.suite import Bound, Case, Skip, Variant, define_suite

LR = 1e-3
OURS = [Variant("numpy", "fused"), Variant("numba", "fused"), Variant("cython", "fused"),
        Variant("numba-cuda", "fused")]
TORCH_FOREACH, TORCH_FUSED = Variant("torch", "foreach"), Variant("torch", "fused")


def _torch_opt(cls_name: str, **kw):
    def make(params, impl):
        import torch

        return getattr(torch.optim, cls_name)(params, lr=LR, **kw, **{impl: True})

    return make


# name -> (registry op, dlbench.optim class, kwargs, torch factory or None, torch has fused)
RULES = {
    "sgd": ("sgd", "SGD", {}, _torch_opt("SGD"), True),
    "momentum": ("sgd_momentum", "Momentum", {"alpha": 0.9}, _torch_opt("SGD", momentum=0.9), True),
    "nesterov": ("sgd_momentum", "Nesterov", {"alpha": 0.9},
                 _torch_opt("SGD", momentum=0.9, nesterov=True), True),
    "adagrad": ("adagrad", "AdaGrad", {"eps": 1e-10}, _torch_opt("Adagrad"), True),
    "rmsprop": ("rmsprop", "RMSProp", {"rho": 0.99, "eps": 1e-8, "eps_placement": "outside"},
                _torch_opt("RMSprop"), False),
    "rmsprop_momentum": ("rmsprop_momentum", "RMSProp", {"rho": 0.99, "eps": 1e-8, "momentum": 0.9,
                                                         "eps_placement": "outside"},
                         _torch_opt("RMSprop", momentum=0.9), False),
    "rmsprop_nesterov": ("rmsprop_momentum", "RMSPropNesterov", {}, None, False),
    "adam": ("adam", "Adam", {}, _torch_opt("Adam"), True),
    "adamw": ("adam", "AdamW", {"weight_decay": 0.01}, _torch_opt("AdamW", weight_decay=0.01), True),
    "adadelta": ("adadelta", "AdaDelta", {}, _torch_opt("Adadelta"), False),
    "delta_bar_delta": ("delta_bar_delta", "DeltaBarDelta", {}, None, False),
}
QUICK_RULES = ("sgd", "momentum", "adagrad", "rmsprop", "adam")


def _inputs(n: int, dtype: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n).astype(dtype), (0.1 * rng.standard_normal(n)).astype(dtype)


def _device(*arrays):
    from dlbench.backends import backend_status

    if backend_status("numba-cuda").mode in ("simulator", "none"):
        raise Skip("numba-cuda: no GPU here (the simulator is never timed)")
    from numba import cuda

    return [cuda.to_device(a) for a in arrays]


def bind_rule(variant: Variant, dtype: str, rule: str, n: int) -> Bound:
    """One optimizer step on n parameters (a flat buffer) for one variant."""
    _, cls_name, kw, torch_make, _fused = RULES[rule]
    theta, g = _inputs(n, dtype)
    if variant.backend == "torch":
        if torch_make is None:
            raise Skip(f"torch.optim has no {rule}")
        return _bind_torch(torch_make, variant.algorithm, theta, g)
    from dlbench import optim

    opt = getattr(optim, cls_name)(lr=LR, backend=variant.backend, **kw)
    if variant.backend == "numba-cuda":
        theta, g = _device(theta, g)
        state = opt.init(theta)
        return Bound(lambda: opt.step(theta, g, state), timer="cuda")
    state = opt.init(theta)
    return Bound(lambda: opt.step(theta, g, state))


def _bind_torch(make, impl: str, theta, g) -> Bound:
    try:
        import torch
    except ImportError as e:
        raise Skip(f"torch is not installed: {e}") from e
    p = torch.nn.Parameter(torch.from_numpy(theta.copy()))
    p.grad = torch.from_numpy(g.copy())
    try:
        opt = make([p], impl)
        opt.step()
    except (RuntimeError, TypeError, ValueError) as e:
        raise Skip(f"torch.optim {impl} unavailable for this rule: {e}") from e
    return Bound(opt.step)


def bind_average(variant: Variant, dtype: str, n: int) -> Bound:
    """EMA of the parameters, eq. 8.39 (torch peer: Tensor.lerp_, the same update)."""
    theta, _ = _inputs(n, dtype)
    if variant.backend == "torch":
        import torch

        avg, p = torch.from_numpy(theta.copy()), torch.from_numpy(theta + 1)
        return Bound(lambda: avg.lerp_(p, 0.001))
    from dlbench import optim

    ema = optim.EMA(alpha=0.999, backend=variant.backend)
    if variant.backend == "numba-cuda":
        (theta,) = _device(theta)
    state = ema.init(theta)
    return Bound(lambda: ema.update(theta, state), timer="cuda" if variant.backend == "numba-cuda" else "cpu")


def bind_norm(variant: Variant, dtype: str, n: int) -> Bound:
    """Global gradient norm (the read pass of clipping by norm; torch peer: linalg.vector_norm)."""
    _, g = _inputs(n, dtype)
    if variant.backend == "torch":
        import torch

        tg = torch.from_numpy(g)
        return Bound(lambda: float(torch.linalg.vector_norm(tg)))
    from dlbench import optim

    if variant.backend == "numba-cuda":
        (g,) = _device(g)
    return Bound(lambda: optim.global_norm(g, backend=variant.backend))


def bind_clip_value(variant: Variant, dtype: str, n: int) -> Bound:
    """Element-wise clipping in place (torch peer: Tensor.clamp_)."""
    _, g = _inputs(n, dtype)
    if variant.backend == "torch":
        import torch

        tg = torch.from_numpy(g)
        return Bound(lambda: tg.clamp_(-0.05, 0.05))
    from dlbench import optim

    if variant.backend == "numba-cuda":
        (g,) = _device(g)
    return Bound(lambda: optim.clip_grad_value(g, 0.05, backend=variant.backend),
                 timer="cuda" if variant.backend == "numba-cuda" else "cpu")


def _label(n: int) -> str:
    return f"n{n:.0e}".replace("+0", "").replace("+", "")


def mparams(n: int):
    return lambda t: {"mparams_per_s": (n / t.median / 1e6, "Mparam/s")}


@define_suite("optim", "optimizer update throughput (sec. 8.3-8.5, 8.7.3) vs torch.optim foreach/fused")
def optim_suite(quick: bool):
    from dlbench import optim  # noqa: F401 - defines the ops' byte models

    sizes = [1_000_000] if quick else [10_000, 100_000, 1_000_000, 10_000_000]
    rules = QUICK_RULES if quick else tuple(RULES)
    cases = []
    for n in sizes:
        for rule in rules:
            op, _, _, torch_make, fused = RULES[rule]
            peers = [] if torch_make is None else [TORCH_FOREACH] + ([TORCH_FUSED] if fused else [])
            cases.append(Case("optim", f"{rule}_{_label(n)}", op, {"n": n}, OURS + peers,
                              lambda var, dt, rule=rule, n=n: bind_rule(var, dt, rule, n),
                              dtype="float32", metrics=mparams(n)))
        if not quick:
            torch_peer = [Variant("torch", "lerp")]
            cases.append(Case("optim", f"ema_{_label(n)}", "param_average", {"n": n}, OURS + torch_peer,
                              lambda var, dt, n=n: bind_average(var, dt, n), dtype="float32",
                              metrics=mparams(n)))
            cases.append(Case("optim", f"global_norm_{_label(n)}", "grad_sumsq", {"n": n},
                              OURS + [Variant("torch", "vector_norm")],
                              lambda var, dt, n=n: bind_norm(var, dt, n), dtype="float32",
                              metrics=mparams(n)))
            cases.append(Case("optim", f"clip_value_{_label(n)}", "clip_by_value", {"n": n},
                              OURS + [Variant("torch", "clamp")],
                              lambda var, dt, n=n: bind_clip_value(var, dt, n), dtype="float32",
                              metrics=mparams(n)))
    return cases
