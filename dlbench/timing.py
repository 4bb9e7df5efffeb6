"""Measurement core: compile time apart from steady state, adaptive repeats, robust statistics.

``measure(fn)`` calls ``fn`` once and records that first call (JIT/compile + first run) as its
own figure; then warms up and repeats ``fn`` until ``target_time`` seconds of samples (at least
``min_samples``) are collected. Very short calls are batched (``inner`` calls per sample) so that
the timer's resolution does not dominate. Statistics: min, median, IQR, mean, coefficient of
variation, sample count — all per call, in seconds.

CUDA: ``measure_cuda(fn)`` times with CUDA events around the call and synchronizes (the
device-resident metric); host-to-host timing of a call that copies in and out is a distinct
metric measured with ``measure`` by the caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class Timing:
    """Per-call statistics in seconds; ``samples`` holds each sample's per-call time."""

    min: float
    median: float
    iqr: float
    mean: float
    cv: float
    n_samples: int
    inner: int
    first_call: float = float("nan")   # first call: compile/JIT + one run
    samples: list[float] = field(default_factory=list)

    @property
    def compile_time(self) -> float:
        """First call minus a steady-state call: the cost of JIT/compilation (>= 0)."""
        if not np.isfinite(self.first_call):
            return float("nan")
        return max(self.first_call - self.median, 0.0)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["compile_time"] = self.compile_time
        return d


def settle_seconds() -> float:
    """Pause before each CPU measurement (``DLBENCH_SETTLE``, default 0.12 s): longer than
    OpenBLAS's worker spin (2^28 cycles, ~0.1 s here), after which its threads sleep; measured
    here, a kernel timed within 0.1 s of a BLAS call alternated between 2.3 and 6.5 ms, and ran
    at 1.7 ms after a pause."""
    import os

    try:
        return max(0.0, float(os.environ.get("DLBENCH_SETTLE", "0.12")))
    except ValueError:
        return 0.12


def stats_from_samples(samples, inner: int = 1, first_call: float = float("nan")) -> Timing:
    s = np.asarray(samples, dtype=float)
    q25, q50, q75 = np.percentile(s, [25, 50, 75])
    mean = float(s.mean())
    cv = float(s.std(ddof=1) / mean) if len(s) > 1 and mean > 0 else 0.0
    return Timing(float(s.min()), float(q50), float(q75 - q25), mean, cv, len(s), inner, first_call,
                  [float(x) for x in s])


def measure(fn: Callable[[], object], *, target_time: float = 0.5, min_samples: int = 5,
            max_samples: int = 1000, warmup: int = 1, min_sample_time: float = 2e-4,
            first_call: bool = True, sync: Callable[[], object] | None = None,
            max_time: float | None = None, settle: float = 0.0) -> Timing:
    """Time ``fn()`` (no arguments): first call, warm-up, then adaptive repeats.

    target_time: seconds of samples to collect after calibration.
    min_sample_time: calls shorter than this are batched into one sample.
    sync: called after each batch before reading the clock (e.g. cuda synchronize).
    max_time: hard cap on the total time spent in this call (default 4 * target_time + 1 s).
    settle: seconds to sleep first, so that thread pools a previous measurement left spinning
    go idle (OpenBLAS workers busy-wait ~0.1 s after each BLAS call: a Cython kernel timed
    right after a NumPy-BLAS baseline measured up to 3x slower; see ``settle_seconds``).
    """
    clock = time.perf_counter
    sync = sync or (lambda: None)
    if settle > 0:
        time.sleep(settle)
    fc = float("nan")
    if first_call:
        t0 = clock()
        fn()
        sync()
        fc = clock() - t0
    for _ in range(warmup):
        fn()
    sync()
    # calibrate: how many calls per sample so that a sample is >= min_sample_time
    t0 = clock()
    fn()
    sync()
    one = max(clock() - t0, 1e-9)
    inner = max(1, int(np.ceil(min_sample_time / one)))
    per_sample = one * inner
    n = int(np.clip(np.ceil(target_time / per_sample), min_samples, max_samples))
    budget = max_time if max_time is not None else 4 * target_time + 1.0
    samples = []
    start = clock()
    for i in range(n):
        t0 = clock()
        for _ in range(inner):
            fn()
        sync()
        samples.append((clock() - t0) / inner)
        if i + 1 >= min_samples and clock() - start > budget:
            break
    return stats_from_samples(samples, inner, fc)


def measure_cuda(fn: Callable[[], object], *, target_time: float = 0.5, min_samples: int = 5,
                 max_samples: int = 1000, warmup: int = 2) -> Timing:
    """Device-resident timing with CUDA events: record, call, record, synchronize.

    Each sample is the elapsed time between two events around one call (seconds). The first
    call (kernel compilation + launch) is recorded separately. Never use under the simulator.
    """
    from numba import cuda

    from dlbench.backends import cuda_simulator_enabled

    if cuda_simulator_enabled():
        raise RuntimeError("CUDA simulator timings are meaningless; the simulator is for correctness only")
    t0 = time.perf_counter()
    fn()
    cuda.synchronize()
    fc = time.perf_counter() - t0
    for _ in range(warmup):
        fn()
    cuda.synchronize()
    start, end = cuda.event(timing=True), cuda.event(timing=True)
    samples = []
    spent = 0.0
    while len(samples) < max_samples and (len(samples) < min_samples or spent < target_time):
        start.record()
        fn()
        end.record()
        end.synchronize()
        dt = cuda.event_elapsed_time(start, end) / 1e3
        samples.append(dt)
        spent += dt + 1e-5
    return stats_from_samples(samples, 1, fc)
