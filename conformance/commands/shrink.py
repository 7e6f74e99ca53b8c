"""``netpol-conformance shrink RESULTS.json --scenario NAME``: a failing scenario made minimal.

Runs smaller and smaller variants of the scenario on the cluster (the one that produced the
results: same --kubeconfig/--context; without them an embedded cluster with the given
--deviation knobs) and keeps each variant that still mismatches. Writes NAME-shrunk.yaml (with
the reference evaluator's tables as declared expectations) and NAME-shrunk.md (a bug report
draft) into --out.

Exit codes: 0 written, 1 the scenario does not mismatch on this cluster, 2 usage or input
error, 3 infrastructure error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from rich.console import Console

from conformance.cluster.knobs import Deviation, Knobs
from conformance.commands.options import help_text
from conformance.commands.run import _pairs, add_cluster_options, options_from_args
from conformance.errors import ClusterError, ConformanceError, ExitCode, ScenarioError
from conformance.live.deploy import new_run_id
from conformance.live.results import RunResult
from conformance.live.runner import Runner
from conformance.live.session import ClusterChoice, open_cluster, terminate_as_interrupt
from conformance.live.shrink import Shrinker, document, dump, failing_cells, with_expectations
from conformance.reports.bugreport import bug_report
from conformance.scenario.load import load_scenario
from conformance.scenario.shrink import size


def add_command(sub: Any) -> None:
    p = sub.add_parser(
        "shrink",
        help="shrink a scenario that mismatches to a minimal one plus a bug report draft",
        description=help_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("results", metavar="RESULTS.json", help="results of the run that failed")
    p.add_argument("--scenario", required=True, metavar="NAME", help="the failing scenario")
    p.add_argument("--out", default="shrunk", help="output folder (default: shrunk)")
    p.add_argument(
        "--deviation",
        action="append",
        default=[],
        metavar="D",
        help="knobs of the embedded cluster started when no --kubeconfig/--context is given: "
        + ", ".join(d.value for d in Deviation),
    )
    p.add_argument(
        "--max-checks",
        type=int,
        default=200,
        metavar="N",
        help="live runs at most (default 200)",
    )
    add_cluster_options(p)
    p.set_defaults(func=cmd_shrink, probe_timeout=2, deadline=1.0)


def cmd_shrink(args: argparse.Namespace) -> int:
    out, err = Console(), Console(stderr=True)

    def fail(msg: str, code: ExitCode) -> int:
        err.print(f"error: {msg}", markup=False, soft_wrap=True)
        return code

    try:
        run = RunResult.load(args.results)
        file, cells = failing_cells(run, args.scenario)
        doc = document(file)
        scenario = load_scenario(file)
        knobs = Knobs.parse(0, args.deviation)
        choice = ClusterChoice(
            kubeconfig=args.kubeconfig,
            context=args.context,
            allow_context=tuple(args.allow_context),
            embedded_instance=args.embedded_name,
            externals=_pairs(args.external, "--external"),
            knobs=knobs,
        )
    except (ValueError, ScenarioError, ConformanceError) as exc:
        return fail(str(exc), ExitCode.USAGE)
    try:
        with terminate_as_interrupt(), open_cluster(choice, [scenario]) as (cluster, externals):
            options = dataclasses.replace(options_from_args(args, externals), keep=False)
            runner = Runner(cluster, options, new_run_id())
            try:
                shrinker = Shrinker(
                    runner, args.max_checks, lambda m: err.print(m, markup=False, highlight=False)
                )
                shrunk = shrinker.shrink(doc, cells)
                context, cni = cluster.context, runner.cni
            finally:
                runner.cleanup()
                runner.close()
    except KeyboardInterrupt:
        return fail("interrupted: everything shrink created has been removed", ExitCode.INTERRUPTED)
    except ValueError as exc:
        return fail(str(exc), ExitCode.FAILED)
    except (ClusterError, ConformanceError) as exc:
        return fail(str(exc), ExitCode.INFRASTRUCTURE)
    final = with_expectations(shrunk.doc)
    folder = Path(args.out)
    name = str(final["name"])
    yaml_path, md_path = folder / f"{name}.yaml", folder / f"{name}.md"
    text = dump(final)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        yaml_path.write_text(text, encoding="utf-8")
        md_path.write_text(
            bug_report(shrunk.result, str(yaml_path), text, context, cni), encoding="utf-8"
        )
    except OSError as exc:
        return fail(f"cannot write to {folder}: {exc.strerror}", ExitCode.USAGE)
    before, after = size(shrunk.original), size(shrunk.doc)
    out.print(
        f"shrunk {args.scenario} from {before['steps']} steps, {before['policies']} policies, "
        f"{before['pods']} pods to {after['steps']}, {after['policies']}, {after['pods']} "
        f"in {shrunk.checks} live runs; {len(shrunk.mismatches)} cells still mismatch",
        highlight=False,
    )
    out.print(f"scenario: {yaml_path}\nbug report draft: {md_path}", highlight=False)
    return ExitCode.OK
