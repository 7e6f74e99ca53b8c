"""NetworkPolicy parsing: API defaulting, and validation errors that name the field."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from conformance.api.netpol import parse_network_policy
from conformance.api.types import Direction, L4Protocol
from conformance.errors import ScenarioError


def obj(spec: Any, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": "x", **meta},
        "spec": spec,
    }


@pytest.mark.parametrize(
    ("spec", "types"),
    [
        ({"podSelector": {}}, {Direction.INGRESS}),
        ({"podSelector": {}, "egress": [{}]}, {Direction.INGRESS, Direction.EGRESS}),
        ({"podSelector": {}, "egress": []}, {Direction.INGRESS}),
        ({"podSelector": {}, "policyTypes": []}, {Direction.INGRESS}),
        ({"podSelector": {}, "policyTypes": ["Egress"]}, {Direction.EGRESS}),
        ({"podSelector": {}, "policyTypes": ["Ingress", "Ingress"]}, {Direction.INGRESS}),
    ],
)
def test_policy_types_defaulting(spec: dict[str, Any], types: set[Direction]) -> None:
    assert parse_network_policy(obj(spec)).policy_types == types


def test_parsed_fields_use_api_defaults() -> None:
    p = parse_network_policy(
        obj(
            {
                "ingress": [
                    {
                        "from": [{"ipBlock": {"cidr": "10.1.2.3/8", "except": ["10.9.0.0/16"]}}],
                        "ports": [{"port": 80, "endPort": 90}],
                    },
                    None,
                ]
            }
        )
    )
    assert p.pod_selector.is_empty
    rule = p.ingress[0]
    assert rule.peers[0].ip_block is not None
    assert rule.peers[0].ip_block.cidr == ipaddress.ip_network("10.0.0.0/8")
    assert rule.ports[0].protocol is L4Protocol.TCP and rule.ports[0].end_port == 90
    assert p.ingress[1].peers == () and p.ingress[1].ports == ()


INVALID = [
    (
        "bad operator",
        {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Inn", "values": ["b"]}]}},
        "spec.podSelector.matchExpressions[0].operator",
        "not a valid operator",
    ),
    (
        "In needs values",
        {"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
        "spec.podSelector.matchExpressions[0]",
        "non-empty 'values'",
    ),
    (
        "Exists forbids values",
        {
            "podSelector": {
                "matchExpressions": [{"key": "a", "operator": "Exists", "values": ["b"]}]
            }
        },
        "spec.podSelector.matchExpressions[0].values",
        "must not have 'values'",
    ),
    (
        "bad label key",
        {"podSelector": {"matchLabels": {"-bad": "x"}}},
        "spec.podSelector.matchLabels.-bad",
        "label key",
    ),
    (
        "bad label value",
        {"podSelector": {"matchLabels": {"a": "no spaces"}}},
        "spec.podSelector.matchLabels.a",
        "label value",
    ),
    (
        "non-string label value",
        {"podSelector": {"matchLabels": {"a": 1}}},
        "spec.podSelector.matchLabels.a",
        "quote it",
    ),
    (
        "bad cidr",
        {"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.300/8"}}]}]},
        "spec.ingress[0].from[0].ipBlock.cidr",
        "not a valid CIDR",
    ),
    (
        "except outside cidr",
        {"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24"]}}]}]},
        "spec.ingress[0].from[0].ipBlock.except[0]",
        "strict subset",
    ),
    (
        "except equal to cidr",
        {"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.0.0/16"]}}]}]},
        "spec.ingress[0].from[0].ipBlock.except[0]",
        "strict subset",
    ),
    (
        "ipBlock with selector",
        {"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]},
        "spec.ingress[0].from[0]",
        "may not combine",
    ),
    (
        "empty peer",
        {"ingress": [{"from": [{}]}]},
        "spec.ingress[0].from[0]",
        "must set podSelector",
    ),
    (
        "endPort without port",
        {"ingress": [{"ports": [{"endPort": 90}]}]},
        "spec.ingress[0].ports[0].endPort",
        "numeric port",
    ),
    (
        "endPort below port",
        {"ingress": [{"ports": [{"port": 90, "endPort": 80}]}]},
        "spec.ingress[0].ports[0].endPort",
        "greater than or equal",
    ),
    (
        "endPort with named port",
        {"ingress": [{"ports": [{"port": "http", "endPort": 80}]}]},
        "spec.ingress[0].ports[0].endPort",
        "named port",
    ),
    (
        "bad port name",
        {"ingress": [{"ports": [{"port": "Bad_Name"}]}]},
        "spec.ingress[0].ports[0].port",
        "port name",
    ),
    (
        "numeric string port",
        {"ingress": [{"ports": [{"port": "80"}]}]},
        "spec.ingress[0].ports[0].port",
        "at least one letter",
    ),
    (
        "port out of range",
        {"ingress": [{"ports": [{"port": 70000}]}]},
        "spec.ingress[0].ports[0].port",
        "between 1 and 65535",
    ),
    (
        "bad protocol",
        {"ingress": [{"ports": [{"protocol": "tcp"}]}]},
        "spec.ingress[0].ports[0].protocol",
        "not a protocol",
    ),
    ("unknown spec field", {"podselector": {}}, "spec.podselector", "unknown field"),
    ("unknown rule field", {"egress": [{"from": []}]}, "spec.egress[0].from", "unknown field"),
    ("bad policy type", {"policyTypes": ["ingress"]}, "spec.policyTypes[0]", "not a policy type"),
    (
        "three policy types",
        {"policyTypes": ["Ingress", "Egress", "Ingress"]},
        "spec.policyTypes",
        "more than two",
    ),
    ("ingress not a list", {"ingress": {"from": []}}, "spec.ingress", "expected a list"),
]


@pytest.mark.parametrize(("spec", "path", "text"), [pytest.param(*c[1:], id=c[0]) for c in INVALID])
def test_invalid_policy_names_the_field(spec: dict[str, Any], path: str, text: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_network_policy(obj(spec))
    message = str(info.value)
    assert "\n" not in message
    assert f": {path}: " in message
    assert text in message


def test_metadata_namespace_required() -> None:
    o = obj({})
    del o["metadata"]["namespace"]
    with pytest.raises(ScenarioError, match=r"metadata\.namespace is required"):
        parse_network_policy(o)


def test_wrong_kind_rejected() -> None:
    o = obj({})
    o["kind"] = "Pod"
    with pytest.raises(
        ScenarioError, match=r"expected apiVersion networking\.k8s\.io/v1 and kind NetworkPolicy"
    ):
        parse_network_policy(o)


def test_several_errors_are_all_reported() -> None:
    with pytest.raises(ScenarioError) as info:
        parse_network_policy(
            obj({"policyTypes": ["x"], "ingress": [{"ports": [{"protocol": "icmp"}]}]})
        )
    assert len(str(info.value).splitlines()) == 2


def test_bare_address_is_not_a_cidr() -> None:
    """ValidateIPBlock parses with ParseCIDR, which needs a prefix length."""
    with pytest.raises(ScenarioError, match=r"'10\.0\.0\.1' is not a CIDR: write a prefix length"):
        parse_network_policy(obj({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.1"}}]}]}))
