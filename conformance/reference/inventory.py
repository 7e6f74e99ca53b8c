"""``analyze``'s core: a cluster's objects (live or from manifests) to an inventory, and its outputs.

An ``Inventory`` is what the evaluator needs from a real cluster: namespaces, pods (from Pod objects
or expanded from workload templates), NetworkPolicies and admin policies, validated as the API
server would. Outputs are the full matrix as JSON or CSV, a text summary grouped by namespace, and
a regression scenario built from a sample of real pods. Pure: no cluster I/O here (``analyze_cmd``
does the listing through ``KubeCluster``).
"""

from __future__ import annotations

import csv
import ipaddress
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

import yaml

from conformance.api.adminpol import AdminPolicy, parse_admin_policy
from conformance.api.fields import Locator
from conformance.api.kinds import POLICY_KINDS
from conformance.api.model import ClusterState, ContainerPort, Namespace, Node, Pod, frozen_labels
from conformance.api.netpol import NetworkPolicy, parse_network_policy
from conformance.api.objects import node_from_object, pod_ips, pod_node
from conformance.api.types import Direction, PodKey, TargetKey
from conformance.api.types import L4Protocol as L4
from conformance.errors import ClusterError, Location, ScenarioError
from conformance.reference.evaluator import AnyPolicy, Verdict
from conformance.reference.matrix import PortProto, ReachabilityMatrix

WORKLOAD_KINDS = (
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
    "CronJob",
)
"""Kinds whose pod template ``analyze`` expands into pods."""

DEFAULT_POD_CIDR = "10.240.0.0/12"
_MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML was built with it (several times faster on big folders)."""


@dataclass(frozen=True)
class Inventory:
    """A cluster as the evaluator sees it, plus the policy objects verbatim (for scenarios).

    ``notes`` say what was skipped or synthesised (ignored kinds, synthetic IPs, capped replicas),
    so a summary never silently differs from the input.
    """

    state: ClusterState
    policies: tuple[AnyPolicy, ...]
    policy_objects: tuple[Mapping[str, Any], ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourcedObject:
    """A Kubernetes object and where it came from (``file`` or ``cluster``), for error messages."""

    obj: Mapping[str, Any]
    origin: str


class Lister(Protocol):
    """The read-only part of ``KubeCluster`` that ``analyze`` uses."""

    def served_kinds(self) -> set[str]: ...

    def list_items(
        self, kind: str, namespace: str | None = None, label_selector: str = ""
    ) -> list[dict[str, Any]]: ...


# -- input -------------------------------------------------------------------------------------


def load_manifest_dir(path: str | Path) -> list[SourcedObject]:
    """Every object in the YAML/JSON files under ``path`` (recursively; ``List`` kinds unrolled).

    Raises ScenarioError naming the file for unreadable or unparsable files.
    """
    root = Path(path)
    if not root.exists():
        raise ScenarioError(f"{root}: no such file or directory (give a folder of manifests)")
    files = (
        [root]
        if root.is_file()
        else sorted(p for p in root.rglob("*") if p.suffix in _MANIFEST_SUFFIXES and p.is_file())
    )
    out: list[SourcedObject] = []
    for file in files:
        try:
            docs = list(yaml.load_all(file.read_text(encoding="utf-8"), Loader=_LOADER))
        except (OSError, UnicodeDecodeError) as exc:
            raise ScenarioError(f"cannot read: {exc}", Location(str(file))) from None
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", -1) + 1
            raise ScenarioError(
                f"not valid YAML: {getattr(exc, 'problem', exc)}", Location(str(file), line)
            ) from None
        for doc in docs:
            if doc is None:
                continue
            if not isinstance(doc, Mapping) or "kind" not in doc:
                raise ScenarioError(
                    "expected Kubernetes objects (mappings with apiVersion and kind)",
                    Location(str(file)),
                )
            items = doc.get("items") if str(doc["kind"]).endswith("List") else None
            for item in items if isinstance(items, list) else [doc]:
                out.append(SourcedObject(item, str(file)))
    return out


def list_cluster(cluster: Lister) -> list[SourcedObject]:
    """Namespaces, pods, nodes and every policy kind the cluster serves (read-only list calls).

    Nodes decide admin ``nodes`` peers and the own-node rule; without permission to list them
    (or on a cluster without Node objects) those cells stay implementation-defined."""
    served = cluster.served_kinds()
    out: list[SourcedObject] = []
    for kind in ("Namespace", "Pod", *(k for k in POLICY_KINDS if k in served)):
        for item in cluster.list_items(kind):
            out.append(SourcedObject({"kind": kind, **item}, "cluster"))
    try:
        nodes = cluster.list_items("Node")
    except ClusterError:
        nodes = []
    out.extend(SourcedObject({"kind": "Node", **item}, "cluster") for item in nodes)
    return out


def build_inventory(
    objects: Iterable[SourcedObject],
    *,
    replicas: int = 1,
    pod_cidr: str = DEFAULT_POD_CIDR,
) -> Inventory:
    """Namespaces, pods (workloads expanded to at most ``replicas`` pods each) and policies.

    Pods without ``status.podIP`` get addresses from ``pod_cidr`` (not used by any other pod), so
    ``ipBlock`` rules can be evaluated; finished pods (Succeeded/Failed) are left out, as they
    hold no address. Raises ScenarioError for invalid policies (named by file and field).
    """
    namespaces: dict[str, Mapping[str, str]] = {}
    pods: list[tuple[str, str, Mapping[str, Any], Any]] = []  # ns, name, pod spec, pod object
    nodes: list[Node] = []
    pod_labels: dict[tuple[str, str], Mapping[str, str]] = {}
    policies: list[AnyPolicy] = []
    policy_objects: list[Mapping[str, Any]] = []
    ignored: dict[str, int] = {}
    capped = finished = 0
    for so in objects:
        obj = so.obj
        kind = str(obj.get("kind", ""))
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or meta.get("generateName") or "unnamed")
        ns = str(meta.get("namespace") or "default")
        if kind == "Namespace":
            namespaces[name] = dict(meta.get("labels") or {})
        elif kind == "Node":
            nodes.append(node_from_object(obj))
        elif kind == "Pod":
            phase = (obj.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed"):
                finished += 1
                continue
            namespaces.setdefault(ns, {})
            pods.append((ns, name, obj.get("spec") or {}, obj))
            pod_labels[(ns, name)] = dict(meta.get("labels") or {})
        elif kind in WORKLOAD_KINDS:
            template, count = _template(obj, kind)
            if template is None:
                continue
            namespaces.setdefault(ns, {})
            if count > replicas:
                capped += 1
            tmeta = template.get("metadata") or {}
            for i in range(min(count, replicas)):
                pod_name = f"{name}-{i}"
                pods.append((ns, pod_name, template.get("spec") or {}, {}))
                pod_labels[(ns, pod_name)] = dict(tmeta.get("labels") or {})
        elif kind in POLICY_KINDS:
            locate = _locator(so.origin, kind, ns if kind == "NetworkPolicy" else None, name)
            clean = clean_object(obj)
            if kind == "NetworkPolicy":
                policies.append(parse_network_policy(clean, locate))
            else:
                policies.append(parse_admin_policy(clean, locate))
            policy_objects.append(clean)
        else:
            ignored[kind or "(no kind)"] = ignored.get(kind or "(no kind)", 0) + 1
    for p in policies:
        if isinstance(p, NetworkPolicy):
            namespaces.setdefault(p.namespace, {})
    ips = _IPAllocator(pod_cidr, [str(ip) for *_, o in pods if (ip := pod_ips(o)[0])])
    built: list[Pod] = []
    synthetic = 0
    seen: set[PodKey] = set()
    for ns, name, spec, pod_obj in pods:
        if f"{ns}/{name}" in seen:
            continue
        seen.add(f"{ns}/{name}")
        host = bool(spec.get("hostNetwork"))
        address, extra = pod_ips(pod_obj)
        if address is None:
            synthetic += 1
            address = ips.next()
        built.append(
            Pod(
                ns,
                name,
                frozen_labels(pod_labels[(ns, name)]),
                _ports(spec),
                address,
                host,
                pod_node(pod_obj) or (str(spec["nodeName"]) if spec.get("nodeName") else None),
                extra,
            )
        )
    notes = []
    if synthetic:
        notes.append(f"{synthetic} pods had no IP and got one from {pod_cidr}")
    if capped:
        notes.append(f"{capped} workloads expanded to {replicas} pod(s) each (--replicas)")
    if finished:
        notes.append(f"{finished} finished pods (Succeeded/Failed) left out")
    if ignored:
        kinds = ", ".join(f"{k} ({n})" for k, n in sorted(ignored.items()))
        notes.append(f"ignored objects of kinds: {kinds}")
    state = ClusterState(
        tuple(Namespace(n, frozen_labels(labels)) for n, labels in sorted(namespaces.items())),
        tuple(built),
        nodes=tuple(nodes),
    )
    return Inventory(state, tuple(policies), tuple(policy_objects), tuple(notes))


def clean_object(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object as a user would write it: no status, no server-set metadata."""
    meta = obj.get("metadata") or {}
    kept = {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta}
    annotations = {
        k: v
        for k, v in (kept.get("annotations") or {}).items()
        if k != "kubectl.kubernetes.io/last-applied-configuration"
    }
    if annotations:
        kept["annotations"] = annotations
    else:
        kept.pop("annotations", None)
    kind = str(obj.get("kind", ""))
    api = obj.get("apiVersion") or (
        POLICY_KINDS[kind].api_version if kind in POLICY_KINDS else None
    )
    out: dict[str, Any] = {"apiVersion": api, "kind": kind, "metadata": kept}
    if "spec" in obj:
        out["spec"] = obj["spec"]
    return out


def _template(obj: Mapping[str, Any], kind: str) -> tuple[Mapping[str, Any] | None, int]:
    spec = obj.get("spec") or {}
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    template = spec.get("template")
    if not isinstance(template, Mapping):
        return None, 0
    if kind in ("Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"):
        count = spec.get("replicas", 1)
    elif kind in ("Job", "CronJob"):
        count = spec.get("parallelism", 1)
    else:
        count = 1  # DaemonSet: one per node; nodes are not modelled.
    return template, int(count) if isinstance(count, int) else 1


def _ports(spec: Mapping[str, Any]) -> tuple[ContainerPort, ...]:
    out: list[ContainerPort] = []
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        for p in container.get("ports") or []:
            try:
                proto = L4(p.get("protocol") or "TCP")
            except ValueError:
                continue
            if isinstance(p.get("containerPort"), int):
                out.append(ContainerPort(p["containerPort"], proto, p.get("name")))
    return tuple(dict.fromkeys(out))


def _locator(origin: str, kind: str, ns: str | None, name: str) -> Locator:
    where = f"{kind} {ns}/{name}" if ns else f"{kind} {name}"

    def locate(path: tuple[str | int, ...]) -> Location:
        dotted = ".".join(str(p) for p in path)
        return Location(origin, 0, f"{where}: {dotted}" if dotted else where)

    return locate


class _IPAllocator:
    """Addresses from a CIDR, skipping those real pods hold (network and .0-.9 left out)."""

    def __init__(self, cidr: str, taken: Iterable[str]) -> None:
        try:
            self.net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ScenarioError(f"--pod-cidr {cidr!r} is not a CIDR (e.g. 10.240.0.0/12)") from None
        self.taken = {ipaddress.ip_address(ip) for ip in taken}
        self.offset = 10

    def next(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        while True:
            if self.offset >= self.net.num_addresses - 1:
                raise ScenarioError(f"--pod-cidr {self.net} has too few addresses for the pods")
            ip = self.net.network_address + self.offset
            self.offset += 1
            if ip not in self.taken:
                return ip


# -- output ------------------------------------------------------------------------------------


def port_text(pp: PortProto) -> str:
    return f"{pp[0]}/{pp[1]}"


def parse_port(text: str) -> PortProto:
    """``80/TCP``, ``53/udp`` or ``80`` (TCP)."""
    port, _, proto = text.partition("/")
    try:
        number = int(port)
        protocol = L4((proto or "TCP").upper())
    except ValueError:
        raise ScenarioError(
            f"{text!r} is not a port; write PORT/PROTOCOL, e.g. 80/TCP, 53/UDP, 3868/SCTP"
        ) from None
    if not 1 <= number <= 65535:
        raise ScenarioError(f"port {number} must be between 1 and 65535")
    return number, protocol


def matrix_json(matrix: ReachabilityMatrix) -> dict[str, Any]:
    """Compact JSON: per target and port, the allowed and implementation-defined sources.

    Every other source (of ``sources``) is denied; see docs/analyze.md.
    """
    targets = []
    for target in matrix.targets:
        for pp in matrix.ports[target]:
            allow, undefined = matrix.bits(target, pp)
            targets.append(
                {
                    "target": target,
                    "port": pp[0],
                    "protocol": str(pp[1]),
                    "allow": matrix.keys_of(allow),
                    "implementation-defined": matrix.keys_of(undefined),
                }
            )
    return {
        "version": 1,
        "sources": list(matrix.sources),
        "counts": {str(k): v for k, v in matrix.counts().items()},
        "cells": targets,
    }


def write_json(matrix: ReachabilityMatrix, out: TextIO) -> None:
    json.dump(matrix_json(matrix), out, indent=1)
    out.write("\n")


def write_csv(matrix: ReachabilityMatrix, out: TextIO) -> None:
    """One row per cell: from, to, port, protocol, verdict."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["from", "to", "port", "protocol", "verdict"])
    for s, t, port, proto, verdict in matrix.cells():
        w.writerow([s, t, port, str(proto), str(verdict)])


def namespace_of(key: TargetKey) -> str:
    return key if key.startswith("@") else key.split("/", 1)[0]


def summary(inventory: Inventory, matrix: ReachabilityMatrix) -> str:
    """Cell counts per (destination namespace, source namespace), and totals; notes at the end."""
    n_np = sum(isinstance(p, NetworkPolicy) for p in inventory.policies)
    n_admin = len(inventory.policies) - n_np
    counts = matrix.counts()
    lines = [
        f"{len(inventory.state.namespaces)} namespaces, {len(matrix.sources)} pods, "
        f"{n_np} NetworkPolicies, {n_admin} admin policies; {matrix.cell_count:,} cells: "
        f"{counts[Verdict.ALLOW]:,} allow, {counts[Verdict.DENY]:,} deny, "
        f"{counts[Verdict.IMPLEMENTATION_DEFINED]:,} implementation-defined (a pod to itself, "
        "or admin policies the API leaves undecided)",
    ]
    src_ns: dict[str, list[PodKey]] = {}
    for s in matrix.sources:
        src_ns.setdefault(namespace_of(s), []).append(s)
    masks = {ns: matrix.source_mask(src_ns[ns]) for ns in sorted(src_ns)}
    by_target: dict[str, list[TargetKey]] = {}
    for t in matrix.targets:
        by_target.setdefault(namespace_of(t), []).append(t)
    width = max((len(ns) for ns in masks), default=4)
    for tns, targets in sorted(by_target.items()):
        ports = sum(len(matrix.ports[t]) for t in targets)
        lines.append(f"\nto {tns} ({len(targets)} pods, {ports} ports):")
        open_from: list[str] = []
        closed_from: list[str] = []
        for sns, mask in masks.items():
            allow = undefined = cells = 0
            for t in targets:
                for pp in matrix.ports[t]:
                    a, u = matrix.bits(t, pp)
                    allow += (a & mask).bit_count()
                    undefined += (u & mask).bit_count()
                    cells += len(src_ns[sns])
            deny = cells - allow - undefined
            if not cells:
                continue
            # Uniform source namespaces are listed by name only, so a summary stays short.
            if deny == 0 and undefined == 0:
                open_from.append(sns)
            elif allow == 0 and undefined == 0:
                closed_from.append(sns)
            else:
                extra = f", {undefined} ?" if undefined else ""
                lines.append(f"  from {sns:<{width}}  {allow:>7} allow {deny:>7} deny{extra}")
        if open_from:
            lines.append(f"  all allowed from {_names(open_from)}")
        if closed_from:
            lines.append(f"  all denied from {_names(closed_from)}")
    if inventory.notes:
        lines.append("")
        lines += [f"note: {n}" for n in inventory.notes]
    return "\n".join(lines)


def _names(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"{len(names)} namespace{'s' if len(names) != 1 else ''}: {shown}{more}"


# -- to-scenario -------------------------------------------------------------------------------


def sample_pods(state: ClusterState, sample: int, seed: int) -> list[Pod]:
    """``sample`` pod-network pods chosen reproducibly, spread over namespaces round-robin."""
    by_ns: dict[str, list[Pod]] = {}
    for p in state.pods:
        if not p.host_network:
            by_ns.setdefault(p.namespace, []).append(p)
    rnd = random.Random(seed)
    for pods in by_ns.values():
        rnd.shuffle(pods)
    chosen: list[Pod] = []
    queues = [by_ns[ns] for ns in sorted(by_ns)]
    while len(chosen) < sample and any(queues):
        for q in queues:
            if q and len(chosen) < sample:
                chosen.append(q.pop())
    return sorted(chosen, key=lambda p: p.key)


def scenario_document(
    inventory: Inventory, sample: int, seed: int, name: str = "analyzed-cluster"
) -> dict[str, Any]:
    """A scenario reproducing the inventory's policies on a sample of its pods (no ``expect``)."""
    pods = sample_pods(inventory.state, sample, seed)
    if not pods:
        raise ScenarioError("no pod-network pods to sample for --to-scenario")
    namespaces = {p.namespace for p in pods}
    for obj in inventory.policy_objects:
        ns = (obj.get("metadata") or {}).get("namespace")
        if obj.get("kind") == "NetworkPolicy" and ns:
            namespaces.add(ns)
    topo_ns = {
        ns: {"labels": dict(inventory.state.namespace(ns).labels)} for ns in sorted(namespaces)
    }
    topo_pods = []
    for p in pods:
        entry: dict[str, Any] = {
            "name": p.key,
            "labels": dict(p.labels),
            "ports": [
                {
                    "port": cp.port,
                    "protocol": str(cp.protocol),
                    **({"name": cp.name} if cp.name else {}),
                }
                for cp in p.ports
            ],
        }
        if p.ip is not None:
            entry["ip"] = str(p.ip)
        if p.node is not None and inventory.state.node(p.node) is not None:
            entry["node"] = p.node  # where it ran, so cells keep their same/cross-node path
        topo_pods.append(entry)
    requires = _features(inventory, pods)
    doc: dict[str, Any] = {
        "name": name,
        "description": (
            f"Generated by `netpol-conformance analyze --to-scenario` from {len(inventory.policies)} "
            f"policies and a sample of {len(pods)} of {len(inventory.state.pods)} pods (seed {seed}). "
            "The expected table is the reference evaluator's answer at generation time: a "
            "regression baseline, not an independent statement of intent. Pod IPs are those of "
            "the source (offline evaluation only); ipBlock rules may match differently on "
            "another cluster."
        ),
        "tags": ["generated", "regression"],
    }
    if requires:
        doc["requires"] = requires
    doc["topology"] = {"namespaces": topo_ns, "pods": topo_pods}
    if inventory.state.nodes:
        doc["topology"] = {
            "nodes": {n.name: {"labels": dict(n.labels)} for n in inventory.state.nodes},
            **doc["topology"],
        }
    step: dict[str, Any] = {"name": "the cluster's policies"}
    if inventory.policy_objects:
        step["apply"] = [dict(o) for o in inventory.policy_objects]
    doc["steps"] = [step]
    return doc


def _features(inventory: Inventory, pods: Sequence[Pod]) -> list[str]:
    found: set[str] = set()
    protocols = {cp.protocol for p in pods for cp in p.ports}
    if L4.SCTP in protocols:
        found.add("SCTP")
    if L4.UDP in protocols:
        found.add("UDP")
    for policy in inventory.policies:
        if isinstance(policy, AdminPolicy):
            found.add(policy.kind)
            continue
        if Direction.EGRESS in policy.policy_types:
            found.add("Egress")
        for rule in (*policy.ingress, *policy.egress):
            for peer in rule.peers:
                if peer.ip_block is not None:
                    found.add("IPBlock")
            for port in rule.ports:
                if port.end_port is not None:
                    found.add("EndPort")
                if isinstance(port.port, str):
                    found.add("NamedPorts")
                if port.protocol is L4.SCTP:
                    found.add("SCTP")
                if port.protocol is L4.UDP:
                    found.add("UDP")
    order = [
        "SCTP",
        "UDP",
        "EndPort",
        "NamedPorts",
        "IPBlock",
        "Egress",
        "AdminNetworkPolicy",
        "BaselineAdminNetworkPolicy",
        "ClusterNetworkPolicy",
    ]
    return [f for f in order if f in found]


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the expected table) as literal blocks, as a person would write them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_yaml(doc: Mapping[str, Any]) -> str:
    return yaml.dump(dict(doc), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
