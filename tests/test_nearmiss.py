"""Reasons that explain near misses: a denied cell names the closest rule and the construct that
kept it from matching; an allowed cell names the peer and port that matched."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from conformance.api.model import ClusterState, ContainerPort, ExternalHost, Namespace, Pod
from conformance.api.model import frozen_labels as fl
from conformance.api.types import L4Protocol
from conformance.reference.evaluator import Evaluator, Verdict
from tests.helpers import netpol

TCP, UDP = L4Protocol.TCP, L4Protocol.UDP


def _state() -> ClusterState:
    def pod(ns: str, name: str, ip: str, labels: dict[str, str], http: int) -> Pod:
        ports = (ContainerPort(http, TCP, "http"), ContainerPort(80, UDP))
        return Pod(ns, name, fl(labels), ports, ipaddress.ip_address(ip))

    return ClusterState(
        (Namespace("x", fl({"team": "a"})), Namespace("y", fl({"team": "b"}))),
        (
            pod("x", "a", "10.0.0.10", {"role": "api"}, 8080),
            pod("x", "b", "10.0.0.11", {"role": "web"}, 9090),
            pod("y", "c", "10.0.1.12", {"role": "web"}, 8080),
        ),
        (ExternalHost("out", ipaddress.ip_address("203.0.113.9")),),
    )


def _ingress_b(rule: dict[str, Any]) -> Any:
    return netpol("x", "in-b", {"podSelector": {"matchLabels": {"role": "web"}}, "ingress": [rule]})


CASES = [
    (
        "except",
        _ingress_b({"from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.0.8/29"]}}]}),
        ("x/a", "x/b", 9090, TCP),
        "x/a's address 10.0.0.10 is inside except 10.0.0.8/29",
    ),
    (
        "outside cidr",
        _ingress_b({"from": [{"ipBlock": {"cidr": "10.0.1.0/24"}}]}),
        ("x/a", "x/b", 9090, TCP),
        "x/a's address 10.0.0.10 is outside 10.0.1.0/24",
    ),
    (
        "end port",
        _ingress_b({"ports": [{"port": 80, "endPort": 90}]}),
        ("x/a", "x/b", 9090, TCP),
        "port 9090 is outside 80-90",
    ),
    (
        "named port",
        _ingress_b({"ports": [{"port": "http"}]}),
        ("x/a", "x/b", 8080, TCP),
        "named port http is 9090/TCP on x/b, not 8080",
    ),
    (
        "protocol",
        _ingress_b({"ports": [{"port": 80, "protocol": "TCP"}]}),
        ("x/a", "x/b", 80, UDP),
        "80/TCP is TCP, the connection UDP",
    ),
    (
        "label expression",
        _ingress_b(
            {
                "from": [
                    {
                        "podSelector": {
                            "matchExpressions": [
                                {"key": "role", "operator": "In", "values": ["db"]}
                            ]
                        }
                    }
                ]
            }
        ),
        ("x/a", "x/b", 9090, TCP),
        "pod x/a has role=api fails role In (db)",
    ),
    (
        "namespace selector",
        _ingress_b({"from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}}]}),
        ("y/c", "x/b", 9090, TCP),
        "the namespace of y/c has team=b, not team=a",
    ),
    (
        "pod selector alone",
        _ingress_b({"from": [{"podSelector": {}}]}),
        ("y/c", "x/b", 9090, TCP),
        "y/c is in another namespace than x/in-b",
    ),
    (
        "outside client",
        netpol(
            "x",
            "out-a",
            {
                "podSelector": {"matchLabels": {"role": "api"}},
                "policyTypes": ["Egress"],
                "egress": [{"to": [{"namespaceSelector": {}}]}],
            },
        ),
        ("x/a", "@out", 80, TCP),
        "@out is outside the cluster: only ipBlock peers match it",
    ),
]


@pytest.mark.parametrize(
    ("policy", "cell", "why"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_denied_cell_names_the_construct_that_missed(
    policy: Any, cell: tuple[str, str, int, L4Protocol], why: str
) -> None:
    decision = Evaluator(_state(), [policy]).decide(*cell)
    assert decision.verdict is Verdict.DENY, decision.reason
    assert f"(closest: NetworkPolicy {policy.key}" in decision.reason
    assert why in decision.reason, decision.reason


def test_the_closest_rule_is_the_one_that_matched_on_one_side() -> None:
    policy = _ingress_b(
        {"from": [{"podSelector": {"matchLabels": {"role": "db"}}}], "ports": [{"port": 1}]}
    )
    both = policy.ingress[0]
    near = {"from": [{"podSelector": {"matchLabels": {"role": "api"}}}], "ports": [{"port": 1}]}
    two = netpol(
        "x",
        "in-b",
        {
            "podSelector": {"matchLabels": {"role": "web"}},
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": {"role": "db"}}}],
                    "ports": [{"port": 1}],
                },
                near,
            ],
        },
    )
    assert two.ingress[0] == both
    reason = Evaluator(_state(), [two]).decide("x/a", "x/b", 9090, TCP).reason
    assert "closest: NetworkPolicy x/in-b ingress rule 1: port 9090 is not 1" in reason


def test_an_allowed_cell_names_the_peer_and_port_that_matched() -> None:
    policy = _ingress_b(
        {"from": [{"podSelector": {"matchLabels": {"role": "api"}}}], "ports": [{"port": "http"}]}
    )
    reason = Evaluator(_state(), [policy]).decide("x/a", "x/b", 9090, TCP).reason
    assert "[from podSelector {role=api}, named port http (9090/TCP on x/b)]" in reason


def test_renamed_reasons_rename_the_keys_in_the_explanations() -> None:
    policy = _ingress_b({"from": [{"ipBlock": {"cidr": "10.0.1.0/24"}}]})
    decision = Evaluator(_state(), [policy]).decide("x/a", "x/b", 9090, TCP)
    renamed = decision.renamed(lambda key: key.replace("x/", "scen-x/"))
    assert "scen-x/a's address" in renamed.reason and " x/a's" not in renamed.reason


def test_renaming_reaches_namespace_names_inside_selector_text() -> None:
    """Live runs select namespaces by kubernetes.io/metadata.name with the real names; the
    reason must speak of the scenario's namespaces, as its cells do."""
    policy = _ingress_b(
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "x"}}}]}
    )
    decision = Evaluator(_state(), [policy]).decide("y/c", "x/b", 9090, TCP)
    assert "kubernetes.io/metadata.name=y, not kubernetes.io/metadata.name=x" in decision.reason
    renamed = decision.renamed(lambda key: "scen-" + key if key.startswith("y/") else key)
    assert "kubernetes.io/metadata.name=scen-y, not kubernetes.io/metadata.name=x" in renamed.reason
    assert "the namespace of scen-y/c" in renamed.reason
