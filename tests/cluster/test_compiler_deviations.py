"""The deviation knobs added for selftest change the compiled policy exactly as documented
(docs/cluster.md), and only for the kind of policy they name; every script stays valid nft."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from conformance.cluster.compiler import Compiled, compile_policies
from conformance.cluster.knobs import Deviation, Knobs
from tests.cluster.test_compiler import NAMESPACES, covers, ip, pods, policy


def knob(deviation: Deviation) -> Knobs:
    return Knobs(deviations=frozenset({deviation}))


def named(ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    obj = policy(ns, spec)
    obj["metadata"]["name"] = name
    return obj


def nft_ok(compiled: Compiled) -> None:
    if shutil.which("nft") is None:
        return
    res = subprocess.run(
        ["nft", "-c", "-f", "-"], input=compiled.script, capture_output=True, text=True, check=False
    )
    if "Operation not permitted" in res.stderr:
        return
    assert res.returncode == 0, res.stderr + compiled.script


def test_ignore_protocol_opens_the_numbers_on_every_protocol() -> None:
    spec = {"podSelector": {}, "ingress": [{"ports": [{"port": 80, "protocol": "UDP"}]}]}
    right = compile_policies(pods(), NAMESPACES, [policy("x", spec)])
    ports = right.ingress[ip("x", "a")][0].ports
    assert ports is not None and {m.protocol for m in ports} == {"UDP"}
    wrong = compile_policies(
        pods(), NAMESPACES, [policy("x", spec)], knob(Deviation.IGNORE_PROTOCOL)
    )
    ports = wrong.ingress[ip("x", "a")][0].ports
    assert ports is not None
    assert {(m.protocol, m.ranges) for m in ports} == {
        (p, ((80, 80),)) for p in ("TCP", "UDP", "SCTP")
    }
    nft_ok(wrong)


def test_last_policy_wins_drops_the_earlier_policies_allows() -> None:
    first = named("x", "a-first", {"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]})
    last = named("x", "b-last", {"podSelector": {}, "ingress": [{"ports": [{"port": 81}]}]})
    right = compile_policies(pods(), NAMESPACES, [last, first])
    assert len(right.ingress[ip("x", "a")]) == 2
    wrong = compile_policies(pods(), NAMESPACES, [last, first], knob(Deviation.LAST_POLICY_WINS))
    (only,) = wrong.ingress[ip("x", "a")]
    assert only.ports is not None and only.ports[0].ranges == ((81, 81),)


def test_peer_selectors_or_admits_the_whole_namespace_and_local_pods() -> None:
    peer = {
        "namespaceSelector": {"matchLabels": {"ns": "y"}},
        "podSelector": {"matchLabels": {"pod": "b"}},
    }
    spec = {"podSelector": {}, "ingress": [{"from": [peer]}]}
    right = compile_policies(pods(), NAMESPACES, [policy("x", spec)])
    peers = right.ingress[ip("x", "a")][0].peers
    assert covers(peers, ip("y", "b")) and not covers(peers, ip("y", "a"))
    assert not covers(peers, ip("x", "b"))
    wrong = compile_policies(
        pods(), NAMESPACES, [policy("x", spec)], knob(Deviation.PEER_SELECTORS_OR)
    )
    peers = wrong.ingress[ip("x", "a")][0].peers
    assert covers(peers, ip("y", "a")) and covers(peers, ip("x", "b"))
    assert not covers(peers, ip("x", "c")) and not covers(peers, ip("z", "b"))


def test_empty_pod_selector_nothing_makes_the_peer_match_no_pod() -> None:
    spec: dict[str, Any] = {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}
    right = compile_policies(pods(), NAMESPACES, [policy("x", spec)])
    assert covers(right.ingress[ip("x", "a")][0].peers, ip("x", "c"))
    wrong = compile_policies(
        pods(), NAMESPACES, [policy("x", spec)], knob(Deviation.EMPTY_POD_SELECTOR_NOTHING)
    )
    assert wrong.ingress[ip("x", "a")] == ()  # isolated, nothing allowed
    labelled = {
        "podSelector": {},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "c"}}}]}],
    }
    still = compile_policies(
        pods(), NAMESPACES, [policy("x", labelled)], knob(Deviation.EMPTY_POD_SELECTOR_NOTHING)
    )
    assert covers(still.ingress[ip("x", "a")][0].peers, ip("x", "c"))


ANP = {
    "metadata": {"name": "anp"},
    "spec": {
        "priority": 10,
        "subject": {"namespaces": {}},
        "ingress": [{"action": "Pass", "from": [{"namespaces": {}}]}],
    },
}
LOW = {
    "metadata": {"name": "low"},
    "spec": {
        "priority": 20,
        "subject": {"namespaces": {}},
        "ingress": [{"action": "Deny", "from": [{"namespaces": {}}]}],
    },
}
BANP = {
    "metadata": {"name": "default"},
    "spec": {
        "subject": {"namespaces": {}},
        "ingress": [{"action": "Deny", "from": [{"namespaces": {}}]}],
    },
}


def test_pass_as_allow_accepts_where_pass_should_go_to_the_next_tier() -> None:
    def first_rule(c: Compiled) -> str:
        lines = c.script.splitlines()
        return lines[lines.index("  chain in_0 {") + 1].strip()

    right = compile_policies(pods(), NAMESPACES, [], admin_policies=[ANP])
    assert first_rule(right).startswith("ip saddr") and first_rule(right).endswith("goto in_0_t2")
    wrong = compile_policies(
        pods(), NAMESPACES, [], knob(Deviation.PASS_AS_ALLOW), admin_policies=[ANP]
    )
    assert first_rule(wrong).startswith("ip saddr") and first_rule(wrong).endswith("accept")
    nft_ok(wrong)


def test_admin_priority_inverted_puts_the_highest_number_first() -> None:
    right = compile_policies(pods(), NAMESPACES, [], admin_policies=[LOW, ANP])
    assert [a for _, a in right.admin_ingress[ip("x", "a")]] == ["Pass", "Deny"]
    wrong = compile_policies(
        pods(), NAMESPACES, [], knob(Deviation.ADMIN_PRIORITY_INVERTED), admin_policies=[LOW, ANP]
    )
    assert [a for _, a in wrong.admin_ingress[ip("x", "a")]] == ["Deny", "Pass"]


def test_ignore_baseline_drops_every_baseline_rule() -> None:
    right = compile_policies(pods(), NAMESPACES, [], baseline=[BANP])
    assert len(right.baseline_ingress) == 9
    wrong = compile_policies(
        pods(), NAMESPACES, [], knob(Deviation.IGNORE_BASELINE), baseline=[BANP]
    )
    assert wrong.baseline_ingress == {} and "drop" not in wrong.script


def test_stateless_checks_replies_against_the_repliers_egress() -> None:
    spec = {"podSelector": {}, "policyTypes": ["Egress"]}
    right = compile_policies(pods(), NAMESPACES, [policy("x", spec)])
    assert "ct direction reply" not in right.script
    wrong = compile_policies(pods(), NAMESPACES, [policy("x", spec)], knob(Deviation.STATELESS))
    lines = wrong.script.splitlines()
    reply = next(i for i, line in enumerate(lines) if "ct direction reply ip saddr vmap" in line)
    assert "ct state established,related accept" in lines[reply + 1]
    nft_ok(wrong)


@pytest.mark.parametrize(
    "deviation",
    [Deviation.IGNORE_PROTOCOL, Deviation.PEER_SELECTORS_OR, Deviation.EMPTY_POD_SELECTOR_NOTHING],
)
def test_networkpolicy_deviations_leave_admin_policies_alone(deviation: Deviation) -> None:
    anp = {
        "metadata": {"name": "anp"},
        "spec": {
            "priority": 1,
            "subject": {"pods": {"namespaceSelector": {}, "podSelector": {}}},
            "ingress": [
                {
                    "action": "Allow",
                    "from": [
                        {
                            "pods": {
                                "namespaceSelector": {"matchLabels": {"ns": "y"}},
                                "podSelector": {},
                            }
                        }
                    ],
                    "ports": [{"portNumber": {"protocol": "UDP", "port": 80}}],
                }
            ],
        },
    }
    right = compile_policies(pods(), NAMESPACES, [], admin_policies=[anp])
    wrong = compile_policies(pods(), NAMESPACES, [], knob(deviation), admin_policies=[anp])
    assert right.admin_ingress == wrong.admin_ingress
