"""Property tests: laws the NetworkPolicy semantics must obey, on random policies."""

from __future__ import annotations

import dataclasses
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from conformance._types import Protocol
from conformance.evaluator import Evaluator, Verdict
from conformance.netpol import NetworkPolicy
from conformance.selectors import LabelSelector
from tests.helpers import upstream_state
from tests.strategies import policies

STATE = upstream_state()
KEYS = [p.key for p in STATE.pods]
PROBES = [
    (s, t, port, proto)
    for s in KEYS
    for t in KEYS
    if s != t
    for port in (80, 81)
    for proto in (Protocol.TCP, Protocol.UDP)
]


def verdicts(pols: list[NetworkPolicy]) -> dict[tuple[str, str, int, Protocol], Verdict]:
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
