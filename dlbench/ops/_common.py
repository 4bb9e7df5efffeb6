"""Argument normalisation shared by the ops front-ends (conv family, variants, pooling).

Shapes follow chapter 9: for an input extent m, kernel extent k, dilation d, stride s and
padding p_lo/p_hi, the output extent is floor((m + p_lo + p_hi - d(k-1) - 1) / s) + 1
(eq. 9.8 with zero padding, 9.5).
"""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def ntuple(v, n: int, name: str) -> tuple[int, ...]:
    """An int or a length-n sequence of ints as an n-tuple; ValueError otherwise."""
    if isinstance(v, (int, np.integer)):
        return (int(v),) * n
    t = tuple(int(x) for x in v)
    if len(t) != n:
        raise ValueError(f"{name} must be an int or {n} ints, got {v!r}")
    return t


def check_positive(t: tuple[int, ...], name: str) -> None:
    if any(x < 1 for x in t):
        raise ValueError(f"{name} must be >= 1 in every direction, got {t}")


def resolve_padding(padding, kernel: tuple[int, ...], dilation: tuple[int, ...],
                    stride: tuple[int, ...] | None = None) -> tuple[tuple[int, int], ...]:
    """Per-dimension (before, after) zero padding.

    padding: "valid" (none: output m - k + 1), "same" (output = input at stride 1; the extra
    pixel, if any, goes after), "full" (k - 1 each side: output m + k - 1), an int, a tuple of
    ints (symmetric per dimension) or a tuple of (before, after) pairs.
    """
    n = len(kernel)
    eff = [d * (k - 1) for k, d in zip(kernel, dilation)]
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return tuple((0, 0) for _ in range(n))
        if mode == "same":
            if stride is not None and any(s != 1 for s in stride):
                raise ValueError("padding='same' requires stride 1 (output size = input size)")
            return tuple((e // 2, e - e // 2) for e in eff)
        if mode == "full":
            return tuple((e, e) for e in eff)
        raise ValueError(f"padding must be 'valid', 'same', 'full', an int or a tuple, got {padding!r}")
    if isinstance(padding, (int, np.integer)):
        pads = tuple((int(padding), int(padding)) for _ in range(n))
    else:
        items = list(padding)
        if len(items) != n:
            raise ValueError(f"padding needs {n} entries, got {padding!r}")
        pads = tuple((int(p), int(p)) if isinstance(p, (int, np.integer)) else tuple(int(q) for q in p)
                     for p in items)
        if any(len(p) != 2 for p in pads):
            raise ValueError(f"padding pairs must be (before, after), got {padding!r}")
    if any(p < 0 for pair in pads for p in pair):
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    return pads


def output_size(size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                pads: tuple[tuple[int, int], ...], dilation: tuple[int, ...]) -> tuple[int, ...]:
    """Output extent per dimension; ValueError when the (padded) input is smaller than the kernel."""
    out = []
    for m, k, s, (lo, hi), d in zip(size, kernel, stride, pads, dilation):
        span = m + lo + hi - d * (k - 1) - 1
        if span < 0:
            raise ValueError(f"negative output size: input extent {m} padded by ({lo}, {hi}) is smaller "
                             f"than the dilated kernel extent {d * (k - 1) + 1}")
        out.append(span // s + 1)
    return tuple(out)


def check_float_dtypes(*arrays, names=None) -> np.dtype:
    """All arrays share one float32/float64 dtype; returns it, ValueError naming the mismatch."""
    names = names or [f"arg{i}" for i in range(len(arrays))]
    dts = [np.asarray(a).dtype if not hasattr(a, "dtype") else np.dtype(a.dtype) for a in arrays]
    if dts[0] not in FLOAT_DTYPES:
        raise ValueError(f"{names[0]} must be float32 or float64, got {dts[0]}")
    for n, dt in zip(names[1:], dts[1:]):
        if dt != dts[0]:
            raise ValueError(f"dtype mismatch: {names[0]} is {dts[0]} but {n} is {dt}")
    return dts[0]
