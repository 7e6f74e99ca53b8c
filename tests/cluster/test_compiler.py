"""The policy compiler's semantics on plain data (no namespaces needed), and its nft syntax."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from typing import Any

import pytest

from conformance.cluster.compiler import ContainerPort, NamespaceView, PodView, compile_policies
from conformance.cluster.knobs import Deviation, Knobs
from conformance.cluster.validation import default_network_policy

PORTS = tuple(
    ContainerPort(f"serve-{p}-{proto.lower()}", proto, p)
    for p in (80, 81)
    for proto in ("TCP", "UDP")
)


def pods() -> list[PodView]:
    out = []
    for i, (ns, name) in enumerate((n, p) for n in "xyz" for p in "abc"):
        out.append(PodView(ns, name, f"10.244.0.{10 + i}", {"pod": name}, PORTS, i))
    return out


NAMESPACES = [NamespaceView(n, {"ns": n, "kubernetes.io/metadata.name": n}) for n in "xyz"]


def policy(ns: str, spec: dict[str, Any]) -> dict[str, Any]:
    obj = {"metadata": {"namespace": ns, "name": "p"}, "spec": spec}
    default_network_policy(obj)
    return obj


def ip(ns: str, name: str) -> str:
    return next(p.ip for p in pods() if p.namespace == ns and p.name == name)


def span(cidr: str) -> tuple[int, int]:
    net = ipaddress.ip_network(cidr)
    return int(net.network_address), int(net.broadcast_address)


def covers(spans: Any, address: str) -> bool:
    value = int(ipaddress.IPv4Address(address))
    return any(lo <= value <= hi for lo, hi in spans)


def test_default_policy_types_isolate_ingress_only() -> None:
    c = compile_policies(pods(), NAMESPACES, [policy("x", {"podSelector": {}})])
    assert set(c.ingress) == {ip("x", n) for n in "abc"} and c.egress == {}
    assert all(v == () for v in c.ingress.values())


def test_egress_rules_imply_egress_type() -> None:
    c = compile_policies(
        pods(),
        NAMESPACES,
        [policy("x", {"podSelector": {"matchLabels": {"pod": "a"}}, "egress": [{}]})],
    )
    assert set(c.ingress) == {ip("x", "a")} and set(c.egress) == {ip("x", "a")}
    allow = c.egress[ip("x", "a")][0]
    assert allow.peers is None and allow.ports is None


def test_pod_and_namespace_selector_together_is_an_and() -> None:
    spec = {
        "podSelector": {},
        "ingress": [
            {
                "from": [
                    {
                        "namespaceSelector": {"matchLabels": {"ns": "y"}},
                        "podSelector": {"matchLabels": {"pod": "b"}},
                    }
                ]
            }
        ],
    }
    c = compile_policies(pods(), NAMESPACES, [policy("x", spec)])
    assert c.ingress[ip("x", "a")][0].peers == (span(ip("y", "b")),)


def test_ipblock_except_is_subtracted_and_can_be_ignored() -> None:
    spec = {
        "podSelector": {},
        "ingress": [
            {"from": [{"ipBlock": {"cidr": "10.244.0.9/24", "except": ["10.244.0.16/28"]}}]}
        ],
    }
    c = compile_policies(pods(), NAMESPACES, [policy("x", spec)])
    nets = c.ingress[ip("x", "a")][0].peers
    assert nets is not None
    assert covers(nets, "10.244.0.10") and covers(nets, "10.244.0.15")
    assert not covers(nets, "10.244.0.16") and not covers(nets, "10.244.0.31")
    assert covers(nets, "10.244.0.32") and covers(nets, "10.244.0.255")
    assert not covers(nets, "10.244.1.0") and not covers(nets, "10.243.255.255")
    c2 = compile_policies(
        pods(),
        NAMESPACES,
        [policy("x", spec)],
        Knobs(deviations=frozenset({Deviation.IGNORE_EXCEPT})),
    )
    assert c2.ingress[ip("x", "a")][0].peers == (span("10.244.0.0/24"),)


def test_named_port_resolves_on_destination_with_protocol() -> None:
    odd = PodView(
        "y", "odd", "10.244.1.1", {"pod": "odd"}, (ContainerPort("web", "TCP", 8080),), 99
    )
    world = [*pods(), odd]
    spec = {
        "podSelector": {"matchLabels": {"pod": "a"}},
        "policyTypes": ["Egress"],
        "egress": [{"ports": [{"port": "web"}]}],
    }
    c = compile_policies(world, NAMESPACES, [policy("x", spec)])
    assert c.egress[ip("x", "a")][0].tuples == (("10.244.1.1", "TCP", 8080),)
    udp = {
        "podSelector": {"matchLabels": {"pod": "a"}},
        "policyTypes": ["Egress"],
        "egress": [{"ports": [{"port": "web", "protocol": "UDP"}]}],
    }
    assert compile_policies(world, NAMESPACES, [policy("x", udp)]).egress[ip("x", "a")] == ()
    wrong = Knobs(deviations=frozenset({Deviation.NAMED_PORT_WRONG_POD}))
    assert (
        compile_policies(world, NAMESPACES, [policy("x", spec)], wrong).egress[ip("x", "a")] == ()
    )


def test_endport_range_and_ignore_endport() -> None:
    spec = {
        "podSelector": {},
        "ingress": [
            {"ports": [{"port": 1000, "endPort": 2000}, {"port": 1500, "protocol": "UDP"}]}
        ],
    }
    c = compile_policies(pods(), NAMESPACES, [policy("x", spec)])
    ports = c.ingress[ip("x", "a")][0].ports
    assert ports is not None
    assert {(m.protocol, m.ranges) for m in ports} == {
        ("TCP", ((1000, 2000),)),
        ("UDP", ((1500, 1500),)),
    }
    ign = compile_policies(
        pods(),
        NAMESPACES,
        [policy("x", spec)],
        Knobs(deviations=frozenset({Deviation.IGNORE_ENDPORT})),
    )
    ports2 = ign.ingress[ip("x", "a")][0].ports
    assert ports2 is not None and ("TCP", ((1000, 1000),)) in {
        (m.protocol, m.ranges) for m in ports2
    }


def test_first_pod_only_picks_the_oldest() -> None:
    c = compile_policies(
        pods(),
        NAMESPACES,
        [policy("y", {"podSelector": {}})],
        Knobs(deviations=frozenset({Deviation.FIRST_POD_ONLY})),
    )
    assert set(c.ingress) == {ip("y", "a")}


def test_rule_matching_nothing_is_dropped_not_widened() -> None:
    spec = {
        "podSelector": {},
        "ingress": [
            {"from": [{"podSelector": {"matchLabels": {"pod": "nobody"}}}]},
            {"from": [{"ipBlock": {"cidr": "fd00::/8"}}]},
        ],
    }
    c = compile_policies(pods(), NAMESPACES, [policy("x", spec)])
    assert c.ingress[ip("x", "a")] == ()


@pytest.mark.cluster  # nft -c needs root (CAP_NET_ADMIN)
@pytest.mark.skipif(shutil.which("nft") is None, reason="nft is not installed")
def test_script_is_valid_nftables() -> None:
    specs: list[dict[str, Any]] = [
        {
            "podSelector": {},
            "ingress": [
                {
                    "from": [
                        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.244.0.0/16"]}},
                        {"podSelector": {}},
                    ],
                    "ports": [
                        {"port": 80},
                        {"port": 81, "endPort": 90, "protocol": "UDP"},
                        {"protocol": "SCTP"},
                    ],
                }
            ],
        },
        {
            "podSelector": {"matchLabels": {"pod": "b"}},
            "egress": [
                {"ports": [{"port": "serve-80-udp", "protocol": "UDP"}]},
                {"to": [{"namespaceSelector": {}}]},
            ],
        },
    ]
    c = compile_policies(
        pods(),
        NAMESPACES,
        [policy("x", s) for s in specs],
        Knobs(deviations=frozenset({Deviation.UDP_UNFILTERED})),
    )
    res = subprocess.run(
        ["nft", "-c", "-f", "-"], input=c.script, capture_output=True, text=True, check=False
    )
    if "Operation not permitted" in res.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN")
    assert res.returncode == 0, res.stderr + c.script


def test_named_port_wrong_pod_resolves_ingress_on_sources() -> None:
    """As aws-network-policy-agent#149: ingress named ports resolved on the source pods."""
    odd = PodView(
        "y", "odd", "10.244.1.1", {"pod": "odd"}, (ContainerPort("web", "TCP", 8080),), 99
    )
    world = [*pods(), odd]
    ing = {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"ports": [{"port": "web"}]}]}
    assert compile_policies(world, NAMESPACES, [policy("x", ing)]).ingress[ip("x", "a")] == ()
    wrong = Knobs(deviations=frozenset({Deviation.NAMED_PORT_WRONG_POD}))
    bad = compile_policies(world, NAMESPACES, [policy("x", ing)], wrong)
    assert bad.ingress[ip("x", "a")][0].tuples == (("10.244.1.1", "TCP", 8080),)
    assert "ip saddr . th dport { 10.244.1.1 . 8080 }" in bad.script


@pytest.mark.cluster  # nft -c needs root (CAP_NET_ADMIN)
@pytest.mark.skipif(shutil.which("nft") is None, reason="nft is not installed")
def test_service_nat_script_is_valid_nftables() -> None:
    from conformance.cluster.services import nat_chains

    ports = (ContainerPort("web", "TCP", 8080), ContainerPort("dns", "UDP", 53))
    world = [PodView("d", f"s{i}", f"10.244.0.{i + 2}", {"app": "s"}, ports, i) for i in range(3)]
    svcs = [
        {
            "metadata": {"namespace": "d", "name": "many"},
            "spec": {
                "clusterIP": "10.96.0.10",
                "selector": {"app": "s"},
                "ports": [
                    {"port": 80, "protocol": "TCP", "targetPort": "web"},
                    {"port": 53, "protocol": "UDP", "targetPort": 53},
                ],
            },
        },
        {
            "metadata": {"namespace": "d", "name": "none"},
            "spec": {
                "clusterIP": "10.96.0.11",
                "selector": {"app": "x"},
                "ports": [{"port": 80, "protocol": "TCP"}],
            },
        },
    ]
    c = compile_policies(world, [], [], extra_chains=nat_chains(svcs, world))
    assert (
        "numgen random mod 3" in c.script
        and "10.96.0.11 meta l4proto tcp th dport 80 reject" in c.script
    )
    res = subprocess.run(
        ["nft", "-c", "-f", "-"], input=c.script, capture_output=True, text=True, check=False
    )
    if "Operation not permitted" in res.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN")
    assert res.returncode == 0, res.stderr + c.script


def test_admin_tiers_are_ordered_and_valid_nftables() -> None:
    anps = [
        {
            "metadata": {"name": "late"},
            "spec": {
                "priority": 50,
                "subject": {"namespaces": {}},
                "ingress": [{"action": "Deny", "from": [{"namespaces": {}}]}],
                "egress": [
                    {
                        "action": "Pass",
                        "to": [{"networks": ["10.0.0.0/8"]}],
                        "ports": [{"portRange": {"protocol": "UDP", "start": 1, "end": 9}}],
                    }
                ],
            },
        },
        {
            "metadata": {"name": "early"},
            "spec": {
                "priority": 3,
                "subject": {
                    "pods": {
                        "namespaceSelector": {"matchLabels": {"ns": "x"}},
                        "podSelector": {"matchLabels": {"pod": "a"}},
                    }
                },
                "ingress": [
                    {
                        "action": "Allow",
                        "from": [
                            {
                                "pods": {
                                    "namespaceSelector": {},
                                    "podSelector": {"matchLabels": {"pod": "b"}},
                                }
                            }
                        ],
                        "ports": [{"namedPort": "serve-80-udp"}],
                    }
                ],
                "egress": [{"action": "Deny", "to": [{"nodes": {}}]}],
            },
        },
    ]
    banp = [
        {
            "metadata": {"name": "default"},
            "spec": {
                "subject": {"namespaces": {}},
                "egress": [{"action": "Deny", "to": [{"namespaces": {}}]}],
            },
        }
    ]
    c = compile_policies(
        pods(), NAMESPACES, [policy("y", {"podSelector": {}})], admin_policies=anps, baseline=banp
    )
    rules = c.admin_ingress[ip("x", "a")]
    assert [act for _, act in rules] == ["Allow", "Deny"]  # priority 3 before 50
    ports = rules[0][0].ports
    assert ports is not None and [(m.protocol, m.ranges) for m in ports] == [("UDP", ((80, 80),))]
    assert ip("x", "b") not in c.admin_ingress or [a for _, a in c.admin_ingress[ip("x", "b")]] == [
        "Deny"
    ]
    assert [act for _, act in c.admin_egress[ip("x", "a")]] == ["Pass"]  # nodes match nothing here
    assert len(c.baseline_egress) == 9
    if shutil.which("nft") is None:
        return
    res = subprocess.run(
        ["nft", "-c", "-f", "-"], input=c.script, capture_output=True, text=True, check=False
    )
    if "Operation not permitted" in res.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN")
    assert res.returncode == 0, res.stderr + c.script


def test_address_spans_render_as_address_cidr_or_range() -> None:
    from conformance.cluster.compiler import _span_text

    assert _span_text(*span("10.1.2.3/32")) == "10.1.2.3"
    assert _span_text(*span("10.0.0.0/8")) == "10.0.0.0/8"
    assert _span_text(*span("0.0.0.0/0")) == "0.0.0.0/0"
    lo, hi = span("10.0.0.0/8")
    assert _span_text(lo + 1, hi) == "10.0.0.1-10.255.255.255"


def test_allows_with_equal_peers_become_one_rule_and_peer_lists_one_set() -> None:
    """Policies that allow the same peers on different ports: one rule with both port ranges."""
    selector = {"matchExpressions": [{"key": "ns", "operator": "In", "values": ["x", "z"]}]}
    peer = {"from": [{"namespaceSelector": selector}]}
    specs = [
        {"podSelector": {}, "ingress": [{**peer, "ports": [{"port": 80}]}]},
        {"podSelector": {}, "ingress": [{**peer, "ports": [{"port": 81, "endPort": 90}]}]},
        {"podSelector": {}, "ingress": [{**peer, "ports": [{"port": 5, "protocol": "UDP"}]}]},
    ]
    objs = [policy("x", s) for s in specs]
    for i, obj in enumerate(objs):
        obj["metadata"]["name"] = f"p{i}"
    c = compile_policies(pods(), NAMESPACES, objs)
    assert len(c.ingress[ip("x", "a")]) == 3  # the compiled model keeps every rule
    rules = [line.strip() for line in c.script.splitlines() if line.strip().endswith("accept")]
    rules = [r for r in rules if r.startswith("meta l4proto")]
    assert sorted(rules) == [
        "meta l4proto tcp th dport 80-90 ip saddr @peers_0 accept",
        "meta l4proto udp th dport 5 ip saddr @peers_0 accept",
    ]
    assert c.script.count("set peers_") == 1
    x, z = ip("x", "a"), ip("z", "a")
    assert f"elements = {{ {x}-{ip('x', 'c')}, {z}-{ip('z', 'c')} }}" in c.script
    only_y = {
        "podSelector": {},
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}],
    }
    alone = compile_policies(pods(), NAMESPACES, [policy("x", only_y)])
    assert "set peers_" not in alone.script  # one span is written inline
    assert f"ip saddr {ip('y', 'a')}-{ip('y', 'c')} accept" in alone.script


def test_admin_rules_join_only_neighbours_with_the_same_action() -> None:
    """Allow 80, Deny 81, Allow 82 to the same peers must stay three ordered rules."""
    from conformance.cluster.compiler import Allow, PortMatch, _merged_in_order

    peers = (span("10.0.0.0/8"),)

    def rule(port: int) -> Allow:
        return Allow(peers, (PortMatch("TCP", ((port, port),)),))

    mixed = [(rule(80), "Allow"), (rule(81), "Deny"), (rule(82), "Allow")]
    assert _merged_in_order(mixed) == mixed
    joined = _merged_in_order([(rule(80), "Deny"), (rule(81), "Deny"), (rule(82), "Allow")])
    assert joined == [
        (Allow(peers, (PortMatch("TCP", ((80, 81),)),)), "Deny"),
        (rule(82), "Allow"),
    ]
    other = Allow((span("10.0.0.1/32"),), (PortMatch("TCP", ((80, 80),)),))
    assert len(_merged_in_order([(rule(80), "Deny"), (other, "Deny")])) == 2
