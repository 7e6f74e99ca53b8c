"""One scenario on a live cluster: deploy, then for each step apply its changes, bind it once,
evaluate it once against the live state, probe, and fold observations into per-cell results.

Data flows one way: scenario -> deploy (``deploy``) -> live state read back -> reference verdicts
for the *deployed* objects against the *live* state (real names, labels and IPs) -> probes
(``Runner.probe``) -> per-cell results (``results``). Everything the cluster does goes through
``ClusterOps``, so this module has no client code of its own.

Propagation: after a step, only cells that disagree with the evaluator are probed again, with
backoff, until they agree or a deadline passes; attempts and time to converge are kept per cell.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import shlex
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import tenacity

from conformance.api.adminpol import AdminPolicy, parse_admin_policy
from conformance.api.kinds import is_admin_kind
from conformance.api.model import (
    NAMESPACE_NAME_LABEL,
    ClusterState,
    ExternalHost,
    IPAddress,
    Namespace,
    Pod,
    frozen_labels,
    traffic_path,
)
from conformance.api.netpol import NetworkPolicy, parse_network_policy
from conformance.api.objects import pod_ips, pod_node
from conformance.api.types import AddressFamily, PodKey, is_external_key
from conformance.errors import (
    ClusterError,
    Conflict,
    NotFound,
    PermanentClusterError,
    ScenarioError,
)
from conformance.live.deploy import (
    RUN_LABEL,
    SCOPE_LABEL,
    NameMap,
    carries_labels,
    cluster_scoped_name,
    confine_to_namespaces,
    namespace_manifest,
    pod_manifest,
    probe_container,
    rewrite_policy,
    run_labels,
    service_manifest,
    service_name,
)
from conformance.live.options import Via, external_addresses
from conformance.live.placement import Placement
from conformance.live.probing import Outcome, ProbeTarget, connect_command, kubectl_command
from conformance.live.results import (
    CellResult,
    CellStatus,
    ScenarioResult,
    Status,
    StepResult,
    observed_verdict,
)
from conformance.live.runner import InfrastructureError, RealCell, Runner, Topology
from conformance.reference.evaluator import Evaluator, Verdict
from conformance.reference.expectations import declared_verdicts, is_served
from conformance.reference.sampling import Sample, sample_cells, warmup_sample
from conformance.reference.truthtable import Cell, CellKey, TruthTable
from conformance.scenario.bind import Binder, Binding, BoundStep, pod_key
from conformance.scenario.load import Scenario
from conformance.scenario.schema import SampleSpec


@dataclass
class Deployed:
    """What is deployed for one scenario run: real names, pod IPs, services, policies."""

    names: NameMap
    pods: dict[PodKey, Pod] = field(default_factory=dict)
    """Scenario pod key -> the Pod as deployed (real namespace, IP)."""
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


class ScenarioRun:
    """Carries out one scenario for a ``Runner``; ``teardown()`` removes its namespaces."""

    def __init__(
        self,
        runner: Runner,
        scenario: Scenario,
        suffix: str,
        result: ScenarioResult,
        placement: Placement | None = None,
    ) -> None:
        self.runner = runner
        self.placement = placement or Placement(
            default_selector=runner.options.deploy.node_selector or {}
        )
        self.cluster = runner.cluster
        self.options = runner.options
        self.scenario = scenario
        self.result = result
        self.labels = run_labels(runner.run_id, scenario.name)
        self.scope = suffix
        self.own_scope = suffix
        # Bound offline (once per scenario, shared with loading): what to deploy (pods, labels,
        # ports) and what each step probes.
        self.offline_binding = scenario.offline_binding()
        self.external_addresses = {
            n: external_addresses(n, t) for n, t in self.options.externals.items()
        }
        """``--external`` addresses by endpoint name (one per family, the primary first)."""
        self.initial = scenario.initial_state(self.offline_binding)
        self.offline_steps = scenario.offline_steps
        self.grids = {g for s in self.offline_steps for g in s.grids}
        """Every (port, protocol, family) any step probes (the warm-up probes them)."""
        self.probed = sorted({(g.port, g.protocol) for g in self.grids})
        """Every (port, protocol) any step probes: the per-pod Services expose them."""
        # Bound live once per step, in order, as the cluster gives pods their addresses.
        self.binder: Binder | None = None
        self.live = Deployed(NameMap.for_run(suffix, [n.name for n in self.initial.namespaces]))
        self.changed_at = time.monotonic()
        """When the API last accepted a change of this run (``converged_after_s`` counts from it)."""
        self.warmed: set[PodKey] = set()
        """Pods the warm-up found fully connected (before the first step, no policies)."""
        result.namespaces = dict(self.live.names.forward)
        self.signature = self._signature()
        """What this scenario deploys, to share its pods ("" when they cannot be shared)."""
        self.topology: Topology | None = None
        """The deployed namespaces and pods, once they may be handed to a later scenario."""
        self.finished = False
        self.previous_sample: Sample | None = None
        """The sample of the step before (its verdicts of every cell tell what a step changed)."""

    # -- lifecycle ---------------------------------------------------------------------------
    def execute(self) -> None:
        if not self._adopt():
            self.runner.progress(f"{self.scenario.name}: deploying")
            for ns in self.initial.namespaces:
                self._create_namespace(ns.name, ns.labels)
            self._create_pods(self.initial.pods)
            self._warm_up()
            if self.signature:
                self.topology = Topology(
                    self.signature,
                    self.scope,
                    self.live.names,
                    dict(self.live.pods),
                    dict(self.live.service_ips),
                    dict(self.result.nodes),
                )
        self.warmed = set(self.live.pods)
        for index in range(len(self.offline_steps)):
            self.result.steps.append(self._step(index))
        self.finished = True

    def teardown(self) -> None:
        """Hand the pods to a later scenario of the same topology once this one's policies are
        deleted; otherwise (or when that fails) delete the namespaces."""
        if self.topology is not None and self.finished and not self.runner.stopping.is_set():
            try:
                self.topology.deleted = self._delete_policies()
            except ClusterError:
                pass
            else:
                self.runner.give_topology(self.topology)
                return
        for real in self.live.names.forward.values():
            with contextlib.suppress(ClusterError):  # a later `clean` finds it by label
                self.cluster.delete("Namespace", None, real)

    # -- pod reuse ----------------------------------------------------------------------------
    def _signature(self) -> str:
        """What this scenario would create (namespaces, pod manifests, Services), as text; ""
        when its pods cannot be shared: steps that add or remove namespaces or pods, host-network
        pods, --keep, --no-reuse."""
        steps = self.scenario.spec.steps
        if (
            self.options.no_reuse
            or self.options.keep
            or any(s.add_namespaces or s.add_pods or s.remove_pods for s in steps)
            # Host-network pods hold ports on their node: idle, they would keep another
            # scenario's host-network pods from being scheduled.
            or self.scenario.uses_host_network
        ):
            return ""
        return json.dumps(
            [
                [[ns.name, sorted(ns.labels.items())] for ns in self.initial.namespaces],
                # With the node each pod is placed on: scenarios that place pods differently
                # never share them (their paths would differ).
                [
                    pod_manifest(
                        p, p.namespace, {}, self.options.deploy, self.placement.selector(p.node)
                    )
                    for p in self.initial.pods
                ],
                str(self.options.via),
                self.probed,
            ],
            sort_keys=True,
            default=str,
        )

    def _adopt(self) -> bool:
        """Take over an idle topology of the same signature whose slate is clean; one that is
        not is deleted (and the next tried). False: deploy fresh pods."""
        if not self.signature:
            return False
        while (topology := self.runner.take_topology(self.signature)) is not None:
            self.runner.progress(f"{self.scenario.name}: reusing pods ({topology.scope})")
            self.live = Deployed(topology.names, dict(topology.pods), dict(topology.service_ips))
            self.scope = topology.scope
            self.result.namespaces = dict(topology.names.forward)
            self.result.nodes = dict(topology.nodes)
            try:
                self._clean_slate(topology)
            except (ClusterError, InfrastructureError) as exc:
                self.runner.progress(f"{self.scenario.name}: not reusing pods: {exc}")
                for real in topology.names.forward.values():
                    with contextlib.suppress(ClusterError):
                        self.cluster.delete("Namespace", None, real)
                continue
            self.topology = topology
            self.result.pods_reused = len(topology.pods)
            return True
        self.scope = self.own_scope
        self.live = Deployed(NameMap.for_run(self.scope, [n.name for n in self.initial.namespaces]))
        self.result.namespaces = dict(self.live.names.forward)
        self.result.nodes = {}
        return False

    def _clean_slate(self, topology: Topology) -> None:
        """Make a taken-over topology look freshly deployed, checked on the API, or raise: no
        policy left in its namespaces and none of the cluster-scoped ones its last user deleted,
        the labels as created (restored if a step changed them), every pod ready at its address,
        and the warm-up's full connectivity again (so a policy still enforced after its delete
        fails here instead of changing this scenario's results)."""
        for real in topology.names.forward.values():
            left = self.cluster.list_items("NetworkPolicy", real)
            if left:
                name = (left[0].get("metadata") or {}).get("name")
                raise InfrastructureError(f"NetworkPolicy {real}/{name} of an earlier scenario")
        for kind, name in topology.deleted:
            try:
                self.cluster.get(kind, None, name)
            except NotFound:
                continue
            raise InfrastructureError(f"{kind} {name} of an earlier scenario still exists")
        owned = {**self.labels, SCOPE_LABEL: self.scope}
        want: dict[tuple[str, str | None, str], dict[str, str]] = {}
        for ns in self.initial.namespaces:
            real = topology.names.real(ns.name)
            want[("Namespace", None, real)] = namespace_manifest(real, ns.labels, owned)[
                "metadata"
            ]["labels"]
        for pod in self.initial.pods:
            real_ns = topology.names.real(pod.namespace)
            manifest = pod_manifest(pod, real_ns, self.labels, self.options.deploy)
            want[("Pod", real_ns, pod.name)] = manifest["metadata"]["labels"]
        objects = self._restore_labels(want)
        for pod in self.initial.pods:
            real_ns = topology.names.real(pod.namespace)
            status = objects[("Pod", real_ns, pod.name)].get("status") or {}
            ip = status.get("podIP")
            if status.get("phase") != "Running" or ip != str(topology.pods[pod.key].ip):
                raise InfrastructureError(
                    f"pod {real_ns}/{pod.name} is {status.get('phase')} at {ip}, not as deployed"
                )
        # Deletes propagate like any change: allow them the convergence deadline, not more.
        self._warm_up(self.options.convergence_deadline_s)

    def _restore_labels(
        self, want: Mapping[tuple[str, str | None, str], Mapping[str, str]]
    ) -> dict[tuple[str, str | None, str], dict[str, Any]]:
        """Patch the labels of each object (kind, namespace, name) back to ``want`` (the
        automatic namespace-name label aside) and read them back; the objects as read back.
        NotFound when one is missing, InfrastructureError when its labels still differ."""
        objects = self._read_objects(want)
        patches = []
        for ident, labels in want.items():
            have = _own_labels(objects[ident])
            if have != dict(labels):
                patch: dict[str, str | None] = {k: None for k in have if k not in labels}
                patch.update(labels)
                patches.append((ident, patch))
        if not patches:
            return objects
        for (kind, namespace, name), patch in patches:
            self.cluster.patch_labels(kind, namespace, name, patch)
        self.changed_at = time.monotonic()
        objects = self._read_objects(want)
        for ident, labels in want.items():
            if _own_labels(objects[ident]) != dict(labels):
                kind, namespace, name = ident
                where = f"{namespace}/{name}" if namespace else name
                raise InfrastructureError(f"{kind} {where} labels could not be restored")
        return objects

    def _read_objects(
        self, idents: Iterable[tuple[str, str | None, str]]
    ) -> dict[tuple[str, str | None, str], dict[str, Any]]:
        """The objects (kind, namespace, name) as the API has them: pods by one list per
        namespace, anything else by a get each; NotFound when one is missing."""
        out: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        listed: dict[str, dict[str, dict[str, Any]]] = {}
        for ident in idents:
            kind, namespace, name = ident
            if kind != "Pod" or namespace is None:
                out[ident] = self.cluster.get(kind, namespace, name)
                continue
            if namespace not in listed:
                listed[namespace] = {
                    str((item.get("metadata") or {}).get("name")): item
                    for item in self.cluster.list_items("Pod", namespace)
                }
            if name not in listed[namespace]:
                raise NotFound(f"pod {namespace}/{name} not found: its namespace lists no such pod")
            out[ident] = listed[namespace][name]
        return out

    def _delete_policies(self) -> list[tuple[str, str]]:
        """Delete every policy this scenario has in force; the cluster-scoped ones (kind, name)."""
        cluster_scoped = []
        for ident in list(self.live.policies):
            kind, namespace, name = ident
            with contextlib.suppress(NotFound):
                self.cluster.delete(kind, namespace or None, name)
            if not namespace:
                cluster_scoped.append((kind, name))
            del self.live.policies[ident]
        return cluster_scoped

    def _create_namespace(self, name: str, labels: Mapping[str, str]) -> None:
        self.runner.check()
        self.live.names = self.live.names.with_namespace(name)
        self.result.namespaces = dict(self.live.names.forward)
        self.cluster.create(
            namespace_manifest(
                self.live.names.real(name), labels, {**self.labels, SCOPE_LABEL: self.scope}
            )
        )
        self.changed_at = time.monotonic()

    def _create_pods(self, pods: Iterable[Pod]) -> None:
        pods = list(pods)
        for pod in pods:
            self.runner.check()
            real_ns = self.live.names.real(pod.namespace)
            selector = self.placement.selector(pod.node)
            self.cluster.create(
                pod_manifest(pod, real_ns, self.labels, self.options.deploy, selector)
            )
            self.result.pods_created += 1
            if self.options.via == Via.SERVICE:
                service = service_manifest(pod, real_ns, self.labels, self.probed)
                if service is not None:
                    self.cluster.create(service)
            self.changed_at = time.monotonic()
        waiting = time.monotonic()
        try:
            self._wait_ready(pods)
        finally:
            self.result.ready_wait_s = round(
                self.result.ready_wait_s + time.monotonic() - waiting, 3
            )

    def _wait_ready(self, pods: list[Pod]) -> None:
        pending = {p.key: p for p in pods}
        last: dict[PodKey, str] = {}

        def check() -> None:
            self.runner.check()
            for key in list(pending):
                pod = pending[key]
                real_ns = self.live.names.real(pod.namespace)
                obj = self.cluster.get("Pod", real_ns, pod.name)
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
                    primary, extra = pod_ips(obj)
                    self.live.pods[key] = Pod(
                        real_ns,
                        pod.name,
                        pod.labels,
                        pod.ports,
                        primary,
                        pod.host_network,
                        pod_node(obj),
                        extra,
                    )
                    if pod_node(obj):
                        self.result.nodes[key] = str(pod_node(obj))
                    self._check_node(pod, pod_node(obj))
                    del pending[key]
                else:
                    last[key] = f"phase {phase or 'unknown'}; {_pod_problem(status) or 'not ready'}"
            if pending:
                raise _NotYet()

        try:
            tenacity.Retrying(
                retry=tenacity.retry_if_exception_type(_NotYet),
                stop=tenacity.stop_after_delay(self.options.ready_timeout_s),
                wait=tenacity.wait_exponential(multiplier=0.05, max=2),
                reraise=True,
            )(check)
        except _NotYet:
            key = next(iter(pending))
            real_ns = self.live.names.real(pending[key].namespace)
            events = self.cluster.events_for(real_ns, pending[key].name)
            raise InfrastructureError(
                f"pod {real_ns}/{pending[key].name} not ready after {self.options.ready_timeout_s:.0f} s "
                f"({last.get(key, '')}{'; last event: ' + events[-1] if events else ''})"
            ) from None
        if self.options.via == Via.SERVICE:
            for pod in pods:
                if pod.ports or self.probed:
                    svc = self.cluster.get(
                        "Service", self.live.names.real(pod.namespace), service_name(pod.name)
                    )
                    self.live.service_ips[pod.key] = str(
                        (svc.get("spec") or {}).get("clusterIP", "")
                    )

    def _check_node(self, pod: Pod, ran_on: str | None) -> None:
        """Note a pod that runs elsewhere than it was placed (its cells' paths are where it ran)."""
        asked = self.placement.asked(pod.node)
        if asked is not None and ran_on != asked:
            self.result.notes.append(
                f"warning: pod {pod.key} was placed on {asked} (scenario node {pod.node}) but "
                f"runs on {ran_on or 'no node'}: the cluster did not honour its nodeSelector; "
                "its cells' paths are where it ran"
            )

    # -- binding ------------------------------------------------------------------------------
    def _binding(self) -> Binding:
        """Real namespace names and pod IPs so far (offline stand-ins for pods not yet created)."""
        offline = self.offline_binding
        ips = dict(offline.pod_ips)
        ips.update({k: p.ip for k, p in self.live.pods.items() if p.ip is not None})
        first = next((p.ip for p in self.live.pods.values() if p.ip is not None), None)
        cidr = offline.pod_cidr
        if first is not None:
            cidr = ipaddress.ip_network(f"{first}/{16 if first.version == 4 else 64}", strict=False)
        given = self.external_addresses
        externals = {name: addrs[0] for name, addrs in given.items()} or dict(offline.external_ips)
        external_extra = {**offline.external_extra_ips}
        external_extra.update({n: a[1:] for n, a in given.items() if len(a) > 1})
        extra = dict(offline.pod_extra_ips)
        for k, p in self.live.pods.items():
            # A single-stack cluster gives no address of the other family: placeholders keep
            # the offline one (it matches nothing there; those cells are reported unsupported).
            extra[k] = p.extra_ips or offline.pod_extra_ips.get(k, ())
        return Binding(
            dict(self.live.names.forward),
            ips,
            {**offline.external_ips, **externals},
            cidr,
            # Where the pods actually run, on the nodes the cluster has (the scenario's node
            # names are placement wishes; see docs/scenarios.md).
            {k: p.node for k, p in self.live.pods.items() if p.node is not None},
            self.runner.nodes,
            extra,
            external_extra,
        )

    def _bind(self, index: int) -> BoundStep:
        """Step ``index`` bound against the live cluster (each step exactly once, in order)."""
        if self.binder is None:
            self.binder = Binder(self.scenario, self._binding())
        return self.binder.bind_step(index, self._binding())

    # -- warm-up ------------------------------------------------------------------------------
    def _warm_up(self, deadline_s: float | None = None) -> None:
        """With no policies every served cell must connect (within ``deadline_s``, by default
        ``--warmup-deadline``); otherwise stop before any policy."""
        grids = self.grids
        cells = [
            (src, dst, g)
            for src in self.live.pods.values()
            for dst in self.live.pods.values()
            for g in grids
            # Families a pod has no address of are reported per cell, not warmed up.
            if src.key != dst.key
            and dst.serves(g.port, g.protocol)
            and self._host(dst, g.family) is not None
            and src.address(g.family) is not None
        ]
        if not cells:
            return
        spec = self._sample_spec(None)
        if spec is not None:
            cells = warmup_sample(cells, spec.cells, spec.seed)
        self.runner.progress(f"{self.scenario.name}: warm-up ({len(cells)} probes)")
        pending = {RealCell(s.key, d.key, *g): (s, d) for s, d, g in cells}
        allowed = self.options.warmup_deadline_s if deadline_s is None else deadline_s
        deadline = time.monotonic() + allowed
        problem = ""
        while pending:
            results = self.runner.probe(
                [
                    (cell, probe_container(s), str(self._host(d, cell.family)))
                    for cell, (s, d) in pending.items()
                ]
            )
            for cell, res in results.items():
                if res.outcome is Outcome.UNSUPPORTED:
                    self.runner.unsupported.setdefault(cell.protocol, res.detail)
                if res.outcome in (Outcome.CONNECTED, Outcome.UNSUPPORTED):
                    pending.pop(cell, None)
                else:
                    problem = f"{cell.source} -> {cell.target} {cell.port}/{cell.protocol}: {res.outcome} {res.detail}".strip()
            if pending and time.monotonic() > deadline:
                raise InfrastructureError(
                    f"warm-up without policies: {len(pending)} probes did not connect within "
                    f"{allowed:.0f} s, e.g. {problem}; the cluster blocks traffic "
                    "before any policy is applied, so results would be meaningless"
                )
            if pending:
                time.sleep(0.5)

    def _sample_spec(self, bound: BoundStep | None) -> SampleSpec | None:
        """The step's ``probe.sample`` (the first sampled step's for the warm-up) as ``--sample``
        and ``--sample-seed`` override it; None: probe every cell."""
        if bound is not None:
            spec = bound.sample
        else:
            spec = next((s.sample for s in self.offline_steps if s.sample is not None), None)
        if self.options.sample == 0:
            return None
        if self.options.sample > 0:
            spec = SampleSpec(cells=self.options.sample, seed=spec.seed if spec else 0)
        if spec is not None and self.options.sample_seed >= 0:
            spec = SampleSpec(cells=spec.cells, seed=self.options.sample_seed)
        return spec

    def _host(self, pod: Pod, family: AddressFamily) -> str | None:
        """The address to probe ``pod`` at over ``family``; None when it has none of that
        family (a single-stack cluster, or a single-stack Service)."""
        if self.options.via == Via.SERVICE:
            scen = f"{self.live.names.scenario(pod.namespace)}/{pod.name}"
            if scen in self.live.service_ips:
                svc = self.live.service_ips[scen]
                return svc if ipaddress.ip_address(svc).version == family.version else None
        ip = pod.address(family)
        return None if ip is None else str(ip)

    # -- steps --------------------------------------------------------------------------------
    def _step(self, index: int) -> StepResult:
        self.runner.check()
        spec = self.scenario.spec.steps[index]
        self.runner.progress(
            f"{self.scenario.name}: step {index + 1}/{len(self.scenario.spec.steps)}: {spec.name}"
        )
        started = time.monotonic()
        result = StepResult(index, spec.name, Status.PASS)
        try:
            bound = self._apply_changes(index)
            result.policies = [dict(o) for o in self.live.policies.values()]
            result.cells = self._probe_step(bound, self._verdicts_before(index), result)
        except (ClusterError, InfrastructureError) as exc:
            result.status = Status.ERROR
            result.message = str(exc)
        except ScenarioError as exc:
            result.status = Status.ERROR
            result.message = f"scenario could not be bound to the cluster: {exc}"
        result.duration_s = round(time.monotonic() - started, 3)
        result.settle(self.options.convergence_deadline_s)
        return result

    def _apply_changes(self, index: int) -> BoundStep:
        """Carry out the step's changes in the documented order; returns the step bound live."""
        step = self.scenario.spec.steps[index]
        for ns, ns_spec in step.add_namespaces.items():
            self._create_namespace(ns, ns_spec.labels)
        names = self.live.names
        wanted = {pod_key(s) for s in step.add_pods}
        added = [p for p in self.offline_steps[index].state.pods if p.key in wanted]
        if added:
            self._create_pods(added)
        for key in step.remove_pods:
            ns, pod = key.split("/", 1)
            self.cluster.delete("Pod", names.real(ns), pod)
            self.changed_at = time.monotonic()
            self.live.pods.pop(key, None)
            self._wait_gone(names.real(ns), pod)
        for ns, patch in step.label_namespaces.items():
            self.cluster.patch_labels("Namespace", None, names.real(ns), patch)
            self.changed_at = time.monotonic()
        for key, patch in step.label_pods.items():
            ns, pod = key.split("/", 1)
            self.cluster.patch_labels("Pod", names.real(ns), pod, patch)
            self.changed_at = time.monotonic()
            live = self.live.pods[key]
            labels = {**live.labels, **{k: v for k, v in patch.items() if v is not None}}
            for k, v in patch.items():
                if v is None:
                    labels.pop(k, None)
            self.live.pods[key] = replace(live, labels=frozen_labels(labels))
        bound = self._bind(index)
        self._reconcile_policies(bound)
        return bound

    def _wait_gone(self, namespace: str, name: str) -> None:
        deadline = time.monotonic() + self.options.ready_timeout_s
        while time.monotonic() < deadline:
            try:
                self.cluster.get("Pod", namespace, name)
            except NotFound:
                return
            time.sleep(0.1)
        raise InfrastructureError(
            f"pod {namespace}/{name} still exists {self.options.ready_timeout_s:.0f} s after delete"
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
        lock = threading.Lock()

        def accepted() -> None:
            with lock:
                self.changed_at = max(self.changed_at, time.monotonic())

        def delete(ident: tuple[str, str, str]) -> None:
            self.cluster.delete(ident[0], ident[1] or None, ident[2])
            accepted()
            with lock:
                del self.live.policies[ident]

        def write(item: tuple[tuple[str, str, str], dict[str, Any]]) -> None:
            ident, obj = item
            self.runner.check()
            if ident not in self.live.policies and not ident[1]:
                self._create_cluster_scoped(ident, obj)
            else:
                self.cluster.apply(obj)
            accepted()
            with lock:
                self.live.policies[ident] = obj

        # Deletes first (a name may come back as a new object), then the writes; each batch
        # concurrently, since the order within a step changes nothing the step probes.
        _concurrently(delete, [i for i in self.live.policies if i not in desired])
        _concurrently(write, [(i, o) for i, o in desired.items() if self.live.policies.get(i) != o])

    def _create_cluster_scoped(self, ident: tuple[str, str, str], obj: dict[str, Any]) -> None:
        """Create a cluster-scoped policy; replace one of that name only if this run made it.

        Why: the v1alpha1 BANP is a singleton named ``default``; a user's own BANP must never be
        replaced (and later deleted by cleanup) because a scenario needed the name."""
        try:
            self.cluster.create(obj)
            return
        except Conflict:
            pass
        current = self.cluster.get(ident[0], None, ident[2])
        if not carries_labels(current, f"{RUN_LABEL}={self.runner.run_id}"):
            raise PermanentClusterError(
                f"refusing to replace {ident[0]} {ident[2]!r}: it exists and this run did not "
                "create it (no label "
                f"{RUN_LABEL}={self.runner.run_id}); delete it yourself or use another cluster"
            )
        self.cluster.apply(obj)

    # -- evaluation against the live state and probing ----------------------------------------
    def _live_state(self) -> ClusterState:
        namespaces = []
        for real in self.live.names.forward.values():
            obj = self.cluster.get("Namespace", None, real)
            namespaces.append(
                Namespace(real, frozen_labels((obj.get("metadata") or {}).get("labels") or {}))
            )
        pods = []
        # One list per namespace instead of one get per pod.
        listed = self._read_objects(("Pod", p.namespace, p.name) for p in self.live.pods.values())
        for pod in self.live.pods.values():
            obj = listed[("Pod", pod.namespace, pod.name)]
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
                    pod_node(obj),
                    pod_ips(obj)[1],
                )
            )

        def addresses(e: ExternalHost) -> tuple[IPAddress, ...]:
            return self.external_addresses.get(e.name) or (e.ip, *e.extra_ips)

        externals = tuple(
            ExternalHost(e.name, addresses(e)[0], e.ports, addresses(e)[1:])
            for e in self.initial.externals
        )
        return ClusterState(tuple(namespaces), tuple(pods), externals, self.runner.nodes)

    def _live_policies(self) -> list[NetworkPolicy | AdminPolicy]:
        """The deployed objects, typed (they were validated offline, so parsing cannot fail)."""
        return [
            parse_network_policy(obj)
            if obj.get("kind") == "NetworkPolicy"
            else parse_admin_policy(obj)
            for obj in self.live.policies.values()
        ]

    def _verdicts_before(self, index: int) -> dict[CellKey, Verdict]:
        """Per cell, the verdict before step ``index``'s changes: the previous step's expected
        verdict, and allow between the warm-up's pods before the first step (no policies). A
        mismatch equal to it may be a change not yet propagated."""
        if index == 0:
            return {
                (s, t, g.port, g.protocol, g.family): Verdict.ALLOW
                for s in self.warmed
                for t in self.warmed
                for g in self.grids
                if s != t
            }
        before: dict[CellKey, Verdict] = {}
        for c in self.result.steps[index - 1].cells if index - 1 < len(self.result.steps) else ():
            if c.expected in (Verdict.ALLOW, Verdict.DENY):
                before[(c.source, c.target, c.port, c.protocol, c.family)] = c.expected
        return before

    def _probe_step(
        self, bound: BoundStep, before: Mapping[CellKey, Verdict], result: StepResult
    ) -> list[CellResult]:
        state = self._live_state()
        previous_sample = self.previous_sample
        table, real = self._expected_live(bound, state, previous_sample)
        self.previous_sample = table.sample
        if table.sample is not None:
            result.sample = table.sample.summary()
            self.runner.progress(f"{self.scenario.name}: {table.sample.describe()}")
        declared = declared_verdicts(bound, table) if bound.expect is not None else {}
        cells: dict[RealCell, CellResult] = {}
        to_probe: list[tuple[RealCell, str, str]] = []
        real_pods = {p.key: p for p in state.pods}
        for cell in table:
            rc = real[cell.key]
            d = declared.get(cell.key)
            target_host = self._target_host(rc.target, real_pods, cell.family)
            res = CellResult(
                cell.source,
                cell.target,
                cell.port,
                cell.protocol,
                cell.verdict,
                cell.served,
                cell.decision.reason if cell.decision else "",
                declared=d[0] if d else None,
                path=cell.path,
                family=cell.family,
            )
            cells[rc] = res
            previous = before.get(cell.key)
            if previous is None and previous_sample is not None:
                # A cell the step before left out of its sample: the reference's verdict there.
                previous = previous_sample.verdict(rc)
            res.changed = (
                previous is not None
                and previous != cell.verdict
                and cell.verdict
                in (
                    Verdict.ALLOW,
                    Verdict.DENY,
                )
            )
            if cell.verdict is Verdict.IMPLEMENTATION_DEFINED:
                res.status = CellStatus.IGNORED
                continue
            src_pod = real_pods.get(rc.source)
            if src_pod is None:
                # An outside client: probed through --outside-exec (the embedded cluster's own).
                if self.options.via == Via.SERVICE and not is_external_key(rc.target):
                    res.status = CellStatus.NOT_SUPPORTED
                    res.detail = (
                        f"{cell.source} is an outside client: a ClusterIP Service is reachable "
                        "from inside the cluster only, so --via service cannot probe this cell"
                    )
                    continue
                if self.runner.outside is None:
                    res.status = CellStatus.NOT_SUPPORTED
                    res.detail = (
                        f"{cell.source} is an outside client and no --outside-exec says how to "
                        "probe from outside this cluster; `evaluate` checks this cell offline"
                    )
                    continue
                if self._target_host(rc.source, real_pods, cell.family) is None:
                    res.status = CellStatus.NOT_SUPPORTED
                    res.detail = f"{cell.source} has no {cell.family} address on this cluster"
                    continue
            elif src_pod.address(cell.family) is None:
                res.status = CellStatus.NOT_SUPPORTED
                res.detail = f"{cell.source} has no {cell.family} address on this cluster"
                continue
            if cell.protocol in self.runner.unsupported:
                res.status = CellStatus.NOT_SUPPORTED
                res.detail = f"{cell.protocol} is not supported by this cluster: {self.runner.unsupported[cell.protocol]}"
                continue
            if target_host is None:
                res.status = CellStatus.NOT_SUPPORTED
                if is_external_key(rc.target) and rc.target[1:] not in self.options.externals:
                    res.detail = f"external endpoint {cell.target} has no address on this cluster (use --external NAME=IP)"
                else:
                    res.detail = f"{cell.target} has no {cell.family} address on this cluster"
                continue
            target = ProbeTarget("", target_host, cell.port, cell.protocol)
            if src_pod is None:
                assert self.runner.outside is not None
                res.command = shlex.join(
                    self.runner.outside.argv(
                        rc.source[1:], connect_command(target, self.options.probe_timeout_s)
                    )
                )
                to_probe.append((rc, "", target_host))
                continue
            res.command = kubectl_command(
                src_pod.namespace,
                src_pod.name,
                probe_container(src_pod),
                target,
                self.options.probe_timeout_s,
                context=self.cluster.context,
                kubeconfig=self.cluster.kubeconfig,
            )
            to_probe.append((rc, probe_container(src_pod), target_host))
        self._observe(cells, to_probe, before)
        return list(cells.values())

    def _expected_live(
        self, bound: BoundStep, state: ClusterState, previous: Sample | None = None
    ) -> tuple[TruthTable, dict[CellKey, RealCell]]:
        """The step's expected table in scenario names, each cell decided once by the evaluator
        on the *live* state and objects (real names, labels, IPs), reasons renamed back; only
        the cells of its sample when the step is sampled (``previous``: the step before's)."""
        names = self.live.names

        def real_key(key: str) -> str:
            if key.startswith("@"):
                return key
            ns, pod = key.split("/", 1)
            return f"{names.real(ns)}/{pod}"

        policies = self._live_policies()
        evaluator = Evaluator(state, policies, include_self=self.options.include_self)
        spec = self._sample_spec(bound)
        sample = None
        if spec is not None:
            sample = sample_cells(
                state,
                policies,
                [real_key(s) for s in bound.sources],
                [real_key(t) for t in bound.targets],
                bound.grids,
                cells=spec.cells,
                seed=spec.seed,
                include_self=self.options.include_self,
                previous=previous,
            )
        cells: dict[CellKey, Cell] = {}
        real: dict[CellKey, RealCell] = {}
        for port, proto, family in bound.grids:
            for s in bound.sources:
                for t in bound.targets:
                    rc = RealCell(real_key(s), real_key(t), port, proto, family)
                    if sample is not None and rc not in sample.cells:
                        continue
                    decision = evaluator.decide(*rc).renamed(self.live.scenario_name)
                    served = is_served(bound.state, t, port, proto)
                    path = traffic_path(state.endpoint(rc.source), state.endpoint(rc.target))
                    key = (s, t, port, proto, family)
                    cells[key] = Cell(
                        s, t, port, proto, decision.verdict, served, decision, path, family
                    )
                    real[key] = rc
        return TruthTable(bound.sources, bound.targets, bound.grids, cells, sample), real

    def _target_host(self, key: str, pods: Mapping[str, Pod], family: AddressFamily) -> str | None:
        if key.startswith("@"):
            name = key[1:]
            if name in self.external_addresses:
                given = self.external_addresses[name]
                return next((str(a) for a in given if a.version == family.version), None)
            return None  # real clusters have no simulated hosts: map them with --external
        return self._host(pods[key], family)

    def _observe(
        self,
        cells: dict[RealCell, CellResult],
        to_probe: list[tuple[RealCell, str, str]],
        before: Mapping[CellKey, Verdict],
    ) -> None:
        """Probe every cell, then re-probe those that disagree, with backoff, until they agree or
        the deadline passes. Mismatches that still show the verdict from before the step's
        changes are flagged as possible slow propagation and watched for one more deadline (these
        extra probes decide nothing: the cell stays a mismatch, with ``settled_after_s``)."""
        start = time.monotonic()
        pending = list(to_probe)
        delay = 0.1
        while pending:
            results = self.runner.probe(pending, self._timeouts(cells, pending))
            still = []
            for item in pending:
                cell = cells[item[0]]
                res = results[item[0]]
                started = res.started if res.started is not None else time.monotonic()
                cell.record(res, started - self.changed_at)
                if cell.status in (CellStatus.MISMATCH, CellStatus.CHECK_FAILED):
                    still.append(item)
            pending = still
            if (
                not pending
                or time.monotonic() - start + delay > self.options.convergence_deadline_s
            ):
                break
            time.sleep(delay)
            # At most 0.5 s between attempts: the enforcement latency is exact to about that.
            delay = min(0.5, delay * 2)
        stale = []
        for item in pending:
            cell = cells[item[0]]
            key = (cell.source, cell.target, cell.port, cell.protocol, cell.family)
            if cell.status is CellStatus.MISMATCH and cell.observed_verdict == before.get(key):
                cell.slow_propagation = True
                stale.append(item)
        self._watch_late(cells, stale)

    def _timeouts(
        self, cells: Mapping[RealCell, CellResult], items: list[tuple[RealCell, str, str]]
    ) -> dict[RealCell, float]:
        """Adaptive timeouts: cells the reference denies get ``--deny-timeout`` (a timeout is
        their expected outcome, so a denied cell costs that once per step); every other cell
        keeps ``--probe-timeout``, so an allow slower than the short timeout is never read as a
        deny where the reference allows."""
        short = self.options.deny_probe_s
        return {rc: short for rc, _, _ in items if cells[rc].expected is Verdict.DENY}

    def _watch_late(
        self, cells: dict[RealCell, CellResult], stale: list[tuple[RealCell, str, str]]
    ) -> None:
        """Probe possibly late cells once a second for one more deadline; note when each agrees."""
        grace_end = time.monotonic() + self.options.convergence_deadline_s
        while stale and time.monotonic() < grace_end:
            self.runner.check()
            time.sleep(1.0)
            results = self.runner.probe(stale, self._timeouts(cells, stale))
            still = []
            for item in stale:
                cell, res = cells[item[0]], results[item[0]]
                started = res.started if res.started is not None else time.monotonic()
                if observed_verdict(res.outcome, cell.served) == cell.expected:
                    cell.settled_after_s = round(max(0.0, started - self.changed_at), 3)
                else:
                    if cell.changed:
                        cell.stale_until_s = round(max(0.0, started - self.changed_at), 3)
                    still.append(item)
            stale = still


_T = TypeVar("_T")

WRITERS = 32
"""API writes in flight at once when a step changes many policies (500 sequential writes cost
an API round trip each; the embedded cluster installs a burst of them as one ruleset)."""


def _concurrently(fn: Callable[[_T], None], items: list[_T]) -> None:
    """``fn`` over ``items``, up to ``WRITERS`` at once; the first error is raised once all ran."""
    if len(items) <= 1:
        for item in items:
            fn(item)
        return
    with ThreadPoolExecutor(min(WRITERS, len(items)), thread_name_prefix="writer") as pool:
        for future in [pool.submit(fn, item) for item in items]:
            future.result()


def _own_labels(obj: Mapping[str, Any]) -> dict[str, str]:
    """An object's labels without the automatic namespace-name label."""
    have = dict((obj.get("metadata") or {}).get("labels") or {})
    have.pop(NAMESPACE_NAME_LABEL, None)
    return have


class _NotYet(Exception):
    """Internal: the condition being polled for has not happened yet."""


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
