"""The ``optim`` suite: every case binds and runs on every available backend; byte models."""

import numpy as np
import pytest

from dlbench.suite import Skip, get_suite


def test_quick_suite_binds_and_steps_every_variant():
    cases = get_suite("optim").cases(True)
    assert {c.name for c in cases} == {f"{r}_n1e6" for r in ("sgd", "momentum", "adagrad", "rmsprop", "adam")}
    ran = set()
    for case in (c for c in cases if c.name in ("adam_n1e6", "momentum_n1e6")):
        for var in case.variants:
            try:
                bound = case.bind(var, case.dtype)
            except Skip:
                continue
            bound.fn()
            ran.add(var.backend)
    assert {"numpy", "numba", "cython"} <= ran


def test_full_suite_cases_and_byte_models():
    cases = get_suite("optim").cases(False)
    names = [c.name for c in cases]
    assert len(names) == len(set(names))
    by_name = {c.name: c for c in cases}
    assert by_name["adam_n1e7"].bytes() == 28e7                 # 7 streams x 4 B x 1e7 (float32)
    assert by_name["momentum_n1e4"].bytes() == 20e4
    assert by_name["adagrad_n1e5"].bytes() == 20e5
    assert by_name["ema_n1e6"].bytes() == 12e6
    assert {c.params["n"] for c in cases} == {10_000, 100_000, 1_000_000, 10_000_000}
    labels = {v.label for v in by_name["adam_n1e4"].variants}
    assert {"torch/fused", "torch/foreach", "cython/fused", "numba/fused"} <= labels


@pytest.mark.parametrize("name", ["delta_bar_delta_n1e4", "ema_n1e4", "global_norm_n1e4", "clip_value_n1e4"])
def test_full_suite_extra_cases_run(name):
    case = {c.name: c for c in get_suite("optim").cases(False)}[name]
    for var in case.variants:
        try:
            bound = case.bind(var, case.dtype)
        except Skip:
            continue
        bound.fn()
    t = type("T", (), {"median": 1e-3})()
    assert case.metrics(t)["mparams_per_s"] == (pytest.approx(10.0), "Mparam/s")
    assert np.isfinite(case.bytes())
