"""Minimal OpenAPI v3 documents: enough for kubectl to see server-side field validation.

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
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }


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
