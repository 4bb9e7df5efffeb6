"""Convergence runner: the book's expected behaviours as tests, the protocol's statistics, the
executors (local processes, Dask LocalCluster) and the suite/runner integration."""

import math
import time

import numpy as np
import pandas as pd
import pytest

from dlbench import convergence as cv
from dlbench import problems
from dlbench.problems import Problem, register


def _opt_available(name):
    reason = cv.unavailable_reason(name, "numpy")
    if reason:
        pytest.skip(reason)


# ----------------------------------------------------------------------------- book behaviours
def test_cg_solves_ill_conditioned_quadratic_in_n_iterations():
    """Alg. 8.9: CG reaches 1e-8 relative excess on the kappa = 1e4 quadratic in <= n iterations."""
    from dlbench import optim

    if getattr(optim, "minimize", None) is None:
        pytest.xfail("dlbench.optim.minimize(method='cg') is not implemented yet (issue 9)")
    p = problems.get("quadratic", kappa=1e4, n=50)
    x0 = p.x0(0)
    f0 = p.f(x0)
    res = optim.minimize(p.f, x0, method="cg", jac=p.grad, options={"maxiter": p.n})
    assert res.nit <= p.n
    assert (p.f(np.asarray(res.x)) - p.f_star) / (f0 - p.f_star) <= 1e-8


def test_cg_through_the_runner_reaches_target_within_n():
    _opt_available("cg")
    p = problems.get("quadratic", kappa=1e4, n=50)
    r = cv.run_cell(
        cv.Cell(
            "quadratic",
            cv.params_json({"kappa": 1e4, "n": 50}),
            "cg",
            math.nan,
            0,
            max_iters=p.n,
            rel_tol=1e-8,
            timed=True,
        )
    )
    assert r["reached"] and r["iters_to_target"] <= p.n


@pytest.mark.parametrize("kappa", [1e2, 1e3])
def test_momentum_beats_sgd_in_iterations_with_tuned_rates(kappa):
    """Alg. 8.2 vs 8.1 on an ill-conditioned quadratic (sec. 8.2.1, 8.3.2), rates tuned on a grid."""
    _opt_available("sgd")
    _opt_available("momentum")
    proto = cv.Protocol(
        seeds=(0, 1, 2, 3, 4),
        tune_seeds=(1000,),
        lr_grid=(0.03, 0.1, 0.3, 1.0, 3.16),
        max_iters=int(8 * kappa),
    )
    res = cv.sweep([("quadratic", {"kappa": kappa, "n": 20})], ["sgd", "momentum"], proto, executor="serial")
    t = res.table.set_index(["optimizer", "metric"])
    sgd, mom = t.loc[("sgd", "iters_to_target"), "median"], t.loc[("momentum", "iters_to_target"), "median"]
    assert math.isfinite(mom)
    assert mom < sgd
    if math.isfinite(sgd):
        assert t.loc[("momentum", "iters_to_target"), "ci_high"] < t.loc[("sgd", "iters_to_target"), "ci_low"]


def test_clipping_prevents_divergence_on_the_cliff():
    """Sec. 8.2.4: at a rate where plain SGD is thrown off the cliff, clipped SGD converges."""
    _opt_available("sgd")
    pj = cv.params_json({})
    lr = 0.2  # the clipped step lr·v stays below the stable step 2/λ_max ≈ 0.25 at the optimum
    plain = [cv.run_cell(cv.Cell("cliff", pj, "sgd", lr, s)) for s in range(5)]
    clipped = [cv.run_cell(cv.Cell("cliff", pj, "sgd+clip", lr, s)) for s in range(5)]
    assert all(r["diverged"] for r in plain)
    assert all(math.isinf(r["final_excess"]) for r in plain)
    assert not any(r["diverged"] for r in clipped)
    assert all(r["reached"] for r in clipped)


def test_deep_linear_chain_trains_faster_with_batch_norm():
    """Sec. 8.7.1: with batch normalization the chain reaches the target in fewer iterations."""
    _opt_available("sgd")
    _opt_available("momentum")
    proto = cv.Protocol(
        seeds=(0, 1, 2, 3, 4), tune_seeds=(1000,), lr_grid=(0.01, 0.03, 0.1, 0.3, 1.0), max_iters=400
    )
    res = cv.sweep(
        [("deep_linear", {"batch_norm": False}), ("deep_linear", {"batch_norm": True})],
        ["sgd", "momentum"],
        proto,
        executor="serial",
    )
    t = res.table[res.table["metric"] == "iters_to_target"].set_index(["optimizer", "params"])["median"]
    for opt in ("sgd", "momentum"):
        plain, bn = (
            t[(opt, cv.params_json({"batch_norm": False}))],
            t[(opt, cv.params_json({"batch_norm": True}))],
        )
        assert math.isfinite(bn) and bn < plain
    assert math.isfinite(t[("momentum", cv.params_json({"batch_norm": False}))])  # both train; BN is faster


# ----------------------------------------------------------------------------- cells
def test_divergence_is_an_outcome_not_an_error():
    _opt_available("sgd")
    r = cv.run_cell(cv.Cell("quadratic", cv.params_json({"kappa": 10.0}), "sgd", 10.0, 0, timed=True))
    assert r["diverged"] and not r["reached"] and r["status"] == "ok"
    assert math.isinf(r["final_excess"]) and math.isinf(r["iters_to_target"])
    assert r["iters"] < 200  # stopped at the blow-up, not at the budget


def test_curve_is_sampled_during_the_run():
    _opt_available("momentum")
    r = cv.run_cell(
        cv.Cell(
            "quadratic", cv.params_json({"kappa": 100.0}), "momentum", 0.3, 0, timed=True, curve_points=30
        )
    )
    it, sec, loss = map(np.asarray, (r["curve_iter"], r["curve_seconds"], r["curve_loss"]))
    assert it[0] == 0 and it[-1] == r["iters"] and np.all(np.diff(it) > 0)
    assert np.all(np.diff(sec) >= 0) and sec[-1] == pytest.approx(r["seconds"])
    assert len(it) <= 40
    assert loss[-1] <= r["target_loss"] < loss[0]


@register("_slow_eval_quadratic")
class _SlowEval(Problem):
    """A 2-d quadratic whose evaluation sleeps: the clock must not see it."""

    n = 2
    f_star = 0.0
    max_iters = 30
    lr_grid = (0.5,)

    def f(self, x):
        time.sleep(0.002)
        return float(x @ x)

    def grad(self, x):
        return 2 * x

    def x0(self, seed):
        return np.random.default_rng(seed).standard_normal(2) + 3


def test_evaluation_is_excluded_from_the_clock():
    _opt_available("sgd")
    r = cv.run_cell(
        cv.Cell("_slow_eval_quadratic", "{}", "sgd", 0.01, 0, timed=True, max_iters=30, stop_at_target=False)
    )
    assert r["iters"] == 30
    assert r["seconds"] < 0.25 * 30 * 0.002  # 30 evaluations slept >= 60 ms; the clock saw < 15 ms


def test_untimed_cells_report_no_wall_time():
    _opt_available("sgd")
    r = cv.run_cell(cv.Cell("quadratic", cv.params_json({"kappa": 10.0}), "sgd", 1.0, 0, timed=False))
    assert r["reached"] and math.isnan(r["seconds_to_target"])


def test_missing_optimizer_is_skipped_with_a_reason(monkeypatch):
    from dlbench import optim

    monkeypatch.delattr(optim, "Adam", raising=False)
    res = cv.sweep(["quadratic"], ["adam"], cv.Protocol(seeds=(0,), tune_seeds=(1,)), executor="serial")
    row = res.table.iloc[0]
    assert row["status"] == "skipped" and "Adam" in row["message"]


def test_scipy_peer_methods_run():
    r = cv.run_cell(cv.Cell("rosenbrock", "{}", "lbfgs", math.nan, 0, backend="scipy", timed=True))
    assert r["reached"] and r["iters_to_target"] < 100 and r["grads_to_target"] >= r["iters_to_target"]
    r = cv.run_cell(cv.Cell("quadratic", "{}", "newton", math.nan, 0, backend="scipy", timed=True))
    assert r["reached"] and r["iters_to_target"] <= 10  # Newton-CG: inexact inner CG solves


# ----------------------------------------------------------------------------- statistics
def test_median_ci_brackets_the_median_and_handles_censoring():
    med, lo, hi = cv.median_ci([10, 12, 11, 13, 40])
    assert lo <= med <= hi and med == 12
    assert cv.median_ci([5, 5, 5, 5, 5]) == (5.0, 5.0, 5.0)
    med, lo, hi = cv.median_ci([10, 11, math.inf, math.inf, math.inf])
    assert math.isinf(med) and math.isinf(hi) and lo <= 11
    med, lo, hi = cv.median_ci([10, 11, 12, 13, math.inf])
    assert med == 12 and math.isinf(hi)
    assert cv.median_ci([1.0, 2.0, 3.0, 4.0, 5.0]) == cv.median_ci([1.0, 2.0, 3.0, 4.0, 5.0])  # seeded


def test_tuning_budget_matches_brute_force():
    from itertools import combinations

    scores = [30.0, 10.0, math.inf, 20.0, 50.0]
    sens = pd.DataFrame(
        {
            "problem": "p",
            "params_json": "{}",
            "optimizer": "o",
            "lr": [1, 2, 3, 4, 5],
            "iters_to_target": scores,
            "final_excess": [1e-3, 1e-6, math.inf, 1e-4, 1e-2],
            "status": "ok",
        }
    )
    b = cv.tuning_budget(sens).set_index("budget")
    for k in range(1, 6):
        mins = [min(c) for c in combinations(scores, k)]
        assert b.loc[k, "p_reached"] == pytest.approx(np.mean(np.isfinite(mins)))
        assert b.loc[k, "median_best_iters"] in mins
    assert b.loc[5, "median_best_iters"] == 10.0 and b.loc[1, "p_reached"] == pytest.approx(0.8)


def _table(rows):
    return pd.DataFrame(
        [
            {
                "problem": p,
                "params": "{}",
                "optimizer": o,
                "metric": "iters_to_target",
                "median": v,
                "status": "ok",
            }
            for p, o, v in rows
        ]
    )


def test_performance_profile_against_a_fixed_reference_is_stable():
    base = [
        ("a", "sgd", 100.0),
        ("a", "adam", 50.0),
        ("b", "sgd", 80.0),
        ("b", "adam", 160.0),
        ("c", "sgd", math.inf),
        ("c", "adam", 30.0),
    ]
    taus = [1e-3, 0.25, 0.5, 1.0, 2.0, 4.0, 1e3]
    p1 = cv.performance_profile(_table(base), reference="sgd", taus=taus)
    p2 = cv.performance_profile(
        _table(base + [("a", "new", 1.0), ("b", "new", 1.0), ("c", "new", 1.0)]), reference="sgd", taus=taus
    )
    for opt in ("sgd", "adam"):
        a = p1[(p1.optimizer == opt)].reset_index(drop=True)
        b = p2[(p2.optimizer == opt)].reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b)  # adding an entry moves no other score
    sgd = p1[(p1.optimizer == "sgd") & p1.tau.notna()].set_index("tau")["rho"]
    assert sgd.loc[1.0] == pytest.approx(2 / 3)  # reference solves 2 of 3 problems, at ratio 1
    adam = p1[(p1.optimizer == "adam") & p1.tau.notna()].set_index("tau")["rho"]
    assert adam.loc[0.5] == pytest.approx(2 / 3) and adam.iloc[-1] == 1.0
    score = p1[p1.tau.isna()].set_index("optimizer")["rho"]
    assert 0 <= score["sgd"] <= 1 and score["adam"] > score["sgd"]


# ----------------------------------------------------------------------------- executors
SMALL = [("quadratic", {"kappa": 10.0, "n": 10}), ("cliff", {})]
SMALL_PROTO = cv.Protocol(seeds=(0, 1, 2, 3, 4), tune_seeds=(1000,), lr_grid=(0.01, 0.1, 1.0), max_iters=300)
DETERMINISTIC = [
    "problem",
    "params",
    "optimizer",
    "metric",
    "median",
    "ci_low",
    "ci_high",
    "min",
    "n",
    "lr",
    "reached",
    "diverged",
    "status",
    "samples",
]


def _comparable(t):
    t = t[~t["metric"].isin(["seconds_to_target", "seconds_per_iter"])]
    return t[DETERMINISTIC].reset_index(drop=True)


def test_process_and_dask_executors_give_the_same_table_as_serial():
    pytest.importorskip("dask.distributed")
    from dask.distributed import LocalCluster

    _opt_available("sgd")
    opts = ["sgd", "momentum"]
    serial = cv.sweep(SMALL, opts, SMALL_PROTO, executor="serial")
    local = cv.sweep(SMALL, opts, SMALL_PROTO, executor="process", max_workers=2)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        try:
            dask = cv.sweep(SMALL, opts, SMALL_PROTO, executor="dask", scheduler=cluster.scheduler_address)
        finally:
            cv.close_dask_clients()
    pd.testing.assert_frame_equal(_comparable(serial.table), _comparable(local.table))
    pd.testing.assert_frame_equal(_comparable(serial.table), _comparable(dask.table))
    timed = dask.runs[dask.runs["phase"] == "final"]
    assert timed["timed"].all() and np.isfinite(timed.loc[timed["reached"], "seconds_to_target"]).all()


def test_dask_without_scheduler_is_a_user_error():
    from dlbench.errors import UserError

    with pytest.raises(UserError, match="scheduler"):
        cv.map_cells([cv.Cell("quadratic", "{}", "sgd", 0.1, 0)] * 2, executor="dask")


# ----------------------------------------------------------------------------- suite and runner
def test_suite_cases_and_run_case_rows(tmp_path):
    from dlbench.results import COLUMNS, normalize
    from dlbench.suite import Variant, get_suite

    _opt_available("sgd")
    cases = get_suite("convergence").cases(True)
    assert cases and all(c.kind == "convergence" for c in cases)
    full = get_suite("convergence").cases(False)
    assert len(full) > len(cases)
    case = next(c for c in cases if c.name == "cliff")
    case.protocol = cv.Protocol(seeds=(0, 1, 2, 3, 4), tune_seeds=(1000,), lr_grid=(0.01, 0.1), max_iters=300)
    ctx = {"run_id": "t", "git_rev": "x", "machine": "m", "executor": "serial"}
    rows = cv.run_case(case, Variant("numpy", "sgd+clip"), 1, ctx, tmp_path)
    df = normalize(pd.DataFrame(rows))
    assert list(df.columns[: len(COLUMNS)]) == COLUMNS and {"ci_low", "ci_high"} <= set(df.columns)
    m = df.set_index("metric")
    assert m.loc["iters_to_target", "n_samples"] == 5 and m.loc["iters_to_target", "status"] == "ok"
    assert m.loc["iters_to_target", "ci_low"] <= m.loc["iters_to_target", "median"]
    rows2 = cv.run_case(case, Variant("numpy", "sgd"), 1, ctx, tmp_path)
    assert rows2[0]["status"] in ("ok", "diverged")
    curves = pd.read_parquet(tmp_path / "curves.parquet")
    assert {"problem", "optimizer", "seed", "iteration", "seconds", "loss"} <= set(curves.columns)
    assert set(curves["optimizer"]) == {"sgd", "sgd+clip"} and set(curves["seed"]) == {0, 1, 2, 3, 4}
    prof = pd.read_parquet(tmp_path / "profiles.parquet")
    assert set(prof["optimizer"]) == {"sgd", "sgd+clip"}
    for f in ("runs", "sensitivity", "tuning_budget", "convergence"):
        assert (tmp_path / f"{f}.parquet").exists()


def test_bound_fn_runs_the_protocol_once():
    from dlbench.suite import Variant, get_suite

    _opt_available("sgd")
    case = next(c for c in get_suite("convergence").cases(True) if c.name == "quadratic_k1e2")
    case.protocol = cv.Protocol(seeds=(0, 1, 2, 3, 4), tune_seeds=(1000,), lr_grid=(0.3, 1.0), max_iters=2000)
    bound = case.bind(Variant("numpy", "sgd"), "float64")
    t0 = time.perf_counter()
    res = bound.fn()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert bound.fn() is res and time.perf_counter() - t0 < 0.1 * first + 1e-3
    assert "iters_to_target" in case.metrics(None)


# ----------------------------------------------------------------------------- more book behaviours
def test_continuation_reaches_the_global_minimum_where_plain_descent_stalls():
    """Sec. 8.7.6: training on blurred objectives (eq. 8.40) avoids the local minimum."""
    _opt_available("sgd")
    blur = cv.params_json({"schedule": "blur"})
    none = cv.params_json({"schedule": "none"})
    for s in range(3):
        b = cv.run_cell(cv.Cell("continuation", blur, "sgd", 0.1, s, max_iters=800))
        n = cv.run_cell(cv.Cell("continuation", none, "sgd", 0.1, s, max_iters=800))
        assert b["reached"] and not n["reached"]
        assert n["final_excess"] > 1.0  # stuck in a local minimum


def test_wrong_side_of_the_mountain_never_reaches_the_target():
    """Fig. 8.4: local descent from the wrong side slides to the asymptote: no target, no divergence."""
    _opt_available("momentum")
    r = cv.run_cell(cv.Cell("wrong_side", "{}", "momentum", 0.3, 0, max_iters=500))
    assert not r["reached"] and not r["diverged"] and r["final_excess"] == pytest.approx(0.3, abs=0.01)
    r = cv.run_cell(
        cv.Cell("wrong_side", cv.params_json({"start": "right"}), "momentum", 0.3, 0, max_iters=500)
    )
    assert r["reached"]


def test_block_coordinate_descent_through_the_runner():
    _opt_available("bcd")
    r = cv.run_cell(cv.Cell("coupled", "{}", "bcd", math.nan, 0, max_iters=2000, timed=True))
    assert r["reached"] and r["iters_to_target"] > 50  # the zig-zag of sec. 8.7.2 (alpha = 0.01)
    strong = cv.run_cell(cv.Cell("coupled", cv.params_json({"alpha": 1.0}), "bcd", math.nan, 0, timed=True))
    assert strong["reached"] and strong["iters_to_target"] < r["iters_to_target"] / 5


def test_schaul_scores_against_tuned_sgd():
    from dlbench.problems.schaul import bank

    _opt_available("sgd")
    _opt_available("momentum")
    tests = bank(
        dims=(1,),
        shapes=("quadratic", "abs"),
        noises=("none", "gauss_add"),
        scales=("normal",),
        drifts=("none",),
        steps=60,
    )
    proto = cv.Protocol(
        seeds=(0, 1, 2, 3, 4), tune_seeds=(1000,), lr_grid=(0.01, 0.1, 1.0), stop_at_target=False, timed=False
    )
    scores, summary = cv.schaul_scores(["sgd", "momentum"], tests, proto, executor="serial")
    assert len(scores) == 2 * len(tests)
    assert (scores.loc[scores.optimizer == "sgd", "score"] == 0).all()
    s = summary.set_index("optimizer")
    assert s.loc["sgd", "wins"] == 1.0 and s.loc["momentum", "n_tests"] == len(tests)
    assert np.isfinite(s.loc["momentum", "mean_score"]) and "shape=abs" in s.columns
