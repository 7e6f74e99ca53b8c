"""Turns stored objects into running pods and enforced policies (kubelet + CNI of the embedded cluster).

Why: the API server only stores; this reacts to its events: starts a pod's namespace and servers
and reports status, tears pods down, cascades namespace deletion, and triggers recompilation.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from dataclasses import dataclass, field, replace
from typing import Any

from conformance.cluster import agnhost, scheduler
from conformance.cluster.compiler import ContainerPort, NamespaceView, NodeScope, PodView
from conformance.cluster.dataplane import Dataplane, Endpoint
from conformance.cluster.enforcer import Enforcer, Inputs
from conformance.cluster.knobs import Deviation, Knobs
from conformance.cluster.services import Allocator
from conformance.cluster.store import (
    ADMIN_NETWORK_POLICIES,
    BASELINE_ADMIN_NETWORK_POLICIES,
    CLUSTER_NETWORK_POLICIES,
    EVENTS,
    NAMESPACES,
    NETWORK_POLICIES,
    NODES,
    PODS,
    SERVICES,
    NotFound,
    Resource,
    Store,
    now_rfc3339,
)

log = logging.getLogger(__name__)
UNSUPPORTED_ANNOTATION = "embedded.netpol-conformance.io/unsupported-ports"


@dataclass
class PodRuntime:
    """A pod the controller runs: its namespace endpoint, sockets and enforcement view."""

    uid: str
    namespace: str
    name: str
    endpoint: Endpoint | None = None
    servers: agnhost.PodServers | None = None
    view: PodView | None = None
    host_view: PodView | None = None
    """A host-network pod's view (Service endpoints only: no policy selects it)."""
    deleted: bool = False
    task: asyncio.Task[None] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    order: int = 0
    logs: dict[str, list[str]] = field(default_factory=dict)
    """Per container, what its emulated agnhost printed (served by ``kubectl logs``)."""


def _container_logs(
    spec: dict[str, Any], hostname: str, started: str, unsupported: list[str]
) -> dict[str, list[str]]:
    """What each container's emulated agnhost would print at start: one line per port it serves
    (or cannot serve on this kernel), timestamped like ``kubectl logs --timestamps``."""
    out: dict[str, list[str]] = {}
    for container in spec.get("containers") or []:
        lines = []
        for listener in agnhost.listeners_for(container, hostname):
            where = f"{listener.port}/{listener.protocol}"
            if where in unsupported or f"{listener.protocol}/{listener.port}" in unsupported:
                lines.append(f"{started} not serving {where}: this kernel has no SCTP support")
            else:
                kind = "HTTP" if listener.style == "http" else listener.protocol
                lines.append(f"{started} serving {kind} on port {listener.port} (emulated agnhost)")
        out[str(container.get("name", ""))] = lines
    return out


def _ports(spec: dict[str, Any]) -> tuple[ContainerPort, ...]:
    out = []
    for c in spec.get("containers") or []:
        for p in c.get("ports") or []:
            out.append(
                ContainerPort(
                    str(p.get("name") or ""),
                    str(p.get("protocol") or "TCP"),
                    int(p["containerPort"]),
                )
            )
    return tuple(out)


class Controller:
    """Subscribes to the store; owns every pod runtime and the enforcer."""

    def __init__(self, store: Store, dataplane: Dataplane, knobs: Knobs) -> None:
        self.store = store
        self.dataplane = dataplane
        self.knobs = knobs
        self.pods: dict[str, PodRuntime] = {}
        self._order = 0
        self.enforcer = Enforcer(self._snapshot, dataplane.apply_rulesets, knobs)
        self._tasks: set[asyncio.Task[None]] = set()
        self.services = Allocator()
        # Deviation state: namespace labels as first seen, deleted NetworkPolicies still enforced.
        self._first_ns_labels: dict[str, dict[str, str]] = {}
        self._ghosts: dict[tuple[str, str], dict[str, Any]] = {}
        # Deviation stale-address-rules: a deleted pod's address -> its view, never refreshed.
        self._stale: dict[str, PodView] = {}
        store.listeners.append(self._on_event)

    def runtime(self, namespace: str, name: str) -> PodRuntime | None:
        for rt in self.pods.values():
            if rt.namespace == namespace and rt.name == name and not rt.deleted:
                return rt
        return None

    def _snapshot(self) -> Inputs:
        cnps: dict[str, list[dict[str, Any]]] = {"Admin": [], "Baseline": []}
        for cnp in self.store.peek(CLUSTER_NETWORK_POLICIES):
            tier = (cnp.get("spec") or {}).get("tier")
            if tier in cnps:
                cnps[tier].append(cnp)
        views = [rt.view for rt in self.pods.values() if rt.view is not None and not rt.deleted]
        frozen = self.knobs.has(Deviation.IGNORE_NAMESPACE_LABEL_CHANGES)
        namespaces = [
            NamespaceView(
                o["metadata"]["name"],
                self._first_ns_labels.get(o["metadata"]["name"], {})
                if frozen
                else dict(o["metadata"].get("labels") or {}),
            )
            for o in self.store.peek(NAMESPACES)
        ]
        policies = self.store.peek(NETWORK_POLICIES)
        if self._ghosts:
            live = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in policies}
            policies = [*policies, *(g for k, g in self._ghosts.items() if k not in live)]
        labels = {
            o["metadata"]["name"]: dict(o["metadata"].get("labels") or {})
            for o in self.store.peek(NODES)
        }
        nodes = [
            NodeScope(
                n.name,
                (n.ip, n.ip6) if self.dataplane.dual_stack else (n.ip,),
                frozenset(),
                labels.get(n.name, {}),
            )
            for n in self.dataplane.nodes
        ]
        return Inputs(
            views,
            namespaces,
            policies,
            self.store.peek(SERVICES),
            [*self.store.peek(ADMIN_NETWORK_POLICIES), *cnps["Admin"]],
            [*self.store.peek(BASELINE_ADMIN_NETWORK_POLICIES), *cnps["Baseline"]],
            self._stale,
            host_pods=[
                rt.host_view
                for rt in self.pods.values()
                if rt.host_view is not None and not rt.deleted
            ],
            nodes=nodes,
        )

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _on_event(self, event: str, res: Resource, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        if res is PODS:
            uid = meta["uid"]
            if event == "ADDED":
                # Creation order, as the API accepted the pods (not as their namespaces came up,
                # which nodes do concurrently): the first-pod-only deviation's "oldest pod".
                self._order += 1
                rt = PodRuntime(
                    uid,
                    meta["namespace"],
                    meta["name"],
                    labels=dict(meta.get("labels") or {}),
                    order=self._order,
                )
                self.pods[uid] = rt
                rt.task = self._spawn(self._start(rt, obj))
            elif event == "DELETED":
                rt_del = self.pods.get(uid)
                if rt_del is not None:
                    rt_del.deleted = True
                    if (
                        self.knobs.has(Deviation.STALE_ADDRESS_RULES)
                        and rt_del.view is not None
                        and rt_del.endpoint is not None
                    ):
                        # Rules stay keyed by the address; the first owner's are never replaced.
                        self._stale.setdefault(rt_del.view.ip, rt_del.view)
                        # Its namespace's next pod on that node gets the address (if the
                        # namespace is gone, any pod may: Dataplane.retire).
                        alive = self.store.exists(NAMESPACES, "", rt_del.namespace)
                        self.dataplane.retire(rt_del.endpoint, rt_del.namespace if alive else "")
                    self._spawn(self._stop(rt_del))
            else:
                rt_mod = self.pods.get(uid)
                labels = dict(meta.get("labels") or {})
                if rt_mod is not None and labels != rt_mod.labels:
                    rt_mod.labels = labels
                    if rt_mod.host_view is not None:
                        rt_mod.host_view = replace(rt_mod.host_view, labels=labels)
                        self.enforcer.changed()
                    if rt_mod.view is not None and not self.knobs.has(
                        Deviation.IGNORE_LABEL_CHANGES
                    ):
                        rt_mod.view = replace(rt_mod.view, labels=labels)
                        self.enforcer.changed()
        elif res is NODES:
            self.enforcer.changed()  # node labels decide admin `nodes` peers
        elif res is NAMESPACES:
            if event == "ADDED":
                self._first_ns_labels[meta["name"]] = dict(meta.get("labels") or {})
            if event == "DELETED":
                name = meta["name"]
                for kind in (PODS, NETWORK_POLICIES, SERVICES, EVENTS):
                    for child in self.store.list(kind, name):
                        with contextlib.suppress(NotFound):
                            self.store.delete(kind, name, child["metadata"]["name"])
                self._first_ns_labels.pop(name, None)
                self._ghosts = {k: g for k, g in self._ghosts.items() if k[0] != name}
                self.dataplane.forget_namespace(name)
            self.enforcer.changed()
        elif res in (
            NETWORK_POLICIES,
            SERVICES,
            ADMIN_NETWORK_POLICIES,
            BASELINE_ADMIN_NETWORK_POLICIES,
            CLUSTER_NETWORK_POLICIES,
        ):
            if res is SERVICES and event == "DELETED":
                self.services.release(str((obj.get("spec") or {}).get("clusterIP", "")))
            if (
                res is NETWORK_POLICIES
                and event == "DELETED"
                and self.knobs.has(Deviation.DELETED_POLICY_ENFORCED)
                and self.store.exists(NAMESPACES, "", meta["namespace"])
            ):
                self._ghosts[(meta["namespace"], meta["name"])] = obj
            self.enforcer.changed()

    def _set_status(
        self, rt: PodRuntime, status: dict[str, Any], annotations: dict[str, str] | None = None
    ) -> None:
        if rt.deleted:
            return
        cur = self.store.get(PODS, rt.namespace, rt.name)
        if cur is None or cur["metadata"]["uid"] != rt.uid:
            return
        cur["status"] = status
        if annotations:
            cur["metadata"].setdefault("annotations", {}).update(annotations)
        with contextlib.suppress(NotFound):
            self.store.update(PODS, cur, check_version=False)

    def unschedulable(self, obj: dict[str, Any]) -> None:
        """Record why a pod found no node (it stays Pending, as on a real cluster)."""
        meta = obj["metadata"]
        conds = (obj.get("status") or {}).get("conditions") or [{}]
        rt = PodRuntime(meta["uid"], meta["namespace"], meta["name"])
        self._event(rt, "Warning", "FailedScheduling", str(conds[0].get("message", "")))

    async def _start(self, rt: PodRuntime, obj: dict[str, Any]) -> None:
        spec = obj.get("spec") or {}
        node = spec.get("nodeName")
        if not node:
            return  # unschedulable: stays Pending
        try:
            listeners = agnhost.plan_pod(spec, rt.name)
        except agnhost.CannotEmulate as exc:
            self._fail(rt, spec, str(exc))
            return
        self._set_status(
            rt,
            {
                "phase": "Pending",
                "conditions": [self._cond("PodScheduled")],
                "qosClass": "BestEffort",
            },
        )
        started = now_rfc3339()
        host = bool(spec.get("hostNetwork"))
        try:
            if host:
                rt.endpoint = self.dataplane.add_host_pod(rt.uid, node)
            else:
                rt.endpoint = await self.dataplane.add_pod(rt.uid, node, rt.namespace)
            if rt.deleted:
                return
            rt.servers = await agnhost.serve(self.dataplane.fd(rt.uid), listeners)
        except Exception as exc:
            log.exception("starting pod %s/%s failed", rt.namespace, rt.name)
            self._fail(rt, spec, f"the embedded cluster could not start the pod: {exc}")
            return
        view = PodView(
            rt.namespace,
            rt.name,
            rt.endpoint.ip,
            dict(rt.labels),
            _ports(spec),
            rt.order,
            ips=rt.endpoint.ips,
            node=node,
        )
        if host:
            rt.host_view = view  # Services may send to it; no policy selects it (it is its node)
        else:
            rt.view = view
        gen = self.enforcer.changed()
        if self.knobs.enforcement_delay <= 0:
            await self.enforcer.wait(gen)
        ip = rt.endpoint.ip
        node_net = self.dataplane.node(node)
        host_ips = [node_net.ip, node_net.ip6] if self.dataplane.dual_stack else [node_net.ip]
        status: dict[str, Any] = {
            "phase": "Running",
            "conditions": [
                self._cond(t)
                for t in (
                    "PodReadyToStartContainers",
                    "Initialized",
                    "Ready",
                    "ContainersReady",
                    "PodScheduled",
                )
            ],
            "hostIP": host_ips[0],
            "hostIPs": [{"ip": a} for a in host_ips],
            "podIP": ip,
            "podIPs": [{"ip": a} for a in rt.endpoint.ips],
            "startTime": started,
            "qosClass": "BestEffort",
            "containerStatuses": [
                {
                    "name": c.get("name"),
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "image": c.get("image"),
                    "imageID": "",
                    "containerID": f"embedded://{rt.uid}/{c.get('name')}",
                    "state": {"running": {"startedAt": started}},
                }
                for c in spec.get("containers") or []
            ],
        }
        rt.logs = _container_logs(spec, rt.name, started, rt.servers.unsupported)
        annotations = None
        if rt.servers.unsupported:
            ports = ",".join(rt.servers.unsupported)
            status["message"] = f"not served: {ports}: this kernel has no SCTP support"
            annotations = {UNSUPPORTED_ANNOTATION: ports}
        self._set_status(rt, status, annotations)
        if rt.servers.unsupported:
            self._event(rt, "Warning", "PortUnsupported", status["message"])

    @staticmethod
    def _cond(kind: str, ok: bool = True, reason: str = "", message: str = "") -> dict[str, Any]:
        cond: dict[str, Any] = {
            "type": kind,
            "status": "True" if ok else "False",
            "lastProbeTime": None,
            "lastTransitionTime": now_rfc3339(),
        }
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        return cond

    def _fail(self, rt: PodRuntime, spec: dict[str, Any], message: str) -> None:
        status = {
            "phase": "Failed",
            "reason": "CannotEmulate",
            "message": message,
            "qosClass": "BestEffort",
            "conditions": [
                self._cond("PodScheduled"),
                self._cond("Ready", False, "CannotEmulate", message),
            ],
            "containerStatuses": [
                {
                    "name": c.get("name"),
                    "ready": False,
                    "started": False,
                    "restartCount": 0,
                    "image": c.get("image"),
                    "imageID": "",
                    "state": {
                        "terminated": {
                            "exitCode": 128,
                            "reason": "CannotEmulate",
                            "message": message,
                        }
                    },
                }
                for c in spec.get("containers") or []
            ],
        }
        self._set_status(rt, status)
        self._event(rt, "Warning", "CannotEmulate", message)

    def _event(self, rt: PodRuntime, kind: str, reason: str, message: str) -> None:
        """Record an Event on the pod, as the kubelet would (``kubectl describe`` shows it)."""
        now = now_rfc3339()
        involved = {
            "kind": "Pod",
            "namespace": rt.namespace,
            "name": rt.name,
            "uid": rt.uid,
            "apiVersion": "v1",
        }
        with contextlib.suppress(Exception):
            self.store.create(
                EVENTS,
                {
                    "metadata": {"name": f"{rt.name}.{rt.uid[:8]}", "namespace": rt.namespace},
                    "involvedObject": involved,
                    "reason": reason,
                    "message": message,
                    "type": kind,
                    "count": 1,
                    "firstTimestamp": now,
                    "lastTimestamp": now,
                    "source": {"component": "netpol-embedded"},
                },
            )

    async def _stop(self, rt: PodRuntime) -> None:
        if rt.task is not None:
            with contextlib.suppress(Exception):
                await rt.task
        if rt.servers is not None:
            rt.servers.close()
        self.pods.pop(rt.uid, None)
        if rt.view is not None or rt.host_view is not None:
            self.enforcer.changed()
        if rt.endpoint is not None:
            await self.dataplane.remove(rt.endpoint)
        self._reschedule()

    def _reschedule(self) -> None:
        """Place pods that found no node before, now that one is gone (kube-scheduler retries
        unschedulable pods on such events): e.g. a host-network pod waiting for its port."""
        pods = self.store.peek(PODS)
        for obj in pods:
            spec = obj.get("spec") or {}
            rt = self.pods.get(obj["metadata"]["uid"])
            if spec.get("nodeName") or rt is None or rt.deleted:
                continue
            node, _ = scheduler.schedule(spec, self.store.peek(NODES), self.store.peek(PODS))
            if node is None:
                continue
            bound = copy.deepcopy(obj)
            bound["spec"]["nodeName"] = node
            with contextlib.suppress(NotFound):
                bound = self.store.update(PODS, bound, check_version=False)
                rt.task = self._spawn(self._start(rt, bound))

    async def shutdown(self) -> None:
        """Stop enforcement and close every pod's sockets (namespaces go with the dataplane)."""
        await self.enforcer.stop()
        for task in list(self._tasks):
            task.cancel()
        for rt in self.pods.values():
            if rt.servers is not None:
                rt.servers.close()
