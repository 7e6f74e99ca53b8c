"""Parsing admin policies (ANP, BANP v1alpha1; CNP v1alpha2) with the CRDs' validation."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from conformance.api.adminpol import (
    AdminPort,
    RuleAction,
    Tier,
    parse_admin_policy,
)
from conformance.api.types import L4Protocol
from conformance.errors import ScenarioError
from conformance.scenario.load import load_scenario

V1 = "policy.networking.k8s.io/v1alpha1"
V2 = "policy.networking.k8s.io/v1alpha2"

ANP: dict[str, Any] = {
    "apiVersion": V1,
    "kind": "AdminNetworkPolicy",
    "metadata": {"name": "guard"},
    "spec": {
        "priority": 10,
        "subject": {"namespaces": {}},
        "ingress": [
            {
                "name": "deny-y",
                "action": "Deny",
                "from": [{"namespaces": {"matchLabels": {"team": "y"}}}],
                "ports": [
                    {"portNumber": {"port": 80}},
                    {"namedPort": "http"},
                    {"portRange": {"protocol": "UDP", "start": 1000, "end": 2000}},
                ],
            }
        ],
        "egress": [{"action": "Pass", "to": [{"networks": ["10.0.0.0/8", "fd00::/64"]}]}],
    },
}
CNP: dict[str, Any] = {
    "apiVersion": V2,
    "kind": "ClusterNetworkPolicy",
    "metadata": {"name": "guard"},
    "spec": {
        "tier": "Baseline",
        "priority": 3,
        "subject": {"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"a": "b"}}}},
        "egress": [
            {
                "action": "Accept",
                "to": [{"pods": {"podSelector": {}}}],
                "protocols": [
                    {"tcp": {"destinationPort": {"number": 8080}}},
                    {"sctp": {"destinationPort": {"range": {"start": 1, "end": 9}}}},
                    {"destinationNamedPort": "dns"},
                ],
            }
        ],
    },
}


def test_anp_parses() -> None:
    p = parse_admin_policy(ANP)
    assert (p.kind, p.name, p.tier, p.priority) == ("AdminNetworkPolicy", "guard", Tier.ADMIN, 10)
    rule = p.ingress[0]
    assert (rule.index, rule.name, rule.action) == (0, "deny-y", RuleAction.DENY)
    assert rule.ports == (
        AdminPort(L4Protocol.TCP, 80),
        AdminPort(None, named_port="http"),
        AdminPort(L4Protocol.UDP, 1000, 2000),
    )
    assert [str(n) for n in p.egress[0].peers[0].networks] == ["10.0.0.0/8", "fd00::/64"]
    assert p.egress[0].ports is None


def test_cnp_parses() -> None:
    p = parse_admin_policy(CNP)
    assert (p.tier, p.priority) == (Tier.BASELINE, 3)
    rule = p.egress[0]
    assert rule.action is RuleAction.ACCEPT and rule.action.allows
    assert rule.ports == (
        AdminPort(L4Protocol.TCP, 8080),
        AdminPort(L4Protocol.SCTP, 1, 9),
        AdminPort(None, named_port="dns"),
    )
    pods = rule.peers[0].pods
    assert pods is not None and pods.namespace_selector.is_empty


def test_banp_parses_without_priority() -> None:
    obj = copy.deepcopy(ANP)
    obj["kind"] = "BaselineAdminNetworkPolicy"
    obj["metadata"]["name"] = "default"
    del obj["spec"]["priority"]
    del obj["spec"]["egress"]
    p = parse_admin_policy(obj)
    assert (p.tier, p.priority) == (Tier.BASELINE, None)


def _edit(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``base`` with the dotted ``path`` set to ``value`` (``...`` deletes)."""
    obj = copy.deepcopy(base)
    cur: Any = obj
    keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
    for k in keys[:-1]:
        cur = cur[k]
    if value is ...:
        del cur[keys[-1]]
    else:
        cur[keys[-1]] = value
    return obj


# (case id, base object, dotted path to edit, new value, error path, message fragment)
INVALID: list[tuple[str, dict[str, Any], str, Any, str, str]] = [
    ("priority above 1000", ANP, "spec.priority", 1001, "spec.priority", "between 0 and 1000"),
    ("priority below 0", ANP, "spec.priority", -1, "spec.priority", "between 0 and 1000"),
    ("priority missing", ANP, "spec.priority", ..., "spec", "spec.priority is required"),
    (
        "subject with both fields",
        ANP,
        "spec.subject",
        {"namespaces": {}, "pods": {"namespaceSelector": {}, "podSelector": {}}},
        "spec.subject",
        "exactly one of",
    ),
    ("subject empty", ANP, "spec.subject", {}, "spec.subject", "none is"),
    (
        "v1alpha1 pods needs namespaceSelector",
        ANP,
        "spec.subject",
        {"pods": {"podSelector": {}}},
        "spec.subject.pods",
        "namespaceSelector is required",
    ),
    (
        "unknown action",
        ANP,
        "spec.ingress.0.action",
        "Drop",
        "spec.ingress[0].action",
        "accepted: Allow, Deny, Pass",
    ),
    (
        "accept in v1alpha1",
        ANP,
        "spec.ingress.0.action",
        "Accept",
        "spec.ingress[0].action",
        "v1alpha2",
    ),
    ("from empty", ANP, "spec.ingress.0.from", [], "spec.ingress[0].from", "at least 1"),
    ("from missing", ANP, "spec.ingress.0.from", ..., "spec.ingress[0]", "from is required"),
    ("ports empty", ANP, "spec.ingress.0.ports", [], "spec.ingress[0].ports", "at least 1"),
    (
        "port with two fields",
        ANP,
        "spec.ingress.0.ports.0",
        {"portNumber": {"port": 80}, "namedPort": "x"},
        "spec.ingress[0].ports[0]",
        "exactly one of",
    ),
    (
        "port 0",
        ANP,
        "spec.ingress.0.ports.0.portNumber.port",
        0,
        "spec.ingress[0].ports[0].portNumber.port",
        "between 1 and 65535",
    ),
    (
        "protocol ICMP",
        ANP,
        "spec.ingress.0.ports.0.portNumber.protocol",
        "ICMP",
        "spec.ingress[0].ports[0].portNumber.protocol",
        "accepted: TCP, UDP, SCTP",
    ),
    (
        "rule name too long",
        ANP,
        "spec.ingress.0.name",
        "n" * 101,
        "spec.ingress[0].name",
        "at most 100",
    ),
    (
        "too many rules",
        ANP,
        "spec.egress",
        [{"action": "Pass", "to": [{"networks": ["10.0.0.0/8"]}]}] * 101,
        "spec.egress",
        "at most 100",
    ),
    (
        "networks in ingress",
        ANP,
        "spec.ingress.0.from.0",
        {"networks": ["10.0.0.0/8"]},
        "spec.ingress[0].from[0].networks",
        "unknown field",
    ),
    (
        "bad cidr",
        ANP,
        "spec.egress.0.to.0.networks.0",
        "10.0.0.300/8",
        "spec.egress[0].to[0].networks[0]",
        "not a valid CIDR",
    ),
    (
        "cidr without prefix",
        ANP,
        "spec.egress.0.to.0.networks.0",
        "10.0.0.1",
        "spec.egress[0].to[0].networks[0]",
        "prefix length",
    ),
    (
        "duplicate network",
        ANP,
        "spec.egress.0.to.0.networks",
        ["10.0.0.0/8", "10.0.0.0/8"],
        "spec.egress[0].to[0].networks[1]",
        "duplicate",
    ),
    (
        "too many networks",
        ANP,
        "spec.egress.0.to.0.networks",
        [f"10.0.{i}.0/24" for i in range(26)],
        "spec.egress[0].to[0].networks",
        "at most 25",
    ),
    (
        "named port with networks peer",
        ANP,
        "spec.egress.0.ports",
        [{"namedPort": "http"}],
        "spec.egress[0]",
        "cannot be combined with named ports",
    ),
    (
        "bad domain name",
        ANP,
        "spec.egress.0.to.0",
        {"domainNames": ["exa mple.com"]},
        "spec.egress[0].to[0].domainNames[0]",
        "not a domain name",
    ),
    ("bad name", ANP, "metadata.name", "Guard", "metadata.name", "DNS-1123"),
    ("cnp tier missing", CNP, "spec.tier", ..., "spec", "spec.tier is required"),
    ("cnp tier unknown", CNP, "spec.tier", "Developer", "spec.tier", "accepted: Admin, Baseline"),
    (
        "cnp allow is spelled accept",
        CNP,
        "spec.egress.0.action",
        "Allow",
        "spec.egress[0].action",
        "says Accept",
    ),
    (
        "cnp ports is v1alpha1",
        CNP,
        "spec.egress.0.ports",
        [],
        "spec.egress[0].ports",
        "unknown field",
    ),
    (
        "cnp tcp without port",
        CNP,
        "spec.egress.0.protocols.0.tcp",
        {},
        "spec.egress[0].protocols[0].tcp",
        "needs a destinationPort",
    ),
    (
        "cnp port number and range",
        CNP,
        "spec.egress.0.protocols.0.tcp.destinationPort",
        {"number": 1, "range": {"start": 1, "end": 2}},
        "spec.egress[0].protocols[0].tcp.destinationPort",
        "exactly one of",
    ),
    (
        "cnp range reversed",
        CNP,
        "spec.egress.0.protocols.1.sctp.destinationPort.range.start",
        10,
        "spec.egress[0].protocols[1].sctp.destinationPort.range",
        "less than end",
    ),
    (
        "cnp 26 peers",
        CNP,
        "spec.egress.0.to",
        [{"namespaces": {}}] * 26,
        "spec.egress[0].to",
        "at most 25",
    ),
    ("cnp priority 1001", CNP, "spec.priority", 1001, "spec.priority", "between 0 and 1000"),
    ("wrong api version", CNP, "apiVersion", V1, "", "expected one of"),
]


@pytest.mark.parametrize(
    ("base", "path", "value", "where", "message"),
    [pytest.param(*c[1:], id=c[0]) for c in INVALID],
)
def test_invalid(base: dict[str, Any], path: str, value: Any, where: str, message: str) -> None:
    with pytest.raises(ScenarioError) as exc:
        parse_admin_policy(_edit(base, path, value))
    lines = str(exc.value).splitlines()
    assert any(
        f": {where}: " in f"{line} "
        or line.endswith(f": {where}")
        or (not where and message in line)
        for line in lines
    ), lines
    assert any(message in line for line in lines), lines


def test_banp_must_be_named_default() -> None:
    obj = _edit(ANP, "kind", "BaselineAdminNetworkPolicy")
    del obj["spec"]["priority"]
    del obj["spec"]["egress"]
    with pytest.raises(ScenarioError, match=r"metadata.name: .*must be named 'default'"):
        parse_admin_policy(obj)


def test_banp_has_no_pass() -> None:
    obj = _edit(ANP, "kind", "BaselineAdminNetworkPolicy")
    obj["metadata"]["name"] = "default"
    del obj["spec"]["priority"]
    with pytest.raises(ScenarioError, match=r"spec.egress\[0\].action: .*accepted: Allow, Deny"):
        parse_admin_policy(obj)


def test_banp_has_no_priority() -> None:
    obj = _edit(ANP, "kind", "BaselineAdminNetworkPolicy")
    obj["metadata"]["name"] = "default"
    del obj["spec"]["egress"]
    with pytest.raises(ScenarioError, match=r"spec.priority: unknown field"):
        parse_admin_policy(obj)


SCENARIO = """\
requires: [{feature}]
steps:
  - name: one
    apply:
      - apiVersion: policy.networking.k8s.io/v1alpha1
        kind: AdminNetworkPolicy
        metadata: {{name: guard}}
        spec:
          priority: 10
          subject: {{namespaces: {{}}}}
          ingress:
            - action: Deny
              from: [{{namespaces: {{}}}}]
              ports:
                - portRange: {{start: 80, end: 90, protocol: ICMP}}
    expect: {{default: deny}}
"""


def test_scenario_error_has_file_line_and_path(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(SCENARIO.format(feature="AdminNetworkPolicy"))
    with pytest.raises(ScenarioError) as exc:
        load_scenario(f)
    assert f"{f}:15: steps[0].apply[0].spec.ingress[0].ports[0].portRange.protocol: 'ICMP'" in str(
        exc.value
    )


def test_scenario_must_require_the_admin_feature(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(SCENARIO.format(feature="Egress").replace(", protocol: ICMP}", "}"))
    with pytest.raises(ScenarioError, match="add AdminNetworkPolicy to the scenario's `requires:`"):
        load_scenario(f)


def test_scenario_binds_admin_policies(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(
        SCENARIO.format(feature="AdminNetworkPolicy")
        .replace(", protocol: ICMP}", "}")
        .replace("expect: {default: deny}", "delete: []")
    )
    steps = load_scenario(f).bind()
    assert [type(p).__name__ for p in steps[0].policies] == ["AdminPolicy"]
    assert steps[0].objects[0]["kind"] == "AdminNetworkPolicy"


def test_delete_admin_policy_by_kind_and_name(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    text = (
        SCENARIO.format(feature="AdminNetworkPolicy")
        .replace(", protocol: ICMP}", "}")
        .replace("expect: {default: deny}", "delete: []")
    )
    text += "  - name: two\n    delete: [AdminNetworkPolicy/guard]\n"
    f.write_text(text)
    steps = load_scenario(f).bind()
    assert len(steps[0].policies) == 1 and steps[1].policies == ()


def test_unknown_kind_lists_accepted_kinds(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(
        SCENARIO.format(feature="AdminNetworkPolicy").replace(
            "kind: AdminNetworkPolicy", "kind: GlobalNetworkPolicy"
        )
    )
    with pytest.raises(
        ScenarioError,
        match="accepted: NetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy",
    ):
        load_scenario(f)


def test_v1alpha1_range_with_start_not_below_end_is_stored_as_the_api_server_does() -> None:
    # The v1alpha1 CRD documents start < end but has no rule for it (v1alpha2 has a CEL rule).
    obj = _edit(ANP, "spec.ingress.0.ports.2.portRange.end", 1000)
    port = parse_admin_policy(obj).ingress[0].ports
    assert port is not None and port[2].undefined_range
    with pytest.raises(ScenarioError, match="less than end port"):
        parse_admin_policy(
            _edit(CNP, "spec.egress.0.protocols.1.sctp.destinationPort.range.end", 1)
        )


def test_explicit_null_counts_as_absent_in_one_of_fields() -> None:
    obj = _edit(ANP, "spec.subject", {"namespaces": {}, "pods": None})
    assert parse_admin_policy(obj).subject.namespaces is not None
    with pytest.raises(ScenarioError, match="none is"):
        parse_admin_policy(_edit(ANP, "spec.subject", {"namespaces": None}))
