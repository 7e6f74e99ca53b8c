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
        (
            "deviations:\n  - scenario: a\n",
            "known.yaml:2: deviations[0].reason: field 'reason' is required",
        ),
        (
            "deviations:\n  - {scenario: a, reason: r, kind: allowed}\n",
            "known.yaml:2: deviations[0].kind: Input should be 'unexpectedly-allowed' or "
            "'unexpectedly-denied' (got 'allowed')",
        ),
        (
            "deviations:\n  - scenario: a\n    reason: r\n    cells: x\n",
            "known.yaml:4: deviations[0].cells: unknown field 'cells'; accepted: scenario, "
            "reason, link, step, cell, kind",
        ),
        ("deviations: [\n", "known.yaml:2: invalid YAML: "),
        ("other: 1\n", "known.yaml:1: other: unknown field 'other'; accepted: deviations"),
    ],
)
def test_invalid_files_name_file_line_and_field(text: str, message: str) -> None:
    with pytest.raises(DeviationsError) as exc:
        KnownDeviations.parse(text, "known.yaml")
    assert any(line.startswith(message) for line in str(exc.value).splitlines()), str(exc.value)
    assert "Extra inputs" not in str(exc.value) and "Field required" not in str(exc.value)


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
