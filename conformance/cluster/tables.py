"""``meta.k8s.io/v1`` Table responses, which ``kubectl get`` asks for to print columns.

Why: without them kubectl falls back to bare names; with them its output looks as it does
against a real cluster (READY, STATUS, IP for pods; POD-SELECTOR for policies).
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Sequence
from typing import Any

from conformance.cluster.store import Resource


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def _age(ts: str) -> str:
    try:
        then = calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))
    except (ValueError, TypeError):
        return "<unknown>"
    secs = max(0, int(time.time() - then))
    if secs < 120:
        return f"{secs}s"
    if secs < 3600:
        return f"{secs // 60}m"
    if secs < 86400:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def _selector_text(sel: dict[str, Any] | None) -> str:
    if not sel:
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for expr in sel.get("matchExpressions") or []:
        op, key, values = expr.get("operator"), expr.get("key"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        else:
            parts.append(f"!{key}")
    return ",".join(parts) or "<none>"


def _columns(res: Resource) -> list[tuple[str, str, int]]:
    if res.plural == "pods":
        return [
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
        ]
    if res.plural == "namespaces":
        return [("Name", "string", 0), ("Status", "string", 0), ("Age", "string", 0)]
    if res.plural == "nodes":  # as kube-apiserver's table for nodes
        return [
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Roles", "string", 0),
            ("Age", "string", 0),
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
        ]
    if res.plural == "networkpolicies":
        return [("Name", "string", 0), ("Pod-Selector", "string", 0), ("Age", "string", 0)]
    if res.plural in ("adminnetworkpolicies", "clusternetworkpolicies"):
        return [("Name", "string", 0), ("Priority", "string", 0), ("Age", "string", 0)]
    if res.plural == "services":  # as the real API server's table for services
        return [
            ("Name", "string", 0),
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            ("Age", "string", 0),
            ("Selector", "string", 1),
        ]
    if res.plural == "events":
        return [
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
            ("Name", "string", 1),
        ]
    return [("Name", "string", 0), ("Age", "string", 0)]


def _cells(res: Resource, obj: dict[str, Any]) -> list[Any]:
    meta, spec, st = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    age = _age(meta.get("creationTimestamp", ""))
    if res.plural == "pods":
        containers = spec.get("containers") or []
        ready = sum(1 for c in st.get("containerStatuses") or [] if c.get("ready"))
        phase = st.get("reason") or st.get("phase") or "Pending"
        return [
            meta["name"],
            f"{ready}/{len(containers)}",
            phase,
            "0",
            age,
            st.get("podIP") or "<none>",
            spec.get("nodeName") or "<none>",
        ]
    if res.plural == "namespaces":
        return [meta["name"], st.get("phase", "Active"), age]
    if res.plural == "nodes":
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in st.get("conditions") or []
        )
        roles = sorted(
            k.rpartition("/")[2]
            for k in meta.get("labels") or {}
            if k.startswith("node-role.kubernetes.io/")
        )
        internal = [
            a.get("address") for a in st.get("addresses") or [] if a.get("type") == "InternalIP"
        ]
        return [
            meta["name"],
            "Ready" if ready else "NotReady",
            ",".join(roles) or "<none>",
            age,
            (st.get("nodeInfo") or {}).get("kubeletVersion", ""),
            ",".join(map(str, internal)) or "<none>",
        ]
    if res.plural == "networkpolicies":
        return [meta["name"], _selector_text(spec.get("podSelector")), age]
    if res.plural in ("adminnetworkpolicies", "clusternetworkpolicies"):
        return [meta["name"], str(spec.get("priority", "")), age]
    if res.plural == "services":
        ports = ",".join(
            f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or []
        )
        selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items()))
        return [
            meta["name"],
            spec.get("type", "ClusterIP"),
            spec.get("clusterIP") or "<none>",
            "<none>",
            ports or "<none>",
            age,
            selector or "<none>",
        ]
    if res.plural == "events":
        involved = obj.get("involvedObject") or {}
        last = obj.get("lastTimestamp") or obj.get("eventTime") or meta.get("creationTimestamp", "")
        return [
            _age(str(last)[:19] + "Z" if last else ""),
            obj.get("type", ""),
            obj.get("reason", ""),
            f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
            obj.get("message", ""),
            meta["name"],
        ]
    return [meta["name"], age]


def table(
    res: Resource, objects: Sequence[dict[str, Any]], resource_version: str
) -> dict[str, Any]:
    """A Table of ``objects`` with row objects as PartialObjectMetadata (kubectl's default)."""
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            {
                "name": n,
                "type": t,
                "format": "name" if n == "Name" else "",
                "description": n,
                "priority": p,
            }
            for n, t, p in _columns(res)
        ],
        "rows": [
            {
                "cells": _cells(res, obj),
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj["metadata"],
                },
            }
            for obj in objects
        ],
    }
