"""Builders shared by the harness's own tests (pure data; no cluster)."""

from __future__ import annotations

import ipaddress
from typing import Any

from conformance.api.model import (
    ClusterState,
    ContainerPort,
    ExternalHost,
    Namespace,
    Pod,
    frozen_labels,
)
from conformance.api.netpol import NetworkPolicy, parse_network_policy
from conformance.api.types import L4Protocol

DEFAULT_PORTS = tuple(
    ContainerPort(port, proto, f"serve-{port}-{proto.lower()}")
    for port in (80, 81)
    for proto in L4Protocol
)


def upstream_state(
    ns_labels: dict[str, dict[str, str]] | None = None,
    externals: tuple[ExternalHost, ...] = (),
) -> ClusterState:
    """The upstream e2e model: x, y, z with pods a, b, c; IPs 10.244.0.10 upwards."""
    namespaces = tuple(Namespace(n, frozen_labels((ns_labels or {}).get(n))) for n in "xyz")
    pods = []
    for i, (ns, pod) in enumerate((n, p) for n in "xyz" for p in "abc"):
        ip = ipaddress.ip_address(f"10.244.0.{10 + i}")
        pods.append(Pod(ns, pod, frozen_labels({"pod": pod}), DEFAULT_PORTS, ip))
    return ClusterState(namespaces, tuple(pods), externals)


def netpol(namespace: str, name: str, spec: dict[str, Any]) -> NetworkPolicy:
    return parse_network_policy(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )


def disagreeing_cells(results: dict[str, Any]) -> list[str]:
    """One line per mismatching or check-failed cell of a results JSON document (for asserts)."""
    return [
        f"{s['name']} / {st['name']}: {c['from']} -> {c['to']} {c['port']}/{c['protocol']} "
        f"expected {c['expected']} observed {c['observed']} ({c['detail'] or c['reason']})"
        for s in results["scenarios"]
        for st in s["steps"]
        for c in st["cells"]
        if c["status"] in ("mismatch", "check-failed")
    ]
