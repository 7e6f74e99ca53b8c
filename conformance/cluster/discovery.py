"""Discovery documents (``/api``, ``/apis``, ``/api/v1``, ``/apis/G/V``, ``/version``) and ``Status`` bodies.

Why: ``kubectl`` maps kinds to URLs through discovery, and every client decodes errors from
``Status`` objects; both must have the real shapes.
"""

from __future__ import annotations

from typing import Any

from conformance.cluster import EMBEDDED_MARK
from conformance.cluster.store import RESOURCES, Resource

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": f"v1.32.0-{EMBEDDED_MARK}",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def group_versions() -> dict[str, list[str]]:
    """Group name -> served versions, preferred first."""
    out: dict[str, list[str]] = {}
    for res in RESOURCES:
        versions = out.setdefault(res.group, [])
        if res.version not in versions:
            versions.append(res.version)
    return out


def find(group: str, version: str, plural: str) -> Resource | None:
    for res in RESOURCES:
        if res.group == group and res.version == version and res.plural == plural:
            return res
    return None


def api_versions(server: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}],
    }


def api_groups() -> dict[str, Any]:
    groups = []
    for group, versions in group_versions().items():
        if not group:
            continue
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        groups.append({"name": group, "versions": entries, "preferredVersion": entries[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    served = [r for r in RESOURCES if r.group == group and r.version == version]
    if not served:
        return None
    resources: list[dict[str, Any]] = []
    for res in served:
        resources.append(
            {
                "name": res.plural,
                "singularName": res.singular,
                "namespaced": res.namespaced,
                "kind": res.kind,
                "verbs": VERBS,
                "shortNames": list(res.short_names),
                # `kubectl get all` lists the resources in category "all" (pods and services,
                # as on a real cluster).
                **({"categories": ["all"]} if res.plural in ("pods", "services") else {}),
            }
        )
        if res.plural == "pods":
            resources.append(
                {
                    "name": "pods/exec",
                    "singularName": "",
                    "namespaced": True,
                    "kind": "PodExecOptions",
                    "verbs": ["create", "get"],
                }
            )
            resources.append(
                {
                    "name": "pods/status",
                    "singularName": "",
                    "namespaced": True,
                    "kind": "Pod",
                    "verbs": ["get"],
                }
            )
    gv = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }


def status(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A ``metav1.Status`` failure body."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return body
