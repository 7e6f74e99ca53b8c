"""Nodes as the live cluster reports them, in the model's terms (labels and an address).

Kept apart from the runner so that the conversion from API objects is a pure function.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from conformance.api.model import IPAddress, Node, frozen_labels


def node_from_object(obj: Mapping[str, Any]) -> Node:
    """A core/v1 Node: its labels and its first InternalIP (status.addresses)."""
    meta = obj.get("metadata") or {}
    return Node(str(meta.get("name", "")), frozen_labels(meta.get("labels") or {}), _address(obj))


def nodes_from_objects(items: Iterable[Mapping[str, Any]]) -> tuple[Node, ...]:
    return tuple(node_from_object(o) for o in items)


def _address(obj: Mapping[str, Any]) -> IPAddress | None:
    for addr in (obj.get("status") or {}).get("addresses") or []:
        if addr.get("type") == "InternalIP":
            try:
                return ipaddress.ip_address(str(addr.get("address")))
            except ValueError:
                continue
    return None


def pod_node(obj: Mapping[str, Any]) -> str | None:
    """The node a pod object was scheduled to (spec.nodeName), if any."""
    name = (obj.get("spec") or {}).get("nodeName")
    return str(name) if name else None
