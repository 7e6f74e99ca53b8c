"""The policy kinds the harness understands: the one registry of their APIs.

Each ``Kind`` names what every layer needs about a served kind: its API group and version (for
``apiVersion`` and discovery), its REST resource (``plural``) and scope (for API paths), and the
scenario ``requires:`` feature that gates it (``conformance.scenario.schema.Feature``; NetworkPolicy
is always served and needs none). Pure data: no Kubernetes client here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

ANP = "AdminNetworkPolicy"
BANP = "BaselineAdminNetworkPolicy"
CNP = "ClusterNetworkPolicy"

_POLICY_GROUP = "policy.networking.k8s.io"


@dataclass(frozen=True)
class Kind:
    """One served kind: API group/version, REST resource, scope and the feature gating it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    feature: str | None = None
    """The scenario ``requires:`` feature that gates this kind; None when nothing gates it."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


NETWORK_POLICY = Kind("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True)

ADMIN_KINDS: Mapping[str, Kind] = {
    ANP: Kind(_POLICY_GROUP, "v1alpha1", "adminnetworkpolicies", ANP, False, ANP),
    BANP: Kind(_POLICY_GROUP, "v1alpha1", "baselineadminnetworkpolicies", BANP, False, BANP),
    CNP: Kind(_POLICY_GROUP, "v1alpha2", "clusternetworkpolicies", CNP, False, CNP),
}
"""The cluster-scoped admin policy kinds (kubernetes-sigs/network-policy-api), by kind."""

POLICY_KINDS: Mapping[str, Kind] = {NETWORK_POLICY.kind: NETWORK_POLICY, **ADMIN_KINDS}
"""Every policy kind, by kind: NetworkPolicy first, then the admin kinds."""


def is_admin_kind(obj: Mapping[str, Any]) -> bool:
    """Whether a verbatim object is one of the cluster-scoped admin policy kinds."""
    return obj.get("kind") in ADMIN_KINDS


def api_kinds(objects: Iterable[Mapping[str, Any]]) -> tuple[Kind, ...]:
    """The admin API kinds among verbatim policy objects, first-seen order, without repeats.

    What a runner checks against the cluster's discovery before applying a scenario's objects, e.g.
    ``api_kinds(src.obj for step in scenario.step_policies for src in step)``.
    """
    seen: dict[str, Kind] = {}
    for obj in objects:
        info = ADMIN_KINDS.get(str(obj.get("kind", "")))
        if info is not None:
            seen.setdefault(info.kind, info)
    return tuple(seen.values())


__all__ = [
    "ADMIN_KINDS",
    "ANP",
    "BANP",
    "CNP",
    "NETWORK_POLICY",
    "POLICY_KINDS",
    "Kind",
    "api_kinds",
    "is_admin_kind",
]
