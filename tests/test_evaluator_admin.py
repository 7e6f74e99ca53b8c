"""Table-driven tests of the admin tiers in the reference evaluator, one case per rule (8-13)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from conformance.api.adminpol import AdminPolicy
from conformance.api.model import ClusterState, ContainerPort, ExternalHost, Pod, frozen_labels
from conformance.api.netpol import NetworkPolicy
from conformance.api.types import Direction, L4Protocol
from conformance.reference.evaluator import AnyPolicy, DecidingTier, Evaluator, Verdict
from tests.helpers import DEFAULT_PORTS, netpol, upstream_state
from tests.strategies import anp, banp, cnp, ns_is

TCP, UDP, SCTP = L4Protocol.TCP, L4Protocol.UDP, L4Protocol.SCTP
ALLOW, DENY, UNDEF = Verdict.ALLOW, Verdict.DENY, Verdict.IMPLEMENTATION_DEFINED

SUBJECT_X = {"namespaces": ns_is("x")}
FROM_Y = [{"namespaces": ns_is("y")}]
TO_Y = [{"namespaces": ns_is("y")}]
ALL_NS: list[dict[str, Any]] = [{"namespaces": {}}]
DENY_ALL_NP_X = netpol("x", "deny-all", {"podSelector": {}})
ALLOW_Y_NP_X = netpol(
    "x", "allow-y", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": ns_is("y")}]}]}
)


def ing(action: str, peers: list[dict[str, Any]], **extra: object) -> dict[str, object]:
    return {"action": action, "from": peers, **extra}


def eg(action: str, peers: list[dict[str, Any]], **extra: object) -> dict[str, object]:
    return {"action": action, "to": peers, **extra}


# (case id, policies, source, target, port, protocol, verdict)
Case = tuple[str, list[AnyPolicy], str, str, int, L4Protocol, Verdict]
CASES: list[Case] = [
    # Rule 9: first matching rule decides; Deny and Allow are final.
    (
        "anp deny ingress",
        [anp("d", 10, {"subject": SUBJECT_X, "ingress": [ing("Deny", FROM_Y)]})],
        "y/a",
        "x/a",
        80,
        TCP,
        DENY,
    ),
    (
        "anp deny leaves other sources",
        [anp("d", 10, {"subject": SUBJECT_X, "ingress": [ing("Deny", FROM_Y)]})],
        "z/a",
        "x/a",
        80,
        TCP,
        ALLOW,
    ),
    (
        "anp rule order: earlier allow wins over later deny",
        [
            anp(
                "d",
                10,
                {"subject": SUBJECT_X, "ingress": [ing("Allow", FROM_Y), ing("Deny", ALL_NS)]},
            )
        ],
        "y/a",
        "x/a",
        80,
        TCP,
        ALLOW,
    ),
    (
        "anp priority: lower number wins",
        [
            anp("allow", 20, {"subject": SUBJECT_X, "ingress": [ing("Allow", FROM_Y)]}),
            anp("deny", 5, {"subject": SUBJECT_X, "ingress": [ing("Deny", FROM_Y)]}),
        ],
        "y/a",
        "x/a",
        80,
        TCP,
        DENY,
    ),
    # Rule 10: admin Allow overrides a NetworkPolicy deny; Deny overrides an NP allow.
    (
        "anp allow beats networkpolicy deny",
        [DENY_ALL_NP_X, anp("a", 1, {"subject": SUBJECT_X, "ingress": [ing("Allow", FROM_Y)]})],
        "y/a",
        "x/a",
        80,
        TCP,
        ALLOW,
    ),
    (
        "anp deny beats networkpolicy allow",
        [ALLOW_Y_NP_X, anp("d", 1, {"subject": SUBJECT_X, "ingress": [ing("Deny", FROM_Y)]})],
        "y/a",
        "x/a",
        80,
        TCP,
        DENY,
    ),
    # Pass: skips the rest of the admin tier; NetworkPolicy decides when it selects the pod.
    (
        "pass skips later admin deny",
        [
            anp("pass", 1, {"subject": SUBJECT_X, "ingress": [ing("Pass", FROM_Y)]}),
            anp("deny", 2, {"subject": SUBJECT_X, "ingress": [ing("Deny", FROM_Y)]}),
        ],
        "y/a",
        "x/a",
        80,
        TCP,
        ALLOW,
    ),
    (
        "pass hands over to networkpolicy",
        [DENY_ALL_NP_X, anp("pass", 1, {"subject": SUBJECT_X, "ingress": [ing("Pass", FROM_Y)]})],
        "y/a",
        "x/a",
        80,
        TCP,
        DENY,
    ),
    (
        "pass then baseline deny",
        [
            anp("pass", 1, {"subject": SUBJECT_X, "ingress": [ing("Pass", FROM_Y)]}),
            banp({"subject": SUBJECT_X, "ingress": [ing("Deny", FROM_Y)]}),
        ],
        "y/a",
        "x/a",
        80,
        TCP,
        DENY,
    ),
    # Baseline: decides only for pods no NetworkPolicy selects.
    (
        "banp deny",
        [banp({"subject": SUBJECT_X, "ingress": [ing("Deny", ALL_NS)]})],
        "y/a",
        "x/a",
        80,
        TCP,
        DENY,
    ),
    (
        "networkpolicy overrides banp deny",
        [ALLOW_Y_NP_X, banp({"subject": SUBJECT_X, "ingress": [ing("Deny", ALL_NS)]})],
        "y/a",
        "x/a",
        80,
        TCP,
        ALLOW,
    ),
    (
        "networkpolicy deny overrides banp allow",
        [DENY_ALL_NP_X, banp({"subject": SUBJECT_X, "ingress": [ing("Allow", ALL_NS)]})],
        "y/a",
        "x/a",
        80,
        TCP,
        DENY,
    ),
    (
        "egress-only networkpolicy does not shield ingress from banp",
        [
            netpol("x", "eg", {"podSelector": {}, "policyTypes": ["Egress"]}),
            banp({"subject": SUBJECT_X, "ingress": [ing("Deny", ALL_NS)]}),
        ],
        "y/a",
        "x/a",
        80,
        TCP,
        DENY,
    ),
    # Admin policies never isolate: unmatched traffic is allowed.
    (
        "anp does not isolate",
        [anp("a", 1, {"subject": SUBJECT_X, "ingress": [ing("Allow", FROM_Y)]})],
        "z/a",
        "x/a",
        80,
        TCP,
        ALLOW,
    ),
    # Egress side.
    (
        "anp egress deny to namespace",
        [anp("d", 1, {"subject": SUBJECT_X, "egress": [eg("Deny", TO_Y)]})],
        "x/a",
        "y/b",
        80,
        TCP,
        DENY,
    ),
    (
        "egress and ingress both must allow",
        [
            anp("a", 1, {"subject": {"namespaces": ns_is("y")}, "ingress": [ing("Allow", ALL_NS)]}),
            anp("d", 2, {"subject": SUBJECT_X, "egress": [eg("Deny", TO_Y)]}),
        ],
        "x/a",
        "y/b",
        80,
        TCP,
        DENY,
    ),
    # Peers: pods (namespace AND pod selectors).
    (
        "pods peer matches pod in namespace",
        [
            anp(
                "d",
                1,
                {
                    "subject": SUBJECT_X,
                    "ingress": [
                        ing(
                            "Deny",
                            [
                                {
                                    "pods": {
                                        "namespaceSelector": ns_is("y"),
                                        "podSelector": {"matchLabels": {"pod": "b"}},
                                    }
                                }
                            ],
                        )
                    ],
                },
            )
        ],
        "y/b",
        "x/a",
        80,
        TCP,
        DENY,
    ),
    (
        "pods peer skips other pods",
        [
            anp(
                "d",
                1,
                {
                    "subject": SUBJECT_X,
                    "ingress": [
                        ing(
                            "Deny",
                            [
                                {
                                    "pods": {
                                        "namespaceSelector": ns_is("y"),
                                        "podSelector": {"matchLabels": {"pod": "b"}},
                                    }
                                }
                            ],
                        )
                    ],
                },
            )
        ],
        "y/a",
        "x/a",
        80,
        TCP,
        ALLOW,
    ),
    (
        "pods subject selects only matching pods",
        [
            anp(
                "d",
                1,
                {
                    "subject": {
                        "pods": {
                            "namespaceSelector": ns_is("x"),
                            "podSelector": {"matchLabels": {"pod": "a"}},
                        }
                    },
                    "ingress": [ing("Deny", ALL_NS)],
                },
            )
        ],
        "y/a",
        "x/b",
        80,
        TCP,
        ALLOW,
    ),
    # Peers: networks match pod IPs (x/c is 10.244.0.12) and external hosts.
    (
        "networks peer matches a pod ip",
        [
            anp(
                "d",
                1,
                {"subject": SUBJECT_X, "egress": [eg("Deny", [{"networks": ["10.244.0.12/32"]}])]},
            )
        ],
        "x/a",
        "x/c",
        80,
        TCP,
        DENY,
    ),
    (
        "networks peer misses other pods",
        [
            anp(
                "d",
                1,
                {"subject": SUBJECT_X, "egress": [eg("Deny", [{"networks": ["10.244.0.12/32"]}])]},
            )
        ],
        "x/a",
        "x/b",
        80,
        TCP,
        ALLOW,
    ),
    (
        "networks peer matches an external host",
        [
            anp(
                "d",
                1,
                {"subject": SUBJECT_X, "egress": [eg("Deny", [{"networks": ["203.0.113.0/24"]}])]},
            )
        ],
        "x/a",
        "@db",
        80,
        TCP,
        DENY,
    ),
    (
        "namespaces peer never matches an external host",
        [anp("d", 1, {"subject": SUBJECT_X, "egress": [eg("Deny", ALL_NS)]})],
        "x/a",
        "@db",
        80,
        TCP,
        ALLOW,
    ),
    (
        "domainNames to an external host is implementation-defined",
        [
            anp(
                "a",
                1,
                {
                    "subject": SUBJECT_X,
                    "egress": [eg("Allow", [{"domainNames": ["db.example.com"]}])],
                },
            ),
            anp(
                "d",
                2,
                {"subject": SUBJECT_X, "egress": [eg("Deny", [{"networks": ["0.0.0.0/0"]}])]},
            ),
        ],
        "x/a",
        "@db",
        80,
        TCP,
        UNDEF,
    ),
    (
        "domainNames never match pods",
        [
            anp(
                "a",
                1,
                {
                    "subject": SUBJECT_X,
                    "egress": [eg("Allow", [{"domainNames": ["db.example.com"]}])],
                },
            ),
            anp(
                "d",
                2,
                {"subject": SUBJECT_X, "egress": [eg("Deny", [{"networks": ["0.0.0.0/0"]}])]},
            ),
        ],
        "x/a",
        "y/a",
        80,
        TCP,
        DENY,
    ),
    (
        "nodes peer matches no pod network pod",
        [anp("d", 1, {"subject": SUBJECT_X, "egress": [eg("Deny", [{"nodes": {}}])]})],
        "x/a",
        "y/a",
        80,
        TCP,
        ALLOW,
    ),
    # Ports (v1alpha1).
    (
        "portNumber matches protocol and number",
        [
            anp(
                "d",
                1,
                {
                    "subject": SUBJECT_X,
                    "ingress": [
                        ing("Deny", ALL_NS, ports=[{"portNumber": {"port": 80, "protocol": "UDP"}}])
                    ],
                },
            )
        ],
        "y/a",
        "x/a",
        80,
        UDP,
        DENY,
    ),
    (
        "portNumber other protocol does not match",
        [
            anp(
                "d",
                1,
                {
                    "subject": SUBJECT_X,
                    "ingress": [
                        ing("Deny", ALL_NS, ports=[{"portNumber": {"port": 80, "protocol": "UDP"}}])
                    ],
                },
            )
        ],
        "y/a",
        "x/a",
        80,
        TCP,
        ALLOW,
    ),
    (
        "portNumber protocol defaults to TCP",
        [
            anp(
                "d",
                1,
                {
                    "subject": SUBJECT_X,
                    "ingress": [ing("Deny", ALL_NS, ports=[{"portNumber": {"port": 81}}])],
                },
            )
        ],
        "y/a",
        "x/a",
        81,
        TCP,
        DENY,
    ),
    (
        "portRange is inclusive",
        [
            anp(
                "d",
                1,
                {
                    "subject": SUBJECT_X,
                    "ingress": [
                        ing(
                            "Deny",
                            ALL_NS,
                            ports=[{"portRange": {"start": 70, "end": 81, "protocol": "SCTP"}}],
                        )
                    ],
                },
            )
        ],
        "y/a",
        "x/a",
        81,
        SCTP,
        DENY,
    ),
    (
        "namedPort resolves on the destination pod",
        [
            anp(
                "d",
                1,
                {
                    "subject": SUBJECT_X,
                    "egress": [eg("Deny", ALL_NS, ports=[{"namedPort": "serve-81-udp"}])],
                },
            )
        ],
        "x/a",
        "y/a",
        81,
        UDP,
        DENY,
    ),
    (
        "namedPort needs the destination's protocol",
        [
            anp(
                "d",
                1,
                {
                    "subject": SUBJECT_X,
                    "egress": [eg("Deny", ALL_NS, ports=[{"namedPort": "serve-81-udp"}])],
                },
            )
        ],
        "x/a",
        "y/a",
        81,
        TCP,
        ALLOW,
    ),
    # ClusterNetworkPolicy (v1alpha2): tiers, Accept, protocols.
    (
        "cnp admin accept beats networkpolicy deny",
        [
            DENY_ALL_NP_X,
            cnp("a", "Admin", 1, {"subject": SUBJECT_X, "ingress": [ing("Accept", FROM_Y)]}),
        ],
        "y/a",
        "x/a",
        80,
        TCP,
        ALLOW,
    ),
    (
        "cnp baseline deny loses to networkpolicy",
        [
            ALLOW_Y_NP_X,
            cnp("d", "Baseline", 1, {"subject": SUBJECT_X, "ingress": [ing("Deny", ALL_NS)]}),
        ],
        "y/a",
        "x/a",
        80,
        TCP,
        ALLOW,
    ),
    (
        "cnp baseline deny applies without networkpolicy",
        [cnp("d", "Baseline", 1, {"subject": SUBJECT_X, "ingress": [ing("Deny", ALL_NS)]})],
        "y/a",
        "x/a",
        80,
        TCP,
        DENY,
    ),
    (
        "cnp baseline priorities order",
        [
            cnp("a", "Baseline", 3, {"subject": SUBJECT_X, "ingress": [ing("Accept", FROM_Y)]}),
            cnp("d", "Baseline", 9, {"subject": SUBJECT_X, "ingress": [ing("Deny", ALL_NS)]}),
        ],
        "y/a",
        "x/a",
        80,
        TCP,
        ALLOW,
    ),
    (
        "cnp baseline pass falls to default allow",
        [
            cnp("p", "Baseline", 3, {"subject": SUBJECT_X, "ingress": [ing("Pass", FROM_Y)]}),
            cnp("d", "Baseline", 9, {"subject": SUBJECT_X, "ingress": [ing("Deny", ALL_NS)]}),
        ],
        "y/a",
        "x/a",
        80,
        TCP,
        ALLOW,
    ),
    (
        "cnp tcp destinationPort number",
        [
            cnp(
                "d",
                "Admin",
                1,
                {
                    "subject": SUBJECT_X,
                    "ingress": [
                        ing(
                            "Deny", ALL_NS, protocols=[{"tcp": {"destinationPort": {"number": 80}}}]
                        )
                    ],
                },
            )
        ],
        "y/a",
        "x/a",
        80,
        TCP,
        DENY,
    ),
    (
        "cnp udp range does not match tcp",
        [
            cnp(
                "d",
                "Admin",
                1,
                {
                    "subject": SUBJECT_X,
                    "ingress": [
                        ing(
                            "Deny",
                            ALL_NS,
                            protocols=[
                                {"udp": {"destinationPort": {"range": {"start": 80, "end": 90}}}}
                            ],
                        )
                    ],
                },
            )
        ],
        "y/a",
        "x/a",
        80,
        TCP,
        ALLOW,
    ),
    (
        "cnp destinationNamedPort",
        [
            cnp(
                "d",
                "Admin",
                1,
                {
                    "subject": SUBJECT_X,
                    "ingress": [
                        ing("Deny", ALL_NS, protocols=[{"destinationNamedPort": "serve-80-sctp"}])
                    ],
                },
            )
        ],
        "y/a",
        "x/a",
        80,
        SCTP,
        DENY,
    ),
    (
        "cnp pods peer without namespaceSelector selects all namespaces",
        [
            cnp(
                "d",
                "Admin",
                1,
                {
                    "subject": SUBJECT_X,
                    "ingress": [
                        ing("Deny", [{"pods": {"podSelector": {"matchLabels": {"pod": "c"}}}}])
                    ],
                },
            )
        ],
        "z/c",
        "x/a",
        80,
        TCP,
        DENY,
    ),
    # Rule 11: same priority.
    (
        "same priority, different outcomes: implementation-defined",
        [
            anp("a", 5, {"subject": SUBJECT_X, "ingress": [ing("Allow", FROM_Y)]}),
            anp("d", 5, {"subject": SUBJECT_X, "ingress": [ing("Deny", FROM_Y)]}),
        ],
        "y/a",
        "x/a",
        80,
        TCP,
        UNDEF,
    ),
    (
        "same priority, same outcome: decided",
        [
            anp("d1", 5, {"subject": SUBJECT_X, "ingress": [ing("Deny", FROM_Y)]}),
            anp("d2", 5, {"subject": SUBJECT_X, "ingress": [ing("Deny", ALL_NS)]}),
        ],
        "y/a",
        "x/a",
        80,
        TCP,
        DENY,
    ),
    (
        "same priority, only one matches: decided",
        [
            anp("a", 5, {"subject": SUBJECT_X, "ingress": [ing("Allow", FROM_Y)]}),
            anp(
                "d",
                5,
                {"subject": SUBJECT_X, "ingress": [ing("Deny", [{"namespaces": ns_is("z")}])]},
            ),
        ],
        "y/a",
        "x/a",
        80,
        TCP,
        ALLOW,
    ),
    (
        "same priority: pass versus deny without networkpolicy",
        [
            anp("p", 5, {"subject": SUBJECT_X, "ingress": [ing("Pass", FROM_Y)]}),
            anp("d", 5, {"subject": SUBJECT_X, "ingress": [ing("Deny", FROM_Y)]}),
        ],
        "y/a",
        "x/a",
        80,
        TCP,
        UNDEF,
    ),
    (
        "same priority: pass to a denying networkpolicy equals deny",
        [
            DENY_ALL_NP_X,
            anp("p", 5, {"subject": SUBJECT_X, "ingress": [ing("Pass", FROM_Y)]}),
            anp("d", 5, {"subject": SUBJECT_X, "ingress": [ing("Deny", FROM_Y)]}),
        ],
        "y/a",
        "x/a",
        80,
        TCP,
        DENY,
    ),
    (
        "undefined ingress and denied egress is denied",
        [
            anp("a", 5, {"subject": SUBJECT_X, "ingress": [ing("Allow", FROM_Y)]}),
            anp("d", 5, {"subject": SUBJECT_X, "ingress": [ing("Deny", FROM_Y)]}),
            anp("e", 1, {"subject": {"namespaces": ns_is("y")}, "egress": [eg("Deny", ALL_NS)]}),
        ],
        "y/a",
        "x/a",
        80,
        TCP,
        DENY,
    ),
    (
        "banp ties with the first matching baseline cnp",
        [
            banp({"subject": SUBJECT_X, "ingress": [ing("Allow", FROM_Y)]}),
            cnp("d", "Baseline", 7, {"subject": SUBJECT_X, "ingress": [ing("Deny", ALL_NS)]}),
        ],
        "y/a",
        "x/a",
        80,
        TCP,
        UNDEF,
    ),
    (
        "admin tier mixes anp and cnp by priority",
        [
            anp("a", 9, {"subject": SUBJECT_X, "ingress": [ing("Allow", FROM_Y)]}),
            cnp("d", "Admin", 3, {"subject": SUBJECT_X, "ingress": [ing("Deny", FROM_Y)]}),
        ],
        "y/a",
        "x/a",
        80,
        TCP,
        DENY,
    ),
]


def _state() -> ClusterState:
    ext = (ExternalHost("db", ipaddress.ip_address("203.0.113.10")),)
    return upstream_state(externals=ext)


@pytest.mark.parametrize(
    ("policies", "source", "target", "port", "protocol", "verdict"),
    [pytest.param(*c[1:], id=c[0]) for c in CASES],
)
def test_rule(
    policies: list[AnyPolicy],
    source: str,
    target: str,
    port: int,
    protocol: L4Protocol,
    verdict: Verdict,
) -> None:
    decision = Evaluator(_state(), policies).decide(source, target, port, protocol)
    assert decision.verdict is verdict, decision.reason


def _with_host_network_pod() -> ClusterState:
    base = upstream_state()
    host = Pod(
        "x", "h", frozen_labels({"pod": "h"}), DEFAULT_PORTS, ipaddress.ip_address("10.0.0.5"), True
    )
    return ClusterState(base.namespaces, (*base.pods, host))


def test_host_network_pods_are_never_subjects() -> None:
    ev = Evaluator(
        _with_host_network_pod(),
        [anp("d", 1, {"subject": SUBJECT_X, "ingress": [ing("Deny", ALL_NS)]})],
    )
    assert ev.decide("y/a", "x/h", 80, TCP).verdict is ALLOW
    assert ev.decide("y/a", "x/a", 80, TCP).verdict is DENY


def test_host_network_pods_never_match_pod_or_namespace_peers() -> None:
    ev = Evaluator(
        _with_host_network_pod(),
        [anp("d", 1, {"subject": SUBJECT_X, "egress": [eg("Deny", ALL_NS)]})],
    )
    assert ev.decide("x/a", "x/h", 80, TCP).verdict is ALLOW
    assert ev.decide("x/a", "x/b", 80, TCP).verdict is DENY


def test_host_network_pods_match_networks_by_ip() -> None:
    ev = Evaluator(
        _with_host_network_pod(),
        [
            anp(
                "d",
                1,
                {"subject": SUBJECT_X, "egress": [eg("Deny", [{"networks": ["10.0.0.0/24"]}])]},
            )
        ],
    )
    assert ev.decide("x/a", "x/h", 80, TCP).verdict is DENY


def test_nodes_peer_to_host_network_pod_is_implementation_defined() -> None:
    ev = Evaluator(
        _with_host_network_pod(),
        [anp("d", 1, {"subject": SUBJECT_X, "egress": [eg("Deny", [{"nodes": {}}])]})],
    )
    d = ev.decide("x/a", "x/h", 80, TCP)
    assert d.verdict is UNDEF
    assert "nodes" in d.reason


def test_named_port_on_external_never_matches() -> None:
    state = _state()
    ev = Evaluator(
        state,
        [
            anp(
                "d",
                1,
                {
                    "subject": SUBJECT_X,
                    "egress": [eg("Deny", ALL_NS, ports=[{"namedPort": "http"}])],
                },
            )
        ],
    )
    assert ev.decide("x/a", "@db", 80, TCP).verdict is ALLOW


def test_reason_names_tier_policy_rule_and_action() -> None:
    pols: list[AnyPolicy] = [
        anp(
            "guard",
            10,
            {"subject": SUBJECT_X, "ingress": [{"name": "no-y", "action": "Deny", "from": FROM_Y}]},
        )
    ]
    d = Evaluator(_state(), pols).decide("y/a", "x/a", 80, TCP)
    assert d.ingress.tier is DecidingTier.ADMIN
    assert (
        str(d.ingress.decided_by)
        == "AdminNetworkPolicy guard (priority 10) ingress rule 0 'no-y' (Deny) "
        "[from namespaces {kubernetes.io/metadata.name=y}, any port]"
    )
    assert "denied by AdminNetworkPolicy guard" in d.reason


def test_reason_names_both_same_priority_policies() -> None:
    pols: list[AnyPolicy] = [
        cnp("one", "Admin", 5, {"subject": SUBJECT_X, "ingress": [ing("Accept", FROM_Y)]}),
        cnp("two", "Admin", 5, {"subject": SUBJECT_X, "ingress": [ing("Deny", FROM_Y)]}),
    ]
    d = Evaluator(_state(), pols).decide("y/a", "x/a", 80, TCP)
    assert d.verdict is UNDEF
    assert "ClusterNetworkPolicy one (Admin tier, priority 5)" in d.reason
    assert "ClusterNetworkPolicy two (Admin tier, priority 5)" in d.reason


def test_reason_names_pass_and_the_deciding_networkpolicy() -> None:
    pols: list[AnyPolicy] = [
        DENY_ALL_NP_X,
        anp(
            "p",
            1,
            {
                "subject": SUBJECT_X,
                "ingress": [{"name": "to-np", "action": "Pass", "from": FROM_Y}],
            },
        ),
    ]
    d = Evaluator(_state(), pols).decide("y/a", "x/a", 80, TCP)
    assert d.ingress.tier is DecidingTier.NETWORK_POLICY
    assert [str(r) for r in d.ingress.passed_by] == [
        "AdminNetworkPolicy p (priority 1) ingress rule 0 'to-np' (Pass) "
        "[from namespaces {kubernetes.io/metadata.name=y}, any port]"
    ]
    assert "isolated by x/deny-all" in d.reason


def test_banp_reason_has_no_priority() -> None:
    d = Evaluator(
        _state(), [banp({"subject": SUBJECT_X, "ingress": [ing("Deny", FROM_Y)]})]
    ).decide("y/a", "x/a", 80, TCP)
    assert d.ingress.tier is DecidingTier.BASELINE
    assert str(d.ingress.decided_by) == (
        "BaselineAdminNetworkPolicy default ingress rule 0 (Deny) "
        "[from namespaces {kubernetes.io/metadata.name=y}, any port]"
    )


def test_admin_policies_lists_subject_policies_by_direction() -> None:
    pol = anp("d", 1, {"subject": SUBJECT_X, "ingress": [ing("Deny", FROM_Y)]})
    ev = Evaluator(_state(), [pol])
    assert ev.admin_policies("x/a", Direction.INGRESS) == (pol,)
    assert ev.admin_policies("x/a", Direction.EGRESS) == ()
    assert ev.admin_policies("y/a", Direction.INGRESS) == ()


def test_networkpolicy_only_reasons_are_unchanged() -> None:
    d = Evaluator(_state(), [DENY_ALL_NP_X]).decide("y/a", "x/a", 80, TCP)
    assert d.reason == (
        "egress of y/a: not isolated (no NetworkPolicy selects it for Egress); "
        "ingress of x/a: isolated by x/deny-all; no rule allows it"
    )


def test_unserved_pod_port_still_evaluated() -> None:
    state = _state()
    odd = Pod(
        "z",
        "p",
        frozen_labels({"pod": "p"}),
        (ContainerPort(9000, TCP, "odd"),),
        ipaddress.ip_address("10.244.1.1"),
    )
    state = ClusterState(state.namespaces, (*state.pods, odd), state.externals)
    pol: AdminPolicy = anp(
        "d", 1, {"subject": SUBJECT_X, "egress": [eg("Deny", ALL_NS, ports=[{"namedPort": "odd"}])]}
    )
    ev = Evaluator(state, [pol])
    assert ev.decide("x/a", "z/p", 9000, TCP).verdict is DENY
    assert ev.decide("x/a", "z/a", 9000, TCP).verdict is ALLOW


def test_networkpolicy_type_is_still_accepted_alone() -> None:
    pols: list[NetworkPolicy] = [DENY_ALL_NP_X]
    assert Evaluator(_state(), pols).decide("y/a", "x/a", 80, TCP).verdict is DENY


def test_self_traffic_reason_reports_an_undecided_policy_outcome() -> None:
    pols: list[AnyPolicy] = [
        anp("a", 5, {"subject": SUBJECT_X, "ingress": [ing("Allow", ALL_NS)]}),
        anp("d", 5, {"subject": SUBJECT_X, "ingress": [ing("Deny", ALL_NS)]}),
    ]
    d = Evaluator(_state(), pols).decide("x/a", "x/a", 80, TCP)
    assert d.verdict is UNDEF
    assert "policy says implementation-defined" in d.reason


@pytest.mark.parametrize(
    ("start", "end", "port", "verdict"),
    [(81, 80, 80, UNDEF), (81, 80, 81, UNDEF), (80, 80, 80, UNDEF), (81, 80, 82, ALLOW)],
)
def test_v1alpha1_range_with_start_not_below_end_is_undecidable_inside(
    start: int, end: int, port: int, verdict: Verdict
) -> None:
    rng = {"portRange": {"start": start, "end": end}}
    pol = anp("d", 1, {"subject": SUBJECT_X, "ingress": [ing("Deny", ALL_NS, ports=[rng])]})
    state = upstream_state()
    extra = Pod(
        "x",
        "p",
        frozen_labels({"pod": "p"}),
        (ContainerPort(82, TCP),),
        ipaddress.ip_address("10.244.1.2"),
    )
    state = ClusterState(state.namespaces, (*state.pods, extra))
    target = "x/p" if port == 82 else "x/a"
    d = Evaluator(state, [pol]).decide("y/a", target, port, TCP)
    assert d.verdict is verdict, d.reason
    if verdict is UNDEF:
        assert "start >= end" in d.reason
