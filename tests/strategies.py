"""Hypothesis strategies for random NetworkPolicies and admin policies over the upstream e2e model."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from conformance.api.adminpol import AdminPolicy, parse_admin_policy
from conformance.api.netpol import NetworkPolicy
from tests.helpers import netpol

NAMESPACES = ("x", "y", "z")
PODS = ("a", "b", "c")

label_selectors = st.one_of(
    st.just({}),
    st.builds(lambda p: {"matchLabels": {"pod": p}}, st.sampled_from(PODS)),
    st.builds(
        lambda op, vals: {"matchExpressions": [{"key": "pod", "operator": op, "values": vals}]},
        st.sampled_from(["In", "NotIn"]),
        st.lists(st.sampled_from(PODS), min_size=1, max_size=2, unique=True),
    ),
    st.builds(
        lambda op: {"matchExpressions": [{"key": "pod", "operator": op}]},
        st.sampled_from(["Exists", "DoesNotExist"]),
    ),
)
namespace_selectors = st.one_of(
    st.just({}),
    st.builds(
        lambda n: {"matchLabels": {"kubernetes.io/metadata.name": n}}, st.sampled_from(NAMESPACES)
    ),
)
ip_blocks = st.sampled_from(
    [
        {"cidr": "10.244.0.0/24"},
        {"cidr": "10.244.0.0/28"},
        {"cidr": "10.244.0.0/24", "except": ["10.244.0.12/30"]},
        {"cidr": "10.244.0.13/32"},
        {"cidr": "203.0.113.0/24"},
        {"cidr": "fd00::/120"},
        {"cidr": "fd00::/64", "except": ["fd00::c/126"]},
    ]
)
peers = st.one_of(
    st.builds(lambda s: {"podSelector": s}, label_selectors),
    st.builds(lambda s: {"namespaceSelector": s}, namespace_selectors),
    st.builds(
        lambda p, n: {"podSelector": p, "namespaceSelector": n},
        label_selectors,
        namespace_selectors,
    ),
    st.builds(lambda b: {"ipBlock": b}, ip_blocks),
)
ports = st.one_of(
    st.builds(
        lambda p, proto: {"port": p, "protocol": proto},
        st.sampled_from([80, 81]),
        st.sampled_from(["TCP", "UDP"]),
    ),
    st.builds(lambda p: {"port": p}, st.sampled_from(["serve-80-tcp", "serve-81-udp"])),
    st.just({"port": 80, "endPort": 81}),
    st.just({"protocol": "UDP"}),
)


def rules(peer_key: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda ps, pts: {k: v for k, v in ((peer_key, ps), ("ports", pts)) if v is not None},
        st.one_of(st.none(), st.lists(peers, max_size=2)),
        st.one_of(st.none(), st.lists(ports, max_size=2)),
    )


specs = st.builds(
    lambda sel, ing, eg, types: {
        k: v
        for k, v in (("podSelector", sel), ("ingress", ing), ("egress", eg), ("policyTypes", types))
        if v is not None
    },
    label_selectors,
    st.one_of(st.none(), st.lists(rules("from"), max_size=2)),
    st.one_of(st.none(), st.lists(rules("to"), max_size=2)),
    st.one_of(st.none(), st.sampled_from([["Ingress"], ["Egress"], ["Ingress", "Egress"]])),
)


@st.composite
def policies(draw: st.DrawFn, max_size: int = 4) -> list[NetworkPolicy]:
    specs_ = draw(st.lists(specs, max_size=max_size))
    namespaces = draw(
        st.lists(st.sampled_from(NAMESPACES), min_size=len(specs_), max_size=len(specs_))
    )
    return [
        netpol(ns, f"p{i}", spec)
        for i, (ns, spec) in enumerate(zip(namespaces, specs_, strict=True))
    ]


# --- admin policy tiers (AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy) ---


def anp(name: str, priority: int, spec: dict[str, Any]) -> AdminPolicy:
    """A v1alpha1 AdminNetworkPolicy; ``spec`` without ``priority``."""
    return parse_admin_policy(
        {
            "apiVersion": "policy.networking.k8s.io/v1alpha1",
            "kind": "AdminNetworkPolicy",
            "metadata": {"name": name},
            "spec": {"priority": priority, **spec},
        }
    )


def banp(spec: dict[str, Any]) -> AdminPolicy:
    """The v1alpha1 BaselineAdminNetworkPolicy (always named ``default``)."""
    return parse_admin_policy(
        {
            "apiVersion": "policy.networking.k8s.io/v1alpha1",
            "kind": "BaselineAdminNetworkPolicy",
            "metadata": {"name": "default"},
            "spec": spec,
        }
    )


def cnp(name: str, tier: str, priority: int, spec: dict[str, Any]) -> AdminPolicy:
    """A v1alpha2 ClusterNetworkPolicy."""
    return parse_admin_policy(
        {
            "apiVersion": "policy.networking.k8s.io/v1alpha2",
            "kind": "ClusterNetworkPolicy",
            "metadata": {"name": name},
            "spec": {"tier": tier, "priority": priority, **spec},
        }
    )


def ns_is(name: str) -> dict[str, Any]:
    return {"matchLabels": {"kubernetes.io/metadata.name": name}}


admin_peers = st.one_of(
    st.builds(lambda n: {"namespaces": n}, namespace_selectors),
    st.builds(
        lambda n, p: {"pods": {"namespaceSelector": n, "podSelector": p}},
        namespace_selectors,
        label_selectors,
    ),
)
admin_egress_peers = st.one_of(
    admin_peers,
    st.builds(
        lambda c: {"networks": [c]},
        st.sampled_from(
            ["10.244.0.0/24", "10.244.0.12/30", "10.244.0.13/32", "0.0.0.0/0", "fd00::8/126"]
        ),
    ),
)
anp_ports = st.one_of(
    st.builds(
        lambda p, proto: {"portNumber": {"port": p, "protocol": proto}},
        st.sampled_from([80, 81]),
        st.sampled_from(["TCP", "UDP"]),
    ),
    st.builds(lambda n: {"namedPort": n}, st.sampled_from(["serve-80-tcp", "serve-81-udp"])),
    st.just({"portRange": {"start": 80, "end": 81, "protocol": "UDP"}}),
)
admin_subjects = st.one_of(
    st.builds(lambda n: {"namespaces": n}, namespace_selectors),
    st.builds(
        lambda n, p: {"pods": {"namespaceSelector": n, "podSelector": p}},
        namespace_selectors,
        label_selectors,
    ),
)


anp_numeric_ports = st.one_of(
    st.builds(
        lambda p, proto: {"portNumber": {"port": p, "protocol": proto}},
        st.sampled_from([80, 81]),
        st.sampled_from(["TCP", "UDP"]),
    ),
    st.just({"portRange": {"start": 80, "end": 81, "protocol": "UDP"}}),
)


def anp_rules(
    peer_key: str,
    peers_: st.SearchStrategy[dict[str, Any]],
    actions: list[str],
    ports_: st.SearchStrategy[dict[str, Any]] = anp_ports,
) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda a, ps, pts: {
            "action": a,
            peer_key: ps,
            **({"ports": pts} if pts is not None else {}),
        },
        st.sampled_from(actions),
        st.lists(peers_, min_size=1, max_size=2),
        st.one_of(st.none(), st.lists(ports_, min_size=1, max_size=2)),
    )


def anp_specs(actions: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda subj, ing, eg: {"subject": subj, "ingress": ing, "egress": eg},
        admin_subjects,
        st.lists(anp_rules("from", admin_peers, actions), max_size=2),
        # Named ports cannot be combined with networks peers (egress rule CEL rule).
        st.lists(anp_rules("to", admin_egress_peers, actions, anp_numeric_ports), max_size=2),
    )


@st.composite
def admin_policies(draw: st.DrawFn, max_size: int = 3) -> list[AdminPolicy]:
    """ANPs with distinct priorities (no undefined ties), optionally a BANP."""
    specs_ = draw(st.lists(anp_specs(["Allow", "Deny", "Pass"]), max_size=max_size))
    prios = draw(
        st.lists(st.integers(0, 1000), min_size=len(specs_), max_size=len(specs_), unique=True)
    )
    out = [
        anp(f"anp{i}", prio, spec) for i, (prio, spec) in enumerate(zip(prios, specs_, strict=True))
    ]
    if draw(st.booleans()):
        out.append(banp(draw(anp_specs(["Allow", "Deny"]))))
    return out


cnp_protocols = st.one_of(
    st.builds(
        lambda proto, p: {proto: {"destinationPort": {"number": p}}},
        st.sampled_from(["tcp", "udp"]),
        st.sampled_from([80, 81]),
    ),
    st.just({"udp": {"destinationPort": {"range": {"start": 80, "end": 81}}}}),
    st.builds(
        lambda n: {"destinationNamedPort": n}, st.sampled_from(["serve-80-tcp", "serve-81-udp"])
    ),
)
cnp_numeric_protocols = st.one_of(
    st.builds(
        lambda proto, p: {proto: {"destinationPort": {"number": p}}},
        st.sampled_from(["tcp", "udp"]),
        st.sampled_from([80, 81]),
    ),
    st.just({"tcp": {"destinationPort": {"range": {"start": 79, "end": 81}}}}),
)


def cnp_rules(
    peer_key: str,
    peers_: st.SearchStrategy[dict[str, Any]],
    protocols_: st.SearchStrategy[dict[str, Any]],
) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda a, ps, pts: {
            "action": a,
            peer_key: ps,
            **({"protocols": pts} if pts is not None else {}),
        },
        st.sampled_from(["Accept", "Deny", "Pass"]),
        st.lists(peers_, min_size=1, max_size=2),
        st.one_of(st.none(), st.lists(protocols_, min_size=1, max_size=2)),
    )


cnp_specs = st.builds(
    lambda subj, ing, eg: {"subject": subj, "ingress": ing, "egress": eg},
    admin_subjects,
    st.lists(cnp_rules("from", admin_peers, cnp_protocols), max_size=2),
    # Named ports cannot be combined with networks peers (egress rule CEL rule).
    st.lists(cnp_rules("to", admin_egress_peers, cnp_numeric_protocols), max_size=2),
)


@st.composite
def cluster_policies(draw: st.DrawFn, max_size: int = 3) -> list[AdminPolicy]:
    """ClusterNetworkPolicies in both tiers; priorities may repeat (ties are part of the model)."""
    specs_ = draw(st.lists(cnp_specs, max_size=max_size))
    return [
        cnp(
            f"cnp{i}",
            draw(st.sampled_from(["Admin", "Baseline"])),
            draw(st.integers(0, 3)),
            spec,
        )
        for i, spec in enumerate(specs_)
    ]
