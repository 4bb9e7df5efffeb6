"""GPU calibration: the float32 compute and HBM bandwidth ceilings of the CUDA device.

Compute: independent FMA chains (8 per thread, ``cuda.fma``) on every SM, enough warps to hide
the FMA latency; 2 FLOPs per FMA. Reported beside torch's float32 GEMM (TF32 off) when torch
sees the GPU; ``gpu_peak_gflops`` is the higher of the two, so no measured kernel can exceed its
ceiling. Memory: STREAM-like copy (8 B/element) and triad a = b + s c (12 B/element) on arrays
of 2^26 float32 (256 MiB each, far beyond any L2); ``gpu_bw_gbs`` is the higher. Every kernel is
timed with CUDA events around the launch (best of several).

``calibrate_gpu()`` returns ``{}`` without a real GPU (no driver, no device, or the CUDA simulator,
whose timings mean nothing). Results are cached per device name in ``cache_dir()``; pass
``force=True`` to measure again. The lead's ``dlbench info`` and the runner use this dict.
"""

from __future__ import annotations

import json
import time

import numpy as np

GPU_CAL_VERSION = 1
FMA_ITERS = 4096
BW_ELEMENTS = 1 << 26


def _kernels():
    from numba import cuda, float32

    @cuda.jit(fastmath=True, cache=False)
    def fma_chains(out, iters, b, c):
        """8 independent chains a <- a*b + c per thread: 16 FLOPs per iteration."""
        i = cuda.grid(1)
        a0 = float32(i) * float32(1e-9)
        a1 = a0 + float32(1.0)
        a2 = a0 + float32(2.0)
        a3 = a0 + float32(3.0)
        a4 = a0 + float32(4.0)
        a5 = a0 + float32(5.0)
        a6 = a0 + float32(6.0)
        a7 = a0 + float32(7.0)
        for _ in range(iters):
            a0 = cuda.fma(a0, b, c)
            a1 = cuda.fma(a1, b, c)
            a2 = cuda.fma(a2, b, c)
            a3 = cuda.fma(a3, b, c)
            a4 = cuda.fma(a4, b, c)
            a5 = cuda.fma(a5, b, c)
            a6 = cuda.fma(a6, b, c)
            a7 = cuda.fma(a7, b, c)
        out[i] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7

    @cuda.jit(cache=False)
    def copy(a, b):
        for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
            b[i] = a[i]

    @cuda.jit(cache=False)
    def triad(a, b, c, s):
        for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
            a[i] = b[i] + s * c[i]

    return fma_chains, copy, triad


def _best_seconds(launch, repeats: int = 7) -> float:
    """Best CUDA-event time of ``launch()`` (after one warm-up call that also compiles)."""
    from numba import cuda

    launch()
    cuda.synchronize()
    start, end = cuda.event(timing=True), cuda.event(timing=True)
    best = float("inf")
    for _ in range(repeats):
        start.record()
        launch()
        end.record()
        end.synchronize()
        best = min(best, cuda.event_elapsed_time(start, end) / 1e3)
    return best


def _device():
    """(numba device, name) of a real GPU, or None (no driver, no GPU, or the simulator)."""
    from dlbench.backends import cuda_simulator_enabled

    if cuda_simulator_enabled():
        return None
    try:
        from numba import cuda

        if not cuda.is_available():
            return None
        dev = cuda.get_current_device()
    except Exception:  # noqa: BLE001 - no usable driver
        return None
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    return dev, name


def measure_fma_gflops(sms: int) -> float:
    """float32 FMA throughput (GFLOP/s) of the FMA-chain kernel over all SMs."""
    from numba import cuda

    fma_chains, _, _ = _kernels()
    threads, blocks = 256, sms * 16
    out = cuda.device_array(threads * blocks, np.float32)
    b, c = np.float32(0.999999), np.float32(1e-7)
    t = _best_seconds(lambda: fma_chains[blocks, threads](out, FMA_ITERS, b, c))
    return 16.0 * FMA_ITERS * threads * blocks / t / 1e9


def measure_bandwidth(sms: int, n: int = BW_ELEMENTS) -> dict:
    """Copy and triad bandwidth (GB/s) on n float32 elements per array."""
    from numba import cuda

    _, copy, triad = _kernels()
    a = cuda.to_device(np.ones(n, np.float32))
    b = cuda.device_array(n, np.float32)
    c = cuda.to_device(np.full(n, 2.0, np.float32))
    threads, blocks = 256, sms * 32
    t_copy = _best_seconds(lambda: copy[blocks, threads](a, b))
    t_triad = _best_seconds(lambda: triad[blocks, threads](a, b, c, np.float32(0.5)))
    return {"gpu_copy_gbs": 8.0 * n / t_copy / 1e9, "gpu_triad_gbs": 12.0 * n / t_triad / 1e9}


def torch_sgemm_gflops(n: int = 8192) -> float:
    """torch float32 GEMM on the GPU with TF32 off (cuBLAS SGEMM), or NaN without torch CUDA."""
    try:
        import torch
    except ImportError:
        return float("nan")
    if not torch.cuda.is_available():
        return float("nan")
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        a = torch.randn(n, n, device="cuda")
        b = torch.randn(n, n, device="cuda")
        torch.matmul(a, b)
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        best = float("inf")
        for _ in range(5):
            start.record()
            torch.matmul(a, b)
            end.record()
            end.synchronize()
            best = min(best, start.elapsed_time(end) / 1e3)
        return 2.0 * n ** 3 / best / 1e9
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


def _cache_file():
    from dlbench.calibrate import cache_dir

    return cache_dir() / "gpu_calibration.json"


def calibrate_gpu(force: bool = False, use_torch: bool = True) -> dict:
    """GPU ceilings: {"gpu_name", "gpu_peak_gflops", "gpu_bw_gbs", "gpu_fma_gflops", "gpu_copy_gbs",
    "gpu_triad_gbs", "gpu_torch_sgemm_gflops", "gpu_sms", "gpu_cc", "seconds"}; {} without a real GPU.

    gpu_peak_gflops: float32 GFLOP/s (the FMA chains or torch SGEMM, whichever is higher);
    gpu_bw_gbs: device-memory GB/s (copy or triad, whichever is higher). Cached per device name.
    """
    found = _device()
    if found is None:
        return {}
    dev, name = found
    path = _cache_file()
    if not force:
        try:
            cached = json.loads(path.read_text())
            entry = cached.get(name)
            if entry and entry.get("version") == GPU_CAL_VERSION:
                return {k: v for k, v in entry.items() if k != "version"}
        except (OSError, ValueError):
            pass
    t0 = time.perf_counter()
    sms = int(dev.MULTIPROCESSOR_COUNT)
    fma = measure_fma_gflops(sms)
    bw = measure_bandwidth(sms)
    sgemm = torch_sgemm_gflops() if use_torch else float("nan")
    res = {"gpu_name": name, "gpu_sms": sms, "gpu_cc": ".".join(map(str, dev.compute_capability)),
           "gpu_fma_gflops": fma, "gpu_torch_sgemm_gflops": sgemm,
           "gpu_peak_gflops": max(fma, sgemm) if np.isfinite(sgemm) else fma,
           **bw, "gpu_bw_gbs": max(bw.values()), "seconds": time.perf_counter() - t0}
    try:
        try:
            cached = json.loads(path.read_text())
        except (OSError, ValueError):
            cached = {}
        cached[name] = {**res, "version": GPU_CAL_VERSION}
        path.write_text(json.dumps(cached, indent=1, sort_keys=True))
    except OSError:
        pass
    return res


if __name__ == "__main__":
    print(json.dumps(calibrate_gpu(force=True), indent=1))
