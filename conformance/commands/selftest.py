"""``netpol-conformance selftest``: which enforcement bugs do these scenarios catch?

Runs the scenarios on an embedded cluster without deviations, then once per ``--deviation`` knob
(default: every knob, docs/cluster.md), and prints the detection matrix: per deviation, caught or
not, by which scenarios and steps, how many cells mismatch. Writes it as JSON and as an HTML page
(docs/selftest.md).

Exit codes: 0 every deviation caught and the clean run matches, 1 a deviation went uncaught or the
clean run mismatches or errs, 2 scenario or usage error, 3 infrastructure error, 130 interrupted.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from conformance.cluster.knobs import Deviation, Knobs
from conformance.commands.options import (
    add_run_options,
    help_text,
    positive_int,
    run_option_values,
)
from conformance.commands.run import load_all
from conformance.errors import ClusterError, ConformanceError, ExitCode
from conformance.live.options import RunOptions
from conformance.live.selftest import Selftest, SelftestRunner
from conformance.live.session import terminate_as_interrupt
from conformance.reports.selftest import render_selftest_html

# The embedded cluster installs rules before it answers a write, so re-probing only absorbs
# transient failures (a probe that could not run, a UDP probe that met a stale conntrack entry
# under load); a deviation persists, so its mismatches stay. A dropped probe costs
# --probe-timeout on loopback veths.
SELFTEST_PROBE_TIMEOUT = 2
SELFTEST_DEADLINE = 5.0


def add_command(sub: Any) -> None:
    p = sub.add_parser(
        "selftest",
        help="measure which embedded-cluster deviations the scenarios catch (detection matrix)",
        description=help_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "paths", nargs="*", default=["scenarios"], metavar="PATH", help="scenario files or folders"
    )
    p.add_argument(
        "--deviation",
        action="append",
        default=[],
        metavar="D",
        help="deviation to test (repeatable, or comma-separated; default: all): "
        + ", ".join(d.value for d in Deviation),
    )
    p.add_argument(
        "--tag", action="append", default=[], help="only scenarios with this tag (repeatable)"
    )
    p.add_argument(
        "--jobs",
        "-j",
        type=positive_int,
        default=4,
        metavar="N",
        help="scenarios run side by side on each cluster (default 4)",
    )
    p.add_argument(
        "--clusters",
        type=positive_int,
        default=1,
        metavar="K",
        help="deviations run side by side, each on its own embedded cluster (default 1)",
    )
    p.add_argument(
        "--output-dir",
        default="reports",
        help="where selftest.json and each run's results go (default: reports)",
    )
    add_run_options(p.add_argument_group("probing"))
    p.set_defaults(
        func=cmd_selftest, probe_timeout=SELFTEST_PROBE_TIMEOUT, deadline=SELFTEST_DEADLINE
    )


def cmd_selftest(args: argparse.Namespace) -> int:
    out, err = Console(), Console(stderr=True)
    if not out.is_terminal:
        out = Console(width=200)  # a log keeps whole scenario names
    try:
        knobs = Knobs.parse(0, args.deviation)
    except ConformanceError as exc:
        err.print(f"error: {exc}", markup=False, soft_wrap=True)
        return ExitCode.USAGE
    deviations = sorted(knobs.deviations) if args.deviation else list(Deviation)
    scenarios = load_all(args.paths, args.tag, err)
    if scenarios is None:
        return ExitCode.USAGE
    try:
        options = RunOptions(**run_option_values(args))
    except ValueError as exc:
        err.print(f"error: {exc}", markup=False, soft_wrap=True)
        return ExitCode.USAGE
    out.print(
        f"selftest: {len(scenarios)} scenarios x {len(deviations) + 1} runs "
        f"(clean + {len(deviations)} deviations), {args.jobs} scenarios at once on "
        f"{args.clusters} cluster(s)"
    )
    runner = SelftestRunner(
        scenarios,
        options,
        jobs=args.jobs,
        clusters=args.clusters,
        output_dir=args.output_dir,
        progress=lambda msg: err.print(msg, markup=False, highlight=False),
    )
    try:
        with terminate_as_interrupt():
            test = runner.run(deviations)
    except KeyboardInterrupt:
        err.print("interrupted: every cluster this selftest started has been removed")
        return ExitCode.INTERRUPTED
    except (ClusterError, ConformanceError) as exc:
        err.print(f"error: {exc}", markup=False, soft_wrap=True)
        return ExitCode.INFRASTRUCTURE
    print_matrix(test, out)
    try:
        path = test.save(f"{args.output_dir}/selftest.json")
        page = path.with_name("selftest.html")
        page.write_text(render_selftest_html(test), encoding="utf-8")
        out.print(f"detection matrix: {path}, {page}")
    except OSError as exc:
        err.print(f"error: cannot write to {args.output_dir}: {exc.strerror}")
    return ExitCode.OK if test.ok else ExitCode.FAILED


def print_matrix(test: Selftest, out: Console) -> None:
    table = Table(title=f"detection matrix ({len(test.scenarios)} scenarios)")
    for col in ("deviation", "caught", "cells", "scenarios", "caught by (first steps)", "time"):
        table.add_column(col)
    for run in [*([test.clean] if test.clean else []), *test.runs]:
        clean = run is test.clean
        if clean:
            verdict = "[green]0 mismatches[/]" if not run.caught else "[bold red]MISMATCH[/]"
        else:
            verdict = "[green]yes[/]" if run.caught else "[bold red]NO[/]"
        by = ", ".join(f"{c.scenario}#{c.step}" for c in run.catches[:3])
        if len(run.catches) > 3:
            by += f", +{len(run.catches) - 3} steps"
        if run.errors:
            verdict += f" [yellow]({len(run.errors)} errors)[/]"
        table.add_row(
            run.deviation,
            verdict,
            f"{run.mismatches}/{run.cells}",
            str(len({c.scenario for c in run.catches})),
            by,
            f"{run.seconds:.0f} s",
        )
    out.print(table)
    for run in [*([test.clean] if test.clean else []), *test.runs]:
        for line in run.errors[:5]:
            out.print(f"[yellow]{run.deviation}: {line}[/]", highlight=False)
    caught = len(test.runs) - len(test.missed)
    summary = f"{caught}/{len(test.runs)} deviations caught"
    if test.missed:
        summary += f"; missed: {', '.join(test.missed)}"
    if test.clean is not None and (test.clean.caught or test.clean.errors):
        summary += (
            f"; the clean run has {test.clean.mismatches} mismatching cells and "
            f"{len(test.clean.errors)} errors"
        )
    out.print(summary + ".")
