"""Cluster state as the evaluator sees it: nodes, namespaces, pods, external endpoints.

Plain frozen values with upstream e2e vocabulary; nothing here knows about YAML or the API client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from conformance.api.types import (
    AddressFamily,
    L4Protocol,
    PodKey,
    TargetKey,
    TrafficPath,
    external_key,
)

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
HOSTNAME_LABEL = "kubernetes.io/hostname"
"""Set on every node by the kubelet (well-known labels); node selectors often use it."""
OS_LABEL = "kubernetes.io/os"
"""Set on every namespace by the API server (immutable); upstream policies select namespaces by it."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def frozen_labels(labels: Mapping[str, str] | None) -> Mapping[str, str]:
    """A read-only copy of a label map."""
    return MappingProxyType(dict(labels or {}))


def address_in(
    ip: IPAddress | None, extra_ips: tuple[IPAddress, ...], family: AddressFamily | None
) -> IPAddress | None:
    """An endpoint's address of ``family``: its primary ``ip`` or one of its ``extra_ips``
    (dual-stack); the primary one when ``family`` is None."""
    if family is None or (ip is not None and ip.version == family.version):
        return ip
    return next((a for a in extra_ips if a.version == family.version), None)


@dataclass(frozen=True)
class ContainerPort:
    """A port a pod serves (core/v1 ContainerPort): number, protocol and optional IANA name."""

    port: int
    protocol: L4Protocol = L4Protocol.TCP
    name: str | None = None


@dataclass(frozen=True)
class Node:
    """A cluster node (core/v1 Node): its labels and its addresses (status.addresses InternalIP).

    Host-network pods are endpoints at their node's address; admin ``nodes`` peers select nodes
    by these labels.
    """

    name: str
    labels: Mapping[str, str] = field(default_factory=lambda: frozen_labels(None))
    ip: IPAddress | None = None
    extra_ips: tuple[IPAddress, ...] = ()
    """Addresses of the other family on a dual-stack cluster."""

    def address(self, family: AddressFamily | None) -> IPAddress | None:
        return address_in(self.ip, self.extra_ips, family)

    def effective_labels(self) -> Mapping[str, str]:
        """Labels including the kubelet's ``kubernetes.io/hostname`` and ``kubernetes.io/os``."""
        return frozen_labels({HOSTNAME_LABEL: self.name, OS_LABEL: "linux", **self.labels})


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: Mapping[str, str] = field(default_factory=lambda: frozen_labels(None))

    def effective_labels(self) -> Mapping[str, str]:
        """Labels including the automatic ``kubernetes.io/metadata.name``."""
        return frozen_labels({**self.labels, NAMESPACE_NAME_LABEL: self.name})


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=lambda: frozen_labels(None))
    ports: tuple[ContainerPort, ...] = ()
    ip: IPAddress | None = None
    host_network: bool = False
    node: str | None = None
    """Name of the node that runs the pod; None when not known (placement not modelled)."""
    extra_ips: tuple[IPAddress, ...] = ()
    """Addresses of the other family on a dual-stack cluster (status.podIPs after the first)."""

    def address(self, family: AddressFamily | None) -> IPAddress | None:
        return address_in(self.ip, self.extra_ips, family)

    @property
    def key(self) -> PodKey:
        return f"{self.namespace}/{self.name}"

    def serves(self, port: int, protocol: L4Protocol) -> bool:
        return any(p.port == port and p.protocol == protocol for p in self.ports)

    def named_port(self, name: str, protocol: L4Protocol) -> int | None:
        """Number of the container port called ``name`` with ``protocol``, if any."""
        for p in self.ports:
            if p.name == name and p.protocol == protocol:
                return p.port
        return None


@dataclass(frozen=True)
class ExternalHost:
    """A host outside the cluster (simulated on TEST-NET addresses locally): a destination of
    egress probes and a client that opens connections to pods (ingress from outside)."""

    name: str
    ip: IPAddress
    ports: tuple[ContainerPort, ...] = (ContainerPort(80, L4Protocol.TCP),)
    extra_ips: tuple[IPAddress, ...] = ()

    def address(self, family: AddressFamily | None) -> IPAddress | None:
        return address_in(self.ip, self.extra_ips, family)

    @property
    def key(self) -> TargetKey:
        return external_key(self.name)

    def serves(self, port: int, protocol: L4Protocol) -> bool:
        return any(p.port == port and p.protocol == protocol for p in self.ports)


@dataclass(frozen=True)
class ClusterState:
    """Everything that policies are evaluated against at one moment."""

    namespaces: tuple[Namespace, ...]
    pods: tuple[Pod, ...]
    externals: tuple[ExternalHost, ...] = ()
    nodes: tuple[Node, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ns", {n.name: n for n in self.namespaces})
        object.__setattr__(self, "_pods", {p.key: p for p in self.pods})
        object.__setattr__(self, "_nodes", {n.name: n for n in self.nodes})
        object.__setattr__(self, "_ext", {e.key: e for e in self.externals})

    def node(self, name: str | None) -> Node | None:
        """The node called ``name``, or None if it is unknown (or ``name`` is None)."""
        nodes: dict[str, Node] = self._nodes  # type: ignore[attr-defined]
        return nodes.get(name) if name is not None else None

    def endpoint(self, key: TargetKey) -> Endpoint:
        """The pod or external endpoint a truth-table key names; KeyError if none."""
        if key.startswith("@"):
            ext: dict[TargetKey, ExternalHost] = self._ext  # type: ignore[attr-defined]
            return ext[key]
        return self.pod(key)

    def namespace(self, name: str) -> Namespace:
        ns: dict[str, Namespace] = self._ns  # type: ignore[attr-defined]
        return ns.get(name) or Namespace(name)

    def pod(self, key: PodKey) -> Pod:
        pods: dict[PodKey, Pod] = self._pods  # type: ignore[attr-defined]
        return pods[key]

    def has_pod(self, key: PodKey) -> bool:
        return key in self._pods  # type: ignore[attr-defined]

    def pods_in(self, namespace: str) -> Iterable[Pod]:
        return (p for p in self.pods if p.namespace == namespace)


Endpoint = Pod | ExternalHost
"""Either end of a probed connection."""


def traffic_path(source: Endpoint, target: Endpoint) -> TrafficPath | None:
    """The path a connection takes (see ``TrafficPath``); None when a pod's node is unknown."""
    if isinstance(source, ExternalHost):
        return TrafficPath.FROM_EXTERNAL
    if source.host_network:
        return TrafficPath.FROM_NODE
    if isinstance(target, ExternalHost):
        return TrafficPath.TO_EXTERNAL
    if target.host_network:
        return TrafficPath.TO_NODE
    if source.node is None or target.node is None:
        return None
    return TrafficPath.SAME_NODE if source.node == target.node else TrafficPath.CROSS_NODE


def same_node(a: Endpoint, b: Endpoint) -> bool:
    """Whether both ends are pods known to run on one node."""
    return isinstance(a, Pod) and isinstance(b, Pod) and a.node is not None and a.node == b.node
