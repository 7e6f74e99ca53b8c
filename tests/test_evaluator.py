"""Table-driven tests of the reference evaluator, one case per API rule."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from conformance.api.model import ContainerPort, ExternalHost, Pod, frozen_labels
from conformance.api.types import Direction, L4Protocol
from conformance.reference.evaluator import Evaluator, Verdict
from tests.helpers import netpol, upstream_state

TCP, UDP, SCTP = L4Protocol.TCP, L4Protocol.UDP, L4Protocol.SCTP
ALLOW, DENY = Verdict.ALLOW, Verdict.DENY

DENY_ALL_INGRESS: dict[str, Any] = {"podSelector": {}}
ALLOW_ALL_INGRESS: dict[str, Any] = {"podSelector": {}, "ingress": [{}]}

# (case id, policies as (namespace, name, spec), source, target, port, protocol, verdict)
CASES: list[
    tuple[str, list[tuple[str, str, dict[str, Any]]], str, str, int, L4Protocol, Verdict]
] = [
    ("no policies allow everything", [], "x/a", "y/b", 80, TCP, ALLOW),
    (
        "deny-all ingress isolates the namespace",
        [("x", "d", DENY_ALL_INGRESS)],
        "y/a",
        "x/b",
        80,
        TCP,
        DENY,
    ),
    (
        "deny-all ingress leaves other namespaces",
        [("x", "d", DENY_ALL_INGRESS)],
        "x/a",
        "y/b",
        80,
        TCP,
        ALLOW,
    ),
    (
        "ingress [] denies like no ingress key",
        [("x", "d", {"podSelector": {}, "ingress": []})],
        "y/a",
        "x/b",
        80,
        TCP,
        DENY,
    ),
    ("ingress [{}] allows all", [("x", "d", ALLOW_ALL_INGRESS)], "y/a", "x/b", 81, UDP, ALLOW),
    (
        "rule with empty from allows all sources",
        [("x", "d", {"podSelector": {}, "ingress": [{"from": [], "ports": [{"port": 80}]}]})],
        "z/c",
        "x/b",
        80,
        TCP,
        ALLOW,
    ),
    (
        "allow union across policies",
        [
            ("x", "d", DENY_ALL_INGRESS),
            (
                "x",
                "a",
                {
                    "podSelector": {},
                    "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "a"}}}]}],
                },
            ),
        ],
        "x/a",
        "x/b",
        80,
        TCP,
        ALLOW,
    ),
    (
        "podSelector peer is limited to the policy namespace",
        [
            (
                "x",
                "a",
                {
                    "podSelector": {},
                    "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "a"}}}]}],
                },
            )
        ],
        "y/a",
        "x/b",
        80,
        TCP,
        DENY,
    ),
    (
        "namespaceSelector peer selects all pods of the namespace",
        [
            (
                "x",
                "a",
                {
                    "podSelector": {},
                    "ingress": [
                        {
                            "from": [
                                {
                                    "namespaceSelector": {
                                        "matchLabels": {"kubernetes.io/metadata.name": "y"}
                                    }
                                }
                            ]
                        }
                    ],
                },
            )
        ],
        "y/c",
        "x/b",
        80,
        TCP,
        ALLOW,
    ),
    (
        "podSelector AND namespaceSelector in one peer",
        [
            (
                "x",
                "a",
                {
                    "podSelector": {},
                    "ingress": [
                        {
                            "from": [
                                {
                                    "namespaceSelector": {
                                        "matchLabels": {"kubernetes.io/metadata.name": "y"}
                                    },
                                    "podSelector": {"matchLabels": {"pod": "a"}},
                                }
                            ]
                        }
                    ],
                },
            )
        ],
        "y/c",
        "x/b",
        80,
        TCP,
        DENY,
    ),
    (
        "podSelector OR namespaceSelector in two peers",
        [
            (
                "x",
                "a",
                {
                    "podSelector": {},
                    "ingress": [
                        {
                            "from": [
                                {
                                    "namespaceSelector": {
                                        "matchLabels": {"kubernetes.io/metadata.name": "y"}
                                    }
                                },
                                {"podSelector": {"matchLabels": {"pod": "a"}}},
                            ]
                        }
                    ],
                },
            )
        ],
        "x/a",
        "x/b",
        80,
        TCP,
        ALLOW,
    ),
    (
        "empty namespaceSelector selects every namespace",
        [("x", "a", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]})],
        "z/c",
        "x/b",
        80,
        TCP,
        ALLOW,
    ),
    (
        "matchExpressions NotIn matches pods without the key",
        [
            (
                "x",
                "a",
                {
                    "podSelector": {},
                    "ingress": [
                        {
                            "from": [
                                {
                                    "podSelector": {
                                        "matchExpressions": [
                                            {
                                                "key": "pod",
                                                "operator": "NotIn",
                                                "values": ["a", "b"],
                                            }
                                        ]
                                    }
                                }
                            ]
                        }
                    ],
                },
            )
        ],
        "x/c",
        "x/b",
        80,
        TCP,
        ALLOW,
    ),
    (
        "matchExpressions In excludes others",
        [
            (
                "x",
                "a",
                {
                    "podSelector": {},
                    "ingress": [
                        {
                            "from": [
                                {
                                    "podSelector": {
                                        "matchExpressions": [
                                            {"key": "pod", "operator": "In", "values": ["a"]}
                                        ]
                                    }
                                }
                            ]
                        }
                    ],
                },
            )
        ],
        "x/c",
        "x/b",
        80,
        TCP,
        DENY,
    ),
    (
        "DoesNotExist matches when label absent",
        [
            (
                "x",
                "a",
                {
                    "podSelector": {},
                    "ingress": [
                        {
                            "from": [
                                {
                                    "podSelector": {
                                        "matchExpressions": [
                                            {"key": "team", "operator": "DoesNotExist"}
                                        ]
                                    }
                                }
                            ]
                        }
                    ],
                },
            )
        ],
        "x/c",
        "x/b",
        80,
        TCP,
        ALLOW,
    ),
    (
        "port rule matches only that port",
        [("x", "p", {"podSelector": {}, "ingress": [{"ports": [{"port": 81}]}]})],
        "y/a",
        "x/b",
        80,
        TCP,
        DENY,
    ),
    (
        "protocol defaults to TCP",
        [("x", "p", {"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]})],
        "y/a",
        "x/b",
        80,
        UDP,
        DENY,
    ),
    (
        "protocol without port matches all its ports",
        [("x", "p", {"podSelector": {}, "ingress": [{"ports": [{"protocol": "UDP"}]}]})],
        "y/a",
        "x/b",
        81,
        UDP,
        ALLOW,
    ),
    (
        "SCTP is not TCP",
        [
            (
                "x",
                "p",
                {"podSelector": {}, "ingress": [{"ports": [{"protocol": "SCTP", "port": 80}]}]},
            )
        ],
        "y/a",
        "x/b",
        80,
        TCP,
        DENY,
    ),
    (
        "endPort range includes its end",
        [("x", "p", {"podSelector": {}, "ingress": [{"ports": [{"port": 79, "endPort": 81}]}]})],
        "y/a",
        "x/b",
        81,
        TCP,
        ALLOW,
    ),
    (
        "endPort range excludes beyond",
        [("x", "p", {"podSelector": {}, "ingress": [{"ports": [{"port": 70, "endPort": 80}]}]})],
        "y/a",
        "x/b",
        81,
        TCP,
        DENY,
    ),
    (
        "named port resolves on the destination",
        [("x", "p", {"podSelector": {}, "ingress": [{"ports": [{"port": "serve-81-tcp"}]}]})],
        "y/a",
        "x/b",
        81,
        TCP,
        ALLOW,
    ),
    (
        "named port with another protocol does not match",
        [
            (
                "x",
                "p",
                {
                    "podSelector": {},
                    "ingress": [{"ports": [{"port": "serve-81-tcp", "protocol": "UDP"}]}],
                },
            )
        ],
        "y/a",
        "x/b",
        81,
        UDP,
        DENY,
    ),
    (
        "named egress port resolves on the destination",
        [
            (
                "x",
                "e",
                {
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [{"ports": [{"port": "serve-80-udp", "protocol": "UDP"}]}],
                },
            )
        ],
        "x/a",
        "y/b",
        80,
        UDP,
        ALLOW,
    ),
    (
        "egress deny-all isolates sources",
        [("x", "e", {"podSelector": {}, "policyTypes": ["Egress"]})],
        "x/a",
        "y/b",
        80,
        TCP,
        DENY,
    ),
    (
        "egress rules imply Egress policy type",
        [("x", "e", {"podSelector": {}, "egress": [{"ports": [{"port": 81}]}]})],
        "x/a",
        "y/b",
        80,
        TCP,
        DENY,
    ),
    (
        "egress [] without policyTypes does not isolate egress",
        [("x", "e", {"podSelector": {}, "egress": []})],
        "x/a",
        "y/b",
        80,
        TCP,
        ALLOW,
    ),
    (
        "policyTypes Egress alone leaves ingress open",
        [("x", "e", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]})],
        "y/a",
        "x/b",
        80,
        TCP,
        ALLOW,
    ),
    (
        "both sides must allow: egress denies",
        [("x", "e", {"podSelector": {}, "policyTypes": ["Egress"]}), ("y", "i", ALLOW_ALL_INGRESS)],
        "x/a",
        "y/b",
        80,
        TCP,
        DENY,
    ),
    (
        "ipBlock matches pod IPs",
        [
            (
                "x",
                "i",
                {
                    "podSelector": {},
                    "ingress": [{"from": [{"ipBlock": {"cidr": "10.244.0.13/32"}}]}],
                },
            )
        ],
        "y/a",
        "x/b",
        80,
        TCP,
        ALLOW,
    ),
    (
        "ipBlock except removes addresses",
        [
            (
                "x",
                "i",
                {
                    "podSelector": {},
                    "ingress": [
                        {
                            "from": [
                                {"ipBlock": {"cidr": "10.244.0.0/24", "except": ["10.244.0.13/32"]}}
                            ]
                        }
                    ],
                },
            )
        ],
        "y/a",
        "x/b",
        80,
        TCP,
        DENY,
    ),
    (
        "ipBlock with host bits means the masked network",
        [
            (
                "x",
                "i",
                {
                    "podSelector": {},
                    "ingress": [{"from": [{"ipBlock": {"cidr": "10.244.0.13/4"}}]}],
                },
            )
        ],
        "z/c",
        "x/b",
        80,
        TCP,
        ALLOW,
    ),
    (
        "selector on pods not matching leaves them unisolated",
        [("x", "d", {"podSelector": {"matchLabels": {"pod": "a"}}})],
        "y/a",
        "x/b",
        80,
        TCP,
        ALLOW,
    ),
]


@pytest.mark.parametrize(
    ("policies", "src", "dst", "port", "proto", "verdict"),
    [pytest.param(*c[1:], id=c[0]) for c in CASES],
)
def test_rule(
    policies: list[tuple[str, str, dict[str, Any]]],
    src: str,
    dst: str,
    port: int,
    proto: L4Protocol,
    verdict: Verdict,
) -> None:
    ev = Evaluator(upstream_state(), [netpol(*p) for p in policies])
    assert ev.decide(src, dst, port, proto).verdict is verdict


def test_self_traffic_is_implementation_defined_unless_included() -> None:
    policies = [netpol("x", "d", DENY_ALL_INGRESS)]
    assert (
        Evaluator(upstream_state(), policies).decide("x/a", "x/a", 80, TCP).verdict
        is Verdict.IMPLEMENTATION_DEFINED
    )
    assert (
        Evaluator(upstream_state(), policies, include_self=True)
        .decide("x/a", "x/a", 80, TCP)
        .verdict
        is DENY
    )


def test_namespace_selector_uses_namespace_labels() -> None:
    spec = {
        "podSelector": {},
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "blue"}}}]}],
    }
    plain = Evaluator(upstream_state(), [netpol("x", "n", spec)])
    labelled = Evaluator(upstream_state({"y": {"team": "blue"}}), [netpol("x", "n", spec)])
    assert plain.decide("y/a", "x/a", 80, TCP).verdict is DENY
    assert labelled.decide("y/a", "x/a", 80, TCP).verdict is ALLOW


def test_egress_to_external_by_ip_block() -> None:
    db = ExternalHost("db", ipaddress.ip_address("203.0.113.10"), (ContainerPort(5432),))
    other = ExternalHost("web", ipaddress.ip_address("198.51.100.7"))
    state = upstream_state(externals=(db, other))
    spec = {
        "podSelector": {},
        "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}]}],
    }
    ev = Evaluator(state, [netpol("x", "e", spec)])
    assert ev.decide("x/a", "@db", 5432, TCP).verdict is ALLOW
    assert ev.decide("x/a", "@web", 80, TCP).verdict is DENY
    assert "not a pod" in ev.decide("x/a", "@db", 5432, TCP).reason


def test_named_egress_port_never_matches_external() -> None:
    db = ExternalHost("db", ipaddress.ip_address("203.0.113.10"))
    spec = {
        "podSelector": {},
        "policyTypes": ["Egress"],
        "egress": [{"ports": [{"port": "serve-80-tcp"}]}],
    }
    ev = Evaluator(upstream_state(externals=(db,)), [netpol("x", "e", spec)])
    assert ev.decide("x/a", "@db", 80, TCP).verdict is DENY


def test_named_port_resolves_per_destination_pod() -> None:
    """The same name may map to different numbers on different pods (cilium#30003's trap)."""
    state = upstream_state()
    pods = list(state.pods)
    pods[1] = Pod(
        "x", "b", frozen_labels({"pod": "b"}), (ContainerPort(8080, TCP, "http"),), pods[1].ip
    )
    pods[2] = Pod(
        "x", "c", frozen_labels({"pod": "c"}), (ContainerPort(9090, TCP, "http"),), pods[2].ip
    )
    state = type(state)(state.namespaces, tuple(pods))
    ev = Evaluator(
        state, [netpol("x", "p", {"podSelector": {}, "ingress": [{"ports": [{"port": "http"}]}]})]
    )
    assert ev.decide("y/a", "x/b", 8080, TCP).verdict is ALLOW
    assert ev.decide("y/a", "x/b", 9090, TCP).verdict is DENY
    assert ev.decide("y/a", "x/c", 9090, TCP).verdict is ALLOW


def test_host_network_pods_are_not_isolated() -> None:
    state = upstream_state()
    pods = list(state.pods)
    pods[0] = Pod("x", "a", pods[0].labels, pods[0].ports, pods[0].ip, host_network=True)
    ev = Evaluator(type(state)(state.namespaces, tuple(pods)), [netpol("x", "d", DENY_ALL_INGRESS)])
    assert ev.decide("y/a", "x/a", 80, TCP).verdict is ALLOW
    assert ev.decide("y/a", "x/b", 80, TCP).verdict is DENY


def test_reason_names_isolating_policies_and_allowing_rule() -> None:
    policies = [
        netpol("x", "deny", DENY_ALL_INGRESS),
        netpol(
            "x",
            "allow-y",
            {
                "podSelector": {},
                "ingress": [{"ports": [{"port": 81}]}, {"from": [{"namespaceSelector": {}}]}],
            },
        ),
    ]
    ev = Evaluator(upstream_state(), policies)
    d = ev.decide("y/a", "x/b", 80, TCP)
    assert d.verdict is ALLOW
    assert d.ingress.isolated_by == ("x/deny", "x/allow-y")
    assert [str(r) for r in d.ingress.allowed_by] == [
        "NetworkPolicy x/allow-y ingress rule 1 [from namespaceSelector {} (all), any port]"
    ]
    assert "not isolated" in d.egress.describe()
    denied = Evaluator(upstream_state(), policies[:1]).decide("y/a", "x/b", 80, TCP)
    assert "no rule allows it" in denied.reason


def test_renamed_decision_reports_every_name_through_the_mapping() -> None:
    """Live names back to scenario names: pod keys, isolating policies and rule references."""
    policies = [
        netpol("x", "deny", DENY_ALL_INGRESS),
        netpol("x", "allow", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}),
    ]
    d = Evaluator(upstream_state(), policies).decide("x/a", "x/b", 80, TCP)
    renamed = d.renamed(lambda text: text.replace("x/", "live-x/"))
    assert renamed.verdict is d.verdict and renamed.ingress.allowed == d.ingress.allowed
    assert renamed.ingress.endpoint == "live-x/b" and renamed.egress.endpoint == "live-x/a"
    assert renamed.ingress.isolated_by == ("live-x/deny", "live-x/allow")
    assert [r.policy for r in renamed.ingress.allowed_by] == ["live-x/allow"]
    assert renamed.reason == d.reason.replace("x/", "live-x/")


def test_isolating_lists_policies_by_direction() -> None:
    ev = Evaluator(
        upstream_state(), [netpol("x", "e", {"podSelector": {}, "policyTypes": ["Egress"]})]
    )
    assert [p.name for p in ev.isolating("x/a", Direction.EGRESS)] == ["e"]
    assert ev.isolating("x/a", Direction.INGRESS) == ()


@pytest.mark.parametrize("proto", [TCP, UDP, SCTP])
def test_ipv6_ip_block_does_not_match_ipv4_pods(proto: L4Protocol) -> None:
    ev = Evaluator(
        upstream_state(),
        [
            netpol(
                "x",
                "i",
                {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "::/0"}}]}]},
            )
        ],
    )
    assert ev.decide("y/a", "x/b", 80, proto).verdict is DENY
