"""The runner: deploy a scenario to a live cluster, apply each step, probe, compare.

Data flows one way: scenario -> deploy (``deploy``) -> live state read back -> reference verdicts
for the *deployed* objects against the *live* state (real names, labels and IPs) -> probes
(``probing``) -> per-cell results (``results``). Everything the cluster does goes through
``ClusterOps`` (``kube.KubeCluster`` in real use), so this module has no client code of its own.

Propagation: after a step, only cells that disagree with the evaluator are probed again, with
backoff, until they agree or a deadline passes; attempts and time to converge are kept per cell.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import tenacity

from conformance import __version__
from conformance.api.adminpol import (
    AdminPolicy,
    confine_to_namespaces,
    is_admin_kind,
    parse_admin_policy,
)
from conformance.api.model import (
    ClusterState,
    ContainerPort,
    ExternalHost,
    Namespace,
    Pod,
    frozen_labels,
)
from conformance.api.netpol import NetworkPolicy, parse_network_policy
from conformance.api.types import L4Protocol, PodKey
from conformance.errors import ClusterError, ConformanceError, NotFound, ScenarioError
from conformance.live.cni import detect_cni
from conformance.live.deploy import (
    RUN_LABEL,
    SCOPE_LABEL,
    NameMap,
    cluster_scoped_name,
    container_name,
    namespace_manifest,
    pod_manifest,
    rewrite_policy,
    run_labels,
    service_manifest,
    service_name,
)
from conformance.live.kube import POLICY_KINDS, ClusterOps
from conformance.live.options import RunOptions
from conformance.live.probing import (
    Outcome,
    ProbeResult,
    ProbeTarget,
    batch_command,
    kubectl_command,
    parse_batch_output,
)
from conformance.live.results import (
    CellResult,
    CellStatus,
    RunResult,
    ScenarioResult,
    Status,
    StepResult,
    now_utc,
    observed_verdict,
)
from conformance.reference.evaluator import Evaluator, Verdict
from conformance.reference.expectations import declared_verdicts
from conformance.reference.expected import expected_table
from conformance.scenario.bind import Binding, BoundStep, pod_key
from conformance.scenario.load import Scenario

Progress = Callable[[str], None]
RealCell = tuple[
    PodKey, str, int, L4Protocol
]  # real source key, real target key or @ext, port, protocol


class InfrastructureError(ConformanceError):
    """The cluster could not be brought to a state worth probing (pods not ready, warm-up failed)."""


class RunStopped(Exception):
    """Raised in scenario threads once the run is stopping (Ctrl-C, SIGTERM): create nothing more."""


class Runner:
    """Runs scenarios on one cluster; ``cleanup()`` removes everything carrying this run's label."""

    def __init__(
        self,
        cluster: ClusterOps,
        options: RunOptions | None = None,
        run_id: str = "run",
        progress: Progress | None = None,
    ) -> None:
        self.cluster = cluster
        self.options = options or RunOptions()
        self.run_id = run_id
        self.progress = progress or (lambda _msg: None)
        self._count = 0
        self.unsupported: dict[L4Protocol, str] = {}
        self._served_kinds: set[str] | None = None
        # One probe pool for every scenario running at once: it bounds the execs in flight.
        self.pool = ThreadPoolExecutor(
            max_workers=max(1, self.options.parallel), thread_name_prefix="probe"
        )
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        # The v1alpha1 BaselineAdminNetworkPolicy is a cluster singleton named `default`: two
        # scenarios using it cannot run at the same time on one cluster.
        self._banp = threading.Lock()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    def new_result(self) -> RunResult:
        version = self.cluster.server_version()
        return RunResult(
            run_id=self.run_id,
            context=self.cluster.context,
            server=getattr(self.cluster, "server", ""),
            server_version=version,
            tool_version=__version__,
            options=self.options.as_dict(),
            started=now_utc(),
            cni=self.detect_cni(version),
        )

    def detect_cni(self, server_version: str) -> str:
        """The CNI from kube-system-style workloads (as ``doctor`` does); "" when it cannot tell."""
        if "netpol-embedded" in server_version:
            return "netpol-conformance embedded dataplane (nftables)"
        try:
            found = detect_cni(
                self.cluster.list_items("DaemonSet"), self.cluster.list_items("Deployment")
            )
        except ClusterError:
            return ""  # e.g. no RBAC for apps/v1: the report says "not detected"
        return ", ".join(str(c) for c in found)

    # -- cleanup ----------------------------------------------------------------------------
    def cleanup(self) -> list[str]:
        """Delete every namespace and cluster-scoped policy labelled with this run's id."""
        selector = f"{RUN_LABEL}={self.run_id}"
        removed = []
        for kind in ("Namespace", *[k for k, v in POLICY_KINDS.items() if not v.namespaced]):
            if kind != "Namespace" and kind not in self._kinds():
                continue
            removed += [f"{kind} {n}" for n in self.cluster.delete_collection(kind, selector)]
        return removed

    def _kinds(self) -> set[str]:
        if self._served_kinds is None:
            self._served_kinds = self.cluster.served_kinds()
        return self._served_kinds

    def check(self) -> None:
        """Raise ``RunStopped`` when the run is stopping (called before every step that creates)."""
        if self.stopping.is_set():
            raise RunStopped()

    # -- many scenarios ---------------------------------------------------------------------
    def run_many(
        self,
        scenarios: Sequence[Scenario],
        jobs: int = 1,
        on_result: Callable[[ScenarioResult], None] = lambda _r: None,
    ) -> None:
        """Run scenarios ``jobs`` at a time, each in its own namespaces; ``on_result`` gets the
        results in input order, in the caller's thread.

        If the caller is interrupted (KeyboardInterrupt, or SIGTERM turned into one), running
        scenarios stop at their next cluster change and remove what they made before the
        interrupt propagates; ``cleanup()`` then removes anything left by label.
        """
        pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="scenario")
        try:
            futures = [pool.submit(self.run_scenario, sc) for sc in scenarios]
            for fut in futures:
                # Wake up now and then: an interrupt is handled when this thread runs Python.
                while not fut.done():
                    wait([fut], timeout=0.2)
                on_result(fut.result())
        except BaseException:
            self.stopping.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    # -- one scenario -----------------------------------------------------------------------
    def run_scenario(self, scenario: Scenario) -> ScenarioResult:
        if "BaselineAdminNetworkPolicy" in scenario.policy_kinds:
            with self._banp:
                return self._run_scenario(scenario)
        return self._run_scenario(scenario)

    def _run_scenario(self, scenario: Scenario) -> ScenarioResult:
        self.check()
        with self._lock:
            self._count += 1
            count = self._count
        result = ScenarioResult(scenario.name, scenario.file, list(scenario.tags), Status.PASS)
        missing = self._missing_kinds(scenario)
        if missing:
            result.status = Status.SKIPPED
            served = ", ".join(f"{k} ({POLICY_KINDS[k].api_version})" for k in sorted(missing))
            result.message = f"not supported: the cluster does not serve {served}"
            return result
        run = _ScenarioRun(self, scenario, f"{self.run_id}-{count}", result)
        try:
            run.execute()
        except (ClusterError, InfrastructureError) as exc:
            result.status = Status.ERROR
            result.message = str(exc)
        finally:
            if not self.options.keep:
                run.teardown()
        if result.status is Status.PASS:
            statuses = {s.status for s in result.steps}
            if Status.FAIL in statuses:
                result.status = Status.FAIL
            elif Status.ERROR in statuses:
                result.status = Status.ERROR
            elif statuses == {Status.SKIPPED}:
                result.status = Status.SKIPPED
                result.message = result.steps[0].message
        return result

    def _missing_kinds(self, scenario: Scenario) -> set[str]:
        kinds = scenario.policy_kinds - {"NetworkPolicy"}
        return set(kinds - self._kinds()) if kinds else set()

    # -- probing ------------------------------------------------------------------------------
    def probe(
        self, cells: Iterable[tuple[RealCell, str, str]], live: _Live
    ) -> dict[RealCell, ProbeResult]:
        """Probe cells (cell, source container, target host): one exec per source pod, in parallel."""
        by_source: dict[PodKey, list[tuple[RealCell, str]]] = {}
        containers: dict[PodKey, str] = {}
        for cell, container, host in cells:
            by_source.setdefault(cell[0], []).append((cell, host))
            containers[cell[0]] = container
        futures = {
            src: self.pool.submit(self._probe_source, src, containers[src], items)
            for src, items in by_source.items()
        }
        out: dict[RealCell, ProbeResult] = {}
        for fut in futures.values():
            out.update(fut.result())
        return out

    def _probe_source(
        self, source: PodKey, container: str, items: list[tuple[RealCell, str]]
    ) -> dict[RealCell, ProbeResult]:
        targets = [
            ProbeTarget(f"c{i}", host, cell[2], cell[3]) for i, (cell, host) in enumerate(items)
        ]
        self.check()
        waves = math.ceil(len(targets) / self.options.in_pod_parallel)
        timeout = self.options.probe_timeout_s * waves + 15
        ns, pod = source.split("/", 1)
        argv = batch_command(targets, self.options.probe_timeout_s, self.options.in_pod_parallel)
        try:
            res = self.cluster.exec(ns, pod, container, argv, timeout)
        except ClusterError as exc:
            return {cell: ProbeResult(Outcome.CHECK_FAILED, str(exc)) for cell, _ in items}
        if res.exit_code != 0 and not res.stdout:
            detail = f"probe batch exited {res.exit_code}: {res.stderr.strip()[:200]}"
            return {cell: ProbeResult(Outcome.CHECK_FAILED, detail) for cell, _ in items}
        parsed = parse_batch_output(res.stdout, [t.ident for t in targets])
        return {cell: parsed[t.ident] for (cell, _), t in zip(items, targets, strict=True)}


@dataclass
class _Live:
    """What is deployed for one scenario run: real names, pod IPs, services."""

    names: NameMap
    pods: dict[PodKey, Pod] = field(
        default_factory=dict
    )  # scenario key -> Pod as deployed (real ns)
    service_ips: dict[PodKey, str] = field(default_factory=dict)
    policies: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    admin_names: dict[str, str] = field(default_factory=dict)  # real cluster-scoped -> scenario

    def scenario_name(self, text: str) -> str:
        """A live pod key, ``ns/name`` policy or cluster-scoped policy name in scenario terms."""
        if "/" in text:
            ns, rest = text.split("/", 1)
            original = self.names.scenario(ns)
            return text if original is None else f"{original}/{rest}"
        return self.admin_names.get(text, text)


class _ScenarioRun:
    def __init__(
        self, runner: Runner, scenario: Scenario, suffix: str, result: ScenarioResult
    ) -> None:
        self.r = runner
        self.c = runner.cluster
        self.opts = runner.options
        self.sc = scenario
        self.result = result
        self.labels = run_labels(runner.run_id, scenario.name)
        self.scope = suffix
        initial = scenario.initial_state()
        self.live = _Live(NameMap.for_run(suffix, [n.name for n in initial.namespaces]))
        self.initial = initial
        result.namespaces = dict(self.live.names.forward)

    # -- lifecycle ---------------------------------------------------------------------------
    def execute(self) -> None:
        self.r.progress(f"{self.sc.name}: deploying")
        for ns in self.initial.namespaces:
            self._create_namespace(ns.name, ns.labels)
        self._create_pods(self.initial.pods)
        self._warm_up()
        for index in range(len(self.sc.spec.steps)):
            self.result.steps.append(self._step(index))

    def teardown(self) -> None:
        for real in self.live.names.forward.values():
            with contextlib.suppress(ClusterError):  # a later `clean` finds it by label
                self.c.delete("Namespace", None, real)

    def _create_namespace(self, name: str, labels: Mapping[str, str]) -> None:
        self.r.check()
        self.live.names = self.live.names.with_namespace(name)
        self.result.namespaces = dict(self.live.names.forward)
        self.c.create(
            namespace_manifest(
                self.live.names.real(name), labels, {**self.labels, SCOPE_LABEL: self.scope}
            )
        )

    def _create_pods(self, pods: Iterable[Pod]) -> None:
        pods = list(pods)
        for pod in pods:
            self.r.check()
            real_ns = self.live.names.real(pod.namespace)
            self.c.create(pod_manifest(pod, real_ns, self.labels, self.opts.deploy))
            if self.opts.via == "service" and pod.ports:
                self.c.create(service_manifest(pod, real_ns, self.labels))
        self._wait_ready(pods)

    def _wait_ready(self, pods: list[Pod]) -> None:
        pending = {p.key: p for p in pods}
        last: dict[PodKey, str] = {}

        def check() -> None:
            self.r.check()
            for key in list(pending):
                pod = pending[key]
                real_ns = self.live.names.real(pod.namespace)
                obj = self.c.get("Pod", real_ns, pod.name)
                status = obj.get("status") or {}
                phase = status.get("phase", "")
                ready = any(
                    c.get("type") == "Ready" and c.get("status") == "True"
                    for c in status.get("conditions") or []
                )
                if phase == "Failed":
                    raise InfrastructureError(
                        f"pod {real_ns}/{pod.name} failed: {_pod_problem(status) or 'no reason given'}"
                    )
                if phase == "Running" and ready and status.get("podIP"):
                    self.live.pods[key] = Pod(
                        real_ns,
                        pod.name,
                        pod.labels,
                        pod.ports,
                        ipaddress.ip_address(status["podIP"]),
                        pod.host_network,
                    )
                    del pending[key]
                else:
                    last[key] = f"phase {phase or 'unknown'}; {_pod_problem(status) or 'not ready'}"
            if pending:
                raise _NotYet()

        try:
            tenacity.Retrying(
                retry=tenacity.retry_if_exception_type(_NotYet),
                stop=tenacity.stop_after_delay(self.opts.ready_timeout_s),
                wait=tenacity.wait_exponential(multiplier=0.05, max=2),
                reraise=True,
            )(check)
        except _NotYet:
            key = next(iter(pending))
            real_ns = self.live.names.real(pending[key].namespace)
            events = self.c.events_for(real_ns, pending[key].name)
            raise InfrastructureError(
                f"pod {real_ns}/{pending[key].name} not ready after {self.opts.ready_timeout_s:.0f} s "
                f"({last.get(key, '')}{'; last event: ' + events[-1] if events else ''})"
            ) from None
        if self.opts.via == "service":
            for pod in pods:
                if pod.ports:
                    svc = self.c.get(
                        "Service", self.live.names.real(pod.namespace), service_name(pod.name)
                    )
                    self.live.service_ips[pod.key] = str(
                        (svc.get("spec") or {}).get("clusterIP", "")
                    )

    # -- binding ------------------------------------------------------------------------------
    def _binding(self) -> Binding:
        offline = self.sc.offline_binding()
        ips = dict(offline.pod_ips)
        ips.update({k: p.ip for k, p in self.live.pods.items() if p.ip is not None})
        first = next((p.ip for p in self.live.pods.values() if p.ip is not None), None)
        cidr = offline.pod_cidr
        if first is not None:
            cidr = ipaddress.ip_network(f"{first}/{16 if first.version == 4 else 64}", strict=False)
        externals = {
            name: ipaddress.ip_address(ip) for name, ip in self.opts.externals.items()
        } or dict(offline.external_ips)
        return Binding(
            dict(self.live.names.forward), ips, {**offline.external_ips, **externals}, cidr
        )

    def _bound_step(self, index: int) -> BoundStep:
        return self.sc.bind(self._binding())[index]

    # -- warm-up ------------------------------------------------------------------------------
    def _warm_up(self) -> None:
        """With no policies every served cell must connect; otherwise stop before any policy."""
        pps = {pp for s in self.sc.bind(self._binding()) for pp in s.port_protocols}
        cells = [
            (src, dst, port, proto)
            for src in self.live.pods.values()
            for dst in self.live.pods.values()
            for port, proto in pps
            if src.key != dst.key and dst.serves(port, proto)
        ]
        if not cells:
            return
        self.r.progress(f"{self.sc.name}: warm-up ({len(cells)} probes)")
        pending = {(s.key, d.key, port, proto): (s, d) for s, d, port, proto in cells}
        deadline = time.monotonic() + self.opts.warmup_deadline_s
        problem = ""
        while pending:
            results = self.r.probe(
                [(cell, _container(s), self._host(d)) for cell, (s, d) in pending.items()],
                self.live,
            )
            for cell, res in results.items():
                if res.outcome is Outcome.UNSUPPORTED:
                    self.r.unsupported.setdefault(cell[3], res.detail)
                if res.outcome in (Outcome.CONNECTED, Outcome.UNSUPPORTED):
                    pending.pop(cell, None)
                else:
                    problem = f"{cell[0]} -> {cell[1]} {cell[2]}/{cell[3]}: {res.outcome} {res.detail}".strip()
            if pending and time.monotonic() > deadline:
                raise InfrastructureError(
                    f"warm-up without policies: {len(pending)} probes did not connect within "
                    f"{self.opts.warmup_deadline_s:.0f} s, e.g. {problem}; the cluster blocks traffic "
                    "before any policy is applied, so results would be meaningless"
                )
            if pending:
                time.sleep(0.5)

    def _host(self, pod: Pod) -> str:
        if self.opts.via == "service":
            scen = f"{self.live.names.scenario(pod.namespace)}/{pod.name}"
            if scen in self.live.service_ips:
                return self.live.service_ips[scen]
        return str(pod.ip)

    # -- steps --------------------------------------------------------------------------------
    def _step(self, index: int) -> StepResult:
        self.r.check()
        spec = self.sc.spec.steps[index]
        self.r.progress(f"{self.sc.name}: step {index + 1}/{len(self.sc.spec.steps)}: {spec.name}")
        started = time.monotonic()
        result = StepResult(index, spec.name, Status.PASS)
        try:
            bound = self._apply_changes(index)
            result.policies = [dict(o) for o in self.live.policies.values()]
            result.cells = self._probe_step(bound)
        except (ClusterError, InfrastructureError) as exc:
            result.status = Status.ERROR
            result.message = str(exc)
        except ScenarioError as exc:
            result.status = Status.ERROR
            result.message = f"scenario could not be bound to the cluster: {exc}"
        result.duration_s = round(time.monotonic() - started, 3)
        if result.status is Status.PASS:
            statuses = {c.status for c in result.cells}
            if CellStatus.MISMATCH in statuses:
                result.status = Status.FAIL
                result.message = (
                    f"{sum(c.status is CellStatus.MISMATCH for c in result.cells)} cells mismatch"
                )
            elif statuses and statuses <= {CellStatus.NOT_SUPPORTED, CellStatus.IGNORED}:
                result.status = Status.SKIPPED
                result.message = "not supported here: " + next(
                    c.detail for c in result.cells if c.status is CellStatus.NOT_SUPPORTED
                )
            elif CellStatus.CHECK_FAILED in statuses:
                result.status = Status.ERROR
                result.message = f"{sum(c.status is CellStatus.CHECK_FAILED for c in result.cells)} probes could not run"
        return result

    def _apply_changes(self, index: int) -> BoundStep:
        """Carry out the step's changes in the documented order; returns the step bound live."""
        step = self.sc.spec.steps[index]
        names = self.live.names
        for ns, ns_spec in step.add_namespaces.items():
            self._create_namespace(ns, ns_spec.labels)
        names = self.live.names
        bound = self._bound_step(index)
        added = [p for p in bound.state.pods if p.key in {pod_key(s) for s in step.add_pods}]
        if added:
            self._create_pods(added)
        for key in step.remove_pods:
            ns, pod = key.split("/", 1)
            self.c.delete("Pod", names.real(ns), pod)
            self.live.pods.pop(key, None)
            self._wait_gone(names.real(ns), pod)
        for ns, patch in step.label_namespaces.items():
            self.c.patch_labels("Namespace", None, names.real(ns), patch)
        for key, patch in step.label_pods.items():
            ns, pod = key.split("/", 1)
            self.c.patch_labels("Pod", names.real(ns), pod, patch)
            live = self.live.pods[key]
            labels = {**live.labels, **{k: v for k, v in patch.items() if v is not None}}
            for k, v in patch.items():
                if v is None:
                    labels.pop(k, None)
            self.live.pods[key] = Pod(
                live.namespace, live.name, frozen_labels(labels), live.ports, live.ip
            )
        bound = self._bound_step(index)
        self._reconcile_policies(bound)
        return bound

    def _wait_gone(self, namespace: str, name: str) -> None:
        deadline = time.monotonic() + self.opts.ready_timeout_s
        while time.monotonic() < deadline:
            try:
                self.c.get("Pod", namespace, name)
            except NotFound:
                return
            time.sleep(0.1)
        raise InfrastructureError(
            f"pod {namespace}/{name} still exists {self.opts.ready_timeout_s:.0f} s after delete"
        )

    def _reconcile_policies(self, bound: BoundStep) -> None:
        """Make the cluster's policies equal the step's: delete the gone, create or replace the rest."""
        desired: dict[tuple[str, str, str], dict[str, Any]] = {}
        for obj in bound.objects:
            real = rewrite_policy(obj, self.live.names)
            if is_admin_kind(real):
                # Cluster-scoped: confine subjects and peers to this run's namespaces (parallel
                # runs on one cluster cannot reach each other's pods) and make the name unique.
                # The v1alpha1 BANP is a singleton named `default`: it keeps its name, so BANP
                # scenarios must not run concurrently on a shared cluster (docs/admin-policies.md).
                real = confine_to_namespaces(real, SCOPE_LABEL, self.scope)
                if real.get("kind") != "BaselineAdminNetworkPolicy":
                    original = real["metadata"]["name"]
                    real["metadata"]["name"] = cluster_scoped_name(original, self.scope)
                    self.live.admin_names[real["metadata"]["name"]] = original
            real.setdefault("metadata", {}).setdefault("labels", {}).update(self.labels)
            meta = real["metadata"]
            desired[
                (str(real.get("kind")), str(meta.get("namespace") or ""), str(meta["name"]))
            ] = real
        for ident in [i for i in self.live.policies if i not in desired]:
            self.c.delete(ident[0], ident[1] or None, ident[2])
            del self.live.policies[ident]
        for ident, obj in desired.items():
            if self.live.policies.get(ident) != obj:
                self.r.check()
                self.c.apply(obj)
                self.live.policies[ident] = obj

    # -- evaluation against the live state and probing ----------------------------------------
    def _live_state(self) -> ClusterState:
        namespaces = []
        for real in self.live.names.forward.values():
            obj = self.c.get("Namespace", None, real)
            namespaces.append(
                Namespace(real, frozen_labels((obj.get("metadata") or {}).get("labels") or {}))
            )
        pods = []
        for pod in self.live.pods.values():
            obj = self.c.get("Pod", pod.namespace, pod.name)
            labels = (obj.get("metadata") or {}).get("labels") or {}
            ip = (obj.get("status") or {}).get("podIP")
            pods.append(
                Pod(
                    pod.namespace,
                    pod.name,
                    frozen_labels(labels),
                    pod.ports,
                    ipaddress.ip_address(ip) if ip else pod.ip,
                    bool((obj.get("spec") or {}).get("hostNetwork")),
                )
            )
        externals = tuple(
            ExternalHost(
                e.name, ipaddress.ip_address(self.opts.externals.get(e.name, str(e.ip))), e.ports
            )
            for e in self.initial.externals
        )
        return ClusterState(tuple(namespaces), tuple(pods), externals)

    def _live_policies(self) -> list[NetworkPolicy | AdminPolicy]:
        """The deployed objects, typed (they were validated offline, so parsing cannot fail)."""
        return [
            parse_network_policy(obj)
            if obj.get("kind") == "NetworkPolicy"
            else parse_admin_policy(obj)
            for obj in self.live.policies.values()
        ]

    def _probe_step(self, bound: BoundStep) -> list[CellResult]:
        names = self.live.names
        state = self._live_state()
        evaluator = Evaluator(state, self._live_policies(), include_self=self.opts.include_self)
        table = expected_table(bound, include_self=self.opts.include_self)
        declared = declared_verdicts(bound, table) if bound.expect is not None else {}

        def real_key(key: str) -> str:
            if key.startswith("@"):
                return key
            ns, pod = key.split("/", 1)
            return f"{names.real(ns)}/{pod}"

        cells: dict[RealCell, CellResult] = {}
        to_probe: list[tuple[RealCell, str, str]] = []
        real_pods = {p.key: p for p in state.pods}
        for cell in table:
            rc: RealCell = (real_key(cell.source), real_key(cell.target), cell.port, cell.protocol)
            decision = evaluator.decide(*rc)
            d = declared.get(cell.key)
            src_pod = real_pods[rc[0]]
            target_host = self._target_host(rc[1], real_pods)
            res = CellResult(
                cell.source,
                cell.target,
                cell.port,
                cell.protocol,
                decision.verdict,
                cell.served,
                decision.renamed(self.live.scenario_name).reason,
                declared=d[0] if d else None,
            )
            cells[rc] = res
            if decision.verdict is Verdict.IMPLEMENTATION_DEFINED:
                res.status = CellStatus.IGNORED
                continue
            if cell.protocol in self.r.unsupported:
                res.status = CellStatus.NOT_SUPPORTED
                res.detail = f"{cell.protocol} is not supported by this cluster: {self.r.unsupported[cell.protocol]}"
                continue
            if target_host is None:
                res.status = CellStatus.NOT_SUPPORTED
                res.detail = f"external endpoint {cell.target} has no address on this cluster (use --external NAME=IP)"
                continue
            res.command = kubectl_command(
                src_pod.namespace,
                src_pod.name,
                _container(src_pod),
                ProbeTarget("", target_host, cell.port, cell.protocol),
                self.opts.probe_timeout_s,
                context=self.c.context,
                kubeconfig=getattr(self.c, "kubeconfig", ""),
            )
            to_probe.append((rc, _container(src_pod), target_host))
        self._observe(cells, to_probe)
        return list(cells.values())

    def _target_host(self, key: str, pods: Mapping[str, Pod]) -> str | None:
        if key.startswith("@"):
            name = key[1:]
            if name in self.opts.externals:
                return self.opts.externals[name]
            return None  # real clusters have no simulated hosts: map them with --external
        return self._host(pods[key])

    def _observe(
        self, cells: dict[RealCell, CellResult], to_probe: list[tuple[RealCell, str, str]]
    ) -> None:
        start = time.monotonic()
        pending = list(to_probe)
        delay = 0.1
        while pending:
            results = self.r.probe(pending, self.live)
            elapsed = time.monotonic() - start
            still = []
            for item in pending:
                cell = cells[item[0]]
                res = results[item[0]]
                _record(cell, res, elapsed)
                if cell.status in (CellStatus.MISMATCH, CellStatus.CHECK_FAILED):
                    still.append(item)
            pending = still
            if not pending or time.monotonic() - start + delay > self.opts.convergence_deadline_s:
                break
            time.sleep(delay)
            delay = min(1.0, delay * 2)


class _NotYet(Exception):
    """Internal: the condition being polled for has not happened yet."""


def _record(cell: CellResult, res: ProbeResult, elapsed: float) -> None:
    """Fold one observation into a cell: status, attempts, convergence, flakiness."""
    cell.attempts += 1
    cell.observed = res.outcome
    cell.detail = res.detail
    cell.observed_verdict = observed_verdict(res.outcome, cell.served)
    cell.history.append(str(res.outcome))
    if res.outcome is Outcome.UNSUPPORTED:
        cell.status = CellStatus.NOT_SUPPORTED
    elif cell.observed_verdict is None:
        cell.status = CellStatus.CHECK_FAILED
    elif cell.observed_verdict == cell.expected:
        cell.status = CellStatus.MATCH
        cell.converged_after_s = round(elapsed, 3)
    else:
        cell.status = CellStatus.MISMATCH
    verdicts = [
        h for h in cell.history if h in (Outcome.CONNECTED, Outcome.TIMEOUT, Outcome.REFUSED)
    ]
    changes = sum(1 for a, b in itertools.pairwise(verdicts) if a != b)
    cell.flaky = changes >= 2 or (changes >= 1 and cell.status is CellStatus.MISMATCH)


def _container(pod: Pod) -> str:
    return container_name(pod.ports[0] if pod.ports else ContainerPort(80))


def _pod_problem(status: Mapping[str, Any]) -> str:
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        for key in ("waiting", "terminated"):
            if key in state and (state[key].get("reason") or state[key].get("message")):
                return f"container {cs.get('name')}: {state[key].get('reason', '')} {state[key].get('message', '')}".strip()
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True" and cond.get("message"):
            return f"{cond.get('type')}: {cond['message']}"
    return str(status.get("reason") or status.get("message") or "")
