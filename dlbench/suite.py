"""Suite definitions: what is measured, defined once for ``dlbench run``, asv and pytest-benchmark.

A *suite* is a named function ``cases(quick: bool) -> list[Case]`` registered with
:func:`define_suite` (the definitions live in ``dlbench.suites.<name>`` modules). A
:class:`Case` is one op at one parameter set, with the variants (backend, algorithm) to
measure and a ``bind`` function that prepares inputs for a variant and returns the zero-argument
callable the timer calls. FLOP/byte figures come from the op's models in the registry.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dlbench.errors import UserError


class Skip(Exception):
    """Raised by ``Case.bind`` when a variant cannot run this case (recorded as skipped)."""


@dataclass(frozen=True)
class Variant:
    backend: str
    algorithm: str = "default"

    @property
    def label(self) -> str:
        return f"{self.backend}/{self.algorithm}"


@dataclass
class Bound:
    """A prepared call: ``fn()`` runs the kernel once on bound inputs.

    timer: "cpu" (perf_counter) or "cuda" (events + synchronize: device-resident metric).
    sync: called before reading a CPU clock (e.g. cuda.synchronize for host-to-host timing).
    check: optional zero-arg callable returning the max relative error against the reference.
    """

    fn: Callable[[], Any]
    timer: str = "cpu"
    sync: Callable[[], Any] | None = None
    check: Callable[[], float] | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class Case:
    """One benchmark: ``op`` at ``params`` (JSON-serialisable shape parameters) in ``dtype``.

    bind(variant, dtype) -> Bound | Callable prepares inputs (fresh, seeded) and returns the call.
    metrics(timing) -> dict of extra metric name -> (value, unit), e.g. Mparam/s.
    """

    suite: str
    name: str
    op: str
    params: dict
    variants: list[Variant]
    bind: Callable[[Variant, str], Any]
    dtype: str = "float32"
    metrics: Callable[[Any], dict] | None = None
    target_time: float | None = None

    @property
    def params_json(self) -> str:
        return json.dumps(self.params, sort_keys=True, default=str)

    def flops(self) -> float:
        from dlbench.registry import OPS

        spec = OPS.get(self.op)
        if spec is None or spec.flops is None:
            return float("nan")
        return float(spec.flops(dtype=self.dtype, **self.params))

    def bytes(self) -> float:
        from dlbench.registry import OPS

        spec = OPS.get(self.op)
        if spec is None or spec.bytes is None:
            return float("nan")
        return float(spec.bytes(dtype=self.dtype, **self.params))


@dataclass
class SuiteDef:
    name: str
    cases: Callable[[bool], list[Case]]
    description: str = ""
    default: bool = False      # part of `dlbench run` with no suite named


SUITES: dict[str, SuiteDef] = {}
_LOADED = False


def define_suite(name: str, description: str = "", default: bool = False):
    """Decorator registering ``fn(quick: bool) -> list[Case]`` as suite ``name``."""

    def deco(fn):
        SUITES[name] = SuiteDef(name, fn, description or (fn.__doc__ or "").strip().split("\n")[0], default)
        return fn

    return deco


def load_suites() -> None:
    """Import every ``dlbench.suites`` module (each defines its suites on import)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    import dlbench.suites as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith(("_", "asv_", "bench_")):
            continue
        importlib.import_module(f"dlbench.suites.{info.name}")


def get_suite(name: str) -> SuiteDef:
    load_suites()
    if name not in SUITES:
        raise UserError(f"unknown suite {name!r}; known suites: {', '.join(sorted(SUITES))}")
    return SUITES[name]


def list_suites() -> list[SuiteDef]:
    load_suites()
    return [SUITES[k] for k in sorted(SUITES)]
