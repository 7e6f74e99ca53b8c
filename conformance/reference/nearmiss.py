"""Why a NetworkPolicy rule matched a connection, or why it did not: the words of a cell's reason.

A denied cell names the rule that came closest (one of its peers or its ports matched, only the
other did not) and what kept it from matching: an address inside ``except``, a port outside
``port..endPort``, what a named port resolves to on the destination, the label a selector wanted.
An allowed cell names the peer and port that matched. Pure functions over the model; the
evaluator calls them only when it writes a reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

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
        if not isinstance(dst, Pod):
            return f"named port {rule_port.port} names no port of {dst.key} (outside the cluster)"
        number = dst.named_port(rule_port.port, protocol)
        if number is None:
            return f"{dst.key} declares no {protocol} port named {rule_port.port}"
        if number == port:
            return ""
        return f"named port {rule_port.port} is {number}/{protocol} on {dst.key}, not {port}"
    if rule_port.end_port is not None:
        if rule_port.port <= port <= rule_port.end_port:
            return ""
        return f"port {port} is outside {rule_port.port}-{rule_port.end_port}"
    return "" if rule_port.port == port else f"port {port} is not {rule_port.port}"


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

    def peer_miss(self, policy: NetworkPolicy, peer: NetworkPolicyPeer) -> str:
        return peer_miss(policy, peer, self.other, self.family, self.labels_of)

    def port_miss(self, rule_port: NetworkPolicyPort) -> str:
        return port_miss(rule_port, self.dst, self.port, self.protocol)


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
