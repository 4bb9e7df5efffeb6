"""Machine facts: CPU model, cores, ISA flags, GPU, library versions, and a stable fingerprint."""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import platform
import subprocess


def _cpuinfo_field(name: str) -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(name):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def isa_flags() -> list[str]:
    """Vector ISA features usable here, as LLVM (Numba's compiler) sees the host CPU."""
    try:
        import llvmlite.binding as llvm

        feats = llvm.get_host_cpu_features()
        names = [f for f, on in feats.items() if on]
    except Exception:  # noqa: BLE001
        names = _cpuinfo_field("flags").split()
    keep = ("sse4.2", "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512vnni",
            "avx512bf16", "amx-tile", "neon", "sve")
    return sorted({n for n in names if n in keep})


def llvm_cpu_name() -> str:
    try:
        import llvmlite.binding as llvm

        return llvm.get_host_cpu_name()
    except Exception:  # noqa: BLE001
        return ""


def gpu_info() -> str:
    """GPU name(s) from nvidia-smi, or '' when there is none."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().replace("\n", "; ") if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def versions() -> dict:
    out = {"python": platform.python_version()}
    for mod in ("numpy", "numba", "numba_cuda", "llvmlite", "pandas", "scipy", "torch", "Cython", "dlbench"):
        try:
            out[mod] = str(getattr(importlib.import_module(mod), "__version__", "?"))
        except Exception:  # noqa: BLE001
            out[mod] = ""
    return out


def mem_total_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return float("nan")


@functools.lru_cache(maxsize=1)
def machine_info() -> dict:
    """Everything a result needs to say where it was measured."""
    from dlbench.threads import default_threads

    return {
        "hostname": platform.node(),
        "cpu_model": _cpuinfo_field("model name") or platform.processor(),
        "llvm_cpu": llvm_cpu_name(),
        "cores": default_threads(),
        "isa": ",".join(isa_flags()),
        "mem_gib": round(mem_total_gib(), 1),
        "os": platform.platform(),
        "gpu": gpu_info(),
    }


def fingerprint() -> str:
    """Short stable id of this machine (host, CPU, cores, ISA, memory, GPU)."""
    m = machine_info()
    key = "|".join(str(m[k]) for k in ("hostname", "cpu_model", "llvm_cpu", "cores", "isa", "mem_gib", "gpu"))
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def git_revision() -> str:
    """The git commit of the dlbench checkout (with '+dirty'), or '' outside a checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        rev = subprocess.run(["git", "-C", here, "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        if rev.returncode != 0:
            return ""
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return rev.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return ""
