"""Test-session setup: CUDA kernels run on the Numba CUDA simulator (correctness only).

NUMBA_ENABLE_CUDASIM must be set before numba is first imported, so it is set here, at the
import of the conftest, before any test module imports dlbench. A real GPU run sets
DLBENCH_TEST_REAL_GPU=1 to keep the hardware.
"""

import os

if not os.environ.get("DLBENCH_TEST_REAL_GPU"):
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
# no pause before each timed variant in tests (they check rows, not figures; dlbench.timing)
os.environ.setdefault("DLBENCH_SETTLE", "0")
os.environ.setdefault("DLBENCH_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".pytest_cache",
                                                        "dlbench"))


def _lock_simulator_shared_arrays() -> None:
    """Work around a race in the CUDA simulator (numba-cuda 0.30): ``cuda.shared.array`` looks the
    block's allocation up by call site and creates it when missing, without a lock. When the GIL
    switches threads between the lookup and the store (likely with the short switch interval the
    CUDA tests use), two threads of one block get *different* arrays and the block computes
    garbage: seen once as a wrong tile of an implicit-GEMM data gradient in CI. Same semantics
    (one array per block and call site), made atomic."""
    import sys
    import threading

    import numpy as np
    from numba.core import types
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    lock = threading.Lock()
    original = kernelapi.FakeCUDAShared.array

    def array(self, shape, dtype, alignment=None):
        if alignment is not None or shape == 0:
            return original(self, shape, dtype, alignment)  # errors / dynamic shared memory: unchanged
        if isinstance(dtype, types.Type):
            dtype = numpy_support.as_dtype(dtype)
        frame = sys._getframe(1)
        site = (frame.f_code.co_filename, frame.f_lineno)
        with lock:
            res = self._allocations.get(site)
            if res is None:
                res = self._allocations[site] = np.empty(shape, dtype)
        return res

    kernelapi.FakeCUDAShared.array = array


if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    _lock_simulator_shared_arrays()
