"""Reading core/v1 objects as a cluster reports them into the model's terms: a Node's labels and
address, a Pod's node and addresses. Pure functions, shared by the runner and ``analyze``."""

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


def pod_ips(obj: Mapping[str, Any]) -> tuple[IPAddress | None, tuple[IPAddress, ...]]:
    """A pod's primary address (status.podIP) and its others (status.podIPs, dual-stack)."""
    status = obj.get("status") or {}
    primary = _ip(status.get("podIP"))
    extra = []
    for entry in status.get("podIPs") or []:
        ip = _ip((entry or {}).get("ip"))
        if ip is not None and ip != primary:
            extra.append(ip)
    return primary, tuple(extra)


def _ip(text: Any) -> IPAddress | None:
    try:
        return ipaddress.ip_address(str(text)) if text else None
    except ValueError:
        return None
