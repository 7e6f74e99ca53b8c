"""Dual-stack enforcement: the compiler on pods with an IPv4 and an IPv6 address.

Selector peers match every address of a pod, an ipBlock only its own family (``except`` per
family, host bits ignored), named ports resolve per address, both families' verdict maps lead to
the same chains; the scripts are valid nft and filter real IPv6 packets as they do IPv4 ones.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from conformance.cluster import netns
from conformance.cluster.compiler import (
    V6,
    Compiled,
    ContainerPort,
    PodView,
    address_key,
    cidr_span,
    compile_policies,
)
from conformance.cluster.dataplane import cleanup_namespaces
from conformance.cluster.knobs import Deviation, Knobs
from tests.cluster.conftest import unique_instance
from tests.cluster.test_compiler import NAMESPACES, PORTS, policy

IGNORED = Knobs(deviations=frozenset({Deviation.IPV6_IPBLOCK_IGNORED}))


def dual_pods() -> list[PodView]:
    """x,y,z/a,b,c with 10.244.0.(10+i) and fd00:10:244::(10+i) (hex), IPv4 primary."""
    out = []
    for i, (ns, name) in enumerate((n, p) for n in "xyz" for p in "abc"):
        v4, v6 = f"10.244.0.{10 + i}", f"fd00:10:244::{10 + i:x}"
        out.append(PodView(ns, name, v4, {"pod": name}, PORTS, i, (v4, v6)))
    return out


def addrs(ns: str, name: str) -> tuple[str, ...]:
    return next(p.ips for p in dual_pods() if p.namespace == ns and p.name == name)


def v4(ns: str, name: str) -> str:
    return addrs(ns, name)[0]


def v6(ns: str, name: str) -> str:
    return addrs(ns, name)[1]


def covers(spans: Any, address: str) -> bool:
    key = address_key(address)
    return any(lo <= key <= hi for lo, hi in spans)


def ingress_from(peer: dict[str, Any], pod: str = "a") -> dict[str, Any]:
    return {"podSelector": {"matchLabels": {"pod": pod}}, "ingress": [{"from": [peer]}]}


def test_podview_ips_default_to_the_primary_and_must_start_with_it() -> None:
    assert PodView("x", "a", "10.0.0.1", {}).ips == ("10.0.0.1",)
    assert PodView("x", "a", "", {}).ips == ()
    with pytest.raises(ValueError, match=r"ips must start with ip 10\.0\.0\.1"):
        PodView("x", "a", "10.0.0.1", {}, ips=("fd00::1", "10.0.0.1"))


def test_span_integers_keep_the_families_apart() -> None:
    assert address_key("10.0.0.1") == 0x0A000001
    assert address_key("::1") == V6 + 1
    # Host bits ignored in both families, as the API server accepts them.
    assert cidr_span("fd00::7/64") == (V6 + (0xFD << 120), V6 + (0xFD << 120) + (1 << 64) - 1)
    assert cidr_span("0.0.0.0/0")[1] + 1 < cidr_span("::/0")[0]


def test_selector_peer_matches_every_address_of_the_pod() -> None:
    c = compile_policies(dual_pods(), NAMESPACES, [policy("x", ingress_from({"podSelector": {}}))])
    peers = c.ingress[v4("x", "a")][0].peers
    for name in "abc":
        assert covers(peers, v4("x", name)) and covers(peers, v6("x", name))
    assert not covers(peers, v6("y", "a"))
    # Chains stay keyed by the primary address; the IPv6 address reaches the same chain.
    assert set(c.ingress) == {v4("x", "a")}
    assert f"ip daddr vmap {{ {v4('x', 'a')} : jump in_0 }}" in c.script
    assert f"ip6 daddr vmap {{ {v6('x', 'a')} : jump in_0 }}" in c.script


def test_ipblock_matches_its_own_family_with_except_per_family() -> None:
    spec = {
        "podSelector": {"matchLabels": {"pod": "a"}},
        "ingress": [
            {
                "from": [
                    {"ipBlock": {"cidr": "10.244.0.0/24", "except": [f"{v4('y', 'b')}/32"]}},
                    {
                        "ipBlock": {
                            "cidr": "fd00:10:244::99/64",
                            "except": [f"{v6('y', 'c')}/128"],
                        }
                    },
                ]
            }
        ],
    }
    peers = (
        compile_policies(dual_pods(), NAMESPACES, [policy("x", spec)])
        .ingress[v4("x", "a")][0]
        .peers
    )
    assert covers(peers, v4("y", "c")) and not covers(peers, v4("y", "b"))
    assert covers(peers, v6("y", "b")) and not covers(peers, v6("y", "c"))
    assert not covers(peers, "fd00:10:245::1") and not covers(peers, "10.244.1.1")


def test_ipv4_only_ipblock_leaves_the_ipv6_addresses_out() -> None:
    spec = ingress_from({"ipBlock": {"cidr": "10.0.0.0/8"}})
    c = compile_policies(dual_pods(), NAMESPACES, [policy("x", spec)])
    peers = c.ingress[v4("x", "a")][0].peers
    assert covers(peers, v4("y", "a")) and not covers(peers, v6("y", "a"))
    assert "ip6 saddr" not in c.script.split("chain forward")[0]


def test_named_port_resolves_on_each_address_of_the_destination() -> None:
    odd = PodView(
        "y",
        "odd",
        "10.244.1.1",
        {"pod": "odd"},
        (ContainerPort("web", "TCP", 8080),),
        99,
        ("10.244.1.1", "fd00:10:244::1:1"),
    )
    spec = {
        "podSelector": {"matchLabels": {"pod": "a"}},
        "policyTypes": ["Egress"],
        "egress": [{"ports": [{"port": "web"}]}],
    }
    c = compile_policies([*dual_pods(), odd], NAMESPACES, [policy("x", spec)])
    assert set(c.egress[v4("x", "a")][0].tuples) == {
        ("10.244.1.1", "TCP", 8080),
        ("fd00:10:244::1:1", "TCP", 8080),
    }
    assert "ip daddr . th dport { 10.244.1.1 . 8080 }" in c.script
    assert "ip6 daddr . th dport { fd00:10:244::1:1 . 8080 }" in c.script
    # An IPv6-only ipBlock peer resolves the port on the IPv6 address alone.
    only6 = {
        **spec,
        "egress": [{"to": [{"ipBlock": {"cidr": "fd00::/8"}}], "ports": [{"port": "web"}]}],
    }
    c6 = compile_policies([*dual_pods(), odd], NAMESPACES, [policy("x", only6)])
    assert c6.egress[v4("x", "a")][0].tuples == (("fd00:10:244::1:1", "TCP", 8080),)


def test_admin_networks_peers_work_in_both_families() -> None:
    anp = {
        "metadata": {"name": "anp"},
        "spec": {
            "priority": 1,
            "subject": {
                "pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"pod": "a"}}}
            },
            "egress": [
                {"action": "Deny", "to": [{"networks": ["10.244.0.16/30", "fd00:10:244::10/126"]}]},
                {"action": "Deny", "to": [{"nodes": {}}]},
            ],
        },
    }
    c = compile_policies(dual_pods(), NAMESPACES, [], admin_policies=[anp])
    ((allow, action),) = c.admin_egress[v4("x", "a")]
    assert action == "Deny"
    assert covers(allow.peers, "10.244.0.17") and covers(allow.peers, "fd00:10:244::13")
    assert not covers(allow.peers, "fd00:10:244::14") and not covers(allow.peers, "10.244.0.20")
    # The deviation is about NetworkPolicy ipBlocks: admin networks keep their IPv6 part.
    ignored = compile_policies(dual_pods(), NAMESPACES, [], IGNORED, admin_policies=[anp])
    assert ignored.admin_egress == c.admin_egress


def test_ipv6_ipblock_ignored_drops_ipv6_cidrs_only() -> None:
    """As kube-router#1245 and ch-k8s-lbaas#40: IPv6 ipBlocks are not applied, IPv4 ones are."""
    spec = {
        "podSelector": {"matchLabels": {"pod": "a"}},
        "ingress": [
            {"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}, {"ipBlock": {"cidr": "fd00::/8"}}]},
            {"from": [{"ipBlock": {"cidr": "2001:db8::/32"}}]},
            {"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]},
        ],
    }
    right = compile_policies(dual_pods(), NAMESPACES, [policy("x", spec)]).ingress[v4("x", "a")]
    wrong = compile_policies(dual_pods(), NAMESPACES, [policy("x", spec)], IGNORED).ingress[
        v4("x", "a")
    ]
    assert len(right) == 3 and covers(right[0].peers, v6("y", "a"))
    assert covers(right[1].peers, "2001:db8::1")
    # The IPv6-only rule matches nothing (the pod stays isolated); selectors keep both families.
    assert len(wrong) == 2
    assert covers(wrong[0].peers, v4("y", "a")) and not covers(wrong[0].peers, v6("y", "a"))
    assert covers(wrong[1].peers, v6("x", "b"))


def test_a_family_no_pod_has_compiles_as_before() -> None:
    """Single-stack clusters: an IPv6 ipBlock can match no pod connection, so no rule for it."""
    from tests.cluster.test_compiler import pods

    spec = ingress_from({"ipBlock": {"cidr": "fd00::/8"}})
    c = compile_policies(pods(), NAMESPACES, [policy("x", spec)])
    assert c.ingress[pods()[0].ip] == () and "ip6" not in c.script


# --- nft: the scripts are valid, and filter real packets ---------------------------------------


@contextlib.contextmanager
def scratch_namespaces(*names: str) -> Iterator[tuple[str, dict[str, int]]]:
    """Fresh network namespaces (their name prefix, descriptors by name), deleted afterwards."""
    instance = unique_instance("v6")
    prefix = f"npc-{instance}-"
    fds: dict[str, int] = {}
    try:
        for name in names:
            netns.run(["ip", "netns", "add", prefix + name])
            fds[name] = os.open(netns.netns_path(prefix + name), os.O_RDONLY)
        yield prefix, fds
    finally:
        for fd in fds.values():
            os.close(fd)
        cleanup_namespaces(instance)
        assert not [n for n in netns.list_netns() if n.startswith(prefix)]


def nft(fd: int, script: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    argv = ["nsenter", f"--net=/proc/self/fd/{fd}", "nft", *(["-c"] if check else []), "-f", "-"]
    return subprocess.run(
        argv, input=script, capture_output=True, text=True, check=False, pass_fds=(fd,)
    )


def every_form() -> list[Compiled]:
    """Scripts using each dual-stack form: sets of both families, tuples, admin, stateless."""
    specs: list[dict[str, Any]] = [
        {
            "podSelector": {},
            "ingress": [
                {
                    "from": [
                        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.244.0.0/16"]}},
                        {"ipBlock": {"cidr": "fd00::/8", "except": ["fd00:10:244::/112"]}},
                        {"podSelector": {"matchLabels": {"pod": "b"}}},
                    ],
                    "ports": [{"port": 80}, {"port": 81, "endPort": 90, "protocol": "UDP"}],
                }
            ],
        },
        {
            "podSelector": {"matchLabels": {"pod": "b"}},
            "egress": [
                {"ports": [{"port": "serve-80-udp", "protocol": "UDP"}]},
                {"to": [{"namespaceSelector": {}}], "ports": [{"port": "serve-81-tcp"}]},
                {"to": [{"ipBlock": {"cidr": "2001:db8::/32"}}]},
            ],
        },
    ]
    anp = {
        "metadata": {"name": "anp"},
        "spec": {
            "priority": 1,
            "subject": {"namespaces": {}},
            "ingress": [{"action": "Pass", "from": [{"networks": ["fd00::/16", "10.0.0.0/8"]}]}],
        },
    }
    pols = [policy("x", s) for s in specs]
    return [
        compile_policies(dual_pods(), NAMESPACES, pols, admin_policies=[anp]),
        compile_policies(dual_pods(), NAMESPACES, pols, Knobs(deviations=frozenset(Deviation))),
    ]


@pytest.mark.cluster  # network namespaces and nft need root
def test_dual_stack_scripts_are_valid_nftables() -> None:
    with scratch_namespaces("check") as (_, fds):
        for compiled in every_form():
            assert "ip6 saddr @" in compiled.script or "ip6 daddr" in compiled.script
            res = nft(fds["check"], compiled.script, check=True)
            assert res.returncode == 0, res.stderr + compiled.script


@pytest.mark.cluster  # network namespaces and nft need root
def test_services_dnat_to_the_ipv4_address_of_ipv6_primary_pods() -> None:
    from conformance.cluster.services import nat_chains

    web = (ContainerPort("web", "TCP", 8080),)
    world = [
        PodView("d", "v4first", "10.244.0.2", {"app": "s"}, web, 0, ("10.244.0.2", "fd00::2")),
        PodView("d", "v6first", "fd00::3", {"app": "s"}, web, 1, ("fd00::3", "10.244.0.3")),
        PodView("d", "v6only", "fd00::4", {"app": "s"}, web, 2),
    ]
    svc = {
        "metadata": {"namespace": "d", "name": "web"},
        "spec": {
            "clusterIP": "10.96.0.10",
            "selector": {"app": "s"},
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": "web"}],
        },
    }
    c = compile_policies(world, NAMESPACES, [], extra_chains=nat_chains([svc], world))
    assert "numgen random mod 2" in c.script
    assert "dnat ip to 10.244.0.2:8080" in c.script and "dnat ip to 10.244.0.3:8080" in c.script
    assert "fd00::4" not in c.script.split("chain services_dnat")[1]
    with scratch_namespaces("check") as (_, fds):
        res = nft(fds["check"], c.script, check=True)
        assert res.returncode == 0, res.stderr + c.script


GATEWAY_MAC = "ee:ee:ee:ee:ee:ee"


def plumb(node: str, pod: str, index: int, ips: tuple[str, str]) -> None:
    """A routed veth as the dataplane builds it, in both families (see docs/cluster.md)."""
    ifname = f"v{index}"
    netns.run(
        ["ip", "-n", node, "-batch", "-"],
        f"link add {ifname} address {GATEWAY_MAC} type veth peer name eth0 netns {pod}\n"
        f"link set {ifname} up\n"
        f"route add {ips[0]}/32 dev {ifname}\n"
        f"route add {ips[1]}/128 dev {ifname}\n",
    )
    netns.run(
        ["ip", "-n", pod, "-batch", "-"],
        "link set lo up\nlink set eth0 up\n"
        f"addr add {ips[0]}/32 dev eth0\n"
        f"addr add {ips[1]}/128 dev eth0 nodad\n"
        "route add 169.254.1.1 dev eth0 scope link\n"
        "route add default via 169.254.1.1 dev eth0\n"
        f"neigh add 169.254.1.1 lladdr {GATEWAY_MAC} dev eth0 nud permanent\n"
        "route add ::/0 via fe80::1 dev eth0\n"
        f"neigh add fe80::1 lladdr {GATEWAY_MAC} dev eth0 nud permanent\n",
    )


def sysctl(fd: int, key: str, value: str) -> None:
    def write() -> None:
        with open(f"/proc/sys/{key}", "w") as fh:
            fh.write(value)

    netns.call_in(fd, write)


def connects(src_fd: int, dst_fd: int, address: str, port: int) -> bool:
    """A TCP handshake from one namespace to a listener in another, within 0.3 s."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    server = netns.socket_in(dst_fd, family, socket.SOCK_STREAM)
    client = netns.socket_in(src_fd, family, socket.SOCK_STREAM)
    with server, client:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((address, port))
        server.listen(1)
        client.settimeout(0.3)
        try:
            client.connect((address, port))
        except OSError:
            return False
        return True


@pytest.mark.cluster  # network namespaces and nft need root
def test_dual_stack_rules_filter_real_packets_in_both_families() -> None:
    world = dual_pods()[:3]  # x/a, x/b, x/c
    with scratch_namespaces("node", "a", "b", "c") as (prefix, fds):
        sysctl(fds["node"], "net/ipv4/ip_forward", "1")
        sysctl(fds["node"], "net/ipv6/conf/all/forwarding", "1")
        # Without this the node's veth link-local address stays tentative for about a second
        # (duplicate address detection) and the node cannot resolve a new pod's IPv6 address.
        sysctl(fds["node"], "net/ipv6/conf/default/accept_dad", "0")
        names = {k: prefix + k for k in fds}
        netns.run(["ip", "-n", names["node"], "addr", "add", "169.254.1.1/32", "dev", "lo"])
        netns.run(["ip", "-n", names["node"], "link", "set", "lo", "up"])
        for i, pod in enumerate(world):
            plumb(names["node"], names[pod.name], i, (pod.ips[0], pod.ips[1]))

        def install(compiled: Compiled) -> None:
            res = nft(fds["node"], compiled.script)
            assert res.returncode == 0, res.stderr + compiled.script

        # Nothing installed yet: both families route between every pair.
        assert connects(fds["a"], fds["b"], v6("x", "b"), 8080)
        assert connects(fds["a"], fds["b"], v4("x", "b"), 8080)
        # b accepts a (selector: both families) and fd00::/8 except c's IPv6 address on TCP 81.
        spec = {
            "podSelector": {"matchLabels": {"pod": "b"}},
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"pod": "a"}}}]},
                {
                    "from": [{"ipBlock": {"cidr": "fd00::/8", "except": [f"{v6('x', 'a')}/128"]}}],
                    "ports": [{"port": 81}],
                },
            ],
        }
        install(compile_policies(world, NAMESPACES, [policy("x", spec)]))
        for address in addrs("x", "b"):
            assert connects(fds["a"], fds["b"], address, 8080), address
        assert not connects(fds["c"], fds["b"], v4("x", "b"), 8080)
        assert not connects(fds["c"], fds["b"], v6("x", "b"), 8080)
        assert connects(fds["c"], fds["b"], v6("x", "b"), 81)
        assert not connects(fds["c"], fds["b"], v4("x", "b"), 81)
        # Egress named port: a may reach only serve-80-tcp (port 80), in both families.
        egress = {
            "podSelector": {"matchLabels": {"pod": "a"}},
            "policyTypes": ["Egress"],
            "egress": [{"ports": [{"port": "serve-80-tcp"}]}],
        }
        install(compile_policies(world, NAMESPACES, [policy("x", egress)]))
        for address in addrs("x", "c"):
            assert connects(fds["a"], fds["c"], address, 80), address
            assert not connects(fds["a"], fds["c"], address, 81), address
        # The deviation: the IPv6 ipBlock rule no longer lets c in over IPv6.
        install(compile_policies(world, NAMESPACES, [policy("x", spec)], IGNORED))
        assert not connects(fds["c"], fds["b"], v6("x", "b"), 81)
        assert connects(fds["a"], fds["b"], v6("x", "b"), 8080)
