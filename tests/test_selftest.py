"""``selftest``: the detection matrix from real runs on embedded clusters (one per deviation),
its JSON, its exit code, and the pure aggregation of a run's cells into catches."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conformance.api.types import L4Protocol
from conformance.cli import main
from conformance.cluster.dataplane import prefix_for
from conformance.cluster.knobs import Deviation
from conformance.live.results import (
    CellResult,
    CellStatus,
    RunResult,
    ScenarioResult,
    Status,
    StepResult,
)
from conformance.live.selftest import knob_run
from conformance.reference.evaluator import Verdict
from tests.test_run_e2e import ROOT, cli

DETECTION = ROOT / "scenarios" / "detection"
ENDPORT = DETECTION / "endport-range-ingress.yaml"
DENY_INGRESS = ROOT / "scenarios" / "upstream" / "should-support-a-default-deny-ingress-policy.yaml"


def _cell(status: CellStatus, observed: Verdict | None = None) -> CellResult:
    cell = CellResult("x/a", "x/b", 80, L4Protocol.TCP, Verdict.DENY, True, "r", status=status)
    cell.observed_verdict = observed
    return cell


@pytest.mark.unit
def test_knob_run_counts_mismatching_cells_per_step_and_keeps_errors() -> None:
    run = RunResult("r", "c", "s", "v", "t", {}, "now")
    good = ScenarioResult("good", "g.yaml", [], Status.FAIL)
    good.steps = [
        StepResult(0, "quiet", Status.PASS, cells=[_cell(CellStatus.MATCH)]),
        StepResult(
            1,
            "loud",
            Status.FAIL,
            cells=[
                _cell(CellStatus.MISMATCH, Verdict.ALLOW),
                _cell(CellStatus.MISMATCH, Verdict.DENY),
                _cell(CellStatus.NOT_SUPPORTED),
            ],
        ),
    ]
    broken = ScenarioResult("broken", "b.yaml", [], Status.ERROR, message="pods not ready")
    run.scenarios = [good, broken]
    out = knob_run("ignore-except", run)
    assert out.caught and out.mismatches == 2 and out.cells == 3
    (catch,) = out.catches
    assert (catch.scenario, catch.step, catch.cells, catch.unexpectedly_allowed) == (
        "good",
        1,
        2,
        1,
    )
    assert out.errors == ["broken: pods not ready"]
    assert knob_run("none", RunResult("r", "c", "s", "v", "t", {}, "now")).caught is False


@pytest.mark.unit
def test_an_unknown_deviation_is_a_one_line_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["selftest", str(ENDPORT), "--deviation", "ignore-everything"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown deviation 'ignore-everything'; known:" in err


def left_behind(doc: dict[str, Any]) -> set[str]:
    """Network namespaces still there of the clusters a selftest started."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    prefixes = tuple(prefix_for(r["instance"]) for r in [doc["clean"], *doc["deviations"]])
    return {line.split()[0] for line in out.splitlines() if line.startswith(prefixes)}


@pytest.mark.cluster
@pytest.mark.slow
def test_selftest_catches_a_deviation_and_reports_a_miss(tmp_path: Path) -> None:
    caught = cli(
        "selftest",
        str(ENDPORT),
        "--deviation",
        "ignore-endport",
        "--output-dir",
        str(tmp_path / "a"),
    )
    assert caught.returncode == 0, caught.stdout + caught.stderr
    doc = json.loads((tmp_path / "a" / "selftest.json").read_text())
    assert left_behind(doc) == set()
    assert doc["ok"] and doc["missed"] == [] and doc["clean"]["mismatchingCells"] == 0
    (dev,) = doc["deviations"]
    assert dev["deviation"] == "ignore-endport" and dev["caught"]
    assert dev["scenarios"] == ["endport-range-ingress"]
    # Only the first port of each range is open: TCP 8081-8082 from x/client and x/other in
    # both steps (4 cells each), plus UDP 8082-8083 in step 2 (4 more).
    assert [(s["step"], s["cells"]) for s in dev["steps"]] == [(0, 4), (1, 8)]
    assert all(s["unexpectedlyAllowed"] == 0 for s in dev["steps"])
    assert Path(dev["results"]).exists() and Path(doc["clean"]["results"]).exists()
    assert "1/1 deviations caught" in caught.stdout
    page = (tmp_path / "a" / "selftest.html").read_text()
    assert '<span class="badge pass">PASS</span>' in page and "endport-range-ingress" in page

    missed = cli(
        "selftest",
        str(DENY_INGRESS),
        "--deviation",
        "ignore-endport",
        "--output-dir",
        str(tmp_path / "b"),
    )
    assert missed.returncode == 1, missed.stdout + missed.stderr
    doc = json.loads((tmp_path / "b" / "selftest.json").read_text())
    assert doc["missed"] == ["ignore-endport"] and not doc["ok"]
    assert "missed: ignore-endport" in missed.stdout
    page = (tmp_path / "b" / "selftest.html").read_text()
    assert '<tr class="fail" data-deviation="ignore-endport">' in page
    assert left_behind(doc) == set()


@pytest.mark.cluster
@pytest.mark.slow
def test_the_detection_suite_alone_catches_every_knob(tmp_path: Path) -> None:
    """CI's selftest (docs/selftest.md): the whole shipped suite takes too long for every CI
    run, so scenarios/detection must catch every knob on its own, with a clean run that matches
    everywhere. A new knob needs a detection scenario that catches it, or this fails."""
    proc = cli(
        "selftest",
        str(DETECTION),
        "--jobs",
        "6",
        "--clusters",
        "2",
        "--output-dir",
        str(tmp_path),
        timeout=1800,
    )
    doc = json.loads((tmp_path / "selftest.json").read_text())
    assert left_behind(doc) == set()
    assert doc["missed"] == [], proc.stdout
    assert doc["clean"]["mismatchingCells"] == 0 and doc["clean"]["errors"] == [], proc.stdout
    assert {d["deviation"] for d in doc["deviations"]} == {d.value for d in Deviation}
    assert proc.returncode == 0, proc.stdout + proc.stderr
