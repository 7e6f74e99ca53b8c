"""``netpol-conformance run|clean|rbac``: run scenarios on a cluster and report cell by cell.

Exit codes: 0 every cell matches, 1 mismatches, 2 scenario or usage error, 3 infrastructure error,
130 interrupted (after cleanup).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from conformance.cluster import embedded
from conformance.commands.options import add_run_options, help_text, positive_int, run_option_values
from conformance.commands.report import load_deviations
from conformance.commands.suites import add_shard_option, add_suite_option, sources
from conformance.errors import ClusterError, ConformanceError, ExitCode, ScenarioError
from conformance.live.deploy import (
    RUN_LABEL,
    TOOL_LABEL,
    TOOL_NAME,
    DeployOptions,
    PullPolicy,
    new_run_id,
)
from conformance.live.options import RunOptions, external_addresses
from conformance.live.placement import parse_node_map, unmapped_names
from conformance.live.results import RunResult, ScenarioResult, exit_code, now_utc
from conformance.live.runner import Runner, delete_labelled
from conformance.live.session import (
    ClusterChoice,
    UnsafeContextError,
    open_cluster,
    terminate_as_interrupt,
)
from conformance.reports import DeviationsError, KnownDeviations, judge, write_reports
from conformance.reports.text import note_lines, run_lines, summary_lines
from conformance.scenario.load import Scenario, load_scenarios
from conformance.scenario.shard import select


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run scenarios on a cluster and compare with the reference evaluator",
        description=help_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "paths", nargs="*", metavar="PATH", help="scenario files or folders (default: every suite)"
    )
    add_suite_option(p)
    add_cluster_options(p)
    p.add_argument(
        "--tag", action="append", default=[], help="only scenarios with this tag (repeatable)"
    )
    p.add_argument(
        "--output-dir",
        default="reports",
        help="where the results JSON and the HTML, JUnit and Markdown reports go (default: "
        "%(default)s)",
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="leave the run's namespaces and policies in place for debugging (an embedded "
        "cluster started for the run keeps running; the end of the output says how to remove "
        "what was kept)",
    )
    add_shard_option(p, "--shard")
    p.add_argument(
        "--jobs",
        "-j",
        type=positive_int,
        default=4,
        metavar="N",
        help="scenarios run side by side, each in its own namespaces (default 4; 1 = one after "
        "another); probes of all of them share the --parallel bound",
    )
    p.add_argument(
        "--known-deviations",
        metavar="FILE",
        help="YAML of accepted mismatches: reported, but not failing the run (docs/reports.md)",
    )
    p.set_defaults(func=cmd_run)

    c = sub.add_parser(
        "clean",
        help="delete leftovers of earlier runs (by the tool's labels) and orphaned embedded clusters",
    )
    c.add_argument("--kubeconfig")
    c.add_argument("--context")
    c.add_argument("--allow-context", action="append", default=[])
    c.add_argument("--run-id", help="only this run's objects (default: every run's)")
    c.set_defaults(func=cmd_clean)

    r = sub.add_parser("rbac", help="print a least-privilege RBAC manifest for running in-cluster")
    r.add_argument(
        "--namespace", default="netpol-conformance", help="namespace of the ServiceAccount"
    )
    r.set_defaults(func=cmd_rbac)


def add_cluster_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("cluster (default: an embedded cluster started for the run)")
    g.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    g.add_argument("--context", help="kubeconfig context, e.g. kind-kind")
    g.add_argument(
        "--in-cluster",
        action="store_true",
        help="inside a pod: use its ServiceAccount (context 'in-cluster'; see the job command)",
    )
    g.add_argument(
        "--allow-context",
        action="append",
        default=[],
        metavar="NAME",
        help="run on a context not named kind-* (it must be a disposable cluster)",
    )
    g.add_argument(
        "--embedded-name",
        metavar="NAME",
        help="instance name of the embedded cluster started for the run (default: run<pid>)",
    )
    g.add_argument(
        "--external",
        action="append",
        default=[],
        metavar="NAME=IP[,IP]",
        help="address of a scenario's external endpoint on this cluster (one per family)",
    )
    add_run_options(p.add_argument_group("probing"))
    d = p.add_argument_group("pods")
    deploy = DeployOptions()
    d.add_argument(
        "--image",
        default=deploy.image,
        help="image of the probe pods; it must provide agnhost's serve-hostname, porter and "
        "connect, as agnhost does (default: %(default)s)",
    )
    d.add_argument(
        "--image-pull-policy",
        default=str(deploy.image_pull_policy),
        choices=[p.value for p in PullPolicy],
        help="imagePullPolicy of the probe pods (default: %(default)s)",
    )
    d.add_argument(
        "--node-selector",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="nodeSelector of the probe pods (repeatable)",
    )


def _pairs(items: Sequence[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key or not value:
            raise ConformanceError(f"{flag} expects KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def options_from_args(args: argparse.Namespace, externals: dict[str, str]) -> RunOptions:
    for name, text in externals.items():
        external_addresses(name, text)  # a bad address is a one-line error here, not later
    return RunOptions(
        **run_option_values(args),
        keep=getattr(args, "keep", False),
        deploy=DeployOptions(
            args.image,
            PullPolicy(args.image_pull_policy),
            _pairs(args.node_selector, "--node-selector") or None,
        ),
        externals=externals,
    )


def load_all(paths: Sequence[str], tags: Sequence[str], err: Console) -> list[Scenario] | None:
    """Scenarios under ``paths`` filtered by tags; None (after printing errors) if any is invalid."""
    try:
        scenarios = load_scenarios(paths, tags)
    except ScenarioError as exc:
        for line in str(exc).splitlines():
            err.print(f"error: {line}", markup=False)
        return None
    if not scenarios:
        err.print(
            f"error: no scenarios found under {' '.join(paths)}"
            + (f" with tags {tags}" if tags else "")
        )
        return None
    return scenarios


def cmd_run(args: argparse.Namespace) -> int:
    out, err = Console(), Console(stderr=True)
    try:
        paths = sources(args)
    except ScenarioError as exc:
        err.print(f"error: {exc}", markup=False)
        return ExitCode.USAGE
    scenarios = load_all(paths, args.tag, err)
    if scenarios is None:
        return ExitCode.USAGE
    if args.shard is not None:
        scenarios = select(scenarios, args.shard)
        if not scenarios:
            err.print(f"shard {args.shard} has no scenarios: nothing to run")
            return ExitCode.OK
    unknown = unmapped_names(parse_node_map(args.node_map), scenarios)
    if unknown:
        err.print(
            f"warning: --node-map names {', '.join(unknown)}, which no scenario of this run has "
            "among its topology.nodes (default node-1, node-2); those entries are not used",
            markup=False,
            soft_wrap=True,
        )
    try:
        deviations = load_deviations(args.known_deviations)
    except DeviationsError as exc:
        for line in str(exc).splitlines():
            err.print(f"error: {line}", markup=False, soft_wrap=True)
        return ExitCode.USAGE
    try:
        choice = ClusterChoice(
            kubeconfig=args.kubeconfig,
            context=args.context,
            allow_context=tuple(args.allow_context),
            embedded_instance=args.embedded_name,
            in_cluster=args.in_cluster,
            externals=_pairs(args.external, "--external"),
            keep_embedded=args.keep,
        )
    except ConformanceError as exc:
        err.print(f"error: {exc}", markup=False)
        return ExitCode.USAGE
    run_id = new_run_id()
    result: RunResult | None = None
    runner: Runner | None = None
    try:
        with terminate_as_interrupt(), open_cluster(choice, scenarios) as (cluster, externals):
            kept_at = f"--kubeconfig {cluster.kubeconfig} --context {cluster.context}"
            runner = Runner(cluster, options_from_args(args, externals), run_id)
            result = runner.new_result()
            try:
                _run_all(runner, scenarios, result, out, args.jobs)
            finally:
                result.retries = cluster.retry_counts()
                # An embedded cluster started for the run is stopped on leaving open_cluster,
                # which removes all it holds: deleting the run's namespaces one by one first
                # would only cost seconds (about 4 s after the shipped suite).
                if not args.keep and not choice.wants_embedded:
                    runner.cleanup()
                runner.close()
    except KeyboardInterrupt:
        if args.keep and not choice.wants_embedded:
            err.print(
                f"interrupted: the run's objects were kept (--keep); remove them with "
                f"`netpol-conformance clean --run-id {run_id}`",
                markup=False,
            )
        else:
            err.print("interrupted: everything this run created has been removed")
        if result is not None:
            _write(result, args.output_dir, err, deviations)
        return ExitCode.INTERRUPTED
    except UnsafeContextError as exc:
        err.print(f"error: {exc}", markup=False)
        return ExitCode.USAGE
    except (ClusterError, ConformanceError) as exc:
        err.print(f"error: {exc}", markup=False)
        return ExitCode.INFRASTRUCTURE
    assert result is not None
    written = _write(result, args.output_dir, err, deviations)
    print_summary(result, out, deviations, written)
    if args.keep and choice.wants_embedded:
        out.print(
            f"kept: the embedded cluster {choice.instance!r} with this run's namespaces is still "
            f"running (kubectl {kept_at} get pods -A); stop it and remove everything with "
            f"`netpol-conformance cluster down --name {choice.instance}`",
            markup=False,
            soft_wrap=True,
        )
    elif args.keep:
        out.print(
            f"kept: namespaces labelled {RUN_LABEL}={run_id}; remove them with "
            f"`netpol-conformance clean --run-id {run_id}` (plus the same --kubeconfig/--context)",
            markup=False,
            soft_wrap=True,
        )
    if deviations is not None:
        judged = judge(result, deviations)
        if judged.known:
            out.print(f"{len(judged.known)} mismatching cells are known deviations (allowed)")
        return judged.exit_code()
    return exit_code(result)


def _run_all(
    runner: Runner, scenarios: list[Scenario], result: RunResult, out: Console, jobs: int = 1
) -> None:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=out,
        transient=True,
        disable=not out.is_terminal,
    ) as bar:
        task = bar.add_task("scenarios", total=len(scenarios))
        runner.progress = lambda msg: bar.update(task, description=msg[:70])

        def done(sc: ScenarioResult) -> None:
            result.scenarios.append(sc)
            bar.advance(task)

        runner.run_many(scenarios, jobs, done)
    result.finished = now_utc()


def _write(
    result: RunResult, output_dir: str, err: Console, deviations: KnownDeviations | None = None
) -> list[Path]:
    """The results JSON, then the reports (docs/reports.md); returns the per-run files written."""
    directory = Path(output_dir)
    try:
        path = result.save(directory)
    except OSError as exc:
        err.print(f"error: cannot write results to {directory}: {exc.strerror}", markup=False)
        return []
    # The JSON is what matters, so a report that cannot be rendered is an error message, not a
    # lost run.
    try:
        return [path, *write_reports(result, directory, deviations)]
    except Exception as exc:
        err.print(f"error: cannot write reports to {directory}: {exc}", markup=False)
        return [path]


STATUS_STYLE = {
    "pass": "green",
    "known": "blue",
    "fail": "bold red",
    "error": "yellow",
    "skipped": "dim",
}


def print_summary(
    result: RunResult,
    out: Console,
    deviations: KnownDeviations | None = None,
    written: Sequence[Path] = (),
) -> None:
    """On a terminal a table of scenarios; in a log (no terminal) plain lines only. Both then
    list what did not pass with its mismatching cells, the totals and where the reports are."""
    j = judge(result, deviations)
    title = f"netpol-conformance run {result.run_id} on {result.context} ({result.server_version})"
    if out.is_terminal:
        table = Table(title=title)
        for col in (
            "scenario",
            "status",
            "steps",
            "match",
            "mismatch",
            "check-failed",
            "not-supported",
        ):
            table.add_column(col, no_wrap=col == "scenario")
        for sc in result.scenarios:
            counts: dict[str, int] = {}
            for st in sc.steps:
                for k, v in st.counts().items():
                    counts[k] = counts.get(k, 0) + v
            outcome = j.scenario_outcome(sc)
            table.add_row(
                sc.name,
                f"[{STATUS_STYLE.get(outcome, '')}]{outcome}[/]",
                str(len(sc.steps)),
                str(counts.get("match", 0)),
                str(counts.get("mismatch", 0)),
                str(counts.get("check-failed", 0)),
                str(counts.get("not-supported", 0)),
            )
        out.print(table)
    else:
        out.print(title, markup=False, highlight=False, soft_wrap=True)
    for line in [*run_lines(j), *note_lines(j), *summary_lines(j)]:
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    if written:
        out.print(
            "reports: " + " ".join(str(p) for p in written),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def cmd_clean(args: argparse.Namespace) -> int:
    from conformance.live.kube import KubeCluster
    from conformance.live.session import check_context

    err = Console(stderr=True)
    # Embedded clusters whose daemon was killed cannot be cleaned through their API: prune them.
    try:
        pruned = embedded.prune()
    except (ConformanceError, OSError) as exc:
        pruned = []
        err.print(f"warning: orphaned embedded clusters not pruned: {exc}", markup=False)
    if pruned:
        print("\n".join(f"deleted {what}" for what in pruned))
    try:
        cluster = KubeCluster(args.kubeconfig, args.context)
        selector = f"{RUN_LABEL}={args.run_id}" if args.run_id else f"{TOOL_LABEL}={TOOL_NAME}"
        try:
            check_context(cluster.context, args.allow_context)
            removed = delete_labelled(cluster, selector, cluster.served_kinds())
        finally:
            cluster.close()
    except UnsafeContextError as exc:
        err.print(f"error: {exc}", markup=False)
        return ExitCode.USAGE
    except ConformanceError as exc:
        err.print(f"error: {exc}", markup=False)
        return ExitCode.INFRASTRUCTURE
    if removed:
        print("\n".join(f"deleted {what}" for what in removed))
    elif not pruned:
        print("nothing to remove")
    return ExitCode.OK


RBAC = """\
# Least privilege for netpol-conformance run/clean from inside a cluster.
apiVersion: v1
kind: ServiceAccount
metadata: {{name: netpol-conformance, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: netpol-conformance}}
rules:
  - apiGroups: [""]
    resources: [namespaces]
    verbs: [get, list, create, delete, patch]
  - apiGroups: [""]
    resources: [pods, services]
    verbs: [get, list, create, delete, patch]
  - apiGroups: [""]
    resources: [pods/exec]
    verbs: [create, get]
  - apiGroups: [""]
    resources: [events, nodes]
    verbs: [get, list]
  - apiGroups: [apps]
    resources: [daemonsets, deployments]
    verbs: [get, list]  # CNI detection for reports and doctor
  - apiGroups: [networking.k8s.io]
    resources: [networkpolicies]
    verbs: [get, list, create, update, delete]
  - apiGroups: [policy.networking.k8s.io]
    resources: [adminnetworkpolicies, baselineadminnetworkpolicies, clusternetworkpolicies]
    verbs: [get, list, create, update, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: netpol-conformance}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: netpol-conformance}}
subjects:
  - {{kind: ServiceAccount, name: netpol-conformance, namespace: {ns}}}
"""


def cmd_rbac(args: argparse.Namespace) -> int:
    sys.stdout.write(RBAC.format(ns=args.namespace))
    return ExitCode.OK
