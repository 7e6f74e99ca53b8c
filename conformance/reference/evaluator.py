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

Nodes, host-network pods and outside clients (concepts/services-networking/network-policies):

N1. Host-network pods run in their node's network namespace: no policy selects them (their side
    always allows), and as the other end they are the node itself, at the node's address.
N2. "Traffic to and from the node where a Pod is running is always allowed, regardless of the IP
    address of the Pod or the node": a NetworkPolicy that isolates a pod never blocks its own
    node (a host-network pod on the same node). Admin tiers come first and may (the
    network-policy-api node-peer tests deny egress to nodes from pods on any node).
N3. Traffic with a host-network pod on another node is left to the plugin ("NetworkPolicy
    behaviour for hostNetwork pods is undefined"): a pod or namespace selector that would select
    it as a pod may or may not match (plugins that cannot tell host-network pods apart treat it
    as node traffic), and the source address of node traffic arriving from another node may be
    the node's or a tunnel/SNAT address, so an ingress ``ipBlock`` is undecidable for it. Either
    makes the side implementation-defined unless some other rule certainly allows. An egress
    ``ipBlock`` matches the node's address. A rule without peers matches it.
N4. An outside client is a source only (no policy applies on its side); ingress rules match it by
    ``ipBlock`` only, and the address it connects from is its own (no NAT in between).

Admin tiers (policy.networking.k8s.io AdminNetworkPolicy and BaselineAdminNetworkPolicy v1alpha1,
ClusterNetworkPolicy v1alpha2; see docs/admin-policies.md):

8. Each side is decided in tiers: Admin (ANP, CNP tier Admin), then NetworkPolicy, then Baseline
   (BANP, CNP tier Baseline), then the default allow (ClusterNetworkPolicySpec.tier).
9. Within a tier, policies are checked by priority (lower first) and a policy's rules in the order
   written; the first matching rule decides. Allow/Accept and Deny are final; Pass skips the rest
   of the tier (AdminNetworkPolicyRuleAction, ClusterNetworkPolicyRuleAction).
10. If a NetworkPolicy isolates the pod for the direction, its result is final (rules 1-2);
    otherwise the Baseline tier decides. Admin policies never isolate a pod by themselves.
11. Policies of one tier with the same priority that both match a connection are undefined
    behaviour (Spec.priority); the side is implementation-defined, naming them, unless every
    choice leads to the same verdict. A BANP has no priority: it ties with the baseline-tier
    ClusterNetworkPolicies of the first priority that matches.
12. Subjects and ``namespaces``/``pods`` peers never include host-network pods (Spec.subject,
    AdminNetworkPolicyIngressPeer); ``networks`` match by IP, pods and nodes included; ``nodes``
    match no pod-network pod nor external endpoint;
    ``domainNames`` never match pods and match external endpoints undecidably (names are not
    resolved offline). ``nodes`` (egress only) match a host-network pod by its node's labels
    (undecidably if the node is not known). An undecidable first match makes the side
    implementation-defined.
13. Ports: ``portNumber``/``tcp|udp|sctp.destinationPort.number`` match protocol and number,
    ranges are inclusive, named ports resolve on the destination pod; no ports match all traffic.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TypeGuard

from conformance.api.adminpol import (
    AdminPeer,
    AdminPolicy,
    AdminPort,
    AdminRule,
    RuleAction,
    Tier,
)
from conformance.api.kinds import BANP
from conformance.api.model import ClusterState, Endpoint, ExternalHost, Pod, same_node
from conformance.api.netpol import (
    NetworkPolicy,
    NetworkPolicyPeer,
    NetworkPolicyPort,
    NetworkPolicyRule,
)
from conformance.api.types import AddressFamily, Direction, L4Protocol, PodKey, TargetKey
from conformance.reference import nearmiss

AnyPolicy = NetworkPolicy | AdminPolicy
"""Every policy kind the evaluator accepts."""

_WORD = re.compile(r"(?<![\w.-])[a-z0-9][-a-z0-9]*(?![\w-])")
"""A word of a reason's free text that may be a namespace name (DNS label)."""


class Verdict(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    IMPLEMENTATION_DEFINED = "implementation-defined"


class DecidingTier(StrEnum):
    """Which stage of rule 8 decided a side."""

    ADMIN = "Admin"
    NETWORK_POLICY = "NetworkPolicy"
    BASELINE = "Baseline"
    DEFAULT = "default"


@dataclass(frozen=True)
class RuleRef:
    """One rule of one policy: ``NetworkPolicy y/allow-x ingress rule 0``.

    Admin rules also carry the policy's tier/priority (``detail``), the rule's ``name`` and its
    ``action``: ``AdminNetworkPolicy deny-y (priority 10) egress rule 0 'to-y' (Deny)``.
    """

    kind: str
    policy: str
    direction: Direction
    index: int
    name: str = ""
    action: str = ""
    detail: str = ""
    matched: str = ""
    """Which peer and port of the rule matched (``from ipBlock 10.0.0.0/8, port 80/TCP``)."""
    missed: str = ""
    """For a near miss: what kept the rule from matching (``port 81 is outside 80-80``)."""

    def __str__(self) -> str:
        text = f"{self.kind} {self.policy}"
        if self.detail:
            text += f" ({self.detail})"
        text += f" {self.direction.lower()} rule {self.index}"
        if self.name:
            text += f" {self.name!r}"
        if self.action:
            text += f" ({self.action})"
        if self.matched:
            text += f" [{self.matched}]"
        return text


@dataclass(frozen=True)
class SideDecision:
    """What one side (source egress or destination ingress) decided, and why.

    ``allowed`` is True only for an allow; ``verdict`` also tells deny from implementation-defined.
    ``tier`` names the stage that decided (rule 8), ``decided_by`` the admin/baseline rule that
    decided, ``passed_by`` the Pass rules that sent evaluation to a later tier, ``tied`` the
    same-priority rules behind an implementation-defined (or agreeing) choice (rule 11).
    """

    direction: Direction
    endpoint: TargetKey
    allowed: bool
    isolated_by: tuple[str, ...] = ()
    allowed_by: tuple[RuleRef, ...] = ()
    applicable: bool = True
    verdict: Verdict = field(default=Verdict.ALLOW)
    tier: DecidingTier = DecidingTier.NETWORK_POLICY
    decided_by: RuleRef | None = None
    passed_by: tuple[RuleRef, ...] = ()
    tied: tuple[RuleRef, ...] = ()
    note: str = ""
    near: RuleRef | None = None
    """On a denied side: the admin rule that came closest to allowing (``missed`` says why not)."""

    def __post_init__(self) -> None:
        if self.verdict is not Verdict.IMPLEMENTATION_DEFINED:
            object.__setattr__(self, "verdict", Verdict.ALLOW if self.allowed else Verdict.DENY)

    def describe(self) -> str:
        text = self._describe()
        if self.near is not None:
            text += f"; closest admin rule: {self.near}: {self.near.missed}"
        return text

    def _describe(self) -> str:
        side = f"{self.direction.lower()} of {self.endpoint}"
        if not self.applicable:
            return f"{side}: {self.note or 'not a pod, no policy applies'}"
        passed = "".join(f"passed by {r}; " for r in self.passed_by)
        if self.verdict is Verdict.IMPLEMENTATION_DEFINED:
            if self.tied:
                names = " and ".join(map(str, self.tied))
                return (
                    f"{side}: {passed}implementation-defined: {names} have the same priority in "
                    f"the {self.tier} tier, both match and decide differently (the API lets an "
                    "implementation apply either)"
                )
            if self.decided_by is None:
                return f"{side}: {passed}implementation-defined: {self.note}"
            return f"{side}: {passed}implementation-defined: {self.decided_by} {self.note}"
        verb = "allowed" if self.allowed else "denied"
        if self.tier in (DecidingTier.ADMIN, DecidingTier.BASELINE):
            text = f"{side}: {passed}{verb} by {self.decided_by}"
            if self.tied:
                text += f" (also matched with the same priority, same outcome: {', '.join(map(str, self.tied))})"
            return text
        if not self.isolated_by:
            text = (
                f"{side}: {passed}not isolated (no NetworkPolicy selects it for {self.direction})"
            )
            return f"{text}; {self.note}" if self.note else text
        iso = ", ".join(self.isolated_by)
        if self.allowed and not self.allowed_by:
            return f"{side}: {passed}isolated by {iso}; {self.note}"
        if self.allowed:
            return f"{side}: {passed}isolated by {iso}; allowed by {', '.join(map(str, self.allowed_by))}"
        closest = f" (closest: {self.note})" if self.note else ""
        return f"{side}: {passed}isolated by {iso}; no rule allows it{closest}"


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
            outcome = combine(self.egress.verdict, self.ingress.verdict)
            text = f"self traffic is implementation-defined (kubernetes#95879; policy says {outcome}); {text}"
        return text

    def renamed(self, name: Callable[[str], str]) -> Decision:
        """The same decision with every pod key and policy name passed through ``name``.

        Why: the runner evaluates live objects (real namespace and policy names) but reports
        cells in the scenario's names; reasons must use the same names as their cells.
        """

        def text(t: str) -> str:
            # Free text names namespaces alone (a selector's kubernetes.io/metadata.name value)
            # and in ns/name keys: a word is renamed if the mapping renames it as a namespace.
            def word(m: re.Match[str]) -> str:
                probe = f"{m.group(0)}/\0"
                renamed = name(probe)
                return renamed[:-2] if renamed != probe else m.group(0)

            return _WORD.sub(word, t)

        def ref(r: RuleRef) -> RuleRef:
            return replace(r, policy=name(r.policy), matched=text(r.matched), missed=text(r.missed))

        def side(s: SideDecision) -> SideDecision:
            return replace(
                s,
                note=text(s.note),
                endpoint=name(s.endpoint),
                isolated_by=tuple(map(name, s.isolated_by)),
                allowed_by=tuple(map(ref, s.allowed_by)),
                decided_by=None if s.decided_by is None else ref(s.decided_by),
                passed_by=tuple(map(ref, s.passed_by)),
                tied=tuple(map(ref, s.tied)),
                near=None if s.near is None else ref(s.near),
            )

        return replace(self, egress=side(self.egress), ingress=side(self.ingress))


def combine(egress: Verdict, ingress: Verdict) -> Verdict:
    """Rule 3 with undecidable sides: a deny on either side decides; otherwise any doubt stays."""
    if Verdict.DENY in (egress, ingress):
        return Verdict.DENY
    if Verdict.IMPLEMENTATION_DEFINED in (egress, ingress):
        return Verdict.IMPLEMENTATION_DEFINED
    return Verdict.ALLOW


@dataclass(frozen=True)
class _Conn:
    """One side's view of a connection: the pod whose policies apply and the other end."""

    direction: Direction
    pod: Pod
    other: Endpoint
    dst: Endpoint
    port: int
    protocol: L4Protocol
    family: AddressFamily | None = None
    """Both ends' addresses of this family are matched against CIDRs (None: the primary ones)."""


@dataclass(frozen=True)
class _Hit:
    """The first rule of a policy that matches; ``certain`` False when only undecidably."""

    policy: AdminPolicy
    rule: AdminRule
    certain: bool = True


_Group = tuple[AdminPolicy, ...]


class Evaluator:
    """Evaluates connections for one cluster state and a set of policies of any supported kind.

    Selection of pods by each policy is computed once, so a full truth table costs one pass over
    the rules of the policies that select a cell's pods.
    """

    def __init__(
        self,
        state: ClusterState,
        policies: Iterable[AnyPolicy],
        *,
        include_self: bool = False,
    ) -> None:
        self.state = state
        self.policies = tuple(policies)
        self.include_self = include_self
        self._ns_labels: dict[str, Mapping[str, str]] = {}
        self._isolating: dict[tuple[PodKey, Direction], list[NetworkPolicy]] = {}
        admin: dict[tuple[PodKey, Direction], list[AdminPolicy]] = {}
        baseline: dict[tuple[PodKey, Direction], list[AdminPolicy]] = {}
        self._banp: dict[tuple[PodKey, Direction], AdminPolicy] = {}
        for policy in self.policies:
            if isinstance(policy, NetworkPolicy):
                self._add_network_policy(policy)
                continue
            for pod in state.pods:
                if not policy.subject.selects(pod, self._labels_of(pod.namespace)):
                    continue  # Rule 12: host-network pods are never subjects.
                for direction in Direction:
                    if not policy.rules(direction):
                        continue  # A policy without rules for a direction does not affect it.
                    key = (pod.key, direction)
                    if policy.kind == BANP:
                        self._banp[key] = policy
                    elif policy.tier is Tier.ADMIN:
                        admin.setdefault(key, []).append(policy)
                    else:
                        baseline.setdefault(key, []).append(policy)
        self._admin = {k: _groups(v) for k, v in admin.items()}
        self._baseline = {k: _groups(v) for k, v in baseline.items()}
        # Near misses (nearmiss.closest_admin_miss): every admin policy with rules for a
        # direction, whatever its subject, in evaluation order (a BANP after its tier's CNPs).
        ordered = sorted(
            (p for p in self.policies if isinstance(p, AdminPolicy)),
            key=lambda p: (p.kind == BANP, p.priority or 0, p.kind, p.name),
        )
        self._near_pool = {
            d: (
                tuple(p for p in ordered if p.rules(d) and p.tier is Tier.ADMIN and p.kind != BANP),
                tuple(
                    p for p in ordered if p.rules(d) and (p.tier is Tier.BASELINE or p.kind == BANP)
                ),
            )
            for d in Direction
        }

    def _add_network_policy(self, policy: NetworkPolicy) -> None:
        for pod in self.state.pods_in(policy.namespace):
            if pod.host_network:
                continue  # Host-network pods are outside NetworkPolicy's scope.
            if policy.pod_selector.matches(pod.labels):
                for direction in policy.policy_types:
                    self._isolating.setdefault((pod.key, direction), []).append(policy)

    def _labels_of(self, namespace: str) -> Mapping[str, str]:
        labels = self._ns_labels.get(namespace)
        if labels is None:
            labels = self._ns_labels[namespace] = self.state.namespace(namespace).effective_labels()
        return labels

    def isolating(self, pod: PodKey, direction: Direction) -> tuple[NetworkPolicy, ...]:
        """NetworkPolicies that select ``pod`` for ``direction`` (rule 1)."""
        return tuple(self._isolating.get((pod, direction), ()))

    def admin_policies(self, pod: PodKey, direction: Direction) -> tuple[AdminPolicy, ...]:
        """Admin and baseline tier policies whose subject selects ``pod`` for ``direction``."""
        key = (pod, direction)
        out = [p for g in self._admin.get(key, ()) for p in g]
        out += [p for g in self._baseline.get(key, ()) for p in g]
        if key in self._banp:
            out.append(self._banp[key])
        return tuple(out)

    def decide(
        self,
        source: TargetKey,
        target: TargetKey,
        port: int,
        protocol: L4Protocol,
        family: AddressFamily | None = None,
    ) -> Decision:
        """The verdict of ``source`` connecting to ``target`` at ``port/protocol`` over
        ``family`` (both ends' addresses of that family; None: each end's primary address)."""
        src = self.state.endpoint(source)
        dst = self.state.endpoint(target)
        egress = self._endpoint_side(Direction.EGRESS, src, dst, dst, port, protocol, family)
        ingress = self._endpoint_side(Direction.INGRESS, dst, src, dst, port, protocol, family)
        verdict = combine(egress.verdict, ingress.verdict)  # Rule 3.
        allows = verdict is Verdict.ALLOW
        self_traffic = source == target
        if self_traffic and not self.include_self:
            verdict = Verdict.IMPLEMENTATION_DEFINED  # Rule 7.
        if verdict is Verdict.DENY:
            # A denied cell names, per denying side, the admin rule that came closest to allowing.
            if isinstance(src, Pod) and not egress.allowed:
                c = _Conn(Direction.EGRESS, src, dst, dst, port, protocol, family)
                egress = self._with_near_miss(c, egress)
            if isinstance(dst, Pod) and not ingress.allowed:
                c = _Conn(Direction.INGRESS, dst, src, dst, port, protocol, family)
                ingress = self._with_near_miss(c, ingress)
        return Decision(verdict, egress, ingress, allows, self_traffic)

    def _endpoint_side(
        self,
        direction: Direction,
        end: Endpoint,
        other: Endpoint,
        dst: Endpoint,
        port: int,
        protocol: L4Protocol,
        family: AddressFamily | None,
    ) -> SideDecision:
        """The side of ``end``: decided by policy for a pod-network pod, else not applicable."""
        if isinstance(end, ExternalHost):
            return SideDecision(direction, end.key, True, applicable=False)
        if end.host_network:
            note = "a host-network pod (its node's network namespace): no policy selects it"
            return SideDecision(direction, end.key, True, applicable=False, note=note)
        return self._side(_Conn(direction, end, other, dst, port, protocol, family))

    # -- rule 8: the tiers, in order ---------------------------------------------------------

    def _with_near_miss(self, c: _Conn, side: SideDecision) -> SideDecision:
        """A denied ``side`` with the admin rule that came closest to allowing it: of the Admin
        tier when NetworkPolicy denied (its isolation is final, so no Baseline rule could have
        allowed), of both tiers when the Baseline tier denied. A side an admin Deny decided
        names the rule and what matched instead."""
        admin, baseline = self._near_pool[c.direction]
        if side.tier is DecidingTier.NETWORK_POLICY:
            pool = admin
        elif side.tier is DecidingTier.BASELINE:
            pool = admin + baseline
        else:
            return side
        candidates = ((p, nearmiss.subject_miss(p.subject, c.pod, self._labels_of)) for p in pool)
        found = nearmiss.closest_admin_miss(candidates, c.direction, self._seen(c))
        if found is None:
            return side
        policy, rule, why = found
        return replace(side, near=replace(_ref(policy, rule, c.direction), missed=why))

    def _side(self, c: _Conn) -> SideDecision:
        hits = _first_hits(self._admin.get((c.pod.key, c.direction), ()), self, c)
        if not hits:
            return self._network_policy_tier(c, ())
        return self._resolve(
            hits, c, DecidingTier.ADMIN, (), lambda ref: self._network_policy_tier(c, (ref,))
        )

    def _network_policy_tier(self, c: _Conn, passed: tuple[RuleRef, ...]) -> SideDecision:
        policies = self.isolating(c.pod.key, c.direction)
        if not policies:
            return self._baseline_tier(c, passed)
        isolated_by = tuple(p.key for p in policies)
        if _is_host_network(c.other) and same_node(c.pod, c.other):
            # Rule N2: isolation never blocks the pod's own node.
            note = (
                f"allowed: {c.other.key} is on the pod's own node, and traffic to and from a pod's "
                "node is always allowed (NetworkPolicy docs)"
            )
            return SideDecision(
                c.direction, c.pod.key, True, isolated_by, passed_by=passed, note=note
            )
        # Rules 1-2 and 10: a NetworkPolicy that isolates the pod decides, whatever the baseline.
        allowed_by: list[RuleRef] = []
        undecided: list[RuleRef] = []
        for policy in policies:
            for i, rule in enumerate(policy.rules(c.direction)):
                m = self._rule_matches(policy, rule, c)
                if m is None:
                    undecided.append(RuleRef("NetworkPolicy", policy.key, c.direction, i))
                elif m:
                    matched = nearmiss.rule_match(policy, rule, c.direction, self._seen(c))
                    allowed_by.append(
                        RuleRef("NetworkPolicy", policy.key, c.direction, i, matched=matched)
                    )
        if not allowed_by and undecided:
            names = ", ".join(map(str, undecided))
            note = (
                f"isolated by {', '.join(isolated_by)}; whether {names} matches "
                f"{c.other.key}, a host-network pod on another node, is left to the plugin "
                "(NetworkPolicy docs: behaviour for hostNetwork pods is undefined)"
            )
            return SideDecision(
                c.direction,
                c.pod.key,
                False,
                isolated_by,
                verdict=Verdict.IMPLEMENTATION_DEFINED,
                passed_by=passed,
                note=note,
            )
        note = ""
        if not allowed_by:
            note = nearmiss.closest_miss(policies, c.direction, self._seen(c))
        return SideDecision(
            c.direction,
            c.pod.key,
            bool(allowed_by),
            isolated_by,
            tuple(allowed_by),
            passed_by=passed,
            note=note,
        )

    def _seen(self, c: _Conn) -> nearmiss.Seen:
        """The connection as ``nearmiss`` describes it."""
        return nearmiss.Seen(
            c.other, c.dst, c.port, c.protocol, c.family, self._labels_of, self._node_labels_of
        )

    def _node_labels_of(self, name: str | None) -> Mapping[str, str] | None:
        node = self.state.node(name)
        return None if node is None else node.effective_labels()

    def _baseline_tier(self, c: _Conn, passed: tuple[RuleRef, ...]) -> SideDecision:
        key = (c.pod.key, c.direction)
        hits = _first_hits(self._baseline.get(key, ()), self, c)
        banp = self._banp.get(key)
        if banp is not None:
            # Rule 11: a BANP has no priority, so it ties with the first matching CNP baseline group.
            rule = _first_rule(banp, self, c)
            if rule is not None:
                hits = (*hits, rule)
        if not hits:
            return self._default(c, passed)
        return self._resolve(
            hits,
            c,
            DecidingTier.BASELINE,
            passed,
            lambda ref: self._default(c, (*passed, ref)),
        )

    def _default(self, c: _Conn, passed: tuple[RuleRef, ...]) -> SideDecision:
        note = ""
        key = (c.pod.key, c.direction)
        if key in self._admin or key in self._baseline or key in self._banp:
            note = "no admin or baseline rule decides; allowed by default"
        return SideDecision(
            c.direction, c.pod.key, True, tier=DecidingTier.DEFAULT, passed_by=passed, note=note
        )

    def _resolve(
        self,
        hits: tuple[_Hit, ...],
        c: _Conn,
        tier: DecidingTier,
        passed: tuple[RuleRef, ...],
        after_pass: Callable[[RuleRef], SideDecision],
    ) -> SideDecision:
        """Rules 9 and 11: the outcome of the matching rule(s) of one priority level."""
        outcomes: list[SideDecision] = []
        seen = self._seen(c)
        for hit in hits:
            matched = nearmiss.admin_rule_match(hit.rule, c.direction, seen) if hit.certain else ""
            ref = _ref(hit.policy, hit.rule, c.direction, matched)
            if not hit.certain:
                return SideDecision(
                    c.direction,
                    c.pod.key,
                    False,
                    verdict=Verdict.IMPLEMENTATION_DEFINED,
                    tier=tier,
                    decided_by=ref,
                    passed_by=passed,
                    note=_undecidable_note(hit.rule, c.other),
                )
            if hit.rule.action is RuleAction.PASS:
                outcomes.append(after_pass(ref))
            else:
                outcomes.append(
                    SideDecision(
                        c.direction,
                        c.pod.key,
                        hit.rule.action.allows,
                        tier=tier,
                        decided_by=ref,
                        passed_by=passed,
                    )
                )
        if len(outcomes) == 1:
            return outcomes[0]
        refs = tuple(_ref(h.policy, h.rule, c.direction) for h in hits)
        if len({o.verdict for o in outcomes}) == 1:
            return replace(outcomes[0], tied=refs[1:])
        return SideDecision(
            c.direction,
            c.pod.key,
            False,
            verdict=Verdict.IMPLEMENTATION_DEFINED,
            tier=tier,
            passed_by=passed,
            tied=refs,
        )

    # -- NetworkPolicy rules 4-6 --------------------------------------------------------------

    def _rule_matches(
        self, policy: NetworkPolicy, rule: NetworkPolicyRule, c: _Conn
    ) -> bool | None:
        """True, False, or None when the plugin decides (rule N3)."""
        # Rule 4: empty peers / ports match everything.
        if rule.ports and not any(_port_matches(p, c.dst, c.port, c.protocol) for p in rule.ports):
            return False
        if not rule.peers:
            return True
        return _any3(self._peer_matches(policy, p, c) for p in rule.peers)

    def _peer_matches(
        self, policy: NetworkPolicy, peer: NetworkPolicyPeer, c: _Conn
    ) -> bool | None:
        other = c.other
        if _is_host_network(other):
            # Rule N3 (the same node was handled by rule N2).
            if peer.ip_block is not None:
                if c.direction is Direction.INGRESS:
                    return None  # the source address of node traffic is the plugin's choice
                ip = other.address(c.family)
                return ip is not None and peer.ip_block.contains(ip)
            return None if self._selects_as_pod(policy, peer, other) else False
        if peer.ip_block is not None:
            ip = other.address(c.family)
            return ip is not None and peer.ip_block.contains(ip)  # Rule 5, ipBlock.
        if not isinstance(other, Pod):
            return False
        return self._selects_as_pod(policy, peer, other)

    def _selects_as_pod(self, policy: NetworkPolicy, peer: NetworkPolicyPeer, other: Pod) -> bool:
        """Rule 5 for selector peers, reading ``other`` as a pod (whatever its network)."""
        if peer.namespace_selector is None:
            if other.namespace != policy.namespace:
                return False
        elif not peer.namespace_selector.matches(self._labels_of(other.namespace)):
            return False
        return peer.pod_selector is None or peer.pod_selector.matches(other.labels)

    # -- admin rules 12-13 ---------------------------------------------------------------------

    def _admin_rule_matches(self, rule: AdminRule, c: _Conn) -> bool | None:
        """True, False, or None when the match cannot be decided offline (rules 12-13)."""
        ports: bool | None = True
        if rule.ports is not None:
            ports = _any3(_admin_port_matches(p, c.dst, c.port, c.protocol) for p in rule.ports)
            if ports is False:
                return False
        peers = _any3(self._admin_peer_matches(peer, c) for peer in rule.peers)
        if peers is False:
            return False
        return True if ports and peers else None

    def _admin_peer_matches(self, peer: AdminPeer, c: _Conn) -> bool | None:
        other = c.other
        if peer.networks:
            # Egress peer networks: "cluster-internal traffic will be checked against the rule
            # as well", so pod IPs match too.
            ip = other.address(c.family)
            return ip is not None and peer.contains_ip(ip)
        if peer.domain_names:
            return None if isinstance(other, ExternalHost) else False
        if peer.nodes is not None:
            # Egress `nodes`: "selects a set of nodes in the cluster (based on the node's labels)";
            # a host-network pod is its node.
            if not _is_host_network(other):
                return False
            node = self.state.node(other.node)
            return None if node is None else peer.nodes.matches(node.effective_labels())
        # namespaces / pods peers: "host-networked pods are not included in this type of peer".
        if not isinstance(other, Pod) or other.host_network:
            return False
        ns_labels = self._labels_of(other.namespace)
        if peer.namespaces is not None:
            return peer.namespaces.matches(ns_labels)
        assert peer.pods is not None
        return peer.pods.namespace_selector.matches(ns_labels) and peer.pods.pod_selector.matches(
            other.labels
        )


def _is_host_network(end: Endpoint) -> TypeGuard[Pod]:
    return isinstance(end, Pod) and end.host_network


def _groups(policies: list[AdminPolicy]) -> tuple[_Group, ...]:
    """Policies of one tier grouped by priority, lowest number first (rule 9)."""
    by_priority: dict[int, list[AdminPolicy]] = {}
    for p in policies:
        by_priority.setdefault(p.priority or 0, []).append(p)
    return tuple(
        tuple(sorted(by_priority[prio], key=lambda p: (p.kind, p.name)))
        for prio in sorted(by_priority)
    )


def _first_rule(policy: AdminPolicy, ev: Evaluator, c: _Conn) -> _Hit | None:
    for rule in policy.rules(c.direction):
        m = ev._admin_rule_matches(rule, c)
        if m is None:
            return _Hit(policy, rule, certain=False)
        if m:
            return _Hit(policy, rule)
    return None


def _first_hits(groups: Iterable[_Group], ev: Evaluator, c: _Conn) -> tuple[_Hit, ...]:
    """The first rule hit of every policy in the first priority group that has one."""
    for group in groups:
        hits = tuple(h for p in group if (h := _first_rule(p, ev, c)) is not None)
        if hits:
            return hits
    return ()


def _ref(policy: AdminPolicy, rule: AdminRule, direction: Direction, matched: str = "") -> RuleRef:
    if policy.priority is None:
        detail = ""
    elif policy.kind == "ClusterNetworkPolicy":
        detail = f"{policy.tier} tier, priority {policy.priority}"
    else:
        detail = f"priority {policy.priority}"
    return RuleRef(
        policy.kind,
        policy.name,
        direction,
        rule.index,
        rule.name,
        str(rule.action),
        detail,
        matched,
    )


def _undecidable_note(rule: AdminRule, other: Endpoint) -> str:
    if rule.ports is not None and any(p.undefined_range for p in rule.ports):
        return (
            "has a v1alpha1 portRange with start >= end, which the API server accepts but the "
            "API leaves undefined"
        )
    if any(p.domain_names for p in rule.peers):
        return (
            f"matches by domainNames, which are not resolved offline (is {other.key} one of them?)"
        )
    return f"matches by nodes, and which node hosts {other.key} is not known"


def _admin_port_matches(
    p: AdminPort, dst: Endpoint, port: int, protocol: L4Protocol
) -> bool | None:
    if p.named_port is not None:
        # Rule 13: a named port is looked up on the destination pod, whatever the direction.
        return isinstance(dst, Pod) and dst.named_port(p.named_port, protocol) == port
    # A v1alpha1 range with start >= end is stored but undefined: undecidable inside it.
    return p.number_matches(port, protocol)


def _any3(results: Iterable[bool | None]) -> bool | None:
    """Three-valued OR: True if any is True, else None if any is undecidable, else False."""
    out: bool | None = False
    for r in results:
        if r:
            return True
        if r is None:
            out = None
    return out


def _port_matches(
    rule_port: NetworkPolicyPort, dst: Endpoint, port: int, protocol: L4Protocol
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
