"""Cluster-scoped admin policies as typed values, parsed with the CRDs' validation.

Three kinds from kubernetes-sigs/network-policy-api share one model, ``AdminPolicy``:

- ``AdminNetworkPolicy`` and ``BaselineAdminNetworkPolicy`` (policy.networking.k8s.io/v1alpha1,
  network-policy-api v0.1.x; apis/v1alpha1/adminnetworkpolicy_types.go, shared_types.go,
  baselineadminnetworkpolicy_types.go);
- ``ClusterNetworkPolicy`` (policy.networking.k8s.io/v1alpha2, v0.2.0;
  apis/v1alpha2/clusternetworkpolicy_types.go), one resource with ``tier: Admin | Baseline``.

Differences the model keeps: v1alpha1 actions are Allow/Deny/Pass (a BANP only Allow/Deny),
v1alpha2 actions Accept/Deny/Pass; v1alpha1 rules filter on ``ports`` (``portNumber``,
``namedPort``, ``portRange``), v1alpha2 on ``protocols`` (``tcp``/``udp``/``sctp`` with a
``destinationPort`` number or range, or ``destinationNamedPort``). Both become ``AdminPort``.

Validation follows the CRD schemas (required fields, enums, Minimum/Maximum, MinItems/MaxItems,
Min/MaxProperties "exactly one field", ``listType=set`` uniqueness, MaxLength) and their CEL rules
(port range start < end, no named ports with networks/nodes/domainNames peers, the BANP singleton
name). Unknown fields are errors, as with strict field validation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from conformance.api.fields import (
    METADATA_FIELDS,
    OBJECT_FIELDS,
    Field,
    Locator,
    dns1123_subdomain_problem,
    no_location,
)
from conformance.api.kinds import ADMIN_KINDS, ANP, BANP, CNP, Kind
from conformance.api.model import IPAddress, Pod
from conformance.api.netpol import IPNetwork, parse_cidr
from conformance.api.selectors import LabelSelector, parse_label_selector
from conformance.api.types import Direction, L4Protocol

_T = TypeVar("_T")

BANP_NAME = "default"
"""BaselineAdminNetworkPolicy is a singleton: the CRD's CEL rule requires this name."""


class Tier(StrEnum):
    """Where a policy sits in the evaluation order (ClusterNetworkPolicySpec.tier)."""

    ADMIN = "Admin"
    BASELINE = "Baseline"


class RuleAction(StrEnum):
    """Rule actions as written: v1alpha1 Allow/Deny/Pass, v1alpha2 Accept/Deny/Pass."""

    ALLOW = "Allow"
    ACCEPT = "Accept"
    DENY = "Deny"
    PASS = "Pass"

    @property
    def allows(self) -> bool:
        return self in (RuleAction.ALLOW, RuleAction.ACCEPT)


@dataclass(frozen=True)
class NamespacedPod:
    """Pods matching ``pod_selector`` in namespaces matching ``namespace_selector`` (NamespacedPod)."""

    namespace_selector: LabelSelector
    pod_selector: LabelSelector

    def __str__(self) -> str:
        return f"pods {self.pod_selector} in namespaces {self.namespace_selector}"


@dataclass(frozen=True)
class Subject:
    """AdminNetworkPolicySubject / ClusterNetworkPolicySubject: exactly one field is set."""

    namespaces: LabelSelector | None = None
    pods: NamespacedPod | None = None

    def selects(self, pod: Pod, namespace_labels: Mapping[str, str]) -> bool:
        # Spec.subject: "Note that host-networked pods are not included in subject selection."
        if pod.host_network:
            return False
        if self.namespaces is not None:
            return self.namespaces.matches(namespace_labels)
        assert self.pods is not None
        return self.pods.namespace_selector.matches(
            namespace_labels
        ) and self.pods.pod_selector.matches(pod.labels)

    def __str__(self) -> str:
        if self.namespaces is not None:
            return f"namespaces {self.namespaces}"
        return str(self.pods)


@dataclass(frozen=True)
class AdminPeer:
    """One peer; exactly one field is set (MinProperties=1, MaxProperties=1).

    ``namespaces``/``pods`` select pods (never host-networked ones); ``networks`` match IPs, pod IPs
    included; ``nodes`` select node IPs; ``domain_names`` are FQDN patterns.
    """

    namespaces: LabelSelector | None = None
    pods: NamespacedPod | None = None
    nodes: LabelSelector | None = None
    networks: tuple[IPNetwork, ...] = ()
    domain_names: tuple[str, ...] = ()

    def contains_ip(self, ip: IPAddress) -> bool:
        return any(ip.version == n.version and ip in n for n in self.networks)

    def __str__(self) -> str:
        if self.namespaces is not None:
            return f"namespaces {self.namespaces}"
        if self.pods is not None:
            return str(self.pods)
        if self.nodes is not None:
            return f"nodes {self.nodes}"
        if self.networks:
            return f"networks {', '.join(map(str, self.networks))}"
        return f"domainNames {', '.join(self.domain_names)}"


@dataclass(frozen=True)
class AdminPort:
    """A destination port: a number, an inclusive range (``port``..``end_port``) or a named port.

    A named port has no protocol of its own: it matches the destination pod's container port of
    that name, on that container port's protocol.
    """

    protocol: L4Protocol | None = L4Protocol.TCP
    port: int | None = None
    end_port: int | None = None
    named_port: str | None = None

    @property
    def undefined_range(self) -> bool:
        """A v1alpha1 range with start >= end: stored by the API server, its meaning undocumented."""
        return self.end_port is not None and self.port is not None and self.port >= self.end_port

    def number_matches(self, port: int, protocol: L4Protocol) -> bool | None:
        """Whether a numeric port or range covers ``port``/``protocol`` (never a named port).

        None inside a v1alpha1 range with start >= end: stored, but its meaning is undefined.
        """
        if self.protocol != protocol or self.port is None:
            return False
        if self.end_port is not None:
            low, high = sorted((self.port, self.end_port))
            if not low <= port <= high:
                return False
            return None if self.undefined_range else True
        return self.port == port

    def __str__(self) -> str:
        if self.named_port is not None:
            return f"named port {self.named_port!r}"
        if self.end_port is not None:
            return f"{self.port}-{self.end_port}/{self.protocol}"
        return f"{self.port}/{self.protocol}"


@dataclass(frozen=True)
class AdminRule:
    """One ingress or egress rule; ``ports`` None means the rule does not filter on ports."""

    index: int
    name: str
    action: RuleAction
    peers: tuple[AdminPeer, ...]
    ports: tuple[AdminPort, ...] | None = None


@dataclass(frozen=True)
class AdminPolicy:
    """An AdminNetworkPolicy, BaselineAdminNetworkPolicy or ClusterNetworkPolicy.

    ``priority`` is None only for a BaselineAdminNetworkPolicy, which has no priority field.
    """

    kind: str
    name: str
    tier: Tier
    priority: int | None
    subject: Subject
    ingress: tuple[AdminRule, ...] = ()
    egress: tuple[AdminRule, ...] = ()

    @property
    def key(self) -> str:
        """Cluster-scoped: the name alone identifies the object within its kind."""
        return self.name

    @property
    def api(self) -> Kind:
        return ADMIN_KINDS[self.kind]

    def rules(self, direction: Direction) -> tuple[AdminRule, ...]:
        return self.ingress if direction is Direction.INGRESS else self.egress

    def __str__(self) -> str:
        prio = f" priority {self.priority}" if self.priority is not None else ""
        tier = f" tier {self.tier}" if self.kind == CNP else ""
        return f"{self.kind} {self.name}{tier}{prio}"


def parse_admin_policy(obj: Any, locate: Locator | None = None) -> AdminPolicy:
    """Validate an ANP, BANP or CNP object like the API server with the CRD installed would.

    Raises ScenarioError (or ScenarioErrors) naming each invalid field by its key path.
    """
    root = Field(obj, (), locate or no_location())
    policy = _Parser(root).parse()
    root.raise_errors()
    assert policy is not None
    return policy


# --- parsing ----------------------------------------------------------------------------------

_SPEC = {
    ANP: frozenset({"priority", "subject", "ingress", "egress"}),
    BANP: frozenset({"subject", "ingress", "egress"}),
    CNP: frozenset({"tier", "priority", "subject", "ingress", "egress"}),
}
_ACTIONS = {
    ANP: (RuleAction.ALLOW, RuleAction.DENY, RuleAction.PASS),
    BANP: (RuleAction.ALLOW, RuleAction.DENY),
    CNP: (RuleAction.ACCEPT, RuleAction.DENY, RuleAction.PASS),
}
_SUBJECT = frozenset({"namespaces", "pods"})
_NAMESPACED_POD = frozenset({"namespaceSelector", "podSelector"})
_INGRESS_PEER = frozenset({"namespaces", "pods"})
_EGRESS_PEER = frozenset({"namespaces", "pods", "nodes", "networks", "domainNames"})
_V1ALPHA1_PORT = frozenset({"portNumber", "namedPort", "portRange"})
_V1ALPHA2_PROTOCOL = frozenset({"tcp", "udp", "sctp", "destinationNamedPort"})

# Limits from the +kubebuilder:validation markers of each generation.
_MAX_RULES = {ANP: 100, BANP: 100, CNP: 25}
_MAX_PEERS = {ANP: 100, BANP: 100, CNP: 25}
_MAX_PORTS = {ANP: 100, BANP: 100, CNP: 25}
_MAX_NETWORKS = 25
_MAX_DOMAIN_NAMES = 25
_MAX_RULE_NAME = 100
_MAX_CIDR_LENGTH = 43
_PRIORITY_RANGE = (0, 1000)

# DomainName's +kubebuilder:validation:Pattern (a '*.' prefix wildcard, then DNS labels).
_DOMAIN_NAME = re.compile(
    r"^(\*\.)?([a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.)+[a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.?$"
)


class _Parser:
    """One object's parse; errors accumulate on the shared ``Field`` sink."""

    def __init__(self, root: Field) -> None:
        self.root = root
        self.kind = ""
        self.api_version = ""

    def parse(self) -> AdminPolicy | None:
        root = self.root
        if not root.expect_mapping(OBJECT_FIELDS):
            return None
        api, kind = root.value.get("apiVersion"), root.value.get("kind")
        info = ADMIN_KINDS.get(str(kind))
        if info is None or api != info.api_version:
            accepted = ", ".join(f"{k.api_version} {k.kind}" for k in ADMIN_KINDS.values())
            root.error(f"expected one of {accepted}; got {api} {kind}")
            return None
        self.kind, self.api_version = info.kind, info.api_version
        name = self._name()
        spec = root.get("spec")
        if spec is None:
            root.error("spec is required")
            return None
        if not spec.expect_mapping(_SPEC[self.kind]):
            return None
        tier, priority = self._tier_and_priority(spec)
        subject = self._subject(spec)
        ingress = self._rules(spec.get("ingress"), Direction.INGRESS)
        egress = self._rules(spec.get("egress"), Direction.EGRESS)
        if subject is None:
            return None
        return AdminPolicy(self.kind, name, tier, priority, subject, ingress, egress)

    def _name(self) -> str:
        meta = self.root.get("metadata")
        if meta is None:
            self.root.error("metadata.name is required")
            return ""
        if not meta.expect_mapping(METADATA_FIELDS):
            return ""
        # A cluster-scoped object has no namespace: the API server clears metadata.namespace
        # (rest.BeforeCreate), so a namespace written here is ignored like on a real cluster.
        name_f = meta.get("name")
        if name_f is None:
            meta.error("metadata.name is required")
            return ""
        if not name_f.expect_str():
            return ""
        problem = dns1123_subdomain_problem(name_f.value)
        if problem:
            name_f.error(f"{name_f.value!r} {problem}")
        if self.kind == BANP and name_f.value != BANP_NAME:
            # BaselineAdminNetworkPolicy CEL: self.metadata.name == 'default' (a singleton).
            name_f.error(
                f"a BaselineAdminNetworkPolicy must be named {BANP_NAME!r} (only one can exist "
                f"in a cluster); got {name_f.value!r}"
            )
        return str(name_f.value)

    def _tier_and_priority(self, spec: Field) -> tuple[Tier, int | None]:
        tier = Tier.BASELINE if self.kind == BANP else Tier.ADMIN
        if self.kind == CNP:
            # ClusterNetworkPolicySpec.tier: required, enum Admin | Baseline.
            tf = spec.get("tier")
            if tf is None:
                spec.error("spec.tier is required; accepted: Admin, Baseline")
            else:
                try:
                    tier = Tier(tf.value)
                except ValueError:
                    tf.error(f"{tf.value!r} is not a tier; accepted: Admin, Baseline")
        if self.kind == BANP:
            return tier, None
        # Spec.priority: required, +kubebuilder:validation:Minimum=0, Maximum=1000.
        pf = spec.get("priority")
        if pf is None:
            spec.error("spec.priority is required (0-1000, lower numbers take precedence)")
            return tier, 0
        if not pf.expect_int():
            return tier, 0
        low, high = _PRIORITY_RANGE
        if not low <= pf.value <= high:
            pf.error(f"priority {pf.value} must be between {low} and {high}")
        return tier, int(pf.value)

    def _subject(self, spec: Field) -> Subject | None:
        sf = spec.get("subject")
        if sf is None:
            spec.error("spec.subject is required (namespaces or pods)")
            return None
        if not sf.expect_mapping(_SUBJECT):
            return None
        if not self._exactly_one(sf, _SUBJECT):
            return None
        ns = sf.get("namespaces")
        if ns is not None:
            return Subject(namespaces=parse_label_selector(ns))
        pods_f = sf.get("pods")
        assert pods_f is not None
        pods = self._namespaced_pod(pods_f)
        return Subject(pods=pods) if pods is not None else None

    def _namespaced_pod(self, f: Field) -> NamespacedPod | None:
        if not f.expect_mapping(_NAMESPACED_POD):
            return None
        ns, ps = f.get("namespaceSelector"), f.get("podSelector")
        if ps is None:
            f.error("podSelector is required ({} selects all pods)")
            return None
        if ns is None and self.kind != CNP:
            # v1alpha1 NamespacedPod: both selectors are required. In v1alpha2 namespaceSelector
            # is optional, and an omitted one is the empty selector: all namespaces.
            f.error("namespaceSelector is required ({} selects all namespaces)")
            return None
        return NamespacedPod(
            parse_label_selector(ns) if ns is not None else LabelSelector.everything(),
            parse_label_selector(ps),
        )

    def _exactly_one(self, f: Field, fields: Iterable[str]) -> bool:
        """MinProperties=1 / MaxProperties=1: exactly one of ``fields`` is set."""
        # An explicit null is dropped by the API server's decoding, as if the field were absent.
        present = [k for k in fields if f.value.get(k) is not None]
        if len(present) == 1:
            return True
        names = ", ".join(sorted(fields))
        if not present:
            f.error(f"exactly one of {names} must be set; none is")
        else:
            f.error(f"exactly one of {names} must be set; got {', '.join(present)}")
        return False

    def _list(self, f: Field, what: str, low: int, high: int) -> bool:
        """A list with MinItems/MaxItems bounds."""
        if not f.expect_list():
            return False
        if len(f.value) < low:
            f.error(f"{what} must have at least {low} item{'s' if low > 1 else ''}")
            return False
        if len(f.value) > high:
            f.error(f"{what} may have at most {high} items, got {len(f.value)}")
            return False
        return True

    def _rules(self, f: Field | None, direction: Direction) -> tuple[AdminRule, ...]:
        if f is None:
            return ()
        what = f"{direction.lower()} rules"
        if not self._list(f, what, 0, _MAX_RULES[self.kind]):
            return ()
        rules = []
        for i, item in enumerate(f.items()):
            rule = self._rule(item, i, direction)
            if rule is not None:
                rules.append(rule)
        return tuple(rules)

    def _rule(self, f: Field, index: int, direction: Direction) -> AdminRule | None:
        peer_key = "from" if direction is Direction.INGRESS else "to"
        ports_key = "protocols" if self.kind == CNP else "ports"
        if not f.expect_mapping(frozenset({"name", "action", peer_key, ports_key})):
            return None
        name = ""
        nf = f.get("name")
        if nf is not None and nf.expect_str():
            if len(nf.value) > _MAX_RULE_NAME:
                nf.error(f"a rule name may have at most {_MAX_RULE_NAME} characters")
            name = nf.value
        action = self._action(f)
        peers = self._peers(f, peer_key, direction)
        pf = f.get(ports_key)
        ports: tuple[AdminPort, ...] | None = None
        if pf is not None:
            ports = self._ports(pf) if self.kind != CNP else self._protocols(pf)
        if peers is None or action is None or (pf is not None and ports is None):
            return None
        # Egress rule CEL: "networks/nodes/domainNames peer cannot be set with namedPorts since
        # there are no namedPorts for networks/nodes/domainNames".
        if (
            ports
            and any(p.named_port is not None for p in ports)
            and any(p.networks or p.nodes is not None or p.domain_names for p in peers)
        ):
            f.error(
                "networks/nodes/domainNames peers cannot be combined with named ports: they "
                "have no named ports; use port numbers or split the rule"
            )
            return None
        return AdminRule(index, name, action, peers, ports)

    def _action(self, f: Field) -> RuleAction | None:
        accepted = _ACTIONS[self.kind]
        af = f.get("action")
        names = ", ".join(accepted)
        if af is None:
            f.error(f"action is required; accepted: {names}")
            return None
        try:
            action = RuleAction(af.value)
        except ValueError:
            action = None
        if action not in accepted:
            hint = ""
            if action is RuleAction.ACCEPT:
                hint = (
                    " (Accept is the v1alpha2 ClusterNetworkPolicy spelling; v1alpha1 says Allow)"
                )
            elif action is RuleAction.ALLOW and self.kind == CNP:
                hint = " (ClusterNetworkPolicy says Accept)"
            elif action is RuleAction.PASS and self.kind == BANP:
                hint = " (a baseline policy has no lower tier to pass to)"
            af.error(f"{af.value!r} is not an action of {self.kind}; accepted: {names}{hint}")
            return None
        return action

    def _peers(self, f: Field, peer_key: str, direction: Direction) -> tuple[AdminPeer, ...] | None:
        pf = f.get(peer_key)
        if pf is None:
            f.error(f"{peer_key} is required and must have at least one peer")
            return None
        if not self._list(pf, peer_key, 1, _MAX_PEERS[self.kind]):
            return None
        allowed = _INGRESS_PEER if direction is Direction.INGRESS else _EGRESS_PEER
        peers: list[AdminPeer] = []
        ok = True
        for item in pf.items():
            peer = self._peer(item, allowed)
            if peer is None:
                ok = False
            else:
                peers.append(peer)
        return tuple(peers) if ok else None

    def _peer(self, f: Field, allowed: frozenset[str]) -> AdminPeer | None:
        if not f.expect_mapping(allowed) or not self._exactly_one(f, allowed):
            return None
        if (v := f.get("namespaces")) is not None:
            return AdminPeer(namespaces=parse_label_selector(v))
        if (v := f.get("pods")) is not None:
            pods = self._namespaced_pod(v)
            return AdminPeer(pods=pods) if pods is not None else None
        if (v := f.get("nodes")) is not None:
            return AdminPeer(nodes=parse_label_selector(v))
        if (v := f.get("networks")) is not None:
            nets: list[IPNetwork] | None = self._set_of(v, "networks", _MAX_NETWORKS, _cidr)
            return AdminPeer(networks=tuple(nets)) if nets is not None else None
        v = f.get("domainNames")
        assert v is not None
        names = self._set_of(v, "domainNames", _MAX_DOMAIN_NAMES, _domain_name)
        return AdminPeer(domain_names=tuple(names)) if names is not None else None

    def _set_of(
        self, f: Field, what: str, high: int, parse: Callable[[Field], _T | None]
    ) -> list[_T] | None:
        """A ``+listType=set`` list with MinItems=1 and MaxItems=``high``."""
        if not self._list(f, what, 1, high):
            return None
        out: list[_T] = []
        seen: list[Any] = []  # items may be unhashable (a mapping where a string belongs)
        ok = True
        for item in f.items():
            if item.value in seen:
                item.error(f"duplicate value {item.value!r} ({what} is a set)")
                ok = False
                continue
            seen.append(item.value)
            value = parse(item)
            if value is None:
                ok = False
            else:
                out.append(value)
        return out if ok else None

    def _ports(self, f: Field) -> tuple[AdminPort, ...] | None:
        """v1alpha1 ``ports``: each item exactly one of portNumber, namedPort, portRange."""
        if not self._list(f, "ports", 1, _MAX_PORTS[self.kind]):
            return None
        out: list[AdminPort] = []
        ok = True
        for item in f.items():
            port = self._v1alpha1_port(item)
            if port is None:
                ok = False
            else:
                out.append(port)
        return tuple(out) if ok else None

    def _v1alpha1_port(self, f: Field) -> AdminPort | None:
        if not f.expect_mapping(_V1ALPHA1_PORT) or not self._exactly_one(f, _V1ALPHA1_PORT):
            return None
        if (nf := f.get("namedPort")) is not None:
            return AdminPort(protocol=None, named_port=nf.value) if nf.expect_str() else None
        if (pn := f.get("portNumber")) is not None:
            # Port: protocol defaults to TCP; port is required, 1-65535.
            if not pn.expect_mapping(frozenset({"protocol", "port"})):
                return None
            protocol = _protocol(pn)
            number = _port_number(pn, "port")
            if protocol is None or number is None:
                return None
            return AdminPort(protocol, number)
        pr = f.get("portRange")
        assert pr is not None
        if not pr.expect_mapping(frozenset({"protocol", "start", "end"})):
            return None
        protocol = _protocol(pr)
        bounds = _range(pr, ordered=False)
        if protocol is None or bounds is None:
            return None
        return AdminPort(protocol, bounds[0], bounds[1])

    def _protocols(self, f: Field) -> tuple[AdminPort, ...] | None:
        """v1alpha2 ``protocols``: each item exactly one of tcp, udp, sctp, destinationNamedPort."""
        if not self._list(f, "protocols", 1, _MAX_PORTS[self.kind]):
            return None
        out: list[AdminPort] = []
        ok = True
        for item in f.items():
            port = self._v1alpha2_protocol(item)
            if port is None:
                ok = False
            else:
                out.append(port)
        return tuple(out) if ok else None

    def _v1alpha2_protocol(self, f: Field) -> AdminPort | None:
        if not f.expect_mapping(_V1ALPHA2_PROTOCOL) or not self._exactly_one(f, _V1ALPHA2_PROTOCOL):
            return None
        if (nf := f.get("destinationNamedPort")) is not None:
            if not nf.expect_str():
                return None
            return AdminPort(protocol=None, named_port=nf.value)
        key = next(k for k in ("tcp", "udp", "sctp") if f.value.get(k) is not None)
        pf = f.get(key)
        assert pf is not None
        protocol = L4Protocol(key.upper())
        # ClusterNetworkPolicyProtocolTCP/UDP/SCTP: MinProperties=1, so destinationPort is needed.
        if not pf.expect_mapping(frozenset({"destinationPort"})):
            return None
        dp = pf.get("destinationPort")
        if dp is None:
            pf.error(f"{key} needs a destinationPort (number or range)")
            return None
        # Port: exactly one of number, range.
        if not dp.expect_mapping(frozenset({"number", "range"})) or not self._exactly_one(
            dp, ("number", "range")
        ):
            return None
        if "number" in dp.value:
            number = _port_number(dp, "number")
            return AdminPort(protocol, number) if number is not None else None
        rf = dp.get("range")
        assert rf is not None
        if not rf.expect_mapping(frozenset({"start", "end"})):
            return None
        bounds = _range(rf)
        return AdminPort(protocol, bounds[0], bounds[1]) if bounds is not None else None


def _protocol(f: Field) -> L4Protocol | None:
    # Port.protocol / PortRange.protocol: "If not specified, this field defaults to TCP."
    pf = f.get("protocol")
    if pf is None:
        return L4Protocol.TCP
    try:
        return L4Protocol(pf.value)
    except ValueError:
        pf.error(f"{pf.value!r} is not a protocol; accepted: TCP, UDP, SCTP")
        return None


def _port_number(f: Field, key: str) -> int | None:
    nf = f.get(key)
    if nf is None:
        f.error(f"{key} is required (1-65535)")
        return None
    if not nf.expect_int():
        return None
    if not 1 <= nf.value <= 65535:
        nf.error(f"port {nf.value} must be between 1 and 65535")
        return None
    return int(nf.value)


def _range(f: Field, *, ordered: bool = True) -> tuple[int, int] | None:
    """Start and end of a port range; ``ordered`` enforces the v1alpha2 CEL rule start < end.

    The v1alpha1 PortRange only documents "the Start value must be less than End": its CRD has no
    rule for it, so the API server stores such a range and ``AdminPort.undefined_range`` marks it.
    """
    start, end = _port_number(f, "start"), _port_number(f, "end")
    if start is None or end is None:
        return None
    if ordered and start >= end:
        # v1alpha2 PortRange CEL: self.start < self.end ("Start port must be less than End port").
        f.error(f"start port {start} must be less than end port {end}")
        return None
    return start, end


def _cidr(f: Field) -> IPNetwork | None:
    # CIDR: MaxLength=43; an IPv4 or IPv6 prefix (CEL isCIDR / net.ParseCIDR). ParseCIDR accepts
    # host bits set and means the masked network.
    if isinstance(f.value, str) and len(f.value) > _MAX_CIDR_LENGTH:
        f.error(f"a CIDR may have at most {_MAX_CIDR_LENGTH} characters")
        return None
    return parse_cidr(f)


def _domain_name(f: Field) -> str | None:
    if not f.expect_str():
        return None
    if not _DOMAIN_NAME.match(f.value):
        f.error(
            f"{f.value!r} is not a domain name: DNS labels separated by '.', optionally "
            "prefixed by '*.' (e.g. example.com or *.example.com)"
        )
        return None
    return str(f.value)


__all__ = [
    "AdminPeer",
    "AdminPolicy",
    "AdminPort",
    "AdminRule",
    "NamespacedPod",
    "RuleAction",
    "Subject",
    "Tier",
    "parse_admin_policy",
]
