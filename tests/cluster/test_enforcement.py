"""Enforcement on real packets: policies created through the official client, probed with exec."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cluster.conftest import Kube, agnhost_pod

pytestmark = pytest.mark.cluster


def test_default_deny_ingress_blocks_pods_but_not_egress(kube: Kube) -> None:
    kube.namespace("deny")
    ips = kube.pods("deny", [agnhost_pod("a"), agnhost_pod("b")])
    assert kube.connect("deny", "a", f"{ips['b']}:80") == (0, "")
    kube.policy("deny", "deny-all", {"podSelector": {}})
    code, err = kube.connect("deny", "a", f"{ips['b']}:80")
    assert (code, err) == (1, "TIMEOUT\n")
    code, err = kube.connect("deny", "a", f"{ips['b']}:80", "udp")
    assert code == 1 and err.startswith("TIMEOUT: read udp ")
    assert kube.connect("deny", "a", "203.0.113.10:80") == (0, "")
    kube.net.delete_namespaced_network_policy("deny-all", "deny")
    assert kube.connect("deny", "a", f"{ips['b']}:80") == (0, "")


def test_allow_from_namespace(kube: Kube) -> None:
    kube.namespace("ns-srv")
    kube.namespace("ns-ok", {"team": "ok"})
    kube.namespace("ns-no", {"team": "no"})
    srv = kube.pods("ns-srv", [agnhost_pod("srv")])["srv"]
    kube.pods("ns-ok", [agnhost_pod("c")])
    kube.pods("ns-no", [agnhost_pod("c")])
    kube.policy(
        "ns-srv",
        "from-team-ok",
        {
            "podSelector": {},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "ok"}}}]}],
        },
    )
    assert kube.connect("ns-ok", "c", f"{srv}:80") == (0, "")
    assert kube.connect("ns-no", "c", f"{srv}:80") == (1, "TIMEOUT\n")
    # Relabel the namespace: enforcement follows.
    kube.core.patch_namespace("ns-no", {"metadata": {"labels": {"team": "ok"}}})
    assert kube.connect("ns-no", "c", f"{srv}:80") == (0, "")


def test_ipblock_with_except_matches_pod_ips_and_externals(kube: Kube) -> None:
    kube.namespace("ipb")
    ips = kube.pods("ipb", [agnhost_pod("srv"), agnhost_pod("c1"), agnhost_pod("c2")])
    kube.policy(
        "ipb",
        "cidr-except",
        {
            "podSelector": {"matchLabels": {"pod": "srv"}},
            # Host bits set: accepted by the API and meaning the masked network.
            "ingress": [
                {"from": [{"ipBlock": {"cidr": "10.244.7.7/16", "except": [f"{ips['c2']}/32"]}}]}
            ],
        },
    )
    assert kube.connect("ipb", "c1", f"{ips['srv']}:80") == (0, "")
    assert kube.connect("ipb", "c2", f"{ips['srv']}:80") == (1, "TIMEOUT\n")
    kube.policy(
        "ipb",
        "egress-except",
        {
            "podSelector": {"matchLabels": {"pod": "c1"}},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["203.0.113.0/24"]}}]}],
        },
    )
    assert kube.connect("ipb", "c1", "198.51.100.20:80") == (0, "")
    assert kube.connect("ipb", "c1", "203.0.113.10:80") == (1, "TIMEOUT\n")


def test_named_ports_ingress_and_egress(kube: Kube) -> None:
    kube.namespace("named")
    ips = kube.pods("named", [agnhost_pod("srv"), agnhost_pod("c"), agnhost_pod("open")])
    kube.policy(
        "named",
        "ingress-named",
        {
            "podSelector": {"matchLabels": {"pod": "srv"}},
            "ingress": [{"ports": [{"port": "serve-81-tcp"}]}],
        },
    )
    assert kube.connect("named", "c", f"{ips['srv']}:81") == (0, "")
    assert kube.connect("named", "c", f"{ips['srv']}:80") == (1, "TIMEOUT\n")
    kube.policy(
        "named",
        "egress-named",
        {
            "podSelector": {"matchLabels": {"pod": "c"}},
            "policyTypes": ["Egress"],
            "egress": [
                {"ports": [{"port": "serve-81-tcp"}, {"port": "serve-80-udp", "protocol": "UDP"}]}
            ],
        },
    )
    assert kube.connect("named", "c", f"{ips['open']}:81") == (0, "")
    assert kube.connect("named", "c", f"{ips['open']}:80") == (1, "TIMEOUT\n")
    assert kube.connect("named", "c", f"{ips['open']}:80", "udp") == (0, "")
    assert kube.connect("named", "c", f"{ips['open']}:81", "udp")[1].startswith("TIMEOUT")
    # A named port never matches a host that is not a pod.
    assert kube.connect("named", "c", "203.0.113.10:81") == (1, "TIMEOUT\n")


def test_egress_port_range_and_default_tcp(kube: Kube) -> None:
    kube.namespace("ports")
    ips = kube.pods("ports", [agnhost_pod("c")])
    kube.policy(
        "ports",
        "range",
        {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"ports": [{"port": 81, "endPort": 90}]}],
        },
    )
    stored = kube.net.read_namespaced_network_policy("range", "ports")
    assert stored.spec.egress[0].ports[0].protocol == "TCP"
    assert kube.connect("ports", "c", "203.0.113.10:81") == (0, "")
    assert kube.connect("ports", "c", "203.0.113.10:80") == (1, "TIMEOUT\n")
    assert kube.connect("ports", "c", "203.0.113.10:81", "udp")[1].startswith("TIMEOUT")
    del ips


def test_pod_relabel_is_enforced(kube: Kube) -> None:
    kube.namespace("relabel")
    ips = kube.pods("relabel", [agnhost_pod("srv"), agnhost_pod("c")])
    kube.policy(
        "relabel",
        "from-role",
        {
            "podSelector": {"matchLabels": {"pod": "srv"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}],
        },
    )
    assert kube.connect("relabel", "c", f"{ips['srv']}:80") == (1, "TIMEOUT\n")
    kube.core.patch_namespaced_pod("c", "relabel", {"metadata": {"labels": {"role": "client"}}})
    assert kube.connect("relabel", "c", f"{ips['srv']}:80") == (0, "")


def test_replies_to_allowed_connections_pass(kube: Kube) -> None:
    """Stateful: the server is egress-isolated with nothing allowed, yet answers its clients."""
    kube.namespace("state")
    ips = kube.pods("state", [agnhost_pod("srv"), agnhost_pod("c")])
    kube.policy(
        "state",
        "srv-no-egress",
        {"podSelector": {"matchLabels": {"pod": "srv"}}, "policyTypes": ["Egress"]},
    )
    assert kube.connect("state", "c", f"{ips['srv']}:80") == (0, "")
    assert kube.connect("state", "c", f"{ips['srv']}:80", "udp") == (0, "")
    assert kube.connect("state", "srv", f"{ips['c']}:80") == (1, "TIMEOUT\n")


def test_cluster_ip_service_reaches_pod_and_policy_applies_after_dnat(kube: Kube) -> None:
    kube.namespace("svc")
    ips = kube.pods("svc", [agnhost_pod("srv", {"app": "srv"}), agnhost_pod("c")])
    svc = kube.core.create_namespaced_service(
        "svc",
        {
            "metadata": {"name": "s-srv"},
            "spec": {
                "selector": {"app": "srv"},
                "ports": [
                    {"name": "tcp-80", "port": 8080, "targetPort": 80},
                    {"name": "udp-80", "port": 80, "protocol": "UDP", "targetPort": "serve-80-udp"},
                ],
            },
        },
    )
    vip = svc.spec.cluster_ip
    assert vip.startswith("10.96.")
    assert kube.connect("svc", "c", f"{vip}:8080") == (0, "")
    assert kube.connect("svc", "c", f"{vip}:80", "udp") == (0, "")
    assert kube.connect("svc", "srv", f"{vip}:8080") == (0, "")  # hairpin to itself
    kube.policy("svc", "deny-srv", {"podSelector": {"matchLabels": {"app": "srv"}}})
    assert kube.connect("svc", "c", f"{vip}:8080") == (1, "TIMEOUT\n")
    del ips
    empty = kube.core.create_namespaced_service(
        "svc",
        {
            "metadata": {"name": "none"},
            "spec": {"selector": {"app": "nobody"}, "ports": [{"port": 80}]},
        },
    )
    assert kube.connect("svc", "c", f"{empty.spec.cluster_ip}:80") == (1, "REFUSED\n")


def test_service_with_two_endpoints_balances(kube: Kube) -> None:
    kube.namespace("svc2")
    kube.pods(
        "svc2",
        [
            agnhost_pod("s1", {"app": "s", "pod": "s1"}),
            agnhost_pod("s2", {"app": "s"}),
            agnhost_pod("c"),
        ],
    )
    svc = kube.core.create_namespaced_service(
        "svc2",
        {
            "metadata": {"name": "s"},
            "spec": {"selector": {"app": "s"}, "ports": [{"port": 80, "protocol": "UDP"}]},
        },
    )
    vip = svc.spec.cluster_ip
    # The UDP reply is the serving pod's hostname: both endpoints must answer over a few tries.
    script = f"for i in $(seq 40); do (/agnhost connect {vip}:80 --protocol=udp --timeout=1s || echo FAIL) & done; wait"
    code, out, err = kube.exec("svc2", "c", ["sh", "-c", script])
    assert code == 0 and "FAIL" not in out, err
    kube.policy("svc2", "deny-s1", {"podSelector": {"matchLabels": {"pod": "s1"}}})
    code, out, _ = kube.exec("svc2", "c", ["sh", "-c", script])
    # Now about half of the tries land on the isolated s1 and time out.
    assert 0 < out.count("FAIL") < 40


def _ns(name: str) -> dict[str, Any]:
    return {"matchLabels": {"kubernetes.io/metadata.name": name}}


def _anp(kube: Kube, name: str, priority: int, spec: dict[str, Any]) -> None:
    body = {
        "apiVersion": "policy.networking.k8s.io/v1alpha1",
        "kind": "AdminNetworkPolicy",
        "metadata": {"name": name},
        "spec": {"priority": priority, **spec},
    }
    kube.custom.create_cluster_custom_object(
        "policy.networking.k8s.io", "v1alpha1", "adminnetworkpolicies", body
    )


def test_admin_network_policy_tiers(kube: Kube) -> None:
    for ns in ("adm-a", "adm-b"):
        kube.namespace(ns)
    a = kube.pods("adm-a", [agnhost_pod("a1")])
    b = kube.pods("adm-b", [agnhost_pod("b1")])
    kube.policy("adm-b", "allow-all", {"podSelector": {}, "ingress": [{}]})
    _anp(
        kube,
        "deny-a-to-b",
        10,
        {
            "subject": {"namespaces": _ns("adm-b")},
            "ingress": [{"name": "d", "action": "Deny", "from": [{"namespaces": _ns("adm-a")}]}],
        },
    )
    # Deny in the admin tier beats the NetworkPolicy that allows everything.
    assert kube.connect("adm-a", "a1", f"{b['b1']}:80") == (1, "TIMEOUT\n")
    _anp(
        kube,
        "allow-80",
        5,
        {
            "subject": {"namespaces": _ns("adm-b")},
            "ingress": [
                {
                    "name": "a",
                    "action": "Allow",
                    "from": [{"namespaces": _ns("adm-a")}],
                    "ports": [{"portNumber": {"protocol": "TCP", "port": 80}}],
                }
            ],
        },
    )
    assert kube.connect("adm-a", "a1", f"{b['b1']}:80") == (0, "")
    assert kube.connect("adm-a", "a1", f"{b['b1']}:81") == (1, "TIMEOUT\n")
    _anp(
        kube,
        "pass-81",
        1,
        {
            "subject": {
                "pods": {
                    "namespaceSelector": _ns("adm-b"),
                    "podSelector": {"matchLabels": {"pod": "b1"}},
                }
            },
            "ingress": [
                {
                    "name": "p",
                    "action": "Pass",
                    "from": [{"namespaces": {}}],
                    "ports": [{"namedPort": "serve-81-tcp"}],
                }
            ],
        },
    )
    # Pass skips the remaining admin rules: the NetworkPolicy tier (allow all) decides.
    assert kube.connect("adm-a", "a1", f"{b['b1']}:81") == (0, "")
    _anp(
        kube,
        "egress-deny-web",
        20,
        {
            "subject": {"namespaces": _ns("adm-a")},
            "egress": [{"name": "w", "action": "Deny", "to": [{"networks": ["203.0.113.0/24"]}]}],
        },
    )
    assert kube.connect("adm-a", "a1", "203.0.113.10:80") == (1, "TIMEOUT\n")
    assert kube.connect("adm-a", "a1", "198.51.100.20:80") == (0, "")
    del a


def test_baseline_admin_network_policy_applies_only_without_networkpolicy(kube: Kube) -> None:
    for ns in ("base-s", "base-c"):
        kube.namespace(ns)
    s = kube.pods("base-s", [agnhost_pod("s1"), agnhost_pod("s2")])
    kube.pods("base-c", [agnhost_pod("c")])
    banp = {
        "apiVersion": "policy.networking.k8s.io/v1alpha1",
        "kind": "BaselineAdminNetworkPolicy",
        "metadata": {"name": "default"},
        "spec": {
            "subject": {"namespaces": _ns("base-s")},
            "ingress": [{"name": "deny-all", "action": "Deny", "from": [{"namespaces": {}}]}],
        },
    }
    kube.custom.create_cluster_custom_object(
        "policy.networking.k8s.io", "v1alpha1", "baselineadminnetworkpolicies", banp
    )
    assert kube.connect("base-c", "c", f"{s['s1']}:80") == (1, "TIMEOUT\n")
    # A NetworkPolicy selecting s1 replaces the baseline for s1 only.
    kube.policy(
        "base-s",
        "allow-c",
        {
            "podSelector": {"matchLabels": {"pod": "s1"}},
            "ingress": [{"from": [{"namespaceSelector": _ns("base-c")}]}],
        },
    )
    assert kube.connect("base-c", "c", f"{s['s1']}:80") == (0, "")
    assert kube.connect("base-c", "c", f"{s['s2']}:80") == (1, "TIMEOUT\n")


def _cnp(kube: Kube, name: str, spec: dict[str, Any]) -> None:
    body = {
        "apiVersion": "policy.networking.k8s.io/v1alpha2",
        "kind": "ClusterNetworkPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }
    kube.custom.create_cluster_custom_object(
        "policy.networking.k8s.io", "v1alpha2", "clusternetworkpolicies", body
    )


def test_cluster_network_policy_v1alpha2_tiers(kube: Kube) -> None:
    for ns in ("cnp-s", "cnp-c"):
        kube.namespace(ns)
    s = kube.pods("cnp-s", [agnhost_pod("s1"), agnhost_pod("s2")])
    kube.pods("cnp-c", [agnhost_pod("c")])
    _cnp(
        kube,
        "admin-udp",
        {
            "tier": "Admin",
            "priority": 4,
            "subject": {"namespaces": _ns("cnp-s")},
            "ingress": [
                {
                    "name": "accept-udp-80",
                    "action": "Accept",
                    "from": [{"namespaces": _ns("cnp-c")}],
                    "protocols": [{"udp": {"destinationPort": {"number": 80}}}],
                },
                {
                    "name": "pass-named",
                    "action": "Pass",
                    "from": [{"namespaces": _ns("cnp-c")}],
                    "protocols": [{"destinationNamedPort": "serve-81-tcp"}],
                },
                {"name": "deny-rest", "action": "Deny", "from": [{"namespaces": _ns("cnp-c")}]},
            ],
        },
    )
    assert kube.connect("cnp-c", "c", f"{s['s1']}:80", "udp") == (0, "")
    assert kube.connect("cnp-c", "c", f"{s['s1']}:80") == (1, "TIMEOUT\n")
    # Pass on 81/TCP goes to the NetworkPolicy tier (none here), then the baseline tier.
    assert kube.connect("cnp-c", "c", f"{s['s1']}:81") == (0, "")
    _cnp(
        kube,
        "baseline",
        {
            "tier": "Baseline",
            "priority": 1,
            "subject": {
                "pods": {
                    "namespaceSelector": _ns("cnp-s"),
                    "podSelector": {"matchLabels": {"pod": "s1"}},
                }
            },
            "ingress": [{"name": "deny-all", "action": "Deny", "from": [{"namespaces": {}}]}],
        },
    )
    assert kube.connect("cnp-c", "c", f"{s['s1']}:81") == (1, "TIMEOUT\n")
    assert kube.connect("cnp-c", "c", f"{s['s2']}:81") == (0, "")
