"""The convolution family (chapter 9): forward, both gradients, transposed, 1-D/2-D/3-D.

NumPy arrays in and out, layout N C *spatial, float32 or float64 (one dtype per call). Each
function validates its arguments, resolves padding and output sizes (``dlbench.ops._common``),
then dispatches to the registered kernel ``(op, algorithm, backend)``; ``algorithm="auto"`` picks
the fastest eligible kernel for the problem with :mod:`dlbench.autotune` (timed once, cached).

Semantics:

- ``conv2d`` is the cross-correlation of eq. 9.6/9.7 (what libraries call convolution), with a
  stride per direction (eq. 9.8), zero padding ``valid``/``same``/``full``/explicit (9.5),
  dilation and groups (fig. 9.15; ``groups = C = K`` is depthwise). ``flip=True`` gives the
  true convolution of eq. 9.4 (the kernel flipped in every spatial direction).
- bias ``b`` per output channel, shape (K,), or per output location, shape (K, *out) (9.5).
- ``conv2d_backward_data`` is the input gradient (eq. 9.12-9.13) = the transposed convolution;
  it must be told the input shape, since several input sizes give one output size.
- ``conv2d_backward_weight`` is the kernel gradient (eq. 9.11).
- ``conv_transpose2d`` is ``conv2d_backward_data`` with the roles of x and dy swapped, weights in
  (C_in, C_out/groups, R, S) layout like ``torch.nn.functional.conv_transpose2d``.

Algorithms (``db.kernels(op="conv2d")`` lists them with their constraints): ``reference``
(numpy backend), ``direct``, ``im2col``, ``gemm1x1`` (1x1 kernels), ``kn2row`` (stride 1),
``fft`` (workspace-limited), ``winograd`` (F(4x4,3x3)) and ``winograd_f2`` (F(2x2,3x3)) for 3x3
stride 1, ``separable`` (rank-1 kernels); ``auto`` never picks ``separable`` (its eligibility
depends on the kernel values, not the shape). See ``dlbench.kernels.numba_cpu.conv_drivers``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dlbench.ops._common import check_float_dtypes, check_positive, ntuple, output_size, resolve_padding
from dlbench.registry import define_op

__all__ = [
    "conv1d", "conv2d", "conv3d",
    "conv1d_backward_data", "conv2d_backward_data", "conv3d_backward_data",
    "conv1d_backward_weight", "conv2d_backward_weight", "conv3d_backward_weight",
    "conv_transpose2d", "ConvGeometry",
]

SPATIAL = {1: ("W",), 2: ("H", "W"), 3: ("D", "H", "W")}
KERNEL = {1: ("S",), 2: ("R", "S"), 3: ("T", "R", "S")}
FORWARD_OPS = {1: "conv1d", 2: "conv2d", 3: "conv3d"}
AUTO_EXCLUDE = {"separable"}       # eligibility depends on the kernel values
_CANDIDATES: dict = {}             # (op, backend, dtype, params, registry size) -> eligible kernels


@dataclass(frozen=True)
class ConvGeometry:
    """Shapes of one convolution problem, with padding resolved to (before, after) pairs.

    in_size, kernel, stride, dilation, out_size: tuples of the spatial dimensions (nd of them).
    """

    nd: int
    N: int
    C: int
    K: int
    groups: int
    in_size: tuple
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    out_size: tuple

    @classmethod
    def make(cls, nd, n, c, k, groups, in_size, kernel, stride=1, padding=0, dilation=1) -> ConvGeometry:
        """Validate and resolve; ValueError naming the constraint that fails."""
        stride = ntuple(stride, nd, "stride")
        dilation = ntuple(dilation, nd, "dilation")
        check_positive(stride, "stride")
        check_positive(dilation, "dilation")
        kernel = tuple(int(v) for v in kernel)
        in_size = tuple(int(v) for v in in_size)
        check_positive(kernel, "kernel size")
        if not isinstance(groups, (int, np.integer)) or groups < 1:
            raise ValueError(f"groups must be a positive integer, got {groups!r}")
        if c % groups:
            raise ValueError(f"groups={groups} does not divide the {c} input channels (C % groups must be 0)")
        if k % groups:
            raise ValueError(f"groups={groups} does not divide the {k} output channels (K % groups must "
                             "be 0)")
        pads = resolve_padding(padding, kernel, dilation, stride)
        out = output_size(in_size, kernel, stride, pads, dilation)
        return cls(nd, int(n), int(c), int(k), int(groups), in_size, kernel, stride, pads, dilation, out)

    @classmethod
    def from_params(cls, nd: int, params: dict) -> ConvGeometry:
        """From benchmark/check parameters: N, C, K, spatial sizes (H, W ...), kernel sizes (R, S ...),
        stride, padding, dilation, groups (defaults 1, 0, 1, 1)."""
        return cls.make(nd, params.get("N", 1), params["C"], params["K"], params.get("groups", 1),
                        [params[s] for s in SPATIAL[nd]], [params[s] for s in KERNEL[nd]],
                        params.get("stride", 1), params.get("padding", 0), params.get("dilation", 1))

    def params(self) -> dict:
        """The benchmark-parameter form (what kernels' ``check`` functions and FLOP models take)."""
        p = {"N": self.N, "C": self.C, "K": self.K}
        p.update(zip(SPATIAL[self.nd], self.in_size))
        p.update(zip(KERNEL[self.nd], self.kernel))
        p.update(stride=list(self.stride), padding=[list(q) for q in self.padding],
                 dilation=list(self.dilation), groups=self.groups)
        return p

    @property
    def x_shape(self):
        return (self.N, self.C) + self.in_size

    @property
    def w_shape(self):
        return (self.K, self.C // self.groups) + self.kernel

    @property
    def y_shape(self):
        return (self.N, self.K) + self.out_size

    def flops(self) -> float:
        """2 N K (C/groups) prod(kernel) prod(out): one multiply and one add per term of eq. 9.7."""
        per_output = (self.C // self.groups) * math.prod(self.kernel)
        return 2.0 * self.N * self.K * per_output * math.prod(self.out_size)

    def bytes(self, itemsize: int) -> float:
        """Compulsory traffic: input, weights and output once each."""
        return float(itemsize) * (math.prod(self.x_shape) + math.prod(self.w_shape) + math.prod(self.y_shape))


def _models(nd: int):
    def flops(dtype=None, **params):
        return ConvGeometry.from_params(nd, params).flops()

    def nbytes(dtype="float32", **params):
        return ConvGeometry.from_params(nd, params).bytes(np.dtype(dtype or "float32").itemsize)

    return flops, nbytes


for _nd, _op in FORWARD_OPS.items():
    _f, _b = _models(_nd)
    define_op(_op, flops=_f, bytes=_b, equation="9.7, 9.8",
              description=f"{_nd}-D cross-correlation (convolution in libraries), stride, padding, "
                          "dilation, groups")
    define_op(f"{_op}_backward_data", flops=_f, bytes=_b, equation="9.12-9.13",
              description=f"{_nd}-D input gradient = transposed convolution")
    define_op(f"{_op}_backward_weight", flops=_f, bytes=_b, equation="9.11",
              description=f"{_nd}-D kernel gradient")


# ------------------------------------------------------------------ dispatch
def _as_float_array(a, name):
    a = np.asarray(a)
    if a.dtype.kind not in "f":
        raise ValueError(f"{name} must be float32 or float64, got {a.dtype}")
    return a


def _check_backend(backend: str) -> None:
    from dlbench.backends import backend_status

    st = backend_status(backend)
    if not st.available:
        raise ValueError(f"backend {backend!r} is unavailable here: {st.reason}")


def _dispatch(op: str, geom: ConvGeometry, dtype, algorithm: str, backend: str, call):
    """Run ``call(kernel)`` with the kernel ``(op, algorithm, backend)``, or the auto-selected one."""
    from dlbench.registry import find_kernels, get_kernel

    _check_backend(backend)
    dt = str(np.dtype(dtype))
    params = geom.params()
    if algorithm == "auto":
        from dlbench import autotune
        from dlbench.registry import KERNELS

        memo = (op, backend, dt, repr(params), len(KERNELS))
        cands = _CANDIDATES.get(memo)
        if cands is None:
            kernels = find_kernels(op, backend=backend)
            if not kernels:
                get_kernel(op, "auto", backend)  # raises, naming what exists
            cands = [k for k in kernels
                     if k.algorithm not in AUTO_EXCLUDE and k.applies(dt, **params) is None]
            if not cands:
                reasons = "; ".join(f"{k.algorithm}: {k.applies(dt, **params)}" for k in kernels)
                raise ValueError(f"no {backend} kernel of {op} applies to {params}: {reasons}")
            _CANDIDATES[memo] = cands
        kern, out = autotune.choose(op, backend, dt, params, cands, call)
        return out if out is not None else call(kern)
    kern = get_kernel(op, algorithm, backend)
    why = kern.applies(dt, **params)
    if why:
        raise ValueError(f"{op} algorithm {algorithm!r} on backend {backend!r} cannot run this problem: "
                         f"{why}")
    return call(kern)


def _flip(w, nd):
    """The kernel flipped in every spatial direction: turns eq. 9.6 into eq. 9.4."""
    return np.ascontiguousarray(w[(Ellipsis,) + (slice(None, None, -1),) * nd])


def _add_bias(y, b, nd):
    if b is None:
        return y
    b = np.asarray(b)
    k, out = y.shape[1], y.shape[2:]
    if b.shape == (k,):
        y += b.reshape((1, k) + (1,) * nd)
    elif b.shape == (k,) + out:
        y += b[None]
    else:
        raise ValueError(f"bias must have shape ({k},) (per output channel) or {(k,) + out} "
                         f"(per output location), got {b.shape}")
    return y


def _forward(nd, x, w, b, stride, padding, dilation, groups, flip, algorithm, backend):
    x = _as_float_array(x, "x")
    w = _as_float_array(w, "w")
    arrays, names = [x, w], ["x", "w"]
    if b is not None:
        b = _as_float_array(b, "b")
        arrays.append(b)
        names.append("b")
    dtype = check_float_dtypes(*arrays, names=names)
    unbatched = x.ndim == nd + 1
    if unbatched:
        x = x[None]
    if x.ndim != nd + 2:
        raise ValueError(f"x must have {nd + 2} dimensions (N, C, {', '.join(SPATIAL[nd])}), got shape "
                         f"{x.shape}")
    if w.ndim != nd + 2:
        raise ValueError(f"w must have {nd + 2} dimensions (K, C/groups, {', '.join(KERNEL[nd])}), "
                         f"got shape {w.shape}")
    n, c = x.shape[:2]
    k, cg = w.shape[:2]
    geom = ConvGeometry.make(nd, n, c, k, groups, x.shape[2:], w.shape[2:], stride, padding, dilation)
    if cg * groups != c:
        raise ValueError(f"w has {cg} input channels per group but x has {c} channels and groups={groups} "
                         f"(w.shape[1] must be C/groups = {c // groups})")
    x = np.ascontiguousarray(x)
    w = _flip(w, nd) if flip else np.ascontiguousarray(w)
    op = FORWARD_OPS[nd]
    y = _dispatch(op, geom, dtype, algorithm, backend,
                  lambda kern: kern(x, w, geom.stride, geom.padding, geom.dilation, groups))
    y = _add_bias(y, b, nd)
    return y[0] if unbatched else y


def _backward_data(nd, dy, w, x_shape, stride, padding, dilation, groups, flip, algorithm, backend):
    dy = _as_float_array(dy, "dy")
    w = _as_float_array(w, "w")
    dtype = check_float_dtypes(dy, w, names=["dy", "w"])
    x_shape = tuple(int(v) for v in x_shape)
    if dy.ndim != nd + 2 or w.ndim != nd + 2 or len(x_shape) != nd + 2:
        raise ValueError(f"dy, w and x_shape must have {nd + 2} dimensions, got {dy.shape}, {w.shape}, "
                         f"{x_shape}")
    n, c = x_shape[:2]
    k, cg = w.shape[:2]
    geom = ConvGeometry.make(nd, n, c, k, groups, x_shape[2:], w.shape[2:], stride, padding, dilation)
    if cg * groups != c:
        raise ValueError(f"w has {cg} input channels per group but x_shape has {c} channels and "
                         f"groups={groups}")
    if dy.shape != geom.y_shape:
        raise ValueError(f"dy has shape {dy.shape} but a forward convolution of x_shape {x_shape} with these "
                         f"weights, stride, padding and dilation gives {geom.y_shape}")
    dy = np.ascontiguousarray(dy)
    w = _flip(w, nd) if flip else np.ascontiguousarray(w)
    op = FORWARD_OPS[nd] + "_backward_data"
    return _dispatch(op, geom, dtype, algorithm, backend,
                     lambda kern: kern(dy, w, x_shape, geom.stride, geom.padding, geom.dilation, groups))


def _backward_weight(nd, x, dy, w_shape, stride, padding, dilation, groups, flip, algorithm, backend):
    x = _as_float_array(x, "x")
    dy = _as_float_array(dy, "dy")
    dtype = check_float_dtypes(x, dy, names=["x", "dy"])
    w_shape = tuple(int(v) for v in w_shape)
    if x.ndim != nd + 2 or dy.ndim != nd + 2 or len(w_shape) != nd + 2:
        raise ValueError(f"x, dy and w_shape must have {nd + 2} dimensions, got {x.shape}, {dy.shape}, "
                         f"{w_shape}")
    n, c = x.shape[:2]
    k, cg = w_shape[:2]
    geom = ConvGeometry.make(nd, n, c, k, groups, x.shape[2:], w_shape[2:], stride, padding, dilation)
    if cg * groups != c:
        raise ValueError(f"w_shape has {cg} input channels per group but x has {c} channels and "
                         f"groups={groups}")
    if dy.shape != geom.y_shape:
        raise ValueError(f"dy has shape {dy.shape} but the forward convolution of x {x.shape} gives "
                         f"{geom.y_shape}")
    x = np.ascontiguousarray(x)
    dy = np.ascontiguousarray(dy)
    op = FORWARD_OPS[nd] + "_backward_weight"
    dw = _dispatch(op, geom, dtype, algorithm, backend,
                   lambda kern: kern(x, dy, w_shape, geom.stride, geom.padding, geom.dilation, groups))
    return _flip(dw, nd) if flip else dw


# ------------------------------------------------------------------ public functions
def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, flip=False, algorithm="auto",
           backend="numba"):
    """2-D convolution layer, forward: y[n,k,p,q] = sum_{c,r,s} x[n,c,p*sh+r*dh-pt, q*sw+s*dw-pl] w[k,c,r,s].

    x (N, C, H, W) or (C, H, W); w (K, C/groups, R, S); b None, (K,) or (K, P, Q); returns
    (N, K, P, Q) in x's dtype (float32 or float64). Cross-correlation (eq. 9.6/9.7) with stride
    (eq. 9.8), padding int / (ph, pw) / ((top, bottom), (left, right)) / "valid" / "same" /
    "full" (9.5), dilation and groups (fig. 9.15). ``flip=True``: true convolution (eq. 9.4).
    """
    return _forward(2, x, w, b, stride, padding, dilation, groups, flip, algorithm, backend)


def conv1d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, flip=False, algorithm="auto",
           backend="numba"):
    """1-D convolution (audio, table 9.1): x (N, C, W), w (K, C/groups, S) -> (N, K, Q). See conv2d."""
    return _forward(1, x, w, b, stride, padding, dilation, groups, flip, algorithm, backend)


def conv3d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, flip=False, algorithm="auto",
           backend="numba"):
    """3-D convolution (volumes, video; table 9.1): x (N, C, D, H, W), w (K, C/groups, T, R, S). See "
      "conv2d."""
    return _forward(3, x, w, b, stride, padding, dilation, groups, flip, algorithm, backend)


def conv2d_backward_data(dy, w, x_shape, stride=1, padding=0, dilation=1, groups=1, flip=False,
                         algorithm="auto", backend="numba"):
    """Input gradient of conv2d (eq. 9.12-9.13): dx = transposed convolution of dy with w.

    dy (N, K, P, Q), w (K, C/groups, R, S), x_shape (N, C, H, W): the forward input's shape,
    needed because several input sizes give the same output size at stride > 1. Returns dx
    with shape x_shape. Same stride/padding/dilation/groups/flip as the forward call.
    """
    return _backward_data(2, dy, w, x_shape, stride, padding, dilation, groups, flip, algorithm, backend)


def conv2d_backward_weight(x, dy, w_shape, stride=1, padding=0, dilation=1, groups=1, flip=False,
                           algorithm="auto", backend="numba"):
    """Kernel gradient of conv2d (eq. 9.11): dw[k,c,r,s] = sum_{n,p,q} dy[n,k,p,q] x[n,c,p*sh+r*dh-pt, ...].

    x (N, C, H, W), dy (N, K, P, Q), w_shape (K, C/groups, R, S); returns dw of shape w_shape.
    """
    return _backward_weight(2, x, dy, w_shape, stride, padding, dilation, groups, flip, algorithm, backend)


def conv1d_backward_data(dy, w, x_shape, stride=1, padding=0, dilation=1, groups=1, flip=False,
                         algorithm="auto", backend="numba"):
    """Input gradient of conv1d (eq. 9.12-9.13 in one dimension)."""
    return _backward_data(1, dy, w, x_shape, stride, padding, dilation, groups, flip, algorithm, backend)


def conv1d_backward_weight(x, dy, w_shape, stride=1, padding=0, dilation=1, groups=1, flip=False,
                           algorithm="auto", backend="numba"):
    """Kernel gradient of conv1d (eq. 9.11 in one dimension)."""
    return _backward_weight(1, x, dy, w_shape, stride, padding, dilation, groups, flip, algorithm, backend)


def conv3d_backward_data(dy, w, x_shape, stride=1, padding=0, dilation=1, groups=1, flip=False,
                         algorithm="auto", backend="numba"):
    """Input gradient of conv3d (eq. 9.12-9.13 in three dimensions)."""
    return _backward_data(3, dy, w, x_shape, stride, padding, dilation, groups, flip, algorithm, backend)


def conv3d_backward_weight(x, dy, w_shape, stride=1, padding=0, dilation=1, groups=1, flip=False,
                           algorithm="auto", backend="numba"):
    """Kernel gradient of conv3d (eq. 9.11 in three dimensions)."""
    return _backward_weight(3, x, dy, w_shape, stride, padding, dilation, groups, flip, algorithm, backend)


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, dilation=1, groups=1,
                     output_size=None, algorithm="auto", backend="numba"):
    """Transposed convolution (9.5, eq. 9.12-9.13; the decoder of a conv autoencoder, eq. 9.14).

    x (N, C_in, H, W), w (C_in, C_out/groups, R, S) as in torch.nn.functional.conv_transpose2d;
    returns (N, C_out, Ho, Wo) with Ho = (H-1)*sh - pt - pb + dh*(R-1) + 1 + output_padding.
    Several output sizes map onto one input size at stride > 1: pick one with ``output_padding``
    (0 <= op < stride) or give ``output_size`` (Ho, Wo) explicitly. b: None or (C_out,).
    Computed as ``conv2d_backward_data`` of a forward conv from (N, C_out, Ho, Wo) to x.
    """
    x = _as_float_array(x, "x")
    w = _as_float_array(w, "w")
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"x and w must be 4-D, got {x.shape} and {w.shape}")
    n, cin = x.shape[:2]
    if w.shape[0] != cin:
        raise ValueError(f"w.shape[0] must equal the {cin} input channels of x, got {w.shape}")
    cout = w.shape[1] * groups
    stride_t = ntuple(stride, 2, "stride")
    dil = ntuple(dilation, 2, "dilation")
    check_positive(stride_t, "stride")
    check_positive(dil, "dilation")
    pads = resolve_padding(padding, tuple(w.shape[2:]), dil, stride_t)
    base = [(m - 1) * s - lo - hi + d * (k - 1) + 1
            for m, s, (lo, hi), d, k in zip(x.shape[2:], stride_t, pads, dil, w.shape[2:])]
    if output_size is not None:
        size = ntuple(output_size[-2:] if len(output_size) > 2 else output_size, 2, "output_size")
        for o, lo_, s in zip(size, base, stride_t):
            if not lo_ <= o < lo_ + s:
                raise ValueError(f"output_size {tuple(size)} is not reachable: each extent must lie in "
                                 f"[{base[0]}, {base[0] + stride_t[0] - 1}] x [{base[1]}, "
                                 f"{base[1] + stride_t[1] - 1}]")
    else:
        op_ = ntuple(output_padding, 2, "output_padding")
        for o, s, d in zip(op_, stride_t, dil):
            if not 0 <= o < max(s, d):
                raise ValueError(f"output_padding must be in [0, max(stride, dilation)), got {op_}")
        size = tuple(b_ + o for b_, o in zip(base, op_))
    if any(s < 1 for s in size):
        raise ValueError(f"negative output size {tuple(size)} for conv_transpose2d")
    y = _backward_data(2, x, w, (n, cout) + tuple(size), stride_t, pads, dil, groups, False, algorithm,
                       backend)
    return _add_bias(y, b, 2)
