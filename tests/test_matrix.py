"""The fast matrix gives exactly the reference evaluator's verdicts (property tests), and its API."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.api.adminpol import AdminPolicy
from conformance.api.model import ClusterState, ContainerPort, ExternalHost, Namespace, Node, Pod
from conformance.api.model import frozen_labels as fl
from conformance.api.netpol import NetworkPolicy
from conformance.api.types import AddressFamily, L4Protocol
from conformance.reference.evaluator import AnyPolicy, Evaluator, Verdict
from conformance.reference.matrix import PortProto, bit_indices, compute_matrix
from tests.helpers import netpol, upstream_state
from tests.strategies import (
    NAMESPACES,
    PODS,
    admin_peers,
    admin_policies,
    admin_subjects,
    anp,
    anp_ports,
    anp_rules,
    banp,
    cluster_policies,
    policies,
)

PORT_CHOICES = (
    ContainerPort(80, L4Protocol.TCP, "serve-80-tcp"),
    ContainerPort(81, L4Protocol.TCP, "serve-81-tcp"),
    ContainerPort(80, L4Protocol.UDP, "serve-80-udp"),
    ContainerPort(81, L4Protocol.UDP, "serve-81-udp"),
    ContainerPort(82, L4Protocol.TCP, "serve-80-tcp"),  # same name, other number: per-pod lookup
    ContainerPort(81, L4Protocol.SCTP, None),
)


@st.composite
def pods_(draw: st.DrawFn) -> Pod:
    ns = draw(st.sampled_from(NAMESPACES))
    labels = draw(st.dictionaries(st.just("pod"), st.sampled_from(PODS), max_size=1))
    ports = tuple(draw(st.lists(st.sampled_from(PORT_CHOICES), max_size=3, unique=True)))
    ip = draw(
        st.one_of(
            st.none(),
            st.integers(8, 20).map(lambda i: f"10.244.0.{i}"),
            st.integers(8, 20).map(lambda i: f"fd00::{i:x}"),  # IPv6 pods never match v4 CIDRs
        )
    )
    host = ip is not None and draw(st.integers(0, 2)) == 0
    # Nodes n1, n2, n3 (n3 not in the state: an unknown node) or no placement at all.
    node = draw(st.sampled_from([None, "n1", "n2", "n2", "n3"]))
    if host and node in NODE_IPS:
        ip = NODE_IPS[node]  # a host-network pod has its node's address
    extra: tuple[Any, ...] = ()
    if ip is not None and not host and draw(st.booleans()):
        # Dual-stack: the address of the other family (fd00::x for 10.244.0.x and back).
        last = int(ip.rsplit(".", 1)[-1]) if "." in ip else int(ip.rsplit(":", 1)[-1], 16)
        extra = (ipaddress.ip_address(f"fd00::{last:x}" if "." in ip else f"10.244.0.{last}"),)
    addr = ipaddress.ip_address(ip) if ip else None
    return Pod(ns, "", fl(labels), ports, addr, host, node, extra)


NODE_IPS = {"n1": "10.244.0.1", "n2": "172.18.0.3"}


@st.composite
def states(draw: st.DrawFn) -> ClusterState:
    """Small states: 0-7 pods over x, y, z, random labels, ports, IPs (or none), host network,
    placed on two labelled nodes (or on an unknown one, or nowhere)."""
    drawn = draw(st.lists(pods_(), max_size=7))
    pods = tuple(
        Pod(p.namespace, f"p{i}", p.labels, p.ports, p.ip, p.host_network, p.node, p.extra_ips)
        for i, p in enumerate(drawn)
    )
    nodes = tuple(
        Node(name, fl(draw(st.dictionaries(st.just("zone"), st.sampled_from(["a", "b"])))), ip)
        for name, ip in ((n, ipaddress.ip_address(a)) for n, a in NODE_IPS.items())
    )
    ns_labels = draw(
        st.lists(st.dictionaries(st.just("team"), st.sampled_from(["a", "b", ""])), min_size=3)
    )
    namespaces = tuple(Namespace(n, fl(lab)) for n, lab in zip(NAMESPACES, ns_labels, strict=False))
    externals: tuple[ExternalHost, ...] = ()
    if draw(st.booleans()):
        externals = (
            ExternalHost("web", ipaddress.ip_address("203.0.113.5")),
            ExternalHost("inside", ipaddress.ip_address("10.244.0.13"), PORT_CHOICES[:3]),
        )
    return ClusterState(namespaces, pods, externals, nodes)


def _assert_same(
    state: ClusterState,
    pols: list[AnyPolicy],
    *,
    include_self: bool = False,
    port_protocols: list[PortProto] | None = None,
    family: AddressFamily | None = None,
) -> None:
    matrix = compute_matrix(
        state, pols, include_self=include_self, port_protocols=port_protocols, family=family
    )
    ev = Evaluator(state, pols, include_self=include_self)
    cells = 0
    for s, t, port, proto, verdict in matrix.cells():
        expected = ev.decide(s, t, port, proto, family).verdict
        assert verdict == expected, (s, t, port, proto, ev.decide(s, t, port, proto, family).reason)
        assert matrix.verdict(s, t, port, proto) == expected
        cells += 1
    assert cells == matrix.cell_count
    assert sum(matrix.counts().values()) == cells


@settings(max_examples=200, deadline=None)
@given(states(), policies(max_size=5), st.booleans())
def test_fast_matrix_equals_reference_for_network_policies(
    state: ClusterState, pols: list[NetworkPolicy], include_self: bool
) -> None:
    _assert_same(state, list(pols), include_self=include_self)


@settings(max_examples=100, deadline=None)
@given(
    states(),
    policies(max_size=4),
    cluster_policies(max_size=2),
    st.sampled_from([AddressFamily.IPV4, AddressFamily.IPV6]),
)
def test_fast_matrix_equals_reference_per_address_family(
    state: ClusterState,
    pols: list[NetworkPolicy],
    admin: list[AdminPolicy],
    family: AddressFamily,
) -> None:
    """Dual-stack pods: CIDRs match each end's address of the cell's family."""
    _assert_same(state, [*pols, *admin], family=family)


@settings(max_examples=100, deadline=None)
@given(states(), policies(max_size=4))
def test_fast_matrix_equals_reference_at_given_ports(
    state: ClusterState, pols: list[NetworkPolicy]
) -> None:
    ports = [(p, proto) for p in (80, 81, 82) for proto in L4Protocol]
    _assert_same(state, list(pols), port_protocols=ports)


@settings(max_examples=100, deadline=None)
@given(states(), policies(max_size=3), admin_policies(max_size=2))
def test_fast_matrix_equals_reference_with_anp_and_banp(
    state: ClusterState, pols: list[NetworkPolicy], admin: list[AdminPolicy]
) -> None:
    _assert_same(state, [*pols, *admin])


@settings(max_examples=100, deadline=None)
@given(states(), policies(max_size=3), cluster_policies(max_size=3))
def test_fast_matrix_equals_reference_with_cluster_network_policies(
    state: ClusterState, pols: list[NetworkPolicy], admin: list[AdminPolicy]
) -> None:
    _assert_same(state, [*pols, *admin])


def test_bit_indices() -> None:
    assert list(bit_indices(0)) == []
    assert list(bit_indices(0b1011)) == [0, 1, 3]
    assert list(bit_indices(1 << 4000)) == [4000]


def test_matrix_api_on_upstream_model() -> None:
    state = upstream_state()
    deny_x: dict[str, Any] = {"podSelector": {}, "policyTypes": ["Ingress"]}
    matrix = compute_matrix(state, [netpol("x", "deny", deny_x)])
    assert matrix.sources == tuple(p.key for p in state.pods)
    assert matrix.verdict("y/a", "x/a", 80, L4Protocol.TCP) is Verdict.DENY
    assert matrix.verdict("x/a", "y/a", 80, L4Protocol.TCP) is Verdict.ALLOW
    assert matrix.verdict("x/a", "x/a", 80, L4Protocol.TCP) is Verdict.IMPLEMENTATION_DEFINED
    assert matrix.allowed_sources("x/a", 80, L4Protocol.TCP) == []
    assert "isolated by x/deny" in matrix.reason("y/a", "x/a", 80, L4Protocol.TCP)
    counts = matrix.counts()
    assert counts[Verdict.IMPLEMENTATION_DEFINED] == 9 * 6  # self cells, 6 ports each
    with pytest.raises(KeyError):
        matrix.verdict("y/a", "x/a", 9999, L4Protocol.TCP)


def test_progress_reports_every_target() -> None:
    seen: list[tuple[int, int]] = []
    compute_matrix(upstream_state(), [], progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (9, 9)


# Egress peers the API leaves undecidable offline (nodes, domainNames) and v1alpha1 ranges with
# start >= end, on top of the shared strategies: the fast path must reproduce "?" exactly.
undecidable_peers: st.SearchStrategy[dict[str, Any]] = st.one_of(
    admin_peers,
    st.just({"nodes": {}}),
    st.just({"nodes": {"matchLabels": {"zone": "a"}}}),
    st.just(
        {
            "nodes": {
                "matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n2"]}
                ]
            }
        }
    ),
    st.just({"domainNames": ["db.example.com"]}),
    st.sampled_from(
        [
            {"networks": ["203.0.113.0/24"]},
            {"networks": ["10.244.0.8/29"]},
            {"networks": ["fd00::8/125", "10.244.0.16/30"]},
        ]
    ),
)
odd_ports = st.one_of(
    st.just({"portRange": {"start": 81, "end": 80, "protocol": "TCP"}}),
    st.just({"portNumber": {"port": 80, "protocol": "TCP"}}),
    st.just({"portRange": {"start": 79, "end": 82, "protocol": "UDP"}}),
)
odd_specs = st.builds(
    lambda subj, ing, eg: {"subject": subj, "ingress": ing, "egress": eg},
    admin_subjects,
    st.lists(anp_rules("from", admin_peers, ["Allow", "Deny", "Pass"], anp_ports), max_size=2),
    st.lists(anp_rules("to", undecidable_peers, ["Allow", "Deny", "Pass"], odd_ports), max_size=3),
)


@st.composite
def odd_admin_policies(draw: st.DrawFn) -> list[AdminPolicy]:
    specs_ = draw(st.lists(odd_specs, max_size=3))
    prios = draw(st.lists(st.integers(0, 2), min_size=len(specs_), max_size=len(specs_)))
    out = [anp(f"anp{i}", p, spec) for i, (p, spec) in enumerate(zip(prios, specs_, strict=True))]
    if draw(st.booleans()):  # a BANP (Allow/Deny only) with undecidable egress peers
        egress = [
            {"action": "Deny", "to": [{"domainNames": ["db.example.com"]}]},
            {"action": "Allow", "to": [{"nodes": {"matchLabels": {"zone": "b"}}}]},
        ]
        out.append(banp({"subject": {"namespaces": {}}, "egress": egress}))
    return out


@settings(max_examples=150, deadline=None)
@given(states(), policies(max_size=3), odd_admin_policies())
def test_fast_matrix_equals_reference_with_undecidable_admin_rules(
    state: ClusterState, pols: list[NetworkPolicy], admin: list[AdminPolicy]
) -> None:
    _assert_same(state, [*pols, *admin])


def test_ip_blocks_over_mixed_ipv4_and_ipv6_pods() -> None:
    pods = tuple(
        Pod("x", f"p{i}", fl({"pod": "a"}), PORT_CHOICES[:1], ipaddress.ip_address(ip))
        for i, ip in enumerate(["10.244.0.9", "fd00::9", "fd00::11", "10.244.0.17", "fd00::1:0"])
    )
    state = ClusterState((Namespace("x"),), pods)
    v6: dict[str, Any] = {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"ipBlock": {"cidr": "fd00::/120", "except": ["fd00::10/124"]}}]}],
        "egress": [
            {"to": [{"ipBlock": {"cidr": "10.244.0.0/28"}}, {"ipBlock": {"cidr": "fd00::/112"}}]}
        ],
    }
    _assert_same(state, [netpol("x", "v6", v6)])
    matrix = compute_matrix(state, [netpol("x", "v6", v6)])
    assert matrix.allowed_sources("x/p0", 80, L4Protocol.TCP) == ["x/p1"]
