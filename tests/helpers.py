"""Builders shared by the harness's own tests (pure data; no cluster)."""

from __future__ import annotations

import ipaddress
import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conformance.api.model import (
    ClusterState,
    ContainerPort,
    ExternalHost,
    Namespace,
    Pod,
    frozen_labels,
)
from conformance.api.netpol import NetworkPolicy, parse_network_policy
from conformance.api.types import L4Protocol
from conformance.cluster.config import ClusterOptions
from conformance.cluster.embedded import EmbeddedCluster
from conformance.cluster.knobs import Knobs
from conformance.live.kube import KubeCluster
from conformance.live.options import RunOptions
from conformance.live.results import RunResult
from conformance.live.runner import Runner

DEFAULT_PORTS = tuple(
    ContainerPort(port, proto, f"serve-{port}-{proto.lower()}")
    for port in (80, 81)
    for proto in L4Protocol
)


def upstream_state(
    ns_labels: dict[str, dict[str, str]] | None = None,
    externals: tuple[ExternalHost, ...] = (),
) -> ClusterState:
    """The upstream e2e model: x, y, z with pods a, b, c; IPs 10.244.0.10 upwards."""
    namespaces = tuple(Namespace(n, frozen_labels((ns_labels or {}).get(n))) for n in "xyz")
    pods = []
    for i, (ns, pod) in enumerate((n, p) for n in "xyz" for p in "abc"):
        ip = ipaddress.ip_address(f"10.244.0.{10 + i}")
        pods.append(Pod(ns, pod, frozen_labels({"pod": pod}), DEFAULT_PORTS, ip))
    return ClusterState(namespaces, tuple(pods), externals)


def netpol(namespace: str, name: str, spec: dict[str, Any]) -> NetworkPolicy:
    return parse_network_policy(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )


def disagreeing_cells(results: dict[str, Any]) -> list[str]:
    """One line per mismatching or check-failed cell of a results JSON document (for asserts)."""
    return [
        f"{s['name']} / {st['name']}: {c['from']} -> {c['to']} {c['port']}/{c['protocol']} "
        f"expected {c['expected']} observed {c['observed']} ({c['detail'] or c['reason']})"
        for s in results["scenarios"]
        for st in s["steps"]
        for c in st["cells"]
        if c["status"] in ("mismatch", "check-failed")
    ]


def suite_run(root: Path) -> RunResult:
    """The shipped scenario suite as a passing run records it, built offline: every cell of every
    step with the evaluator's verdict and reason, observed as it should be, and a reproduce
    command in the form a run writes (per-run namespaces, pod IPs, kubeconfig and context)."""
    from conformance.live.probing import Outcome, ProbeResult
    from conformance.live.results import CellResult, CellStatus, ScenarioResult, Status, StepResult
    from conformance.reference.evaluator import Verdict
    from conformance.reference.expectations import evaluate_scenario
    from conformance.scenario.load import load_scenarios

    run_id = "5ca1ed"
    ctx = "netpol-embedded-run4242"
    run = RunResult(
        run_id,
        ctx,
        "http://127.0.0.1:40000",
        "v1.32.0-netpol-embedded",
        "0.1.0",
        {"probe_timeout_s": 3, "via": "pod"},
        "2026-11-30T10:00:00Z",
        "2026-11-30T10:03:00Z",
    )
    for n, scenario in enumerate(load_scenarios([root / "scenarios"]), 1):
        names = {ns.name: f"{ns.name}-{run_id}-{n}" for ns in scenario.initial_state().namespaces}
        sc = ScenarioResult(scenario.name, scenario.file, list(scenario.tags), Status.PASS)
        sc.namespaces = names
        for index, ev in enumerate(evaluate_scenario(scenario).steps):
            st = StepResult(index, ev.step.name, Status.PASS)
            state = ev.step.state
            for cell in ev.table:
                c = CellResult(
                    cell.source,
                    cell.target,
                    cell.port,
                    cell.protocol,
                    cell.verdict,
                    cell.served,
                    cell.decision.reason if cell.decision else "",
                    path=cell.path,
                    family=cell.family,
                )
                st.cells.append(c)
                if cell.verdict is Verdict.IMPLEMENTATION_DEFINED:
                    c.status = CellStatus.IGNORED
                    continue
                if cell.verdict is Verdict.DENY:
                    outcome = Outcome.TIMEOUT
                else:
                    outcome = Outcome.CONNECTED if cell.served else Outcome.REFUSED
                c.record(ProbeResult(outcome), 0.05)
                if "/" not in cell.source or "/" not in cell.target:
                    continue  # outside clients and node addresses: no pod to exec in
                ns, pod = cell.source.split("/", 1)
                ip = state.pod(cell.target).ip
                proto = cell.protocol.lower()
                c.command = (
                    f"kubectl --kubeconfig /run/netpol-conformance/run4242/kubeconfig --context "
                    f"{ctx} exec -n {names.get(ns, ns)} {pod} -c cont-{cell.port}-{proto} -- "
                    f"/agnhost connect {ip}:{cell.port} --protocol={proto} --timeout=3s"
                )
            st.settle()
            sc.steps.append(st)
            # Where each pod ran: the scenario's nodes (offline, the runner's node names).
            sc.nodes.update({p.key: p.node for p in state.pods if p.node is not None})
        sc.settle()
        run.scenarios.append(sc)
    return run


_instances = itertools.count()


@contextmanager
def embedded_runner(tag: str, knobs: Knobs, options: RunOptions) -> Iterator[Runner]:
    """A ``Runner`` on a fresh embedded cluster with ``knobs``; its namespaces are deleted and
    the cluster stopped afterwards (``tag`` names the instance, unique per process)."""
    n = next(_instances)
    instance = f"{tag}{os.getpid() % 10000}x{n}"
    with EmbeddedCluster(ClusterOptions(instance=instance, knobs=knobs)) as ec:
        cluster = KubeCluster(ec.kubeconfig, ec.context)
        runner = Runner(cluster, options, run_id=f"{tag}{n}")
        try:
            yield runner
        finally:
            runner.cleanup()
            runner.close()
            cluster.close()
