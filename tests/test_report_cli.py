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
    doc.setdefault("retries", {})
    doc["summary"].setdefault("enforcement_latency", None)  # no cell of these files changed
    doc["summary"].setdefault("pods", {"created": 0, "reused": 0, "ready_wait_s": 0.0})
    for sc in doc["scenarios"]:
        sc.setdefault("nodes", {})
        sc.setdefault("node_map", {})
        sc.setdefault("notes", [])
        sc.setdefault("pods_created", 0)
        sc.setdefault("ready_wait_s", 0.0)
        sc.setdefault("pods_reused", 0)
        for st in sc["steps"]:
            st.setdefault("enforcement_latency", None)
            st.setdefault("sample", None)
            for cell in st["cells"]:
                cell.setdefault("path", None)
                cell.setdefault("family", "IPv4")
                cell.setdefault("slow_propagation", False)
                cell.setdefault("settled_after_s", None)
                cell.setdefault("changed", False)
                cell.setdefault("stale_until_s", None)
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
    assert f"error: {bad}:1: [0].reason: field 'reason' is required" in capsys.readouterr().err


def test_run_writes_each_report_once_and_links_the_latest_names(tmp_path: Path) -> None:
    run = RunResult.load(DATA / "results-broken.json")
    written = _write(run, str(tmp_path), Console(stderr=True))
    assert [p.name for p in written] == [
        "results-59ab60.json",
        "report-59ab60.html",
        "junit-59ab60.xml",
        "summary-59ab60.md",
    ]
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
    latest = {"results.json", "report.html", "junit.xml", "summary.md"}
    for name in latest:
        link = tmp_path / name
        assert link.is_symlink() and link.resolve().parent == tmp_path.resolve(), name
    assert (tmp_path / "results.json").read_text() == written[0].read_text()
    # A second run re-points the latest names and keeps the first run's files.
    run.run_id = "0abcde"
    _write(run, str(tmp_path), Console(stderr=True))
    assert (tmp_path / "report.html").readlink() == Path("report-0abcde.html")
    assert (tmp_path / "report-59ab60.html").is_file()
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


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


def test_merge_adds_up_the_shards_retry_counts() -> None:
    from conformance.reports.merge import merge

    a = RunResult.load(DATA / "results-pass.json")
    b = RunResult.load(DATA / "results-broken.json")
    b.context, b.server, b.server_version, b.tool_version, b.options, b.cni = (
        a.context,
        a.server,
        a.server_version,
        a.tool_version,
        a.options,
        a.cni,
    )
    b.scenarios = [sc for sc in b.scenarios if sc.name not in {s.name for s in a.scenarios}]
    a.retries, b.retries = {"api": 2, "exec": 1}, {"api": 3}
    assert merge([a, b]).retries == {"api": 5, "exec": 1}
