"""Why a rule matched a connection, or why it did not: the words of a cell's reason.

A denied cell names the rule that came closest (one of its peers or its ports matched, only the
other did not) and what kept it from matching: an address inside ``except``, a port outside
``port..endPort``, what a named port resolves to on the destination, the label a selector wanted.
An allowed cell names the peer and port that matched. The same holds for the admin tiers
(AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy), whose rules can also miss
because the policy's subject does not select the pod, an address is outside every ``networks``
CIDR, or the other end is not a node. Pure functions over the model; the evaluator calls them
only when it writes a reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from conformance.api.adminpol import (
    AdminPeer,
    AdminPolicy,
    AdminPort,
    AdminRule,
    Subject,
)
from conformance.api.model import Endpoint, ExternalHost, Pod
from conformance.api.netpol import (
    NetworkPolicy,
    NetworkPolicyPeer,
    NetworkPolicyPort,
    NetworkPolicyRule,
)
from conformance.api.selectors import LabelSelector
from conformance.api.types import AddressFamily, Direction, L4Protocol

LabelsOf = Callable[[str], Mapping[str, str]]
"""A namespace's labels (``kubernetes.io/metadata.name`` included)."""

NodeLabelsOf = Callable[[str | None], Mapping[str, str] | None]
"""A node's labels (the kubelet's included), None when the node is not known."""

_MAX_PARTS = 3  # reasons name at most this many peers or ports, then "..."


def selector_miss(selector: LabelSelector, labels: Mapping[str, str]) -> str:
    """The first term of ``selector`` that ``labels`` fail ("" if they match)."""
    for key, value in sorted(selector.match_labels.items()):
        if labels.get(key) != value:
            has = f"{key}={labels[key]}" if key in labels else f"no label {key}"
            return f"{has}, not {key}={value}"
    for req in selector.match_expressions:
        if not req.matches(labels):
            has = f"{req.key}={labels[req.key]}" if req.key in labels else f"no label {req.key}"
            return f"{has} fails {req}"
    return ""


def peer_miss(
    policy: NetworkPolicy,
    peer: NetworkPolicyPeer,
    other: Endpoint,
    family: AddressFamily | None,
    labels_of: LabelsOf,
) -> str:
    """Why ``peer`` does not select ``other`` (the connection's other end)."""
    if peer.ip_block is not None:
        block = peer.ip_block
        ip = other.address(family)
        if ip is None:
            return f"{other.key} has no {family} address for {block}"
        if ip.version != block.cidr.version or ip not in block.cidr:
            return f"{other.key}'s address {ip} is outside {block.cidr}"
        inside = next((ex for ex in block.except_ if ip.version == ex.version and ip in ex), None)
        return "" if inside is None else f"{other.key}'s address {ip} is inside except {inside}"
    if isinstance(other, ExternalHost):
        return f"{other.key} is outside the cluster: only ipBlock peers match it"
    if peer.namespace_selector is None:
        if other.namespace != policy.namespace:
            return (
                f"{other.key} is in another namespace than {policy.key} (a podSelector alone "
                "selects pods of the policy's namespace)"
            )
    else:
        miss = selector_miss(peer.namespace_selector, labels_of(other.namespace))
        if miss:
            return f"the namespace of {other.key} has {miss}"
    if peer.pod_selector is not None:
        miss = selector_miss(peer.pod_selector, other.labels)
        if miss:
            return f"pod {other.key} has {miss}"
    if other.host_network:
        return f"{other.key} is a host-network pod, which pod and namespace selectors do not select"
    return ""


def port_miss(rule_port: NetworkPolicyPort, dst: Endpoint, port: int, protocol: L4Protocol) -> str:
    """Why ``rule_port`` does not match ``port/protocol`` at destination ``dst`` ("" if it does)."""
    if rule_port.protocol != protocol:
        return f"{rule_port} is {rule_port.protocol}, the connection {protocol}"
    if rule_port.port is None:
        return ""
    if isinstance(rule_port.port, str):
        return named_port_miss(rule_port.port, dst, port, protocol)
    if rule_port.end_port is not None:
        if rule_port.port <= port <= rule_port.end_port:
            return ""
        return f"port {port} is outside {rule_port.port}-{rule_port.end_port}"
    return "" if rule_port.port == port else f"port {port} is not {rule_port.port}"


def named_port_miss(name: str, dst: Endpoint, port: int, protocol: L4Protocol) -> str:
    """Why the named port ``name``, looked up on the destination, is not ``port/protocol``."""
    if not isinstance(dst, Pod):
        return f"named port {name} names no port of {dst.key} (outside the cluster)"
    number = dst.named_port(name, protocol)
    if number is None:
        return f"{dst.key} declares no {protocol} port named {name}"
    if number == port:
        return ""
    return f"named port {name} is {number}/{protocol} on {dst.key}, not {port}"


def _joined(parts: list[str]) -> str:
    text = "; ".join(parts[:_MAX_PARTS])
    return text + ("; ..." if len(parts) > _MAX_PARTS else "")


@dataclass(frozen=True)
class Seen:
    """A connection as one side's rules see it: the other end, the destination, port, protocol
    and address family, and how to read a namespace's labels."""

    other: Endpoint
    dst: Endpoint
    port: int
    protocol: L4Protocol
    family: AddressFamily | None
    labels_of: LabelsOf
    node_labels_of: NodeLabelsOf

    def peer_miss(self, policy: NetworkPolicy, peer: NetworkPolicyPeer) -> str:
        return peer_miss(policy, peer, self.other, self.family, self.labels_of)

    def port_miss(self, rule_port: NetworkPolicyPort) -> str:
        return port_miss(rule_port, self.dst, self.port, self.protocol)

    def admin_peer_miss(self, peer: AdminPeer) -> str:
        return admin_peer_miss(peer, self)

    def admin_port_miss(self, port: AdminPort) -> str:
        return admin_port_miss(port, self.dst, self.port, self.protocol)


def rule_miss(
    policy: NetworkPolicy, rule: NetworkPolicyRule, index: int, direction: Direction, seen: Seen
) -> tuple[int, str]:
    """How far rule ``index`` of ``policy`` is from matching (0 = one side matched, 1 = none)
    and why it does not."""
    port_reasons = [seen.port_miss(p) for p in rule.ports]
    peer_reasons = [seen.peer_miss(policy, p) for p in rule.peers]
    ports_ok = not rule.ports or not all(port_reasons)
    peers_ok = not rule.peers or not all(peer_reasons)
    parts = []
    if not peers_ok:
        parts.append(_joined(peer_reasons))
    if not ports_ok:
        parts.append(_joined(port_reasons))
    where = f"NetworkPolicy {policy.key} {direction.lower()} rule {index}"
    return (0 if peers_ok or ports_ok else 1), f"{where}: {'; '.join(parts)}"


def closest_miss(policies: tuple[NetworkPolicy, ...], direction: Direction, seen: Seen) -> str:
    """The rule that came closest to allowing a denied connection, and what it lacked ("" when
    the policies have no rules for the direction)."""
    misses = [
        rule_miss(policy, rule, i, direction, seen)
        for policy in policies
        for i, rule in enumerate(policy.rules(direction))
    ]
    if not misses:
        return ""  # no rules at all: "no rule allows it" says everything
    return min(misses, key=lambda m: m[0])[1]


def rule_match(
    policy: NetworkPolicy, rule: NetworkPolicyRule, direction: Direction, seen: Seen
) -> str:
    """Which peer and port of a matching rule matched: ``from ipBlock 10.0.0.0/8, port 80/TCP``."""
    side = "from" if direction is Direction.INGRESS else "to"
    peer = next((p for p in rule.peers if not seen.peer_miss(policy, p)), None)
    who = f"{side} {peer}" if rule.peers and peer is not None else f"{side} anywhere (no peers)"
    match = next((p for p in rule.ports if not seen.port_miss(p)), None)
    if match is None:
        return f"{who}, any port"
    if isinstance(match.port, str):
        return f"{who}, named port {match.port} ({seen.port}/{seen.protocol} on {seen.dst.key})"
    return f"{who}, port {match}"


# -- admin tiers: AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy ----------


def subject_miss(subject: Subject, pod: Pod, labels_of: LabelsOf) -> str:
    """Why ``subject`` does not select ``pod`` ("" if it does). The words do not name the pod
    (the side of the reason does), so that one text serves every pod it holds for."""
    if pod.host_network:
        return "its subject never selects a host-network pod"
    what, miss = _selection_miss(subject, labels_of(pod.namespace), pod.labels)
    if what == "namespace":
        return f"its subject misses the pod's namespace, which has {miss}"
    return f"its subject misses the pod, which has {miss}" if miss else ""


def _selection_miss(
    selection: Subject | AdminPeer, ns_labels: Mapping[str, str], pod_labels: Mapping[str, str]
) -> tuple[str, str]:
    """What a ``namespaces`` or ``pods`` selection misses ("namespace" or "pod") and why, as
    ``selector_miss`` words it; ("", "") when it selects."""
    if selection.namespaces is not None:
        miss = selector_miss(selection.namespaces, ns_labels)
        return ("namespace", miss) if miss else ("", "")
    assert selection.pods is not None
    miss = selector_miss(selection.pods.namespace_selector, ns_labels)
    if miss:
        return "namespace", miss
    miss = selector_miss(selection.pods.pod_selector, pod_labels)
    return ("pod", miss) if miss else ("", "")


def admin_peer_miss(peer: AdminPeer, seen: Seen) -> str:
    """Why admin ``peer`` does not match the other end ("" if it does, or if that cannot be
    decided offline: a domain name of an outside host, a node that is not known)."""
    other = seen.other
    if peer.networks:
        nets = ", ".join(map(str, peer.networks))
        ip = other.address(seen.family)
        if ip is None:
            return f"{other.key} has no {seen.family} address for networks {nets}"
        return (
            "" if peer.contains_ip(ip) else f"{other.key}'s address {ip} is outside networks {nets}"
        )
    if peer.domain_names:
        if isinstance(other, ExternalHost):
            return ""
        return f"{other.key} is a pod, and domainNames match only destinations outside the cluster"
    if peer.nodes is not None:
        if not isinstance(other, Pod) or not other.host_network:
            return f"{other.key} is not a node (a nodes peer matches nodes and host-network pods)"
        labels = seen.node_labels_of(other.node)
        miss = "" if labels is None else selector_miss(peer.nodes, labels)
        return f"node {other.node} has {miss}" if miss else ""
    if not isinstance(other, Pod):
        return f"{other.key} is outside the cluster: {peer} selects pods only"
    if other.host_network:
        return f"{other.key} is a host-network pod, which {peer} never selects"
    what, miss = _selection_miss(peer, seen.labels_of(other.namespace), other.labels)
    if what == "namespace":
        return f"the namespace of {other.key} has {miss}"
    return f"pod {other.key} has {miss}" if miss else ""


def admin_port_miss(p: AdminPort, dst: Endpoint, port: int, protocol: L4Protocol) -> str:
    """Why admin port ``p`` does not cover ``port/protocol`` at ``dst`` ("" if it does, or if a
    v1alpha1 range with start >= end leaves it undefined)."""
    if p.named_port is not None:
        return named_port_miss(p.named_port, dst, port, protocol)
    if p.protocol != protocol:
        return f"{p} is {p.protocol}, the connection {protocol}"
    if p.number_matches(port, protocol) is not False:
        return ""
    if p.end_port is not None:
        low, high = sorted((p.port or 0, p.end_port))
        return f"port {port} is outside {low}-{high}"
    return f"port {port} is not {p.port}"


def admin_rule_miss(rule: AdminRule, seen: Seen, subject: str = "") -> tuple[int, str]:
    """How many of subject, peers and ports keep ``rule`` from matching (0: it matches), and
    why; ``subject`` is why the policy's subject misses the pod ("" when it selects it)."""
    peer_reasons = [seen.admin_peer_miss(p) for p in rule.peers]
    parts = [subject] if subject else []
    if not peer_reasons or all(peer_reasons):
        parts.append(_joined(peer_reasons) or "the rule lists no peers")
    if rule.ports is not None:
        port_reasons = [seen.admin_port_miss(p) for p in rule.ports]
        if not port_reasons or all(port_reasons):
            parts.append(_joined(port_reasons) or "the rule lists no ports")
    return len(parts), "; ".join(parts)


def closest_admin_miss(
    candidates: Iterable[tuple[AdminPolicy, str]],
    direction: Direction,
    seen: Seen,
) -> tuple[AdminPolicy, AdminRule, str] | None:
    """The admin rule that came closest to allowing a denied connection, and what it lacked.

    ``candidates`` are the policies in evaluation order, each with why its subject misses the
    side's pod ("" when it selects it); only Allow/Accept rules count, and a policy whose subject misses the pod only if the rule
    itself matches. A rule that matches in full was shadowed by an earlier one (the
    reason's "passed by" names it), so it is no near miss. None when no rule qualifies.
    """
    best: tuple[int, AdminPolicy, AdminRule, str] | None = None
    for policy, subject in candidates:
        for rule in policy.rules(direction):
            if not rule.action.allows:
                continue
            distance, why = admin_rule_miss(rule, seen, subject)
            if subject and distance > 1:
                continue  # a policy that does not apply to the pod is near only if all else matches
            if distance and (best is None or distance < best[0]):
                best = (distance, policy, rule, why)
    return None if best is None else best[1:]


def admin_rule_match(rule: AdminRule, direction: Direction, seen: Seen) -> str:
    """Which peer and port of a matching admin rule matched: ``to namespaces {team=a}, port 80/TCP``."""
    side = "from" if direction is Direction.INGRESS else "to"
    peer = next((p for p in rule.peers if not seen.admin_peer_miss(p)), None)
    who = (
        f"{side} {peer}" if peer is not None else f"{side} {rule.peers[0]}" if rule.peers else side
    )
    if rule.ports is None:
        return f"{who}, any port"
    match = next((p for p in rule.ports if not seen.admin_port_miss(p)), None)
    if match is None:
        return who
    if match.named_port is not None:
        return (
            f"{who}, named port {match.named_port} ({seen.port}/{seen.protocol} on {seen.dst.key})"
        )
    return f"{who}, port {match}"
