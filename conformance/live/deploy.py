"""What the runner creates on a cluster: names, labels and manifests, as pure functions.

Scenario namespaces get real names unique per run (``<ns>-<run id>``), labelled with the tool's
name and the run id so cleanup can only ever delete what a run created. Pods follow the upstream
e2e model: the agnhost image, one container per served (port, protocol) named
``cont-<port>-<proto>`` with the port named as the scenario says (``serve-<port>-<proto>``).
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from conformance.api.model import NAMESPACE_NAME_LABEL, ContainerPort, Pod
from conformance.api.types import L4Protocol
from conformance.live.probing import PROBE_IMAGE

TOOL_LABEL = "app.kubernetes.io/managed-by"
TOOL_NAME = "netpol-conformance"
RUN_LABEL = "netpol-conformance.io/run"
SCENARIO_LABEL = "netpol-conformance.io/scenario"
SCOPE_LABEL = "netpol-conformance.io/scope"
"""On every namespace of one scenario run; cluster-scoped policies are confined to it."""
POD_LABEL = "netpol-conformance.io/pod"
"""Stable per-pod label the pod's Service selects on (scenario labels change between steps)."""


def parse_equality_selector(selector: str) -> dict[str, str]:
    """``k=v,k2=v2`` (the only selectors the tool builds) as a mapping; ValueError otherwise."""
    out: dict[str, str] = {}
    for term in selector.split(","):
        key, sep, value = term.partition("=")
        if not sep or not key.strip() or "!" in key:
            raise ValueError(f"{selector!r} is not an equality label selector (k=v,...)")
        out[key.strip()] = value.removeprefix("=").strip()
    return out


def carries_labels(obj: Mapping[str, Any], selector: str) -> bool:
    """Whether ``obj`` has every label of the equality ``selector``, checked here, not trusted
    to the server: a server (or proxy) that ignores ``labelSelector`` must not make cleanup
    delete objects the run did not create."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in parse_equality_selector(selector).items())


def new_run_id(worker: str = "") -> str:
    """Short unique id; a pytest-xdist worker id (``gw3``) is appended so workers never collide."""
    base = secrets.token_hex(3)
    return f"{base}{worker.replace('gw', 'w')}" if worker else base


class PullPolicy(StrEnum):
    """A container's ``imagePullPolicy``."""

    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


@dataclass(frozen=True)
class DeployOptions:
    image: str = PROBE_IMAGE
    image_pull_policy: PullPolicy = PullPolicy.IF_NOT_PRESENT
    node_selector: Mapping[str, str] | None = None


@dataclass(frozen=True)
class NameMap:
    """Scenario namespace names <-> real ones for one run."""

    run_id: str
    forward: Mapping[str, str]

    @classmethod
    def for_run(cls, run_id: str, namespaces: Iterable[str]) -> NameMap:
        return cls(run_id, {ns: real_namespace(ns, run_id) for ns in namespaces})

    def real(self, ns: str) -> str:
        return self.forward[ns]

    def scenario(self, real: str) -> str | None:
        for k, v in self.forward.items():
            if v == real:
                return k
        return None

    def with_namespace(self, ns: str) -> NameMap:
        if ns in self.forward:
            return self
        return NameMap(self.run_id, {**self.forward, ns: real_namespace(ns, self.run_id)})


def real_namespace(ns: str, run_id: str) -> str:
    suffix = f"-{run_id}"
    return ns[: 63 - len(suffix)].rstrip("-") + suffix


def cluster_scoped_name(name: str, scope: str) -> str:
    """A cluster-scoped object's name made unique per scenario run (BANP keeps ``default``)."""
    suffix = f"-{scope}"
    return name[: 253 - len(suffix)] + suffix


def run_labels(run_id: str, scenario: str) -> dict[str, str]:
    return {
        TOOL_LABEL: TOOL_NAME,
        RUN_LABEL: run_id,
        SCENARIO_LABEL: scenario[:63].strip("-_.") or "s",
    }


def namespace_manifest(
    real: str, labels: Mapping[str, str], run: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": real, "labels": {**labels, **run}},
    }


def container_name(port: ContainerPort) -> str:
    return f"cont-{port.port}-{port.protocol.lower()}"


def probe_container(pod: Pod) -> str:
    """The container probes run in: the pod's first (a pod without ports still gets one)."""
    return container_name(pod.ports[0] if pod.ports else ContainerPort(80))


def _container(port: ContainerPort, opts: DeployOptions) -> dict[str, Any]:
    port_spec: dict[str, Any] = {"containerPort": port.port, "protocol": str(port.protocol)}
    if port.name:
        port_spec["name"] = port.name
    container: dict[str, Any] = {
        "name": container_name(port),
        "image": opts.image,
        "imagePullPolicy": str(opts.image_pull_policy),
        "ports": [port_spec],
        "securityContext": {},
    }
    if port.protocol is L4Protocol.SCTP:
        # agnhost's porter serves SCTP on every port named by a SERVE_SCTP_PORT_<n> variable.
        container["args"] = ["porter"]
        container["env"] = [{"name": f"SERVE_SCTP_PORT_{port.port}", "value": "foo"}]
    else:
        flag = "--tcp" if port.protocol is L4Protocol.TCP else "--udp"
        container["args"] = ["serve-hostname", flag, "--http=false", "--port", str(port.port)]
    return container


def pod_manifest(
    pod: Pod,
    real_ns: str,
    run: Mapping[str, str],
    opts: DeployOptions,
    node_selector: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The upstream model's pod: one agnhost container per served port and protocol.

    ``node_selector`` is where the run places the pod (``live.placement``: the global
    ``--node-selector`` with the chosen node's hostname merged in); without it, the global one."""
    ports = pod.ports or (ContainerPort(80, L4Protocol.TCP),)
    spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 0,
        "containers": [_container(p, opts) for p in ports],
    }
    if pod.host_network:
        spec["hostNetwork"] = True
    selector = node_selector if node_selector is not None else opts.node_selector
    if selector:
        spec["nodeSelector"] = dict(selector)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod.name,
            "namespace": real_ns,
            "labels": {**pod.labels, **run, POD_LABEL: pod.name},
        },
        "spec": spec,
    }


def service_manifest(
    pod: Pod, real_ns: str, run: Mapping[str, str], probed: Iterable[tuple[int, L4Protocol]] = ()
) -> dict[str, Any] | None:
    """A ClusterIP Service per pod (``s-<pod>``) so probes can also go through Services.

    It exposes the pod's own ports and every (port, protocol) the scenario probes, each to the
    same port of the pod: a probe of a port the pod does not serve then reaches the pod and is
    refused, as a probe of the pod's IP is, instead of timing out on the ClusterIP (which reads
    as a deny). ``None`` when there is nothing to expose (a Service needs a port).
    """
    pairs = sorted({(p.port, p.protocol) for p in pod.ports} | set(probed))
    if not pairs:
        return None
    ports = [
        {
            "name": f"{protocol.lower()}-{port}",
            "port": port,
            "targetPort": port,
            "protocol": str(protocol),
        }
        for port, protocol in pairs
    ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service_name(pod.name), "namespace": real_ns, "labels": dict(run)},
        "spec": {"type": "ClusterIP", "selector": {POD_LABEL: pod.name}, "ports": ports},
    }


def service_name(pod: str) -> str:
    return f"s-{pod}"[:63]


def rewrite_policy(obj: Mapping[str, Any], names: NameMap) -> dict[str, Any]:
    """A policy with scenario namespace names replaced by real ones, consistently.

    Rewrites ``metadata.namespace`` and every value of the ``kubernetes.io/metadata.name`` label in
    selectors (``matchLabels`` and ``matchExpressions`` values), wherever they appear.
    """
    out = copy.deepcopy(dict(obj))
    meta = out.get("metadata") or {}
    if meta.get("namespace") in names.forward:
        meta["namespace"] = names.real(meta["namespace"])
    _rewrite_selectors(out.get("spec"), names)
    return out


def _rewrite_selectors(node: Any, names: NameMap) -> None:
    if isinstance(node, list):
        for item in node:
            _rewrite_selectors(item, names)
        return
    if not isinstance(node, dict):
        return
    labels = node.get("matchLabels")
    if isinstance(labels, dict) and labels.get(NAMESPACE_NAME_LABEL) in names.forward:
        labels[NAMESPACE_NAME_LABEL] = names.real(labels[NAMESPACE_NAME_LABEL])
    for expr in node.get("matchExpressions") or []:
        if isinstance(expr, dict) and expr.get("key") == NAMESPACE_NAME_LABEL:
            expr["values"] = [names.forward.get(v, v) for v in expr.get("values") or []]
    for key, value in node.items():
        if key not in ("matchLabels", "matchExpressions"):
            _rewrite_selectors(value, names)


def confine_to_namespaces(obj: Mapping[str, Any], key: str, value: str) -> dict[str, Any]:
    """A copy of an admin policy object whose namespace selectors also require ``key=value``.

    Cluster-scoped policies select across all namespaces; a run that labels its own namespaces
    ``key=value`` can apply this copy so that neither the subject nor any ``namespaces``/``pods``
    peer reaches another run's pods (pytest-xdist workers sharing a cluster). Every namespace
    selector of the subject and of the peers gets a ``key In [value]`` requirement; a v1alpha2
    ``pods`` selector without ``namespaceSelector`` (all namespaces) gets one that only requires
    it. ``networks``, ``nodes`` and ``domainNames`` peers are left alone. On a state where every
    scenario namespace carries the label, the evaluator's verdicts are unchanged.
    """
    out: dict[str, Any] = copy.deepcopy(dict(obj))
    spec = out.get("spec")
    if not isinstance(spec, dict):
        return out
    requirement = {"key": key, "operator": "In", "values": [value]}
    _confine_holder(spec.get("subject"), requirement)
    for direction, peer_key in (("ingress", "from"), ("egress", "to")):
        rules = spec.get(direction)
        for rule in rules if isinstance(rules, list) else ():
            peers = rule.get(peer_key) if isinstance(rule, dict) else None
            for peer in peers if isinstance(peers, list) else ():
                _confine_holder(peer, requirement)
    return out


def _confine_holder(holder: Any, requirement: dict[str, Any]) -> None:
    """Confine the ``namespaces`` selector or ``pods.namespaceSelector`` held by a subject/peer."""
    if not isinstance(holder, dict):
        return
    if isinstance(holder.get("namespaces"), dict):
        _add_requirement(holder["namespaces"], requirement)
    pods = holder.get("pods")
    if isinstance(pods, dict):
        selector = pods.setdefault("namespaceSelector", {})
        if isinstance(selector, dict):
            _add_requirement(selector, requirement)


def _add_requirement(selector: dict[str, Any], requirement: dict[str, Any]) -> None:
    expressions = selector.setdefault("matchExpressions", [])
    if isinstance(expressions, list):
        expressions.append(dict(requirement, values=list(requirement["values"])))
