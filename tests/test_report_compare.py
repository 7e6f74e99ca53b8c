"""``report --compare``: several runs side by side (scenario x run, per-tag scores, the cells where
runs disagree with the reference or with each other), as Markdown and self-contained HTML."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from conformance.cli import main
from conformance.live.results import CellStatus, RunResult, Status
from conformance.reference.evaluator import Verdict
from conformance.reports.compare import (
    ABSENT,
    build_comparison,
    render_compare,
    render_compare_markdown,
    run_labels,
)
from conformance.reports.deviations import KnownDeviations

DATA = Path(__file__).parent / "data"
DEFAULT_DENY = "should-support-a-default-deny-ingress-policy"
EXCEPT = "should-enforce-except-clause-while-egress-access-to-server-in-cidr-block"
UDP_DENY = "should-support-a-default-deny-ingress-policy-udp"


def runs() -> tuple[RunResult, RunResult, RunResult]:
    """The two fixtures, named as CNIs, and a third: the pass run as 'calico', which drops one
    cell the others allow and lacks one scenario."""
    good = RunResult.load(DATA / "results-pass.json")
    good.cni = "cilium"
    broken = RunResult.load(DATA / "results-broken.json")
    broken.cni = "flannel"
    third = copy.deepcopy(good)
    third.cni, third.run_id = "calico", "c41c0"
    third.scenarios = [sc for sc in third.scenarios if sc.name != DEFAULT_DENY]
    sc = next(
        s for s in third.scenarios if s.name == "should-allow-ingress-access-from-updated-pod"
    )
    cell = next(
        c for c in sc.steps[0].cells if c.expected is Verdict.ALLOW and c.source != c.target
    )
    cell.observed_verdict, cell.status = Verdict.DENY, CellStatus.MISMATCH
    sc.status = sc.steps[0].status = Status.FAIL
    return good, broken, third


def test_labels_prefer_cni_then_context_and_are_unique() -> None:
    good, broken, third = runs()
    assert run_labels([good, broken, third]) == ["cilium", "flannel", "calico"]
    a, b = RunResult.load(DATA / "results-pass.json"), RunResult.load(DATA / "results-broken.json")
    assert run_labels([a, b]) == ["netpol-embedded-rep6ok", "netpol-embedded-rep6"]
    assert run_labels([a, a, a]) == [a.context, f"{a.context} #2", f"{a.context} #3"]
    a.context = ""
    assert run_labels([a]) == [a.run_id]


def test_model_from_the_fixtures() -> None:
    c = build_comparison(list(runs()))
    assert c.labels == ("cilium", "flannel", "calico")
    rows = {r.name: r.outcomes for r in c.scenarios}
    assert len(rows) == 6
    assert rows[EXCEPT] == ("pass", "fail", "pass")
    assert rows[DEFAULT_DENY] == ("pass", "pass", ABSENT)
    assert rows["should-allow-ingress-access-from-updated-pod"] == ("pass", "pass", "fail")
    assert c.totals() == [(6, 6), (2, 6), (4, 6)]
    tags = {t.tag: t.scores for t in c.tags}
    assert tags["udp"] == ((2, 2), (0, 2), (2, 2))
    assert tags["default-deny"] == ((2, 2), (1, 2), (1, 1))  # calico lacks one: out of 1
    assert tags["pod-selector"] == ((1, 1), (1, 1), (0, 1))


def test_disagreements_name_the_cells_and_each_runs_verdict() -> None:
    c = build_comparison(list(runs()))
    flannel_holes = [d for d in c.disagreements if d.cells[1].status == "unexpectedly-allowed"]
    assert len(flannel_holes) == 10  # every mismatch of the broken fixture
    d = next(d for d in c.disagreements if d.key.scenario == EXCEPT)
    assert d.key.label == "x/a -> x/b 80/TCP"
    assert d.step_title == "step 1: egress of x/a to the /4 around x/b, except x/b"
    assert d.expected == "deny" and d.why == "mismatch, runs differ"
    assert [v.text for v in d.cells] == ["deny", "allow (unexpectedly-allowed)", "deny"]
    outage = [d for d in c.disagreements if d.cells[2].status == "unexpectedly-denied"]
    assert len(outage) == 1
    assert [v.text for v in outage[0].cells] == ["allow", "allow", "deny (unexpectedly-denied)"]
    assert len(c.disagreements) == 11


def test_agreeing_runs_have_no_disagreements() -> None:
    good = RunResult.load(DATA / "results-pass.json")
    c = build_comparison([good, copy.deepcopy(good)])
    assert c.disagreements == ()
    assert all(r.agree for r in c.scenarios)
    assert "Every run agrees" in render_compare_markdown(c)


def test_known_deviations_show_as_known() -> None:
    known = KnownDeviations.parse(
        f"deviations:\n  - scenario: {UDP_DENY}\n    reason: UDP is not enforced\n", "k.yaml"
    )
    c = build_comparison(list(runs()), known)
    assert {r.name: r.outcomes for r in c.scenarios}[UDP_DENY] == ("pass", "known", "pass")
    assert {t.tag: t.scores for t in c.tags}["udp"][1] == (1, 2)
    d = next(d for d in c.disagreements if d.key.scenario == UDP_DENY)
    assert d.cells[1].text == "allow (known)"


def test_markdown_tables() -> None:
    text = render_compare(list(runs()), "markdown")
    assert "| scenario | cilium | flannel | calico |" in text
    assert f"| {EXCEPT} | pass | fail | pass |" in text
    assert f"| {DEFAULT_DENY} | pass | pass | absent |" in text
    assert "| udp | 2/2 | 0/2 | 2/2 |" in text
    assert "| cilium | cilium | netpol-embedded-rep6ok | 69d785 |" in text
    assert (
        f"| {EXCEPT} | step 1: egress of x/a to the /4 around x/b, except x/b "
        "| x/a -&gt; x/b 80/TCP | deny | mismatch, runs differ "
        "| deny | allow (unexpectedly-allowed) | deny |"
    ) in text
    assert "11 cells where a run disagrees" in text


def test_html_is_self_contained_and_escaped() -> None:
    good, broken, third = runs()
    third.cni = "<b>evil</b>"
    html = render_compare([good, broken, third], "html")
    assert "<b>evil</b>" not in html and "&lt;b&gt;evil&lt;/b&gt;" in html
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert html.count('<tr class="differs">') == 6  # every scenario: broken fails 4, calico 2
    assert 'id="disagreements"' in html and "unexpectedly-allowed" in html


def test_render_compare_rejects_other_formats() -> None:
    with pytest.raises(ValueError, match="html or markdown"):
        render_compare(list(runs()), "junit")


def test_cli_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = []
    for run in runs():
        p = tmp_path / f"results-{run.cni}.json"
        p.write_text(run.dumps(), encoding="utf-8")
        paths.append(str(p))
    out = tmp_path / "out" / "compare.md"
    assert main(["report", "--compare", *paths, "--format", "markdown", "-o", str(out)]) == 0
    assert "| scenario | cilium | flannel | calico |" in out.read_text()
    html = tmp_path / "compare.html"
    assert main(["report", paths[0], "--compare", *paths[1:], "-o", str(html)]) == 0
    assert html.read_text().startswith("<!DOCTYPE html>")
    capsys.readouterr()
    assert main(["report", "--compare", *paths, "--format", "markdown"]) == 0
    assert "runs compared" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra",
    [
        ["--compare", "/nonexistent/results.json", str(DATA / "results-pass.json")],
        ["--compare", str(DATA / "results-pass.json")],  # one run is no comparison
        [
            "--compare",
            str(DATA / "results-pass.json"),
            str(DATA / "results-broken.json"),
            "--format",
            "junit",
        ],
        [
            "--compare",
            str(DATA / "results-pass.json"),
            str(DATA / "results-broken.json"),
            "--known-deviations",
            "/nonexistent/known.yaml",
        ],
        [],  # neither a results file nor --compare
    ],
)
def test_cli_unreadable_input_is_exit_2(
    extra: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"tables": []}))
    assert main(["report", *extra]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["report", "--compare", str(bad), str(DATA / "results-pass.json")]) == 2
