"""``run``'s console summary: a table on a terminal, plain lines in a log, both naming the cells
that failed, the totals in words and where the reports are."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console

from conformance.commands.run import print_summary
from conformance.live.results import RunResult, ScenarioResult, Status
from conformance.reports import judge
from conformance.reports.judgement import one_sentence, tag_scores
from conformance.reports.text import run_lines

DATA = Path(__file__).parent / "data"


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=terminal, width=80, color_system=None), buf


def test_log_output_is_plain_lines_naming_each_mismatching_cell_and_the_reports() -> None:
    run = RunResult.load(DATA / "results-broken.json")
    out, buf = _console(terminal=False)
    written = [Path("/r/results-59ab60.json"), Path("/r/report-59ab60.html")]
    print_summary(run, out, None, written)
    text = buf.getvalue()
    assert not re.search(r"[┏━│└]", text), "no table drawing in a log"
    assert "{" not in text, "no Python dict in the summary"
    lines = text.splitlines()
    bad = [
        (sc, st, c)
        for sc in run.scenarios
        for st in sc.steps
        for c in st.cells
        if c.status == "mismatch"
    ]
    for sc, st, c in bad:
        assert any(
            ln.startswith(f"FAIL {sc.name} / step {st.index + 1}: {st.name}: ") for ln in lines
        )
        cell = f"    {c.source} -> {c.target} {c.port}/{c.protocol}: expected {c.expected}, observed {c.observed}"
        assert any(ln.startswith(cell) for ln in lines), cell
    assert "6 scenarios: 2 pass, 4 fail;" in text
    assert lines[-1] == "reports: /r/results-59ab60.json /r/report-59ab60.html"
    passing = [sc.name for sc in run.scenarios if sc.status is Status.PASS]
    assert not any(ln.startswith(("FAIL", "PASS")) and ln.split()[1] in passing for ln in lines)


def test_terminal_output_keeps_the_table_and_adds_the_failing_cells() -> None:
    run = RunResult.load(DATA / "results-broken.json")
    out, buf = _console(terminal=True)
    print_summary(run, out)
    text = buf.getvalue()
    assert "┏" in text and "FAIL should-enforce-except-clause" in text


def _with_skipped(run: RunResult, n: int) -> RunResult:
    for i in range(n):
        run.scenarios.append(
            ScenarioResult(f"sctp-{i}", "f.yaml", ["sctp"], Status.SKIPPED, "SCTP not supported")
        )
    return run


def test_skipped_scenarios_are_not_said_to_conform() -> None:
    run = _with_skipped(RunResult.load(DATA / "results-pass.json"), 2)
    sentence = one_sentence(judge(run))
    assert not sentence.startswith("All"), sentence
    assert sentence.startswith("6 of 8 scenarios conform and 2 were skipped")
    only_skipped = _with_skipped(RunResult.load(DATA / "results-pass.json"), 1)
    only_skipped.scenarios = only_skipped.scenarios[-1:]
    assert one_sentence(judge(only_skipped)).startswith("No scenario ran")
    lines = run_lines(judge(run))
    assert lines == [f"SKIPPED sctp-{i}: SCTP not supported" for i in range(2)]


def test_a_tag_whose_scenarios_were_all_skipped_is_not_a_failure() -> None:
    run = _with_skipped(RunResult.load(DATA / "results-pass.json"), 2)
    scores = {s.tag: s for s in tag_scores(judge(run))}
    assert scores["sctp"].ok and scores["sctp"].state == "skipped"
    assert {s.state for t, s in scores.items() if t != "sctp"} == {"ok"}


def test_a_step_whose_mismatches_keep_the_previous_verdict_suggests_a_longer_deadline() -> None:
    from conformance.api.types import L4Protocol
    from conformance.live.probing import Outcome, ProbeResult
    from conformance.live.results import CellResult, StepResult
    from conformance.reference.evaluator import Verdict

    def cell(slow: bool) -> CellResult:
        c = CellResult("x/a", "x/b", 80, L4Protocol.TCP, Verdict.DENY, True, "r")
        c.record(ProbeResult(Outcome.CONNECTED), 0.5)
        c.slow_propagation = slow
        return c

    step = StepResult(0, "s", Status.PASS, cells=[cell(True), cell(False)])
    step.settle(10)
    assert step.status is Status.FAIL
    assert step.message == (
        "2 cells mismatch; 1 of them still showed the verdict from before the step's changes at "
        "the 10 s deadline: maybe propagation is slower than --deadline; try --deadline 30"
    )
    run = RunResult.load(DATA / "results-pass.json")
    run.scenarios[0].steps = [step]
    run.scenarios[0].status = Status.FAIL
    lines = run_lines(judge(run))
    assert lines[1].endswith(
        "observed connected (still the verdict from before the step's "
        "changes: maybe slow propagation, try a longer --deadline)"
    )
    assert lines[2].endswith("observed connected")
