"""Aliases and small enums shared across the package."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeAlias

PodKey: TypeAlias = str
"""A pod as upstream's e2e model names it: ``"<namespace>/<pod>"``."""

TargetKey: TypeAlias = str
"""A probe destination: a ``PodKey`` or an external endpoint ``"@<name>"``."""


class L4Protocol(StrEnum):
    """L4 protocols a NetworkPolicy port may name (core/v1 Protocol)."""

    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


class Direction(StrEnum):
    INGRESS = "Ingress"
    EGRESS = "Egress"


def external_key(name: str) -> TargetKey:
    """Key of an external endpoint in truth tables and rules."""
    return f"@{name}"


PortProtocol: TypeAlias = tuple[int, L4Protocol]
"""A probed (port, protocol): one grid of a truth table."""
