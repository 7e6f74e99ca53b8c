"""NetworkPolicy (networking.k8s.io/v1) as typed values, parsed with the API server's validation.

Field names follow the API (``pod_selector``, ``ip_block``, ``end_port``). Distinctions the API
makes are kept: a rule whose ``from``/``to`` is absent or empty matches every peer, while an
``ingress: []`` list (or none at all) allows nothing; ``ports`` absent or empty matches every port.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from conformance.api.fields import (
    METADATA_FIELDS,
    OBJECT_FIELDS,
    Field,
    Locator,
    dns1123_label_problem,
    dns1123_subdomain_problem,
    no_location,
    port_name_problem,
)
from conformance.api.model import IPAddress
from conformance.api.selectors import LabelSelector, parse_label_selector
from conformance.api.types import Direction, L4Protocol

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

API_VERSION = "networking.k8s.io/v1"
KIND = "NetworkPolicy"


@dataclass(frozen=True)
class IPBlock:
    cidr: IPNetwork
    except_: tuple[IPNetwork, ...] = ()

    def contains(self, ip: IPAddress) -> bool:
        # IPBlock: "except is a list of CIDRs that should not be included within an IPBlock".
        if ip.version != self.cidr.version or ip not in self.cidr:
            return False
        return not any(ip in ex for ex in self.except_ if ex.version == ip.version)

    def __str__(self) -> str:
        ex = f" except {', '.join(map(str, self.except_))}" if self.except_ else ""
        return f"ipBlock {self.cidr}{ex}"


@dataclass(frozen=True)
class NetworkPolicyPeer:
    """One peer; ``pod_selector``/``namespace_selector`` None means the field was absent."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None

    def __str__(self) -> str:
        if self.ip_block is not None:
            return str(self.ip_block)
        parts = []
        if self.namespace_selector is not None:
            parts.append(f"namespaceSelector {self.namespace_selector}")
        if self.pod_selector is not None:
            parts.append(f"podSelector {self.pod_selector}")
        return " and ".join(parts)


@dataclass(frozen=True)
class NetworkPolicyPort:
    """``port`` is None (all ports of the protocol), a number, or a named port (str)."""

    protocol: L4Protocol = L4Protocol.TCP
    port: int | str | None = None
    end_port: int | None = None

    def __str__(self) -> str:
        if self.port is None:
            return f"all {self.protocol} ports"
        if self.end_port is not None:
            return f"{self.port}-{self.end_port}/{self.protocol}"
        return f"{self.port}/{self.protocol}"


@dataclass(frozen=True)
class NetworkPolicyRule:
    """An ingress or egress rule; empty ``peers``/``ports`` mean "all" (absent and [] alike)."""

    peers: tuple[NetworkPolicyPeer, ...] = ()
    ports: tuple[NetworkPolicyPort, ...] = ()


@dataclass(frozen=True)
class NetworkPolicy:
    namespace: str
    name: str
    pod_selector: LabelSelector
    policy_types: frozenset[Direction]
    ingress: tuple[NetworkPolicyRule, ...] = ()
    egress: tuple[NetworkPolicyRule, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def rules(self, direction: Direction) -> tuple[NetworkPolicyRule, ...]:
        return self.ingress if direction is Direction.INGRESS else self.egress


_SPEC_FIELDS = frozenset({"podSelector", "policyTypes", "ingress", "egress"})
_INGRESS_FIELDS = frozenset({"from", "ports"})
_EGRESS_FIELDS = frozenset({"to", "ports"})
_PEER_FIELDS = frozenset({"podSelector", "namespaceSelector", "ipBlock"})
_IPBLOCK_FIELDS = frozenset({"cidr", "except"})
_PORT_FIELDS = frozenset({"protocol", "port", "endPort"})


def parse_network_policy(obj: Any, locate: Locator | None = None) -> NetworkPolicy:
    """Validate ``obj`` like the API server would and return it typed.

    Raises ScenarioError (or ScenarioErrors) naming each invalid field.
    """
    root = Field(obj, (), locate or no_location())
    policy = _parse(root)
    root.raise_errors()
    assert policy is not None
    return policy


def _parse(root: Field) -> NetworkPolicy | None:
    if not root.expect_mapping(OBJECT_FIELDS):
        return None
    api, kind = root.value.get("apiVersion"), root.value.get("kind")
    if api != API_VERSION or kind != KIND:
        root.error(f"expected apiVersion {API_VERSION} and kind {KIND}, got {api} {kind}")
        return None
    meta = root.get("metadata")
    name = namespace = ""
    if meta is None:
        root.error("metadata.name and metadata.namespace are required")
    elif meta.expect_mapping(METADATA_FIELDS):
        name_f, ns_f = meta.get("name"), meta.get("namespace")
        if name_f is None:
            meta.error("metadata.name is required")
        elif name_f.expect_str():
            problem = dns1123_subdomain_problem(name_f.value)
            if problem:
                name_f.error(f"{name_f.value!r} {problem}")
            name = name_f.value
        if ns_f is None:
            meta.error("metadata.namespace is required (name one of the scenario's namespaces)")
        elif ns_f.expect_str():
            problem = dns1123_label_problem(ns_f.value)
            if problem:
                ns_f.error(f"{ns_f.value!r} {problem}")
            namespace = ns_f.value
    spec = root.get("spec")
    if spec is None:
        root.error("spec is required")
        return None
    if not spec.expect_mapping(_SPEC_FIELDS):
        return None
    # NetworkPolicySpec.podSelector: an empty (or omitted) selector selects all pods in the namespace.
    ps = spec.get("podSelector")
    pod_selector = parse_label_selector(ps) if ps is not None else LabelSelector.everything()
    ingress = _parse_rules(spec.get("ingress"), "from", _INGRESS_FIELDS)
    egress = _parse_rules(spec.get("egress"), "to", _EGRESS_FIELDS)
    policy_types = _parse_policy_types(spec, has_egress_rules=bool(egress))
    return NetworkPolicy(namespace, name, pod_selector, policy_types, ingress, egress)


def _parse_policy_types(spec: Field, *, has_egress_rules: bool) -> frozenset[Direction]:
    # NetworkPolicySpec.policyTypes: if unspecified, Ingress is always set, and Egress is set
    # when the policy has any egress rules (the API server's defaulting: len(spec.egress) > 0).
    pt = spec.get("policyTypes")
    if pt is None:
        types = {Direction.INGRESS}
        if has_egress_rules:
            types.add(Direction.EGRESS)
        return frozenset(types)
    if not pt.expect_list():
        return frozenset({Direction.INGRESS})
    # ValidateNetworkPolicySpec: at most two entries, each Ingress or Egress (duplicates pass).
    if len(pt.value) > 2:
        pt.error("may not specify more than two policyTypes")
        return frozenset({Direction.INGRESS})
    out: set[Direction] = set()
    for item in pt.items():
        try:
            out.add(Direction(item.value))
        except ValueError:
            item.error(f"{item.value!r} is not a policy type; accepted: Ingress, Egress")
    # An explicit empty list is also defaulted by the API server (policyTypes is optional).
    if not out and not pt.value:
        out.add(Direction.INGRESS)
        if has_egress_rules:
            out.add(Direction.EGRESS)
    return frozenset(out)


def _parse_rules(
    f: Field | None, peer_key: str, allowed: frozenset[str]
) -> tuple[NetworkPolicyRule, ...]:
    if f is None or not f.expect_list():
        return ()
    rules: list[NetworkPolicyRule] = []
    for item in f.items():
        # A null list entry decodes to an empty rule on the API server.
        if item.value is None:
            rules.append(NetworkPolicyRule())
            continue
        if not item.expect_mapping(allowed):
            continue
        peers: list[NetworkPolicyPeer] = []
        pf = item.get(peer_key)
        if pf is not None and pf.expect_list():
            for peer_f in pf.items():
                peer = _parse_peer(peer_f)
                if peer is not None:
                    peers.append(peer)
        ports: list[NetworkPolicyPort] = []
        portf = item.get("ports")
        if portf is not None and portf.expect_list():
            for port_f in portf.items():
                port = _parse_port(port_f)
                if port is not None:
                    ports.append(port)
        rules.append(NetworkPolicyRule(tuple(peers), tuple(ports)))
    return tuple(rules)


def _parse_peer(f: Field) -> NetworkPolicyPeer | None:
    if not f.expect_mapping(_PEER_FIELDS):
        return None
    ps, ns, ipb = f.get("podSelector"), f.get("namespaceSelector"), f.get("ipBlock")
    # ValidateNetworkPolicyPeer: at least one peer kind; ipBlock excludes the selectors.
    if ps is None and ns is None and ipb is None:
        f.error("a peer must set podSelector, namespaceSelector or ipBlock")
        return None
    if ipb is not None and (ps is not None or ns is not None):
        f.error("a peer may not combine ipBlock with podSelector or namespaceSelector")
        return None
    if ipb is not None:
        block = _parse_ip_block(ipb)
        return NetworkPolicyPeer(ip_block=block) if block else None
    return NetworkPolicyPeer(
        pod_selector=parse_label_selector(ps) if ps is not None else None,
        namespace_selector=parse_label_selector(ns) if ns is not None else None,
    )


def parse_cidr(f: Field) -> IPNetwork | None:
    """A CIDR; host bits are accepted (as the API server does) and mean the masked network.

    A bare address is not a CIDR: the API server's ParseCIDR needs the prefix length.
    """
    if not f.expect_str():
        return None
    if "/" not in f.value:
        f.error(f"{f.value!r} is not a CIDR: write a prefix length (e.g. {f.value}/32)")
        return None
    if "%" in f.value:
        # net.ParseCIDR has no IPv6 zones (Python's ipaddress would accept and drop one).
        f.error(f"{f.value!r} is not a valid CIDR: a CIDR has no IPv6 zone (%...)")
        return None
    try:
        return ipaddress.ip_network(f.value, strict=False)
    except ValueError:
        f.error(f"{f.value!r} is not a valid CIDR (e.g. 10.0.0.0/16 or fd00::/64)")
        return None


def _parse_ip_block(f: Field) -> IPBlock | None:
    if not f.expect_mapping(_IPBLOCK_FIELDS):
        return None
    cf = f.get("cidr")
    if cf is None:
        f.error("ipBlock.cidr is required")
        return None
    cidr = parse_cidr(cf)
    if cidr is None:
        return None
    excepts: list[IPNetwork] = []
    ef = f.get("except")
    if ef is not None and ef.expect_list():
        for item in ef.items():
            ex = parse_cidr(item)
            if ex is None:
                continue
            # ValidateIPBlock: each except must be a strict subset of cidr.
            if not _strict_subnet(ex, cidr):
                item.error(f"except {item.value!r} must be a strict subset of cidr {cidr}")
                continue
            excepts.append(ex)
    return IPBlock(cidr, tuple(excepts))


def _strict_subnet(inner: IPNetwork, outer: IPNetwork) -> bool:
    if isinstance(inner, ipaddress.IPv4Network) and isinstance(outer, ipaddress.IPv4Network):
        return inner.subnet_of(outer) and inner.prefixlen > outer.prefixlen
    if isinstance(inner, ipaddress.IPv6Network) and isinstance(outer, ipaddress.IPv6Network):
        return inner.subnet_of(outer) and inner.prefixlen > outer.prefixlen
    return False


def _parse_port(f: Field) -> NetworkPolicyPort | None:
    if not f.expect_mapping(_PORT_FIELDS):
        return None
    protocol = L4Protocol.TCP  # NetworkPolicyPort.protocol defaults to TCP.
    pf = f.get("protocol")
    if pf is not None:
        try:
            protocol = L4Protocol(pf.value)
        except ValueError:
            pf.error(f"{pf.value!r} is not a protocol; accepted: TCP, UDP, SCTP")
            return None
    port: int | str | None = None
    portf = f.get("port")
    if portf is not None:
        if isinstance(portf.value, str):
            problem = port_name_problem(portf.value)
            if problem:
                portf.error(problem)
                return None
            port = portf.value
        elif portf.expect_int():
            if not 1 <= portf.value <= 65535:
                portf.error(f"port {portf.value} must be between 1 and 65535")
                return None
            port = portf.value
        else:
            return None
    end_port: int | None = None
    ef = f.get("endPort")
    if ef is not None:
        # NetworkPolicyPort.endPort: needs a numeric port, endPort >= port, within 1-65535.
        if not ef.expect_int():
            return None
        if port is None:
            ef.error("endPort needs a numeric port")
            return None
        if isinstance(port, str):
            ef.error("endPort cannot be used with a named port")
            return None
        if not 1 <= ef.value <= 65535:
            ef.error(f"endPort {ef.value} must be between 1 and 65535")
            return None
        if ef.value < port:
            ef.error(f"endPort {ef.value} must be greater than or equal to port {port}")
            return None
        end_port = ef.value
    return NetworkPolicyPort(protocol, port, end_port)
