"""The ``dlbench`` command line: info, list, run, report, compare.

User errors (unknown suite/backend/op, bad options, unreadable results) end with one line on
stderr and exit status 2; a regression found by ``compare`` exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys

from dlbench.errors import UserError


def _console():
    import shutil

    from rich.console import Console

    return Console(width=max(shutil.get_terminal_size((160, 40)).columns, 160))


def _print_df(df, title: str = "", max_rows: int = 200, floatfmt: str = "{:.4g}") -> None:
    from rich.table import Table

    t = Table(title=title or None, show_lines=False)
    for c in df.columns:
        t.add_column(str(c), overflow="fold")
    for _, row in df.head(max_rows).iterrows():
        cells = []
        for v in row.tolist():
            if isinstance(v, float):
                cells.append("" if v != v else floatfmt.format(v))
            else:
                cells.append(str(v))
        t.add_row(*cells)
    _console().print(t)


# ------------------------------------------------------------------------------ info
def cmd_info(args) -> int:
    from dlbench.calibrate import calibrate
    from dlbench.machine import fingerprint, machine_info, versions
    from dlbench.threads import blas_info, default_threads

    m = machine_info()
    con = _console()
    con.print(f"[bold]machine[/bold] {m['cpu_model']} ({m['llvm_cpu']}), {m['cores']} cores, "
              f"{m['mem_gib']} GiB, fingerprint {fingerprint()}")
    con.print(f"ISA: {m['isa']}")
    con.print(f"caches: {m.get('caches') or 'not reported'}")
    con.print(f"GPU: {m['gpu'] or 'none'}")
    b = blas_info()
    con.print(f"BLAS: {b.get('blas_all', b['blas'])}")
    con.print("versions: " + ", ".join(f"{k} {v}" for k, v in versions().items() if v))
    threads = args.threads or default_threads()
    cal = calibrate(threads, force=args.recalibrate,
                    progress=lambda msg: print(f"calibrating: {msg}", file=sys.stderr))
    con.print(f"[bold]calibration[/bold] ({threads} threads, measured {cal['measured_at']}):")
    rows = [(k, v) for k, v in cal.items() if isinstance(v, float)]
    for k, v in rows:
        con.print(f"  {k:<22} {v:10.1f}")
    con.print(f"  [bold]peak float32 GFLOP/s {cal['peak_gflops']:.1f}[/bold] (from {cal['peak_source']}); "
              f"[bold]bandwidth {cal['bw_gbs']:.1f} GB/s[/bold] (from {cal['bw_source']})")
    if cal.get("gpu_peak_gflops"):
        con.print(f"  [bold]GPU {cal.get('gpu_name', '')}: peak float32 GFLOP/s "
                  f"{cal['gpu_peak_gflops']:.0f}, HBM bandwidth {cal['gpu_bw_gbs']:.0f} GB/s[/bold]")
    if args.json:
        print(json.dumps(cal, indent=1, default=str))
    return 0


# ------------------------------------------------------------------------------ list
def cmd_list(args) -> int:
    import dlbench as db
    from dlbench.suite import list_suites

    bk = db.backends()
    if args.backend:
        bk = bk[bk.backend == args.backend]
        if bk.empty:
            raise UserError(f"unknown backend {args.backend!r}")
    _print_df(bk[["backend", "available", "mode", "version", "kernels", "reason"]], "backends")
    ks = db.kernels(op=args.op, backend=args.backend)
    if args.op and ks.empty:
        raise UserError(f"unknown op {args.op!r}; known ops: {', '.join(sorted(db.kernels().op.unique()))}")
    _print_df(ks[["op", "algorithm", "backend", "dtypes", "constraints", "available"]], "kernels")
    if not args.op and not args.backend:
        import pandas as pd

        _print_df(pd.DataFrame([{"suite": s.name, "default": s.default, "description": s.description}
                                for s in list_suites()]), "suites")
    return 0


# ------------------------------------------------------------------------------ run
def cmd_run(args) -> int:
    from dlbench.runner import run, summary

    df = run(args.suites or None, backends=args.backend, quick=not args.full, threads=args.threads,
             filter=args.filter, out=args.out, resume=args.resume, progress=not args.no_progress,
             target_time=args.target_time, executor=args.executor, scheduler=args.scheduler,
             variants=args.variant, rounds=args.rounds, reuse_memory=not args.fresh_pages)
    summ = summary(df)
    _print_df(summary_for_display(summ), f"results: {df.attrs.get('path', '')}")
    if "frac_peak_bw" in summ and (summ["frac_peak_bw"] > 1).any():
        print("note: rows above 100 % of peak BW move less data than the calibrated DRAM bandwidth "
              "limits: their working set fits in the caches (use --full for DRAM-sized cases)")
    print(f"wrote {df.attrs.get('path')}/results.parquet and results.csv ({len(df)} rows)")
    return 0


def summary_for_display(s):
    """The run summary with readable units: ms, GFLOP/s, GB/s, % of the calibrated peaks."""
    show = s.copy()
    show.insert(1, "variant", show.pop("backend") + "/" + show.pop("algorithm"))
    if "chosen" in show:
        chosen = show.pop("chosen")
        show["variant"] = show["variant"] + chosen.map(lambda c: f" -> {c}" if c else "")
    if "time" in show:
        show["time"] = show["time"] * 1e3
    for c in ("frac_peak_flops", "frac_peak_bw", "frac_probe_bw"):
        if c in show:
            show[c] = show[c] * 100
    show = show.rename(columns={"time": "median ms", "gflops": "GFLOP/s", "gbs": "GB/s",
                                "frac_peak_flops": "% peak F", "frac_peak_bw": "% peak BW",
                                "frac_probe_bw": "% BW probe",
                                "compile_time": "compile s"})
    if "message" in show:
        show["message"] = show["message"].str.slice(0, 50)
    return show.drop(columns=[c for c in ("suite", "dtype") if c in show and show[c].nunique() <= 1])


# ------------------------------------------------------------------------------ report/compare
def cmd_report(args) -> int:
    try:
        from dlbench.report import cli_report
    except ImportError as e:
        raise UserError(f"reports are not available in this build: {e}") from e
    return cli_report(args)


def cmd_compare(args) -> int:
    try:
        from dlbench.compare import cli_compare
    except ImportError as e:
        raise UserError(f"compare is not available in this build: {e}") from e
    return cli_compare(args)


def positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        print(f"dlbench: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dlbench", description="Benchmarks for the numerical core of deep learning "
                "(convolution, optimizers, RNNs): throughput and convergence speed.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    i = sub.add_parser("info", help="machine facts and calibrated peak GFLOP/s and GB/s")
    i.add_argument("--threads", type=positive_int, default=None)
    i.add_argument("--recalibrate", action="store_true", help="measure again even if cached")
    i.add_argument("--json", action="store_true", help="also print the calibration as JSON")
    i.set_defaults(func=cmd_info)

    ls = sub.add_parser("list", help="backends (with availability), kernels and suites")
    ls.add_argument("--op")
    ls.add_argument("--backend")
    ls.set_defaults(func=cmd_list)

    r = sub.add_parser("run", help="run suites and write results/<run-id>/")
    r.add_argument("suites", nargs="*", help="suite names (default: the default suites)")
    r.add_argument("--backend", action="append", help="only these backends (repeatable)")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="small sizes (default)")
    g.add_argument("--full", action="store_true", help="full sizes")
    r.add_argument("--threads", type=positive_int, default=None, help="threads for every CPU backend")
    r.add_argument("--filter", help="substring or glob on suite/benchmark")
    r.add_argument("--rounds", type=positive_int, default=1,
                   help="time each case's variants side by side in this many round-robin passes "
                        "(fairer ratios on a machine whose speed drifts)")
    r.add_argument("--variant", action="append",
                   help="glob on backend/algorithm, e.g. '*/auto' or 'torch/*' (repeatable)")
    r.add_argument("--fresh-pages", action="store_true",
                   help="leave glibc's allocator as it is: every large output gets fresh pages from the "
                        "OS (page faults timed); by default freed buffers are reused, for every backend")
    r.add_argument("--out", help="results folder (default results/<run-id>)")
    r.add_argument("--resume", action="store_true", help="continue the run in --out (or the latest)")
    r.add_argument("--target-time", type=float, default=None, help="seconds of samples per variant")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--executor", choices=["process", "serial", "dask"], default=None,
                   help="where convergence sweeps run their cells (default: local processes)")
    r.add_argument("--scheduler", help="Dask scheduler address for --executor dask")
    r.set_defaults(func=cmd_run)

    rp = sub.add_parser("report", help="HTML / Markdown / CSV report from result folders")
    rp.add_argument("runs", nargs="+", help="result folders (or asv results / pytest-benchmark JSON)")
    rp.add_argument("--format", choices=["html", "md", "csv"], action="append")
    rp.add_argument("-o", "--output", help="output path (or folder for several formats)")
    rp.set_defaults(func=cmd_report)

    c = sub.add_parser("compare", help="compare two runs (or two backends in one run)")
    c.add_argument("base")
    c.add_argument("new", nargs="?")
    c.add_argument("--threshold", type=float, default=1.10)
    c.add_argument("--backends", nargs=2, metavar=("BASE", "NEW"), help="compare two backends of one run")
    c.add_argument("--format", choices=["md", "html", "csv"], default="md")
    c.add_argument("-o", "--output")
    c.set_defaults(func=cmd_compare)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"dlbench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dlbench: interrupted (finished results are saved; rerun with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
