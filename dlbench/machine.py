"""Machine facts: CPU model, cores, ISA flags, GPU, library versions, and a stable fingerprint."""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import platform
import subprocess
from pathlib import Path


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


def cpu_caches(root: str = "/sys/devices/system/cpu/cpu0/cache") -> str:
    """The data and unified caches of CPU 0 as the kernel reports them, e.g. "L1d 48K, L2 2048K,
    L3 491520K" ('' where sysfs has none). A VM can move to a host with other caches behind the
    same CPU model string (this project's VM went from a 32 MiB to a 480 MiB L3), and cache sizes
    decide which working sets stream from DRAM, so they are part of the fingerprint."""
    out = []
    try:
        entries = sorted(e for e in os.listdir(root) if e.startswith("index"))
    except OSError:
        return ""
    for e in entries:
        try:
            kind, level, size = (Path(root, e, f).read_text().strip() for f in ("type", "level", "size"))
        except OSError:
            continue
        if kind != "Instruction":
            out.append(f"L{level}{'d' if kind == 'Data' else ''} {size}")
    return ", ".join(out)


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
        "caches": cpu_caches(),
        "mem_gib": round(mem_total_gib(), 1),
        "os": platform.platform(),
        "gpu": gpu_info(),
    }


def fingerprint() -> str:
    """Short stable id of this machine (host, CPU, cores, ISA, caches, memory, GPU)."""
    m = machine_info()
    fields = ("hostname", "cpu_model", "llvm_cpu", "cores", "isa", "caches", "mem_gib", "gpu")
    key = "|".join(str(m[k]) for k in fields)
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
