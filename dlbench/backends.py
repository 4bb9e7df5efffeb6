"""Backends and their availability.

Each backend reports whether it can run here and, when it cannot, why. ``numba-cuda`` has
three states: ``gpu`` (a real CUDA device), ``simulator`` (``NUMBA_ENABLE_CUDASIM=1``: correct
but never timed) and ``none``.
"""

from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass

import pandas as pd

BACKENDS = ("numpy", "numba", "cython", "numba-cuda", "torch", "scipy")

DESCRIPTIONS = {
    "numpy": "pure NumPy reference (the executable specification)",
    "numba": "Numba @njit(parallel=True) CPU kernels",
    "cython": "Cython typed memoryviews + OpenMP prange",
    "numba-cuda": "numba.cuda GPU kernels (simulator: correctness only)",
    "torch": "PyTorch peer (oneDNN / cuDNN)",
    "scipy": "SciPy peer (signal, optimize)",
}


@dataclass(frozen=True)
class BackendStatus:
    name: str
    available: bool
    reason: str = ""
    mode: str = ""          # numba-cuda: gpu / simulator / none; cython: openmp / serial
    version: str = ""
    timed: bool = True      # False for the CUDA simulator: results are correctness only


def _version(modname: str) -> str:
    try:
        return str(getattr(importlib.import_module(modname), "__version__", ""))
    except Exception:  # noqa: BLE001
        return ""


@functools.cache
def backend_status(name: str) -> BackendStatus:
    """Availability of one backend (cached for the process)."""
    if name not in BACKENDS:
        from dlbench.errors import UserError

        raise UserError(f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}")
    if name == "numpy":
        return BackendStatus(name, True, mode="reference", version=_version("numpy"))
    if name == "numba":
        try:
            import numba
        except Exception as e:  # noqa: BLE001
            return BackendStatus(name, False, f"numba does not import: {e}")
        return BackendStatus(name, True, mode=f"{numba.config.NUMBA_NUM_THREADS} threads max",
                             version=numba.__version__)
    if name == "cython":
        try:
            from dlbench.kernels.cython import _omp
        except ImportError as e:
            return BackendStatus(name, False, "the Cython extension is not built (pip install . or "
                                 f"pip install -e . compiles it): {e}")
        mode = "openmp" if _omp.openmp_enabled() else "serial (built without OpenMP)"
        return BackendStatus(name, True, mode=mode, version=_version("Cython"))
    if name == "numba-cuda":
        return _cuda_status()
    if name == "torch":
        try:
            import torch
        except Exception as e:  # noqa: BLE001
            return BackendStatus(name, False, f"torch is not importable ({e}); pip install 'dlbench[torch]'")
        return BackendStatus(name, True, mode="cuda" if torch.cuda.is_available() else "cpu",
                             version=torch.__version__)
    if name == "scipy":
        try:
            import scipy
        except Exception as e:  # noqa: BLE001
            return BackendStatus(name, False, f"scipy is not importable: {e}")
        return BackendStatus(name, True, mode="cpu", version=scipy.__version__)
    raise AssertionError(name)


def cuda_simulator_enabled() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def _cuda_status() -> BackendStatus:
    try:
        from numba import cuda
    except Exception as e:  # noqa: BLE001
        return BackendStatus("numba-cuda", False, f"numba.cuda does not import: {e}", mode="none")
    ver = _version("numba_cuda") or _version("numba")
    if cuda_simulator_enabled():
        return BackendStatus("numba-cuda", True, "CUDA simulator (NUMBA_ENABLE_CUDASIM=1): correctness "
                             "only, never timed", mode="simulator", version=ver, timed=False)
    try:
        ok = cuda.is_available()
    except Exception as e:  # noqa: BLE001
        return BackendStatus("numba-cuda", False, f"no usable CUDA driver: {e}", mode="none", version=ver)
    if not ok:
        return BackendStatus("numba-cuda", False, "no CUDA GPU found (set NUMBA_ENABLE_CUDASIM=1 before "
                             "numba is imported to test the kernels on the simulator)", mode="none",
                             version=ver)
    try:
        name = cuda.get_current_device().name
        name = name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # noqa: BLE001
        name = "gpu"
    return BackendStatus("numba-cuda", True, mode=f"gpu: {name}", version=ver)


def backends() -> pd.DataFrame:
    """Availability table: one row per backend with mode, version and the reason when unavailable."""
    from dlbench.registry import LOAD_ERRORS, find_kernels, load_builtin_kernels

    load_builtin_kernels()
    rows = []
    for b in BACKENDS:
        st = backend_status(b)
        reason = st.reason
        if b in LOAD_ERRORS and st.available:
            reason = (reason + "; " if reason else "") + "some kernels failed to load: " + LOAD_ERRORS[b]
        rows.append({"backend": b, "available": st.available, "mode": st.mode, "version": st.version,
                     "timed": st.timed and st.available, "kernels": len(find_kernels(backend=b)),
                     "reason": reason, "description": DESCRIPTIONS[b]})
    return pd.DataFrame(rows)


def check_backend(name: str) -> BackendStatus:
    """The status of ``name``; raises UserError for an unknown name."""
    return backend_status(name)
