"""The embedded API server's object store: resource kinds, objects, resource versions, events.

Why: one in-memory source of truth that API handlers write and the controller (pods, policy
enforcement) and watchers observe through synchronous change events.
"""

from __future__ import annotations

import builtins
import copy
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Resource:
    """One served resource kind (plural ``pods``, kind ``Pod``...)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    builtin: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``pods`` or ``networkpolicies.networking.k8s.io`` as errors name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def singular(self) -> str:
        return self.kind.lower()


NAMESPACES = Resource("", "v1", "namespaces", "Namespace", False, ("ns",))
PODS = Resource("", "v1", "pods", "Pod", True, ("po",))
NETWORK_POLICIES = Resource(
    "networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)
)
ADMIN_NETWORK_POLICIES = Resource(
    "policy.networking.k8s.io",
    "v1alpha1",
    "adminnetworkpolicies",
    "AdminNetworkPolicy",
    False,
    ("anp",),
    False,
)
BASELINE_ADMIN_NETWORK_POLICIES = Resource(
    "policy.networking.k8s.io",
    "v1alpha1",
    "baselineadminnetworkpolicies",
    "BaselineAdminNetworkPolicy",
    False,
    ("banp",),
    False,
)
CLUSTER_NETWORK_POLICIES = Resource(
    "policy.networking.k8s.io",
    "v1alpha2",
    "clusternetworkpolicies",
    "ClusterNetworkPolicy",
    False,
    ("cnp",),
    False,
)
SERVICES = Resource("", "v1", "services", "Service", True, ("svc",))
EVENTS = Resource("", "v1", "events", "Event", True, ("ev",))
NODES = Resource("", "v1", "nodes", "Node", False, ("no",))
RESOURCES = (
    NAMESPACES,
    NODES,
    PODS,
    SERVICES,
    EVENTS,
    NETWORK_POLICIES,
    ADMIN_NETWORK_POLICIES,
    BASELINE_ADMIN_NETWORK_POLICIES,
    CLUSTER_NETWORK_POLICIES,
)

Listener = Callable[[str, Resource, dict[str, Any]], None]
"""Called with (``ADDED``/``MODIFIED``/``DELETED``, resource, object copy) after each change."""


class AlreadyExists(Exception):
    """Create of an existing name (HTTP 409)."""


class NotFound(Exception):
    """No such object (HTTP 404)."""


class Conflict(Exception):
    """Update with a stale ``resourceVersion`` (HTTP 409)."""


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Store:
    """Objects keyed by (plural, namespace, name); every write bumps one global resourceVersion."""

    def __init__(self) -> None:
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._rv = 1
        self.listeners: list[Listener] = []

    @property
    def resource_version(self) -> str:
        return str(self._rv)

    def _emit(self, event: str, res: Resource, obj: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            listener(event, res, copy.deepcopy(obj))

    def _bump(self, obj: dict[str, Any]) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)

    def get(self, res: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self._objects.get((res.plural, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def exists(self, res: Resource, namespace: str, name: str) -> bool:
        return (res.plural, namespace, name) in self._objects

    def list(self, res: Resource, namespace: str | None = None) -> list[dict[str, Any]]:
        keys = sorted(
            k
            for k in self._objects
            if k[0] == res.plural and (namespace is None or k[1] == namespace)
        )
        return [copy.deepcopy(self._objects[k]) for k in keys]

    def peek(self, res: Resource) -> builtins.list[dict[str, Any]]:
        """Objects without copying, for read-only hot paths (the policy compiler)."""
        return [v for k, v in self._objects.items() if k[0] == res.plural]

    def create(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        key = (res.plural, meta.get("namespace", "") if res.namespaced else "", meta["name"])
        if key in self._objects:
            raise AlreadyExists(meta["name"])
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta.pop("deletionTimestamp", None)
        if not res.builtin or res is NETWORK_POLICIES:
            meta["generation"] = 1
        obj["kind"], obj["apiVersion"] = res.kind, res.api_version
        self._bump(obj)
        self._objects[key] = obj
        self._emit("ADDED", res, obj)
        return copy.deepcopy(obj)

    def update(
        self, res: Resource, obj: dict[str, Any], check_version: bool = True
    ) -> dict[str, Any]:
        meta = obj["metadata"]
        key = (res.plural, meta.get("namespace", "") if res.namespaced else "", meta["name"])
        cur = self._objects.get(key)
        if cur is None:
            raise NotFound(meta["name"])
        wanted = meta.get("resourceVersion")
        if check_version and wanted and wanted != cur["metadata"]["resourceVersion"]:
            raise Conflict(meta["name"])
        for fixed in ("uid", "creationTimestamp"):
            meta[fixed] = cur["metadata"][fixed]
        if "generation" in cur["metadata"]:
            changed = obj.get("spec") != cur.get("spec")
            meta["generation"] = cur["metadata"]["generation"] + (1 if changed else 0)
        obj["kind"], obj["apiVersion"] = res.kind, res.api_version
        if obj == cur:
            return copy.deepcopy(cur)
        self._bump(obj)
        self._objects[key] = obj
        self._emit("MODIFIED", res, obj)
        return copy.deepcopy(obj)

    def delete(self, res: Resource, namespace: str, name: str) -> dict[str, Any]:
        key = (res.plural, namespace if res.namespaced else "", name)
        obj = self._objects.pop(key, None)
        if obj is None:
            raise NotFound(name)
        self._bump(obj)
        self._emit("DELETED", res, obj)
        return copy.deepcopy(obj)
