"""Property tests: laws the NetworkPolicy and admin tier semantics must obey, on random policies."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.api.adminpol import AdminPolicy, Subject, Tier
from conformance.api.netpol import NetworkPolicy
from conformance.api.selectors import LabelSelector
from conformance.api.types import L4Protocol
from conformance.reference.evaluator import AnyPolicy, Evaluator, Verdict
from tests.helpers import upstream_state
from tests.strategies import admin_policies, anp, banp, cluster_policies, policies

STATE = upstream_state()
KEYS = [p.key for p in STATE.pods]
PROBES = [
    (s, t, port, proto)
    for s in KEYS
    for t in KEYS
    if s != t
    for port in (80, 81)
    for proto in (L4Protocol.TCP, L4Protocol.UDP)
]


def verdicts(pols: list[NetworkPolicy]) -> dict[tuple[str, str, int, L4Protocol], Verdict]:
    ev = Evaluator(STATE, pols)
    return {p: ev.decide(*p).verdict for p in PROBES}


@settings(max_examples=60, deadline=None)
@given(policies(), st.randoms(use_true_random=False))
def test_policy_order_is_irrelevant(pols: list[NetworkPolicy], rnd: random.Random) -> None:
    shuffled = list(pols)
    rnd.shuffle(shuffled)
    assert verdicts(pols) == verdicts(shuffled)


@settings(max_examples=60, deadline=None)
@given(policies())
def test_policy_selecting_no_pods_changes_nothing(pols: list[NetworkPolicy]) -> None:
    nothing = LabelSelector.of({"pod": "nobody"})
    extra = [dataclasses.replace(p, name=p.name + "-none", pod_selector=nothing) for p in pols]
    assert verdicts(pols) == verdicts(pols + extra)


def test_no_policies_allow_everything() -> None:
    assert set(verdicts([]).values()) == {Verdict.ALLOW}


@settings(max_examples=80, deadline=None)
@given(policies(max_size=3), st.data())
def test_adding_an_allow_rule_never_denies(pols: list[NetworkPolicy], data: st.DataObject) -> None:
    if not pols:
        return
    i = data.draw(st.integers(0, len(pols) - 1))
    extra_pols = data.draw(policies(max_size=1))
    if not extra_pols:
        return
    donor = extra_pols[0]
    target = pols[i]
    # Add the donor's rules to an existing policy: isolation is unchanged, allowances only grow.
    grown = dataclasses.replace(
        target,
        ingress=target.ingress + donor.ingress,
        egress=target.egress + donor.egress,
    )
    before = verdicts(pols)
    after = verdicts([*pols[:i], grown, *pols[i + 1 :]])
    for probe, verdict in before.items():
        if verdict is Verdict.ALLOW:
            assert after[probe] is Verdict.ALLOW, probe


@settings(max_examples=60, deadline=None)
@given(policies())
def test_denials_need_an_isolating_policy(pols: list[NetworkPolicy]) -> None:
    ev = Evaluator(STATE, pols)
    for probe in PROBES[:40]:
        d = ev.decide(*probe)
        if d.verdict is Verdict.DENY:
            assert d.egress.isolated_by or d.ingress.isolated_by


# --- admin tiers ---------------------------------------------------------------------------


def all_verdicts(pols: list[AnyPolicy]) -> dict[tuple[str, str, int, L4Protocol], Verdict]:
    ev = Evaluator(STATE, pols)
    return {p: ev.decide(*p).verdict for p in PROBES}


@settings(max_examples=25, deadline=None)
@given(policies(max_size=3), st.one_of(admin_policies(), cluster_policies()))
def test_admin_policy_whose_subject_selects_nothing_changes_nothing(
    nps: list[NetworkPolicy], admins: list[AdminPolicy]
) -> None:
    nothing = Subject(namespaces=LabelSelector.of({"team": "nobody"}))
    idle = [
        dataclasses.replace(p, name=p.name + "-idle", subject=nothing)
        for p in admins
        if p.kind != "BaselineAdminNetworkPolicy"
    ]
    pols: list[AnyPolicy] = [*nps, *admins]
    assert all_verdicts(pols) == all_verdicts([*pols, *idle])


@settings(max_examples=25, deadline=None)
@given(policies(max_size=3), admin_policies())
def test_deny_all_at_priority_zero_wins_over_everything(
    nps: list[NetworkPolicy], admins: list[AdminPolicy]
) -> None:
    # Priorities drawn by admin_policies() may include 0: move them up so the guard is alone.
    admins = [
        dataclasses.replace(p, priority=p.priority + 1) if p.priority is not None else p
        for p in admins
        if p.priority is None or p.priority < 1000
    ]
    guard = anp(
        "guard",
        0,
        {
            "subject": {"namespaces": {}},
            "ingress": [{"action": "Deny", "from": [{"namespaces": {}}]}],
        },
    )
    assert set(all_verdicts([*nps, *admins, guard]).values()) == {Verdict.DENY}


@settings(max_examples=25, deadline=None)
@given(policies(max_size=3), st.sampled_from(["Allow", "Deny"]))
def test_banp_never_overrides_a_networkpolicy_that_selects_the_pod(
    nps: list[NetworkPolicy], action: str
) -> None:
    base = banp(
        {
            "subject": {"namespaces": {}},
            "ingress": [{"action": action, "from": [{"namespaces": {}}]}],
            "egress": [{"action": action, "to": [{"namespaces": {}}]}],
        }
    )
    ev_np, ev_both = Evaluator(STATE, nps), Evaluator(STATE, [*nps, base])
    for probe in PROBES[:60]:
        a, b = ev_np.decide(*probe), ev_both.decide(*probe)
        for side_a, side_b in ((a.egress, b.egress), (a.ingress, b.ingress)):
            if side_a.isolated_by:
                assert side_a.verdict is side_b.verdict, probe


@settings(max_examples=25, deadline=None)
@given(
    policies(max_size=3),
    st.one_of(admin_policies(), cluster_policies()),
    st.randoms(use_true_random=False),
)
def test_admin_policy_order_is_irrelevant(
    nps: list[NetworkPolicy], admins: list[AdminPolicy], rnd: random.Random
) -> None:
    pols: list[AnyPolicy] = [*nps, *admins]
    shuffled = list(pols)
    rnd.shuffle(shuffled)
    assert all_verdicts(pols) == all_verdicts(shuffled)


@settings(max_examples=25, deadline=None)
@given(policies(max_size=3))
def test_pass_everything_in_the_admin_tier_is_like_no_admin_policy(
    nps: list[NetworkPolicy],
) -> None:
    everything: list[dict[str, Any]] = [{"namespaces": {}}]
    passer = anp(
        "pass",
        0,
        {
            "subject": {"namespaces": {}},
            "ingress": [{"action": "Pass", "from": everything}],
            "egress": [{"action": "Pass", "to": everything}],
        },
    )
    deny_later = anp(
        "deny",
        1,
        {"subject": {"namespaces": {}}, "ingress": [{"action": "Deny", "from": everything}]},
    )
    assert all_verdicts([*nps, passer, deny_later]) == all_verdicts(list(nps))


@settings(max_examples=25, deadline=None)
@given(policies(max_size=3), cluster_policies())
def test_undecided_cells_always_name_the_rules_involved(
    nps: list[NetworkPolicy], cnps: list[AdminPolicy]
) -> None:
    ev = Evaluator(STATE, [*nps, *cnps])
    for probe in PROBES[:80]:
        d = ev.decide(*probe)
        for side in (d.egress, d.ingress):
            if side.verdict is Verdict.IMPLEMENTATION_DEFINED:
                assert len(side.tied) >= 2 or side.decided_by is not None, d.reason
                assert "implementation-defined" in side.describe()


@settings(max_examples=25, deadline=None)
@given(policies(max_size=3), cluster_policies())
def test_baseline_tier_never_overrides_a_networkpolicy_that_selects_the_pod(
    nps: list[NetworkPolicy], cnps: list[AdminPolicy]
) -> None:
    baseline = [p for p in cnps if p.tier is Tier.BASELINE]
    ev_np, ev_both = Evaluator(STATE, nps), Evaluator(STATE, [*nps, *baseline])
    for probe in PROBES[:60]:
        a, b = ev_np.decide(*probe), ev_both.decide(*probe)
        for side_a, side_b in ((a.egress, b.egress), (a.ingress, b.ingress)):
            if side_a.isolated_by:
                assert side_a.verdict is side_b.verdict, probe
