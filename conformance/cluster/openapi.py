"""Minimal OpenAPI v3 documents: enough for kubectl to see server-side field validation, and
for ``kubectl explain`` of the policy kinds.

Why: ``kubectl apply``/``create`` validate client-side unless the server's OpenAPI v3 document says
its PATCH operations accept ``fieldValidation``; these documents say so, for every served kind,
so kubectl leaves validation to this server (which implements it) instead of failing to download
schemas.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from conformance.cluster.store import RESOURCES


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def gv_document(group: str, version: str) -> dict[str, Any] | None:
    """The document of one group/version, or None if not served."""
    served = [r for r in RESOURCES if r.group == group and r.version == version]
    if not served:
        return None
    params = [
        {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
        for name in ("dryRun", "fieldManager", "fieldValidation", "force")
    ]
    paths: dict[str, Any] = {}
    for res in served:
        base = f"/{_gv_path(group, version)}"
        item = (
            f"{base}/namespaces/{{namespace}}/{res.plural}/{{name}}"
            if res.namespaced
            else f"{base}/{res.plural}/{{name}}"
        )
        gvk = {"group": group, "version": version, "kind": res.kind}
        paths[item] = {
            "patch": {
                "operationId": f"patch{res.kind}",
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
            }
        }
    schemas = {
        name: {**schema, "x-kubernetes-group-version-kind": [gvk]}
        for res in served
        if (found := SCHEMAS.get(res.kind)) is not None
        for name, schema, gvk in [
            (found[0], found[1], {"group": group, "version": version, "kind": res.kind})
        ]
    }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


# -- schemas for `kubectl explain` -----------------------------------------------------------
# Only the policy kinds: kubectl takes patch metadata for client-side apply from these schemas, and
# the policy kinds have no merge keys, so describing them changes no patch kubectl computes.


def _obj(description: str, **properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "description": description, "properties": properties}


def _str(description: str) -> dict[str, Any]:
    return {"type": "string", "description": description}


def _list(description: str, item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "description": description, "items": item}


_SELECTOR = _obj(
    "A label selector: matchLabels and matchExpressions are ANDed; an empty selector matches "
    "everything.",
    matchLabels={
        "type": "object",
        "description": "key=value pairs that must all be present.",
        "additionalProperties": {"type": "string"},
    },
    matchExpressions=_list(
        "Requirements (key, operator In/NotIn/Exists/DoesNotExist, values) that must all hold.",
        _obj("One label requirement."),
    ),
)
_PORT = _obj(
    "A port (and protocol) traffic may use; every port when the list is empty or absent.",
    protocol=_str("TCP (default), UDP or SCTP."),
    port={
        "x-kubernetes-int-or-string": True,
        "description": "A port number or a named container port; every port when absent.",
    },
    endPort={
        "type": "integer",
        "description": "With a numeric port: the last port of the range port..endPort.",
    },
)
_PEER = _obj(
    "Who may be reached or reach: pods chosen by podSelector and/or namespaceSelector, or an "
    "ipBlock.",
    podSelector={
        **_SELECTOR,
        "description": "Pods in the policy's namespace (or in the namespaces namespaceSelector "
        "chooses) with these labels.",
    },
    namespaceSelector={
        **_SELECTOR,
        "description": "Namespaces whose pods are peers (all pods, unless podSelector narrows "
        "them).",
    },
    ipBlock=_obj(
        "An IP range, for traffic from or to outside the pod network.",
        cidr=_str("The range, e.g. 192.168.1.0/24."),
        **{"except": _list("Ranges inside cidr that are excluded.", {"type": "string"})},
    ),
)

_NETWORK_POLICY = _obj(
    "NetworkPolicy: which traffic the pods it selects may receive (ingress) and send (egress). "
    "A pod selected by a policy for a direction allows, in that direction, only what some "
    "policy's rules allow.",
    apiVersion=_str("networking.k8s.io/v1"),
    kind=_str("NetworkPolicy"),
    metadata=_obj("Name, namespace, labels and the other standard object metadata."),
    spec=_obj(
        "What the policy selects and allows.",
        podSelector={
            **_SELECTOR,
            "description": "The pods of this namespace the policy applies to; {} selects all.",
        },
        policyTypes=_list(
            "Ingress, Egress or both: the directions the policy isolates. Default: Ingress, "
            "plus Egress when egress rules are given.",
            {"type": "string"},
        ),
        ingress=_list(
            "Rules for incoming traffic: allowed when it comes from a peer in from and uses "
            "one of ports.",
            _obj(
                "One ingress rule.",
                **{
                    "from": _list("Sources; every source when empty or absent.", _PEER),
                    "ports": _list("Ports; every port when empty or absent.", _PORT),
                },
            ),
        ),
        egress=_list(
            "Rules for outgoing traffic: allowed when it goes to a peer in to and uses one of "
            "ports.",
            _obj(
                "One egress rule.",
                to=_list("Destinations; every destination when empty or absent.", _PEER),
                ports=_list("Ports; every port when empty or absent.", _PORT),
            ),
        ),
    ),
)


def _admin(kind: str, what: str) -> dict[str, Any]:
    return _obj(
        f"{kind}: {what} (network-policy-api; see docs/admin-policies.md for how the tiers "
        "combine).",
        apiVersion=_str("policy.networking.k8s.io"),
        kind=_str(kind),
        metadata=_obj("Name, labels and the other standard object metadata (cluster-scoped)."),
        spec={
            "type": "object",
            "description": "subject, priority (or tier), ingress and egress rules, as the CRD "
            "defines them; this server validates them.",
            "x-kubernetes-preserve-unknown-fields": True,
        },
    )


SCHEMAS: dict[str, tuple[str, dict[str, Any]]] = {
    "NetworkPolicy": ("io.k8s.api.networking.v1.NetworkPolicy", _NETWORK_POLICY),
    "AdminNetworkPolicy": (
        "io.k8s.networking.policy.v1alpha1.AdminNetworkPolicy",
        _admin("AdminNetworkPolicy", "cluster-wide rules evaluated before NetworkPolicies"),
    ),
    "BaselineAdminNetworkPolicy": (
        "io.k8s.networking.policy.v1alpha1.BaselineAdminNetworkPolicy",
        _admin("BaselineAdminNetworkPolicy", "the cluster-wide default after NetworkPolicies"),
    ),
    "ClusterNetworkPolicy": (
        "io.k8s.networking.policy.v1alpha2.ClusterNetworkPolicy",
        _admin("ClusterNetworkPolicy", "cluster-wide rules in the Admin or the Baseline tier"),
    ),
}
"""Schema name and schema per kind, for ``kubectl explain`` (policy kinds only)."""


def root() -> dict[str, Any]:
    """``/openapi/v3``: one entry per served group/version with a content hash."""
    out: dict[str, Any] = {}
    for res in RESOURCES:
        path = _gv_path(res.group, res.version)
        if path in out:
            continue
        doc = gv_document(res.group, res.version)
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()
        out[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": out}
