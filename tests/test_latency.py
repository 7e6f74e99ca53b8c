"""Enforcement latency: per changed cell, from the API accepting a step's change to the first probe
that saw the new verdict; per step and run p50/p95/max in the results JSON and the reports. And
what a run cost: step wall time against the probe timeout, pods created, readiness waits."""

from __future__ import annotations

import json

import pytest

from conformance.api.types import L4Protocol
from conformance.live.probing import Outcome, ProbeResult
from conformance.live.results import (
    CellResult,
    CellStatus,
    RunResult,
    ScenarioResult,
    Status,
    StepResult,
    latency_phrase,
    latency_summary,
    percentile,
)
from conformance.reference.evaluator import Verdict
from conformance.reports import render
from conformance.reports.judgement import judge
from conformance.reports.text import step_time_phrase, summary_lines


def cell(expected: Verdict, changed: bool = True, target: str = "x/b") -> CellResult:
    return CellResult("x/a", target, 80, L4Protocol.TCP, expected, True, "r", changed=changed)


def observe(c: CellResult, *seen: tuple[Outcome, float]) -> CellResult:
    for outcome, at in seen:
        c.record(ProbeResult(outcome), at)
    return c


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 0.5, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.0),
        ([4.0, 1.0, 3.0, 2.0], 0.95, 4.0),
        ([float(v) for v in range(1, 101)], 0.95, 95.0),
        ([float(v) for v in range(1, 101)], 1.0, 100.0),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def test_a_changed_cell_keeps_the_window_its_latency_lies_in() -> None:
    """Allow -> deny: two probes still connected, the third timed out: the latency lies after
    the second probe's start and at most the third's."""
    c = observe(
        cell(Verdict.DENY),
        (Outcome.CONNECTED, 0.05),
        (Outcome.CONNECTED, 0.4),
        (Outcome.TIMEOUT, 0.9),
    )
    assert c.status is CellStatus.MATCH
    assert c.stale_until_s == 0.4
    assert c.latency_s == c.converged_after_s == 0.9


def test_unchanged_cells_measure_no_latency() -> None:
    c = observe(cell(Verdict.DENY, changed=False), (Outcome.CONNECTED, 0.1), (Outcome.TIMEOUT, 0.5))
    assert c.converged_after_s == 0.5
    assert c.latency_s is None and c.stale_until_s is None


def test_a_cell_that_agreed_only_after_the_deadline_counts_with_its_settled_time() -> None:
    c = observe(cell(Verdict.ALLOW), (Outcome.TIMEOUT, 0.1))
    assert c.status is CellStatus.MISMATCH and c.latency_s is None
    c.settled_after_s = 12.5
    assert c.latency_s == 12.5


def test_latency_summary_over_changed_cells_only() -> None:
    cells = [
        observe(cell(Verdict.DENY, target=f"x/t{i}"), (Outcome.TIMEOUT, float(i)))
        for i in range(1, 21)
    ]
    cells.append(observe(cell(Verdict.DENY, changed=False), (Outcome.TIMEOUT, 99.0)))
    cells.append(observe(cell(Verdict.ALLOW, target="x/never"), (Outcome.TIMEOUT, 0.2)))
    cells.append(
        observe(cell(Verdict.DENY, target="x/w"), (Outcome.CONNECTED, 3.0), (Outcome.TIMEOUT, 3.5))
    )
    unsupported = cell(Verdict.DENY, target="x/sctp")
    unsupported.status = CellStatus.NOT_SUPPORTED
    cells.append(unsupported)
    summary = latency_summary(cells)
    assert summary == {
        "cells": 21,
        "unsettled": 1,
        "p50_s": 10.0,
        "p95_s": 19.0,  # nearest rank 20 of 21: 1..20 and 3.5
        "max_s": 20.0,
        # cells agreeing on their first probe: the window is the whole latency (20 s at most)
        "resolution_s": 20.0,
    }
    assert "1 never showed the new verdict" in latency_phrase(summary)
    assert latency_summary([cells[-4]]) is None, "only unchanged cells: nothing measured"
    assert latency_summary([unsupported]) is None, "a cell not probed measures nothing"
    assert latency_summary([cells[-2]]) == {
        "cells": 1,
        "unsettled": 0,
        "p50_s": 3.5,
        "p95_s": 3.5,
        "max_s": 3.5,
        "resolution_s": 0.5,
    }


def latency_run() -> RunResult:
    run = RunResult(
        "r1",
        "netpol-embedded-x",
        "https://127.0.0.1:1",
        "v1.32.0",
        "0.1.0",
        {"probe_timeout_s": 3, "deny_timeout_s": 1.0},
        "2026-11-30T10:00:00Z",
        "2026-11-30T10:01:00Z",
    )
    sc = ScenarioResult("latency-case", "s.yaml", ["ingress"], Status.PASS)
    fast = StepResult(0, "deny all", Status.PASS, duration_s=1.2)
    fast.cells = [
        observe(cell(Verdict.DENY, target=f"x/t{i}"), (Outcome.TIMEOUT, 0.1 * i))
        for i in range(1, 4)
    ]
    slow = StepResult(1, "allow again", Status.PASS, duration_s=4.4)
    slow.cells = [
        observe(cell(Verdict.ALLOW), (Outcome.TIMEOUT, 0.1), (Outcome.CONNECTED, 2.5)),
        observe(cell(Verdict.ALLOW, changed=False, target="x/c"), (Outcome.CONNECTED, 0.1)),
    ]
    quiet = StepResult(2, "nothing changes", Status.PASS, duration_s=0.3)
    quiet.cells = [observe(cell(Verdict.ALLOW, changed=False), (Outcome.CONNECTED, 0.2))]
    sc.steps = [fast, slow, quiet]
    run.scenarios = [sc]
    return run


def test_results_json_has_latency_per_step_and_run_and_reads_back() -> None:
    run = latency_run()
    doc = json.loads(run.dumps())
    steps = doc["scenarios"][0]["steps"]
    assert steps[0]["enforcement_latency"]["max_s"] == 0.3
    assert steps[1]["enforcement_latency"] == {
        "cells": 1,
        "unsettled": 0,
        "p50_s": 2.5,
        "p95_s": 2.5,
        "max_s": 2.5,
        "resolution_s": 2.4,
    }
    assert steps[2]["enforcement_latency"] is None
    assert doc["summary"]["enforcement_latency"]["cells"] == 4
    assert doc["summary"]["enforcement_latency"]["max_s"] == 2.5
    back = RunResult.from_json(doc)
    assert json.loads(back.dumps()) == doc


def test_markdown_lists_the_slowest_steps_first() -> None:
    text = render(latency_run(), "markdown")
    section = text.split("### Enforcement latency", 1)[1].split("###", 1)[0]
    assert "p50 0.20 s, p95 2.50 s, max 2.50 s over 4 changed cells" in section
    rows = [line for line in section.splitlines() if line.startswith("| latency-case")]
    assert rows == [
        "| latency-case | step 2: allow again | 1 | 2.50 | 2.50 | 2.50 |",
        "| latency-case | step 1: deny all | 3 | 0.20 | 0.30 | 0.30 |",
    ]


def test_markdown_without_changed_cells_has_no_latency_section() -> None:
    run = latency_run()
    run.scenarios[0].steps = run.scenarios[0].steps[2:]
    assert "Enforcement latency" not in render(run, "markdown")


def test_html_has_the_run_card_and_each_steps_latency() -> None:
    html = render(latency_run(), "html")
    assert 'id="latency"><b>2.50 s</b> enforcement latency p95' in html
    assert "enforcement latency: p50 2.50 s, p95 2.50 s, max 2.50 s over 1 changed cells" in html
    assert html.count('<p class="latency">') == 2


def test_console_summary_gives_latency_and_step_time_against_the_probe_timeout() -> None:
    run = latency_run()
    lines = summary_lines(judge(run))
    assert any(line.startswith("enforcement latency: p50 0.20 s") for line in lines), lines
    assert step_time_phrase(run) == (
        "median 1.2 s, max 4.4 s over 3 steps (probe timeout 3 s, 1 s where the reference denies)"
    )


def test_pods_created_and_readiness_waits_add_up_over_scenarios() -> None:
    run = latency_run()
    second = ScenarioResult(
        "other", "o.yaml", [], Status.PASS, pods_created=4, ready_wait_s=1.25, pods_reused=9
    )
    run.scenarios[0].pods_created, run.scenarios[0].ready_wait_s = 9, 2.5
    run.scenarios.append(second)
    doc = json.loads(run.dumps())
    assert doc["summary"]["pods"] == {"created": 13, "reused": 9, "ready_wait_s": 3.75}
    assert RunResult.from_json(doc).scenarios[1].ready_wait_s == 1.25
    lines = summary_lines(judge(run))
    assert (
        "pods created: 13, reused 9 times; 3.8 s waiting for readiness (summed over scenarios)."
        in lines
    )
