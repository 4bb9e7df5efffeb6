"""Machine calibration: the compute and memory ceilings every "fraction of peak" divides by.

Compute: independent vector FMA chains on all threads (C in the Cython extension, widest ISA
the CPU has; also a Numba version), reported beside a 2048^3 float32 GEMM in NumPy and torch
and torch's conv2d (128->128, 28x28, 3x3, N=8). The ceiling ``peak_gflops`` is the highest of
these: a ceiling that a library exceeds would make every fraction of peak wrong.

Memory: STREAM-like kernels on arrays far larger than the last-level cache, all threads:
copy (8 B/elem), triad a = b + s*c (12 B), read-only sum (4 B), in-place update a += s*b
(12 B, no write-allocate), a 4-read/3-write update (28 B, an optimizer step's streams) and a
write-only stream (4 B: the ceiling of ops that mostly write a fresh output, e.g. a pooling
backward; measured at 21-31 GB/s here, well below the update's 52), at
1e7 and 2^25 elements per array. ``bw_gbs`` is the highest; each is stored. (On this VM the
guest reports a 32 MiB L3 but the host's caches make 1e7-element working sets faster than
2^25: measuring both keeps the ceiling above what the optimizer suite attains. On 2026-12-06 the
VM ran on a host reporting a 480 MiB L3, where both sizes are cache-resident and ``bw_gbs`` is
an L3 rate, 73-88 GB/s; the cache sizes are in the machine fingerprint since.)

torch's fused Adam step at 1e7 parameters (28 B/param) is measured too and counts towards the
bandwidth ceiling, as torch's GEMM counts towards the compute ceiling.

Results are cached per machine fingerprint and thread count (``~/.cache/dlbench`` or
``$DLBENCH_CACHE_DIR``); every run records the calibration it used.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numba as nb
import numpy as np

CAL_VERSION = 5


def cache_dir() -> Path:
    d = Path(os.environ.get("DLBENCH_CACHE_DIR", Path.home() / ".cache" / "dlbench"))
    d.mkdir(parents=True, exist_ok=True)
    return d


# ---------------------------------------------------------------- compute micro-kernels
# only FMA contraction: full fastmath would let LLVM reassociate two steps of the recurrence into
# one (acc*b*b + (c*b + c)), halving the real work and doubling the reported "peak"
@nb.njit(parallel=True, cache=True, fastmath={"contract"})
def _fma_numba(iters, nthreads):
    out = np.zeros(nthreads, np.float32)
    for t in nb.prange(nthreads):
        acc = np.empty(96, np.float32)
        for k in range(96):
            acc[k] = 1.0 + 0.001 * k + t
        b = np.float32(0.999999)
        c = np.float32(1e-6)
        for _ in range(iters):
            for k in range(96):
                acc[k] = acc[k] * b + c
        out[t] = acc.sum()
    return out


def _best_rate(fn, work, repeats=5) -> float:
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best = max(best, work / dt)
    return best


def fma_gflops_cython(threads: int) -> float:
    try:
        from dlbench.kernels.cython import _omp
    except ImportError:
        return float("nan")
    if _omp.fma_width() == 0:
        return float("nan")
    _omp.fma_peak(1000, threads)
    flops, _ = _omp.fma_peak(1000, threads)
    # size iterations for about 0.2 s per repeat
    t0 = time.perf_counter()
    _omp.fma_peak(200_000, threads)
    dt = time.perf_counter() - t0
    iters = max(1000, int(200_000 * 0.2 / max(dt, 1e-6)))
    work = _omp.fma_peak(iters, threads)[0]
    return _best_rate(lambda: _omp.fma_peak(iters, threads), work) / 1e9


def fma_gflops_numba(threads: int) -> float:
    _fma_numba(10, threads)
    t0 = time.perf_counter()
    _fma_numba(100_000, threads)
    dt = time.perf_counter() - t0
    iters = max(1000, int(100_000 * 0.2 / max(dt, 1e-6)))
    return _best_rate(lambda: _fma_numba(iters, threads), 2.0 * 96 * iters * threads) / 1e9


def gemm_gflops_numpy(n: int = 2048) -> float:
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = a.T.copy()
    a @ b
    return _best_rate(lambda: a @ b, 2.0 * n**3, repeats=3) / 1e9


def torch_gflops(n: int = 2048) -> dict:
    """torch float32 GEMM and conv2d (128->128, 28x28, 3x3 pad 1, N=8) GFLOP/s and the effective
    GB/s of its fused Adam step at 1e7 parameters, or {} without torch."""
    try:
        import torch
    except ImportError:
        return {}
    with torch.no_grad():
        a = torch.randn(n, n)
        b = torch.randn(n, n)
        a @ b
        gemm = _best_rate(lambda: a @ b, 2.0 * n**3, repeats=3) / 1e9
        x = torch.randn(8, 128, 28, 28)
        w = torch.randn(128, 128, 3, 3)
        f = lambda: torch.nn.functional.conv2d(x, w, padding=1)
        f()
        conv = _best_rate(f, 2.0 * 8 * 128 * 128 * 9 * 28 * 28, repeats=5) / 1e9
        # torch's fused Adam moves 28 B/param (reads p, g, m, v; writes p, m, v) in one pass: the
        # bandwidth ceiling must not sit below what this peer attains on the optimizer suite
        n_adam = 10_000_000
        p = torch.nn.Parameter(torch.randn(n_adam))
        p.grad = torch.randn(n_adam)
        try:
            opt = torch.optim.Adam([p], lr=1e-3, fused=True)
            opt.step()
            adam = _best_rate(opt.step, 28.0 * n_adam, repeats=9) / 1e9
        except (RuntimeError, TypeError):
            adam = float("nan")
        del p, opt
    return {"gemm_gflops_torch": gemm, "conv_gflops_torch": conv, "bw_torch_adam_gbs": adam}


# ---------------------------------------------------------------- memory kernels
@nb.njit(parallel=True, cache=True)
def _copy(a, b):
    for i in nb.prange(a.shape[0]):
        b[i] = a[i]


@nb.njit(parallel=True, cache=True)
def _triad(a, b, c, s):
    for i in nb.prange(a.shape[0]):
        a[i] = b[i] + s * c[i]


@nb.njit(parallel=True, cache=True, fastmath=True)
def _read(a):
    s = 0.0
    for i in nb.prange(a.shape[0]):
        s += a[i]
    return s


@nb.njit(parallel=True, cache=True)
def _update(a, b, s):
    for i in nb.prange(a.shape[0]):
        a[i] += s * b[i]


@nb.njit(parallel=True, cache=True)
def _update3(a, b, c, d, s):
    # the stream shape of a fused optimizer step: 4 reads, 3 in-place writes (28 B/elem float32)
    for i in nb.prange(a.shape[0]):
        x = s * d[i]
        a[i] += x
        b[i] -= x
        c[i] += x


@nb.njit(parallel=True, cache=True)
def _write(a, s):
    # a write-only stream (4 B/elem) of values that are not one constant (no memset, which may
    # switch to non-temporal stores): the ceiling of ops that mostly write a fresh output
    for i in nb.prange(a.shape[0]):
        a[i] = s * np.float32(i & 1023)


def _bandwidth_at(n: int) -> dict:
    """GB/s of each STREAM-like kernel on float32 arrays of n elements (best of 7)."""
    a, b, c, d = (np.ones(n, np.float32) for _ in range(4))
    s = np.float32(1e-7)
    kernels = {
        "copy": (lambda: _copy(a, b), 8.0 * n),
        "triad": (lambda: _triad(a, b, c, s), 12.0 * n),
        "read": (lambda: _read(a), 4.0 * n),
        "update": (lambda: _update(a, b, s), 12.0 * n),
        "update3": (lambda: _update3(a, b, c, d, s), 28.0 * n),
        "write": (lambda: _write(a, s), 4.0 * n),
    }
    out = {}
    for name, (fn, nbytes) in kernels.items():
        fn()
        out[name] = _best_rate(fn, nbytes, repeats=7) / 1e9
    return out


class BandwidthProbe:
    """The calibration's in-place update a += s*b (12 B/elem, float32, all threads) on n-element
    arrays, re-measured on demand during a run: ``probe()`` returns its GB/s, best of ``repeats``.

    This VM's memory bandwidth drifts by +-25 % within minutes (other tenants), so a fraction of
    a ceiling measured at the start says as much about the drift as about the kernel. The runner
    times this probe in every round of every case with a byte model, next to the variants, and
    reports ``frac_probe_bw``: the variant's GB/s over the probe's median of those rounds.
    """

    def __init__(self, n: int = 10_000_000, repeats: int = 3):
        self.n, self.repeats = n, repeats
        self._a = self._b = None

    def __call__(self) -> float:
        if self._a is None:
            self._a, self._b = np.ones(self.n, np.float32), np.ones(self.n, np.float32)
        s = np.float32(1e-7)
        _update(self._a, self._b, s)
        return _best_rate(lambda: _update(self._a, self._b, s), 12.0 * self.n, repeats=self.repeats) / 1e9


def bandwidth_gbs(sizes=(10_000_000, 1 << 25)) -> dict:
    """STREAM-like GB/s (decimal) on float32 arrays, all threads.

    Kernels: copy (8 B/elem), triad a = b + s*c (12 B), read-only sum (4 B), in-place update
    a += s*b (12 B), a 4-read/3-write in-place update (28 B, an optimizer step's streams) and a
    write-only stream (4 B).
    Each runs at every size in ``sizes`` (elements per array; the default working sets, 80 MB
    to 940 MB, are far beyond the reported LLC); ``bw_<kernel>_gbs`` is the best over sizes and
    ``bw_<kernel>_n<size>_gbs`` each size's figure. Bytes are counted STREAM-style (no
    write-allocate traffic).
    """
    out = {}
    for n in sizes:
        for name, rate in _bandwidth_at(n).items():
            out[f"bw_{name}_n{n:.0e}_gbs".replace("+0", "").replace("+", "")] = rate
            out[f"bw_{name}_gbs"] = max(out.get(f"bw_{name}_gbs", 0.0), rate)
    return out


def calibrate(threads: int | None = None, *, force: bool = False, quick: bool = False,
              progress=None) -> dict:
    """Measure (or load from cache) the compute and bandwidth ceilings for ``threads`` threads.

    Returns a dict with peak_gflops, bw_gbs, every component figure, the BLAS kernel, the
    fingerprint and when it was measured. ``quick`` skips the torch figures (for tests).
    """
    from dlbench.machine import fingerprint, machine_info
    from dlbench.threads import blas_info, default_threads, set_threads

    threads = threads or default_threads()
    fp = fingerprint()
    path = cache_dir() / f"calibration-{fp}-t{threads}.json"
    if path.exists() and not force:
        try:
            cal = json.loads(path.read_text())
            if cal.get("version") == CAL_VERSION and (quick or not cal.get("quick")):
                return cal
        except (OSError, ValueError):
            pass
    set_threads(threads)
    say = progress or (lambda msg: None)
    cal: dict = {"version": CAL_VERSION, "fingerprint": fp, "threads": threads, "quick": quick,
                 "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **blas_info()}
    say("compute: FMA chains (C, all threads)")
    cal["fma_gflops_cython"] = fma_gflops_cython(threads)
    say("compute: FMA chains (Numba)")
    cal["fma_gflops_numba"] = fma_gflops_numba(threads)
    say("compute: NumPy 2048^3 GEMM")
    cal["gemm_gflops_numpy"] = gemm_gflops_numpy(1024 if quick else 2048)
    if not quick:
        say("compute: torch GEMM and conv2d")
        cal.update(torch_gflops())
    say("memory: copy / triad / read / update")
    cal.update(bandwidth_gbs((1 << 22,) if quick else (10_000_000, 1 << 25)))
    comp = [v for k, v in cal.items() if k.endswith("_gflops_cython") or k.endswith("_gflops_numba")
            or k.startswith(("gemm_gflops", "conv_gflops"))]
    cal["peak_gflops"] = float(np.nanmax(comp))
    sources = [k for k, v in cal.items() if isinstance(v, float) and v == cal["peak_gflops"]]
    cal["peak_source"] = next((k for k in sources if k != "peak_gflops"), "")
    bws = {k: v for k, v in cal.items() if k.startswith("bw_") and k.endswith("_gbs") and "_n" not in k
           and np.isfinite(v)}
    cal["bw_gbs"] = float(max(bws.values()))
    cal["bw_source"] = max(bws, key=bws.get)
    cal["machine"] = machine_info()
    if cal["machine"].get("gpu"):
        say("GPU: FMA chains and HBM bandwidth")
        from dlbench.calibrate_gpu import calibrate_gpu

        cal.update(calibrate_gpu())
    cal["load_avg_1min"] = _load_avg()
    busy = cal["load_avg_1min"] > 1.5 * (os.cpu_count() or 1)
    cal["busy"] = bool(busy)
    if busy:
        # ceilings measured on a busy machine are too low and would inflate every "% of peak":
        # use them for this run only, never cache them
        import warnings

        warnings.warn(f"calibration measured at load average {cal['load_avg_1min']:.1f} on "
                      f"{os.cpu_count()} cores: not cached; rerun `dlbench info --recalibrate` when idle",
                      RuntimeWarning, stacklevel=2)
        return cal
    try:
        path.write_text(json.dumps(cal, indent=1))
    except OSError:
        pass
    return cal


def _load_avg() -> float:
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return 0.0
