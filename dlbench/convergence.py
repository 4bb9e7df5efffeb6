"""Convergence-speed runner: how fast an optimizer reaches a target on the problems of chapter 8.

One *cell* runs one optimizer at one learning rate from one seed on one problem and measures

- both clocks to the target: iterations (and gradient evaluations) and wall time, the
  evaluation of J(θ) excluded from the clock (only gradient + update are timed);
- the final excess error J(θ) − J* (sec. 8.1.3) where the run stops (target reached, budget,
  or divergence);
- the curve (iteration, seconds, loss) sampled at log-spaced iterations *during* that run;
- divergence — a non-finite loss or a blow-up past ``problem.blowup`` × the initial excess —
  as a recorded outcome, never an exception.

The *protocol* (DeepOBS, Schneider et al. 2019) for one (problem, optimizer): run every learning
rate of a log grid on tuning seeds (cells in parallel, wall time not used), pick the best rate
(most seeds reaching the target, then fewest iterations, then lowest final excess), re-run it on
≥ 5 fresh seeds *one at a time* (those cells measure wall time), and report the median and a
bootstrap 95 % CI (scipy.stats.bootstrap, percentile method, fixed seed) of every metric.
From the grid come learning-rate sensitivity tables and tuning-budget curves (best result vs
number of random trials, exact order statistics); across problems, Dolan–Moré performance
profiles ρ(τ) against a *fixed* reference optimizer, so scores do not move as entries are added.

Executors: ``"process"`` (local processes, default), ``"serial"``, ``"dask"`` (``scheduler`` =
a Dask distributed address, a ``Client`` or a ``LocalCluster``). Timed cells always run alone.

``run_case(case, variant, threads, ctx, out_dir)`` is the hook ``dlbench run`` calls for suite
cases with ``kind == "convergence"``: it returns result rows (``dlbench.results`` schema plus
``ci_low``/``ci_high``) and writes ``curves.parquet``, ``runs.parquet``, ``sensitivity.parquet``,
``tuning_budget.parquet``, ``convergence.parquet`` and ``profiles.parquet`` into the run folder.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from dlbench.errors import UserError
from dlbench.suite import Bound, Case

# ----------------------------------------------------------------------------- optimizers
# name -> (dlbench.optim class, fixed hyper-parameters besides lr). Book defaults (sec. 8.3-8.5).
FIRST_ORDER = {
    "sgd": ("SGD", {}),  # Alg. 8.1, constant rate
    "momentum": ("Momentum", {"alpha": 0.9}),  # Alg. 8.2
    "nesterov": ("Nesterov", {"alpha": 0.9}),  # Alg. 8.3
    "adagrad": ("AdaGrad", {}),  # Alg. 8.4
    "rmsprop": ("RMSProp", {}),  # Alg. 8.5
    "rmsprop_nesterov": ("RMSPropNesterov", {}),  # Alg. 8.6
    "adam": ("Adam", {}),  # Alg. 8.7
    "adadelta": ("AdaDelta", {}),  # Zeiler 2012 (sec. 8.5)
    "delta_bar_delta": ("DeltaBarDelta", {}),  # Jacobs 1988 (sec. 8.5), full batch
}
# second-order and line-search methods through minimize (sec. 8.6): no learning rate
MINIMIZE = {"cg": "CG", "bfgs": "BFGS", "lbfgs": "L-BFGS-B", "newton": "Newton-CG", "bcd": None}
CLIP_SUFFIX = "+clip"
DEFAULT_OPTIMIZERS = (
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "rmsprop",
    "rmsprop_nesterov",
    "adam",
    "adadelta",
    "delta_bar_delta",
)


class Unavailable(Exception):
    """An optimizer (or method) this checkout or this problem cannot run; the reason is recorded."""


def parse_optimizer(name: str) -> tuple[str, bool]:
    """'sgd+clip' -> ('sgd', True)."""
    clip = name.endswith(CLIP_SUFFIX)
    base = name[: -len(CLIP_SUFFIX)] if clip else name
    if base not in FIRST_ORDER and base not in MINIMIZE:
        raise UserError(
            f"unknown optimizer {name!r}; known: {', '.join(list(FIRST_ORDER) + list(MINIMIZE))}"
            f" (append {CLIP_SUFFIX!r} for gradient clipping)"
        )
    if clip and base in MINIMIZE:
        raise UserError(f"{name!r}: clipping applies to first-order optimizers only")
    return base, clip


def uses_lr(name: str) -> bool:
    return parse_optimizer(name)[0] in FIRST_ORDER


# the book's form of the look-ahead methods (gradient at θ + αv, Alg. 8.3 and 8.6)
BOOK_FORM = {"nesterov", "rmsprop_nesterov"}


def make_optimizer(name: str, lr: float, backend: str = "numpy", clip_norm: float | None = None):
    """An instance of a first-order optimizer of ``dlbench.optim``; ``Unavailable`` if missing.

    ``name`` may end in "+clip": the optimizer then clips by global norm at ``clip_norm`` (fused
    into its update, sec. 8.2.4). Nesterov and RMSProp+Nesterov use the book's form (gradient at
    the interim point, Alg. 8.3 / 8.6). Returns (optimizer, note, clip_here): ``note`` says when a
    stand-in is used; ``clip_here`` asks the caller to clip (an optimizer without ``clip_norm``).
    """
    from dlbench import optim

    base, clip = parse_optimizer(name)
    cls_name, kw = FIRST_ORDER[base]
    cls = getattr(optim, cls_name, None)
    note = ""
    if cls is None and base == "sgd" and hasattr(optim, "Momentum"):
        cls, kw, note = (
            optim.Momentum,
            {"alpha": 0.0},
            "optim.SGD missing: Momentum(alpha=0), the same update",
        )
    if cls is None:
        raise Unavailable(f"dlbench.optim.{cls_name} is not implemented yet (issue 9)")
    kw = dict(kw)
    if base in BOOK_FORM:
        kw["form"] = "book"
    clip_here = False
    if clip:
        kw["clip_norm"] = clip_norm
    try:
        try:
            return cls(lr=lr, backend=backend, **kw), note, False
        except TypeError:
            if not clip:
                raise
            kw.pop("clip_norm")  # an optimizer without fused clipping: clip in the loop
            clip_here = True
            return cls(lr=lr, backend=backend, **kw), note, clip_here
    except (KeyError, LookupError) as e:  # no kernel for this backend
        raise Unavailable(f"optim.{cls_name} on backend {backend!r}: {e}") from e
    except TypeError as e:
        raise Unavailable(f"optim.{cls_name} does not take {sorted(kw)}: {e}") from e


def unavailable_reason(name: str, backend: str, prob=None) -> str:
    """Why ``name`` cannot run on ``backend`` (for problem ``prob``) here, or "" when it can."""
    base, _ = parse_optimizer(name)
    if base == "delta_bar_delta" and prob is not None and prob.stochastic:
        return "delta-bar-delta is a full-batch method (Jacobs 1988, sec. 8.5); this problem is stochastic"
    if base in FIRST_ORDER:
        try:
            make_optimizer(name, 0.1, backend, clip_norm=1.0)
        except Unavailable as e:
            return str(e)
        return ""
    if backend == "scipy" and MINIMIZE[base] is None:
        return f"scipy.optimize has no {base!r} method"
    if backend != "scipy":
        from dlbench import optim

        if getattr(optim, "minimize", None) is None:
            return "dlbench.optim.minimize is not implemented yet (issue 9)"
    if base == "newton" and prob is not None and not prob.has_hessp:
        return f"{prob.name} provides no Hessian or Hessian-vector product"
    if base == "bcd" and prob is not None and not prob.blocks:
        return f"{prob.name} declares no blocks (sec. 8.7.2)"
    return ""


def clip_by_norm(g: np.ndarray, v: float) -> np.ndarray:
    """Gradient clipping by norm (sec. 8.2.4, 10.11.1): g ← g v / ‖g‖ when ‖g‖ > v (in place)."""
    norm = float(np.sqrt(g @ g))
    if norm > v:
        g *= v / norm
    return g


# ----------------------------------------------------------------------------- cells
@dataclass(frozen=True)
class Cell:
    """One run: ``optimizer`` at ``lr`` from ``seed`` on problem ``problem(**params)``.

    params_json: the problem parameters as sorted JSON (hashable, picklable).
    timed: the wall clock is meaningful (the cell ran alone); untimed cells report NaN seconds.
    rel_tol / target: target as relative excess (default: the problem's), or an absolute loss.
    """

    problem: str
    params_json: str
    optimizer: str
    lr: float
    seed: int
    backend: str = "numpy"
    max_iters: int | None = None
    rel_tol: float | None = None
    target: float | None = None
    timed: bool = False
    stop_at_target: bool = True
    curve_points: int = 100
    eval_every: int | None = None
    phase: str = "final"


@lru_cache(maxsize=64)
def _problem(name: str, params_json: str):
    from dlbench import problems

    return problems.get(name, **json.loads(params_json))


def problem_of(cell: Cell):
    return _problem(cell.problem, cell.params_json)


def params_json(params: dict | None) -> str:
    return json.dumps(params or {}, sort_keys=True, default=float)


def _curve_keep(max_iters: int, points: int) -> set[int]:
    ks = np.unique(np.round(np.logspace(0, np.log10(max(max_iters, 1)), max(points, 2))).astype(int))
    return set(ks.tolist()) | {0}


def run_cell(cell: Cell) -> dict:
    """Run one cell; returns a dict of outcomes plus the sampled curve (lists)."""
    prob = problem_of(cell)
    base, _ = parse_optimizer(cell.optimizer)
    max_iters = int(cell.max_iters or prob.max_iters)
    eval_every = int(cell.eval_every or prob.eval_every)
    out = {
        **asdict(cell),
        "iters_to_target": math.inf,
        "grads_to_target": math.inf,
        "seconds_to_target": math.inf,
        "final_loss": math.nan,
        "final_excess": math.nan,
        "tail_excess": math.nan,
        "diverged": False,
        "reached": False,
        "iters": 0,
        "seconds": 0.0,
        "status": "ok",
        "message": "",
        "f0": math.nan,
        "target_loss": math.nan,
        "curve_iter": [],
        "curve_seconds": [],
        "curve_loss": [],
    }
    x = np.array(prob.x0(cell.seed), dtype=np.float64)
    f0 = prob.f(x)
    target = cell.target if cell.target is not None else prob.target(f0, cell.rel_tol)
    out["f0"], out["target_loss"] = f0, target
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if base in MINIMIZE:
                _run_minimize(prob, cell, base, x, f0, target, max_iters, out)
            else:
                _run_first_order(prob, cell, x, f0, target, max_iters, eval_every, out)
    except Unavailable as e:
        out.update(status="skipped", message=str(e))
    if not cell.timed:
        out["seconds_to_target"] = math.nan if out["reached"] else math.inf
    return out


def _diverged(prob, f: float, f0: float) -> bool:
    if not math.isfinite(f):
        return True
    ref = prob.ref if math.isfinite(prob.ref) else min(f0, 0.0)
    return (f - ref) > prob.blowup * max(f0 - ref, 1e-12) and f > f0


def _run_first_order(prob, cell, x, f0, target, max_iters, eval_every, out):
    opt, note, clip_here = make_optimizer(cell.optimizer, cell.lr, cell.backend, clip_norm=prob.clip_norm)
    out["message"] = note
    book_form = getattr(opt, "form", "") == "book"
    state = opt.init(x)
    rng = np.random.default_rng([cell.seed, 7919])  # minibatch / gradient noise stream
    keep = _curve_keep(max_iters, cell.curve_points)
    ci, cs, cl = out["curve_iter"], out["curve_seconds"], out["curve_loss"]
    ci.append(0), cs.append(0.0), cl.append(f0)
    clock = time.perf_counter
    spent = 0.0
    f = f0
    tail: list = []  # evaluations over the last 10 % of the budget
    tail_from = int(0.9 * max_iters) if not cell.stop_at_target else max_iters
    if f0 <= target:
        out.update(reached=True, iters_to_target=0, grads_to_target=0, seconds_to_target=0.0)
    k = 0
    while k < max_iters and not (out["reached"] and cell.stop_at_target):
        t0 = clock()
        if book_form:  # the optimizer evaluates the gradient at its interim point θ + αv
            opt.step(x, lambda pts, k=k: prob.train_grad(pts, rng, k), state)
        else:
            g = prob.train_grad(x, rng, k)
            if clip_here:
                g = clip_by_norm(g, prob.clip_norm)
            opt.step(x, g, state)
        spent += clock() - t0
        k += 1
        if k % eval_every == 0 or k in keep or k == max_iters or k > tail_from:
            f = prob.f_at(x, k)
            if k > tail_from:
                tail.append(f)
            if k in keep or _diverged(prob, f, f0) or (f <= target and not out["reached"]) or k == max_iters:
                ci.append(k), cs.append(spent), cl.append(f)
            if _diverged(prob, f, f0):
                out["diverged"] = True
                break
            if f <= target and not out["reached"]:
                out.update(reached=True, iters_to_target=k, grads_to_target=k, seconds_to_target=spent)
    if ci[-1] != k:
        f = prob.f_at(x, k)
        ci.append(k), cs.append(spent), cl.append(f)
    exc = prob.excess(f) if not out["diverged"] else math.inf
    tail_exc = float(np.mean(tail)) - prob.ref if tail and not out["diverged"] else exc
    out.update(iters=k, seconds=spent, final_loss=f, final_excess=exc, tail_excess=tail_exc)


class _StopAtTarget(Exception):
    pass


def _run_minimize(prob, cell, base, x, f0, target, max_iters, out):
    """Line-search / second-order methods (sec. 8.6) with a per-iteration callback.

    backend "numpy" uses ``dlbench.optim.minimize``; backend "scipy" uses
    ``scipy.optimize.minimize`` (the reference peer). Iterations are the method's outer
    iterations; ``grads_to_target`` counts gradient (and Hessian-product) evaluations.
    """
    if cell.backend == "scipy":
        from scipy.optimize import minimize

        method = MINIMIZE[base]
    else:
        from dlbench import optim

        minimize = getattr(optim, "minimize", None)
        if minimize is None:
            raise Unavailable("dlbench.optim.minimize is not implemented yet (issue 9)")
        method = base
    if cell.backend == "scipy" and method is None:
        raise Unavailable(f"scipy.optimize has no {base!r} method")
    if base == "newton" and not prob.has_hessp:
        raise Unavailable(f"{prob.name} provides no Hessian or Hessian-vector product")
    counts = {"grad": 0}
    clock = time.perf_counter
    excluded = [0.0]
    keep = _curve_keep(max_iters, cell.curve_points)
    ci, cs, cl = out["curve_iter"], out["curve_seconds"], out["curve_loss"]
    ci.append(0), cs.append(0.0), cl.append(f0)
    it = [0]
    t_start = [0.0]

    def jac(z):
        counts["grad"] += 1
        return prob.grad(z)

    def hessp(z, v):
        counts["grad"] += 1
        return prob.hessp(z, v)

    def callback(*args, **kw):
        t_in = clock()
        xk = kw.get("intermediate_result", args[0] if args else None)
        xk = getattr(xk, "x", xk)
        it[0] += 1
        f = prob.f(np.asarray(xk, dtype=np.float64))
        now = t_in - t_start[0] - excluded[0]
        k = it[0]
        if k in keep or f <= target or not math.isfinite(f):
            ci.append(k), cs.append(now), cl.append(f)
        if f <= target and not out["reached"]:
            out.update(reached=True, iters_to_target=k, grads_to_target=counts["grad"], seconds_to_target=now)
        excluded[0] += clock() - t_in
        if (out["reached"] and cell.stop_at_target) or _diverged(prob, f, f0):
            raise _StopAtTarget

    kw = {"jac": jac, "callback": callback}
    if base == "newton":
        kw["hessp"] = hessp
    options = {"maxiter": max_iters}  # run to the target or the budget, not to a method's own tolerance
    if cell.backend == "scipy":
        options.update({"xtol": 1e-300} if base == "newton" else {"gtol": 0.0})
        if base == "lbfgs":
            options.update(ftol=0.0, maxfun=10 * max_iters)
    else:
        options["gtol"] = 0.0
        if base == "bcd":
            options["blocks"] = prob.blocks
            if hasattr(prob, "block_minimize"):
                options["block_minimize"] = prob.block_minimize
    t_start[0] = clock()
    xk = x
    try:
        res = minimize(prob.f, x, method=method, options=options, **kw)
        xk = np.asarray(res.x, dtype=np.float64)
    except _StopAtTarget:
        pass
    except TypeError as e:
        raise Unavailable(f"optim.minimize(method={method!r}) does not accept this call: {e}") from e
    spent = clock() - t_start[0] - excluded[0]
    f = cl[-1] if (out["reached"] or it[0]) else prob.f(xk)
    if not math.isfinite(f) or _diverged(prob, f, f0):
        out["diverged"] = True
    exc = prob.excess(f) if not out["diverged"] else math.inf
    out.update(iters=it[0], seconds=spent, final_loss=f, final_excess=exc, tail_excess=exc)


# ----------------------------------------------------------------------------- executors
_POOL = None
_CLIENTS: dict = {}


def _worker_init():
    try:
        from threadpoolctl import threadpool_limits

        globals()["_LIMIT"] = threadpool_limits(1)  # one BLAS thread per worker process
    except ImportError:  # pragma: no cover
        pass


def _process_pool(workers: int):
    global _POOL
    if _POOL is None or _POOL._max_workers != workers:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        if _POOL is not None:
            _POOL.shutdown(cancel_futures=True)
        _POOL = ProcessPoolExecutor(
            max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_worker_init
        )
    return _POOL


@atexit.register
def _shutdown_pool():
    global _POOL
    if _POOL is not None:
        _POOL.shutdown(cancel_futures=True)
        _POOL = None


def _dask_client(scheduler):
    try:
        from dask.distributed import Client
    except ImportError as e:
        raise UserError("executor 'dask' needs dask[distributed] (pip install 'dask[distributed]')") from e
    if isinstance(scheduler, Client):
        return scheduler
    if scheduler is None:
        raise UserError("executor 'dask' needs a scheduler address (--scheduler tcp://HOST:8786)")
    addr = getattr(scheduler, "scheduler_address", scheduler)  # a LocalCluster, or an address
    client = _CLIENTS.get(addr)
    if client is None or client.status not in ("running", "connecting"):
        try:
            client = Client(addr, set_as_default=False, timeout="10s")
        except OSError as e:
            raise UserError(f"cannot reach the Dask scheduler at {addr}: {e}") from e
        _CLIENTS[addr] = client
    return client


def close_dask_clients() -> None:
    """Close the Dask clients this process opened for ``executor="dask"`` (by address)."""
    while _CLIENTS:
        _, client = _CLIENTS.popitem()
        try:
            client.close()
        except Exception:  # noqa: BLE001 - closing a client of a vanished scheduler
            pass


def map_cells(
    cells: list[Cell], executor: str = "process", scheduler=None, max_workers: int | None = None
) -> list[dict]:
    """Run cells; untimed ones in parallel, timed ones one at a time with nothing else running.

    executor: "process" (a local process pool, one BLAS thread per worker), "serial", or "dask"
    (``scheduler``: address, Client or LocalCluster). Results come back in input order.
    """
    if executor not in ("process", "serial", "dask"):
        raise UserError(f"unknown executor {executor!r}; use process, serial or dask")
    results: list = [None] * len(cells)
    free = [i for i, c in enumerate(cells) if not c.timed]
    timed = [i for i, c in enumerate(cells) if c.timed]
    workers = max_workers or _default_workers()
    if free:
        todo = [cells[i] for i in free]
        if executor == "serial" or workers == 1 or len(todo) == 1:
            outs = [run_cell(c) for c in todo]
        elif executor == "process":
            outs = _map_processes(todo, workers)
        else:
            client = _dask_client(scheduler)
            outs = client.gather(client.map(run_cell, todo, pure=False))
        for i, o in zip(free, outs):
            results[i] = o
    if timed:
        client = _dask_client(scheduler) if executor == "dask" else None
        for i in timed:  # one at a time: the parallel phase is over, nothing else of ours runs
            results[i] = (
                client.submit(run_cell, cells[i], pure=False).result() if client else run_cell(cells[i])
            )
    return results


def _map_processes(todo: list[Cell], workers: int) -> list[dict]:
    """``run_cell`` over a local process pool; a broken pool (a worker killed, e.g. by the OOM
    killer, or a main script without an ``if __name__ == "__main__"`` guard under spawn) is
    replaced once, then the cells run in this process."""
    global _POOL
    from concurrent.futures.process import BrokenProcessPool

    chunk = max(1, len(todo) // (4 * workers))
    for _ in range(2):
        try:
            return list(_process_pool(workers).map(run_cell, todo, chunksize=chunk))
        except BrokenProcessPool:
            _shutdown_pool()
    warnings.warn("the local process pool keeps breaking; running these cells in this process", stacklevel=2)
    return [run_cell(c) for c in todo]


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover
        return max(1, os.cpu_count() or 1)


# ----------------------------------------------------------------------------- statistics
def median_ci(values, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> tuple:
    """(median, ci_low, ci_high) of ``values`` with a bootstrap percentile CI (scipy.stats).

    inf (target not reached) is allowed: resampling runs on ranks-preserving finite stand-ins
    and bounds that land on a stand-in come back as inf. NaN entries are dropped.
    """
    from scipy.stats import bootstrap

    v = np.asarray([x for x in values if not (isinstance(x, float) and math.isnan(x))], dtype=float)
    if v.size == 0:
        return math.nan, math.nan, math.nan
    med = float(np.median(v))
    if v.size == 1 or np.all(v == v[0]):
        return med, med, med
    finite = v[np.isfinite(v)]
    cap = (finite.max() if finite.size else 1.0) * 2 + 1.0
    w = np.where(np.isposinf(v), cap, v)
    w = np.where(np.isneginf(w), -cap, w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bootstrap(
            (w,),
            np.median,
            confidence_level=confidence,
            n_resamples=n_resamples,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    fix = lambda b: math.inf if b >= cap else (-math.inf if b <= -cap else b)
    return med, fix(lo), fix(hi)


# ----------------------------------------------------------------------------- protocol
@dataclass(frozen=True)
class Protocol:
    """How one (problem, optimizer) is measured.

    seeds: fresh seeds for the final, timed runs (≥ 5). tune_seeds: seeds for the grid search.
    lr_grid: learning rates to try (default: the problem's log grid). max_iters, rel_tol: budget
    and target (default: the problem's). stop_at_target: stop a run once at the target.
    """

    seeds: tuple = (0, 1, 2, 3, 4)
    tune_seeds: tuple = (1000, 1001)
    lr_grid: tuple | None = None
    max_iters: int | None = None
    rel_tol: float | None = None
    stop_at_target: bool = True
    curve_points: int = 100
    eval_every: int | None = None
    backend: str = "numpy"
    timed: bool = True  # the final runs measure wall time (one at a time)
    grid_stride: int = 1  # use every k-th point of the problem's grid (quick runs)
    max_iters_cap: int | None = None  # cap on the problem's default budget (quick runs)

    def grid_for(self, prob, optimizer: str) -> tuple:
        if not uses_lr(optimizer):
            return (math.nan,)
        grid = tuple(self.lr_grid or prob.lr_grid)
        return grid[:: max(1, self.grid_stride)]

    def budget_for(self, prob) -> int:
        n = int(self.max_iters or prob.max_iters)
        return min(n, int(self.max_iters_cap)) if self.max_iters_cap else n

    def describe(self) -> dict:
        return {
            "seeds": len(self.seeds),
            "tune_seeds": len(self.tune_seeds),
            "rel_tol": self.rel_tol,
            "max_iters": self.max_iters,
            "max_iters_cap": self.max_iters_cap,
            "grid_stride": self.grid_stride,
        }


def _cell(problem, pj, optimizer, lr, seed, proto: Protocol, timed, phase, backend=None) -> Cell:
    budget = proto.budget_for(_problem(problem, pj))
    return Cell(
        problem,
        pj,
        optimizer,
        float(lr),
        int(seed),
        backend or proto.backend,
        budget,
        proto.rel_tol,
        None,
        timed,
        proto.stop_at_target,
        proto.curve_points,
        proto.eval_every,
        phase,
    )


def _tune_key(runs: list[dict]) -> tuple:
    """Sort key of one learning rate over its tuning seeds (smaller is better)."""
    reached = sum(r["reached"] for r in runs)
    iters = float(np.median([r["iters_to_target"] for r in runs]))
    exc = [r["tail_excess"] for r in runs]
    exc = float(np.median([e if math.isfinite(e) else 1e300 for e in exc]))
    return (-reached, iters, exc)


@dataclass
class SweepResult:
    """Outcome of a sweep: per-seed runs, summary table, curves, sensitivity, budget, profiles."""

    runs: pd.DataFrame
    table: pd.DataFrame
    curves: pd.DataFrame
    sensitivity: pd.DataFrame
    budget: pd.DataFrame = field(default_factory=pd.DataFrame)
    profiles: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: dict = field(default_factory=dict)


SUMMARY_METRICS = {  # metric -> unit
    "iters_to_target": "iter",
    "grads_to_target": "grad",
    "seconds_to_target": "s",
    "final_excess": "loss",
    "tail_excess": "loss",
    "final_loss": "loss",
    "seconds_per_iter": "s",
}


def sweep(
    problems_: list,
    optimizers: list[str],
    protocol: Protocol | None = None,
    executor: str = "process",
    scheduler=None,
    max_workers: int | None = None,
    reference: str | None = "sgd",
) -> SweepResult:
    """The DeepOBS protocol for every (problem, optimizer).

    problems_: names or (name, params) pairs. Phase 1 runs every grid point on the tuning
    seeds in parallel (untimed); phase 2 re-runs each best rate on the fresh seeds, timed, one
    cell at a time. ``reference`` names the fixed optimizer of the performance profiles.
    """
    proto = protocol or Protocol()
    specs = [(p, {}) if isinstance(p, str) else (p[0], dict(p[1])) for p in problems_]
    for o in optimizers:
        parse_optimizer(o)
    notes: dict = {}
    for name, params in specs:  # an optimizer this checkout lacks is skipped up front, with the reason
        pj = params_json(params)
        try:
            prob = _problem(name, pj)
        except ImportError as e:  # e.g. scikit-learn missing for the data problems
            for o in optimizers:
                notes[(name, pj, o)] = f"problem {name} unavailable: {e}"
            continue
        for o in optimizers:
            why = unavailable_reason(o, proto.backend, prob)
            if why:
                notes[(name, pj, o)] = why
    # phase 1: grid on tuning seeds
    tune: list[Cell] = []
    for name, params in specs:
        pj = params_json(params)
        for o in optimizers:
            if (name, pj, o) in notes:
                continue
            grid = proto.grid_for(_problem(name, pj), o)
            if len(grid) == 1:
                continue
            tune += [_cell(name, pj, o, lr, s, proto, False, "tune") for lr in grid for s in proto.tune_seeds]
    tune_out = map_cells(tune, executor, scheduler, max_workers)
    best: dict = {}
    by_key: dict = {}
    for r in tune_out:
        by_key.setdefault((r["problem"], r["params_json"], r["optimizer"]), {}).setdefault(
            r["lr"], []
        ).append(r)
    for key, per_lr in by_key.items():
        if all(r["status"] == "skipped" for rs in per_lr.values() for r in rs):
            best[key] = math.nan
            notes[key] = next(iter(per_lr.values()))[0]["message"]
            continue
        ranked = sorted(per_lr, key=lambda lr: (_tune_key(per_lr[lr]), lr))
        best[key] = ranked[0]
    # phase 2: best rate on fresh seeds, timed
    final: list[Cell] = []
    for name, params in specs:
        pj = params_json(params)
        for o in optimizers:
            key = (name, pj, o)
            if key in notes:
                continue
            lr = best.get(key, math.nan)
            final += [_cell(name, pj, o, lr, s, proto, proto.timed, "final") for s in proto.seeds]
    final_out = map_cells(final, executor, scheduler, max_workers)
    runs = _runs_frame(final_out)
    sens = _runs_frame(tune_out)
    for (name, pj, o), lr in best.items():  # DeepOBS: a best rate on the grid's edge is suspect
        grid = proto.grid_for(_problem(name, pj), o)
        if len(grid) > 1 and lr in (min(grid), max(grid)) and not runs.empty:
            m = (runs["problem"] == name) & (runs["params_json"] == pj) & (runs["optimizer"] == o)
            edge = "lowest" if lr == min(grid) else "highest"
            runs.loc[m, "message"] = runs.loc[m, "message"].map(
                lambda s, e=edge: (s + "; " if s else "") + f"best lr is the {e} of the grid"
            )
    for (name, pj, o), msg in notes.items():
        runs = pd.concat(
            [
                runs,
                pd.DataFrame(
                    [
                        {
                            "problem": name,
                            "params_json": pj,
                            "optimizer": o,
                            "backend": proto.backend,
                            "status": "skipped",
                            "message": msg,
                        }
                    ]
                ),
            ],
            ignore_index=True,
        )
    table = summarize(runs)
    curves = curves_frame(final_out)
    budget = tuning_budget(sens) if not sens.empty else pd.DataFrame()
    prof = performance_profile(table, reference=reference) if reference else pd.DataFrame()
    return SweepResult(runs, table, curves, sens, budget, prof, {"best_lr": best, "skipped": notes})


_RUN_COLS = [
    "problem",
    "params_json",
    "optimizer",
    "backend",
    "lr",
    "seed",
    "phase",
    "timed",
    "status",
    "message",
    "reached",
    "diverged",
    "iters_to_target",
    "grads_to_target",
    "seconds_to_target",
    "final_loss",
    "final_excess",
    "tail_excess",
    "iters",
    "seconds",
    "f0",
    "target_loss",
]


def _runs_frame(outs: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame([{k: o[k] for k in _RUN_COLS} for o in outs], columns=_RUN_COLS)
    if not df.empty:
        df["seconds_per_iter"] = df["seconds"] / df["iters"].where(df["iters"] > 0)
    return df


def curves_frame(outs: list[dict]) -> pd.DataFrame:
    """The sampled curves: problem, params, optimizer, backend, lr, seed, iteration, seconds, loss, excess."""
    rows = []
    for o in outs:
        if o["status"] != "ok":
            continue
        ref = problem_of(Cell(o["problem"], o["params_json"], o["optimizer"], o["lr"], o["seed"])).ref
        for k, s, f in zip(o["curve_iter"], o["curve_seconds"], o["curve_loss"]):
            rows.append(
                (
                    o["problem"],
                    o["params_json"],
                    o["optimizer"],
                    o["backend"],
                    o["lr"],
                    o["seed"],
                    int(k),
                    float(s) if o["timed"] else math.nan,
                    float(f),
                    float(f) - ref,
                )
            )
    return pd.DataFrame(
        rows,
        columns=[
            "problem",
            "params",
            "optimizer",
            "backend",
            "lr",
            "seed",
            "iteration",
            "seconds",
            "loss",
            "excess",
        ],
    )


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (problem, params, optimizer, metric): median, bootstrap 95 % CI, min, n."""
    rows = []
    if runs.empty:
        return pd.DataFrame()
    for (prob, pj, opt), g in runs.groupby(["problem", "params_json", "optimizer"], sort=False):
        if (g["status"] == "skipped").all():
            rows.append(
                {
                    "problem": prob,
                    "params": pj,
                    "optimizer": opt,
                    "metric": "iters_to_target",
                    "status": "skipped",
                    "message": g["message"].iloc[0],
                }
            )
            continue
        n = len(g)
        div = int(g["diverged"].sum())
        reach = int(g["reached"].sum())
        lr = float(g["lr"].iloc[0])
        status = "diverged" if div * 2 > n else "ok"
        msg = f"{reach}/{n} seeds reached the target; {div}/{n} diverged"
        note = g["message"].iloc[0]
        if note:
            msg += f"; {note}"
        for m, unit in SUMMARY_METRICS.items():
            vals = g[m].astype(float).to_numpy()
            med, lo, hi = median_ci(vals)
            finite = vals[~np.isnan(vals)]
            rows.append(
                {
                    "problem": prob,
                    "params": pj,
                    "optimizer": opt,
                    "metric": m,
                    "unit": unit,
                    "median": med,
                    "ci_low": lo,
                    "ci_high": hi,
                    "min": float(finite.min()) if finite.size else math.nan,
                    "n": n,
                    "lr": lr,
                    "reached": reach / n,
                    "diverged": div / n,
                    "status": status,
                    "message": msg,
                    "samples": ",".join(f"{v:.6g}" for v in vals),
                }
            )
        rows.append(
            {
                "problem": prob,
                "params": pj,
                "optimizer": opt,
                "metric": "diverged",
                "unit": "fraction",
                "median": div / n,
                "ci_low": math.nan,
                "ci_high": math.nan,
                "min": math.nan,
                "n": n,
                "lr": lr,
                "reached": reach / n,
                "diverged": div / n,
                "status": status,
                "message": msg,
                "samples": ",".join(str(int(v)) for v in g["diverged"]),
            }
        )
        rows.append(
            {
                "problem": prob,
                "params": pj,
                "optimizer": opt,
                "metric": "reached",
                "unit": "fraction",
                "median": reach / n,
                "ci_low": math.nan,
                "ci_high": math.nan,
                "min": math.nan,
                "n": n,
                "lr": lr,
                "reached": reach / n,
                "diverged": div / n,
                "status": status,
                "message": msg,
                "samples": ",".join(str(int(v)) for v in g["reached"]),
            }
        )
        rows.append(
            {
                "problem": prob,
                "params": pj,
                "optimizer": opt,
                "metric": "best_lr",
                "unit": "lr",
                "median": lr,
                "ci_low": math.nan,
                "ci_high": math.nan,
                "min": math.nan,
                "n": n,
                "lr": lr,
                "reached": reach / n,
                "diverged": div / n,
                "status": status,
                "message": "best rate of the grid on the tuning seeds (DeepOBS protocol)",
                "samples": "",
            }
        )
    out = pd.DataFrame(rows)
    if "backend" in runs and not out.empty:
        be = runs.groupby(["problem", "params_json", "optimizer"])["backend"].first()
        out["backend"] = [be.get((r.problem, r.params, r.optimizer), "") for r in out.itertuples()]
    return out


# ----------------------------------------------------------------------------- tuning budget
def tuning_budget(sensitivity: pd.DataFrame) -> pd.DataFrame:
    """Best result vs number of random trials (learning rates drawn without replacement).

    For each (problem, optimizer), each grid point's score is its median over tuning seeds of
    iterations to target (inf when not reached). For a budget of b trials the best score is the
    minimum of b values drawn without replacement from the K grid points; its exact distribution
    is P(min = v_(i)) = C(K − i, b − 1) / C(K, b) for the sorted scores v_(1) ≤ … ≤ v_(K).
    Columns: budget, p_reached (probability the best trial reaches the target), median_best
    (median of the best score), expected_best_log10_excess (mean log10 final excess of the best
    trial by excess; divergence counts as 1e300).
    """
    from scipy.special import comb

    rows = []
    if sensitivity.empty:
        return pd.DataFrame()
    s = sensitivity[sensitivity["status"] == "ok"]
    for (prob, pj, opt), g in s.groupby(["problem", "params_json", "optimizer"], sort=False):
        per = g.groupby("lr").agg(
            iters=("iters_to_target", "median"),
            exc=("final_excess", lambda e: float(np.median([v if math.isfinite(v) else 1e300 for v in e]))),
        )
        its = np.sort(per["iters"].to_numpy(float))
        exc = np.sort(np.log10(np.maximum(per["exc"].to_numpy(float), 1e-300)))
        K = len(its)
        for b in range(1, K + 1):
            p = np.array([comb(K - i, b - 1) for i in range(1, K + 1)]) / comb(K, b)
            cdf = np.cumsum(p)
            med = its[int(np.searchsorted(cdf, 0.5))]
            rows.append(
                {
                    "problem": prob,
                    "params": pj,
                    "optimizer": opt,
                    "budget": b,
                    "grid_size": K,
                    "p_reached": float(p[np.isfinite(its)].sum()),
                    "median_best_iters": float(med),
                    "expected_best_log10_excess": float((p * exc).sum()),
                }
            )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- profiles
def performance_profile(
    table: pd.DataFrame, metric: str = "iters_to_target", reference: str = "sgd", taus=None
) -> pd.DataFrame:
    """Dolan–Moré performance profiles ρ_s(τ) against a fixed reference optimizer.

    For problem p and optimizer s, r_{p,s} = t_{p,s} / t_{p,ref} with t the median ``metric``
    (inf when the median run misses the target or diverged). Dolan & Moré (2002) divide by the
    best t over the entries; AlgoPerf does the same — dividing by a fixed reference instead keeps
    every score unchanged when entries are added. When the reference misses the target and s
    reaches it, r = τ_min (s beats the reference by the largest ratio shown); when both miss,
    r = inf. ρ_s(τ) = fraction of problems with r_{p,s} ≤ τ over a log grid τ ∈ [1e-3, 1e3];
    ``score`` (one value per optimizer, the ``tau == "score"`` rows) is the area under ρ over
    log10 τ normalized to [0, 1]. Returns columns optimizer, tau, rho, n_problems, reference, metric.
    """
    taus = np.logspace(-3, 3, 121) if taus is None else np.asarray(taus, dtype=float)
    if table.empty or "metric" not in table:
        return pd.DataFrame()
    t = table[(table["metric"] == metric) & (table.get("status", "ok") != "skipped")]
    if t.empty:
        return pd.DataFrame()
    t = t.assign(key=t["problem"] + "|" + t["params"].astype(str))
    if "backend" in t:  # a peer's method (scipy's cg) is its own entry beside ours
        be = t["backend"].fillna("").astype(str)
        t = t.assign(optimizer=[o if b in ("", "numpy") else f"{o}[{b}]" for o, b in zip(t["optimizer"], be)])
    wide = t.pivot_table(index="key", columns="optimizer", values="median", aggfunc="first")
    if reference not in wide.columns:
        return pd.DataFrame()
    ref = wide[reference]
    rows = []
    for opt in wide.columns:
        r = []
        for key in wide.index:
            a, b = wide.at[key, opt], ref[key]
            if pd.isna(a):
                continue
            if math.isfinite(a) and math.isfinite(b):
                r.append(a / b if b > 0 else (1.0 if a == 0 else math.inf))
            elif math.isfinite(a):
                r.append(taus[0])
            else:
                r.append(math.inf)
        r = np.asarray(r)
        if r.size == 0:
            continue
        rho = np.array([(r <= tau).mean() for tau in taus])
        lt = np.log10(taus)
        score = float(np.trapezoid(rho, lt) / (lt[-1] - lt[0])) if len(taus) > 1 else float(rho[0])
        rows += [
            {
                "optimizer": opt,
                "tau": float(tau),
                "rho": float(v),
                "n_problems": r.size,
                "reference": reference,
                "metric": metric,
            }
            for tau, v in zip(taus, rho)
        ]
        rows.append(
            {
                "optimizer": opt,
                "tau": math.nan,
                "rho": score,
                "n_problems": r.size,
                "reference": reference,
                "metric": metric,
                "score": score,
            }
        )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- Schaul et al. 2014
SCHAUL_FLOOR = 1e-12
SCHAUL_PROTOCOL = Protocol(
    seeds=(0, 1, 2, 3, 4), tune_seeds=(1000,), stop_at_target=False, timed=False, curve_points=20
)
_SCHAUL_REF: dict = {}


def schaul_scores(
    optimizers: list[str],
    tests: list[dict] | None = None,
    protocol: Protocol | None = None,
    executor: str = "process",
    scheduler=None,
    reference: str = "sgd",
) -> tuple:
    """Score optimizers on the unit-test bank of Schaul et al. 2014, continuously, against tuned SGD.

    Every optimizer (and the reference) is tuned per unit test on the lr grid (tuning seed),
    then run on fresh seeds for the test's fixed budget. Its result on a test is the median over
    seeds of the excess averaged over the last 10 % of the steps (``tail_excess``); its score is
    log10(excess_ref / excess_opt) with both floored at 1e-12 and clipped to [−12, 12]: > 0 beats
    tuned SGD, 1 is ten times closer to the optimum; divergence scores −12.
    Returns (scores per test, summary per optimizer: mean/median score, wins = share of tests
    with score >= 0, and the mean score per shape, noise, scale, drift and dimension).
    """
    from dlbench.problems.schaul import bank

    tests = tests if tests is not None else bank()
    proto = protocol or SCHAUL_PROTOCOL
    specs = [("schaul", t) for t in tests]
    key = (params_json({"tests": tests}), proto, reference)
    ref_runs = _SCHAUL_REF.get(key)
    if ref_runs is None:
        ref_runs = sweep(specs, [reference], proto, executor, scheduler, reference=None).runs
        _SCHAUL_REF[key] = ref_runs
    others = [o for o in optimizers if o != reference]
    runs = (
        sweep(specs, others, proto, executor, scheduler, reference=None).runs if others else ref_runs.iloc[:0]
    )
    runs = pd.concat([ref_runs, runs], ignore_index=True)
    runs = runs[runs["status"] == "ok"]
    med = runs.groupby(["params_json", "optimizer"])["tail_excess"].median().unstack("optimizer")
    rows = []
    for pj, r in med.iterrows():
        ref = r.get(reference, math.nan)
        for opt in optimizers:
            if opt not in r or pd.isna(r[opt]):
                continue
            e_ref, e = max(ref, SCHAUL_FLOOR), max(r[opt], SCHAUL_FLOOR)
            if math.isinf(e):
                score = -12.0
            elif math.isinf(e_ref):
                score = 12.0
            else:
                score = float(np.clip(np.log10(e_ref / e), -12, 12))
            rows.append(
                {
                    **json.loads(pj),
                    "params": pj,
                    "optimizer": opt,
                    "excess": r[opt],
                    "ref_excess": ref,
                    "score": score,
                }
            )
    scores = pd.DataFrame(rows)
    summary = []
    for opt, g in scores.groupby("optimizer", sort=False) if not scores.empty else []:
        row = {
            "optimizer": opt,
            "n_tests": len(g),
            "mean_score": g["score"].mean(),
            "median_score": g["score"].median(),
            "wins": float((g["score"] >= 0).mean()),
        }
        for col in ("shape", "noise", "scale", "drift", "dim"):
            for v, gg in g.groupby(col):
                row[f"{col}={v}"] = gg["score"].mean()
        summary.append(row)
    return scores, pd.DataFrame(summary)


def _schaul_rows(case, variant, base, ctx, out_dir) -> list[dict]:
    executor, scheduler = _executor_from(ctx)
    cp = case.protocol
    proto = replace(
        SCHAUL_PROTOCOL,
        backend=variant.backend,
        grid_stride=cp.grid_stride,
        seeds=cp.seeds[:5],
        tune_seeds=cp.tune_seeds[:1],
    )
    why = unavailable_reason(variant.algorithm, variant.backend)
    if why:
        return [
            {
                **base,
                "metric": "schaul_mean_score",
                "value": math.nan,
                "unit": "log10",
                "status": "skipped",
                "message": why,
            }
        ]
    from dlbench.problems.schaul import bank

    tests = bank(**case.problem_params)
    scores, summary = schaul_scores([variant.algorithm], tests, proto, executor, scheduler, case.reference)
    if summary.empty:
        return [
            {
                **base,
                "metric": "schaul_mean_score",
                "value": math.nan,
                "unit": "log10",
                "status": "error",
                "message": "no unit test ran",
            }
        ]
    s = summary.iloc[0]
    med, lo, hi = median_ci(scores["score"].to_numpy(float))
    msg = f"{int(s['n_tests'])} unit tests, score = log10(excess of tuned {case.reference} / excess)"
    rows = [
        {
            **base,
            "metric": "schaul_mean_score",
            "value": s["mean_score"],
            "unit": "log10",
            "message": msg,
            "n_samples": int(s["n_tests"]),
        },
        {
            **base,
            "metric": "schaul_median_score",
            "value": med,
            "unit": "log10",
            "median": med,
            "ci_low": lo,
            "ci_high": hi,
            "n_samples": int(s["n_tests"]),
            "message": msg,
        },
        {
            **base,
            "metric": "schaul_wins",
            "value": s["wins"],
            "unit": "fraction",
            "n_samples": int(s["n_tests"]),
            "message": f"share of unit tests at least as close to the optimum as tuned {case.reference}",
        },
    ]
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        _append_parquet(out / "schaul_scores.parquet", scores.assign(benchmark=case.name))
        _append_parquet(out / "schaul_summary.parquet", summary.assign(benchmark=case.name))
    return rows


# ----------------------------------------------------------------------------- suite integration
def run_protocol(
    problem: str,
    params: dict,
    optimizer: str,
    protocol: Protocol | None = None,
    executor: str = "process",
    scheduler=None,
) -> SweepResult:
    """The protocol for one (problem, optimizer): grid on tuning seeds, best on fresh seeds."""
    return sweep([(problem, params)], [optimizer], protocol, executor, scheduler, reference=None)


def _executor_from(ctx: dict | None) -> tuple[str, object]:
    ctx = ctx or {}
    ex = ctx.get("executor") or os.environ.get("DLBENCH_EXECUTOR") or "process"
    sch = ctx.get("scheduler") or os.environ.get("DLBENCH_SCHEDULER") or None
    return ex, sch


def run_case(case, variant, threads: int, ctx: dict, out_dir=None) -> list[dict]:
    """Hook for ``dlbench run``: the convergence protocol of one suite case and variant.

    case: a ``ConvergenceCase`` (``kind == "convergence"``), variant: Variant(backend, optimizer).
    Returns rows in the results schema (value = median; ``min``, ``median``, ``ci_low``,
    ``ci_high``, ``n_samples``, ``samples`` = per-seed values; status "diverged" when most seeds
    diverged, "skipped" with the reason when the optimizer is missing). When ``out_dir`` is given,
    appends the curves (``curves.parquet``: problem, optimizer, seed, iteration, seconds, loss),
    per-seed runs, the sensitivity grid, and rewrites tuning budgets and performance profiles.
    """
    from dlbench.runner import _base_row

    base = _base_row(case, variant, threads, ctx)
    if case.problem == "schaul_bank":
        try:
            return _schaul_rows(case, variant, base, ctx, out_dir)
        except Exception as e:  # noqa: BLE001 - recorded, the run goes on
            return [
                {
                    **base,
                    "metric": "schaul_mean_score",
                    "value": math.nan,
                    "unit": "log10",
                    "status": "error",
                    "message": f"{type(e).__name__}: {e}",
                }
            ]
    executor, scheduler = _executor_from(ctx)
    proto = replace(case.protocol, backend=variant.backend)
    try:
        res = sweep(
            [(case.problem, case.problem_params)],
            [variant.algorithm],
            proto,
            executor,
            scheduler,
            reference=None,
        )
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - a failing cell is recorded, the run goes on
        return [
            {
                **base,
                "metric": "iters_to_target",
                "value": math.nan,
                "unit": "iter",
                "status": "error",
                "message": f"{type(e).__name__}: {e}",
            }
        ]
    rows = rows_from_table(res.table, base)
    if out_dir is not None:
        write_outputs(out_dir, res, case=case)
    return rows


def rows_from_table(table: pd.DataFrame, base: dict) -> list[dict]:
    rows = []
    for _, t in table.iterrows():
        if t.get("status") == "skipped":
            rows.append(
                {
                    **base,
                    "metric": "iters_to_target",
                    "value": math.nan,
                    "unit": "iter",
                    "status": "skipped",
                    "message": t["message"],
                }
            )
            continue
        rows.append(
            {
                **base,
                "metric": t["metric"],
                "value": t["median"],
                "unit": t["unit"],
                "min": t["min"],
                "median": t["median"],
                "ci_low": t["ci_low"],
                "ci_high": t["ci_high"],
                "n_samples": t["n"],
                "samples": t["samples"],
                "status": t["status"],
                "message": t["message"],
                "lr": t["lr"],
            }
        )
    return rows


def _append_parquet(path: Path, df: pd.DataFrame) -> pd.DataFrame:
    if df is None or df.empty:
        return pd.read_parquet(path) if path.exists() else pd.DataFrame()
    if path.exists():
        old = pd.read_parquet(path)
        df = pd.concat([old, df], ignore_index=True)
    _write_parquet(path, df)
    return df


def _write_parquet(path: Path, df: pd.DataFrame) -> None:
    tmp = path.with_name(path.name + ".tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def write_outputs(out_dir, res: SweepResult, case=None, reference: str | None = None) -> None:
    """Append this sweep's curves/runs/sensitivity/summary to ``out_dir``; rewrite budget and profiles."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    label = {"benchmark": case.name} if case is not None else {}
    for name, df in (
        ("curves", res.curves),
        ("runs", res.runs),
        ("sensitivity", res.sensitivity),
        ("tuning_budget", res.budget),
    ):
        if df is not None and not df.empty:
            _append_parquet(out / f"{name}.parquet", df.assign(**label))
    table = _append_parquet(
        out / "convergence.parquet", res.table.assign(**label) if not res.table.empty else res.table
    )
    ref = reference or (getattr(case, "reference", None) if case is not None else None) or "sgd"
    if not table.empty:
        frames = [performance_profile(table, m, ref) for m in ("iters_to_target", "seconds_to_target")]
        frames = [f for f in frames if not f.empty]
        if frames:
            _write_parquet(out / "profiles.parquet", pd.concat(frames, ignore_index=True))


@dataclass
class ConvergenceCase(Case):
    """A suite case whose ``bind`` runs the whole convergence protocol once.

    ``problem``/``problem_params`` name the problem; each Variant is (optimizer backend,
    optimizer name), e.g. Variant("numpy", "adam") or Variant("scipy", "cg"). ``Bound.fn`` runs the
    protocol and leaves the SweepResult in ``bound.extra["result"]``; ``kind == "convergence"``
    tells the runner to call :func:`run_case` instead of timing ``fn`` repeatedly.
    """

    bind: object = None
    problem: str = ""
    problem_params: dict = field(default_factory=dict)
    protocol: Protocol = field(default_factory=Protocol)
    reference: str = "sgd"
    kind: str = "convergence"

    def __post_init__(self):
        if self.bind is None:
            self.bind = self._bind
        if self.metrics is None:
            self.metrics = self._medians
        self._last = pd.DataFrame()

    def _medians(self, timing) -> dict:
        """Fallback for a runner that times ``fn``: the medians of the variant just run."""
        t = self._last
        if t.empty or "unit" not in t:
            return {}
        return {r["metric"]: (r["median"], r["unit"]) for _, r in t.iterrows() if isinstance(r["unit"], str)}

    def _bind(self, variant, dtype=None):
        bound = Bound(lambda: None)
        proto = replace(self.protocol, backend=variant.backend)

        def fn():
            if "result" in bound.extra:  # a runner without the convergence hook calls fn repeatedly
                return bound.extra["result"]
            ex, sch = _executor_from(None)
            res = sweep(
                [(self.problem, self.problem_params)], [variant.algorithm], proto, ex, sch, reference=None
            )
            bound.extra["result"] = res
            self._last = res.table
            return res

        bound.fn = fn
        return bound

    def run_convergence(self, variant, threads: int = 1, ctx: dict | None = None, out_dir=None):
        """Rows of this case for one variant (see :func:`run_case`)."""
        return run_case(self, variant, threads, ctx or {}, out_dir)
