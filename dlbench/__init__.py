"""dlbench: benchmarks for the numerical core of deep learning (Goodfellow, Bengio & Courville,
chapters 8-10). See README.md and ARCHITECTURE.md.

    import dlbench as db
    db.backends(); db.kernels(op="conv2d")
    df = db.run("smoke", quick=True)
"""

from dlbench.backends import backends
from dlbench.errors import UserError
from dlbench.registry import define_op, get_kernel, kernels, register_kernel
from dlbench.runner import run, summary

__version__ = "0.1.0"

__all__ = ["backends", "kernels", "register_kernel", "define_op", "get_kernel", "run", "summary",
           "report", "compare", "UserError", "ops", "optim", "problems", "__version__"]


def report(results, format="html", path=None, **kw):
    """Write a report (html, md or csv) from result folders or a DataFrame; see dlbench.report."""
    from dlbench.report import report as _report

    return _report(results, format=format, path=path, **kw)


def compare(base, new=None, threshold: float = 1.10, **kw):
    """Ratio of medians with a noise-aware verdict per benchmark; see dlbench.compare."""
    from dlbench.compare import compare as _compare

    return _compare(base, new, threshold=threshold, **kw)


def __getattr__(name):
    if name in ("ops", "optim", "problems"):
        import importlib

        return importlib.import_module(f"dlbench.{name}")
    raise AttributeError(f"module 'dlbench' has no attribute {name!r}")
