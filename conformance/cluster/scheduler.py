"""The embedded cluster's nodes as API objects, and the scheduler that places pods on them.

Why: scenarios and the runner choose where pods run (same node or across nodes) the way they do on
a real cluster: ``nodeName``, ``nodeSelector`` and required node affinity (core/v1 PodSpec,
NodeSelectorTerm). Anything else is spread over the least-loaded node, so a scenario that pins
nothing still gets both same-node and cross-node paths.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from conformance.cluster.dataplane import NodeNet
from conformance.cluster.discovery import SERVER_VERSION
from conformance.cluster.store import now_rfc3339

KUBELET_VERSION = str(SERVER_VERSION["gitVersion"])


def node_object(node: NodeNet, dual_stack: bool) -> dict[str, Any]:
    """A core/v1 Node as the kubelet would register it (Ready, with its InternalIPs)."""
    now = now_rfc3339()
    addresses = [{"type": "InternalIP", "address": node.ip}]
    if dual_stack:
        addresses.append({"type": "InternalIP", "address": node.ip6})
    addresses.append({"type": "Hostname", "address": node.name})
    cidrs = [str(node.pod_cidr)] + ([str(node.pod_cidr6)] if dual_stack else [])
    return {
        "metadata": {
            "name": node.name,
            "labels": {
                "kubernetes.io/hostname": node.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
        },
        "spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs},
        "status": {
            "addresses": addresses,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "embedded node is posting ready status",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
            # Every field NodeSystemInfo requires (the official client validates them).
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": "",
                "containerRuntimeVersion": "embedded://netpol-conformance",
                "kernelVersion": os.uname().release,
                "kubeProxyVersion": "",
                "kubeletVersion": KUBELET_VERSION,
                "machineID": "",
                "operatingSystem": "linux",
                "osImage": "netpol-conformance embedded node",
                "systemUUID": "",
            },
        },
    }


def _expression_matches(expr: Mapping[str, Any], values: Mapping[str, str]) -> bool:
    """One NodeSelectorRequirement (operators In, NotIn, Exists, DoesNotExist, Gt, Lt)."""
    key, op = str(expr.get("key", "")), str(expr.get("operator", ""))
    wanted = [str(v) for v in expr.get("values") or []]
    have = values.get(key)
    if op == "In":
        return have is not None and have in wanted
    if op == "NotIn":
        return have is None or have not in wanted
    if op == "Exists":
        return have is not None
    if op == "DoesNotExist":
        return have is None
    if op in ("Gt", "Lt") and have is not None and len(wanted) == 1:
        try:
            a, b = int(have), int(wanted[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def _term_matches(term: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """A NodeSelectorTerm: all its label expressions and field expressions (metadata.name)."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    fields = {"metadata.name": node["metadata"]["name"]}
    exprs = term.get("matchExpressions") or []
    field_exprs = term.get("matchFields") or []
    if not exprs and not field_exprs:
        return False  # "A null or empty node selector term matches no objects."
    return all(_expression_matches(e, labels) for e in exprs) and all(
        _expression_matches(e, fields) for e in field_exprs
    )


def fits(spec: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """Whether a pod spec may run on ``node`` (nodeSelector and required node affinity)."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms")
    if required is not None:
        # Terms are ORed (NodeSelector.nodeSelectorTerms).
        return any(_term_matches(t, node) for t in required)
    return True


def _host_ports(spec: Mapping[str, Any]) -> set[tuple[str, int]]:
    """The ports a host-network pod takes on its node (its container ports)."""
    if not spec.get("hostNetwork"):
        return set()
    return {
        (str(p.get("protocol") or "TCP"), int(p.get("containerPort", 0)))
        for c in spec.get("containers") or []
        for p in c.get("ports") or []
    }


def schedule(
    spec: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]]
) -> tuple[str | None, str]:
    """(node name, "") for a pod, or (None, why not) in the scheduler's words.

    ``pods`` are the pods already placed. Among the nodes that fit, the one with fewest pods wins
    (ties: the first by name order), so unpinned pods spread over the nodes.
    """
    load: dict[str, int] = {}
    taken: dict[str, set[tuple[str, int]]] = {}
    for pod in pods:
        where = (pod.get("spec") or {}).get("nodeName")
        if where:
            load[where] = load.get(where, 0) + 1
            taken.setdefault(where, set()).update(_host_ports(pod.get("spec") or {}))
    want_ports = _host_ports(spec)
    names = [n["metadata"]["name"] for n in nodes]
    pinned = spec.get("nodeName")
    if pinned:
        return (str(pinned), "") if pinned in names else (None, f"node {pinned!r} does not exist")
    candidates = [n for n in nodes if fits(spec, n)]
    free = [n for n in candidates if not want_ports & taken.get(n["metadata"]["name"], set())]
    if not free:
        parts = []
        if len(candidates) < len(nodes):
            parts.append(
                f"{len(nodes) - len(candidates)} node(s) didn't match Pod's node affinity/selector"
            )
        if len(free) < len(candidates):
            parts.append(
                f"{len(candidates) - len(free)} node(s) didn't have free ports for the requested "
                "pod ports"
            )
        return None, f"0/{len(nodes)} nodes are available: {', '.join(parts)}."
    best = min(
        free, key=lambda n: (load.get(n["metadata"]["name"], 0), names.index(n["metadata"]["name"]))
    )
    return str(best["metadata"]["name"]), ""
