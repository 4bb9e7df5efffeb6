"""Test-session setup: CUDA kernels run on the Numba CUDA simulator (correctness only).

NUMBA_ENABLE_CUDASIM must be set before numba is first imported, so it is set here, at the
import of the conftest, before any test module imports dlbench. A real GPU run sets
DLBENCH_TEST_REAL_GPU=1 to keep the hardware.
"""

import os

if not os.environ.get("DLBENCH_TEST_REAL_GPU"):
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
os.environ.setdefault("DLBENCH_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".pytest_cache",
                                                        "dlbench"))
