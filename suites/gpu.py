"""Suite ``gpu``: the numba-cuda kernels on a real GPU against torch CUDA (cuDNN, fused optimizers).

Cases (float32, N = 8):

- conv2d forward (eq. 9.7/9.8) on the 3x3 ResNet layers 64@56^2, 128@28^2, 256@14^2, 512@7^2
  (padding 1) vs ``torch.nn.functional.conv2d`` on cuDNN with TF32 off
  (``torch.backends.cudnn.allow_tf32 = False``, ``torch.backends.cuda.matmul.allow_tf32 = False``)
  and ``cudnn.benchmark = True`` (cuDNN picks its fastest algorithm, like our ``auto``);
- pooling (sec. 9.3): the ResNet stem max pool 3x3/2 pad 1 on 64@112^2 and a 2x2/2 average pool
  on 128@56^2 vs ``F.max_pool2d`` / ``F.avg_pool2d``;
- batch norm (eq. 8.35-8.37) training forward and backward on 64@56^2 and 256@14^2 vs
  ``torch.batch_norm`` / ``aten.native_batch_norm_backward``;
- the optimizer updates Adam (Algorithm 8.7) and SGD with momentum (Algorithm 8.2) at 1e7 and
  1e8 parameters vs torch.optim with ``fused=True`` on CUDA.

``--full`` adds the data and weight gradients of the conv layers, the ``direct`` algorithm, the
1x1 and depthwise layers, and the pooling / batch-norm shapes' backward passes.

Metrics: the numba-cuda variants run on device-resident inputs with a preallocated output
(``Bound(fn, timer="cuda")``: CUDA events around the call, the *device-resident* metric); the
``<algorithm>+h2h`` variants pass NumPy arrays, so the host-to-device and device-to-host copies
are inside the timed call (*host-to-host*, timed on the CPU clock after a synchronize). Each
device variant also records ``max_rel_error`` against torch's result on the same inputs.
Without a GPU every variant is recorded as skipped (the simulator is never timed).

:func:`markdown_table` turns a run's rows into the comparison table of ``scripts/gpu_check.sh``;
:func:`run_standalone` measures the suite without the results store (the script's fallback when
the runner's own dependencies are missing on a machine).
"""

from __future__ import annotations

import math

import numpy as np

from dlbench.suite import Bound, Case, Skip, Variant, define_suite

N = 8
RESNET_3X3 = [(64, 56), (128, 28), (256, 14), (512, 7)]
CONV_OPS = {"fwd": "conv2d", "bwd_data": "conv2d_backward_data", "bwd_weight": "conv2d_backward_weight"}
CUDA, H2H = "numba-cuda", "+h2h"
TARGETS = {"conv": 0.3, "pool": 0.7, "bn": 0.7, "optim": 1.0}   # speed vs torch (torch time / ours)
OPTIM_BW_TARGET = 0.8                                             # fraction of the calibrated HBM GB/s


# ------------------------------------------------------------------ environment checks
def need_gpu():
    """Skip unless numba-cuda runs on a real GPU."""
    from dlbench.backends import backend_status

    st = backend_status(CUDA)
    if not st.available or not st.mode.startswith("gpu"):
        raise Skip(f"numba-cuda needs a real GPU here ({st.mode or 'none'}: {st.reason or 'unavailable'})")


def need_torch_cuda():
    """torch with a CUDA device, TF32 off everywhere and cuDNN's benchmark mode on; Skip otherwise."""
    try:
        import torch
    except ImportError as e:
        raise Skip(f"torch is not installed: {e}") from e
    if not torch.cuda.is_available():
        raise Skip("torch sees no CUDA device")
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    return torch


def rel_error(got, want) -> float:
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def _algorithm(variant: Variant):
    return variant.algorithm[: -len(H2H)] if variant.algorithm.endswith(H2H) else variant.algorithm


def _torch_check(torch_ref):
    """A check closure: relative error of ``ours()`` (host array) against torch's result, or None."""
    def make(ours):
        def check():
            try:
                ref = torch_ref()
            except Skip:
                return float("nan")
            return rel_error(ours(), ref)
        return check
    return make


def _bind_ours(variant: Variant, call_dev, call_host, result_host, torch_ref, extra=None) -> Bound:
    """Device-resident Bound (CUDA events) or host-to-host Bound (``+h2h``) of one numba-cuda call."""
    from numba import cuda

    check = _torch_check(torch_ref)(result_host) if torch_ref is not None else None
    if variant.algorithm.endswith(H2H):
        return Bound(call_host, timer="cpu", sync=cuda.synchronize, check=check,
                     extra={"device": "cuda", "transfer": "host-to-host", **(extra or {})})
    return Bound(call_dev, timer="cuda", check=check,
                 extra={"device": "cuda", "transfer": "device-resident", "result": result_host,
                        **(extra or {})})


# ------------------------------------------------------------------ convolution
def conv_params(c: int, hw: int, k: int | None = None, r: int = 3, stride: int = 1, padding: int = 1,
                groups: int = 1) -> dict:
    return {"N": N, "C": c, "K": k or c, "H": hw, "W": hw, "R": r, "S": r, "stride": stride,
            "padding": padding, "dilation": 1, "groups": groups}


def _conv_inputs(params, dtype, seed=0):
    from dlbench.ops.conv import ConvGeometry

    g = ConvGeometry.from_params(2, params)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(g.x_shape, dtype=np.float32).astype(dtype)
    fan_in = (g.C // g.groups) * g.kernel[0] * g.kernel[1]
    w = (rng.standard_normal(g.w_shape, dtype=np.float32) / np.sqrt(fan_in)).astype(dtype)
    dy = rng.standard_normal(g.y_shape, dtype=np.float32).astype(dtype)
    return g, x, w, dy


def _torch_conv(which, g, x, w, dy):
    torch = need_torch_cuda()
    tx, tw, tdy = (torch.from_numpy(a).cuda() for a in (x, w, dy))
    kw = dict(stride=g.stride, padding=tuple(p[0] for p in g.padding), dilation=g.dilation, groups=g.groups)
    if which == "fwd":
        return lambda: torch.nn.functional.conv2d(tx, tw, **kw)
    if which == "bwd_data":
        return lambda: torch.nn.grad.conv2d_input(tx.shape, tw, tdy, **kw)
    return lambda: torch.nn.grad.conv2d_weight(tx, tw.shape, tdy, **kw)


def bind_conv(which: str, variant: Variant, dtype: str, params: dict) -> Bound:
    """One conv call (forward / data gradient / weight gradient) for a variant."""
    op = CONV_OPS[which]
    if variant.backend == "torch":
        need_torch_cuda()
        g, x, w, dy = _conv_inputs(params, dtype)
        fn = _torch_conv(which, g, x, w, dy)
        return Bound(fn, timer="cuda", extra={"device": "cuda"})
    need_gpu()
    from numba import cuda

    from dlbench.registry import get_kernel

    kern = get_kernel(op, _algorithm(variant), CUDA)
    g, x, w, dy = _conv_inputs(params, dtype)
    geo = (g.stride, g.padding, g.dilation, g.groups)
    if which == "fwd":
        a, b, out_shape, host_args = x, w, g.y_shape, (x, w)
    elif which == "bwd_data":
        a, b, out_shape, host_args = dy, w, g.x_shape, (dy, w, g.x_shape)
    else:
        a, b, out_shape, host_args = x, dy, g.w_shape, (x, dy, g.w_shape)
    da, db = cuda.to_device(a), cuda.to_device(b)
    out = cuda.device_array(out_shape, dtype)
    dev_args = (da, db) if which == "fwd" else (da, db, host_args[2])

    def torch_ref():
        t = _torch_conv(which, g, x, w, dy)()
        return t.cpu().numpy()

    return _bind_ours(variant, lambda: kern(*dev_args, *geo, out=out), lambda: kern(*host_args, *geo),
                      out.copy_to_host, torch_ref)


def _conv_variants(algs=("implicit_gemm",)):
    vs = [Variant(CUDA, a) for a in algs]
    return vs + [Variant(CUDA, algs[0] + H2H), Variant("torch", "cudnn")]


def conv_cases(quick: bool) -> list[Case]:
    cases = []
    whiches = ("fwd",) if quick else ("fwd", "bwd_data", "bwd_weight")
    algs = ("implicit_gemm",) if quick else ("implicit_gemm", "direct")
    shapes = [(f"resnet_3x3_{c}x{hw}", conv_params(c, hw), algs) for c, hw in RESNET_3X3]
    if not quick:
        shapes += [("resnet_1x1_256to64x56", conv_params(256, 56, k=64, r=1, padding=0), ("gemm1x1",)),
                   ("resnet_1x1_64to256x56", conv_params(64, 56, k=256, r=1, padding=0), ("gemm1x1",)),
                   ("depthwise_3x3_128x56", conv_params(128, 56, groups=128), ("depthwise",))]
    for which in whiches:
        op = CONV_OPS[which]
        for name, params, a in shapes:
            cases.append(Case("gpu", f"conv_{which}_{name}_n{N}", op, params, _conv_variants(a),
                              lambda var, dt, which=which, params=params: bind_conv(which, var, dt, params),
                              dtype="float32"))
    return cases


# ------------------------------------------------------------------ pooling
POOLS = [("maxpool_3x3s2_64x112", {"n": N, "c": 64, "h": 112, "w": 112, "size": 3, "stride": 2, "pad": 1,
                                   "kind": "max"}),
         ("avgpool_2x2s2_128x56", {"n": N, "c": 128, "h": 56, "w": 56, "size": 2, "stride": 2, "pad": 0,
                                   "kind": "avg"})]


def bind_pool(backward: bool, variant: Variant, dtype: str, p: dict) -> Bound:
    """Windowed pooling (or its gradient) of x (n, c, h, w) for a variant."""
    from dlbench.ops._common import resolve_padding
    from dlbench.ops.pool import pool_output_size

    size, stride = (p["size"],) * 2, (p["stride"],) * 2
    pads = resolve_padding(p["pad"], size, (1, 1))
    out = pool_output_size((p["h"], p["w"]), size, stride, pads)
    rng = np.random.default_rng(0)

    def inputs():
        x = rng.standard_normal((p["n"], p["c"], p["h"], p["w"]), dtype=np.float32).astype(dtype)
        dy = rng.standard_normal((p["n"], p["c"]) + out, dtype=np.float32).astype(dtype)
        return x, dy

    def torch_call(x, dy):
        torch = need_torch_cuda()
        tx = torch.from_numpy(x).cuda().requires_grad_(backward)
        F = torch.nn.functional
        if p["kind"] == "max":
            f = lambda t: F.max_pool2d(t, size, stride, p["pad"])
        else:
            f = lambda t: F.avg_pool2d(t, size, stride, p["pad"], count_include_pad=False)
        if not backward:
            return lambda: f(tx)
        y = f(tx)
        tdy = torch.from_numpy(dy).cuda()
        return lambda: torch.autograd.grad(y, tx, tdy, retain_graph=True)[0]

    if variant.backend == "torch":
        need_torch_cuda()
        return Bound(torch_call(*inputs()), timer="cuda", extra={"device": "cuda"})
    need_gpu()
    from numba import cuda

    from dlbench.registry import get_kernel

    x, dy = inputs()
    kind = p["kind"]
    fwd = get_kernel("pool2d", _algorithm(variant), CUDA)
    dx_ = cuda.to_device(x)
    if backward:
        bwd = get_kernel("pool2d_backward", _algorithm(variant), CUDA)
        ddy = cuda.to_device(dy)
        res = cuda.device_array(x.shape, dtype)
        dev = lambda: bwd(ddy, dx_, None, kind, size, stride, pads, out, 1.0, out_buf=res)
        host = lambda: bwd(dy, x, None, kind, size, stride, pads, out, 1.0)
    else:
        res = cuda.device_array((p["n"], p["c"]) + out, dtype)
        dev = lambda: fwd(dx_, kind, size, stride, pads, out, 1.0, out_buf=res)
        host = lambda: fwd(x, kind, size, stride, pads, out, 1.0)

    def torch_ref():
        r = torch_call(x, dy)()
        return r.detach().cpu().numpy()

    return _bind_ours(variant, dev, host, res.copy_to_host, torch_ref)


def pool_cases(quick: bool) -> list[Case]:
    variants = [Variant(CUDA, "direct"), Variant(CUDA, "direct" + H2H), Variant("torch", "cuda")]
    cases = []
    for backward in (False,) if quick else (False, True):
        op = "pool2d_backward" if backward else "pool2d"
        for name, p in POOLS:
            cases.append(Case("gpu", f"{'pool_bwd' if backward else 'pool'}_{name}_n{N}", op, p, variants,
                              lambda var, dt, b=backward, p=p: bind_pool(b, var, dt, p), dtype="float32"))
    return cases


# ------------------------------------------------------------------ batch norm
BN_SHAPES = [("64x56", (N, 64, 56, 56)), ("256x14", (N, 256, 14, 14))]
EPS = 1e-5


def bind_bn(backward: bool, variant: Variant, dtype: str, shape) -> Bound:
    """Batch norm training forward or backward (eq. 8.35-8.37) on x of ``shape``."""
    need_torch_cuda() if variant.backend == "torch" else need_gpu()
    rng = np.random.default_rng(0)
    c = shape[1]
    x = (rng.standard_normal(shape, dtype=np.float32) * 2 + 1).astype(dtype)
    dy = rng.standard_normal(shape, dtype=np.float32).astype(dtype)
    gamma = (1 + 0.1 * rng.standard_normal(c)).astype(dtype)
    beta = (0.1 * rng.standard_normal(c)).astype(dtype)
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=(0, 2, 3)).astype(dtype)
    invstd = (1.0 / np.sqrt(x64.var(axis=(0, 2, 3)) + EPS)).astype(dtype)

    def torch_call():
        torch = need_torch_cuda()
        tx, tdy, tg, tb = (torch.from_numpy(a).cuda() for a in (x, dy, gamma, beta))
        rm, rv = torch.zeros(c, device="cuda"), torch.ones(c, device="cuda")
        if not backward:
            return lambda: torch.batch_norm(tx, tg, tb, rm, rv, True, 0.1, EPS, True)
        _, smean, sinv = torch.native_batch_norm(tx, tg, tb, rm, rv, True, 0.1, EPS)
        bwd = torch.ops.aten.native_batch_norm_backward
        return lambda: bwd(tdy, tx, tg, rm, rv, smean, sinv, True, EPS, [True, True, True])[0]

    if variant.backend == "torch":
        return Bound(torch_call(), timer="cuda", extra={"device": "cuda"})
    from numba import cuda

    from dlbench.registry import get_kernel

    x3, dy3 = x.reshape(shape[0], c, -1), dy.reshape(shape[0], c, -1)
    res = cuda.device_array(x3.shape, dtype)
    stats = (cuda.device_array(c, dtype), cuda.device_array(c, dtype))
    if backward:
        kern = get_kernel("batch_norm_backward", _algorithm(variant), CUDA)
        d = [cuda.to_device(a) for a in (dy3, x3, gamma, mean, invstd)]
        dev = lambda: kern(*d, True, out=res, grads_out=stats)
        host = lambda: kern(dy3, x3, gamma, mean, invstd, True)
    else:
        kern = get_kernel("batch_norm", _algorithm(variant), CUDA)
        zeros = np.zeros(c, dtype)
        d = [cuda.to_device(a) for a in (x3, gamma, beta, zeros, zeros)]
        dev = lambda: kern(*d, True, EPS, out=res, stats_out=stats)
        host = lambda: kern(x3, gamma, beta, zeros, zeros, True, EPS)

    def torch_ref():
        r = torch_call()()
        return r.cpu().numpy().reshape(x3.shape)

    return _bind_ours(variant, dev, host, res.copy_to_host, torch_ref)


def bn_cases(quick: bool) -> list[Case]:
    variants = [Variant(CUDA, "direct"), Variant(CUDA, "direct" + H2H), Variant("torch", "cudnn")]
    cases = []
    for backward in (False, True):
        op = "batch_norm_backward" if backward else "batch_norm"
        for name, shape in BN_SHAPES:
            params = {"shape": list(shape), "training": True}
            name = f"{'bn_bwd' if backward else 'bn_fwd'}_{name}_n{N}"
            cases.append(Case("gpu", name, op, params, variants,
                              lambda var, dt, b=backward, s=shape: bind_bn(b, var, dt, s), dtype="float32"))
    return cases


# ------------------------------------------------------------------ optimizers
LR, BETA1, BETA2, ADAM_EPS, ALPHA = 1e-3, 0.9, 0.999, 1e-8, 0.9
OPTIM_SIZES = (10_000_000, 100_000_000)


def bind_optim(rule: str, variant: Variant, dtype: str, n: int) -> Bound:
    """One fused update of n parameters: Adam (Alg. 8.7) or momentum (Alg. 8.2)."""
    if variant.backend == "torch":
        torch = need_torch_cuda()
        gen = torch.Generator(device="cuda").manual_seed(0)
        p = torch.nn.Parameter(torch.randn(n, device="cuda", generator=gen))
        p.grad = torch.randn(n, device="cuda", generator=gen)
        if rule == "adam":
            opt = torch.optim.Adam([p], lr=LR, betas=(BETA1, BETA2), eps=ADAM_EPS, fused=True)
        else:
            opt = torch.optim.SGD([p], lr=LR, momentum=ALPHA, fused=True)
        opt.step()
        return Bound(opt.step, timer="cuda", extra={"device": "cuda", "impl": "fused"})
    need_gpu()
    from numba import cuda

    from dlbench.registry import get_kernel

    rng = np.random.default_rng(0)
    theta = rng.standard_normal(n, dtype=np.float32).astype(dtype)
    g = rng.standard_normal(n, dtype=np.float32).astype(dtype)
    zeros = np.zeros(n, dtype)
    h2h = variant.algorithm.endswith(H2H)
    kern = get_kernel("adam" if rule == "adam" else "sgd_momentum", _algorithm(variant), CUDA)
    arrays = (theta, zeros.copy(), zeros.copy(), g) if rule == "adam" else (theta, zeros.copy(), g)
    if not h2h:
        arrays = tuple(cuda.to_device(a) for a in arrays)
    if rule == "adam":
        call = lambda: kern(*arrays, LR, BETA1, BETA2, ADAM_EPS, 1)
    else:
        call = lambda: kern(*arrays, LR, ALPHA)
    return _bind_ours(variant, call, call, None, None, extra={"impl": "fused"})


def optim_cases(quick: bool) -> list[Case]:
    from dlbench import optim  # noqa: F401 - defines the optimizer ops' byte models

    cases = []
    for rule, op in (("adam", "adam"), ("momentum", "sgd_momentum")):
        for n in OPTIM_SIZES:
            variants = [Variant(CUDA, "fused")]
            if n <= 10_000_000:
                variants.append(Variant(CUDA, "fused" + H2H))      # 1e8: minutes of PCIe copies
            variants.append(Variant("torch", "fused"))
            label = f"n{n:.0e}".replace("+0", "").replace("+", "")
            cases.append(Case("gpu", f"optim_{rule}_{label}", op, {"n": n}, variants,
                              lambda var, dt, rule=rule, n=n: bind_optim(rule, var, dt, n), dtype="float32",
                              metrics=lambda t, n=n: {"mparams_per_s": (n / t.median / 1e6, "Mparam/s")}))
    return cases


@define_suite("gpu", "numba-cuda conv / pooling / batch norm / optimizer kernels vs torch CUDA (cuDNN)")
def gpu_suite(quick: bool):
    from dlbench import ops  # noqa: F401 - defines the conv / pooling / batch-norm ops' models

    return conv_cases(quick) + pool_cases(quick) + bn_cases(quick) + optim_cases(quick)


# ------------------------------------------------------------------ reporting
def _family(benchmark: str) -> str:
    for fam in ("conv", "pool", "bn", "optim"):
        if benchmark.startswith(fam):
            return fam
    return ""


def summarize(df, gpu_cal: dict | None = None):
    """One row per benchmark: our best device-resident variant, +h2h, torch, ratios and targets.

    df: long-format rows (the runner's results or :func:`run_standalone`'s); gpu_cal: the dict of
    ``dlbench.calibrate_gpu.calibrate_gpu()`` for the fractions of peak (optional).
    """
    import pandas as pd

    gpu_cal = gpu_cal or {}
    df = df[df["suite"] == "gpu"] if "suite" in df else df
    value = pd.to_numeric(df["value"], errors="coerce")
    df = df.assign(value=value)
    rows = []
    for bench, grp in df.groupby("benchmark", sort=False):
        t = grp[grp["metric"] == "time"]
        ok = t[t["status"] == "ok"]
        ours = ok[(ok["backend"] == CUDA) & ~ok["algorithm"].str.endswith(H2H)]
        h2h = ok[(ok["backend"] == CUDA) & ok["algorithm"].str.endswith(H2H)]
        torch_ = ok[ok["backend"] == "torch"]
        best = ours.loc[ours["value"].idxmin()] if len(ours) else None
        fam = _family(str(bench))
        row = {"benchmark": bench, "op": grp["op"].iloc[0],
               "ours_alg": best["algorithm"] if best is not None else "",
               "ours_us": best["value"] * 1e6 if best is not None else math.nan,
               "h2h_us": h2h["value"].min() * 1e6 if len(h2h) else math.nan,
               "torch_us": torch_["value"].min() * 1e6 if len(torch_) else math.nan}
        row["speed_vs_torch"] = row["torch_us"] / row["ours_us"]
        sel = grp[(grp["backend"] == CUDA) & (grp["algorithm"] == row["ours_alg"])]

        def metric(name, sel=sel):
            v = sel[sel["metric"] == name]["value"]
            return float(v.iloc[0]) if len(v) else math.nan

        row["gflops"] = metric("gflops")
        row["gbs"] = metric("gbs")
        row["max_rel_error"] = metric("max_rel_error")
        if fam == "conv":
            row["frac_peak"] = row["gflops"] / gpu_cal.get("gpu_peak_gflops", math.nan)
        else:
            row["frac_peak"] = row["gbs"] / gpu_cal.get("gpu_bw_gbs", math.nan)
        target = TARGETS.get(fam, math.nan)
        row["target"] = f">= {target:g}x torch"
        if fam == "optim":
            row["target"] += f", >= {OPTIM_BW_TARGET:.0%} HBM"
        met = row["speed_vs_torch"] >= target
        if fam == "optim":
            met = met and row["frac_peak"] >= OPTIM_BW_TARGET
        row["met"] = "yes" if met else ("no" if math.isfinite(row["speed_vs_torch"]) else "n/a")
        skipped = t[t["status"] != "ok"]
        row["notes"] = "; ".join(f"{r.backend}/{r.algorithm}: {r.status} ({str(r.message)[:80]})"
                                 for r in skipped.itertuples())
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(v, spec):
    return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def markdown_table(df, gpu_cal: dict | None = None) -> str:
    """The Markdown comparison table (times are medians in microseconds)."""
    s = summarize(df, gpu_cal)
    head = ("| benchmark | numba-cuda (alg) | µs | +h2h µs | torch µs | speed vs torch | GFLOP/s | GB/s | "
            "frac. of GPU peak | max rel err | target | met |")
    lines = [head, "|" + "---|" * 12]
    for r in s.itertuples():
        cells = [r.benchmark, r.ours_alg, _fmt(r.ours_us, ".1f"), _fmt(r.h2h_us, ".1f"),
                 _fmt(r.torch_us, ".1f"),
                 _fmt(r.speed_vs_torch, ".2f"), _fmt(r.gflops, ".0f"), _fmt(r.gbs, ".0f"),
                 _fmt(r.frac_peak, ".2f"), _fmt(r.max_rel_error, ".1e"), r.target, r.met]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    notes = [f"- {r.benchmark}: {r.notes}" for r in s.itertuples() if r.notes]
    cal = ""
    if gpu_cal:
        get = lambda k: gpu_cal.get(k, math.nan)
        cal = (f"\nGPU: {gpu_cal.get('gpu_name', '?')}; calibrated peak {get('gpu_peak_gflops'):.0f} GFLOP/s "
               f"float32 (FMA chains {get('gpu_fma_gflops'):.0f}, "
               f"torch SGEMM {get('gpu_torch_sgemm_gflops'):.0f}), "
               f"HBM {get('gpu_bw_gbs'):.0f} GB/s (best of copy / triad).\n")
    return "\n".join(lines) + "\n" + cal + ("\nSkipped / failed variants:\n" + "\n".join(notes) + "\n"
                                            if notes else "")


def run_standalone(quick: bool = True, target_time: float = 0.2, filter: str | None = None, log=print):
    """Measure the suite without the runner's results store: long-format rows as a DataFrame.

    The same bind/timer/metric rules as ``dlbench run`` (time, gflops, gbs, max_rel_error and
    the case metrics); used by scripts/gpu_check.sh when the runner cannot run on a machine.
    """
    import traceback

    import pandas as pd

    from dlbench.timing import measure, measure_cuda

    rows = []
    for case in gpu_suite(quick):
        if filter and filter not in case.name:
            continue
        for var in case.variants:
            base = {"suite": "gpu", "benchmark": case.name, "op": case.op, "params": case.params_json,
                    "backend": var.backend, "algorithm": var.algorithm, "dtype": case.dtype}
            try:
                bound = case.bind(var, case.dtype)
                t = (measure_cuda(bound.fn, target_time=target_time) if bound.timer == "cuda"
                     else measure(bound.fn, target_time=target_time, sync=bound.sync))
            except Skip as e:
                rows.append({**base, "status": "skipped", "message": str(e), "metric": "time",
                             "value": math.nan})
                continue
            except Exception as e:  # noqa: BLE001 - recorded, the run goes on
                rows.append({**base, "status": "error", "message": f"{type(e).__name__}: {e}",
                             "metric": "time", "value": math.nan})
                log(traceback.format_exc())
                continue
            ok = {**base, "status": "ok", "message": ""}
            rows.append({**ok, "metric": "time", "value": t.median, "n_samples": t.n_samples, "min": t.min})
            rows.append({**ok, "metric": "first_call", "value": t.first_call})
            fl, nb = case.flops(), case.bytes()
            if math.isfinite(fl) and fl > 0:
                rows.append({**ok, "metric": "gflops", "value": fl / t.median / 1e9})
            if math.isfinite(nb) and nb > 0:
                rows.append({**ok, "metric": "gbs", "value": nb / t.median / 1e9})
            for name, (v, _unit) in (case.metrics(t) if case.metrics else {}).items():
                rows.append({**ok, "metric": name, "value": v})
            if bound.check is not None:
                rows.append({**ok, "metric": "max_rel_error", "value": bound.check()})
            log(f"{case.name} {var.label}: {t.median * 1e6:.1f} us")
            del bound
    return pd.DataFrame(rows)
