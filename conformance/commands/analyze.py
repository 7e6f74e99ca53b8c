"""``netpol-conformance analyze``: the reference reachability of a real cluster or manifest folder.

Read-only: a live cluster is only listed (namespaces, pods, NetworkPolicies and the admin kinds it
serves). Exit codes: 0 ok, 2 bad input (unreadable manifests, invalid policy, unknown pod in
``--explain``), 3 the cluster could not be read.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

from conformance.errors import ClusterError, ExitCode, ScenarioError
from conformance.reference.inventory import (
    DEFAULT_POD_CIDR,
    Inventory,
    build_inventory,
    dump_yaml,
    list_cluster,
    load_manifest_dir,
    parse_port,
    plural,
    scenario_document,
    summary,
    write_csv,
    write_json,
)
from conformance.reference.matrix import ReachabilityMatrix, compute_matrix

PROGRESS_MIN_PODS = 300
"""Inputs with at least this many pods show a progress bar (on a terminal)."""


def add_command(sub: Any) -> None:
    p = sub.add_parser(
        "analyze",
        help="reachability matrix of a live cluster's or a manifest folder's policies",
        description="Compute who can reach whom under a cluster's NetworkPolicies and admin "
        "policies, with the reference evaluator's semantics. Read-only. Exit codes: 0 ok, 2 bad "
        "input, 3 cluster unreachable.",
    )
    src = p.add_argument_group("input (a folder of manifests, or a live cluster)")
    src.add_argument("--manifests", metavar="DIR", help="folder (or file) of YAML/JSON manifests")
    src.add_argument("--kubeconfig", help="kubeconfig of a live cluster (default ~/.kube/config)")
    src.add_argument("--context", help="kubeconfig context (default: the current one)")
    src.add_argument(
        "--replicas",
        type=int,
        default=1,
        metavar="N",
        help="pods per workload expanded from a manifest's pod template (default 1)",
    )
    src.add_argument(
        "--pod-cidr",
        default=DEFAULT_POD_CIDR,
        help=f"addresses for pods without status.podIP (default {DEFAULT_POD_CIDR})",
    )
    out = p.add_argument_group("output")
    out.add_argument("--output", choices=("summary", "json", "csv"), default="summary")
    out.add_argument("--out", metavar="FILE", help="write the output to FILE instead of stdout")
    out.add_argument(
        "--explain",
        nargs=3,
        metavar=("FROM", "TO", "PORT/PROTO"),
        help="explain one path, e.g. --explain prod/web-0 prod/db-0 5432/TCP",
    )
    out.add_argument("--to-scenario", metavar="FILE", help="write a regression scenario to FILE")
    out.add_argument("--sample", type=int, default=12, help="pods in the scenario (default 12)")
    out.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    out.add_argument(
        "--include-self",
        action="store_true",
        help="give pod-to-itself cells a verdict instead of implementation-defined",
    )
    out.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        if args.replicas < 0 or args.sample < 1:
            raise ScenarioError("--replicas must be >= 0 and --sample >= 1")
        inventory = _inventory(args)
        if args.explain:
            return _explain(inventory, args, out)
        if args.to_scenario:
            path, sampled = write_scenario(
                inventory, Path(args.to_scenario), args.sample, args.seed
            )
            of = len(inventory.state.pods)
            print(f"wrote {path} ({sampled} of {plural(of, 'pod')}, seed {args.seed})", file=out)
            return ExitCode.OK
        matrix = _matrix(inventory, args, err)
        if args.out:
            with open(args.out, "w", encoding="utf-8", newline="") as fh:
                _write(inventory, matrix, args.output, fh)
        else:
            _write(inventory, matrix, args.output, out)
    except ScenarioError as exc:
        lines = str(exc).splitlines() or ["invalid input"]
        more = f" (and {len(lines) - 1} more problems)" if len(lines) > 1 else ""
        print(f"error: {lines[0]}{more}", file=err)
        return ExitCode.USAGE
    except ClusterError as exc:
        print(f"error: {exc}", file=err)
        return ExitCode.INFRASTRUCTURE
    except BrokenPipeError:
        raise  # the reader went away (`| head`): the CLI ends quietly
    except OSError as exc:
        print(f"error: {exc}", file=err)
        return ExitCode.USAGE
    return ExitCode.OK


def _inventory(args: argparse.Namespace) -> Inventory:
    if args.manifests and (args.kubeconfig or args.context):
        raise ScenarioError("give either --manifests or --kubeconfig/--context, not both")
    if args.manifests:
        objects = load_manifest_dir(args.manifests)
    else:
        from conformance.live.kube import KubeCluster

        cluster = KubeCluster(args.kubeconfig, args.context)
        try:
            objects = list_cluster(cluster)
        finally:
            cluster.close()
    return build_inventory(objects, replicas=args.replicas, pod_cidr=args.pod_cidr)


def _matrix(inventory: Inventory, args: argparse.Namespace, err: TextIO) -> ReachabilityMatrix:
    show = (
        not args.no_progress
        and len(inventory.state.pods) >= PROGRESS_MIN_PODS
        and getattr(err, "isatty", lambda: False)()
    )
    if not show:
        return compute_matrix(inventory.state, inventory.policies, include_self=args.include_self)
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(file=err), transient=True) as bar:
        task = bar.add_task("evaluating", total=len(inventory.state.pods))
        return compute_matrix(
            inventory.state,
            inventory.policies,
            include_self=args.include_self,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )


def _write(inventory: Inventory, matrix: ReachabilityMatrix, fmt: str, fh: TextIO) -> None:
    if fmt == "json":
        write_json(matrix, fh)
    elif fmt == "csv":
        write_csv(matrix, fh)
    else:
        print(summary(inventory, matrix), file=fh)


def _explain(inventory: Inventory, args: argparse.Namespace, out: TextIO) -> int:
    source, target, port_text = args.explain
    port, protocol = parse_port(port_text)
    state = inventory.state
    for key, role in ((source, "FROM"), (target, "TO")):
        if not state.has_pod(key):
            known = ", ".join(p.key for p in state.pods[:5])
            raise ScenarioError(
                f"{role} pod {key!r} not found; write ns/pod (e.g. {known or 'no pods found'})"
            )
    from conformance.reference.evaluator import Evaluator

    ev = Evaluator(state, inventory.policies, include_self=args.include_self)
    decision = ev.decide(source, target, port, protocol)
    served = state.pod(target).serves(port, protocol)
    print(f"{source} -> {target} {port}/{protocol}: {decision.verdict}", file=out)
    if not served:
        print(f"  note: {target} declares no container port {port}/{protocol}", file=out)
    print(f"  egress:  {decision.egress.describe()}", file=out)
    print(f"  ingress: {decision.ingress.describe()}", file=out)
    if decision.self_traffic and not args.include_self:
        print("  self traffic is implementation-defined (kubernetes#95879)", file=out)
    return ExitCode.OK


def write_scenario(inventory: Inventory, path: Path, sample: int, seed: int) -> tuple[Path, int]:
    """Write the scenario, then add the reference evaluator's table as its expectation.

    The table is computed from the written file itself (load, bind, evaluate), so it is exactly
    the layout and cell set ``evaluate`` checks. Returns the file and how many pods it has.
    """
    from conformance.reference.expectations import expected_table
    from conformance.scenario.load import load_scenario

    doc = scenario_document(inventory, sample, seed, name=path.stem)
    with tempfile.TemporaryDirectory() as tmp:
        draft = Path(tmp) / path.name
        draft.write_text(dump_yaml(doc), encoding="utf-8")
        (step,) = load_scenario(draft).bind()
        table = expected_table(step)
    doc["steps"][0]["expect"] = {"table": table.render() + "\n"}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_yaml(doc), "utf-8")
    return path, len(doc["topology"]["pods"])
