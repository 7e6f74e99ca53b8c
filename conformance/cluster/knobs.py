"""Knobs that make the embedded cluster behave like an imperfect CNI (see docs/cluster.md).

Why: the runner's handling of slow propagation and of real enforcement bugs must be tested against
a dataplane that really has them; each deviation imitates a class of bug seen in real CNIs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from conformance.errors import ConformanceError


class Deviation(StrEnum):
    """A deliberate departure from networking.k8s.io/v1 semantics."""

    IGNORE_EXCEPT = "ignore-except"
    """``ipBlock.except`` is ignored: the whole ``cidr`` is allowed."""
    IGNORE_ENDPORT = "ignore-endport"
    """``endPort`` is ignored: only the first port of a range is allowed."""
    NAMED_PORT_WRONG_POD = "named-port-wrong-pod"
    """Named ports are resolved on the sending pod instead of the destination pod (both directions)."""
    UDP_UNFILTERED = "udp-unfiltered"
    """UDP is never filtered."""
    FIRST_POD_ONLY = "first-pod-only"
    """A policy is applied only to the first (oldest) pod its podSelector matches."""
    IGNORE_LABEL_CHANGES = "ignore-label-changes"
    """Pod label changes after a pod started are not seen by enforcement."""
    IGNORE_NAMESPACE_LABEL_CHANGES = "ignore-namespace-label-changes"
    """Namespace label changes after the namespace was created are not seen by enforcement."""
    DELETED_POLICY_ENFORCED = "deleted-policy-enforced"
    """A deleted NetworkPolicy stays enforced (as long as its namespace exists)."""
    IGNORE_PROTOCOL = "ignore-protocol"
    """A NetworkPolicy port entry matches its port numbers on every protocol."""
    LAST_POLICY_WINS = "last-policy-wins"
    """Of several NetworkPolicies selecting a pod in one direction only the last (by name) counts."""
    PEER_SELECTORS_OR = "peer-selectors-or"
    """A NetworkPolicy peer with namespaceSelector and podSelector matches either, not both."""
    EMPTY_POD_SELECTOR_NOTHING = "empty-pod-selector-nothing"
    """An empty ``podSelector: {}`` NetworkPolicy peer matches no pod instead of every pod."""
    STATELESS = "stateless"
    """Replies are filtered like new packets by the replying pod's egress rules (no conntrack)."""
    PASS_AS_ALLOW = "pass-as-allow"
    """An admin-tier ``Pass`` allows the connection instead of handing it to the next tier."""
    ADMIN_PRIORITY_INVERTED = "admin-priority-inverted"
    """Admin-tier policies are evaluated by descending priority: the highest number wins."""
    IGNORE_BASELINE = "ignore-baseline"
    """BaselineAdminNetworkPolicy and Baseline-tier ClusterNetworkPolicy rules are ignored."""
    STALE_ADDRESS_RULES = "stale-address-rules"
    """A new pod given a deleted pod's address (handed out first) keeps that pod's rules."""
    CROSS_NODE_INGRESS_UNENFORCED = "cross-node-ingress-unenforced"
    """Ingress rules are skipped for traffic that arrives from another node or from outside."""
    SAME_NODE_EGRESS_SKIPPED = "same-node-egress-skipped"
    """Egress rules are skipped for traffic between pods on one node (it never leaves the node)."""
    NODE_TRAFFIC_FILTERED = "node-traffic-filtered"
    """Traffic between a pod and its own node is filtered by NetworkPolicy like any other."""


@dataclass(frozen=True)
class Knobs:
    """Enforcement behaviour selected at ``cluster up``."""

    enforcement_delay: float = 0.0
    deviations: frozenset[Deviation] = frozenset()

    def has(self, deviation: Deviation) -> bool:
        return deviation in self.deviations

    @staticmethod
    def parse(delay: float, names: Iterable[str]) -> Knobs:
        """Build knobs from user input; an unknown deviation is a one-line error."""
        if delay < 0:
            raise ConformanceError(f"--enforcement-delay must be >= 0, got {delay}")
        out: set[Deviation] = set()
        for name in names:
            for part in (p.strip() for p in name.split(",") if p.strip()):
                try:
                    out.add(Deviation(part))
                except ValueError:
                    known = ", ".join(d.value for d in Deviation)
                    raise ConformanceError(f"unknown deviation {part!r}; known: {known}") from None
        return Knobs(delay, frozenset(out))
