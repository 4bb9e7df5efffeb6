"""Kernel registry: ``(op, algorithm, backend)`` -> kernel with metadata.

Built-in kernels live in ``dlbench.kernels.<backend>`` modules and register themselves with
:func:`register_kernel` when imported; :func:`load_builtin_kernels` imports them all (once).
Users register their own kernels with the same decorator and benchmark them beside the
built-ins::

    import dlbench as db

    @db.register_kernel("sgd_momentum", algorithm="mine", backend="numba")
    def my_momentum(theta, v, g, lr, alpha): ...

FLOP and byte models belong to the *op* (:func:`define_op`), so every algorithm and backend of
an op is measured against the same work; a kernel may override them when its work differs.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dlbench.errors import UserError

ModelFn = Callable[..., float]


@dataclass
class OpSpec:
    """What an op computes and how much work it is.

    ``flops(**params)`` and ``bytes(**params)`` take the benchmark's shape parameters and return
    the floating-point operations and the minimal bytes moved (compulsory traffic) per call.
    """

    name: str
    flops: ModelFn | None = None
    bytes: ModelFn | None = None
    description: str = ""
    equation: str = ""


@dataclass
class Kernel:
    """One registered implementation of an op.

    ``constraints`` is a human-readable statement; ``check(**params)`` (optional) returns None when
    the kernel applies to those parameters, or a string saying which constraint fails.
    """

    op: str
    algorithm: str
    backend: str
    fn: Callable[..., Any]
    dtypes: tuple[str, ...] = ("float32", "float64")
    constraints: str = ""
    check: Callable[..., str | None] | None = None
    flops: ModelFn | None = None
    bytes: ModelFn | None = None
    description: str = ""
    builtin: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.op, self.algorithm, self.backend)

    def flop_model(self) -> ModelFn | None:
        return self.flops or getattr(OPS.get(self.op), "flops", None)

    def byte_model(self) -> ModelFn | None:
        return self.bytes or getattr(OPS.get(self.op), "bytes", None)

    def applies(self, dtype: str | None = None, **params) -> str | None:
        """None if this kernel can run the given dtype/params, else the reason it cannot."""
        if dtype is not None and str(dtype) not in self.dtypes:
            return f"{self.backend}/{self.algorithm} {self.op} supports {', '.join(self.dtypes)}, not {dtype}"
        if self.check is not None:
            return self.check(**params)
        return None

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)


OPS: dict[str, OpSpec] = {}
KERNELS: dict[tuple[str, str, str], Kernel] = {}
GENERATION = 0  # bumped on every registration: callers caching lookups key on it
_LOADED = False


def define_op(name: str, *, flops: ModelFn | None = None, bytes: ModelFn | None = None,
              description: str = "", equation: str = "") -> OpSpec:
    """Declare an op with its FLOP and byte models (called by the front-end modules)."""
    spec = OpSpec(name, flops, bytes, description, equation)
    OPS[name] = spec
    return spec


def register_kernel(op: str, algorithm: str = "default", backend: str = "numpy", *,
                    dtypes: Sequence[str] = ("float32", "float64"), constraints: str = "",
                    check: Callable[..., str | None] | None = None, flops: ModelFn | None = None,
                    bytes: ModelFn | None = None, description: str = "", replace: bool = False,
                    **extra):
    """Decorator registering ``fn`` as the kernel for ``(op, algorithm, backend)``.

    Raises ``ValueError`` if the key is taken and ``replace`` is False. User kernels take the
    same arguments as the op's reference kernel (``db.kernels(op=...)`` lists it).
    """
    from dlbench.backends import BACKENDS

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")

    def deco(fn):
        key = (op, algorithm, backend)
        if key in KERNELS and not replace and KERNELS[key].fn is not fn:
            raise ValueError(f"kernel {key} is already registered (pass replace=True to override)")
        module = getattr(fn, "__module__", "") or ""
        doc = description or (inspect.getdoc(fn) or "").split("\n")[0]
        global GENERATION
        KERNELS[key] = Kernel(op, algorithm, backend, fn, tuple(str(d) for d in dtypes), constraints,
                              check, flops, bytes, doc, module.startswith("dlbench.kernels"), extra)
        GENERATION += 1
        return fn

    return deco


BUILTIN_BACKEND_PACKAGES = {
    "numpy": "dlbench.kernels.reference",
    "numba": "dlbench.kernels.numba_cpu",
    "cython": "dlbench.kernels.cython",
    "numba-cuda": "dlbench.kernels.numba_cuda",
}
LOAD_ERRORS: dict[str, str] = {}


_LOADED_BACKENDS: set[str] = set()


def load_builtin_kernels(backends=None) -> None:
    """Import the built-in kernel modules so that they register themselves (once per backend).

    backends: an iterable of backend names to load (default: all). Loading one backend (what
    ``get_kernel`` does) keeps start-up cheap in worker processes. The front-end modules (which
    define the ops and their models) are always imported. A backend package that fails to
    import is recorded in ``LOAD_ERRORS`` and reported by ``db.backends()``, never raised.
    """
    global _LOADED
    if not _LOADED:
        _LOADED = True
        for mod in ("dlbench.ops", "dlbench.optim", "dlbench.peers"):
            try:
                importlib.import_module(mod)
            except ModuleNotFoundError as e:
                if e.name != mod:
                    raise
    wanted = BUILTIN_BACKEND_PACKAGES if backends is None else [b for b in backends
                                                                if b in BUILTIN_BACKEND_PACKAGES]
    for backend in wanted:
        if backend in _LOADED_BACKENDS:
            continue
        _LOADED_BACKENDS.add(backend)
        pkgname = BUILTIN_BACKEND_PACKAGES[backend]
        try:
            pkg = importlib.import_module(pkgname)
        except Exception as e:  # noqa: BLE001 - reported, not raised
            LOAD_ERRORS[backend] = f"{type(e).__name__}: {e}"
            continue
        for info in pkgutil.iter_modules(pkg.__path__):
            if info.name.startswith("_"):
                continue
            try:
                importlib.import_module(f"{pkgname}.{info.name}")
            except Exception as e:  # noqa: BLE001
                LOAD_ERRORS.setdefault(backend, "")
                LOAD_ERRORS[backend] += f"{info.name}: {type(e).__name__}: {e}; "


def get_kernel(op: str, algorithm: str, backend: str) -> Kernel:
    """The kernel for ``(op, algorithm, backend)``; ``ValueError`` naming what exists otherwise."""
    key = (op, algorithm, backend)
    if key in KERNELS:
        return KERNELS[key]
    load_builtin_kernels([backend])
    if key in KERNELS:
        return KERNELS[key]
    load_builtin_kernels()
    if op not in {k[0] for k in KERNELS}:
        raise UserError(f"unknown op {op!r}; known ops: {', '.join(sorted({k[0] for k in KERNELS}))}")
    have = sorted(f"{a}/{b}" for (o, a, b) in KERNELS if o == op)
    raise UserError(f"no kernel for op {op!r} with algorithm {algorithm!r} on backend {backend!r}; "
                    f"available (algorithm/backend): {', '.join(have)}")


def find_kernels(op: str | None = None, backend: str | None = None,
                 algorithm: str | None = None) -> list[Kernel]:
    """Registered kernels filtered by op, backend and algorithm (None = any)."""
    load_builtin_kernels(None if backend is None else [backend])
    return [k for k in KERNELS.values()
            if (op is None or k.op == op) and (backend is None or k.backend == backend)
            and (algorithm is None or k.algorithm == algorithm)]


def kernels(op: str | None = None, backend: str | None = None) -> pd.DataFrame:
    """All registered kernels as a DataFrame (op, algorithm, backend, dtypes, constraints, ...)."""
    from dlbench.backends import backend_status

    rows = []
    for k in sorted(find_kernels(op, backend), key=lambda k: k.key):
        st = backend_status(k.backend)
        rows.append({
            "op": k.op, "algorithm": k.algorithm, "backend": k.backend,
            "dtypes": ",".join(k.dtypes), "constraints": k.constraints,
            "flop_model": k.flop_model() is not None, "byte_model": k.byte_model() is not None,
            "available": st.available, "builtin": k.builtin, "description": k.description,
        })
    cols = ["op", "algorithm", "backend", "dtypes", "constraints", "flop_model", "byte_model",
            "available", "builtin", "description"]
    return pd.DataFrame(rows, columns=cols)
