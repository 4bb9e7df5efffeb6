"""Suite ``conv-variants``: locally connected and tiled convolution, pooling, batch normalization.

- Locally connected (eq. 9.9) and tiled (eq. 9.10) convolution on 3x3 ResNet-like layers, at sizes
  whose per-location weights fit memory, forward and backward, GFLOP/s. Peers: the NumPy
  ``einsum``-over-patches baseline and torch (``unfold`` + one ``bmm`` over the tile patterns).
- Pooling (section 9.3) on ResNet feature maps: 3x3 stride-2 pooling of 64 x 112^2 maps (max, avg;
  the full run adds l2 and gaussian), global average pooling of 512 x 7^2 maps, adaptive max
  pooling to 6 x 6 and maxout; forward and backward, bandwidth bound (GB/s and the fraction of
  the calibrated memory bandwidth come from the ops' byte models).
- Batch normalization (eq. 8.35-8.37) on (32, 256, 14, 14) and (256, 4096): training forward
  (with running averages), inference forward, training backward.

torch peers call the ATen kernels directly where a backward is timed (e.g.
``max_pool2d_with_indices_backward`` with the forward's indices, ``native_batch_norm_backward``
with the saved statistics), so that both sides time the same work without autograd overhead;
our max-pooling backward likewise scatters from the forward's indices (``return_indices``).
"""

from __future__ import annotations

import numpy as np

from dlbench.suite import Bound, Case, Skip, Variant, define_suite

SUITE = "conv-variants"
OURS = [Variant("numpy", "direct"), Variant("numba", "direct"), Variant("cython", "direct")]
CONV_VARIANTS = [Variant("numpy", "einsum"), Variant("numpy", "direct"), Variant("numba", "direct"),
                 Variant("numba", "im2col"), Variant("cython", "direct"), Variant("cython", "im2col"),
                 Variant("torch", "unfold+bmm")]
# tiled convolution also as one strided conv2d per tile pattern (not defined for locally connected)
TILED_VARIANTS = CONV_VARIANTS[:-1] + [Variant("numba", "patterns"), Variant("cython", "patterns"),
                                       CONV_VARIANTS[-1]]


def _torch():
    try:
        import torch
    except ImportError as e:
        raise Skip(f"torch is not importable: {e}") from e
    return torch


def _rng(seed=0):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------- locally connected / tiled convolution
def conv_inputs(p, dtype):
    rng = _rng()
    ho = (p["h"] + 2 * p["pad"] - p["r"]) // p["stride"] + 1
    wo = (p["w"] + 2 * p["pad"] - p["s"]) // p["stride"] + 1
    th, tw = (p["th"], p.get("tw", p["th"])) if "th" in p else (ho, wo)
    x = rng.standard_normal((p["n"], p["c"], p["h"], p["w"])).astype(dtype)
    scale = 1.0 / np.sqrt(p["c"] * p["r"] * p["s"])
    w = (rng.standard_normal((th, tw, p["k"], p["c"], p["r"], p["s"])) * scale).astype(dtype)
    b = rng.standard_normal((th, tw, p["k"])).astype(dtype)
    dy = rng.standard_normal((p["n"], p["k"], ho, wo)).astype(dtype)
    return x, w, b, dy


def bind_conv(variant, dtype, op, p):
    from dlbench import ops

    x, w, b, dy = conv_inputs(p, dtype)
    st, pad = p["stride"], p["pad"]
    if variant.backend == "torch":
        return bind_torch_conv(x, w, b, dy, st, pad, op.endswith("_backward"))
    if variant.backend == "numba-cuda":
        raise Skip("no numba-cuda kernels for the convolution variants yet")
    kw = dict(backend=variant.backend, algorithm=variant.algorithm)
    fwd = ops.tiled_conv2d if op.startswith("tiled") else ops.local_conv2d
    bwd = ops.tiled_conv2d_backward if op.startswith("tiled") else ops.local_conv2d_backward
    if op.endswith("_backward"):
        return Bound(lambda: bwd(dy, x, w, st, pad, **kw))
    return Bound(lambda: fwd(x, w, b, st, pad, **kw))


def torch_tiled(torch, x, w, b, stride, pad):
    """Eq. 9.10 in torch: unfold, group the positions by tile pattern, one batched GEMM (bmm)."""
    th, tw, k, c, r, s = w.shape
    n = x.shape[0]
    ho = (x.shape[2] + 2 * pad - r) // stride + 1
    wo = (x.shape[3] + 2 * pad - s) // stride + 1
    a, bb, crs = ho // th, wo // tw, c * r * s
    cols = torch.nn.functional.unfold(x, (r, s), padding=pad, stride=stride)          # (N, CRS, L)
    cols = cols.reshape(n, crs, a, th, bb, tw).permute(3, 5, 0, 2, 4, 1).reshape(th * tw, n * a * bb, crs)
    y = torch.bmm(cols, w.reshape(th * tw, k, crs).transpose(1, 2))                    # (T, M, K)
    y = y + b.reshape(th * tw, 1, k)
    return y.reshape(th, tw, n, a, bb, k).permute(2, 5, 3, 0, 4, 1).reshape(n, k, ho, wo)


def bind_torch_conv(x, w, b, dy, stride, pad, backward):
    torch = _torch()
    tx, tw_, tb = (torch.from_numpy(a) for a in (x, w, b))
    if not backward:
        def fn():
            with torch.no_grad():
                return torch_tiled(torch, tx, tw_, tb, stride, pad)
        return Bound(fn)
    tx.requires_grad_(True)
    tw_.requires_grad_(True)
    tb.requires_grad_(True)
    y = torch_tiled(torch, tx, tw_, tb, stride, pad)    # graph built once; the backward is replayed
    tdy = torch.from_numpy(dy)

    def step():
        for t in (tx, tw_, tb):
            t.grad = None
        y.backward(tdy, retain_graph=True)
    return Bound(step)


def conv_cases(quick):
    shapes = [dict(n=8, c=32, h=16, w=16, k=32, r=3, s=3, stride=1, pad=1)] if quick else [
        dict(n=8, c=32, h=28, w=28, k=32, r=3, s=3, stride=1, pad=1),
        dict(n=8, c=64, h=14, w=14, k=64, r=3, s=3, stride=1, pad=1),
        dict(n=16, c=64, h=28, w=28, k=64, r=3, s=3, stride=2, pad=1)]
    tiles = [2] if quick else [1, 2, 4]
    cases = []
    for p in shapes:
        tag = f"n{p['n']}_c{p['c']}_{p['h']}x{p['w']}_k{p['k']}_s{p['stride']}"
        ho = (p["h"] + 2 * p["pad"] - p["r"]) // p["stride"] + 1
        probs = [("local_conv2d", dict(p), f"local_{tag}")]
        probs += [("tiled_conv2d", dict(p, th=t, tw=t), f"tiled_t{t}_{tag}") for t in tiles if ho % t == 0]
        for op, params, name in probs:
            for o, suffix in ((op, "fwd"), (op + "_backward", "bwd")):
                variants = TILED_VARIANTS if op.startswith("tiled") else CONV_VARIANTS
                cases.append(Case(SUITE, f"{name}_{suffix}", o, params, variants,
                                  lambda v, dt, o=o, params=params: bind_conv(v, dt, o, params)))
    return cases


# ---------------------------------------------------------------- pooling
POOL_VARIANTS = OURS + [Variant("torch", "aten")]


def pool_inputs(p, dtype):
    from dlbench import ops

    rng = _rng(1)
    x = rng.standard_normal((p["n"], p["c"], p["h"], p["w"])).astype(dtype)
    if "pieces" in p:
        out = (p["h"], p["w"])
    elif "out" in p:
        out = tuple(p["out"])
    elif "size" not in p:                  # global average pooling
        out = (1, 1)
    else:
        out = ops.pool_output_size((p["h"], p["w"]), (p["size"],) * 2, (p["stride"],) * 2,
                                   ((p["pad"],) * 2,) * 2, p.get("ceil_mode", False))
    c = p["c"] // p["pieces"] if "pieces" in p else p["c"]
    dy = rng.standard_normal((p["n"], c) + out).astype(dtype)
    return x, dy


def bind_pool(variant, dtype, op, p):
    from dlbench import ops

    x, dy = pool_inputs(p, dtype)
    if variant.backend == "torch":
        return bind_torch_pool(op, p, x, dy)
    if variant.backend not in ("numpy", "numba", "cython"):
        raise Skip(f"no {variant.backend} kernels for {op}")
    kw = dict(backend=variant.backend, algorithm=variant.algorithm)
    kind = p.get("kind", "max")
    if op in ("pool2d", "pool2d_backward"):
        args = (kind, p["size"], p["stride"], p["pad"], p.get("ceil_mode", False), p.get("sigma", 1.0))
        if op == "pool2d":
            return Bound(lambda: ops.pool2d(x, *args, **kw))
        if kind == "max":        # from the forward's indices, as torch does
            _, idx = ops.pool2d(x, *args, return_indices=True, **kw)
            return Bound(lambda: ops.pool2d_backward(dy, x, *args, indices=idx, **kw))
        y = ops.pool2d(x, *args, **kw) if kind == "l2" else None
        return Bound(lambda: ops.pool2d_backward(dy, x, *args, y=y, **kw))
    if op in ("adaptive_pool2d", "adaptive_pool2d_backward"):
        if op == "adaptive_pool2d":
            return Bound(lambda: ops.adaptive_pool2d(x, p["out"], kind, **kw))
        if kind == "max":
            _, idx = ops.adaptive_pool2d(x, p["out"], kind, return_indices=True, **kw)
            return Bound(lambda: ops.adaptive_pool2d_backward(dy, x, p["out"], kind, indices=idx, **kw))
        y = ops.adaptive_pool2d(x, p["out"], kind, **kw) if kind == "l2" else None
        return Bound(lambda: ops.adaptive_pool2d_backward(dy, x, p["out"], kind, y=y, **kw))
    if op == "global_avg_pool2d":
        return Bound(lambda: ops.global_avg_pool2d(x, **kw))
    if op == "global_avg_pool2d_backward":
        g = dy.reshape(x.shape[:2])
        return Bound(lambda: ops.global_avg_pool2d_backward(g, x.shape, **kw))
    pieces = p["pieces"]
    if op == "maxout":
        return Bound(lambda: ops.maxout(x, pieces, **kw))
    return Bound(lambda: ops.maxout_backward(dy, x, pieces, **kw))


def bind_torch_pool(op, p, x, dy):
    torch = _torch()
    aten = torch.ops.aten
    f = torch.nn.functional
    tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
    kind = p.get("kind", "max")
    if op.startswith("pool2d"):
        k, s, pad, ceil = [p["size"]] * 2, [p["stride"]] * 2, [p["pad"]] * 2, p.get("ceil_mode", False)
        if kind == "max":
            if op == "pool2d":
                return Bound(lambda: f.max_pool2d(tx, k, s, pad, ceil_mode=ceil))
            _, idx = aten.max_pool2d_with_indices(tx, k, s, pad, [1, 1], ceil)
            return Bound(lambda: aten.max_pool2d_with_indices_backward(tdy, tx, k, s, pad, [1, 1], ceil, idx))
        if kind == "avg":
            if op == "pool2d":
                return Bound(lambda: f.avg_pool2d(tx, k, s, pad, ceil, count_include_pad=False))
            return Bound(lambda: aten.avg_pool2d_backward(tdy, tx, k, s, pad, ceil, False, None))
        if kind == "l2" and p["pad"] == 0:
            if op == "pool2d":
                return Bound(lambda: f.lp_pool2d(tx, 2, k, s, ceil_mode=ceil))
            return _torch_autograd_backward(torch, lambda t: f.lp_pool2d(t, 2, k, s, ceil_mode=ceil), x, dy)
        raise Skip(f"torch has no {kind} pooling with these arguments")
    if op.startswith("adaptive_pool2d"):
        out = list(p["out"])
        if kind == "max":
            if op == "adaptive_pool2d":
                return Bound(lambda: f.adaptive_max_pool2d(tx, out))
            _, idx = aten.adaptive_max_pool2d(tx, out)
            return Bound(lambda: aten.adaptive_max_pool2d_backward(tdy, tx, idx))
        if op == "adaptive_pool2d":
            return Bound(lambda: f.adaptive_avg_pool2d(tx, out))
        return Bound(lambda: aten._adaptive_avg_pool2d_backward(tdy, tx))
    if op.startswith("global_avg_pool2d"):
        if op == "global_avg_pool2d":
            return Bound(lambda: f.adaptive_avg_pool2d(tx, 1))
        g = tdy.reshape(x.shape[0], x.shape[1], 1, 1).contiguous()
        return Bound(lambda: aten._adaptive_avg_pool2d_backward(g, tx))
    pieces = p["pieces"]
    n, c = x.shape[:2]
    if op == "maxout":
        return Bound(lambda: tx.reshape(n, c // pieces, pieces, *x.shape[2:]).amax(dim=2))
    def grouped_max(t):
        return t.reshape(n, c // pieces, pieces, *x.shape[2:]).amax(dim=2)

    return _torch_autograd_backward(torch, grouped_max, x, dy)


def _torch_autograd_backward(torch, fn, x, dy):
    """Backward only: the graph is built once and replayed (retain_graph)."""
    tx = torch.from_numpy(x).requires_grad_(True)
    y = fn(tx)
    tdy = torch.from_numpy(dy)

    def step():
        tx.grad = None
        y.backward(tdy, retain_graph=True)
    return Bound(step)


def pool_cases(quick):
    n = 4 if quick else 16
    resnet = dict(n=n, c=64, h=112, w=112, size=3, stride=2, pad=1)
    kinds = ["max", "avg"] if quick else ["max", "avg", "l2", "gaussian"]
    probs = []
    for kind in kinds:
        p = dict(resnet, kind=kind, pad=0 if kind == "l2" else 1)
        probs.append(("pool2d", p, f"{kind}pool_3x3s2_n{n}_64x112"))
    probs.append(("global_avg_pool2d", dict(n=32, c=512, h=7, w=7), "global_avg_n32_512x7"))
    probs.append(("adaptive_pool2d", dict(n=32, c=256, h=13, w=13, out=(6, 6), kind="max"),
                  "adaptive_max_6x6_n32_256x13"))
    probs.append(("maxout", dict(n=32, c=512, h=7, w=7, pieces=4), "maxout_4_n32_512x7"))
    cases = []
    for op, p, name in probs:
        for o, suffix in ((op, "fwd"), (op + "_backward", "bwd")):
            cases.append(Case(SUITE, f"{name}_{suffix}", o, p, POOL_VARIANTS,
                              lambda v, dt, o=o, p=p: bind_pool(v, dt, o, p)))
    return cases


# ---------------------------------------------------------------- batch normalization
BN_VARIANTS = OURS + [Variant("torch", "aten")]


def bn_inputs(shape, dtype):
    rng = _rng(2)
    c = shape[1]
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    gamma = (1 + 0.1 * rng.standard_normal(c)).astype(dtype)
    beta = (0.1 * rng.standard_normal(c)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    return x, gamma, beta, np.zeros(c, dtype), np.ones(c, dtype), dy


def bind_bn(variant, dtype, op, shape, training):
    from dlbench import ops

    x, gamma, beta, rm, rv, dy = bn_inputs(shape, dtype)
    if variant.backend == "torch":
        return bind_torch_bn(op, training, x, gamma, beta, rm, rv, dy)
    if variant.backend not in ("numpy", "numba", "cython"):
        raise Skip(f"no {variant.backend} kernels for {op}")
    kw = dict(backend=variant.backend, algorithm=variant.algorithm)
    if op == "batch_norm":
        return Bound(lambda: ops.batch_norm(x, gamma, beta, rm, rv, training, 0.1, 1e-5, **kw))
    _, mean, invstd = ops.batch_norm(x, gamma, beta, training=True, return_stats=True, **kw)
    return Bound(lambda: ops.batch_norm_backward(dy, x, gamma, mean, invstd, training=True, **kw))


def bind_torch_bn(op, training, x, gamma, beta, rm, rv, dy):
    torch = _torch()
    aten = torch.ops.aten
    tx, tg, tb, trm, trv, tdy = (torch.from_numpy(a) for a in (x, gamma, beta, rm.copy(), rv.copy(), dy))
    if op == "batch_norm":
        return Bound(lambda: aten.native_batch_norm(tx, tg, tb, trm, trv, training, 0.1, 1e-5))
    _, mean, invstd = aten.native_batch_norm(tx, tg, tb, trm, trv, True, 0.1, 1e-5)
    return Bound(lambda: aten.native_batch_norm_backward(tdy, tx, tg, trm, trv, mean, invstd, True, 1e-5,
                                                         [True, True, True]))


def bn_cases(quick):
    cases = []
    for shape in ([32, 256, 14, 14], [256, 4096]):
        tag = "x".join(map(str, shape))
        for op, training, name in (("batch_norm", True, "train_fwd"), ("batch_norm", False, "eval_fwd"),
                                   ("batch_norm_backward", True, "train_bwd")):
            params = {"shape": shape, "training": training}
            cases.append(Case(SUITE, f"bn_{tag}_{name}", op, params, BN_VARIANTS,
                              lambda v, dt, o=op, s=tuple(shape), t=training: bind_bn(v, dt, o, s, t)))
    return cases


@define_suite(SUITE, "locally connected and tiled convolution (eq. 9.9-9.10), pooling (9.3), batch norm "
                     "(eq. 8.35-8.37), forward and backward, vs torch and a NumPy einsum baseline")
def conv_variants(quick: bool):
    return bn_cases(quick) + pool_cases(quick) + conv_cases(quick)
