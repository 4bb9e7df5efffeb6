"""Suite ``smoke``: the SGD-with-momentum update (Algorithm 8.2) through every backend.

The foundation's end-to-end path: registry -> bind -> timer -> results. ``make bench`` runs it.
"""

import numpy as np

from dlbench.suite import Bound, Case, Skip, Variant, define_suite

LR, ALPHA = 0.01, 0.9


def momentum_inputs(n: int, dtype: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(n).astype(dtype)
    v = (0.1 * rng.standard_normal(n)).astype(dtype)
    g = rng.standard_normal(n).astype(dtype)
    return theta, v, g


def bind_momentum(variant: Variant, dtype: str, n: int) -> Bound:
    """Prepare the momentum update of ``n`` parameters for one variant."""
    theta, v, g = momentum_inputs(n, dtype)
    if variant.backend == "torch":
        return bind_torch_sgd(variant, theta, g)
    from dlbench.registry import get_kernel

    kern = get_kernel("sgd_momentum", variant.algorithm, variant.backend)
    if variant.backend == "numba-cuda":
        from numba import cuda

        dev = [cuda.to_device(a) for a in (theta, v, g)]
        return Bound(lambda: kern(*dev, LR, ALPHA), timer="cuda")
    return Bound(lambda: kern(theta, v, g, LR, ALPHA))


def bind_torch_sgd(variant: Variant, theta, g) -> Bound:
    """torch.optim.SGD(momentum) with the foreach or fused implementation as a peer."""
    import torch

    p = torch.nn.Parameter(torch.from_numpy(theta.copy()))
    p.grad = torch.from_numpy(g.copy())
    kw = {"foreach": True} if variant.algorithm == "foreach" else {"fused": True}
    try:
        opt = torch.optim.SGD([p], lr=LR, momentum=ALPHA, **kw)
        opt.step()
    except (RuntimeError, TypeError) as e:
        raise Skip(f"torch SGD {variant.algorithm} unavailable: {e}") from e
    return Bound(opt.step)


VARIANTS = [Variant("numpy", "fused"), Variant("numba", "fused"), Variant("cython", "fused"),
            Variant("numba-cuda", "fused"), Variant("torch", "foreach"), Variant("torch", "fused")]


def momentum_metrics(n):
    return lambda t: {"mparams_per_s": (n / t.median / 1e6, "Mparam/s")}


@define_suite("smoke", "SGD-with-momentum update (Alg. 8.2) on every backend", default=True)
def smoke(quick: bool):
    sizes = [1_000_000] if quick else [10_000, 1_000_000, 10_000_000]
    return [Case("smoke", f"momentum_n{n:.0e}".replace("+0", ""), "sgd_momentum", {"n": n}, VARIANTS,
                 lambda var, dt, n=n: bind_momentum(var, dt, n), dtype="float32",
                 metrics=momentum_metrics(n))
            for n in sizes]
