"""Heap policy for measurements: reuse freed large buffers instead of fresh pages from the OS.

glibc's malloc serves every request above its mmap threshold (at most 32 MiB with the default,
dynamic threshold) with a fresh ``mmap`` and returns it to the OS on ``free``. An op that returns a
new 51 MB array (pooling's input gradient on a 16 x 64 x 112^2 map) then pays ~12,500 page faults
per call, each with the kernel zeroing a 4 KiB page: on this VM that is 5-7 ms, more than the
kernel's own memory traffic (~2 ms at the calibrated bandwidth), and it lands on every backend that
allocates its output (NumPy, Numba, Cython and torch all allocate through glibc).

``keep_freed_memory()`` raises the mmap and trim thresholds (``mallopt``) so that large buffers
come from the heap and stay there when freed: the next call of the same op gets already-mapped
pages back, as a framework's caching allocator would. It is a process-wide setting applied by
``dlbench run`` to every backend alike (``--fresh-pages`` turns it off) and recorded in
``meta.json``; it changes no result, only where output buffers come from.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import platform

import numpy as np

__all__ = ["keep_freed_memory", "empty_aligned", "M_TRIM_THRESHOLD", "M_MMAP_THRESHOLD"]

M_TRIM_THRESHOLD = -1   # glibc <malloc.h>
M_MMAP_THRESHOLD = -3

_applied: dict | None = None


def keep_freed_memory(threshold_bytes: int = 1 << 30, keep_bytes: int = 2**31 - 1) -> dict:
    """Serve allocations below ``threshold_bytes`` from the heap and keep up to ``keep_bytes`` of
    freed memory in it (glibc ``mallopt``; both capped at 2^31 - 1, an int). Idempotent; returns a
    record for ``meta.json``: ``{"policy": "reuse-freed", "mmap_threshold": ..., "trim_threshold":
    ...}``, or ``{"policy": "default", "reason": ...}`` where there is no glibc (the run goes on
    unchanged).
    """
    global _applied
    if _applied is not None:
        return dict(_applied)
    if threshold_bytes <= 0 or keep_bytes <= 0:
        raise ValueError(f"keep_freed_memory: thresholds must be > 0, got {threshold_bytes}, {keep_bytes}")
    libc_name = platform.libc_ver()[0]
    if platform.system() != "Linux" or libc_name != "glibc":
        return {"policy": "default",
                "reason": f"not glibc ({platform.system()} {libc_name or 'unknown libc'})"}
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError) as exc:
        return {"policy": "default", "reason": f"mallopt unavailable: {exc}"}
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mmap_t, trim_t = (int(min(v, 2**31 - 1)) for v in (threshold_bytes, keep_bytes))
    ok_mmap, ok_trim = mallopt(M_MMAP_THRESHOLD, mmap_t), mallopt(M_TRIM_THRESHOLD, trim_t)
    if not (ok_mmap and ok_trim):
        return {"policy": "default", "reason": f"mallopt refused (mmap: {ok_mmap}, trim: {ok_trim})"}
    _applied = {"policy": "reuse-freed", "mmap_threshold": mmap_t, "trim_threshold": trim_t}
    return dict(_applied)


def empty_aligned(shape, dtype, align: int = 64) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on an ``align``-byte boundary (a cache
    line by default; NumPy only promises 16). Kernels that write whole rows with non-temporal
    stores need it: their 32-byte stores must be aligned, and a row that starts mid-line leaves
    partial lines in the write-combining buffers. The extra ``align`` bytes come from the same
    allocation, which the returned view keeps alive."""
    dtype = np.dtype(dtype)
    if align <= 0 or align & (align - 1) or align % dtype.itemsize:
        raise ValueError(f"empty_aligned: align must be a power of two and a multiple of the item size "
                         f"({dtype.itemsize}), got {align}")
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(nbytes + align, np.uint8)
    start = -raw.__array_interface__["data"][0] % align     # (ndarray.ctypes costs ~10 us)
    return raw[start:start + nbytes].view(dtype).reshape(shape)
