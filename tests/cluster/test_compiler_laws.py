"""Law: the compiled rules decide every pod-to-pod cell as the reference evaluator does, in each
address family, on random dual-stack states (IPv4- and IPv6-primary pods) and random policies.

The compiled ``Allow`` structures are read as the nftables script uses them (first-match admin
tiers, the NetworkPolicy union, baseline; egress of the source, then ingress of the destination);
that the script says the same is what the nft tests of test_compiler_dualstack check.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from conformance.api.adminpol import parse_admin_policy
from conformance.api.model import ClusterState, Namespace, Pod
from conformance.api.netpol import parse_network_policy
from conformance.api.types import AddressFamily, L4Protocol
from conformance.cluster import compiler
from conformance.cluster.compiler import Allow, Compiled, NamespaceView, PodView, address_key
from conformance.cluster.knobs import Deviation, Knobs
from conformance.cluster.validation import default_network_policy
from conformance.reference.evaluator import Evaluator, Verdict
from conformance.scenario.load import load_scenario
from tests.strategies import NAMESPACES, anp_specs, cnp_specs, specs
from tests.test_matrix import states

ROOT = Path(__file__).resolve().parents[2]
PORTS = [(p, proto) for p in (80, 81, 82) for proto in (L4Protocol.TCP, L4Protocol.UDP)]


@st.composite
def network_policies(draw: st.DrawFn) -> list[dict[str, Any]]:
    drawn = draw(st.lists(specs, max_size=4))
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": f"p{i}", "namespace": draw(st.sampled_from(NAMESPACES))},
            "spec": spec,
        }
        for i, spec in enumerate(drawn)
    ]


@st.composite
def admin_objects(draw: st.DrawFn) -> list[dict[str, Any]]:
    """v1alpha1 ANPs (distinct priorities) and maybe a BANP, or v1alpha2 CNPs in both tiers."""
    if draw(st.booleans()):
        drawn = draw(st.lists(anp_specs(["Allow", "Deny", "Pass"]), max_size=2))
        prios = draw(
            st.lists(st.integers(0, 99), min_size=len(drawn), max_size=len(drawn), unique=True)
        )
        out = [
            {
                "apiVersion": "policy.networking.k8s.io/v1alpha1",
                "kind": "AdminNetworkPolicy",
                "metadata": {"name": f"anp{i}"},
                "spec": {"priority": prio, **spec},
            }
            for i, (prio, spec) in enumerate(zip(prios, drawn, strict=True))
        ]
        if draw(st.booleans()):
            out.append(
                {
                    "apiVersion": "policy.networking.k8s.io/v1alpha1",
                    "kind": "BaselineAdminNetworkPolicy",
                    "metadata": {"name": "default"},
                    "spec": draw(anp_specs(["Allow", "Deny"])),
                }
            )
        return out
    return [
        {
            "apiVersion": "policy.networking.k8s.io/v1alpha2",
            "kind": "ClusterNetworkPolicy",
            "metadata": {"name": f"cnp{i}"},
            "spec": {
                "tier": draw(st.sampled_from(["Admin", "Baseline"])),
                "priority": draw(st.integers(0, 3)),
                **spec,
            },
        }
        for i, spec in enumerate(draw(st.lists(cnp_specs, max_size=2)))
    ]


def views(state: ClusterState) -> list[PodView]:
    """The pods enforcement sees: pod-network pods with an address, every address, primary first."""
    out = []
    for i, pod in enumerate(state.pods):
        if pod.ip is None or pod.host_network:
            continue
        ports = tuple(
            compiler.ContainerPort(p.name or "", str(p.protocol), p.port) for p in pod.ports
        )
        ips = (str(pod.ip), *(str(a) for a in pod.extra_ips))
        out.append(PodView(pod.namespace, pod.name, str(pod.ip), dict(pod.labels), ports, i, ips))
    return out


def matches(allow: Allow, peer: str, port: int, protocol: str) -> bool:
    key = address_key(peer)
    if allow.peers is not None and not any(lo <= key <= hi for lo, hi in allow.peers):
        return False
    if allow.ports is None:
        return True
    for m in allow.ports:
        if m.protocol == protocol and (
            not m.ranges or any(lo <= port <= hi for lo, hi in m.ranges)
        ):
            return True
    return (peer, protocol, port) in allow.tuples


def side(c: Compiled, ingress: bool, pod: str, peer: str, port: int, protocol: str) -> bool:
    """Whether one side allows: admin tiers (first match), NetworkPolicy, baseline, default."""
    admin = c.admin_ingress if ingress else c.admin_egress
    for allow, action in admin.get(pod, ()):
        if matches(allow, peer, port, protocol):
            if action == "Pass":
                break
            return action == "Allow"
    allows = (c.ingress if ingress else c.egress).get(pod)
    if allows is not None:
        return any(matches(a, peer, port, protocol) for a in allows)
    for allow, action in (c.baseline_ingress if ingress else c.baseline_egress).get(pod, ()):
        if matches(allow, peer, port, protocol):
            return action != "Deny"
    return True


def address(pod: Pod, family: AddressFamily) -> str | None:
    found = pod.address(family)
    return None if found is None else str(found)


def disagreements(
    state: ClusterState,
    netpols: list[dict[str, Any]],
    admins: list[dict[str, Any]],
    knobs: Knobs = compiler.DEFAULT_KNOBS,
) -> list[tuple[str, str, int, L4Protocol, AddressFamily, str]]:
    """Cells (source, target, port, protocol, family, evaluator's reason) decided differently."""
    parsed = [parse_network_policy(o) for o in netpols] + [parse_admin_policy(o) for o in admins]
    stored = []
    for obj in netpols:
        copy = {**obj, "spec": dict(obj["spec"])}
        default_network_policy(copy)
        stored.append(copy)
    admin = [
        o
        for o in admins
        if o["kind"] != "BaselineAdminNetworkPolicy" and o["spec"].get("tier", "Admin") == "Admin"
    ]
    baseline = [o for o in admins if o not in admin]
    pods = views(state)
    namespaces = [NamespaceView(n.name, dict(n.effective_labels())) for n in state.namespaces]
    c = compiler.compile_policies(
        pods, namespaces, stored, knobs, admin_policies=admin, baseline=baseline
    )
    ev = Evaluator(state, parsed)
    known = {f"{p.namespace}/{p.name}" for p in pods}
    out = []
    for src in state.pods:
        for dst in state.pods:
            if src.key == dst.key or src.key not in known or dst.key not in known:
                continue
            for family in (AddressFamily.IPV4, AddressFamily.IPV6):
                a, b = address(src, family), address(dst, family)
                if a is None or b is None:
                    continue
                for port, proto in PORTS:
                    compiled = side(c, False, str(src.ip), b, port, str(proto)) and side(
                        c, True, str(dst.ip), a, port, str(proto)
                    )
                    decision = ev.decide(src.key, dst.key, port, proto, family)
                    if decision.verdict is Verdict.IMPLEMENTATION_DEFINED:
                        continue  # e.g. tied admin priorities: the API allows either answer
                    if compiled != (decision.verdict is Verdict.ALLOW):
                        out.append((src.key, dst.key, port, proto, family, decision.reason))
    return out


def unique_addresses(state: ClusterState) -> bool:
    every = [a for p in views(state) for a in p.ips]
    return len(every) == len(set(every))  # a cluster never gives two pods one address


@settings(max_examples=150, deadline=None)
@given(states(), network_policies(), admin_objects())
def test_compiled_rules_agree_with_the_evaluator_in_each_family(
    state: ClusterState, netpols: list[dict[str, Any]], admins: list[dict[str, Any]]
) -> None:
    assume(unique_addresses(state))
    assert disagreements(state, netpols, admins) == []


def test_the_check_sees_an_ipv6_only_difference() -> None:
    """The check above can fail on IPv6 cells alone: with ipv6-ipblock-ignored it reports
    exactly the IPv6 cells an IPv6 ipBlock allowed."""
    ip = ipaddress.ip_address
    pods = (
        Pod("x", "a", ip=ip("10.244.0.8"), extra_ips=(ip("fd00::8"),)),
        Pod("x", "b", ip=ip("fd00::9"), extra_ips=(ip("10.244.0.9"),)),
    )
    state = ClusterState(tuple(Namespace(n) for n in NAMESPACES), pods)
    pol = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": "x"},
        "spec": {
            "podSelector": {},
            "ingress": [{"from": [{"ipBlock": {"cidr": "fd00::/120"}}]}],
        },
    }
    assert disagreements(state, [pol], []) == []
    wrong = disagreements(
        state, [pol], [], Knobs(deviations=frozenset({Deviation.IPV6_IPBLOCK_IGNORED}))
    )
    assert {(s, t, f) for s, t, _, _, f, _ in wrong} == {
        ("x/a", "x/b", AddressFamily.IPV6),
        ("x/b", "x/a", AddressFamily.IPV6),
    }
    assert len(wrong) == 2 * len(PORTS)


def test_dual_stack_ip_block_scenario_compiles_to_its_verdicts_and_catches_the_knob() -> None:
    """Offline, each step of the shipped scenario compiles to the evaluator's verdicts; with
    ipv6-ipblock-ignored, step 2 (y's pods let in by an IPv6 range) differs, over IPv6 only."""
    scenario = load_scenario(ROOT / "scenarios" / "examples" / "dual-stack-ip-block.yaml")
    ignored = Knobs(deviations=frozenset({Deviation.IPV6_IPBLOCK_IGNORED}))
    caught = {}
    for step in scenario.bind():
        objects = [dict(o) for o in step.objects]
        assert disagreements(step.state, objects, []) == [], step.name
        wrong = disagreements(step.state, objects, [], ignored)
        assert {f for *_, f, _ in wrong} <= {AddressFamily.IPV6}
        caught[step.index] = {(s, t) for s, t, *_ in wrong}
    assert caught[1] == {("y/a", "x/a")}
