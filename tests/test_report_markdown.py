"""Markdown summary: well-formed GitHub tables, the failing cells, bounded size."""

from __future__ import annotations

import copy
import re
from pathlib import Path

from conformance.live.results import RunResult, Status
from conformance.reports import KnownDeviations, judge, render
from conformance.reports.markdown import md_escape, render_markdown

DATA = Path(__file__).parent / "data"
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def tables(text: str) -> list[list[str]]:
    """Blocks of consecutive lines that start with '|'."""
    out: list[list[str]] = []
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            out.append(current)
            current = []
    if current:
        out.append(current)
    return out


def check_gfm(text: str) -> None:
    """Every table has a header, a separator, and rows with the header's number of cells."""
    found = tables(text)
    assert found, "no table"
    for block in found:
        assert len(block) >= 2, block
        assert re.fullmatch(r"\|( --- \|)+", block[1]), block[1]
        width = len(_UNESCAPED_PIPE.findall(block[0]))
        for row in block:
            assert row.endswith("|")
            assert len(_UNESCAPED_PIPE.findall(row)) == width, row
    assert text.count("```") % 2 == 0
    assert text.count("<details>") == text.count("</details>")


def test_broken_run_summary() -> None:
    text = render(RunResult.load(DATA / "results-broken.json"), "markdown")
    check_gfm(text)
    assert text.startswith("## netpol-conformance: FAIL\n")
    assert (
        "4 of 6 scenarios fail: 10 cells disagree with the reference (10 unexpectedly allowed"
        in text
    )
    assert "| **udp** | 0/2 | 16/24 | 8 | 0 | 0 |" in text
    assert "| pod-selector | 1/1 | 4/4 | 0 | 0 | 0 |" in text
    rows = [r for r in tables(text)[-1]][2:]  # the failures table
    assert len(rows) == 10
    assert "x/a -&gt; x/b 80/TCP" in rows[0] and "`kubectl exec -n x-59ab60-1 a" in rows[0]


def test_pass_run_summary() -> None:
    text = render(RunResult.load(DATA / "results-pass.json"), "markdown")
    check_gfm(text)
    assert "## netpol-conformance: PASS" in text
    assert "All 6 scenarios conform: 58 cells match the reference." in text
    assert "### Failures" not in text


def test_failures_are_capped_and_cells_escaped() -> None:
    run = RunResult.load(DATA / "results-broken.json")
    many = copy.deepcopy(run)
    many.scenarios = [copy.deepcopy(run.scenarios[3]) for _ in range(20)]  # 6 mismatches each
    many.scenarios[0].steps[0].cells[1].reason = "a | b\nc <script>"
    text = render_markdown(judge(many), limit=50)
    check_gfm(text)
    assert "... and 70 more failing cells" in text
    assert "a \\| b<br>c &lt;script&gt;" in text
    assert len(text.encode()) < 1024 * 1024  # GitHub's step summary limit


def test_known_deviations_are_listed_and_unused_entries_flagged() -> None:
    devs = KnownDeviations.parse(
        "- {scenario: '*udp*', reason: UDP not filtered, link: 'https://example.org/1'}\n"
        "- {scenario: no-such-scenario, reason: stale}\n"
    )
    text = render(RunResult.load(DATA / "results-broken.json"), "markdown", devs)
    check_gfm(text)
    assert "### Known deviations (reported, allowed)" in text
    assert "8 known deviations allowed" in text
    assert "| udp | 2/2 | 16/24 | 0 | 0 | 8 |" in text  # known deviations are not holes
    assert "`no-such-scenario`: stale" in text


def test_md_escape() -> None:
    assert md_escape("a|b") == "a\\|b"
    assert md_escape("x\ny") == "x<br>y"


def test_errors_and_skips_say_why() -> None:
    run = copy.deepcopy(RunResult.load(DATA / "results-broken.json"))
    run.scenarios[0].status, run.scenarios[0].steps = Status.SKIPPED, []
    run.scenarios[0].message = "SCTP is not supported by this cluster"
    run.scenarios[4].status = run.scenarios[4].steps[1].status = Status.ERROR
    run.scenarios[4].steps[1].message = "pods not ready: x/b"
    text = render(run, "markdown")
    check_gfm(text)
    assert "| step 2: " in text and "| error | pods not ready: x/b |" in text
    assert "### Skipped" in text
    assert "SCTP is not supported by this cluster" in text
