"""Full reachability matrix: every ordered pod pair at every port, fast, with the reference's answers.

``Evaluator.decide`` walks the rules of the policies that select a cell's pods; over a real
cluster (thousands of pods and policies) that is pods x pods x rules. This module computes the
same verdicts with set algebra on bitsets (Python ints, bit i = pod i):

1. Pods are indexed in IP order, so an ``ipBlock`` (CIDR minus ``except``) is a few contiguous
   bit ranges; externals follow the pods in the target index space.
2. Label selectors become ANDs/ORs of per-label bitsets (``matchLabels``, ``In``, ``NotIn``,
   ``Exists``, ``DoesNotExist``), so a policy's subjects and a rule's peers cost a few big-int
   operations each, cached by selector.
3. Ingress, for a target pod at one port: the union of the peer sets of the ingress rules, of the
   policies isolating it, whose ports match there (named ports resolve on that pod). Pods with the
   same isolating policies and declared ports share the result.
4. Egress, per source group (same isolating policies): the union of ``peers & port-targets`` of
   their egress rules, per port; then transposed into "which sources may send to this target".
5. Admin tiers (AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy; evaluator
   rules 8-13) per side, over the same bitsets: each policy's first matching rule splits the
   other ends into allow/deny/pass/undecidable sets, priority groups are resolved in order (a
   tie with different outcomes, or an undecidable first match, is implementation-defined), Pass
   falls through to the NetworkPolicy tier, then the baseline tier (where a BANP ties with the
   first matching baseline group), then the default allow. Pods with the same admin policies,
   NetworkPolicies and ports share the result.
6. A cell is allowed when both sides allow (rule 3 of the evaluator); a pod to itself is
   implementation-defined unless ``include_self``.
7. Nodes (evaluator rules N1-N3): host-network pods are a bitset of their own. NetworkPolicy
   peers give (certain, undecidable) pairs: a selector that would select a host-network pod is
   undecidable for it, as is any ingress ``ipBlock``; a pod's own node (host-network pods on the
   same node) is allowed by the NetworkPolicy tier, so sides are shared only among pods on one
   node. Admin ``nodes`` peers select host-network pods by their node's labels.

Sources are the pods; outside clients as sources are for the evaluator only.

Reasons are never precomputed: ``decision``/``reason`` ask the reference evaluator for one cell.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any

from conformance.api.adminpol import AdminPolicy, AdminPort, AdminRule, RuleAction, Tier
from conformance.api.kinds import BANP
from conformance.api.model import ClusterState, ContainerPort, Pod
from conformance.api.netpol import (
    IPBlock,
    IPNetwork,
    NetworkPolicy,
    NetworkPolicyPeer,
    NetworkPolicyRule,
)
from conformance.api.selectors import LabelSelector, Operator
from conformance.api.types import AddressFamily, Direction, L4Protocol, PodKey, TargetKey
from conformance.reference.evaluator import AnyPolicy, Decision, Evaluator, Verdict

PortProto = tuple[int, L4Protocol]
"""A destination port and its protocol: one column block of the matrix."""

Progress = Callable[[int, int], None]
"""Called with (targets done, targets total) while the matrix is computed."""

_SelectorKey = tuple[tuple[tuple[str, str], ...], tuple[object, ...]]


def _selector_key(sel: LabelSelector) -> _SelectorKey:
    return tuple(sorted(sel.match_labels.items())), tuple(sel.match_expressions)


def bit_indices(x: int) -> Iterator[int]:
    """Indices of the set bits of ``x`` (>= 0), lowest first; C-speed scanning via ``bin``."""
    text = bin(x)[:1:-1]
    i = text.find("1")
    while i >= 0:
        yield i
        i = text.find("1", i + 1)


def _range_mask(low: int, high: int) -> int:
    """Bits ``low`` .. ``high - 1``."""
    return ((1 << high) - 1) ^ ((1 << low) - 1) if high > low else 0


@dataclass(frozen=True)
class ReachabilityMatrix:
    """Verdicts for every (source pod, target, port/protocol) cell; reasons on demand.

    ``targets`` are the pods then the externals; each target has its ``ports`` (its declared
    container ports, or the ``port_protocols`` the caller asked for). Per target and port, the
    allowed and the implementation-defined sources are bitsets over ``sources``; a source in
    neither is denied.
    """

    state: ClusterState
    policies: tuple[AnyPolicy, ...]
    include_self: bool
    sources: tuple[PodKey, ...]
    targets: tuple[TargetKey, ...]
    ports: Mapping[TargetKey, tuple[PortProto, ...]]
    _allow: Mapping[tuple[TargetKey, PortProto], int] = field(repr=False)
    _undefined: Mapping[tuple[TargetKey, PortProto], int] = field(repr=False)
    _source_bit: Mapping[PodKey, int] = field(repr=False)
    family: AddressFamily | None = None
    """The family whose addresses were matched against CIDRs (None: the primary ones)."""

    def verdict(
        self, source: PodKey, target: TargetKey, port: int, protocol: L4Protocol
    ) -> Verdict:
        """The cell's verdict; KeyError for an unknown source, target or port of that target."""
        key = (target, (port, protocol))
        bit = 1 << self._source_bit[source]
        if self._allow[key] & bit:
            return Verdict.ALLOW
        if self._undefined[key] & bit:
            return Verdict.IMPLEMENTATION_DEFINED
        return Verdict.DENY

    def allowed_sources(self, target: TargetKey, port: int, protocol: L4Protocol) -> list[PodKey]:
        """Sources whose connection to ``target`` at ``port/protocol`` is allowed."""
        bits = self._allow[(target, (port, protocol))]
        return [self._sources_by_bit[i] for i in bit_indices(bits)]

    def bits(self, target: TargetKey, pp: PortProto) -> tuple[int, int]:
        """Allowed and implementation-defined sources of one target port, as bitsets."""
        key = (target, pp)
        return self._allow[key], self._undefined[key]

    def source_mask(self, sources: Iterable[PodKey]) -> int:
        """The bitset of ``sources``, to intersect with ``bits``."""
        return _or(1 << self._source_bit[s] for s in sources)

    def same_sources(self, other: ReachabilityMatrix) -> bool:
        """Whether ``other`` numbers the same sources with the same bits (bitsets compare)."""
        return self._source_bit == other._source_bit

    def keys_of(self, bits: int) -> list[PodKey]:
        """Sources in a bitset, in ``sources`` order."""
        keys = [self._sources_by_bit[i] for i in bit_indices(bits)]
        return sorted(keys, key=self._source_order.__getitem__)

    @cached_property
    def _source_order(self) -> dict[PodKey, int]:
        return {key: i for i, key in enumerate(self.sources)}

    @cached_property
    def _sources_by_bit(self) -> dict[int, PodKey]:
        return {bit: key for key, bit in self._source_bit.items()}

    def cells(self) -> Iterator[tuple[PodKey, TargetKey, int, L4Protocol, Verdict]]:
        """Every cell, targets in order, then ports, then sources in order."""
        order = [(s, 1 << self._source_bit[s]) for s in self.sources]
        for target in self.targets:
            for pp in self.ports[target]:
                allow, undefined = self._allow[(target, pp)], self._undefined[(target, pp)]
                for source, bit in order:
                    if allow & bit:
                        v = Verdict.ALLOW
                    elif undefined & bit:
                        v = Verdict.IMPLEMENTATION_DEFINED
                    else:
                        v = Verdict.DENY
                    yield source, target, pp[0], pp[1], v

    @property
    def cell_count(self) -> int:
        return len(self.sources) * sum(len(p) for p in self.ports.values())

    def counts(self) -> dict[Verdict, int]:
        """How many cells have each verdict."""
        allow = sum(v.bit_count() for v in self._allow.values())
        undefined = sum(v.bit_count() for v in self._undefined.values())
        return {
            Verdict.ALLOW: allow,
            Verdict.DENY: self.cell_count - allow - undefined,
            Verdict.IMPLEMENTATION_DEFINED: undefined,
        }

    @cached_property
    def evaluator(self) -> Evaluator:
        """The reference evaluator over the same inputs (built on first use)."""
        return Evaluator(self.state, self.policies, include_self=self.include_self)

    def decision(
        self, source: PodKey, target: TargetKey, port: int, protocol: L4Protocol
    ) -> Decision:
        """The reference decision for one cell, with its reasons."""
        return self.evaluator.decide(source, target, port, protocol, self.family)

    def reason(self, source: PodKey, target: TargetKey, port: int, protocol: L4Protocol) -> str:
        return self.decision(source, target, port, protocol).reason


def compute_matrix(
    state: ClusterState,
    policies: Iterable[AnyPolicy],
    *,
    include_self: bool = False,
    port_protocols: Sequence[PortProto] | None = None,
    progress: Progress | None = None,
    family: AddressFamily | None = None,
) -> ReachabilityMatrix:
    """Verdicts of every source pod to every pod and external at each of the target's ports.

    ``port_protocols`` None evaluates each target at its declared container ports; otherwise
    every target at every listed port/protocol (as a scenario step's probes do). ``family``
    chooses the addresses CIDRs are matched against (None: every endpoint's primary one), as the
    evaluator's ``decide`` does.
    """
    return _Compiler(state, tuple(policies), include_self, port_protocols, progress, family).run()


class _Compiler:
    """One computation: indexes, per-rule bitsets and the two sides (see the module docstring)."""

    def __init__(
        self,
        state: ClusterState,
        policies: tuple[AnyPolicy, ...],
        include_self: bool,
        port_protocols: Sequence[PortProto] | None,
        progress: Progress | None,
        family: AddressFamily | None = None,
    ) -> None:
        self.state = state
        self.policies = policies
        self.include_self = include_self
        self.progress = progress
        # Rule 1: pods in IP order (no IP last), so an ipBlock is a range of bits.
        self.family = family
        self.pods: list[Pod] = sorted(state.pods, key=lambda p: _ip_order(p, family))
        self.n = len(self.pods)
        self.externals = state.externals
        self.all_pods = (1 << self.n) - 1
        self.all_targets = (1 << (self.n + len(self.externals))) - 1
        self.bit: dict[PodKey, int] = {p.key: i for i, p in enumerate(self.pods)}
        self.pod_network = sum(1 << i for i, p in enumerate(self.pods) if not p.host_network)
        self.host = self.all_pods ^ self.pod_network
        self.node_pods: dict[str | None, int] = {}
        for i, p in enumerate(self.pods):
            self.node_pods[p.node] = self.node_pods.get(p.node, 0) | (1 << i)
        self.node_pods.pop(None, None)  # an unknown node is nobody's own node
        self.ns_pods: dict[str, int] = {}
        self.by_label: dict[tuple[str, str], int] = {}
        self.by_key: dict[str, int] = {}
        for i, p in enumerate(self.pods):
            b = 1 << i
            self.ns_pods[p.namespace] = self.ns_pods.get(p.namespace, 0) | b
            for k, v in p.labels.items():
                self.by_label[(k, v)] = self.by_label.get((k, v), 0) | b
                self.by_key[k] = self.by_key.get(k, 0) | b
        self.ips: dict[int, tuple[list[int], int]] = {}  # version -> (sorted ints, first bit)
        for i, p in enumerate(self.pods):
            ip = p.address(family)
            if ip is not None and ip.version not in self.ips:
                self.ips[ip.version] = ([], i)
            if ip is not None:
                self.ips[ip.version][0].append(int(ip))
        self.ns_labels = {
            name: state.namespace(name).effective_labels()
            for name in {n.name for n in state.namespaces} | set(self.ns_pods)
        }
        self.target_ports: list[tuple[PortProto, ...]] = []
        for p in self.pods:
            self.target_ports.append(
                tuple(port_protocols) if port_protocols is not None else _declared(p.ports)
            )
        for e in self.externals:
            self.target_ports.append(
                tuple(port_protocols) if port_protocols is not None else _declared(e.ports)
            )
        self.named: dict[tuple[str, L4Protocol, int], int] = {}
        for i, p in enumerate(self.pods):
            for cp in p.ports:
                if cp.name is not None and p.named_port(cp.name, cp.protocol) == cp.port:
                    nk = (cp.name, cp.protocol, cp.port)
                    self.named[nk] = self.named.get(nk, 0) | (1 << i)
        self._sel_cache: dict[_SelectorKey, int] = {}
        self._ns_sel_cache: dict[_SelectorKey, int] = {}
        self._ipb_cache: dict[IPBlock, int] = {}
        self._nodes_cache: dict[_SelectorKey, tuple[int, int]] = {}
        self._tiers_cache: dict[tuple[int, ...], _Tiers] = {}
        self._admin_peer_cache: dict[tuple[int, Direction], tuple[int, int]] = {}
        self.netpols = [p for p in policies if isinstance(p, NetworkPolicy)]
        self.admin = [p for p in policies if isinstance(p, AdminPolicy)]

    # -- selectors and peers (rules 1-2) -----------------------------------------------------

    def selector(self, sel: LabelSelector) -> int:
        """Pods (any namespace, host network included) whose labels ``sel`` matches."""
        key = _selector_key(sel)
        cached = self._sel_cache.get(key)
        if cached is not None:
            return cached
        bits = self.all_pods
        for k, v in sel.match_labels.items():
            bits &= self.by_label.get((k, v), 0)
        for r in sel.match_expressions:
            if r.operator is Operator.IN:
                bits &= _or(self.by_label.get((r.key, v), 0) for v in r.values)
            elif r.operator is Operator.NOT_IN:
                bits &= self.all_pods ^ _or(self.by_label.get((r.key, v), 0) for v in r.values)
            elif r.operator is Operator.EXISTS:
                bits &= self.by_key.get(r.key, 0)
            else:
                bits &= self.all_pods ^ self.by_key.get(r.key, 0)
        self._sel_cache[key] = bits
        return bits

    def namespaces(self, sel: LabelSelector) -> int:
        """Pods in the namespaces whose labels ``sel`` matches."""
        key = _selector_key(sel)
        cached = self._ns_sel_cache.get(key)
        if cached is None:
            cached = _or(
                self.ns_pods.get(name, 0)
                for name, labels in self.ns_labels.items()
                if sel.matches(labels)
            )
            self._ns_sel_cache[key] = cached
        return cached

    def ip_block(self, block: IPBlock) -> int:
        """Pods and externals whose IP is in the block (pods' bits are contiguous per CIDR)."""
        cached = self._ipb_cache.get(block)
        if cached is not None:
            return cached
        bits = self._cidr(block.cidr)
        for ex in block.except_:
            bits &= self.all_targets ^ self._cidr(ex)
        for j, e in enumerate(self.externals):
            ip = e.address(self.family)
            if ip is not None and block.contains(ip):
                bits |= 1 << (self.n + j)
        self._ipb_cache[block] = bits
        return bits

    def _cidr(self, net: IPNetwork) -> int:
        found = self.ips.get(net.version)
        if found is None:
            return 0
        ints, first = found
        low = bisect.bisect_left(ints, int(net.network_address))
        high = bisect.bisect_right(ints, int(net.broadcast_address))
        return _range_mask(first + low, first + high)

    def subjects(self, policy: NetworkPolicy) -> int:
        """Pods a NetworkPolicy selects: its namespace, not host network, podSelector matching."""
        return (
            self.ns_pods.get(policy.namespace, 0)
            & self.pod_network
            & self.selector(policy.pod_selector)
        )

    def peer(
        self, policy: NetworkPolicy, peer: NetworkPolicyPeer, direction: Direction
    ) -> tuple[int, int]:
        """(certain, undecidable) endpoints the peer matches: evaluator rules 5 and N3."""
        if peer.ip_block is not None:
            bits = self.ip_block(peer.ip_block)
            if direction is Direction.INGRESS:
                # Node traffic from another node may arrive from any address.
                return bits & ~self.host, self.host
            return bits, 0
        if peer.namespace_selector is None:
            bits = self.ns_pods.get(policy.namespace, 0)
        else:
            bits = self.namespaces(peer.namespace_selector)
        if peer.pod_selector is not None:
            bits &= self.selector(peer.pod_selector)
        # Selectors read host-network pods as pods only in some plugins.
        return bits & self.pod_network, bits & self.host

    def peers(
        self, policy: NetworkPolicy, rule: NetworkPolicyRule, direction: Direction
    ) -> tuple[int, int]:
        if not rule.peers:
            return self.all_targets, 0  # Rule 4: no peers match every endpoint.
        certain = unsure = 0
        for p in rule.peers:
            m, u = self.peer(policy, p, direction)
            certain, unsure = certain | m, unsure | u
        return certain, unsure & ~certain

    def own_node(self, pod: Pod) -> int:
        """Host-network pods on ``pod``'s node: its own node, never blocked (evaluator N2)."""
        return self.node_pods.get(pod.node, 0) & self.host if pod.node is not None else 0

    # -- ports (rule 6) ------------------------------------------------------------------------

    def port_targets(self, rule: NetworkPolicyRule, pp: PortProto) -> int:
        """Targets at which some port of ``rule`` matches ``pp`` (named ports per target)."""
        if not rule.ports:
            return self.all_targets
        port, protocol = pp
        bits = 0
        for rp in rule.ports:
            if rp.protocol != protocol:
                continue
            if rp.port is None:
                return self.all_targets
            if isinstance(rp.port, str):
                bits |= self.named.get((rp.port, protocol, port), 0)
            elif rp.port == port or (rp.end_port is not None and rp.port <= port <= rp.end_port):
                return self.all_targets
        return bits

    # -- the computation -------------------------------------------------------------------

    def run(self) -> ReachabilityMatrix:
        subjects: dict[Direction, list[tuple[NetworkPolicy, int]]] = {d: [] for d in Direction}
        for policy in self.netpols:
            bits = self.subjects(policy)
            if bits:
                for direction in policy.policy_types:  # Rule 1: isolation per direction.
                    subjects[direction].append((policy, bits))
        np_sig: dict[Direction, list[tuple[int, ...]]] = {}
        for direction, entries in subjects.items():
            lists: list[list[int]] = [[] for _ in range(self.n)]
            for index, (_, bits) in enumerate(entries):
                for i in bit_indices(bits):
                    lists[i].append(index)
            np_sig[direction] = [tuple(x) for x in lists]
        admin_sig = self._admin_sigs()
        egress = self._egress(
            [p for p, _ in subjects[Direction.EGRESS]],
            np_sig[Direction.EGRESS],
            admin_sig[Direction.EGRESS],
        )
        ingress = _Ingress(
            self,
            [p for p, _ in subjects[Direction.INGRESS]],
            np_sig[Direction.INGRESS],
            admin_sig[Direction.INGRESS],
        )
        target_keys = [p.key for p in self.pods] + [e.key for e in self.externals]
        allow: dict[tuple[TargetKey, PortProto], int] = {}
        undefined: dict[tuple[TargetKey, PortProto], int] = {}
        n_targets = len(target_keys)
        step = max(1, n_targets // 100)
        for t in range(n_targets):
            for pp in self.target_ports[t]:
                in_allow, in_undef = ingress.side(t, pp)
                eg_allow = egress.free[pp] | egress.allow[pp][t]
                eg_undef = egress.undefined[pp][t]
                # Evaluator rule 3: a deny on either side decides, otherwise any doubt stays.
                cell_allow = eg_allow & in_allow
                cell_undef = (eg_allow | eg_undef) & (in_allow | in_undef) & ~cell_allow
                if t < self.n and not self.include_self:
                    self_bit = 1 << t  # Evaluator rule 7.
                    cell_allow &= ~self_bit
                    cell_undef |= self_bit
                allow[(target_keys[t], pp)] = cell_allow
                undefined[(target_keys[t], pp)] = cell_undef
            if self.progress is not None and (t % step == 0 or t == n_targets - 1):
                self.progress(t + 1, n_targets)
        order = {key: i for i, key in enumerate(target_keys)}
        state_targets = tuple(p.key for p in self.state.pods) + tuple(e.key for e in self.externals)
        return ReachabilityMatrix(
            state=self.state,
            policies=self.policies,
            include_self=self.include_self,
            sources=tuple(p.key for p in self.state.pods),
            targets=state_targets,
            ports={k: self.target_ports[order[k]] for k in state_targets},
            _allow=allow,
            _undefined=undefined,
            _source_bit=dict(self.bit),
            family=self.family,
        )

    def _egress(
        self,
        isolating: list[NetworkPolicy],
        np_sig: list[tuple[int, ...]],
        admin_sig: list[tuple[int, ...]],
    ) -> _Egress:
        """Rule 4 on the egress side, per group of sources, transposed to per-target columns."""
        n_targets = self.n + len(self.externals)
        all_pps = sorted({pp for ports in self.target_ports for pp in ports})
        pp_targets = dict.fromkeys(all_pps, 0)
        for t, ports in enumerate(self.target_ports):
            for pp in ports:
                pp_targets[pp] |= 1 << t
        rules = [(self.peers(p, r, Direction.EGRESS), r) for p in isolating for r in p.egress]
        spans: list[tuple[int, int]] = []
        pos = 0
        for p in isolating:
            spans.append((pos, pos + len(p.egress)))
            pos += len(p.egress)
        groups: dict[tuple[tuple[int, ...], tuple[int, ...], int], int] = {}
        unisolated = 0
        for i in range(self.n):
            if not np_sig[i] and not admin_sig[i]:
                unisolated |= 1 << i  # Rule 2: allowed to every target.
                continue
            # Pods on one node share a side: their own node is exempt (rule N2).
            own = self.own_node(self.pods[i]) if np_sig[i] else 0
            key = (np_sig[i], admin_sig[i], own)
            groups[key] = groups.get(key, 0) | (1 << i)
        out = _Egress(
            dict.fromkeys(all_pps, unisolated),
            {pp: [0] * n_targets for pp in all_pps},
            {pp: [0] * n_targets for pp in all_pps},
        )
        rule_pps: dict[int, dict[PortProto, tuple[int, int]]] = {}
        for (policies, a_sig, own), members in groups.items():
            base = base_u = 0  # targets matched at every port (rules without ports)
            extras: dict[PortProto, tuple[int, int]] = {}
            for entry in policies:
                for j in range(*spans[entry]):
                    (peers, peers_u), rule = rules[j]
                    if not rule.ports:
                        base, base_u = base | peers, base_u | peers_u
                        continue
                    per_pp = rule_pps.get(j)
                    if per_pp is None:
                        per_pp = rule_pps[j] = {}
                        for pp in all_pps:
                            at = self.port_targets(rule, pp)
                            if (peers | peers_u) & at:
                                per_pp[pp] = (peers & at, peers_u & at)
                    for pp, (bits, bits_u) in per_pp.items():
                        old = extras.get(pp, (0, 0))
                        extras[pp] = (old[0] | bits, old[1] | bits_u)
            for pp in all_pps:
                extra, extra_u = extras.get(pp, (0, 0))
                row = base | extra | own
                row_undef = (base_u | extra_u) & ~row
                if a_sig:
                    row, row_undef = self._admin_side(
                        a_sig,
                        Direction.EGRESS,
                        self.all_targets,
                        bool(policies),
                        row,
                        partial(self._admin_ports_by_target, pp=pp),
                        row_undef,
                    )
                if row_undef:
                    column = out.undefined[pp]
                    for t in bit_indices(row_undef & pp_targets[pp]):
                        column[t] |= members
                column = out.allow[pp]
                for t in bit_indices(row & pp_targets[pp]):
                    column[t] |= members
        return out

    # -- admin tiers (evaluator rules 8-13) ---------------------------------------------------

    def admin_subjects(self, policy: AdminPolicy) -> int:
        """Pods an admin policy's subject selects (rule 12: never host-network pods)."""
        subject = policy.subject
        if subject.namespaces is not None:
            bits = self.namespaces(subject.namespaces)
        else:
            assert subject.pods is not None
            bits = self.namespaces(subject.pods.namespace_selector) & self.selector(
                subject.pods.pod_selector
            )
        return bits & self.pod_network

    def _admin_sigs(self) -> dict[Direction, list[tuple[int, ...]]]:
        """Per direction and pod: indexes (into ``self.admin``) of the policies selecting it."""
        out: dict[Direction, list[list[int]]] = {d: [[] for _ in range(self.n)] for d in Direction}
        for index, policy in enumerate(self.admin):
            bits = self.admin_subjects(policy)
            for direction in Direction:
                if policy.rules(direction):  # A policy without rules for a direction: no effect.
                    for i in bit_indices(bits):
                        out[direction][i].append(index)
        return {d: [tuple(x) for x in lists] for d, lists in out.items()}

    def _tiers(self, a_sig: tuple[int, ...]) -> _Tiers:
        """Rule 9: admin and baseline-CNP groups by priority (ties sorted), and the BANP."""
        found = self._tiers_cache.get(a_sig)
        if found is not None:
            return found
        admin: dict[int, list[AdminPolicy]] = {}
        baseline: dict[int, list[AdminPolicy]] = {}
        banp: AdminPolicy | None = None
        for index in a_sig:
            policy = self.admin[index]
            if policy.kind == BANP:
                banp = policy
            elif policy.tier is Tier.ADMIN:
                admin.setdefault(policy.priority or 0, []).append(policy)
            else:
                baseline.setdefault(policy.priority or 0, []).append(policy)

        def ordered(by: dict[int, list[AdminPolicy]]) -> list[list[AdminPolicy]]:
            return [sorted(by[k], key=lambda p: (p.kind, p.name)) for k in sorted(by)]

        found = self._tiers_cache[a_sig] = (ordered(admin), ordered(baseline), banp)
        return found

    def _admin_peers(self, rule: AdminRule, direction: Direction) -> tuple[int, int]:
        """(certain, undecidable) matches of the rule's peers over all endpoints (rule 12)."""
        key = (id(rule), direction)
        found = self._admin_peer_cache.get(key)
        if found is not None:
            return found
        certain = unsure = 0
        for peer in rule.peers:
            if peer.networks:
                for net in peer.networks:
                    certain |= self._cidr(net)
                    for j, e in enumerate(self.externals):
                        ip = e.address(self.family)
                        if ip is not None and ip.version == net.version and ip in net:
                            certain |= 1 << (self.n + j)
            elif peer.domain_names:
                unsure |= self.all_targets ^ self.all_pods  # externals only
            elif peer.nodes is not None:
                m, u = self.nodes(peer.nodes)
                certain, unsure = certain | m, unsure | u
            elif peer.namespaces is not None:
                certain |= self.namespaces(peer.namespaces) & self.pod_network
            else:
                assert peer.pods is not None
                certain |= (
                    self.namespaces(peer.pods.namespace_selector)
                    & self.selector(peer.pods.pod_selector)
                    & self.pod_network
                )
        found = self._admin_peer_cache[key] = (certain, unsure & ~certain)
        return found

    def nodes(self, sel: LabelSelector) -> tuple[int, int]:
        """Host-network pods on nodes ``sel`` matches; those on unknown nodes undecidably."""
        key = _selector_key(sel)
        found = self._nodes_cache.get(key)
        if found is None:
            certain = unsure = 0
            for i, p in enumerate(self.pods):
                if not p.host_network:
                    continue
                node = self.state.node(p.node)
                if node is None:
                    unsure |= 1 << i
                elif sel.matches(node.effective_labels()):
                    certain |= 1 << i
            found = self._nodes_cache[key] = (certain, unsure)
        return found

    def _admin_ports_by_target(self, rule: AdminRule, pp: PortProto) -> tuple[int, int]:
        """(certain, undecidable) port matches over targets: named ports per destination pod."""
        if rule.ports is None:
            return self.all_targets, 0
        certain = unsure = 0
        for p in rule.ports:
            if p.named_port is not None:
                certain |= self.named.get((p.named_port, pp[1], pp[0]), 0)
                continue
            m = _admin_number_matches(p, pp)
            if m is None:
                unsure = self.all_targets
            elif m:
                return self.all_targets, 0
        return certain, unsure & ~certain

    def _admin_ports_at(self, rule: AdminRule, pod: Pod, pp: PortProto) -> tuple[int, int]:
        """The same for one destination pod (ingress): every source or none."""
        if rule.ports is None:
            return self.all_targets, 0
        unsure = False
        for p in rule.ports:
            if p.named_port is not None:
                if pod.named_port(p.named_port, pp[1]) == pp[0]:
                    return self.all_targets, 0
                continue
            m = _admin_number_matches(p, pp)
            if m is None:
                unsure = True
            elif m:
                return self.all_targets, 0
        return 0, self.all_targets if unsure else 0

    def _admin_side(
        self,
        a_sig: tuple[int, ...],
        direction: Direction,
        universe: int,
        isolated: bool,
        np_allow: int,
        ports: Callable[[AdminRule], tuple[int, int]],
        np_undef: int = 0,
    ) -> tuple[int, int]:
        """(allowed, implementation-defined) over ``universe`` for one side: rules 8-11.

        ``universe`` is every other end (targets for egress, source pods for ingress);
        ``ports`` gives a rule's (certain, undecidable) port matches over it.
        """
        admin, baseline, banp = self._tiers(a_sig)

        def hits(policy: AdminPolicy) -> _Hits:
            # Rule 9: the first rule of the policy that matches (certainly or undecidably).
            left = universe
            allow = deny = passed = unsure = 0
            for rule in policy.rules(direction):
                pm, pu = ports(rule)
                if not (pm | pu):
                    continue
                peer_m, peer_u = self._admin_peers(rule, direction)
                m = pm & peer_m & left
                u = (pm | pu) & (peer_m | peer_u) & left & ~m
                unsure |= u
                if rule.action is RuleAction.PASS:
                    passed |= m
                elif rule.action.allows:
                    allow |= m
                else:
                    deny |= m
                left &= ~(m | u)
            return allow, deny, passed, unsure

        def resolve(h: _Hits, scope: int, after: _Triple) -> _Triple:
            # Rules 9 and 11: one outcome, or implementation-defined when undecidable or tied.
            allow, deny, passed, unsure = (x & scope for x in h)
            has_allow = allow | (passed & after[0])
            has_deny = deny | (passed & after[1])
            has_undef = passed & after[2] | unsure
            a = has_allow & ~has_deny & ~has_undef
            d = has_deny & ~has_allow & ~has_undef
            return a, d, scope & ~(a | d)

        def tier(
            groups: list[list[AdminPolicy]], extra: AdminPolicy | None, after: _Triple
        ) -> _Triple:
            out_a = out_d = out_u = 0
            left = universe
            extra_hits = hits(extra) if extra is not None else (0, 0, 0, 0)
            for group in groups:
                total: list[int] = [0, 0, 0, 0]
                for policy in group:
                    for i, bits in enumerate(hits(policy)):
                        total[i] |= bits
                scope = (total[0] | total[1] | total[2] | total[3]) & left
                if not scope:
                    continue
                # Rule 11: a BANP ties with the first baseline group that matches.
                h: _Hits = (
                    total[0] | extra_hits[0],
                    total[1] | extra_hits[1],
                    total[2] | extra_hits[2],
                    total[3] | extra_hits[3],
                )
                a, d, u = resolve(h, scope, after)
                out_a, out_d, out_u = out_a | a, out_d | d, out_u | u
                left &= ~scope
            if extra is not None:
                scope = (extra_hits[0] | extra_hits[1] | extra_hits[2] | extra_hits[3]) & left
                a, d, u = resolve(extra_hits, scope, after)
                out_a, out_d, out_u = out_a | a, out_d | d, out_u | u
                left &= ~scope
            return out_a | (after[0] & left), out_d | (after[1] & left), out_u | (after[2] & left)

        default: _Triple = (universe, 0, 0)
        if isolated:
            # Rule 10 (and N3: NetworkPolicy matches the plugin decides).
            allow, undef = np_allow & universe, np_undef & universe & ~np_allow
            np_tier: _Triple = (allow, universe & ~(allow | undef), undef)
        else:
            np_tier = tier(baseline, banp, default)
        result = tier(admin, None, np_tier)
        return result[0], result[2]


@dataclass(frozen=True)
class _Egress:
    """Egress verdicts per port: ``free`` sources allowed to every target; per target column,
    the other allowed and implementation-defined sources."""

    free: dict[PortProto, int]
    allow: dict[PortProto, list[int]]
    undefined: dict[PortProto, list[int]]


class _Ingress:
    """Rule 4 on the ingress side for one target and port, shared by pods with the same
    isolating NetworkPolicies, admin policies and declared ports."""

    def __init__(
        self,
        compiler: _Compiler,
        isolating: list[NetworkPolicy],
        np_sig: list[tuple[int, ...]],
        admin_sig: list[tuple[int, ...]],
    ) -> None:
        self.c = compiler
        self.isolating = isolating
        self.np_sig = np_sig
        self.admin_sig = admin_sig
        self._peers: dict[tuple[int, int], tuple[int, int]] = {}
        self._cache: dict[tuple[Any, ...], tuple[int, int]] = {}

    def side(self, t: int, pp: PortProto) -> tuple[int, int]:
        """(allowed, implementation-defined) sources of target ``t`` at ``pp``."""
        c = self.c
        if t >= c.n:
            return c.all_pods, 0  # An external endpoint has no ingress side.
        pod = c.pods[t]
        np_sig, a_sig = self.np_sig[t], self.admin_sig[t]
        if not np_sig and not a_sig:
            return c.all_pods, 0
        own = c.own_node(pod) if np_sig else 0
        key = (np_sig, a_sig, pod.ports, pp, own)
        found = self._cache.get(key)
        if found is not None:
            return found
        allowed, unsure = c.all_pods, 0
        if np_sig:
            allowed = own  # Rule N2: the pod's own node.
            for entry in np_sig:
                policy = self.isolating[entry]
                for index, rule in enumerate(policy.ingress):
                    if port_matches(rule, pod, pp):
                        peers = self._peers.get((entry, index))
                        if peers is None:
                            peers = c.peers(policy, rule, Direction.INGRESS)
                            self._peers[(entry, index)] = peers
                        allowed |= peers[0]
                        unsure |= peers[1]
            allowed &= c.all_pods
            unsure &= c.all_pods & ~allowed
        found = (allowed, unsure)
        if a_sig:
            found = c._admin_side(
                a_sig,
                Direction.INGRESS,
                c.all_pods,
                bool(np_sig),
                allowed,
                partial(c._admin_ports_at, pod=pod, pp=pp),
                unsure,
            )
        self._cache[key] = found
        return found


_Triple = tuple[int, int, int]
"""(allowed, denied, implementation-defined) bitsets: a partition of the universe."""
_Hits = tuple[int, int, int, int]
"""First-hit bitsets of a policy or group: (allow, deny, pass, undecidable)."""
_Tiers = tuple[list[list[AdminPolicy]], list[list[AdminPolicy]], AdminPolicy | None]


MatrixCompiler = _Compiler
"""One computation's indexes (selectors, peers, ports as bitsets) and ``run()`` for its matrix:
for modules that need more than verdicts (``sampling.py``)."""


def _admin_number_matches(p: AdminPort, pp: PortProto) -> bool | None:
    """Evaluator rule 13 for a numeric port or range (None: a v1alpha1 range start >= end)."""
    return p.number_matches(*pp)


def port_matches(rule: NetworkPolicyRule, pod: Pod, pp: PortProto) -> bool:
    """Evaluator rule 6 for one destination pod."""
    if not rule.ports:
        return True
    port, protocol = pp
    for rp in rule.ports:
        if rp.protocol != protocol:
            continue
        if rp.port is None:
            return True
        if isinstance(rp.port, str):
            if pod.named_port(rp.port, protocol) == port:
                return True
        elif rp.port == port or (rp.end_port is not None and rp.port <= port <= rp.end_port):
            return True
    return False


def _declared(ports: Iterable[ContainerPort]) -> tuple[PortProto, ...]:
    return tuple(dict.fromkeys((p.port, p.protocol) for p in ports))


def _ip_order(pod: Pod, family: AddressFamily | None) -> tuple[int, int, str]:
    ip = pod.address(family)
    if ip is None:
        return (1, 0, pod.key)
    return (0, ip.version * (1 << 130) + int(ip), pod.key)


def _or(values: Iterable[int]) -> int:
    out = 0
    for v in values:
        out |= v
    return out
