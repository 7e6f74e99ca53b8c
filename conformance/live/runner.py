"""The runner: runs scenarios on one cluster, side by side, and probes their cells.

``Runner`` owns what scenarios running at once share: the cluster (``ClusterOps``), the probe pool
that bounds execs in flight, the stop flag, the cluster's served kinds, and cleanup by run label.
Each scenario is carried out by a ``ScenarioRun`` (``scenario_run``): deploy -> per step, apply the
changes, bind the step once, evaluate once against the live state, probe -> per-cell results.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import NamedTuple

from conformance import __version__
from conformance.api.kinds import POLICY_KINDS
from conformance.api.model import Node, Pod
from conformance.api.objects import nodes_from_objects
from conformance.api.types import AddressFamily, L4Protocol, PodKey, TargetKey, is_external_key
from conformance.cluster import is_embedded_version
from conformance.errors import ClusterError, ConformanceError, NotFound
from conformance.live.cni import detect_cni
from conformance.live.deploy import RUN_LABEL, TOOL_LABEL, TOOL_NAME, NameMap, carries_labels
from conformance.live.ops import ClusterOps
from conformance.live.options import RunOptions
from conformance.live.outside import EmbeddedOutside, Outside, OutsideExec, embedded_instance
from conformance.live.placement import ClusterNode, Placement, PlacementError, cluster_nodes, place
from conformance.live.probing import (
    Outcome,
    ProbeResult,
    ProbeTarget,
    batch_command,
    batch_seconds,
    parse_batch_output,
)
from conformance.live.results import RunResult, ScenarioResult, Status, now_utc
from conformance.scenario.bind import all_pod_specs
from conformance.scenario.bind import placement as pod_placement
from conformance.scenario.load import Scenario

Progress = Callable[[str], None]

EMBEDDED_CNI = "netpol-conformance embedded dataplane (nftables)"


class RealCell(NamedTuple):
    """A probe cell in the cluster's names: real source pod, real target pod (or ``@external``)."""

    source: PodKey
    target: TargetKey
    port: int
    protocol: L4Protocol
    family: AddressFamily = AddressFamily.IPV4


@dataclass
class Topology:
    """Namespaces and pods one scenario deployed and a later one with the same ``signature`` (the
    objects it would create) may take over, after a clean-slate check."""

    signature: str
    scope: str
    names: NameMap
    pods: dict[PodKey, Pod]
    """Scenario pod key -> the pod as deployed (labels as created, live IPs)."""
    service_ips: dict[PodKey, str] = field(default_factory=dict)
    nodes: dict[str, str] = field(default_factory=dict)
    deleted: list[tuple[str, str]] = field(default_factory=list)
    """Cluster-scoped policies (kind, name) the last user deleted: they must be gone."""


class InfrastructureError(ConformanceError):
    """The cluster could not be brought to a state worth probing (pods not ready, warm-up failed)."""


class RunStopped(Exception):
    """Raised in scenario threads once the run is stopping (Ctrl-C, SIGTERM): create nothing more."""


def delete_labelled(cluster: ClusterOps, selector: str, served_kinds: set[str]) -> list[str]:
    """Delete every namespace and served cluster-scoped policy matching the label selector (the
    namespaces take their pods, services and NetworkPolicies along); "Kind name" for each.

    Each listed object's labels are checked here before it is deleted: a server that ignores
    ``labelSelector`` lists everything, and cleanup must never delete what no run created."""
    removed = []
    for kind in ("Namespace", *[k for k, v in POLICY_KINDS.items() if not v.namespaced]):
        if kind != "Namespace" and kind not in served_kinds:
            continue
        for item in cluster.list_items(kind, None, selector):
            if not carries_labels(item, selector):
                continue
            meta = item["metadata"]
            cluster.delete(kind, meta.get("namespace"), meta["name"])
            removed.append(f"{kind} {meta['name']}")
    return removed


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
        self._cni: str | None = None
        self._version: str | None = None
        self._nodes: tuple[Node, ...] | None = None
        self._placeable: tuple[ClusterNode, ...] | None = None
        self.outside = self._outside_exec()
        # One probe pool for every scenario running at once: it bounds the execs in flight.
        self.pool = ThreadPoolExecutor(
            max_workers=max(1, self.options.parallel), thread_name_prefix="probe"
        )
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        # The v1alpha1 BaselineAdminNetworkPolicy is a cluster singleton named `default`: two
        # scenarios using it cannot run at the same time on one cluster.
        self._banp = threading.Lock()
        # Host-network pods bind their ports on their node, and placement pins them there: two
        # scenarios with such pods at once would wait for each other's ports (unschedulable).
        self._host_network = threading.Lock()
        # Deployed topologies no scenario is using, by signature (scenario_run.Topology).
        self._idle: dict[str, list[Topology]] = {}

    def take_topology(self, signature: str) -> Topology | None:
        """An idle deployed topology with this signature, now owned by the caller (or None)."""
        with self._lock:
            idle = self._idle.get(signature)
            return idle.pop() if idle else None

    def give_topology(self, topology: Topology) -> None:
        """Hand a deployed topology back for a later scenario (``cleanup()`` removes it)."""
        with self._lock:
            self._idle.setdefault(topology.signature, []).append(topology)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _outside_exec(self) -> Outside | None:
        """How to probe from outside clients: ``--outside-exec``, else the embedded cluster's
        simulated hosts, else not at all (those cells are reported not supported)."""
        if self.options.outside_exec:
            return OutsideExec(self.options.outside_exec)
        instance = embedded_instance(self.cluster.context or "")
        return EmbeddedOutside(instance) if instance is not None else None

    def new_result(self) -> RunResult:
        return RunResult(
            run_id=self.run_id,
            context=self.cluster.context,
            server=self.cluster.server,
            server_version=self.server_version,
            tool_version=__version__,
            options=self.options.as_dict(),
            started=now_utc(),
            cni=self.cni,
        )

    @property
    def server_version(self) -> str:
        """The API server's version (asked once)."""
        if self._version is None:
            self._version = self.cluster.server_version()
        return self._version

    @property
    def cni(self) -> str:
        """The CNI from kube-system-style workloads (as ``doctor`` does), detected once; "" when
        it cannot tell (e.g. no RBAC for apps/v1: reports say "not detected")."""
        if self._cni is None:
            self._cni = self._detect_cni()
        return self._cni

    def _detect_cni(self) -> str:
        if is_embedded_version(self.server_version):
            return EMBEDDED_CNI
        try:
            found = detect_cni(
                self.cluster.list_items("DaemonSet"), self.cluster.list_items("Deployment")
            )
        except ClusterError:
            return ""
        return ", ".join(str(c) for c in found)

    # -- cleanup ----------------------------------------------------------------------------
    def cleanup(self) -> list[str]:
        """Delete every namespace and cluster-scoped policy labelled with this run's id."""
        return delete_labelled(self.cluster, f"{RUN_LABEL}={self.run_id}", self.served_kinds)

    @property
    def nodes(self) -> tuple[Node, ...]:
        """The cluster's nodes (labels, InternalIP), listed once; none when they cannot be read
        (no RBAC for nodes, or a cluster that serves none): then ``nodes`` peers stay undecided."""
        self._read_nodes()
        return self._nodes or ()

    def _read_nodes(self) -> None:
        with self._lock:
            if self._nodes is not None:
                return
            try:
                items = self.cluster.list_items("Node")
            except NotFound:  # the cluster serves no Node objects at all
                items = []
            except ClusterError:  # e.g. no RBAC to list nodes: placement is skipped, with a note
                self._nodes, self._placeable = (), None
                return
            self._nodes = nodes_from_objects(items)
            self._placeable = cluster_nodes(items)

    def placement(self, scenario: Scenario) -> Placement:
        """Where the scenario's pods go on this cluster (``live.placement``); PlacementError when
        the cluster has too few schedulable nodes for it or ``--node-map`` names an unknown one."""
        self._read_nodes()
        used = set(pod_placement(scenario.spec).values())  # a node without pods needs none
        return place(
            [name for name in scenario.spec.topology.nodes if name in used],
            self._placeable,
            self.options.node_mapping,
            self.options.deploy.node_selector,
            pins=any(spec.node is not None for _, spec in all_pod_specs(scenario.spec)),
        )

    @property
    def served_kinds(self) -> set[str]:
        """Policy kinds the cluster serves (discovered once)."""
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

        Scenarios start in input order (neighbours in a suite tend to share a topology, so the
        pods one leaves are there for the next), except that one needing a cluster-wide singleton
        another holds (the v1alpha1 BANP, host-network ports) waits in the queue, not in a worker:
        the others go on meanwhile (see ``_next``).

        If the caller is interrupted (KeyboardInterrupt, or SIGTERM turned into one), running
        scenarios stop at their next cluster change and remove what they made before the
        interrupt propagates; ``cleanup()`` then removes anything left by label.
        """
        futures: list[Future[ScenarioResult]] = [Future() for _ in scenarios]
        queue = list(range(len(scenarios)))
        needs = [self._singletons(sc) for sc in scenarios]
        ready = threading.Condition()

        def work() -> None:
            while True:
                with ready:
                    while True:
                        if self.stopping.is_set():
                            for index in queue:  # queued scenarios never start
                                futures[index].set_exception(RunStopped())
                            queue.clear()
                        if not queue:
                            return
                        picked = self._next(queue, needs)
                        if picked is not None:
                            break
                        ready.wait(0.2)
                    index, held = picked
                    queue.remove(index)
                fut = futures[index]
                try:
                    if fut.set_running_or_notify_cancel():
                        try:
                            fut.set_result(self._run_scenario(scenarios[index]))
                        except BaseException as exc:  # handed to the caller's thread
                            fut.set_exception(exc)
                finally:
                    for lock in held:
                        lock.release()
                    with ready:
                        ready.notify_all()

        workers = [
            threading.Thread(target=work, name=f"scenario-{n}", daemon=True)
            for n in range(max(1, min(jobs, len(scenarios))))
        ]
        for worker in workers:
            worker.start()
        try:
            for fut in futures:
                # Wake up now and then: an interrupt is handled when this thread runs Python.
                while not fut.done():
                    wait([fut], timeout=0.2)
                on_result(fut.result())
        except BaseException:
            self.stopping.set()
            raise
        finally:
            with ready:
                ready.notify_all()
            for worker in workers:
                worker.join()

    @staticmethod
    def _next(
        queue: Sequence[int], needs: Sequence[list[threading.Lock]]
    ) -> tuple[int, list[threading.Lock]] | None:
        """The first queued scenario whose singletons are free, with their locks now held; one
        that needs a singleton comes before others, so the scenarios that must run one after
        another start as early as they can. None: every queued one waits for a singleton."""
        for want_lock in (True, False):
            for index in queue:
                locks = needs[index]
                if bool(locks) != want_lock:
                    continue
                held: list[threading.Lock] = []
                for lock in locks:  # always in this order: no deadlock
                    if not lock.acquire(blocking=False):
                        break
                    held.append(lock)
                else:
                    return index, held
                for lock in held:
                    lock.release()
        return None

    def _singletons(self, scenario: Scenario) -> list[threading.Lock]:
        """Locks of the cluster-wide singletons the scenario uses, in the order they are taken."""
        locks = []
        if "BaselineAdminNetworkPolicy" in scenario.policy_kinds:
            locks.append(self._banp)
        if scenario.uses_host_network:
            locks.append(self._host_network)
        return locks

    # -- one scenario -----------------------------------------------------------------------
    def run_scenario(self, scenario: Scenario) -> ScenarioResult:
        with contextlib.ExitStack() as held:  # always in this order: no deadlock
            for lock in self._singletons(scenario):
                held.enter_context(lock)
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
        foreign = self._foreign_singleton(scenario)
        if foreign:
            result.status = Status.SKIPPED
            result.message = foreign
            return result
        try:
            placement = self.placement(scenario)
        except PlacementError as exc:
            result.status = Status.ERROR
            result.message = f"cannot place the scenario's pods: {exc}"
            return result
        if placement.note:
            result.notes.append(placement.note)
        result.node_map = dict(placement.nodes)
        from conformance.live.scenario_run import ScenarioRun  # it needs this module's types

        run = ScenarioRun(self, scenario, f"{self.run_id}-{count}", result, placement)
        try:
            run.execute()
        except (ClusterError, InfrastructureError) as exc:
            result.status = Status.ERROR
            result.message = str(exc)
        finally:
            if not self.options.keep:
                run.teardown()
        result.settle()
        return result

    def _foreign_singleton(self, scenario: Scenario) -> str:
        """Why the scenario cannot run without touching an object this run did not create ("" if
        it can): the v1alpha1 BaselineAdminNetworkPolicy is a singleton named ``default``."""
        if "BaselineAdminNetworkPolicy" not in scenario.policy_kinds:
            return ""
        try:
            current = self.cluster.get("BaselineAdminNetworkPolicy", None, "default")
        except NotFound:
            return ""
        except ClusterError as exc:
            return (
                f"skipped: cannot tell whether a BaselineAdminNetworkPolicy 'default' exists: {exc}"
            )
        if carries_labels(current, f"{RUN_LABEL}={self.run_id}"):
            return ""  # an earlier scenario of this run made it; cleanup removes it
        labels = (current.get("metadata") or {}).get("labels") or {}
        origin = (
            f"an earlier run ({RUN_LABEL}={labels[RUN_LABEL]}) left it: remove it with "
            f"`netpol-conformance clean --run-id {labels[RUN_LABEL]}`"
            if labels.get(TOOL_LABEL) == TOOL_NAME and labels.get(RUN_LABEL)
            else "this run did not create it, so it is left alone"
        )
        return (
            "skipped: the cluster already has a BaselineAdminNetworkPolicy 'default' (a "
            f"singleton the scenario would replace and then delete); {origin}"
        )

    def _missing_kinds(self, scenario: Scenario) -> set[str]:
        kinds = scenario.policy_kinds - {"NetworkPolicy"}
        return set(kinds - self.served_kinds) if kinds else set()

    # -- probing ------------------------------------------------------------------------------
    def probe(
        self,
        cells: Iterable[tuple[RealCell, str, str]],
        timeouts: Mapping[RealCell, float] | None = None,
    ) -> dict[RealCell, ProbeResult]:
        """Probe cells (cell, source container, target host): one exec per source pod, in
        parallel; a probe waits ``timeouts[cell]``, else ``--probe-timeout``."""
        timeouts = timeouts or {}
        by_source: dict[PodKey, list[tuple[RealCell, str]]] = {}
        containers: dict[PodKey, str] = {}
        for cell, container, host in cells:
            by_source.setdefault(cell.source, []).append((cell, host))
            containers[cell.source] = container
        futures = {
            src: self.pool.submit(self._probe_source, src, containers[src], items, timeouts)
            for src, items in by_source.items()
        }
        out: dict[RealCell, ProbeResult] = {}
        for fut in futures.values():
            out.update(fut.result())
        return out

    def _probe_source(
        self,
        source: PodKey,
        container: str,
        items: list[tuple[RealCell, str]],
        timeouts: Mapping[RealCell, float],
    ) -> dict[RealCell, ProbeResult]:
        targets = [
            ProbeTarget(f"c{i}", host, cell.port, cell.protocol, timeouts.get(cell))
            for i, (cell, host) in enumerate(items)
        ]
        self.check()
        full, parallel = self.options.probe_timeout_s, self.options.in_pod_parallel
        timeout = batch_seconds(targets, full, parallel) + 15
        argv = batch_command(targets, full, parallel)
        started = time.monotonic()
        try:
            if is_external_key(source):
                if self.outside is None:
                    raise ClusterError("no --outside-exec is configured")
                res = self.outside.run(source[1:], argv, timeout)
            else:
                ns, pod = source.split("/", 1)
                res = self.cluster.exec(ns, pod, container, argv, timeout)
        except ClusterError as exc:
            return {cell: ProbeResult(Outcome.CHECK_FAILED, str(exc), started) for cell, _ in items}
        if res.exit_code != 0 and not res.stdout:
            detail = f"probe batch exited {res.exit_code}: {res.stderr.strip()[:200]}"
            return {cell: ProbeResult(Outcome.CHECK_FAILED, detail, started) for cell, _ in items}
        parsed = parse_batch_output(res.stdout, [t.ident for t in targets])
        return {
            cell: dataclasses.replace(parsed[t.ident], started=started)
            for (cell, _), t in zip(items, targets, strict=True)
        }
