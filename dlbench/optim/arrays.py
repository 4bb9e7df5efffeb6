"""Parameter containers of the optimizers: one array or a list of arrays, host or device.

The fused kernels work on flat 1-D views; :func:`flat_view` gives one without copying (so the
update lands in the caller's array) and refuses arrays it cannot view. :func:`flat_buffer`
packs a list of parameter arrays into one contiguous buffer, returning views into it, so that
one kernel call updates a whole model (the fastest layout, like torch's fused multi-tensor
kernels but with a single pass).
"""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def is_device_array(a) -> bool:
    """True for numba device arrays (also the simulator's) and any ``__cuda_array_interface__`` object."""
    if isinstance(a, np.ndarray):
        return False
    if hasattr(a, "__cuda_array_interface__"):
        return True
    if not hasattr(a, "copy_to_host"):
        return False
    from numba import cuda

    check = getattr(cuda, "is_cuda_array", None)
    return True if check is None else bool(check(a))    # the simulator has no is_cuda_array


def as_list(x) -> list:
    """One array -> [array]; a list/tuple of arrays -> list."""
    return list(x) if isinstance(x, (list, tuple)) else [x]


def check_param(p, what: str = "parameter") -> None:
    """ValueError unless ``p`` is a float32/float64 C-contiguous host array or a device array."""
    if is_device_array(p):
        dt = np.dtype(p.dtype)
    elif isinstance(p, np.ndarray):
        dt = p.dtype
        if not p.flags.c_contiguous:
            raise ValueError(f"{what} arrays must be C-contiguous (the update is in place); got strides "
                             f"{p.strides} for shape {p.shape}")
        if not p.flags.writeable and what == "parameter":
            raise ValueError("parameter arrays must be writeable (the update is in place)")
    else:
        raise ValueError(f"{what}s must be NumPy or CUDA device arrays, got {type(p).__name__}")
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"{what} arrays must be float32 or float64, got {dt}")


def check_pairs(params: list, grads: list) -> None:
    """ValueError unless grads match params one for one in count, shape and dtype."""
    if len(params) != len(grads):
        raise ValueError(f"{len(params)} parameter arrays but {len(grads)} gradient arrays")
    for i, (p, g) in enumerate(zip(params, grads)):
        if tuple(p.shape) != tuple(g.shape) or np.dtype(p.dtype) != np.dtype(g.dtype):
            raise ValueError(f"param {i} ({tuple(p.shape)}, {np.dtype(p.dtype)}) and its gradient "
                             f"({tuple(g.shape)}, {np.dtype(g.dtype)}) differ in shape or dtype")
        if isinstance(g, np.ndarray) and not g.flags.c_contiguous:
            g_ok = np.ascontiguousarray(g)
            grads[i] = g_ok


def flat_view(a):
    """A 1-D view of a C-contiguous array (host or device), no copy."""
    if isinstance(a, np.ndarray):
        return a.reshape(-1)
    size = int(np.prod(a.shape)) if len(a.shape) else 1
    return a.reshape(size) if len(a.shape) != 1 else a


def zeros_like(p, fill: float = 0.0):
    """A new array shaped like ``p`` filled with ``fill``, on the same side (host / device) as ``p``."""
    if isinstance(p, np.ndarray):
        return np.full(p.shape, fill, dtype=p.dtype)
    from numba import cuda

    return cuda.to_device(np.full(tuple(p.shape), fill, dtype=np.dtype(p.dtype)))


def copy_like(p):
    """A copy of ``p`` on the same side (host / device)."""
    if isinstance(p, np.ndarray):
        return p.copy()
    from numba import cuda

    return cuda.to_device(p.copy_to_host() if hasattr(p, "copy_to_host") else np.asarray(p))


def to_host(a) -> np.ndarray:
    """A NumPy array of ``a`` (copy for device arrays, the array itself otherwise)."""
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "copy_to_host"):
        return a.copy_to_host()
    from numba import cuda

    return cuda.as_cuda_array(a).copy_to_host()


def flat_buffer(arrays, dtype=None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Pack ``arrays`` into one contiguous 1-D buffer; returns ``(buffer, views)``.

    ``views[i]`` has the shape of ``arrays[i]`` and its values, and shares memory with
    ``buffer``: a model that keeps its weights as the views can be updated by one kernel call on
    ``buffer`` (with its gradient packed the same way). dtype defaults to the arrays' common dtype.
    """
    arrays = [np.asarray(a) for a in as_list(arrays)]
    if not arrays:
        raise ValueError("flat_buffer needs at least one array")
    dt = np.dtype(dtype) if dtype is not None else np.result_type(*arrays)
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"flat_buffer dtype must be float32 or float64, got {dt}")
    total = sum(a.size for a in arrays)
    buf = np.empty(total, dtype=dt)
    views, off = [], 0
    for a in arrays:
        v = buf[off:off + a.size].reshape(a.shape)
        v[...] = a
        views.append(v)
        off += a.size
    return buf, views
