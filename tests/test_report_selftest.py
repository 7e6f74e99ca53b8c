"""The selftest detection matrix as HTML, without a cluster: a ``Selftest`` built from its
dataclasses, rendered directly, through ``report SELFTEST.json`` and by its JSON round trip."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conformance.cli import main
from conformance.live.selftest import CLEAN, Catch, KnobRun, Selftest
from conformance.reports.selftest import render_selftest_html

EXCEPT_SC = "should-enforce-except-clause-while-egress-access-to-server-in-cidr-block"


def matrix(clean_mismatch: bool = False) -> Selftest:
    """Clean run, one deviation caught by two steps of two scenarios, one missed with an error."""
    clean = KnobRun(CLEAN, cells=7176, seconds=121.4, results="st/selftest-none/results-1.json")
    if clean_mismatch:
        clean.catches = [Catch("flaky-<udp>", "scenarios/f.yaml", 1, "relabel", 3, 0)]
    caught = KnobRun(
        "ignore-except",
        catches=[
            Catch(EXCEPT_SC, "scenarios/upstream/except.yaml", 0, "initial", 1, 1),
            Catch("ipblock-overlap", "scenarios/upstream/overlap.yaml", 2, "narrow", 4, 0),
        ],
        cells=7176,
        seconds=145.25,
        results="st/selftest-ignore-except/results-2.json",
    )
    missed = KnobRun(
        "named-port-wrong-pod",
        cells=7170,
        errors=["named-port-x: pods not ready"],
        seconds=98.0,
    )
    return Selftest(
        ["a", "b", "c"],
        clean=clean,
        runs=[caught, missed],
        started="2026-11-30T18:00:00Z",
        finished="2026-11-30T18:10:00Z",
        options={"jobs": 6, "clusters": 2},
    )


class Rows(HTMLParser):
    """The cell texts of each ``#matrix`` body row, with the row's class."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, list[str]]] = []
        self.in_matrix = self.in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self.in_matrix = a.get("id") == "matrix"
        elif self.in_matrix and tag == "tr" and a.get("data-deviation"):
            self.rows.append((a.get("class") or "", []))
        elif self.in_matrix and tag == "td" and self.rows:
            self.rows[-1][1].append("")
            self.in_cell = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self.in_cell = False
        elif tag == "table":
            self.in_matrix = False

    def handle_data(self, data: str) -> None:
        if self.in_cell and self.rows:
            self.rows[-1][1][-1] += data


def rows(html: str) -> dict[str, tuple[str, list[str]]]:
    parser = Rows()
    parser.feed(html)
    return {cells[0].split(" ")[0]: (css, [c.strip() for c in cells]) for css, cells in parser.rows}


def test_matrix_page_shows_each_run_with_its_catches_counts_and_time() -> None:
    html = render_selftest_html(matrix())
    got = rows(html)
    assert list(got) == ["none", "ignore-except", "named-port-wrong-pod"]
    assert got["none"] == (
        "pass clean",
        ["none (clean run)", "0 mismatches", "0", "7176", "0", "0", "0", "0", "121.4 s"],
    )
    assert got["ignore-except"] == (
        "pass",
        ["ignore-except", "caught", "5", "7176", "1", "2", "2", "0", "145.2 s"],
    )
    # A missed knob is a failing row, its error counted.
    assert got["named-port-wrong-pod"] == (
        "fail",
        ["named-port-wrong-pod", "MISSED", "0", "7170", "0", "0", "0", "1", "98.0 s"],
    )
    assert "1/2 deviations caught by 3 scenarios; missed: named-port-wrong-pod." in html
    assert '<span class="badge fail">FAIL</span>' in html
    # Which steps caught it, and where each run's results are.
    section = html.split('id="run-ignore-except"')[1].split("</section>")[0]
    assert EXCEPT_SC in section and "scenarios/upstream/overlap.yaml" in section
    assert re.search(r"<td>2</td><td class=\"row\">narrow</td><td>4</td>", section)
    assert "st/selftest-ignore-except/results-2.json" in section
    missed = html.split('id="run-named-port-wrong-pod"')[1].split("</section>")[0]
    assert "No scenario caught this deviation" in missed
    assert "named-port-x: pods not ready" in missed
    # Self-contained: the report's stylesheet inlined, nothing to fetch.
    assert "--hole" in html and not re.search(r"<(link|script)\b", html)


def test_a_clean_run_mismatch_fails_the_page_and_is_escaped() -> None:
    test = matrix(clean_mismatch=True)
    test.runs = test.runs[:1]  # every deviation caught: only the clean run is wrong
    html = render_selftest_html(test)
    css, cells = rows(html)["none"]
    assert css == "fail clean" and cells[1:3] == ["MISMATCH", "3"]
    assert "the clean run has 3 mismatching cells and 0 errors." in html
    assert '<span class="badge fail">FAIL</span>' in html
    assert "flaky-&lt;udp&gt;" in html and "flaky-<udp>" not in html
    test.clean = matrix().clean
    assert '<span class="badge pass">PASS</span>' in render_selftest_html(test)


def test_report_renders_selftest_json_as_the_same_page(tmp_path: Path) -> None:
    test = matrix()
    path = test.save(tmp_path / "selftest.json")
    again = Selftest.load(path)
    assert again.to_json() == test.to_json()
    out = tmp_path / "out" / "selftest.html"
    assert main(["report", str(path), "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render_selftest_html(test)


def test_report_of_selftest_json_is_html_only_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = matrix().save(tmp_path / "selftest.json")
    assert main(["report", str(path), "--format", "markdown"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {path} is a selftest detection matrix: only --format html"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["schemaVersion"] = 9
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert main(["report", str(path)]) == 2
    assert "schemaVersion 9 is not supported" in capsys.readouterr().err
