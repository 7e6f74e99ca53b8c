"""Reference evaluator: the exact allow/deny decision for one connection, with its reasons.

Rules implemented (networking.k8s.io/v1 NetworkPolicy API docs):

1. A pod is isolated for a direction when a NetworkPolicy in its namespace selects it through
   ``spec.podSelector`` and lists that direction in ``policyTypes`` (NetworkPolicySpec.policyTypes).
2. A non-isolated side allows everything; an isolated side allows a connection only when some rule
   of some policy that isolates it matches: allow rules are a union across policies.
3. A connection from pod A to B is allowed only if A's egress side and B's ingress side both allow
   it. Replies of an allowed connection are implicitly allowed.
4. A rule matches when one of its peers matches the other end (or it lists no peers) and one of its
   ports matches (or it lists no ports). NetworkPolicyIngressRule.from / EgressRule.to / ports.
5. Peer: ``podSelector`` alone selects pods in the policy's namespace; ``namespaceSelector`` alone
   selects all pods of matching namespaces; both select matching pods in matching namespaces;
   ``ipBlock`` matches by IP (pods and external hosts alike), minus ``except``.
6. Port: protocol (default TCP) must equal; a numeric port matches it or the range up to
   ``endPort``; a named port matches the *destination* pod's container port of that name and
   protocol, in both directions; no port matches every port of the protocol.
7. Traffic from a pod to itself is implementation-defined (kubernetes issue 95879) unless the
   caller asks to include it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from conformance._types import Direction, PodKey, Protocol, TargetKey
from conformance.model import ClusterState, ExternalHost, Pod
from conformance.netpol import (
    NetworkPolicy,
    NetworkPolicyPeer,
    NetworkPolicyPort,
    NetworkPolicyRule,
)


class Verdict(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    IMPLEMENTATION_DEFINED = "implementation-defined"


@dataclass(frozen=True)
class RuleRef:
    """One rule of one policy: ``NetworkPolicy y/allow-x ingress rule 0``."""

    kind: str
    policy: str
    direction: Direction
    index: int

    def __str__(self) -> str:
        return f"{self.kind} {self.policy} {self.direction.lower()} rule {self.index}"


@dataclass(frozen=True)
class SideDecision:
    """What one side (source egress or destination ingress) decided, and why."""

    direction: Direction
    endpoint: TargetKey
    allowed: bool
    isolated_by: tuple[str, ...] = ()
    allowed_by: tuple[RuleRef, ...] = ()
    applicable: bool = True

    def describe(self) -> str:
        side = f"{self.direction.lower()} of {self.endpoint}"
        if not self.applicable:
            return f"{side}: not a pod, no policy applies"
        if not self.isolated_by:
            return f"{side}: not isolated (no NetworkPolicy selects it for {self.direction})"
        iso = ", ".join(self.isolated_by)
        if self.allowed:
            return f"{side}: isolated by {iso}; allowed by {', '.join(map(str, self.allowed_by))}"
        return f"{side}: isolated by {iso}; no rule allows it"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    egress: SideDecision
    ingress: SideDecision
    policy_allows: bool
    self_traffic: bool = False

    @property
    def reason(self) -> str:
        text = f"{self.egress.describe()}; {self.ingress.describe()}"
        if self.self_traffic:
            outcome = "allow" if self.policy_allows else "deny"
            text = f"self traffic is implementation-defined (kubernetes#95879; policy says {outcome}); {text}"
        return text


class Evaluator:
    """Evaluates connections for one cluster state and one set of NetworkPolicies.

    Selection of pods by each policy is computed once, so a full truth table costs one pass over
    the rules of the isolating policies per cell.
    """

    def __init__(
        self,
        state: ClusterState,
        policies: Iterable[NetworkPolicy],
        *,
        include_self: bool = False,
    ) -> None:
        self.state = state
        self.policies = tuple(policies)
        self.include_self = include_self
        self._isolating: dict[tuple[PodKey, Direction], list[NetworkPolicy]] = {}
        for policy in self.policies:
            for pod in state.pods_in(policy.namespace):
                if pod.host_network:
                    continue  # Host-network pods are outside NetworkPolicy's scope.
                if policy.pod_selector.matches(pod.labels):
                    for direction in policy.policy_types:
                        self._isolating.setdefault((pod.key, direction), []).append(policy)

    def isolating(self, pod: PodKey, direction: Direction) -> tuple[NetworkPolicy, ...]:
        """Policies that select ``pod`` for ``direction`` (rule 1)."""
        return tuple(self._isolating.get((pod, direction), ()))

    def decide(self, source: PodKey, target: TargetKey, port: int, protocol: Protocol) -> Decision:
        src = self.state.pod(source)
        dst = self._target(target)
        egress = self._side(Direction.EGRESS, src, other=dst, dst=dst, port=port, protocol=protocol)
        if isinstance(dst, Pod):
            ingress = self._side(
                Direction.INGRESS, dst, other=src, dst=dst, port=port, protocol=protocol
            )
        else:
            ingress = SideDecision(Direction.INGRESS, target, True, applicable=False)
        allows = egress.allowed and ingress.allowed  # Rule 3.
        self_traffic = source == target
        if self_traffic and not self.include_self:
            verdict = Verdict.IMPLEMENTATION_DEFINED  # Rule 7.
        else:
            verdict = Verdict.ALLOW if allows else Verdict.DENY
        return Decision(verdict, egress, ingress, allows, self_traffic)

    def _target(self, key: TargetKey) -> Pod | ExternalHost:
        if key.startswith("@"):
            for ext in self.state.externals:
                if ext.key == key:
                    return ext
            raise KeyError(key)
        return self.state.pod(key)

    def _side(
        self,
        direction: Direction,
        pod: Pod,
        *,
        other: Pod | ExternalHost,
        dst: Pod | ExternalHost,
        port: int,
        protocol: Protocol,
    ) -> SideDecision:
        policies = self.isolating(pod.key, direction)
        if not policies:
            return SideDecision(direction, pod.key, True)  # Rule 2: not isolated.
        allowed_by = tuple(
            RuleRef("NetworkPolicy", policy.key, direction, i)
            for policy in policies
            for i, rule in enumerate(policy.rules(direction))
            if self._rule_matches(policy, rule, other, dst, port, protocol)
        )
        return SideDecision(
            direction, pod.key, bool(allowed_by), tuple(p.key for p in policies), allowed_by
        )

    def _rule_matches(
        self,
        policy: NetworkPolicy,
        rule: NetworkPolicyRule,
        other: Pod | ExternalHost,
        dst: Pod | ExternalHost,
        port: int,
        protocol: Protocol,
    ) -> bool:
        # Rule 4: empty peers / ports match everything.
        peers_ok = not rule.peers or any(self._peer_matches(policy, p, other) for p in rule.peers)
        return peers_ok and (
            not rule.ports or any(_port_matches(p, dst, port, protocol) for p in rule.ports)
        )

    def _peer_matches(
        self, policy: NetworkPolicy, peer: NetworkPolicyPeer, other: Pod | ExternalHost
    ) -> bool:
        if peer.ip_block is not None:
            return other.ip is not None and peer.ip_block.contains(other.ip)  # Rule 5, ipBlock.
        if not isinstance(other, Pod) or other.host_network:
            return False
        if peer.namespace_selector is None:
            if other.namespace != policy.namespace:
                return False
        elif not peer.namespace_selector.matches(
            self.state.namespace(other.namespace).effective_labels()
        ):
            return False
        return peer.pod_selector is None or peer.pod_selector.matches(other.labels)


def _port_matches(
    rule_port: NetworkPolicyPort, dst: Pod | ExternalHost, port: int, protocol: Protocol
) -> bool:
    if rule_port.protocol != protocol:
        return False
    if rule_port.port is None:
        return True
    if isinstance(rule_port.port, str):
        # Rule 6: a named port is looked up on the destination pod, whatever the direction.
        return isinstance(dst, Pod) and dst.named_port(rule_port.port, protocol) == port
    if rule_port.end_port is not None:
        return rule_port.port <= port <= rule_port.end_port
    return rule_port.port == port
