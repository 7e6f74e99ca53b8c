"""``report`` regenerates any format from a results file; ``run`` writes them next to the JSON;
``RunResult.from_json`` reads back what ``to_json`` wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from conformance.cli import main
from conformance.commands.run import _write
from conformance.live.results import RunResult
from conformance.reports import FORMATS

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("name", ["pass", "broken"])
def test_results_round_trip(name: str) -> None:
    path = DATA / f"results-{name}.json"
    doc = json.loads(path.read_text())
    # Files written before a field existed read it as unknown.
    doc.setdefault("cni", "")
    for sc in doc["scenarios"]:
        sc.setdefault("nodes", {})
        for st in sc["steps"]:
            for cell in st["cells"]:
                cell.setdefault("path", None)
                cell.setdefault("family", "IPv4")
    again = json.loads(json.dumps(RunResult.load(path).to_json(), default=str))
    assert again == doc


def test_from_json_rejects_other_documents() -> None:
    with pytest.raises(ValueError, match="no 'scenarios' key"):
        RunResult.from_json({"tables": []})
    with pytest.raises(ValueError, match="schema_version 99"):
        RunResult.from_json({"scenarios": [], "schema_version": 99})


@pytest.mark.parametrize("fmt", FORMATS)
def test_report_command_writes_each_format(fmt: str, tmp_path: Path) -> None:
    out = tmp_path / "sub" / f"report.{fmt}"
    assert main(["report", str(DATA / "results-broken.json"), "--format", fmt, "-o", str(out)]) == 0
    text = out.read_text()
    assert "59ab60" in text
    assert "should-support-a-default-deny-ingress-policy-udp" in text


def test_report_command_to_stdout_and_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["report", str(DATA / "results-pass.json"), "--format", "markdown"]) == 0
    assert "## netpol-conformance: PASS" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing.json")]) == 2
    assert "cannot read results" in capsys.readouterr().err
    bad = tmp_path / "known.yaml"
    bad.write_text("- {scenario: x}\n")
    assert main(["report", str(DATA / "results-pass.json"), "--known-deviations", str(bad)]) == 2
    assert "reason: Field required" in capsys.readouterr().err


def test_run_writes_reports_next_to_the_json(tmp_path: Path) -> None:
    run = RunResult.load(DATA / "results-broken.json")
    path = _write(run, str(tmp_path), Console(stderr=True))
    assert path == str(tmp_path / "results-59ab60.json")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "junit-59ab60.xml",
        "junit.xml",
        "report-59ab60.html",
        "report.html",
        "results-59ab60.json",
        "results.json",
        "summary-59ab60.md",
        "summary.md",
    ]


def test_run_rejects_a_bad_known_deviations_file_before_any_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "known.yaml"
    bad.write_text("deviations:\n  - {scenario: x, reason: r, kind: sideways}\n")
    rc = main(
        ["run", "scenarios/examples", "--known-deviations", str(bad), "--output-dir", str(tmp_path)]
    )
    assert rc == 2
    assert "deviations[0].kind" in capsys.readouterr().err
    assert not list(tmp_path.glob("results*.json"))
