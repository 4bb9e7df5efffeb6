"""Gradient clipping (sec. 8.2.4, 10.11.1) as standalone in-place operations on any backend.

The optimizers fuse both kinds into their update (``clip_norm=``, ``clip_value=``); these
functions serve code that clips gradients itself. ``grads``: one array or a list of arrays.
"""

from __future__ import annotations

import math

from dlbench.optim.arrays import as_list, check_param, flat_view
from dlbench.registry import get_kernel


def global_norm(grads, backend: str = "numba") -> float:
    """||g||_2 over all arrays (float64 accumulation); inf or NaN if an element is not finite."""
    kern = get_kernel("grad_sumsq", "fused", backend)
    gs = as_list(grads)
    for g in gs:
        check_param(g, "gradient")
    return math.sqrt(sum(kern(flat_view(g)) for g in gs))


def clip_grad_norm(grads, max_norm: float, backend: str = "numba") -> float:
    """If ||g|| > max_norm: g <- g max_norm / ||g|| (all arrays, one global norm), in place.

    Returns the norm before clipping. Non-finite norms leave the gradients untouched.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    norm = global_norm(grads, backend)
    if math.isfinite(norm) and norm > max_norm:
        kern = get_kernel("scale_grad", "fused", backend)
        for g in as_list(grads):
            kern(flat_view(g), max_norm / norm)
    return norm


def clip_grad_value(grads, clip: float, backend: str = "numba") -> None:
    """Element-wise clipping g <- min(max(g, -clip), clip), in place."""
    if not clip > 0:
        raise ValueError(f"clip must be > 0, got {clip}")
    kern = get_kernel("clip_by_value", "fused", backend)
    for g in as_list(grads):
        check_param(g, "gradient")
        kern(flat_view(g), clip)
