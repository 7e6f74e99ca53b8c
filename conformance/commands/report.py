"""``netpol-conformance report|diff``: regenerate reports from a results file; compare two runs.

Exit codes: ``report`` 0 written, 2 unreadable input or bad usage (``report --merge``: 0 every cell
matches, 1 mismatches, as ``run``); ``diff`` 0 nothing regressed,
1 a cell is newly failing (and no known deviation covers it), 2 unreadable input or bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from conformance.commands.options import help_text
from conformance.errors import ExitCode
from conformance.live.results import RunResult
from conformance.reports import REPORT_FORMATS, render
from conformance.reports.deviations import DeviationsError, KnownDeviations
from conformance.reports.npa import Implementation, render_npa


def add_commands(sub: Any) -> None:
    r = sub.add_parser(
        "report",
        help="render a results JSON as HTML, JUnit XML, Markdown or a network-policy-api "
        "ConformanceReport preview (a selftest.json as its HTML detection matrix)",
        description="Render a results file (reports/results-<run id>.json) as a report, or a "
        "selftest.json as its detection matrix page; see docs/reports.md.",
    )
    r.add_argument("results", metavar="RESULTS.json", nargs="?")
    r.add_argument(
        "--compare",
        metavar="RESULTS.json",
        nargs="+",
        help="compare several runs (one results file per CNI) side by side; html or markdown",
    )
    r.add_argument(
        "--merge",
        metavar="RESULTS.json",
        nargs="+",
        help="join the results of the shards of one run (run --shard K/N): writes one results "
        "JSON with its HTML, JUnit and Markdown reports into --output-dir; exit 1 on mismatches",
    )
    r.add_argument(
        "--output-dir",
        default="reports",
        help="where --merge writes (default: reports)",
    )
    r.add_argument("--format", choices=REPORT_FORMATS, default="html", help="default: html")
    r.add_argument("-o", "--output", metavar="PATH", help="write here (default: standard output)")
    add_known_deviations_option(r)
    npa = r.add_argument_group(
        "npa-conformance",
        "implementation metadata of the ConformanceReport (default: from the run's detected CNI)",
    )
    npa.add_argument("--implementation", metavar="ORG/PROJECT")
    npa.add_argument("--implementation-version", metavar="VERSION")
    npa.add_argument("--implementation-url", metavar="URL")
    npa.add_argument(
        "--contact", action="append", default=[], metavar="WHO", help="repeatable; e.g. @user"
    )
    npa.add_argument(
        "--additional-information",
        metavar="URL",
        help="where to see how the run was made (e.g. a CI job)",
    )
    r.set_defaults(func=cmd_report)

    d = sub.add_parser(
        "diff",
        help="cells whose verdict changed between two runs; exit 1 on regressions",
        description=help_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("old", metavar="OLD.json", help="baseline results")
    d.add_argument("new", metavar="NEW.json", help="results to check against the baseline")
    d.add_argument("--format", choices=("text", "json"), default="text", help="default: text")
    add_known_deviations_option(d)
    d.set_defaults(func=cmd_diff)


def add_known_deviations_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--known-deviations",
        metavar="FILE",
        help="YAML of accepted mismatches (reported, not failing); format in docs/reports.md",
    )


def load_deviations(path: str | None) -> KnownDeviations | None:
    return KnownDeviations.load(path) if path else None


def implementation(args: argparse.Namespace, run: RunResult) -> Implementation:
    """The ``--implementation*`` options over the defaults the run's CNI gives."""
    impl = Implementation.from_cni(run.cni)
    org, project = impl.organization, impl.project
    if args.implementation:
        org, sep, project = args.implementation.partition("/")
        if not (sep and org and project):
            raise ValueError(f"--implementation {args.implementation!r}: expected ORG/PROJECT")
        if project != impl.project:  # another project: the detected version and url are not its
            impl = Implementation(organization=org, project=project)
    return Implementation(
        organization=org,
        project=project,
        url=args.implementation_url or impl.url,
        version=args.implementation_version or impl.version,
        contact=tuple(args.contact),
        additional_information=args.additional_information or "",
    )


def cmd_report(args: argparse.Namespace) -> int:
    if args.merge:
        return _merge(args)
    try:
        if args.compare:
            text = _render_compare(args)
        elif args.results is None:
            raise ValueError("give a RESULTS.json, or --compare RESULTS.json RESULTS.json ...")
        elif _is_selftest(args.results):
            text = _render_selftest(args)
        else:
            run = RunResult.load(args.results)
            if args.format == "npa-conformance":
                text = render_npa(run, implementation(args, run))
            else:
                text = render(run, args.format, load_deviations(args.known_deviations))
    except (ValueError, DeviationsError) as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return ExitCode.USAGE
    if not args.output or args.output == "-":
        sys.stdout.write(text)
        return ExitCode.OK
    try:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
        return ExitCode.USAGE
    print(f"{args.format} report: {args.output}", file=sys.stderr)
    return ExitCode.OK


def _is_selftest(path: str) -> bool:
    """Whether ``path`` holds selftest.json (unreadable files are left to RunResult.load)."""
    from conformance.live.selftest import Selftest

    try:
        return Selftest.is_selftest(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return False


def _render_selftest(args: argparse.Namespace) -> str:
    """A selftest.json: the detection matrix page (HTML only)."""
    from conformance.live.selftest import Selftest
    from conformance.reports.selftest import render_selftest_html

    if args.format != "html":
        raise ValueError(f"{args.results} is a selftest detection matrix: only --format html")
    return render_selftest_html(Selftest.load(args.results))


def _merge(args: argparse.Namespace) -> int:
    """``--merge``: like the end of ``run``: results JSON plus reports, verdict as exit code."""
    from conformance.live.results import exit_code
    from conformance.reports import judge, write_reports
    from conformance.reports.merge import merge

    paths = ([args.results] if args.results else []) + list(args.merge)
    try:
        deviations = load_deviations(args.known_deviations)
        run = merge([RunResult.load(p) for p in paths], paths)
    except (ValueError, DeviationsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        path = run.save(args.output_dir)
        write_reports(run, args.output_dir, deviations)
    except OSError as exc:
        print(f"error: cannot write to {args.output_dir}: {exc.strerror}", file=sys.stderr)
        return ExitCode.USAGE
    print(f"merged {len(paths)} results ({len(run.scenarios)} scenarios): {path}", file=sys.stderr)
    return judge(run, deviations).exit_code() if deviations is not None else exit_code(run)


def _render_compare(args: argparse.Namespace) -> str:
    """``--compare``: the positional file, if any, is the first column."""
    from conformance.reports.compare import render_compare

    paths = ([args.results] if args.results else []) + list(args.compare)
    if len(paths) < 2:
        raise ValueError("--compare needs at least two results files")
    runs = [RunResult.load(p) for p in paths]
    return render_compare(runs, args.format, load_deviations(args.known_deviations))


def cmd_diff(args: argparse.Namespace) -> int:
    from conformance.reports.diff import compare, dumps

    try:
        old, new = RunResult.load(args.old), RunResult.load(args.new)
        result = compare(old, new, load_deviations(args.known_deviations))
    except (ValueError, DeviationsError) as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return ExitCode.USAGE
    print(dumps(result) if args.format == "json" else result.text())
    return result.exit_code()
