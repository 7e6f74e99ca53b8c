"""Reasons that explain near misses: a denied cell names the closest rule and the construct that
kept it from matching; an allowed cell names the peer and port that matched. NetworkPolicy rules
first, then the admin tiers (AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from conformance.api.model import ClusterState, ContainerPort, ExternalHost, Namespace, Pod
from conformance.api.model import frozen_labels as fl
from conformance.api.types import L4Protocol
from conformance.cli import main
from conformance.reference.evaluator import Evaluator, Verdict
from tests.helpers import netpol
from tests.strategies import anp, banp, cnp

TCP, UDP = L4Protocol.TCP, L4Protocol.UDP
ROOT = Path(__file__).resolve().parent.parent


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


# -- admin tiers ---------------------------------------------------------------------------------

DENY_B: Any = netpol("x", "deny-b", {"podSelector": {"matchLabels": {"role": "web"}}})
"""Isolates x/b for ingress with no rule: NetworkPolicy denies, an Admin-tier Allow would not."""

WEB = {"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"role": "web"}}}}
TEAM_A = {"namespaces": {"matchLabels": {"team": "a"}}}
TEAM_B = {"namespaces": {"matchLabels": {"team": "b"}}}


def _allow_in(rule: dict[str, Any], subject: dict[str, Any] | None = None) -> Any:
    return anp("let-in", 5, {"subject": subject or WEB, "ingress": [{"action": "Allow", **rule}]})


ADMIN_CASES = [
    (
        "peer namespace selector",
        [DENY_B, _allow_in({"from": [TEAM_B]})],
        ("x/a", "x/b", 9090, TCP),
        "AdminNetworkPolicy let-in (priority 5) ingress rule 0 (Allow): "
        "the namespace of x/a has team=a, not team=b",
    ),
    (
        "peer pod selector",
        [
            DENY_B,
            _allow_in(
                {
                    "from": [
                        {
                            "pods": {
                                "namespaceSelector": {},
                                "podSelector": {"matchLabels": {"role": "db"}},
                            }
                        }
                    ]
                }
            ),
        ],
        ("x/a", "x/b", 9090, TCP),
        "pod x/a has role=api, not role=db",
    ),
    (
        "subject misses the pod",
        [
            DENY_B,
            _allow_in(
                {"from": [TEAM_A]},
                {
                    "pods": {
                        "namespaceSelector": {},
                        "podSelector": {"matchLabels": {"role": "api"}},
                    }
                },
            ),
        ],
        ("x/a", "x/b", 9090, TCP),
        "its subject misses the pod, which has role=web, not role=api",
    ),
    (
        "port range",
        [
            DENY_B,
            cnp(
                "range",
                "Admin",
                3,
                {
                    "subject": WEB,
                    "ingress": [
                        {
                            "action": "Accept",
                            "from": [TEAM_A],
                            "protocols": [
                                {
                                    "tcp": {
                                        "destinationPort": {"range": {"start": 8000, "end": 9000}}
                                    }
                                }
                            ],
                        }
                    ],
                },
            ),
        ],
        ("x/a", "x/b", 9090, TCP),
        "ClusterNetworkPolicy range (Admin tier, priority 3) ingress rule 0 (Accept): "
        "port 9090 is outside 8000-9000",
    ),
    (
        "protocol",
        [
            DENY_B,
            _allow_in(
                {"from": [TEAM_A], "ports": [{"portNumber": {"port": 80, "protocol": "UDP"}}]}
            ),
        ],
        ("x/a", "x/b", 80, TCP),
        "80/UDP is UDP, the connection TCP",
    ),
    (
        "named port",
        [DENY_B, _allow_in({"from": [TEAM_A], "ports": [{"namedPort": "http"}]})],
        ("x/a", "x/b", 8080, TCP),
        "named port http is 9090/TCP on x/b, not 8080",
    ),
    (
        "networks",
        [
            netpol(
                "x",
                "deny-a-out",
                {"podSelector": {"matchLabels": {"role": "api"}}, "policyTypes": ["Egress"]},
            ),
            anp(
                "let-out",
                7,
                {
                    "subject": {"namespaces": {}},
                    "egress": [
                        {"action": "Allow", "to": [{"networks": ["10.0.1.0/24", "10.9.0.0/16"]}]}
                    ],
                },
            ),
        ],
        ("x/a", "x/b", 9090, TCP),
        "AdminNetworkPolicy let-out (priority 7) egress rule 0 (Allow): "
        "x/b's address 10.0.0.11 is outside networks 10.0.1.0/24, 10.9.0.0/16",
    ),
    (
        "nodes peer",
        [
            netpol(
                "x",
                "deny-a-out",
                {"podSelector": {"matchLabels": {"role": "api"}}, "policyTypes": ["Egress"]},
            ),
            anp(
                "to-nodes",
                7,
                {
                    "subject": {"namespaces": {}},
                    "egress": [{"action": "Allow", "to": [{"nodes": {}}]}],
                },
            ),
        ],
        ("x/a", "x/b", 9090, TCP),
        "x/b is not a node (a nodes peer matches nodes and host-network pods)",
    ),
    (
        "baseline tier",
        [
            banp(
                {
                    "subject": WEB,
                    "ingress": [
                        {
                            "action": "Allow",
                            "from": [TEAM_B],
                            "ports": [{"portNumber": {"port": 9090}}],
                        },
                        {"action": "Deny", "from": [{"namespaces": {}}]},
                    ],
                }
            )
        ],
        ("x/a", "x/b", 9090, TCP),
        "BaselineAdminNetworkPolicy default ingress rule 0 (Allow): the namespace of x/a has team=a, not team=b",
    ),
]


@pytest.mark.parametrize(
    ("policies", "cell", "why"), [c[1:] for c in ADMIN_CASES], ids=[c[0] for c in ADMIN_CASES]
)
def test_a_denied_cell_names_the_admin_rule_that_came_closest(
    policies: list[Any], cell: tuple[str, str, int, L4Protocol], why: str
) -> None:
    decision = Evaluator(_state(), policies).decide(*cell)
    assert decision.verdict is Verdict.DENY, decision.reason
    assert "closest admin rule: " in decision.reason, decision.reason
    assert why in decision.reason, decision.reason


def test_the_closest_admin_rule_misses_by_fewest_things() -> None:
    """Of two Allow rules, the one that misses only by its port beats the one that misses by its
    peer and its port, though the farther one comes first in evaluation order."""
    policies = [
        DENY_B,
        anp(
            "first",
            1,
            {
                "subject": WEB,
                "ingress": [
                    {"action": "Allow", "from": [TEAM_B], "ports": [{"portNumber": {"port": 1}}]}
                ],
            },
        ),
        anp(
            "second",
            2,
            {
                "subject": WEB,
                "ingress": [
                    {"action": "Allow", "from": [TEAM_A], "ports": [{"portNumber": {"port": 2}}]}
                ],
            },
        ),
    ]
    reason = Evaluator(_state(), policies).decide("x/a", "x/b", 9090, TCP).reason
    assert (
        "closest admin rule: AdminNetworkPolicy second (priority 2) ingress rule 0 (Allow): port 9090 is not 2"
        in reason
    )


def test_deny_and_pass_rules_and_far_subjects_are_no_near_misses() -> None:
    """Only a rule that would have allowed counts; a policy that does not apply to the pod counts
    only when its rule matches the connection, or it would be named for every pod."""
    policies = [
        DENY_B,
        _allow_in(
            {"from": [TEAM_B]},
            {"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"role": "api"}}}},
        ),
        anp("no", 9, {"subject": WEB, "ingress": [{"action": "Deny", "from": [TEAM_B]}]}),
        anp("skip", 8, {"subject": WEB, "ingress": [{"action": "Pass", "from": [TEAM_B]}]}),
    ]
    decision = Evaluator(_state(), policies).decide("x/a", "x/b", 9090, TCP)
    assert decision.verdict is Verdict.DENY
    assert "closest admin rule" not in decision.reason, decision.reason


def test_networkpolicy_isolation_makes_baseline_rules_no_near_misses() -> None:
    """NetworkPolicy isolation is final: a Baseline Allow could not have let the cell in."""
    policies = [DENY_B, banp({"subject": WEB, "ingress": [{"action": "Allow", "from": [TEAM_B]}]})]
    decision = Evaluator(_state(), policies).decide("x/a", "x/b", 9090, TCP)
    assert decision.verdict is Verdict.DENY
    assert "closest admin rule" not in decision.reason, decision.reason


def test_an_admin_decision_names_the_peer_and_port_that_matched() -> None:
    policies = [
        anp(
            "guard",
            4,
            {
                "subject": WEB,
                "ingress": [
                    {"action": "Pass", "from": [TEAM_A], "ports": [{"namedPort": "http"}]},
                    {
                        "action": "Allow",
                        "from": [TEAM_B],
                        "ports": [{"portRange": {"start": 8000, "end": 8100}}],
                    },
                ],
            },
        )
    ]
    ev = Evaluator(_state(), policies)
    passed = ev.decide("x/a", "x/b", 9090, TCP)
    assert passed.verdict is Verdict.ALLOW
    assert (
        "passed by AdminNetworkPolicy guard (priority 4) ingress rule 0 (Pass) [from namespaces {team=a}, named port http (9090/TCP on x/b)]"
        in passed.reason
    )
    allowed = ev.decide("y/c", "x/b", 8080, TCP)
    assert (
        "allowed by AdminNetworkPolicy guard (priority 4) ingress rule 1 (Allow) [from namespaces {team=b}, port 8000-8100/TCP]"
        in allowed.reason
    )
    assert "closest admin rule" not in passed.reason + allowed.reason


def test_an_allowed_cell_names_no_admin_near_miss() -> None:
    policies = [_allow_in({"from": [TEAM_B]})]
    decision = Evaluator(_state(), policies).decide("x/a", "x/b", 9090, TCP)
    assert decision.verdict is Verdict.ALLOW
    assert "closest" not in decision.reason, decision.reason


def test_renamed_reasons_rename_the_admin_near_miss() -> None:
    policies = [DENY_B, _allow_in({"from": [TEAM_B]})]
    decision = Evaluator(_state(), policies).decide("x/a", "x/b", 9090, TCP)
    renamed = decision.renamed(
        lambda key: {"let-in": "scen-let-in"}.get(key, key.replace("x/", "scen-x/"))
    )
    assert "closest admin rule: AdminNetworkPolicy scen-let-in (priority 5)" in renamed.reason
    assert "the namespace of scen-x/a has team=a" in renamed.reason


def test_evaluate_explain_and_json_carry_the_admin_near_miss(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The shipped BANP scenario: a cell the BaselineAdminNetworkPolicy denies names, in the JSON
    document and in --explain, the Allow rule of the same policy that came closest."""
    scenario = ROOT / "scenarios" / "admin" / "v1alpha1" / "banp-core-gress-rules.yaml"
    assert main(["evaluate", "--output", "json", str(scenario)]) == 0
    doc = json.loads(capsys.readouterr().out)
    near = [
        c
        for s in doc["scenarios"]
        for st in s["steps"]
        for c in st["cells"]
        if "closest admin rule: BaselineAdminNetworkPolicy default" in c["reason"]
    ]
    assert near and all(c["verdict"] == "deny" for c in near)
    assert any("(Allow): the namespace of" in c["reason"] for c in near), near[0]["reason"]
    assert main(["evaluate", "--explain", str(scenario)]) == 0
    assert "closest admin rule: BaselineAdminNetworkPolicy default" in capsys.readouterr().out
