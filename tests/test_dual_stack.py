"""Dual-stack: a cell's address family decides which address of each end CIDRs match, in the
evaluator, the fast matrix and scenarios (offline binding, tables, rules)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from conformance.api.model import ClusterState, ContainerPort, ExternalHost, Namespace, Pod
from conformance.api.model import frozen_labels as fl
from conformance.api.types import AddressFamily, L4Protocol
from conformance.errors import ScenarioError
from conformance.reference.evaluator import AnyPolicy, Evaluator, Verdict
from conformance.reference.expectations import evaluate_scenario
from conformance.reference.matrix import compute_matrix
from conformance.scenario.load import load_scenario
from tests.helpers import netpol
from tests.strategies import anp

V4, V6 = AddressFamily.IPV4, AddressFamily.IPV6
TCP = L4Protocol.TCP
PORTS = (ContainerPort(80, TCP),)


def _ip(text: str) -> Any:
    return ipaddress.ip_address(text)


def _state() -> ClusterState:
    """x/a, x/b dual-stack (IPv4 primary), y/a IPv6 primary, @web dual-stack."""
    pods = (
        Pod("x", "a", fl({"pod": "a"}), PORTS, _ip("10.244.0.10"), extra_ips=(_ip("fd00::a"),)),
        Pod("x", "b", fl({"pod": "b"}), PORTS, _ip("10.244.0.11"), extra_ips=(_ip("fd00::b"),)),
        Pod("y", "a", fl({"pod": "a"}), PORTS, _ip("fd00::c"), extra_ips=(_ip("10.244.0.12"),)),
    )
    web = ExternalHost("web", _ip("203.0.113.5"), PORTS, (_ip("2001:db8::cb00:7105"),))
    return ClusterState((Namespace("x"), Namespace("y")), pods, (web,))


def _from(cidr: str, *except_: str) -> AnyPolicy:
    block: dict[str, Any] = {"cidr": cidr}
    if except_:
        block["except"] = list(except_)
    return netpol(
        "x",
        "in",
        {"podSelector": {"matchLabels": {"pod": "b"}}, "ingress": [{"from": [{"ipBlock": block}]}]},
    )


def _to(cidr: str) -> AnyPolicy:
    return netpol(
        "x",
        "out",
        {
            "podSelector": {"matchLabels": {"pod": "a"}},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": cidr}}]}],
        },
    )


CNP_DENY_V6 = anp(
    "d",
    1,
    {
        "subject": {"namespaces": {}},
        "egress": [{"action": "Deny", "to": [{"networks": ["fd00::/112"]}]}],
    },
)

CASES: list[tuple[str, AnyPolicy, str, str, AddressFamily, Verdict]] = [
    ("v4 block, v4 cell", _from("10.244.0.0/24"), "x/a", "x/b", V4, Verdict.ALLOW),
    ("v4 block, v6 cell", _from("10.244.0.0/24"), "x/a", "x/b", V6, Verdict.DENY),
    ("v6 block, v6 cell", _from("fd00::/64"), "x/a", "x/b", V6, Verdict.ALLOW),
    ("v6 block, v4 cell", _from("fd00::/64"), "x/a", "x/b", V4, Verdict.DENY),
    # A non-canonical CIDR (host bits set), as upstream tests write them, covers the same net.
    ("non-canonical v6", _from("fd00::1/64"), "y/a", "x/b", V6, Verdict.ALLOW),
    ("v6 except", _from("fd00::/64", "fd00::c/127"), "y/a", "x/b", V6, Verdict.DENY),
    ("v6 except, v4 cell", _from("fd00::/64", "fd00::c/127"), "y/a", "x/b", V4, Verdict.DENY),
    ("v6-primary pod, v4 cell", _from("10.244.0.12/32"), "y/a", "x/b", V4, Verdict.ALLOW),
    ("egress v6 to external", _to("2001:db8::/32"), "x/a", "@web", V6, Verdict.ALLOW),
    ("egress v6 block, v4 cell", _to("2001:db8::/32"), "x/a", "@web", V4, Verdict.DENY),
    ("admin networks v6", CNP_DENY_V6, "x/b", "x/a", V6, Verdict.DENY),
    ("admin networks v6, v4 cell", CNP_DENY_V6, "x/b", "x/a", V4, Verdict.ALLOW),
]


@pytest.mark.parametrize(
    ("policy", "source", "target", "family", "verdict"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_family_decides_the_addresses(
    policy: AnyPolicy, source: str, target: str, family: AddressFamily, verdict: Verdict
) -> None:
    state = _state()
    ev = Evaluator(state, [policy])
    decision = ev.decide(source, target, 80, TCP, family)
    assert decision.verdict is verdict, decision.reason
    matrix = compute_matrix(state, [policy], family=family)
    assert matrix.verdict(source, target, 80, TCP) is verdict
    for s, t, port, proto, v in matrix.cells():
        assert v == ev.decide(s, t, port, proto, family).verdict, (s, t)


SCENARIO = """
topology:
  ip_families: [IPv4, IPv6]
  namespaces: {x: {}, y: {}}
  ports: [{port: 80}]
  pods:
  - {name: x/a}
  - {name: y/a}
external:
- {name: web, ip: 203.0.113.5}
probe: {to: ['x/*', '@web']}
steps:
- name: x/a accepts y/a over IPv6 only
  apply:
  - apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: v6-only, namespace: x}
    spec:
      podSelector: {}
      ingress:
      - from: [{ipBlock: {cidr: "{{ ip('y/a', 'IPv6') }}/128"}}]
  expect:
    default: allow
    rules:
    - {to: x/a, verdict: deny}
    - {from: y/a, to: x/a, families: [IPv6], verdict: allow}
- name: the same as a pasted table
  expect:
    table: |
      80/TCP x/a @web
      x/a    ?   .
      y/a    X   .

      80/TCP/IPv6 x/a @web
      x/a         ?   .
      y/a         .   .
"""


def test_dual_stack_scenario(tmp_path: Path) -> None:
    path = tmp_path / "ds.yaml"
    path.write_text(SCENARIO)
    sc = load_scenario(path)
    step = sc.offline_steps[0]
    assert [str(g) for g in step.grids] == ["80/TCP", "80/TCP/IPv6"]
    state = step.state
    assert {a.version for p in state.pods for a in (p.ip, *p.extra_ips) if a} == {4, 6}
    # The external's IPv6 address defaults to its IPv4 one inside 2001:db8::/96.
    assert str(state.endpoint("@web").address(V6)) == "2001:db8::cb00:7105"
    result = evaluate_scenario(sc)
    assert all(not s.disagreements for s in result.steps)
    table = result.steps[0].table
    assert table.cell("y/a", "x/a", 80, TCP, V6).verdict is Verdict.ALLOW
    assert table.cell("y/a", "x/a", 80, TCP, V4).verdict is Verdict.DENY
    assert "80/TCP/IPv6" in table.render()


def test_probe_family_outside_the_topology_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "topology: {ip_families: [IPv4]}\nsteps:\n- name: s\n  probe: {families: [IPv6]}\n"
    )
    with pytest.raises(ScenarioError, match="not in the topology's ip_families"):
        load_scenario(path)


def test_ipv6_only_topology_gives_ipv6_primary_addresses(tmp_path: Path) -> None:
    path = tmp_path / "v6.yaml"
    path.write_text("topology: {ip_families: [IPv6]}\nsteps:\n- name: s\n")
    step = load_scenario(path).offline_steps[0]
    assert all(p.ip is not None and p.ip.version == 6 for p in step.state.pods)
    assert all(n.ip is not None and n.ip.version == 6 for n in step.state.nodes)
    assert [str(g) for g in step.grids][:1] == ["80/TCP/IPv6"]
