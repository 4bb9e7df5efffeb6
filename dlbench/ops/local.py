"""Unshared (locally connected) and tiled convolution front-ends (section 9.5).

Locally connected layer, eq. 9.9 (0-based, batched, with stride s and zero padding)::

    Z[n, k, i, j] = sum_{c, r, q} V[n, c, i*s_h + r, j*s_w + q] * W[i, j, k, c, r, q] (+ b[i, j, k])

Tiled convolution, eq. 9.10: a stack of t_h x t_w kernels cycled over the output positions::

    Z[n, k, i, j] = sum_{c, r, q} V[n, c, i*s_h + r, j*s_w + q] * W[i mod t_h, j mod t_w, k, c, r, q]
                    (+ b[i mod t_h, j mod t_w, k])

Weights are location-major, ``(Ho, Wo, K, C, R, S)`` for ``local_conv2d`` and
``(t_h, t_w, K, C, R, S)`` for ``tiled_conv2d``, so that t = 1 is ``conv2d`` with ``w[0, 0]`` and
t = (Ho, Wo) is ``local_conv2d`` with the same weight array (both identities are tested). Biases
follow the weights: one per output unit ``(Ho, Wo, K)`` (locally connected) or per tile pattern
``(t_h, t_w, K)`` (tiled).

Kernel contract (every backend): ``forward(xp, w, b, stride) -> y`` on the zero-padded,
C-contiguous input ``xp`` (N, C, Hp, Wp), weights (t_h, t_w, K, C, R, S) and ``b`` (t_h, t_w, K)
or None; ``backward(dy, xp, w, stride) -> (dxp, dw, db)`` with the gradient for the padded input.
A locally connected kernel is the tiled kernel with t = output size.
"""

from __future__ import annotations

import numpy as np

from dlbench.ops._common import check_float_dtypes, check_positive, ntuple, output_size, resolve_padding
from dlbench.registry import define_op

__all__ = ["local_conv2d", "local_conv2d_backward", "tiled_conv2d", "tiled_conv2d_backward"]


# ---------------------------------------------------------------- FLOP / byte models (per call)
def _geometry(n, c, h, w, k, r, s, stride=1, pad=0, **_):
    sh, sw = ntuple(stride, 2, "stride")
    ph, pw = ntuple(pad, 2, "pad")
    ho = (h + 2 * ph - r) // sh + 1
    wo = (w + 2 * pw - s) // sw + 1
    return ho, wo


def _tiles(params, ho, wo):
    if "th" in params:
        return params["th"], params.get("tw", params["th"])
    return ho, wo   # locally connected: one kernel stack per output location


def _fwd_flops(dtype="float32", **p):
    ho, wo = _geometry(**p)
    return 2.0 * p["n"] * p["k"] * p["c"] * p["r"] * p["s"] * ho * wo


def _fwd_bytes(dtype="float32", **p):
    ho, wo = _geometry(**p)
    th, tw = _tiles(p, ho, wo)
    item = np.dtype(dtype).itemsize
    x = p["n"] * p["c"] * p["h"] * p["w"]
    w = th * tw * p["k"] * p["c"] * p["r"] * p["s"]
    y = p["n"] * p["k"] * ho * wo
    return float(item * (x + w + y))


def _bwd_flops(dtype="float32", **p):
    return 2.0 * _fwd_flops(dtype, **p)   # data gradient (eq. 9.13 analogue) + weight gradient (9.11)


def _bwd_bytes(dtype="float32", **p):
    ho, wo = _geometry(**p)
    th, tw = _tiles(p, ho, wo)
    item = np.dtype(dtype).itemsize
    x = p["n"] * p["c"] * p["h"] * p["w"]
    w = th * tw * p["k"] * p["c"] * p["r"] * p["s"]
    y = p["n"] * p["k"] * ho * wo
    return float(item * (2 * x + 2 * w + y))   # read x, w, dy; write dx, dw


define_op("local_conv2d", flops=_fwd_flops, bytes=_fwd_bytes, equation="9.9",
          description="locally connected (unshared) convolution, weights (Ho, Wo, K, C, R, S)")
define_op("local_conv2d_backward", flops=_bwd_flops, bytes=_bwd_bytes, equation="9.9, 9.11",
          description="gradients of the locally connected convolution w.r.t. input, weights, bias")
define_op("tiled_conv2d", flops=_fwd_flops, bytes=_fwd_bytes, equation="9.10",
          description="tiled convolution, t_h x t_w kernel stacks cycled over output positions")
define_op("tiled_conv2d_backward", flops=_bwd_flops, bytes=_bwd_bytes, equation="9.10, 9.11",
          description="gradients of the tiled convolution w.r.t. input, weights, bias")


# ---------------------------------------------------------------- argument checking and dispatch
_KERNEL_CACHE: dict = {}


def _kernel(op: str, algorithm: str, backend: str, dtype):
    """The registered kernel (``auto``: "direct"), after checking the backend and the dtype.
    Successful lookups are cached per registry generation (the checks cost ~10 us per call,
    a tenth of a small pooling or batch-norm call)."""
    from dlbench import registry

    key = (op, algorithm, backend, dtype, registry.GENERATION)
    kern = _KERNEL_CACHE.get(key)
    if kern is not None:
        return kern
    _check_backend(backend)
    kern = registry.get_kernel(op, "direct" if algorithm == "auto" else algorithm, backend)
    why = kern.applies(dtype=str(dtype))
    if why:
        raise ValueError(why)
    _KERNEL_CACHE[key] = kern
    return kern


def _check_backend(backend: str) -> None:
    from dlbench.backends import backend_status
    from dlbench.errors import UserError

    st = backend_status(backend)
    if not st.available:
        raise UserError(f"backend {backend!r} is not available: {st.reason}")


def _call(op: str, algorithm: str, backend: str, dtype, args: tuple, params: dict):
    """Run ``op``; ``algorithm="auto"`` times this backend's algorithms once per problem (the
    ``einsum`` baseline excluded) and caches the fastest (``dlbench.autotune``)."""
    if algorithm != "auto":
        return _kernel(op, algorithm, backend, dtype)(*args)
    from dlbench import autotune
    from dlbench.registry import find_kernels

    _check_backend(backend)
    cands = [k for k in find_kernels(op=op, backend=backend)
             if k.algorithm != "einsum" and k.applies(dtype=str(dtype)) is None]
    kern, out = autotune.choose(op, backend, str(dtype), params, cands, lambda k: k(*args))
    return kern(*args) if out is None else out


def _params(x, w, stride):
    return {"x": list(np.shape(x)), "w": list(w.shape), "stride": list(stride)}


def _prepare(op, x, w, b, stride, padding, tiled: bool, backend: str = "numpy"):
    """Validate shapes; returns (xp, w, b, stride, pads, (Ho, Wo))."""
    x = np.asarray(x)
    w = np.asarray(w)
    arrays, names = [x, w], ["x", "w"]
    if b is not None:
        b = np.asarray(b)
        arrays.append(b)
        names.append("b")
    dtype = check_float_dtypes(*arrays, names=names)
    if x.ndim != 4:
        raise ValueError(f"{op}: x must be (N, C, H, W), got shape {x.shape}")
    layout = "(t_h, t_w, K, C, R, S)" if tiled else "(Ho, Wo, K, C, R, S)"
    if w.ndim != 6:
        raise ValueError(f"{op}: w must have 6 axes {layout}, got shape {w.shape}")
    n, c, h, wd = x.shape
    th, tw, k, wc, r, s = w.shape
    if wc != c:
        raise ValueError(f"{op}: w has {wc} input channels (axis 3 of {layout}) but x has {c}")
    if min(w.shape) < 1 or min(x.shape) < 1:
        raise ValueError(f"{op}: empty input or weight (x {x.shape}, w {w.shape})")
    stride = ntuple(stride, 2, "stride")
    check_positive(stride, "stride")
    pads = resolve_padding(padding, (r, s), (1, 1), stride)
    ho, wo = output_size((h, wd), (r, s), stride, pads, (1, 1))
    if tiled:
        if ho % th or wo % tw:
            raise ValueError(f"{op}: the tile counts t_h={th}, t_w={tw} (axes 0-1 of w) must divide the "
                             f"output size {ho}x{wo}")
    elif (th, tw) != (ho, wo):
        raise ValueError(f"{op}: w has {th}x{tw} locations (axes 0-1 of {layout}) but the output is "
                         f"{ho}x{wo}")
    if b is not None and b.shape != (th, tw, k):
        what = "(t_h, t_w, K)" if tiled else "(Ho, Wo, K)"
        raise ValueError(f"{op}: b must have shape {what} = {(th, tw, k)}, got {b.shape}")
    # Pad so that the kernels see exactly the rows and columns the output reads.
    (pt, pb), (pl, pr) = pads
    hp = (ho - 1) * stride[0] + r
    wp = (wo - 1) * stride[1] + s
    if pt or pl or pb or pr:
        xp = np.empty((n, c, hp, wp), dtype)
        _padding(backend)[0](np.ascontiguousarray(x), pt, pl, xp)
    else:
        xp = np.ascontiguousarray(x[:, :, :hp, :wp])
    return xp, np.ascontiguousarray(w), None if b is None else np.ascontiguousarray(b), stride, pads, dtype


def _overlap(x_shape, xp_shape, pt, pl):
    """(top, left, rows, cols) of the block x and its zero-padded copy share: x[:, :, :rows, :cols]
    sits at xp[:, :, top:top + rows, left:left + cols] (pads larger than xp are clipped)."""
    pt, pl = min(pt, xp_shape[2]), min(pl, xp_shape[3])
    return pt, pl, max(0, min(x_shape[2], xp_shape[2] - pt)), max(0, min(x_shape[3], xp_shape[3] - pl))


def _pad_numpy(x, pt, pl, xp):
    """xp[:, :, pt + i, pl + j] = x[:, :, i, j] where it fits, zero elsewhere."""
    pt, pl, hi, wi = _overlap(x.shape, xp.shape, pt, pl)
    xp[...] = 0
    xp[:, :, pt:pt + hi, pl:pl + wi] = x[:, :, :hi, :wi]


def _crop_numpy(dxp, pt, pl, dx):
    """The adjoint of ``_pad_numpy``: dx = dxp[:, :, pt:, pl:] where it exists, zero elsewhere."""
    pt, pl, hi, wi = _overlap(dx.shape, dxp.shape, pt, pl)
    dx[...] = 0
    dx[:, :, :hi, :wi] = dxp[:, :, pt:pt + hi, pl:pl + wi]


# backend -> (pad(x, pt, pl, xp), crop(dxp, pt, pl, dx)): the zero padding before, and its
# adjoint after, every tiled / locally connected kernel, on C-contiguous (N, C, H, W) arrays.
# The Cython backend registers its OpenMP copies (16x64x28^2 float32: pad 0.25 ms, crop 0.15
# ms, against NumPy's slice copies 0.35-0.49 / 0.32-0.44 ms); the others use NumPy's (a serial
# Numba loop was not vectorised by LLVM and took 1.8 ms).
_PADDING: dict = {}


def _padding(backend: str):
    """(pad, crop) of ``backend``: its registered pair, else NumPy's."""
    return _PADDING.get(backend, (_pad_numpy, _crop_numpy))


def register_padding(backend: str, pad, crop) -> None:
    """Use ``pad(x, pt, pl, xp)`` / ``crop(dxp, pt, pl, dx)`` (in place, C-contiguous (N, C, H, W)
    arrays of one dtype) for ``backend``'s zero padding and its adjoint instead of NumPy's."""
    _PADDING[backend] = (pad, crop)


def _crop(dxp, x_shape, pads, backend):
    """Gradient of the padded input -> gradient of x (rows/columns never read get zero)."""
    (pt, _), (pl, _) = pads
    dx = np.empty(x_shape, dxp.dtype)
    _padding(backend)[1](np.ascontiguousarray(dxp), pt, pl, dx)
    return dx


# ---------------------------------------------------------------- public API
def local_conv2d(x, w, b=None, stride=1, padding=0, *, algorithm="auto", backend="numba"):
    """Locally connected (unshared) convolution, eq. 9.9.

    x: (N, C, H, W); w: (Ho, Wo, K, C, R, S), one kernel stack per output location; b: (Ho, Wo, K)
    or None (a bias per output unit). stride: int or (s_h, s_w); padding: int, (p_h, p_w),
    pairs, "valid", "same" or "full". float32/float64 (one dtype for all arrays).
    Returns y: (N, K, Ho, Wo). ``algorithm``: "direct" (one small GEMM per location), "im2col"
    (numba, cython: one GEMM per tile pattern), "einsum" (numpy: the baseline) or "auto" (the
    fastest of this backend's, timed once per problem and cached); ``backend``: numpy, numba, cython.
    """
    xp, w, b, stride, _, dtype = _prepare("local_conv2d", x, w, b, stride, padding, tiled=False,
                                            backend=backend)
    return _call("local_conv2d", algorithm, backend, dtype, (xp, w, b, stride), _params(xp, w, stride))


def local_conv2d_backward(dy, x, w, stride=1, padding=0, *, algorithm="auto", backend="numba"):
    """Gradients of ``local_conv2d``: returns (dx, dw, db) with the shapes of x, w and (Ho, Wo, K).

    dy: (N, K, Ho, Wo). dw[i, j, k, c, r, q] = sum_n dy[n, k, i, j] V[n, c, i s + r, j s + q]
    (eq. 9.11 without the sum over locations); dx scatters dy through each location's weights.
    """
    xp, w, _, stride, pads, dtype = _prepare("local_conv2d_backward", x, w, None, stride, padding,
                                             tiled=False, backend=backend)
    dy = _check_dy(dy, xp, w, stride, dtype)
    dxp, dw, db = _call("local_conv2d_backward", algorithm, backend, dtype, (dy, xp, w, stride),
                        _params(xp, w, stride))
    return _crop(dxp, np.shape(x), pads, backend), dw, db


def tiled_conv2d(x, w, b=None, stride=1, padding=0, *, algorithm="auto", backend="numba"):
    """Tiled convolution, eq. 9.10: output position (i, j) uses kernel stack w[i mod t_h, j mod t_w].

    x: (N, C, H, W); w: (t_h, t_w, K, C, R, S); b: (t_h, t_w, K) or None. t_h and t_w must divide
    the output height and width (ValueError otherwise). t = 1 is conv2d (cross-correlation,
    eq. 9.7/9.8) with w[0, 0]; t = (Ho, Wo) is local_conv2d. Returns (N, K, Ho, Wo).
    """
    xp, w, b, stride, _, dtype = _prepare("tiled_conv2d", x, w, b, stride, padding, tiled=True,
                                            backend=backend)
    return _call("tiled_conv2d", algorithm, backend, dtype, (xp, w, b, stride), _params(xp, w, stride))


def tiled_conv2d_backward(dy, x, w, stride=1, padding=0, *, algorithm="auto", backend="numba"):
    """Gradients of ``tiled_conv2d``: returns (dx, dw, db), db of shape (t_h, t_w, K).

    dw[a, b', k, c, r, q] sums eq. 9.11's products over the output positions with i mod t_h = a and
    j mod t_w = b'.
    """
    xp, w, _, stride, pads, dtype = _prepare("tiled_conv2d_backward", x, w, None, stride, padding,
                                             tiled=True, backend=backend)
    dy = _check_dy(dy, xp, w, stride, dtype)
    dxp, dw, db = _call("tiled_conv2d_backward", algorithm, backend, dtype, (dy, xp, w, stride),
                        _params(xp, w, stride))
    return _crop(dxp, np.shape(x), pads, backend), dw, db


def _check_dy(dy, xp, w, stride, dtype):
    dy = np.asarray(dy)
    n, _, hp, wp = xp.shape
    k, r, s = w.shape[2], w.shape[4], w.shape[5]
    want = (n, k, (hp - r) // stride[0] + 1, (wp - s) // stride[1] + 1)
    if dy.shape != want:
        raise ValueError(f"dy must have the output's shape {want}, got {dy.shape}")
    if dy.dtype != dtype:
        raise ValueError(f"dtype mismatch: x is {dtype} but dy is {dy.dtype}")
    return np.ascontiguousarray(dy)
