"""Helpers shared by the numba.cuda kernels: launch configuration and host/device movement."""

import numpy as np
from numba import cuda


def launch_1d(n: int, threads: int = 256, max_blocks: int = 65535):
    """(blocks, threads) for a grid-stride loop over n elements."""
    blocks = max(1, min(max_blocks, (n + threads - 1) // threads))
    return blocks, threads


def is_device_array(a) -> bool:
    """True for numba device arrays and any object exposing ``__cuda_array_interface__``."""
    if isinstance(a, np.ndarray):
        return False
    check = getattr(cuda, "is_cuda_array", None)  # the CUDA simulator has no is_cuda_array
    if check is not None:
        return bool(check(a))
    return hasattr(a, "__cuda_array_interface__") or type(a).__name__ == "FakeCUDAArray"


class DeviceArgs:
    """Device views of the arguments of one call.

    Device inputs (numba device arrays, torch CUDA tensors, anything with
    ``__cuda_array_interface__``) pass through without copies; NumPy inputs are copied to the
    device, and ``copy_back(i, ...)`` writes the named ones back into the caller's arrays so
    that in-place kernels keep their semantics on host inputs.
    """

    def __init__(self, *arrays):
        self.originals = arrays
        self.arrays = []
        self.host = []
        for a in arrays:
            if is_device_array(a):
                as_array = getattr(cuda, "as_cuda_array", None)  # absent on the simulator
                self.arrays.append(as_array(a) if as_array is not None and not hasattr(a, "copy_to_host")
                                   else a)
                self.host.append(False)
            else:
                self.arrays.append(cuda.to_device(np.ascontiguousarray(a)))
                self.host.append(True)

    def copy_back(self, *indices):
        for i in indices:
            if self.host[i]:
                self.arrays[i].copy_to_host(self.originals[i])
