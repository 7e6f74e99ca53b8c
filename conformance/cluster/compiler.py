"""NetworkPolicy (networking.k8s.io/v1) to nftables compiler for the node namespace.

Why: enforcement must be real packets filtered by rules derived from the API objects, and written
independently of the reference evaluator so that any disagreement exposes a bug in one of them.

Model: a pod selected by a policy with type Ingress (Egress) is isolated in that direction; a
connection is allowed when the source's egress allows it (or the source is not egress-isolated)
and the destination's ingress allows it (or it is not ingress-isolated). Allowed = union of rules.
Replies are accepted by conntrack. Traffic from a pod to itself never reaches the node.

Dual-stack: a pod may have an address in each family (``PodView.ips``). Selector peers match all
of a pod's addresses, an ipBlock only addresses of its own family, and both families' packets
reach the same per-pod chains (``ip`` and ``ip6`` verdict maps in the ``inet`` table).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conformance.cluster.admin import (
    ACTIONS,
    ANY_PROTOCOL,
    NodeLabels,
    subject_peer,
    translate_rule,
)
from conformance.cluster.dataplane import NFT_TABLE, UPLINK
from conformance.cluster.knobs import Deviation, Knobs
from conformance.cluster.selectors import matches

Span = tuple[int, int]
"""An inclusive range of addresses as integers: integer arithmetic keeps compiles fast.

IPv4 addresses are their own value, IPv6 addresses their value plus ``V6``: one integer line
holds both families, a span never straddles them, and spans of different families never touch.
"""
V6 = 1 << 128
"""Offset of IPv6 addresses in ``Span`` integers."""
PROTOS = ("TCP", "UDP", "SCTP")
DEFAULT_KNOBS = Knobs()


@dataclass(frozen=True)
class ContainerPort:
    """A declared container port (``name`` may be empty)."""

    name: str
    protocol: str
    port: int


@dataclass(frozen=True)
class PodView:
    """What enforcement knows of a pod: identity, addresses, labels, ports and creation order.

    ``ip`` is the primary address (``status.podIP``; rules and chains are keyed by it); ``ips``
    every address, one per family, primary first (``status.podIPs``). Left empty it is ``(ip,)``.
    """

    namespace: str
    name: str
    ip: str
    labels: Mapping[str, str]
    ports: tuple[ContainerPort, ...] = ()
    order: int = 0
    ips: tuple[str, ...] = ()
    node: str = ""
    """The node the pod runs on (its rules are enforced there); "" in node-less compiles."""

    def __post_init__(self) -> None:
        if not self.ips:
            object.__setattr__(self, "ips", (self.ip,) if self.ip else ())
        elif self.ips[0] != self.ip:
            raise ValueError(f"pod {self.namespace}/{self.name}: ips must start with ip {self.ip}")

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every address of the pod (the primary first)."""
        return self.ips

    def named(self, name: str, protocol: str) -> int | None:
        for port in self.ports:
            if port.name == name and port.protocol == protocol:
                return port.port
        return None

    def named_any(self, name: str, protocol: str) -> tuple[str, int] | None:
        """(protocol, number) of a named port; ``protocol`` ``*`` accepts the port's own."""
        for port in self.ports:
            if port.name == name and protocol in (ANY_PROTOCOL, port.protocol):
                return port.protocol, port.port
        return None


@dataclass(frozen=True)
class NamespaceView:
    """A namespace and its labels."""

    name: str
    labels: Mapping[str, str]


@dataclass(frozen=True)
class PortMatch:
    """Allowed destination ports of one protocol: ``ranges`` empty means every port."""

    protocol: str
    ranges: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Allow:
    """One allow rule of an isolated pod's chain.

    ``peers`` None = any address, else sorted disjoint address spans (IPv4 first, then IPv6);
    ``ports`` None = any protocol/port; ``tuples`` are
    (peer address, protocol, port) triples for named ports resolved on each peer pod (egress:
    the destinations; ingress only under the ``named-port-wrong-pod`` deviation: the sources).
    """

    peers: tuple[Span, ...] | None
    ports: tuple[PortMatch, ...] | None
    tuples: tuple[tuple[str, str, int], ...] = ()


@dataclass
class _Side:
    isolated: bool = False
    allows: list[Allow] = field(default_factory=list)


@dataclass(frozen=True)
class NodeScope:
    """One node's share of enforcement: its own addresses and the pod addresses local to it.

    Real CNIs enforce a pod's egress on the sender's node and its ingress on the receiver's;
    each node's ruleset therefore only maps its own pods to their chains.
    """

    name: str
    addresses: tuple[str, ...]
    local: frozenset[str]
    labels: Mapping[str, str] = field(default_factory=dict)


Tiered = tuple[tuple[Allow, str], ...]
"""Admin-tier rules of one pod and direction, in evaluation order: (match, Allow|Deny|Pass)."""


@dataclass(frozen=True)
class Compiled:
    """The compiled policy state: per-pod allow lists, admin tiers, and the nftables script.

    ``ingress``/``egress``: NetworkPolicy allow lists of isolated pods (by primary pod IP).
    ``admin_*``: AdminNetworkPolicy rules that apply to a pod, by priority then rule order.
    ``baseline_*``: BaselineAdminNetworkPolicy rules that apply to a pod, in order.
    """

    ingress: Mapping[str, tuple[Allow, ...]]
    egress: Mapping[str, tuple[Allow, ...]]
    script: str
    admin_ingress: Mapping[str, Tiered] = field(default_factory=dict)
    admin_egress: Mapping[str, Tiered] = field(default_factory=dict)
    baseline_ingress: Mapping[str, Tiered] = field(default_factory=dict)
    baseline_egress: Mapping[str, Tiered] = field(default_factory=dict)
    scripts: Mapping[str, str] = field(default_factory=dict)
    """Per node name, that node's script (when compiled with node scopes; ``script`` is then
    empty)."""


def address_key(text: str) -> int:
    """An address as a ``Span`` integer (IPv6 offset by ``V6``)."""
    if ":" in text:
        return V6 + int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    return int(struct.unpack("!I", socket.inet_aton(text))[0])


def cidr_span(text: str) -> Span:
    """A CIDR of either family as a span (host bits ignored, as the API server accepts them)."""
    net = ipaddress.ip_network(text, strict=False)
    base = V6 if net.version == 6 else 0
    return base + int(net.network_address), base + int(net.broadcast_address)


def _ipblock(block: Mapping[str, Any], knobs: Knobs) -> list[Span]:
    """``cidr`` minus every ``except`` entry (ipBlock field doc: except = CIDRs not to match).

    An ``except`` of the other family (the API rejects it) overlaps nothing and removes nothing.
    """
    spans = [cidr_span(str(block.get("cidr", "")))]
    if not knobs.has(Deviation.IGNORE_EXCEPT):
        for text in block.get("except") or []:
            hole = cidr_span(str(text))
            nxt: list[Span] = []
            for lo, hi in spans:
                if hole[1] < lo or hole[0] > hi:
                    nxt.append((lo, hi))
                    continue
                if lo < hole[0]:
                    nxt.append((lo, hole[0] - 1))
                if hole[1] < hi:
                    nxt.append((hole[1] + 1, hi))
            spans = nxt
    return spans


class _World:
    def __init__(
        self,
        pods: Sequence[PodView],
        namespaces: Sequence[NamespaceView],
        knobs: Knobs = DEFAULT_KNOBS,
    ) -> None:
        self.knobs = knobs
        self.pods = sorted((p for p in pods if p.ip), key=lambda p: (p.namespace, p.name))
        self.ns_labels = {n.name: n.labels for n in namespaces}
        self.keys = {a: address_key(a) for p in self.pods for a in p.ips}
        # Per primary address, a span for each of the pod's addresses.
        self.nets = {p.ip: tuple((self.keys[a], self.keys[a]) for a in p.ips) for p in self.pods}
        # Families no pod has carry no pod connection: their ipBlock spans are left out, so a
        # single-stack cluster compiles exactly as before dual-stack existed.
        self.families = frozenset(k >= V6 for k in self.keys.values())
        self.keepalive: list[Any] = []
        self.memo: dict[tuple[int, tuple[ContainerPort, ...] | None], Allow | None] = {}

        self._pod_sel: dict[str, frozenset[int]] = {}
        self._ns_sel: dict[str, frozenset[str]] = {}
        self._peers: dict[tuple[str, str], list[PodView]] = {}
        self._blocks: dict[str, list[Span]] = {}
        self._collapsed: dict[frozenset[int], tuple[Span, ...]] = {}

    def ipblock(self, block: Mapping[str, Any], knobs: Knobs) -> list[Span]:
        """``_ipblock`` cached per distinct block (returns the same objects each time), without
        spans of a family no pod has."""
        key = json.dumps(block, sort_keys=True)
        found = self._blocks.get(key)
        if found is None:
            found = _ipblock(block, knobs)
            if len(self.families) < 2:
                found = [s for s in found if (s[0] >= V6) in self.families]
            self._blocks[key] = found
        return found

    def collapse(self, nets: Sequence[Span]) -> tuple[Span, ...]:
        """``_collapse`` cached per set of span objects (pod and block spans are shared)."""
        key = frozenset(id(n) for n in nets)
        found = self._collapsed.get(key)
        if found is None:
            found = self._collapsed[key] = _collapse(nets)
        return found

    def _pods_matching(self, selector: Mapping[str, Any]) -> frozenset[int]:
        """Indexes of pods whose labels match (cached per distinct selector)."""
        key = json.dumps(selector, sort_keys=True)
        found = self._pod_sel.get(key)
        if found is None:
            found = frozenset(i for i, p in enumerate(self.pods) if matches(selector, p.labels))
            self._pod_sel[key] = found
        return found

    def _namespaces_matching(self, selector: Mapping[str, Any]) -> frozenset[str]:
        key = json.dumps(selector, sort_keys=True)
        found = self._ns_sel.get(key)
        if found is None:
            found = frozenset(
                n for n, labels in self.ns_labels.items() if matches(selector, labels)
            )
            self._ns_sel[key] = found
        return found

    def pods_in(self, namespace: str, selector: Mapping[str, Any]) -> list[PodView]:
        chosen = self._pods_matching(selector)
        return [p for i, p in enumerate(self.pods) if i in chosen and p.namespace == namespace]

    def peer_pods(self, policy_ns: str, peer: Mapping[str, Any]) -> list[PodView]:
        """Pods a podSelector/namespaceSelector peer selects (cached per namespace and peer)."""
        key = (policy_ns, json.dumps(peer, sort_keys=True))
        cached = self._peers.get(key)
        if cached is not None:
            return cached
        pod_sel = peer.get("podSelector")
        ns_sel = peer.get("namespaceSelector")
        namespaces = {policy_ns} if ns_sel is None else self._namespaces_matching(ns_sel)
        chosen = None if pod_sel is None else self._pods_matching(pod_sel)
        # policy_ns is "" for translated admin peers: the NetworkPolicy deviations leave them be.
        if (
            policy_ns
            and pod_sel is not None
            and not (pod_sel.get("matchLabels") or pod_sel.get("matchExpressions"))
            and self.knobs.has(Deviation.EMPTY_POD_SELECTOR_NOTHING)
        ):
            out: list[PodView] = []
        elif (
            policy_ns
            and chosen is not None
            and ns_sel is not None
            and self.knobs.has(Deviation.PEER_SELECTORS_OR)
        ):
            out = [
                p
                for i, p in enumerate(self.pods)
                if p.namespace in namespaces or (p.namespace == policy_ns and i in chosen)
            ]
        else:
            out = [
                p
                for i, p in enumerate(self.pods)
                if p.namespace in namespaces and (chosen is None or i in chosen)
            ]
        self._peers[key] = out
        return out


def _collapse(nets: Sequence[Span]) -> tuple[Span, ...]:
    """The same addresses as sorted, disjoint, non-adjacent spans."""
    spans: list[list[int]] = []
    for lo, hi in sorted(nets):
        if spans and lo <= spans[-1][1] + 1:
            spans[-1][1] = max(spans[-1][1], hi)
        else:
            spans.append([lo, hi])
    return tuple((lo, hi) for lo, hi in spans)


def _merge_ranges(ranges: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def _compile_rule(
    world: _World,
    policy_ns: str,
    rule: Mapping[str, Any],
    peer_key: str,
    owner: PodView,
    ingress: bool,
    knobs: Knobs,
) -> Allow | None:
    """One ingress/egress rule for one selected pod; None when it can match nothing.

    Results are memoised per rule (and, when a named port resolves on the selected pod, per
    set of that pod's ports): a policy selecting many pods compiles each rule once.
    """
    ports_spec = rule.get("ports") or []
    owner_bound = any(isinstance(e.get("port"), str) for e in ports_spec) and (
        ingress != knobs.has(Deviation.NAMED_PORT_WRONG_POD)
    )
    key = (id(rule), owner.ports if owner_bound else None)
    if key in world.memo:
        return world.memo[key]
    allow = _compile_rule_uncached(world, policy_ns, rule, peer_key, owner, ingress, knobs)
    world.memo[key] = allow
    return allow


def _compile_rule_uncached(
    world: _World,
    policy_ns: str,
    rule: Mapping[str, Any],
    peer_key: str,
    owner: PodView,
    ingress: bool,
    knobs: Knobs,
) -> Allow | None:
    peers_spec = rule.get(peer_key) or []
    peer_pods: list[PodView] = []
    nets: list[Span] = []
    for peer in peers_spec:
        if peer.get("ipBlock") is not None:
            spans = world.ipblock(peer["ipBlock"], knobs)
            if policy_ns and knobs.has(Deviation.IPV6_IPBLOCK_IGNORED):
                spans = [s for s in spans if s[0] < V6]
            nets.extend(spans)
        else:
            found = world.peer_pods(policy_ns, peer)
            peer_pods.extend(found)
            for p in found:
                nets.extend(world.nets[p.ip])
    peers: tuple[Span, ...] | None = None
    if peers_spec:
        peers = world.collapse(nets)
        if not peers:
            return None
    ports_spec = rule.get("ports") or []
    if not ports_spec:
        return Allow(peers, None)
    ranges: dict[str, list[tuple[int, int]]] = {}
    any_port: set[str] = set()
    tuples: set[tuple[str, str, int]] = set()
    for entry in ports_spec:
        proto = str(entry.get("protocol") or "TCP")
        port = entry.get("port")
        if port is None:
            any_port.add(proto)
        elif isinstance(port, int):
            end = entry.get("endPort")
            hi = port if end is None or knobs.has(Deviation.IGNORE_ENDPORT) else int(end)
            ranges.setdefault(proto, []).append((port, hi))
        elif ingress != knobs.has(Deviation.NAMED_PORT_WRONG_POD):
            # Correct for ingress: the selected pod is the destination. With the deviation this
            # branch serves egress, resolving on the sender instead of the destination.
            hit = owner.named_any(str(port), proto)
            if hit is not None:
                ranges.setdefault(hit[0], []).append((hit[1], hit[1]))
        else:
            # Each peer address of a pod that has the port: selected pods with all their
            # addresses; ipBlock peers cover pod addresses too (only those of their family).
            selected = {id(p) for p in peer_pods}
            for pod in world.pods:
                hit = pod.named_any(str(port), proto)
                if hit is None:
                    continue
                for address in pod.ips:
                    if (
                        peers is None
                        or id(pod) in selected
                        or any(lo <= world.keys[address] <= hi for lo, hi in peers)
                    ):
                        tuples.add((address, hit[0], hit[1]))
    if policy_ns and knobs.has(Deviation.IGNORE_PROTOCOL):
        # The port numbers of every entry count for every protocol.
        if any_port:
            any_port = set(PROTOS)
        every = [r for rs in ranges.values() for r in rs]
        ranges = {p: list(every) for p in PROTOS} if every else {}
    matches_ = [PortMatch(p, ()) for p in sorted(any_port)]
    matches_ += [
        PortMatch(p, _merge_ranges(r)) for p, r in sorted(ranges.items()) if p not in any_port
    ]
    if not matches_ and not tuples:
        return None
    return Allow(peers, tuple(matches_), tuple(sorted(tuples)))


def compile_policies(
    pods: Sequence[PodView],
    namespaces: Sequence[NamespaceView],
    policies: Sequence[Mapping[str, Any]],
    knobs: Knobs = DEFAULT_KNOBS,
    extra_chains: Sequence[str] = (),
    admin_policies: Sequence[Mapping[str, Any]] = (),
    baseline: Sequence[Mapping[str, Any]] = (),
    scopes: Sequence[NodeScope] = (),
) -> Compiled:
    """Compile policies (as stored: validated and defaulted) to an nftables script.

    Tiers per pod and direction, as the policy.networking.k8s.io API defines them:
    AdminNetworkPolicy rules by ascending priority (Allow and Deny decide, Pass skips to the next
    tier), then NetworkPolicy if any selects the pod in that direction, else the
    BaselineAdminNetworkPolicy rules (Allow, Deny), else allowed.
    """
    world = _World(pods, namespaces, knobs)
    ingress: dict[str, _Side] = {}
    egress: dict[str, _Side] = {}
    by_order = sorted(world.pods, key=lambda p: (p.order, p.namespace, p.name))
    for policy in sorted(
        policies, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"])
    ):
        ns = policy["metadata"]["namespace"]
        spec = policy.get("spec") or {}
        selected = world.pods_in(ns, spec.get("podSelector") or {})
        if knobs.has(Deviation.FIRST_POD_ONLY) and selected:
            chosen = {id(p) for p in selected}
            selected = [next(p for p in by_order if id(p) in chosen)]
        types = spec.get("policyTypes") or []
        last_wins = knobs.has(Deviation.LAST_POLICY_WINS)
        for pod in selected:
            key = pod.ip
            if "Ingress" in types:
                side = ingress.setdefault(key, _Side())
                side.isolated = True
                if last_wins:
                    side.allows = []
                for rule in spec.get("ingress") or []:
                    allow = _compile_rule(world, ns, rule, "from", pod, True, knobs)
                    if allow is not None:
                        side.allows.append(allow)
            if "Egress" in types:
                side = egress.setdefault(key, _Side())
                side.isolated = True
                if last_wins:
                    side.allows = []
                for rule in spec.get("egress") or []:
                    allow = _compile_rule(world, ns, rule, "to", pod, False, knobs)
                    if allow is not None:
                        side.allows.append(allow)
    ing = {k: tuple(v.allows) for k, v in ingress.items()}
    egr = {k: tuple(v.allows) for k, v in egress.items()}
    inverted = knobs.has(Deviation.ADMIN_PRIORITY_INVERTED)
    nodes = [(s.labels, s.addresses) for s in scopes]
    admin_in, admin_eg = _tiers(
        world, sorted(admin_policies, key=_priority, reverse=inverted), knobs, nodes
    )
    base_in: dict[str, Tiered] = {}
    base_eg: dict[str, Tiered] = {}
    if not knobs.has(Deviation.IGNORE_BASELINE):
        base_in, base_eg = _tiers(world, sorted(baseline, key=_priority), knobs, nodes)
    tiers = ((admin_in, admin_eg), (base_in, base_eg))
    addresses = {p.ip: p.ips for p in world.pods if len(p.ips) > 1}
    if scopes:
        scripts = {
            scope.name: render(ing, egr, knobs, extra_chains, *tiers, addresses, scope)
            for scope in scopes
        }
        return Compiled(ing, egr, "", admin_in, admin_eg, base_in, base_eg, scripts)
    script = render(ing, egr, knobs, extra_chains, *tiers, addresses)
    return Compiled(ing, egr, script, admin_in, admin_eg, base_in, base_eg)


def _priority(policy: Mapping[str, Any]) -> tuple[int, str, str]:
    """Evaluation order: priority (a BaselineAdminNetworkPolicy has none: first), kind, name."""
    prio = (policy.get("spec") or {}).get("priority")
    return (
        -1 if prio is None else int(prio),
        str(policy.get("kind", "")),
        policy["metadata"]["name"],
    )


def _tiers(
    world: _World, policies: Sequence[Mapping[str, Any]], knobs: Knobs, nodes: NodeLabels = ()
) -> tuple[dict[str, Tiered], dict[str, Tiered]]:
    """Per pod IP, the (match, action) rules of these admin policies, in order."""
    out: tuple[dict[str, list[tuple[Allow, str]]], dict[str, list[tuple[Allow, str]]]] = ({}, {})
    for policy in policies:
        spec = policy.get("spec") or {}
        peer = subject_peer(spec.get("subject"))
        if peer is None:
            continue
        subjects = world.peer_pods("", peer)
        for side, direction, peer_key, ingress in (
            (0, "ingress", "from", True),
            (1, "egress", "to", False),
        ):
            for rule in spec.get(direction) or []:
                translated = translate_rule(rule, peer_key, nodes)
                if translated is None:
                    continue
                world.keepalive.append(translated)  # memo keys are ids: keep them unique
                action = ACTIONS.get(str(rule.get("action", "")), "Deny")
                for pod in subjects:
                    allow = _compile_rule(world, "", translated, peer_key, pod, ingress, knobs)
                    if allow is not None:
                        out[side].setdefault(pod.ip, []).append((allow, action))
    return (
        {k: tuple(v) for k, v in out[0].items()},
        {k: tuple(v) for k, v in out[1].items()},
    )


def _set(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _ntoa(value: int) -> str:
    """A ``Span`` integer as address text."""
    if value >= V6:
        return socket.inet_ntop(socket.AF_INET6, (value - V6).to_bytes(16, "big"))
    return socket.inet_ntoa(struct.pack("!I", value))


def _span_text(lo: int, hi: int) -> str:
    """One address, a CIDR when the span is one, else an nft range ``a-b``."""
    if lo == hi:
        return _ntoa(lo)
    size = hi - lo + 1
    if size & (size - 1) == 0 and lo % size == 0:
        bits = 129 if lo >= V6 else 33
        return f"{_ntoa(lo)}/{bits - size.bit_length()}"
    return f"{_ntoa(lo)}-{_ntoa(hi)}"


def _family(address: str) -> str:
    """The nft payload protocol of an address: ``ip`` or ``ip6``."""
    return "ip6" if ":" in address else "ip"


def _by_family(peers: tuple[Span, ...]) -> list[tuple[str, tuple[Span, ...]]]:
    """Sorted spans split into their IPv4 part and their IPv6 part (each only when present)."""
    cut = len(peers)
    while cut and peers[cut - 1][0] >= V6:
        cut -= 1
    if cut == len(peers):
        return [("ip", peers)]
    if cut == 0:
        return [("ip6", peers)]
    return [("ip", peers[:cut]), ("ip6", peers[cut:])]


class _AddressSets:
    """Named nft sets for address lists used by rules: each distinct list is defined once.

    Why: the same peers recur across policies and pods; one kernel set per distinct list instead
    of an anonymous set per rule keeps ``nft -f`` fast on every change. A list holds one family.
    """

    def __init__(self) -> None:
        self.names: dict[tuple[Span, ...], str] = {}

    def ref(self, peers: tuple[Span, ...]) -> str:
        if len(peers) == 1:
            return _span_text(*peers[0])
        name = self.names.get(peers)
        if name is None:
            name = self.names[peers] = f"peers_{len(self.names)}"
        return f"@{name}"

    def definitions(self) -> list[str]:
        return [
            f"  set {name} {{ type {'ipv6_addr' if peers[0][0] >= V6 else 'ipv4_addr'}; "
            f"flags interval; elements = "
            f"{{ {', '.join(_span_text(lo, hi) for lo, hi in peers)} }} }}"
            for peers, name in self.names.items()
        ]


def _merged(allows: Sequence[Allow]) -> list[Allow]:
    """Allows with equal peers joined into one (same verdict, so their union is one rule)."""
    groups: dict[tuple[Span, ...] | None, list[Allow]] = {}
    for allow in allows:
        groups.setdefault(allow.peers, []).append(allow)
    out = []
    for peers, group in groups.items():
        if len(group) == 1:
            out.append(group[0])
        elif any(a.ports is None for a in group):
            out.append(Allow(peers, None))
        else:
            any_port = {m.protocol for a in group for m in a.ports or () if not m.ranges}
            ranges: dict[str, list[tuple[int, int]]] = {}
            for a in group:
                for m in a.ports or ():
                    if m.protocol not in any_port:
                        ranges.setdefault(m.protocol, []).extend(m.ranges)
            ports = [PortMatch(p, ()) for p in sorted(any_port)]
            ports += [PortMatch(p, _merge_ranges(r)) for p, r in sorted(ranges.items())]
            tuples = sorted({t for a in group for t in a.tuples})
            out.append(Allow(peers, tuple(ports), tuple(tuples)))
    return out


def _merged_in_order(rules: Sequence[tuple[Allow, str]]) -> list[tuple[Allow, str]]:
    """Neighbouring rules with the same action and peers joined (first-match order is kept)."""
    out: list[tuple[Allow, str]] = []
    for allow, act in rules:
        if out and out[-1][1] == act and out[-1][0].peers == allow.peers:
            out[-1] = (_merged([out[-1][0], allow])[0], act)
        else:
            out.append((allow, act))
    return out


def _rule_lines(allow: Allow, addr_field: str, verdict: str, sets: _AddressSets) -> list[str]:
    """nft rules for one Allow: the peer match is split by family (``ip`` / ``ip6``)."""
    peer = {"": ""}
    if allow.peers is not None:
        peer = {
            fam: f"{fam} {addr_field} {sets.ref(spans)} " for fam, spans in _by_family(allow.peers)
        }
    if allow.ports is None:
        return [f"{p}{verdict}" for p in peer.values()]
    lines = []
    for p in peer.values():
        for match in allow.ports:
            proto = match.protocol.lower()
            if match.ranges:
                ports = [str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in match.ranges]
                lines.append(f"meta l4proto {proto} th dport {_set(ports)} {p}{verdict}")
            else:
                lines.append(f"meta l4proto {proto} {p}{verdict}")
    by_proto: dict[tuple[str, str], list[str]] = {}
    for ip, proto, port in allow.tuples:
        by_proto.setdefault((_family(ip), proto.lower()), []).append(f"{ip} . {port}")
    for (fam, proto), items in sorted(by_proto.items()):
        match_peer = peer.get(fam, "") if allow.peers is None else peer.get(fam)
        if match_peer is None:
            continue  # no peer address of this family: nothing of it can match
        lines.append(
            f"meta l4proto {proto} {match_peer}{fam} {addr_field} . th dport "
            f"{{ {', '.join(items)} }} {verdict}"
        )
    return lines


def _vmaps(prefix: str, field: str, v4: Sequence[str], v6: Sequence[str]) -> list[str]:
    """``ip FIELD vmap { ... }`` and its ``ip6`` twin, for the families that have entries."""
    return [
        f"    {prefix}{fam} {field} vmap {{ {', '.join(entries)} }}"
        for fam, entries in (("ip", v4), ("ip6", v6))
        if entries
    ]


def _hook_chain(hook: str, rules: Sequence[str]) -> list[str]:
    """A base chain on ``hook`` (named after it) that lets replies through, then ``rules``."""
    return [
        f"  chain {hook} {{",
        f"    type filter hook {hook} priority filter; policy accept;",
        "    ct state established,related accept",
        *rules,
        "  }",
    ]


def render(
    ingress: Mapping[str, Sequence[Allow]],
    egress: Mapping[str, Sequence[Allow]],
    knobs: Knobs,
    extra_chains: Sequence[str] = (),
    admin: tuple[Mapping[str, Tiered], Mapping[str, Tiered]] = ({}, {}),
    baseline: tuple[Mapping[str, Tiered], Mapping[str, Tiered]] = ({}, {}),
    addresses: Mapping[str, Sequence[str]] | None = None,
    scope: NodeScope | None = None,
) -> str:
    """The complete nftables script: replaces the table atomically when run with ``nft -f``.

    With a node ``scope``: that node's script. Only its own pods are mapped to chains, traffic
    from its pods to the node itself is checked in the input hook, and the NetworkPolicy tier
    lets the node's own addresses through (concepts/services-networking/network-policies:
    "traffic to and from the node where a Pod is running is always allowed").

    Per pod and direction one chain (shared by pods whose rules are equal): admin rules first
    (a Pass jumps to the second tier), then NetworkPolicy allows and a drop when the pod is
    isolated, else baseline rules and allow. "Allow" is ``return`` on egress (the destination's
    ingress is checked next) and ``accept`` on ingress. ``addresses`` gives every address of a
    pod by its primary one (default: the primary only); each is a key of its family's verdict map.
    """
    out = [
        f"table inet {NFT_TABLE} {{}}",
        f"delete table inet {NFT_TABLE}",
        f"table inet {NFT_TABLE} {{",
    ]
    sets = _AddressSets()
    own_node: list[str] = []
    if scope is not None and not knobs.has(Deviation.NODE_TRAFFIC_FILTERED):
        own_node = list(scope.addresses)
    egress_map: list[str] = []
    ingress_map: list[str] = []
    egress_map6: list[str] = []
    ingress_map6: list[str] = []
    for prefix, side, addr, verdict, vmap, vmap6, adm, base in (
        ("eg", egress, "daddr", "return", egress_map, egress_map6, admin[1], baseline[1]),
        ("in", ingress, "saddr", "accept", ingress_map, ingress_map6, admin[0], baseline[0]),
    ):
        chains: dict[tuple[Any, ...], str] = {}
        for ip in sorted(set(side) | set(adm) | set(base)):
            if scope is not None and ip not in scope.local:
                continue  # another node enforces this pod's rules
            np_allows = side.get(ip)
            key = (
                tuple((id(a), act) for a, act in adm.get(ip, ())),
                None if np_allows is None else tuple(id(a) for a in np_allows),
                tuple((id(a), act) for a, act in base.get(ip, ())),
            )
            chain = chains.get(key)
            if chain is None:
                chain = chains[key] = f"{prefix}_{len(chains)}"
                second = f"{chain}_t2" if adm.get(ip) else chain
                passed = verdict if knobs.has(Deviation.PASS_AS_ALLOW) else f"goto {second}"
                if adm.get(ip):
                    out.append(f"  chain {chain} {{")
                    for allow, act in _merged_in_order(adm[ip]):
                        v = {"Allow": verdict, "Deny": "drop"}.get(act, passed)
                        out += [f"    {line}" for line in _rule_lines(allow, addr, v, sets)]
                    out += [f"    goto {second}", "  }"]
                out.append(f"  chain {second} {{")
                if np_allows is not None:
                    for fam, mine in (
                        ("ip", [a for a in own_node if ":" not in a]),
                        ("ip6", [a for a in own_node if ":" in a]),
                    ):
                        if mine:
                            out.append(f"    {fam} {addr} {_set(mine)} {verdict}")
                    out += [
                        f"    {line}"
                        for a in _merged(np_allows)
                        for line in _rule_lines(a, addr, verdict, sets)
                    ]
                    out.append("    drop")
                else:
                    for allow, act in _merged_in_order(base.get(ip, ())):
                        v = "drop" if act == "Deny" else verdict
                        out += [f"    {line}" for line in _rule_lines(allow, addr, v, sets)]
                    out.append(f"    {verdict}")
                out.append("  }")
            for address in (addresses or {}).get(ip, (ip,)):
                (vmap6 if ":" in address else vmap).append(f"{address} : jump {chain}")
    out += [
        "  chain forward {",
        "    type filter hook forward priority filter; policy accept;",
    ]
    if knobs.has(Deviation.STATELESS):
        # Replies meet the replying pod's egress rules as if they were new connections.
        out += _vmaps(
            "ct state established,related ct direction reply ", "saddr", egress_map, egress_map6
        )
    out += [
        "    ct state established,related accept",
    ]
    if knobs.has(Deviation.UDP_UNFILTERED):
        out.append("    meta l4proto udp accept")
    if scope is not None and knobs.has(Deviation.CROSS_NODE_INGRESS_UNENFORCED):
        # What arrives over the uplink (from another node or outside) skips ingress rules.
        out.append(f'    iifname "{UPLINK}" accept')
    # Deviation same-node-egress-skipped: only traffic leaving the node meets egress rules.
    only_out = (
        f'oifname "{UPLINK}" '
        if scope is not None and knobs.has(Deviation.SAME_NODE_EGRESS_SKIPPED)
        else ""
    )
    out += _vmaps(only_out, "saddr", egress_map, egress_map6)
    out += _vmaps("", "daddr", ingress_map, ingress_map6)
    out.append("  }")
    if scope is not None and (egress_map or egress_map6):
        # A pod connecting to its own node's address: the input hook, egress rules only.
        out += _hook_chain("input", _vmaps("", "saddr", egress_map, egress_map6))
    if (
        scope is not None
        and (ingress_map or ingress_map6)
        and knobs.has(Deviation.NODE_TRAFFIC_FILTERED)
    ):
        # The node's own connections to its pods (kubelet probes, host-network pods) filtered as
        # if they came from anywhere else.
        out += _hook_chain("output", _vmaps("", "daddr", ingress_map, ingress_map6))
    out += [*extra_chains, "}"]
    out[3:3] = sets.definitions()  # sets must exist before the rules that name them
    return "\n".join(out) + "\n"
