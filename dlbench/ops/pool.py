"""Pooling front-ends (section 9.3): windowed, adaptive, across channels (maxout), global.

Windowed pooling summarises each (possibly padded) window of an (N, C, H, W) input:

- ``max``: the largest value; its backward routes the gradient to the argmax (the first maximum in
  row-major window order, as torch does);
- ``avg``: the mean over the window's elements that lie inside the input (padding is not counted,
  torch's ``count_include_pad=False``);
- ``l2``: the L2 norm sqrt(sum x^2) of the window (torch's ``lp_pool2d`` with p = 2);
- ``gaussian``: the average weighted by exp(-d^2 / (2 sigma^2)), d the distance of a position from
  the window centre, normalised over the window's positions inside the input.

A stride larger than one downsamples (fig. 9.10); ``ceil_mode=True`` keeps the smaller last region
at the bottom/right edge (torch's rule: a region must start inside the input or the leading
padding). ``adaptive_pool2d`` uses a fixed number of regions whose size scales with the input
(fig. 9.11): region o along an axis of extent m covers [floor(o m / M), ceil((o + 1) m / M)).
``maxout`` pools across groups of ``pieces`` consecutive channels (fig. 9.9).

Kernel contracts (every backend), all arrays C-contiguous:
``pool2d(x, kind, size, stride, pads, out, sigma, return_indices=False) -> y`` (or (y, indices));
``pool2d_backward(dy, x, y, kind, size, stride, pads, out, sigma, indices=None) -> dx`` (``y`` is the
forward output, needed by ``l2``; ``indices`` the forward's argmax for max);
``adaptive_pool2d(x, kind, out, return_indices=False)``;
``adaptive_pool2d_backward(dy, x, y, kind, out, indices=None) -> dx``; ``maxout(x3, pieces) -> y3`` and
``maxout_backward(dy3, x3, pieces) -> dx3`` on (N, C, L) views; ``global_avg_pool2d(x) -> (N, C)``
and ``global_avg_pool2d_backward(dy, x_shape) -> dx``.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from dlbench.ops._common import check_float_dtypes, check_positive, ntuple, resolve_padding
from dlbench.registry import define_op

__all__ = ["pool2d", "pool2d_backward", "pool_output_size", "adaptive_pool2d", "adaptive_pool2d_backward",
           "maxout", "maxout_backward", "global_avg_pool2d", "global_avg_pool2d_backward", "POOL_KINDS"]

POOL_KINDS = ("max", "avg", "l2", "gaussian")
ADAPTIVE_KINDS = ("max", "avg", "l2")


# ---------------------------------------------------------------- byte models (bandwidth bound)
def _item(dtype):
    return np.dtype(dtype).itemsize


def _pool_out(p):
    return pool_output_size((p["h"], p["w"]), ntuple(p.get("size", 2), 2, "size"),
                            ntuple(p.get("stride") or p.get("size", 2), 2, "stride"),
                            resolve_padding(p.get("pad", 0), ntuple(p.get("size", 2), 2, "size"), (1, 1)),
                            p.get("ceil_mode", False))


def _out_hw(p):
    if "out" in p:
        return ntuple(p["out"], 2, "out")
    return _pool_out(p)


def _pool_fwd_bytes(dtype="float32", **p):
    ho, wo = _out_hw(p)
    return float(_item(dtype) * p["n"] * p["c"] * (p["h"] * p["w"] + ho * wo))


def _pool_bwd_bytes(dtype="float32", **p):
    """dx written, dy read, plus x and y read by l2 (dy x / y), and for max the forward's int64
    argmax indices (the suites' max backward, ours and torch's, scatters from them; it does not
    read x)."""
    ho, wo = _out_hw(p)
    kind = p.get("kind", "max")
    per_map = _item(dtype) * (1 + (kind == "l2")) * (p["h"] * p["w"] + ho * wo)
    if kind == "max":
        per_map += 8 * ho * wo
    return float(p["n"] * p["c"] * per_map)


def _pool_flops(dtype="float32", **p):
    ho, wo = _out_hw(p)
    if "size" in p:
        kh, kw = ntuple(p["size"], 2, "size")
    else:
        kh, kw = math.ceil(p["h"] / ho), math.ceil(p["w"] / wo)
    return float(p["n"] * p["c"] * ho * wo * kh * kw)


def _maxout_fwd_bytes(dtype="float32", **p):
    return float(_item(dtype) * p["n"] * p["c"] * p["h"] * p["w"] * (1 + 1 / p["pieces"]))


def _maxout_bwd_bytes(dtype="float32", **p):
    return float(_item(dtype) * p["n"] * p["c"] * p["h"] * p["w"] * (2 + 1 / p["pieces"]))


def _gap_bytes(dtype="float32", **p):
    return float(_item(dtype) * p["n"] * p["c"] * (p["h"] * p["w"] + 1))


define_op("pool2d", flops=_pool_flops, bytes=_pool_fwd_bytes, equation="9.3 (fig. 9.10)",
          description="windowed pooling: max, average, L2 norm, Gaussian-weighted average")
define_op("pool2d_backward", flops=_pool_flops, bytes=_pool_bwd_bytes, equation="9.3",
          description="gradient of windowed pooling (max: to the argmax)")
define_op("adaptive_pool2d", flops=_pool_flops, bytes=_pool_fwd_bytes, equation="9.3 (fig. 9.11)",
          description="a fixed number of pooling regions for inputs of any size")
define_op("adaptive_pool2d_backward", flops=_pool_flops, bytes=_pool_bwd_bytes, equation="9.3",
          description="gradient of adaptive pooling")
define_op("maxout", bytes=_maxout_fwd_bytes, equation="9.3 (fig. 9.9)",
          description="max pooling across groups of channels (maxout units)")
define_op("maxout_backward", bytes=_maxout_bwd_bytes, equation="9.3 (fig. 9.9)",
          description="gradient of maxout (to the argmax channel)")
define_op("global_avg_pool2d", bytes=_gap_bytes, equation="9.3",
          description="average over all spatial positions of each feature map")
define_op("global_avg_pool2d_backward", bytes=_gap_bytes, equation="9.3",
          description="gradient of global average pooling")


# ---------------------------------------------------------------- checking and dispatch
def _kernel(op: str, algorithm: str, backend: str, dtype):
    from dlbench.ops.local import _kernel as kernel_for

    return kernel_for(op, algorithm, backend, dtype)


def _check_x(op, x, ndim=4):
    x = np.asarray(x)
    dtype = check_float_dtypes(x, names=["x"])
    if x.ndim != ndim:
        raise ValueError(f"{op}: x must be (N, C, H, W), got shape {x.shape}")
    if min(x.shape) < 1:
        raise ValueError(f"{op}: empty input of shape {x.shape}")
    return np.ascontiguousarray(x), dtype


def _check_kind(op, kind, kinds):
    if kind not in kinds:
        raise ValueError(f"{op}: kind must be one of {', '.join(kinds)}, got {kind!r}")


@functools.cache
def _parameters(fn) -> frozenset:
    """A kernel's parameter names, once per kernel (``inspect.signature`` costs ~15 us a call)."""
    import inspect

    return frozenset(inspect.signature(fn).parameters)


def _supports(kern, arg: str, op: str) -> None:
    """ValueError when a backend's kernel has no ``arg`` (e.g. argmax indices)."""
    if arg not in _parameters(kern.fn):
        raise ValueError(f"{op}: {arg} is not supported by the {kern.backend}/{kern.algorithm} kernel")


def _check_grad(name, g, shape, dtype):
    g = np.asarray(g)
    if g.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {g.shape}")
    if g.dtype != dtype:
        raise ValueError(f"dtype mismatch: x is {dtype} but {name} is {g.dtype}")
    return np.ascontiguousarray(g)


def pool_output_size(hw, size, stride, pads, ceil_mode=False):
    """Output (Ho, Wo) of windowed pooling; ValueError if a window is larger than the padded input.

    floor mode: floor((m + p_lo + p_hi - k) / s) + 1 (eq. 9.8's extent); ceil mode rounds up but drops
    a last region that would start in the trailing padding.
    """
    out = []
    for m, k, s, (lo, hi) in zip(hw, size, stride, pads):
        span = m + lo + hi - k
        if span < 0:
            raise ValueError(f"pool window {size[0]}x{size[1]} is larger than the padded input "
                             f"{hw[0] + sum(pads[0])}x{hw[1] + sum(pads[1])}")
        if ceil_mode:
            o = -(-span // s) + 1
            if (o - 1) * s >= m + lo:
                o -= 1
        else:
            o = span // s + 1
        out.append(o)
    return tuple(out)


def _window_args(op, x, size, stride, padding, ceil_mode, sigma, kind):
    _check_kind(op, kind, POOL_KINDS)
    size = ntuple(size, 2, "size")
    check_positive(size, "size")
    stride = size if stride is None else ntuple(stride, 2, "stride")
    check_positive(stride, "stride")
    pads = resolve_padding(padding, size, (1, 1), stride)
    for k, (lo, hi) in zip(size, pads):
        if lo >= k or hi >= k:
            raise ValueError(f"{op}: padding {pads} must be smaller than the window {size} in each "
                             "direction (a window made only of padding has no value)")
    out = pool_output_size(x.shape[2:], size, stride, pads, bool(ceil_mode))
    if kind == "gaussian" and not (sigma > 0):
        raise ValueError(f"{op}: sigma must be > 0 for gaussian pooling, got {sigma!r}")
    return size, stride, pads, out, float(sigma)


# ---------------------------------------------------------------- windowed pooling
def pool2d(x, kind="max", size=2, stride=None, padding=0, ceil_mode=False, sigma=1.0, *,
           return_indices=False, algorithm="auto", backend="numba"):
    """Windowed pooling (section 9.3): x (N, C, H, W) -> (N, C, Ho, Wo).

    kind: "max", "avg", "l2" or "gaussian" (sigma: the Gaussian's standard deviation in pixels).
    size: window int or (k_h, k_w); stride: default = size (non-overlapping, fig. 9.10);
    padding: int, (p_h, p_w), pairs or "same" (stride 1), each < the window; ceil_mode keeps the
    smaller last region. float32/float64. ValueError when the window exceeds the padded input.
    ``return_indices`` (max only): also return int64 indices (N, C, Ho, Wo), the flat position
    r * W + c in its (H, W) map of each window's first maximum (torch's convention), for
    ``pool2d_backward(..., indices=...)``.
    """
    x, dtype = _check_x("pool2d", x)
    size, stride, pads, out, sigma = _window_args("pool2d", x, size, stride, padding, ceil_mode, sigma, kind)
    if return_indices and kind != "max":
        raise ValueError(f"pool2d: return_indices is for max pooling, not {kind!r}")
    kern = _kernel("pool2d", algorithm, backend, dtype)
    if return_indices:
        _supports(kern, "return_indices", "pool2d")
        return kern(x, kind, size, stride, pads, out, sigma, return_indices=True)
    return kern(x, kind, size, stride, pads, out, sigma)


def pool2d_backward(dy, x, kind="max", size=2, stride=None, padding=0, ceil_mode=False, sigma=1.0, *,
                    y=None, indices=None, algorithm="auto", backend="numba"):
    """Gradient of ``pool2d`` w.r.t. x: dx of x's shape.

    max: dy goes to the first maximum of each window (recomputed from x, or taken from the
    forward's ``indices`` when given: then only a scatter); avg/gaussian: dy spread by the
    window's normalised weights; l2: dy * x / y (0 where y = 0). ``y`` (the forward output) is
    computed when not given (only l2 needs it).
    """
    x, dtype = _check_x("pool2d_backward", x)
    size, stride, pads, out, sigma = _window_args("pool2d_backward", x, size, stride, padding, ceil_mode,
                                                  sigma, kind)
    dy = _check_grad("dy", dy, x.shape[:2] + out, dtype)
    kern = _kernel("pool2d_backward", algorithm, backend, dtype)
    if indices is not None:
        indices = _check_indices("pool2d_backward", indices, dy.shape, kind)
        _supports(kern, "indices", "pool2d_backward")
        return kern(dy, x, None, kind, size, stride, pads, out, sigma, indices=indices)
    if kind == "l2":
        y = (_kernel("pool2d", algorithm, backend, dtype)(x, kind, size, stride, pads, out, sigma)
             if y is None else _check_grad("y", y, dy.shape, dtype))
    return kern(dy, x, y, kind, size, stride, pads, out, sigma)


def _check_indices(op, indices, shape, kind):
    if kind != "max":
        raise ValueError(f"{op}: indices are for max pooling, not {kind!r}")
    indices = np.asarray(indices)
    if indices.shape != tuple(shape) or indices.dtype.kind not in "iu":
        raise ValueError(f"{op}: indices must be integers of shape {tuple(shape)}, got {indices.dtype} "
                         f"{indices.shape}")
    # the range [0, H*W) is checked by the kernels inside their scatter (a separate min/max pass
    # cost more than the scatter itself): they raise ValueError("indices must lie in [0, H*W) ...")
    return np.ascontiguousarray(indices, dtype=np.int64)


# ---------------------------------------------------------------- adaptive pooling
def _adaptive_args(op, output_size, kind):
    _check_kind(op, kind, ADAPTIVE_KINDS)
    out = ntuple(output_size, 2, "output_size")
    check_positive(out, "output_size")
    return out


def adaptive_pool2d(x, output_size, kind="avg", *, return_indices=False, algorithm="auto", backend="numba"):
    """Adaptive pooling (fig. 9.11): x (N, C, H, W) -> (N, C, *output_size) for any H, W.

    Output row o pools input rows [floor(o H / Ho), ceil((o + 1) H / Ho)) (same for columns), as
    torch's adaptive pooling. kind: "max", "avg" or "l2". ``return_indices`` (max): also the
    int64 flat (H*W) positions of the regions' first maxima.
    """
    x, dtype = _check_x("adaptive_pool2d", x)
    out = _adaptive_args("adaptive_pool2d", output_size, kind)
    if return_indices and kind != "max":
        raise ValueError(f"adaptive_pool2d: return_indices is for max pooling, not {kind!r}")
    kern = _kernel("adaptive_pool2d", algorithm, backend, dtype)
    if return_indices:
        _supports(kern, "return_indices", "adaptive_pool2d")
        return kern(x, kind, out, return_indices=True)
    return kern(x, kind, out)


def adaptive_pool2d_backward(dy, x, output_size, kind="avg", *, y=None, indices=None, algorithm="auto",
                             backend="numba"):
    """Gradient of ``adaptive_pool2d`` w.r.t. x (max: to the first argmax of each region, or to the
    forward's ``indices``)."""
    x, dtype = _check_x("adaptive_pool2d_backward", x)
    out = _adaptive_args("adaptive_pool2d_backward", output_size, kind)
    dy = _check_grad("dy", dy, x.shape[:2] + out, dtype)
    kern = _kernel("adaptive_pool2d_backward", algorithm, backend, dtype)
    if indices is not None:
        indices = _check_indices("adaptive_pool2d_backward", indices, dy.shape, kind)
        _supports(kern, "indices", "adaptive_pool2d_backward")
        return kern(dy, x, None, kind, out, indices=indices)
    if kind == "l2":
        y = (_kernel("adaptive_pool2d", algorithm, backend, dtype)(x, kind, out)
             if y is None else _check_grad("y", y, dy.shape, dtype))
    return kern(dy, x, y, kind, out)


# ---------------------------------------------------------------- maxout / pooling across channels
def _maxout_args(op, x, pieces):
    x = np.asarray(x)
    dtype = check_float_dtypes(x, names=["x"])
    if x.ndim < 2:
        raise ValueError(f"{op}: x must be (N, C, ...), got shape {x.shape}")
    if not isinstance(pieces, (int, np.integer)) or pieces < 1:
        raise ValueError(f"{op}: pieces must be a positive integer, got {pieces!r}")
    if x.shape[1] % pieces:
        raise ValueError(f"{op}: the {x.shape[1]} channels are not divisible into groups of pieces={pieces}")
    n, c = x.shape[:2]
    x3 = np.ascontiguousarray(x).reshape(n, c, -1)
    return x3, dtype, (n, c // pieces) + x.shape[2:]


def maxout(x, pieces, *, algorithm="auto", backend="numba"):
    """Maxout / max pooling across channels (fig. 9.9): x (N, C, ...) -> (N, C / pieces, ...).

    y[n, k, ...] = max_{j < pieces} x[n, k * pieces + j, ...]; C must be a multiple of ``pieces``.
    """
    x3, dtype, out_shape = _maxout_args("maxout", x, pieces)
    return _kernel("maxout", algorithm, backend, dtype)(x3, int(pieces)).reshape(out_shape)


def maxout_backward(dy, x, pieces, *, algorithm="auto", backend="numba"):
    """Gradient of ``maxout``: dy goes to the first channel of each group holding the maximum."""
    x3, dtype, out_shape = _maxout_args("maxout_backward", x, pieces)
    dy = _check_grad("dy", dy, out_shape, dtype).reshape(x3.shape[0], x3.shape[1] // pieces, -1)
    return _kernel("maxout_backward", algorithm, backend, dtype)(dy, x3, int(pieces)).reshape(np.shape(x))


# ---------------------------------------------------------------- global average pooling
def global_avg_pool2d(x, keepdims=False, *, algorithm="auto", backend="numba"):
    """Global average pooling: the mean of each (H, W) feature map; (N, C) or (N, C, 1, 1)."""
    x, dtype = _check_x("global_avg_pool2d", x)
    y = _kernel("global_avg_pool2d", algorithm, backend, dtype)(x)
    return y.reshape(x.shape[:2] + (1, 1)) if keepdims else y


def global_avg_pool2d_backward(dy, x_shape, *, algorithm="auto", backend="numba"):
    """Gradient of ``global_avg_pool2d``: dx[n, c, i, j] = dy[n, c] / (H W). dy: (N, C) or (N, C, 1, 1)."""
    x_shape = tuple(int(v) for v in x_shape)
    if len(x_shape) != 4 or min(x_shape) < 1:
        raise ValueError(f"global_avg_pool2d_backward: x_shape must be (N, C, H, W), got {x_shape}")
    dy = np.asarray(dy)
    dtype = check_float_dtypes(dy, names=["dy"])
    if dy.shape not in (x_shape[:2], x_shape[:2] + (1, 1)):
        raise ValueError(f"dy must have shape {x_shape[:2]} or {x_shape[:2] + (1, 1)}, got {dy.shape}")
    dy = np.ascontiguousarray(dy.reshape(x_shape[:2]))
    return _kernel("global_avg_pool2d_backward", algorithm, backend, dtype)(dy, x_shape)
