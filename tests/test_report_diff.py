"""``diff``: exactly the cells whose state changed, classified; exit 1 only on regressions."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from conformance.cli import main
from conformance.live.probing import Outcome
from conformance.live.results import CellStatus, RunResult
from conformance.reference.evaluator import Verdict
from conformance.reports import KnownDeviations
from conformance.reports.diff import Change, compare

DATA = Path(__file__).parent / "data"


def load(name: str) -> RunResult:
    return RunResult.load(DATA / f"results-{name}.json")


def labels(run_diff: object, change: Change) -> set[tuple[str, str]]:
    return {(c.key.scenario, c.key.label) for c in run_diff.of(change)}  # type: ignore[attr-defined]


def test_pass_to_broken_lists_exactly_the_ten_mismatches() -> None:
    old, new = load("pass"), load("broken")
    d = compare(old, new)
    expected = {
        (sc.name, f"{c.source} -> {c.target} {c.port}/{c.protocol}")
        for sc in new.scenarios
        for st in sc.steps
        for c in st.cells
        if c.status is CellStatus.MISMATCH
    }
    assert len(expected) == 10
    assert labels(d, Change.REGRESSED) == expected
    assert len(d.changes) == 10  # nothing else changed
    assert d.exit_code() == 1


def test_broken_to_pass_is_fixed_and_exits_zero() -> None:
    d = compare(load("broken"), load("pass"))
    assert {c.change for c in d.changes} == {Change.FIXED}
    assert len(d.changes) == 10
    assert d.exit_code() == 0


def test_same_run_has_no_changes() -> None:
    d = compare(load("broken"), load("broken"))
    assert d.changes == ()
    assert d.exit_code() == 0


def test_each_kind_of_change_is_reported_once() -> None:
    old = load("pass")
    new = copy.deepcopy(old)
    step = new.scenarios[5].steps[0]  # should-support-a-default-deny-ingress-policy
    judged = [c for c in step.cells if c.status is CellStatus.MATCH]
    a, b, c = judged[0], judged[1], judged[2]
    a.status, a.observed, a.observed_verdict = CellStatus.MISMATCH, Outcome.TIMEOUT, Verdict.DENY
    b.status, b.observed, b.observed_verdict = CellStatus.CHECK_FAILED, Outcome.CHECK_FAILED, None
    c.attempts, c.history = 7, ["connected"] * 7  # not a state change: attempts are not compared
    removed = new.scenarios[4].steps[1].cells.pop()
    d = compare(old, new)
    got = {(ch.change, ch.key.label) for ch in d.changes}
    assert got == {
        (Change.REGRESSED, f"{a.source} -> {a.target} {a.port}/{a.protocol}"),
        (Change.CHANGED, f"{b.source} -> {b.target} {b.port}/{b.protocol}"),
        (Change.REMOVED, f"{removed.source} -> {removed.target} {removed.port}/{removed.protocol}"),
    }
    regressed = d.of(Change.REGRESSED)[0]
    assert regressed.old.startswith("match:") and regressed.new.startswith("mismatch:")
    assert "kubectl exec" in regressed.command


def test_known_deviations_allow_regressions() -> None:
    devs = KnownDeviations.parse(
        "deviations:\n"
        "  - {scenario: '*udp*', reason: UDP is not filtered, link: 'https://example.org/1'}\n"
        "  - {scenario: '*except*', cell: 'x/a -> x/b 80/TCP', kind: unexpectedly-allowed, reason: except ignored}\n"
    )
    d = compare(load("pass"), load("broken"), devs)
    assert not d.of(Change.REGRESSED)
    assert len(d.of(Change.KNOWN)) == 10
    assert d.exit_code() == 0


def test_cli_diff_exit_codes_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    old, new = str(DATA / "results-pass.json"), str(DATA / "results-broken.json")
    assert main(["diff", old, new]) == 1
    out = capsys.readouterr().out
    assert "regressed (newly failing): 10" in out
    assert "10 regressed, 0 fixed" in out
    assert main(["diff", new, old, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["counts"] == {"fixed": 10}
    assert {c["change"] for c in doc["changes"]} == {"fixed"}


def test_cli_diff_with_known_deviations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    devs = tmp_path / "known.yaml"
    devs.write_text("deviations:\n  - scenario: '*'\n    reason: everything is known\n")
    rc = main(
        [
            "diff",
            str(DATA / "results-pass.json"),
            str(DATA / "results-broken.json"),
            "--known-deviations",
            str(devs),
        ]
    )
    assert rc == 0
    assert "newly failing, allowed by known deviations: 10" in capsys.readouterr().out


def test_cli_diff_unreadable_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["diff", str(bad), str(DATA / "results-pass.json")]) == 2
    assert "not a results document" in capsys.readouterr().err


def test_a_subset_against_a_full_run_summarises_the_missing_scenarios() -> None:
    """Scenarios only one run has are named once, not listed cell by cell; cells of scenarios
    both runs have are still listed, and a failing cell of a new scenario is a regression."""
    full = load("pass")
    subset = copy.deepcopy(full)
    subset.scenarios = subset.scenarios[:2]
    removed_cell = subset.scenarios[1].steps[0].cells.pop()
    d = compare(full, subset)
    text = d.text()
    dropped = [sc.name for sc in full.scenarios[2:]]
    assert f"scenarios only in OLD: 4 (their cells are not listed): {', '.join(dropped)}" in text
    listed = [ln for ln in text.splitlines() if ln.startswith("  ")]
    label = f"{removed_cell.source} -> {removed_cell.target}"
    assert len(listed) == 1 and label in listed[0] and full.scenarios[1].name in listed[0]
    assert all(name not in "\n".join(listed) for name in dropped)
    assert d.to_json()["scenarios_only_in_old"] == dropped
    assert "4 scenarios only in OLD, 0 only in NEW." in text
    # The other way round: the new scenarios are summarised, but a mismatch in one is listed.
    back = compare(subset, load("broken"))
    assert back.regressed and "scenarios only in NEW: 4" in back.text()
    assert {c.key.scenario for c in back.of(Change.REGRESSED)} <= set(dropped) | {
        sc.name for sc in subset.scenarios
    }
