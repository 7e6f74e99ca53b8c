"""Cluster state as the evaluator sees it: namespaces, pods, external endpoints.

Plain frozen values with upstream e2e vocabulary; nothing here knows about YAML or the API client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from conformance.api.types import L4Protocol, PodKey, TargetKey, external_key

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""Set on every namespace by the API server (immutable); upstream policies select namespaces by it."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def frozen_labels(labels: Mapping[str, str] | None) -> Mapping[str, str]:
    """A read-only copy of a label map."""
    return MappingProxyType(dict(labels or {}))


@dataclass(frozen=True)
class ContainerPort:
    """A port a pod serves (core/v1 ContainerPort): number, protocol and optional IANA name."""

    port: int
    protocol: L4Protocol = L4Protocol.TCP
    name: str | None = None


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
    """A host outside the cluster (simulated on TEST-NET addresses locally); egress-only target."""

    name: str
    ip: IPAddress
    ports: tuple[ContainerPort, ...] = (ContainerPort(80, L4Protocol.TCP),)

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

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ns", {n.name: n for n in self.namespaces})
        object.__setattr__(self, "_pods", {p.key: p for p in self.pods})

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
