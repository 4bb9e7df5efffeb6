"""Suite ``conv``: the convolution layers of ResNet-50, Inception, DeepBench and convnet-benchmarks,
forward (eq. 9.7/9.8), data gradient (eq. 9.12-9.13) and weight gradient (eq. 9.11).

Shapes (C -> K, input, kernel, stride, padding; N = 1 with --quick, N = 8 with --full):
ResNet conv1 3->64 224^2 7x7 s2 p3; 64->64 56^2 3x3 p1; 64->256 56^2 1x1; 256->64 56^2 1x1;
512->256 28^2 1x1 s2; 128->128 28^2 3x3 p1; 256->256 14^2 3x3 p1; 512->512 7^2 3x3 p1;
Inception 192->32 28^2 5x5 p2; DeepBench speech 1->32 161x700 5x20 s2 (no padding);
convnet-benchmarks L4 128->128 16^2 7x7 (no padding: the issue gives none); depthwise 32
channels 112^2 3x3 groups=32 (padding 1, as in MobileNet; the issue gives none).

Variants: numpy (the reference; with --quick only on layers under QUICK_NUMPY_GFLOP), numba and
cython with ``auto`` and every eligible explicit algorithm (see ``wanted`` for ``separable``),
torch as the peer (``torch.nn.functional.conv2d``; gradients with ``torch.nn.grad.conv2d_input``
/ ``conv2d_weight``, which autograd calls), and scipy
(``scipy.signal.correlate``) where it computes the same thing: single input channel, no groups.
The ``chosen`` column of an ``auto`` row names the algorithm the autotuner picked. The
``separable`` variant runs on a rank-1 kernel of the same shape (its work does not depend on
the values); every other variant on the same seeded random weights.
"""

from __future__ import annotations

import numpy as np

from dlbench.suite import Bound, Case, Skip, Variant, define_suite

# name, C, K, H, W, R, S, stride, padding, groups
SHAPES = [
    ("resnet_conv1_7x7s2", 3, 64, 224, 224, 7, 7, 2, 3, 1),
    ("resnet_3x3_56", 64, 64, 56, 56, 3, 3, 1, 1, 1),
    ("resnet_1x1_56_expand", 64, 256, 56, 56, 1, 1, 1, 0, 1),
    ("resnet_1x1_56_reduce", 256, 64, 56, 56, 1, 1, 1, 0, 1),
    ("resnet_1x1_28_s2", 512, 256, 28, 28, 1, 1, 2, 0, 1),
    ("resnet_3x3_28", 128, 128, 28, 28, 3, 3, 1, 1, 1),
    ("resnet_3x3_14", 256, 256, 14, 14, 3, 3, 1, 1, 1),
    ("resnet_3x3_7", 512, 512, 7, 7, 3, 3, 1, 1, 1),
    ("inception_5x5", 192, 32, 28, 28, 5, 5, 1, 2, 1),
    ("deepbench_speech", 1, 32, 161, 700, 5, 20, 2, 0, 1),
    ("convnet_L4_7x7", 128, 128, 16, 16, 7, 7, 1, 0, 1),
    ("depthwise_3x3_112", 32, 32, 112, 112, 3, 3, 1, 1, 32),
]
OPS = {"fwd": "conv2d", "bwd_data": "conv2d_backward_data", "bwd_weight": "conv2d_backward_weight"}
ALGORITHMS = ["direct", "im2col", "gemm1x1", "kn2row", "fft", "winograd", "winograd_f2", "separable"]
# the NumPy reference above this many GFLOP is left out of --quick (it runs at BLAS speed, but
# one pass over every offset of a 7x7 or 5x20 kernel still takes seconds)
QUICK_NUMPY_GFLOP = 0.25


def shape_params(shape, n: int) -> dict:
    name, c, k, h, w, r, s, stride, padding, groups = shape
    return {"N": n, "C": c, "K": k, "H": h, "W": w, "R": r, "S": s, "stride": stride, "padding": padding,
            "dilation": 1, "groups": groups}


def make_inputs(params: dict, dtype: str, seed: int = 0, rank1: bool = False):
    """Seeded x (N,C,H,W), w (K,C/g,R,S) and dy (N,K,P,Q), unit-variance scaled by fan-in."""
    from dlbench.ops.conv import ConvGeometry

    g = ConvGeometry.from_params(2, params)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(g.x_shape, dtype=np.float32).astype(dtype)
    fan_in = (g.C // g.groups) * g.kernel[0] * g.kernel[1]
    if rank1:
        u = rng.standard_normal(g.w_shape[:3], dtype=np.float32)
        v = rng.standard_normal(g.w_shape[:2] + g.w_shape[3:], dtype=np.float32)
        w = (u[..., :, None] * v[..., None, :] / fan_in).astype(dtype)
    else:
        w = (rng.standard_normal(g.w_shape, dtype=np.float32) / np.sqrt(fan_in)).astype(dtype)
    dy = rng.standard_normal(g.y_shape, dtype=np.float32).astype(dtype)
    return g, x, w, dy


def _kw(g):
    return dict(stride=g.stride, padding=g.padding, dilation=g.dilation, groups=g.groups)


def bind_ours(which: str, variant: Variant, dtype: str, params: dict) -> Bound:
    """A call of dlbench.ops on fresh inputs; for ``auto`` the chosen algorithm goes in extra."""
    from dlbench import autotune, ops

    g, x, w, dy = make_inputs(params, dtype, rank1=variant.algorithm == "separable")
    kw = dict(_kw(g), algorithm=variant.algorithm, backend=variant.backend)
    if which == "fwd":
        fn = lambda: ops.conv2d(x, w, **kw)
    elif which == "bwd_data":
        fn = lambda: ops.conv2d_backward_data(dy, w, g.x_shape, **kw)
    else:
        fn = lambda: ops.conv2d_backward_weight(x, dy, g.w_shape, **kw)
    if variant.algorithm != "auto":
        return Bound(fn)
    extra: dict = {}
    op = OPS[which]

    def call():
        out = fn()
        extra["chosen"] = autotune.last_choice(op) or ""
        return out

    return Bound(call, extra=extra)


def bind_torch(which: str, dtype: str, params: dict) -> Bound:
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        raise Skip(f"torch is not importable: {e}") from e
    g, x, w, dy = make_inputs(params, dtype)
    (pt, pb), (pl, pr) = g.padding
    if pt != pb or pl != pr:
        raise Skip("asymmetric padding: torch.nn.functional.conv2d pads symmetrically")
    xt, wt, dyt = (torch.from_numpy(a) for a in (x, w, dy))
    kw = dict(stride=g.stride, padding=(pt, pl), dilation=g.dilation, groups=g.groups)
    if which == "fwd":
        def fn():
            with torch.no_grad():
                return F.conv2d(xt, wt, **kw)
    elif which == "bwd_data":
        def fn():
            with torch.no_grad():
                return torch.nn.grad.conv2d_input(g.x_shape, wt, dyt, **kw)
    else:
        def fn():
            with torch.no_grad():
                return torch.nn.grad.conv2d_weight(xt, g.w_shape, dyt, **kw)
    return Bound(fn)


def bind_scipy(which: str, dtype: str, params: dict) -> Bound:
    """scipy.signal.correlate per (image, output channel) for single-input-channel layers."""
    try:
        from scipy import signal
    except ImportError as e:
        raise Skip(f"scipy is not importable: {e}") from e
    g, x, w, dy = make_inputs(params, dtype)
    if g.C != 1 or g.groups != 1:
        raise Skip("scipy.signal.correlate is single-channel: only layers with C = 1 map onto it")
    if which != "fwd":
        raise Skip("scipy.signal has no convolution gradients")
    (pt, pb), (pl, pr) = g.padding
    sh, sw = g.stride
    xp = np.pad(x[:, 0], ((0, 0), (pt, pb), (pl, pr)))
    p, q = g.out_size

    def fn():
        y = np.empty(g.y_shape, dtype=x.dtype)
        for n in range(g.N):
            for k in range(g.K):
                y[n, k] = signal.correlate(xp[n], w[k, 0], mode="valid", method="auto")[::sh, ::sw][:p, :q]
        return y

    return Bound(fn)


def eligible(params: dict, algorithm: str, op: str) -> bool:
    from dlbench.registry import KERNELS, load_builtin_kernels

    load_builtin_kernels()
    kern = KERNELS.get((op, algorithm, "numba")) or KERNELS.get((op, algorithm, "cython"))
    return kern is not None and kern.applies("float32", **params) is None


def wanted(params: dict, algorithm: str, quick: bool) -> bool:
    """Explicit algorithms measured for a shape: every eligible one, except that ``separable`` is
    left out for 1-wide kernels (trivially rank-1: it is then a plain product) and, with --quick,
    for layers with more than 3 input channels per group (it works per (k, c) pair)."""
    if algorithm != "separable":
        return True
    if params["R"] == 1 or params["S"] == 1:
        return False
    return not quick or params["C"] // params["groups"] <= 3


def variants_for(params: dict, which: str, quick: bool, gflop: float) -> list[Variant]:
    op = OPS[which]
    out = []
    if not (quick and gflop > QUICK_NUMPY_GFLOP):
        out.append(Variant("numpy", "reference"))
    for backend in ("numba", "cython"):
        out.append(Variant(backend, "auto"))
        out += [Variant(backend, a) for a in ALGORITHMS
                if eligible(params, a, op) and wanted(params, a, quick)]
    out.append(Variant("torch", "nn.functional" if which == "fwd" else "nn.grad"))
    if params["C"] == 1 and params["groups"] == 1 and which == "fwd":
        out.append(Variant("scipy", "signal.correlate"))
    return out


def bind(which: str, params: dict):
    def _bind(variant: Variant, dtype: str):
        if variant.backend == "torch":
            return bind_torch(which, dtype, params)
        if variant.backend == "scipy":
            return bind_scipy(which, dtype, params)
        return bind_ours(which, variant, dtype, params)
    return _bind


def conv_cases(quick: bool, shapes=SHAPES, ops=tuple(OPS)) -> list[Case]:
    from dlbench.ops.conv import ConvGeometry

    n = 1 if quick else 8
    cases = []
    for shape in shapes:
        params = shape_params(shape, n)
        gflop = ConvGeometry.from_params(2, params).flops() / 1e9
        for which in ops:
            cases.append(Case("conv", f"{shape[0]}_{which}", OPS[which], params,
                              variants_for(params, which, quick, gflop), bind(which, params), dtype="float32",
                              target_time=0.05 if quick else None))
    return cases


@define_suite("conv", "Convolution layers (ResNet, Inception, DeepBench, depthwise): forward and both "
                      "gradients, every algorithm, numpy/numba/cython vs torch and scipy")
def conv_suite(quick: bool):
    return conv_cases(quick)
