"""Hypothesis strategies for random NetworkPolicies over the upstream e2e model."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from conformance.netpol import NetworkPolicy
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
