"""Nodes, host-network pods and outside clients in the reference evaluator (rules N1-N4) and the
fast matrix, on a hand-made two-node cluster where every case is spelled out."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from conformance.api.model import (
    ClusterState,
    ContainerPort,
    ExternalHost,
    Namespace,
    Node,
    Pod,
    traffic_path,
)
from conformance.api.model import frozen_labels as fl
from conformance.api.types import L4Protocol, TrafficPath
from conformance.reference.evaluator import AnyPolicy, Evaluator, Verdict
from conformance.reference.matrix import compute_matrix
from tests.helpers import netpol
from tests.strategies import anp

TCP = L4Protocol.TCP
ALLOW, DENY, UNDEF = Verdict.ALLOW, Verdict.DENY, Verdict.IMPLEMENTATION_DEFINED
PORTS = (ContainerPort(80, TCP, "http"),)


def _ip(text: str) -> Any:
    return ipaddress.ip_address(text)


def _state() -> ClusterState:
    """x/a, x/b on node-1; y/a on node-2; host-network x/h1 on node-1, x/h2 on node-2;
    an outside client @client at 203.0.113.7."""
    nodes = (
        Node("node-1", fl({"zone": "a"}), _ip("172.18.0.2")),
        Node("node-2", fl({"zone": "b"}), _ip("172.18.0.3")),
    )
    pods = (
        Pod("x", "a", fl({"pod": "a"}), PORTS, _ip("10.244.0.10"), False, "node-1"),
        Pod("x", "b", fl({"pod": "b"}), PORTS, _ip("10.244.0.11"), False, "node-1"),
        Pod("y", "a", fl({"pod": "a"}), PORTS, _ip("10.244.0.12"), False, "node-2"),
        Pod("x", "h1", fl({"pod": "h"}), PORTS, _ip("172.18.0.2"), True, "node-1"),
        Pod("x", "h2", fl({"pod": "h"}), PORTS, _ip("172.18.0.3"), True, "node-2"),
    )
    client = ExternalHost("client", _ip("203.0.113.7"), PORTS)
    return ClusterState((Namespace("x"), Namespace("y")), pods, (client,), nodes)


DENY_INGRESS_A = netpol(
    "x", "deny-a", {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Ingress"]}
)
DENY_EGRESS_A = netpol(
    "x", "deny-a", {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"]}
)


def _ingress_a(peers: list[dict[str, Any]]) -> AnyPolicy:
    return netpol(
        "x", "in-a", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": peers}]}
    )


def _egress_a(peers: list[dict[str, Any]]) -> AnyPolicy:
    return netpol(
        "x",
        "out-a",
        {
            "podSelector": {"matchLabels": {"pod": "a"}},
            "policyTypes": ["Egress"],
            "egress": [{"to": peers}],
        },
    )


def _deny_nodes(selector: dict[str, Any]) -> AnyPolicy:
    """An AdminNetworkPolicy denying egress from every pod to the nodes ``selector`` picks."""
    egress = [{"action": "Deny", "to": [{"nodes": selector}]}]
    return anp("n", 1, {"subject": {"namespaces": {}}, "egress": egress})


CASES: list[tuple[str, list[AnyPolicy], str, str, Verdict]] = [
    # N2: a pod's own node is never blocked by NetworkPolicy isolation, both ways.
    ("own node in", [DENY_INGRESS_A], "x/h1", "x/a", ALLOW),
    ("own node out", [DENY_EGRESS_A], "x/a", "x/h1", ALLOW),
    # ... but another node is: default deny denies it.
    ("other node in", [DENY_INGRESS_A], "x/h2", "x/a", DENY),
    ("other node out", [DENY_EGRESS_A], "x/a", "x/h2", DENY),
    # N1: host-network pods are never selected (x/h1 carries no pod=a, but deny-all would select).
    (
        "host pod not isolated",
        [netpol("x", "all", {"podSelector": {}, "policyTypes": ["Ingress"]})],
        "x/a",
        "x/h2",
        ALLOW,
    ),
    # N3: a selector that would select the node's host-network pod is the plugin's choice ...
    (
        "selector may match node",
        [_ingress_a([{"podSelector": {"matchLabels": {"pod": "h"}}}])],
        "x/h2",
        "x/a",
        UNDEF,
    ),
    # ... one that would not is a certain non-match.
    (
        "selector cannot match",
        [_ingress_a([{"podSelector": {"matchLabels": {"pod": "b"}}}])],
        "x/h2",
        "x/a",
        DENY,
    ),
    # ... an ingress ipBlock is undecidable for node traffic (tunnel or SNAT source), even outside it.
    (
        "ingress ipBlock",
        [_ingress_a([{"ipBlock": {"cidr": "192.0.2.0/24"}}])],
        "x/h2",
        "x/a",
        UNDEF,
    ),
    # ... an egress ipBlock matches the node's address.
    (
        "egress ipBlock hit",
        [_egress_a([{"ipBlock": {"cidr": "172.18.0.0/24"}}])],
        "x/a",
        "x/h2",
        ALLOW,
    ),
    (
        "egress ipBlock miss",
        [_egress_a([{"ipBlock": {"cidr": "192.0.2.0/24"}}])],
        "x/a",
        "x/h2",
        DENY,
    ),
    # ... and a rule without peers matches everything.
    ("no peers", [_ingress_a([])], "x/h2", "x/a", ALLOW),
    # Admin tiers come first: egress Deny to nodes applies to the pod's own node too.
    ("nodes deny own node", [_deny_nodes({})], "x/a", "x/h1", DENY),
    # `nodes` peers select by node labels: zone=b is node-2 only.
    ("nodes by label", [_deny_nodes({"matchLabels": {"zone": "b"}})], "x/a", "x/h1", ALLOW),
    ("nodes by label hit", [_deny_nodes({"matchLabels": {"zone": "b"}})], "x/a", "x/h2", DENY),
    (
        "nodes by hostname",
        [_deny_nodes({"matchLabels": {"kubernetes.io/hostname": "node-1"}})],
        "x/a",
        "x/h1",
        DENY,
    ),
    # N4: an outside client is matched by ingress ipBlock only.
    (
        "client by ipBlock",
        [_ingress_a([{"ipBlock": {"cidr": "203.0.113.0/24"}}])],
        "@client",
        "x/a",
        ALLOW,
    ),
    (
        "client not by except",
        [_ingress_a([{"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.0/29"]}}])],
        "@client",
        "x/a",
        DENY,
    ),
    ("client not by selector", [_ingress_a([{"namespaceSelector": {}}])], "@client", "x/a", DENY),
    ("client unisolated", [], "@client", "x/a", ALLOW),
]


@pytest.mark.parametrize(
    ("policies", "source", "target", "verdict"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_node_rules(policies: list[AnyPolicy], source: str, target: str, verdict: Verdict) -> None:
    state = _state()
    decision = Evaluator(state, policies).decide(source, target, 80, TCP)
    assert decision.verdict is verdict, decision.reason
    if not source.startswith("@"):
        # The fast path agrees on every cell of the same state (its sources are the pods).
        matrix = compute_matrix(state, policies)
        ev = Evaluator(state, policies)
        for s, t, port, proto, v in matrix.cells():
            assert v == ev.decide(s, t, port, proto).verdict, (s, t)


def test_reasons_cite_the_node_rules() -> None:
    state = _state()
    own = Evaluator(state, [DENY_INGRESS_A]).decide("x/h1", "x/a", 80, TCP)
    assert "own node" in own.reason and "always allowed" in own.reason
    undef = Evaluator(state, [_ingress_a([{"ipBlock": {"cidr": "192.0.2.0/24"}}])]).decide(
        "x/h2", "x/a", 80, TCP
    )
    assert "host-network pod on another node" in undef.reason
    assert "host-network pod" in Evaluator(state, []).decide("x/h1", "x/a", 80, TCP).reason


@pytest.mark.parametrize(
    ("source", "target", "path"),
    [
        ("x/a", "x/b", TrafficPath.SAME_NODE),
        ("x/a", "y/a", TrafficPath.CROSS_NODE),
        ("x/h1", "x/a", TrafficPath.FROM_NODE),
        ("x/a", "x/h2", TrafficPath.TO_NODE),
        ("@client", "x/a", TrafficPath.FROM_EXTERNAL),
        ("x/a", "@client", TrafficPath.TO_EXTERNAL),
    ],
)
def test_traffic_paths(source: str, target: str, path: TrafficPath) -> None:
    state = _state()
    assert traffic_path(state.endpoint(source), state.endpoint(target)) is path


def test_unknown_placement_has_no_path() -> None:
    a = Pod("x", "a", ip=_ip("10.0.0.1"))
    b = Pod("x", "b", ip=_ip("10.0.0.2"), node="n1")
    assert traffic_path(a, b) is None


BAD_SCENARIOS = [
    (
        "topology: {pods: [{name: x/a, node: node-9}]}\nsteps: [{name: s}]\n",
        "unknown node 'node-9'; nodes: node-1, node-2",
        "topology.pods[0].node",
    ),
    (
        "external: [{name: db, ip: 203.0.113.9}]\nsteps: [{name: s, probe: {from: ['@dbb']}}]\n",
        "no external endpoint 'dbb'; external endpoints: @db",
        "steps[0].probe",
    ),
    (
        "topology: {ip_families: [IPv4, IPv6]}\nexternal: [{name: v6, ip: '2001:db8::1'}]\n"
        "steps: [{name: s}]\n",
        "external endpoint 'v6' has no IPv4 address",
        "external[0].ip",
    ),
    (
        "topology: {node_cidr: 172.18.0.0/31}\nsteps: [{name: s}]\n",
        "too small for 2 nodes",
        "topology",
    ),
    (
        "topology: {nodes: {Bad_Node: {}}}\nsteps: [{name: s}]\n",
        "node name 'Bad_Node'",
        "topology.nodes.Bad_Node",
    ),
]


@pytest.mark.parametrize(("text", "message", "where"), BAD_SCENARIOS)
def test_bad_node_and_client_input_is_one_clear_error(
    tmp_path: Any, text: str, message: str, where: str
) -> None:
    from conformance.errors import ScenarioError
    from conformance.scenario.load import load_scenario

    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert message in str(info.value)
    assert where in str(info.value)
    assert str(path) in str(info.value)


def test_default_spread_has_same_and_cross_node_pairs(tmp_path: Any) -> None:
    from conformance.scenario.load import load_scenario

    path = tmp_path / "d.yaml"
    path.write_text("steps: [{name: s}]\n")
    state = load_scenario(path).offline_steps[0].state
    on = {p.key: p.node for p in state.pods}
    assert [k for k, n in on.items() if n == "node-1"] == ["x/a", "x/c", "y/b", "z/a", "z/c"]
    assert {str(n.ip) for n in state.nodes} == {"172.18.0.2", "172.18.0.3"}
    assert state.node("node-1") is not None
    labels = state.node("node-1").effective_labels()  # type: ignore[union-attr]
    assert labels["kubernetes.io/hostname"] == "node-1" and labels["kubernetes.io/os"] == "linux"
