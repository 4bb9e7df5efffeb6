"""Reports: HTML / Markdown / CSV contents, several sources side by side, convergence sections,
custom section renderers, the CLI's output placement, and clear errors for bad result folders."""

from __future__ import annotations

import base64
import importlib
import json
import re
import shutil

import pandas as pd
import pytest
from test_report_data import MACHINE, convergence_run, throughput_run

import dlbench as db
from dlbench.cli import main
from dlbench.errors import UserError
from dlbench.report_sources import load_sources

rep = importlib.import_module("dlbench.report")  # the module (``dlbench.report`` is also the function)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs")
    a = throughput_run(d / "runA", "runA")
    b = throughput_run(d / "runB", "runB", scale=1.5, seed=1, machine={**MACHINE, "hostname": "otherbox"})
    c = convergence_run(d / "convA")
    return a, b, c


def _imgs(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def test_html_is_self_contained_with_tables_and_figures(runs):
    a, _, _ = runs
    html = db.report(a, format="html")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert not re.search(r'(src|href)="(https?:)?//', html), "external reference in a self-contained report"
    imgs = _imgs(html)
    assert len(imgs) >= 2  # roofline + throughput bars
    assert all(i.startswith(b"\x89PNG\r\n\x1a\n") for i in imgs)
    for text in (
        "Runs and machines",
        "Calibration",
        "Best of our kernels vs the peers",
        "Throughput",
        "Roofline",
        "Algorithm chosen by auto",
        "winograd",
        "JIT / compile time",
        "Test CPU",
        "% peak FLOP/s",
        "× torch",
        "× numpy",
        "RuntimeError: boom",
    ):
        assert text in html, text


def test_speedups_are_against_the_best_of_our_kernels(runs):
    a, _, _ = runs
    from dlbench.report_tables import best_of_ours, variant_table
    from dlbench.results import load_rows

    vt = variant_table(load_rows(a))
    best = best_of_ours(vt).set_index("benchmark")
    # numba (2 ms) is the fastest of ours; torch 2.5 ms, numpy 8 ms (conv_small)
    assert best.loc["conv_small", "best"].startswith("numba/auto")
    assert best.loc["conv_small", "x_torch"] == pytest.approx(1.25, rel=0.1)
    assert best.loc["conv_small", "x_numpy"] == pytest.approx(4.0, rel=0.1)
    row = vt[(vt.benchmark == "conv_small") & (vt.backend == "numpy")].iloc[0]
    assert row.x_numpy == pytest.approx(1.0)


def test_markdown_summary_has_tables_no_images(runs):
    a, _, _ = runs
    md = db.report(a, format="md")
    assert md.startswith("# dlbench report")
    assert "| benchmark |" in md and "numba/auto → winograd" in md
    assert "data:image" not in md and "<img" not in md


def test_csv_is_the_rows_of_every_source(runs, tmp_path):
    a, b, _ = runs
    p = db.report([a, b], format="csv", path=tmp_path / "r.csv")
    df = pd.read_csv(p)
    assert set(df.run_id) == {"runA", "runB"}
    assert list(df.columns[:5]) == ["run_id", "timestamp", "suite", "benchmark", "op"]
    assert len(df) == len(pd.read_parquet(a / "results.parquet")) + len(
        pd.read_parquet(b / "results.parquet")
    )


def test_several_runs_side_by_side(runs):
    a, b, _ = runs
    html = db.report([a, b])
    assert "runA: ms" in html and "runB: ms" in html and "runB / runA time" in html
    assert "otherbox" in html and "testbox" in html
    assert len(_imgs(html)) >= 2
    md = db.report([a, b], format="md")
    ratio = re.search(r"\| conv_small \| numba/auto \|.*\| ([0-9.]+) \|$", md, re.M)
    assert ratio and float(ratio.group(1)) == pytest.approx(1.5, rel=0.1)


def test_convergence_section(runs):
    _, _, c = runs
    html = db.report(c)
    for text in (
        "Time to target",
        "iterations to target",
        "Convergence curves",
        "Learning-rate sensitivity",
        "Performance profiles",
        "Tuning budget",
    ):
        assert text in html, text
    # two problems' curves + two sensitivity plots + budget + profiles
    assert len(_imgs(html)) >= 6
    assert "400 [360, 440]" in html  # median [95 % CI]


def test_convergence_profiles_computed_from_rows_when_absent(tmp_path):
    c = convergence_run(tmp_path / "c")
    (c / "profiles.parquet").unlink()
    prof = rep.profiles_from_rows(pd.read_parquet(c / "results.parquet"))
    at1 = prof[prof.tau == 1.0].set_index("optimizer").rho
    assert at1["adam"] == 1.0 and at1["sgd"] == 0.0  # adam is the fastest on both problems
    token = rep._FIGURES.set(False)
    try:
        blocks = rep.convergence_section("convergence", load_sources(c))
    finally:
        rep._FIGURES.reset(token)
    assert "Performance profiles" in [b.text for b in blocks if type(b).__name__ == "Heading"]


def test_custom_section_renderer(runs):
    a, _, _ = runs
    from dlbench.report_render import Para

    @rep.register_section("demo")
    def demo(suite, sources):
        return [Para(f"custom section for {suite} with {len(sources)} source(s)")]

    try:
        assert "custom section for demo with 1 source(s)" in db.report(a, format="md")
    finally:
        rep.SECTIONS.pop("demo")


def test_a_failing_section_does_not_lose_the_report(runs, monkeypatch):
    a, _, _ = runs

    def broken(suite, sources):
        raise RuntimeError("renderer bug")

    monkeypatch.setitem(rep.SECTIONS, "demo", broken)
    md = db.report(a, format="md")
    assert "could not be rendered: RuntimeError: renderer bug" in md and "Runs and machines" in md


def test_report_from_dataframe_returned_by_run(runs):
    a, _, _ = runs
    df = pd.read_parquet(a / "results.parquet")
    df.attrs["path"] = str(a)
    md = db.report(df, format="md")
    assert "Test CPU" in md  # meta.json found through df.attrs["path"]
    df2 = pd.read_parquet(a / "results.parquet")
    assert "conv_small" in db.report(df2, format="md")


def test_cli_formats_and_outputs(runs, tmp_path, capsys):
    a, b, _ = runs
    assert (
        main(["report", str(a), "--format", "csv", "--format", "md", "-o", str(tmp_path / "out") + "/"]) == 0
    )
    assert (tmp_path / "out" / "report.csv").read_text().startswith("run_id,")
    assert (tmp_path / "out" / "report.md").read_text().startswith("# dlbench report")
    assert main(["report", str(a), str(b), "-o", str(tmp_path / "x.md")]) == 0  # format from suffix
    assert "runB: ms" in (tmp_path / "x.md").read_text()
    capsys.readouterr()
    assert main(["report", str(a), "--format", "md"]) == 0  # stdout
    assert "| benchmark |" in capsys.readouterr().out
    c = tmp_path / "copy"
    shutil.copytree(a, c)
    assert main(["report", str(c)]) == 0  # html beside the run
    assert (c / "report.html").stat().st_size > 10_000


# ------------------------------------------------------------------------------ bad input
def _cli_error(capsys, *argv) -> str:
    capsys.readouterr()
    assert main(["report", *map(str, argv)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


def test_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert "holds no results" in _cli_error(capsys, tmp_path / "empty")


def test_missing_path(tmp_path, capsys):
    assert "does not exist" in _cli_error(capsys, tmp_path / "nope")


def test_corrupt_results(tmp_path, capsys):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "results.parquet").write_bytes(b"not parquet at all")
    (d / "results.csv").write_bytes(b'\x00\x01\x02garbage\n"unterminated')
    (d / "meta.json").write_text("{broken")
    err = _cli_error(capsys, d)
    assert "unreadable" in err


def test_corrupt_parquet_falls_back_to_csv_with_a_warning(runs, tmp_path):
    a, _, _ = runs
    d = tmp_path / "half"
    shutil.copytree(a, d)
    (d / "results.parquet").write_bytes(b"truncated")
    md = db.report(d, format="md")
    assert "results.parquet is unreadable" in md and "conv_small" in md


def test_partial_run_is_reported_with_a_warning(tmp_path):
    p = throughput_run(tmp_path / "partial", "p1", status="running")
    md = db.report(p, format="md")
    assert "partial run" in md and "--resume" in md and "conv_small" in md


def test_meta_without_rows(tmp_path, capsys):
    d = tmp_path / "onlymeta"
    d.mkdir()
    (d / "meta.json").write_text(json.dumps({"run_id": "x", "status": "running"}))
    assert "holds no results" in _cli_error(capsys, d)


def test_results_root_with_many_runs(runs, tmp_path, capsys):
    root = tmp_path / "results"
    root.mkdir()
    for r in runs[:2]:
        shutil.copytree(r, root / r.name)
    err = _cli_error(capsys, root)
    assert "holds 2 run folders" in err and "runA" in err


def test_unrelated_json(tmp_path, capsys):
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"hello": 1}))
    assert "neither pytest-benchmark output" in _cli_error(capsys, p)


def test_unknown_format_api(runs):
    with pytest.raises(UserError, match="unknown report format"):
        db.report(runs[0], format="pdf")
