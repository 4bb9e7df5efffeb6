"""Convergence problems of chapter 8: ``problems.get(name, **params)``, ``problems.list()``.

    from dlbench import problems
    p = problems.get("quadratic", kappa=1e4)
    x = p.x0(seed=0); p.f(x), p.grad(x), p.hessp(x, v), p.f_star

Every problem is a :class:`~dlbench.problems.base.Problem` over one flat float64 vector; see
``base.py`` for the interface and ``problems.describe()`` for the table of what exists.
"""

from __future__ import annotations

import builtins
import importlib

from dlbench.errors import UserError
from dlbench.problems.base import Problem, check_gradient, check_hessp

_REGISTRY: dict[str, type[Problem]] = {}
_MODULES = (
    "analytic",
    "deep_linear",
    "data",
    "rnn",
    "sparse_coding",
    "continuation",
    "pretraining",
    "schaul",
)
_LOADED = False


def register(name: str):
    """Class decorator: make a Problem subclass available as ``problems.get(name, ...)``."""

    def deco(cls):
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for mod in _MODULES:
        try:
            importlib.import_module(f"dlbench.problems.{mod}")
        except ModuleNotFoundError as e:  # a module not written yet, never a missing dependency
            if e.name != f"dlbench.problems.{mod}":
                raise


def get(name: str, **params) -> Problem:
    """An instance of problem ``name`` with ``params`` (e.g. ``get("quadratic", kappa=100)``)."""
    _load()
    if name not in _REGISTRY:
        raise UserError(f"unknown problem {name!r}; known problems: {', '.join(sorted(_REGISTRY))}")
    try:
        return _REGISTRY[name](**params)
    except TypeError as e:
        raise UserError(f"problem {name!r}: {e}") from e


def names() -> builtins.list[str]:
    """The registered problem names, sorted."""
    _load()
    return sorted(_REGISTRY)


def describe():
    """A DataFrame with one row per problem at its default parameters (name, section, n, ...)."""
    import pandas as pd

    rows = []
    for name in names():
        try:
            rows.append(get(name).describe())
        except Exception as e:  # noqa: BLE001 - e.g. scikit-learn missing for the data problems
            rows.append({"problem": name, "doc": f"unavailable: {e}"})
    return pd.DataFrame(rows)


list = names  # noqa: A001 - ``problems.list()`` is the public name

__all__ = ["Problem", "get", "list", "names", "describe", "register", "check_gradient", "check_hessp"]
