"""Known-deviation files: patterns, errors with key paths, and their effect on exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.live.results import RunResult
from conformance.reports import DeviationsError, KnownDeviations, judge
from conformance.reports.deviations import KnownDeviation

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize(
    ("entry", "hit"),
    [
        (KnownDeviation(scenario="sc-*", reason="r"), True),
        (KnownDeviation(scenario="scenarios/upstream/*.yaml", reason="r"), True),  # by file
        (KnownDeviation(scenario="other", reason="r"), False),
        (KnownDeviation(scenario="*", reason="r", step="2"), True),  # step number, 1-based
        (KnownDeviation(scenario="*", reason="r", step="1"), False),
        (KnownDeviation(scenario="*", reason="r", step="egress*"), True),
        (KnownDeviation(scenario="*", reason="r", cell="x/a -> * 80/TCP"), True),
        (KnownDeviation(scenario="*", reason="r", cell="* 80/UDP"), False),
        (KnownDeviation(scenario="*", reason="r", kind="unexpectedly-allowed"), True),
        (KnownDeviation(scenario="*", reason="r", kind="unexpectedly-denied"), False),
    ],
)
def test_patterns(entry: KnownDeviation, hit: bool) -> None:
    got = entry.matches(
        "sc-1",
        "scenarios/upstream/sc-1.yaml",
        1,
        "egress of x/a",
        "x/a -> x/b 80/TCP",
        "unexpectedly-allowed",
    )
    assert got is hit


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("deviations:\n  - scenario: a\n", "deviations[0].reason: Field required"),
        ("deviations:\n  - {scenario: a, reason: r, kind: allowed}\n", "deviations[0].kind"),
        (
            "deviations:\n  - {scenario: a, reason: r, cells: x}\n",
            "deviations[0].cells: Extra inputs",
        ),
        ("deviations: [\n", "not YAML"),
        ("other: 1\n", "other: Extra inputs are not permitted"),
    ],
)
def test_invalid_files_name_the_key(text: str, message: str) -> None:
    with pytest.raises(DeviationsError, match="known") as exc:
        KnownDeviations.parse(text, "known.yaml")
    assert message in str(exc.value)
    assert "known.yaml" in str(exc.value)


def test_missing_file() -> None:
    with pytest.raises(DeviationsError, match="cannot read known deviations"):
        KnownDeviations.load("/nonexistent/known.yaml")


def test_exit_code_with_and_without_deviations() -> None:
    run = RunResult.load(DATA / "results-broken.json")
    assert judge(run).exit_code() == 1
    udp = KnownDeviations.parse("- {scenario: '*udp*', reason: udp}\n")
    assert judge(run, udp).exit_code() == 1  # the ipBlock except mismatches remain
    every = KnownDeviations.parse(
        "- {scenario: '*udp*', reason: udp}\n- {scenario: '*', cell: '*/TCP', reason: except}\n"
    )
    j = judge(run, every)
    assert j.exit_code() == 0
    assert len(j.known) == 10
    assert {j.scenario_outcome(sc) for sc in run.scenarios} == {"pass", "known"}
    assert j.unused == ()
