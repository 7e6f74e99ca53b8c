"""Admin policy kinds of policy.networking.k8s.io in compiler terms.

v1alpha1 AdminNetworkPolicy / BaselineAdminNetworkPolicy (``ports``: portNumber, namedPort,
portRange; actions Allow, Deny, Pass) and v1alpha2 ClusterNetworkPolicy (``tier`` Admin or
Baseline; ``protocols``: tcp/udp/sctp with destinationPort number or range, destinationNamedPort;
actions Accept, Deny, Pass).

Why: the policy compiler already turns NetworkPolicy peers and ports into packet matches; admin
policies differ in scope (cluster-wide subjects), in actions (Allow, Deny, Pass) and in ordering,
not in how a peer or a port matches. This module rewrites their subjects, peers and ports into
the NetworkPolicy forms the compiler understands; the tiering lives in the compiler.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from conformance.cluster.selectors import matches

ANY_PROTOCOL = "*"
"""Protocol of a translated ``namedPort``: it matches the named container port's own protocol."""


def subject_peer(subject: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The pods a ``subject`` selects, as a NetworkPolicy peer (namespace selector always set)."""
    if not subject:
        return None
    if subject.get("namespaces") is not None:
        return {"namespaceSelector": subject["namespaces"]}
    pods = subject.get("pods")
    if pods is not None:
        return {
            "namespaceSelector": pods.get("namespaceSelector") or {},
            "podSelector": pods.get("podSelector") or {},
        }
    return None


NodeLabels = Sequence[tuple[Mapping[str, str], Sequence[str]]]
"""Each node's labels and addresses (for ``nodes`` peers)."""


def _peer(peer: Mapping[str, Any], nodes: NodeLabels = ()) -> list[dict[str, Any]]:
    if peer.get("namespaces") is not None:
        return [{"namespaceSelector": peer["namespaces"]}]
    if peer.get("pods") is not None:
        return [subject_peer({"pods": peer["pods"]}) or {}]
    if peer.get("networks") is not None:
        return [{"ipBlock": {"cidr": str(cidr)}} for cidr in peer["networks"]]
    if peer.get("nodes") is not None:
        # Egress to nodes: "selects a set of nodes in the cluster (based on the node's labels)";
        # packets to a node carry one of its addresses.
        return [
            {"ipBlock": {"cidr": f"{a}/{128 if ':' in a else 32}"}}
            for labels, addresses in nodes
            if matches(peer["nodes"], labels)
            for a in addresses
        ]
    # Domain names match nothing here.
    return []


def _port(port: Mapping[str, Any]) -> dict[str, Any] | None:
    if port.get("portNumber") is not None:
        p = port["portNumber"]
        return {"protocol": p.get("protocol") or "TCP", "port": int(p.get("port", 0))}
    if port.get("namedPort") is not None:
        return {"protocol": ANY_PROTOCOL, "port": str(port["namedPort"])}
    if port.get("portRange") is not None:
        r = port["portRange"]
        return {
            "protocol": r.get("protocol") or "TCP",
            "port": int(r["start"]),
            "endPort": int(r["end"]),
        }
    return None


def _protocols(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One v1alpha2 ``protocols`` entry as NetworkPolicy ports."""
    if entry.get("destinationNamedPort") is not None:
        return [{"protocol": ANY_PROTOCOL, "port": str(entry["destinationNamedPort"])}]
    out: list[dict[str, Any]] = []
    for key, proto in (("tcp", "TCP"), ("udp", "UDP"), ("sctp", "SCTP")):
        if key not in entry:
            continue
        dest = (entry.get(key) or {}).get("destinationPort")
        if not dest:
            out.append({"protocol": proto})
        elif dest.get("number") is not None:
            out.append({"protocol": proto, "port": int(dest["number"])})
        elif dest.get("range") is not None:
            r = dest["range"]
            out.append({"protocol": proto, "port": int(r["start"]), "endPort": int(r["end"])})
    return out


ACTIONS = {"Allow": "Allow", "Accept": "Allow", "Deny": "Deny", "Pass": "Pass"}
"""Rule actions of both API versions, normalised (v1alpha2's Accept is v1alpha1's Allow)."""


def translate_rule(
    rule: Mapping[str, Any], peer_key: str, nodes: NodeLabels = ()
) -> dict[str, Any] | None:
    """An ingress (``peer_key`` ``from``) or egress (``to``) rule as a NetworkPolicy rule.

    None when the rule can match nothing here (only domain peers, or node peers no node meets).
    """
    peers = [p for peer in rule.get(peer_key) or [] for p in _peer(peer, nodes)]
    if not peers:
        return None
    out: dict[str, Any] = {peer_key: peers}
    if rule.get("ports") is not None:
        ports = [p for p in (_port(x) for x in rule["ports"]) if p is not None]
        if not ports:
            return None
        out["ports"] = ports
    elif rule.get("protocols") is not None:
        ports = [p for entry in rule["protocols"] for p in _protocols(entry)]
        if not ports:
            return None
        out["ports"] = ports
    return out
