"""Aliases and small enums shared across the package."""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple, TypeAlias

PodKey: TypeAlias = str
"""A pod as upstream's e2e model names it: ``"<namespace>/<pod>"``."""

TargetKey: TypeAlias = str
"""A probe endpoint: a ``PodKey`` or an external endpoint ``"@<name>"`` (destinations, and
sources too: an outside client probes pods as ``@client``)."""


class L4Protocol(StrEnum):
    """L4 protocols a NetworkPolicy port may name (core/v1 Protocol)."""

    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


class Direction(StrEnum):
    INGRESS = "Ingress"
    EGRESS = "Egress"


def is_external_key(key: str) -> bool:
    """Whether a truth-table key names an external endpoint (``@name``) rather than a pod."""
    return key.startswith("@")


def external_key(name: str) -> TargetKey:
    """Key of an external endpoint in truth tables and rules."""
    return f"@{name}"


class TrafficPath(StrEnum):
    """Which way a cell's packets go: real CNIs take a different code path for each.

    Pod-to-pod cells are ``same-node`` or ``cross-node``; a host-network endpoint (the node's own
    address) makes the cell ``from-node``/``to-node``; an endpoint outside the cluster makes it
    ``from-external``/``to-external``. The source decides first (a node or outside client talking
    to anything is ``from-...``).
    """

    SAME_NODE = "same-node"
    CROSS_NODE = "cross-node"
    FROM_NODE = "from-node"
    TO_NODE = "to-node"
    FROM_EXTERNAL = "from-external"
    TO_EXTERNAL = "to-external"


class AddressFamily(StrEnum):
    """IP family of a probed connection: both ends use their address of this family
    (core/v1 IPFamily)."""

    IPV4 = "IPv4"
    IPV6 = "IPv6"

    @property
    def version(self) -> int:
        return 4 if self is AddressFamily.IPV4 else 6


def family_of_version(version: int) -> AddressFamily:
    return AddressFamily.IPV4 if version == 4 else AddressFamily.IPV6


class Grid(NamedTuple):
    """A probed (port, protocol, address family): one grid of a truth table."""

    port: int
    protocol: L4Protocol
    family: AddressFamily = AddressFamily.IPV4

    def __str__(self) -> str:
        """``80/TCP``, or ``80/TCP/IPv6`` for IPv6: a grid's corner in printed tables."""
        text = f"{self.port}/{self.protocol}"
        return text if self.family is AddressFamily.IPV4 else f"{text}/{self.family}"
