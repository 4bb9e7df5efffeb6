"""asv benchmark classes generated from the dlbench suite definitions.

One class per suite (named after the suite, so ``asv_benchmarks.smoke.time_call`` is the
``smoke`` suite), parametrized by ``(case, variant)``: the cases are the same ``Case`` objects
that ``dlbench run`` measures (quick sizes by default; ``DLBENCH_ASV_FULL=1`` for the full sizes)
and the variants are ``backend/algorithm`` labels. A (case, variant) pair that does not exist or
cannot run here (backend unavailable, kernel constraint, CUDA simulator) is skipped by raising
``NotImplementedError`` in ``setup``, which asv records as "n/a".

Benchmarks per class:

- ``time_call``: steady-state seconds per call (inputs bound and JIT-compiled in ``setup``, so
  compile time never enters the timing);
- ``track_gflops``: GFLOP/s from the op's FLOP model over a short dlbench measurement;
- ``track_gbs``: GB/s from the op's byte model;
- ``track_compile_time``: seconds of the first call minus a steady-state call (JIT cost);
- ``peakmem_call``: peak resident memory of one call.

Convergence suites (cases with ``kind == "convergence"``) get ``track_iters_to_target`` instead:
``setup`` runs the protocol for one (problem, optimizer) and the method reports the median over
seeds (an iteration count: machine-independent, the right thing to follow across commits; wall
time to target is in ``dlbench run``'s results).

The report ingests asv results back into the dlbench schema (``dlbench.ingest.from_asv``) by
reading the class name as the suite and the parameters as (case, variant).
"""

from __future__ import annotations

import math
import os
import re

from dlbench.suite import Bound as _Bound
from dlbench.suite import Skip as _Skip
from dlbench.suite import list_suites as _list_suites

QUICK = os.environ.get("DLBENCH_ASV_FULL", "") in ("", "0")
TRACK_TARGET_TIME = 0.05  # seconds of samples behind each track_* figure


def class_name(suite: str) -> str:
    """The asv class name of a suite: the suite name made a Python identifier."""
    name = re.sub(r"\W", "_", suite)
    return name if name.isidentifier() else "suite_" + name


class _Prepared:
    """Base of the generated classes: ``suite`` names the dlbench suite; ``setup`` binds inputs."""

    suite = ""
    param_names = ["case", "variant"]
    params: list = [[], []]
    timeout = 300.0
    # a kernel call is milliseconds at quick sizes: a few samples are enough and keep asv fast
    repeat = (1, 5, 10.0)
    min_run_count = 1

    @classmethod
    def _cases(cls):
        from dlbench.suite import get_suite

        return {c.name: c for c in get_suite(cls.suite).cases(QUICK)}

    def _prepare(self, case_name, variant_label):
        from dlbench.runner import _not_runnable

        case = self._cases().get(case_name)
        if case is None:
            raise NotImplementedError(f"no case {case_name!r} in suite {self.suite!r}")
        var = next((v for v in case.variants if v.label == variant_label), None)
        if var is None:
            raise NotImplementedError(f"{case_name} has no variant {variant_label}")
        reason = _not_runnable(case, var)
        if reason:
            raise NotImplementedError(reason)
        try:
            bound = case.bind(var, case.dtype)
        except (_Skip, ValueError) as e:
            raise NotImplementedError(str(e)) from e
        if not isinstance(bound, _Bound):
            bound = _Bound(bound)
        self.case, self.variant, self.bound = case, var, bound
        if bound.timer == "cuda":
            from numba import cuda

            sync = cuda.synchronize
        else:
            sync = bound.sync
        fn = bound.fn
        self.call = fn if sync is None else (lambda: (fn(), sync()))

    def _measure(self, first_call=False):
        from dlbench.timing import measure

        return measure(self.call, target_time=TRACK_TARGET_TIME, first_call=first_call)


class _Throughput(_Prepared):
    """time / GFLOP/s / GB/s / peak memory of one call (compiled and warmed in ``setup``)."""

    def setup(self, case_name, variant_label):
        from dlbench.allocator import keep_freed_memory

        keep_freed_memory()  # the heap policy of `dlbench run` (outputs reuse freed pages)
        self._prepare(case_name, variant_label)
        self.call()  # JIT compile and first touch outside the timed region

    def time_call(self, case_name, variant_label):
        self.call()

    def peakmem_call(self, case_name, variant_label):
        self.call()

    def track_gflops(self, case_name, variant_label):
        flops = self.case.flops()
        if not (math.isfinite(flops) and flops > 0):
            return float("nan")
        return flops / self._measure().median / 1e9

    track_gflops.unit = "GFLOP/s"

    def track_gbs(self, case_name, variant_label):
        nbytes = self.case.bytes()
        if not (math.isfinite(nbytes) and nbytes > 0):
            return float("nan")
        return nbytes / self._measure().median / 1e9

    track_gbs.unit = "GB/s"


class _CompileTime(_Prepared):
    """JIT cost: ``setup`` binds without calling, so the first call is the compiling one."""

    def setup(self, case_name, variant_label):
        self._prepare(case_name, variant_label)

    def track_compile_time(self, case_name, variant_label):
        return self._measure(first_call=True).compile_time

    track_compile_time.unit = "s"


class _Convergence(_Prepared):
    """Convergence suites (cases with ``kind == "convergence"``): ``setup`` runs the protocol of
    one (problem, optimizer) once; the track methods report its medians over seeds."""

    timeout = 900.0

    def setup(self, case_name, variant_label):
        self._prepare(case_name, variant_label)
        self.bound.fn()
        self.medians = self.case.metrics(None) if self.case.metrics is not None else {}

    def _median(self, name):
        v = self.medians.get(name)
        return float(v[0]) if v else float("nan")

    def track_iters_to_target(self, case_name, variant_label):
        return self._median("iters_to_target")

    track_iters_to_target.unit = "iterations"


def _make_classes() -> dict[str, type]:
    classes = {}
    for s in _list_suites():
        try:
            cases = s.cases(QUICK)
        except Exception:  # noqa: BLE001 - a broken suite must not hide the others from asv
            continue
        if not cases:
            continue
        labels = list(dict.fromkeys(v.label for c in cases for v in c.variants))
        attrs = {
            "suite": s.name,
            "params": [[c.name for c in cases], labels],
            "__doc__": f"dlbench suite {s.name!r}: {s.description}",
        }
        name = class_name(s.name)
        if name in globals() or name.startswith("_"):
            name = "suite_" + name.lstrip("_")
        if any(getattr(c, "kind", "") == "convergence" for c in cases):
            classes[name] = type(name, (_Convergence,), dict(attrs))
            continue
        classes[name] = type(name, (_Throughput,), dict(attrs))
        classes[name + "_compile"] = type(name + "_compile", (_CompileTime,), dict(attrs))
    return classes


globals().update(_make_classes())
