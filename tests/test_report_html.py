"""HTML report without a browser: self-contained, escaped, every cell class rendered."""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser
from pathlib import Path

from conformance.live.probing import Outcome
from conformance.live.results import CellStatus, RunResult, Status
from conformance.reference.evaluator import Verdict
from conformance.reports import KnownDeviations, judge, render
from conformance.reports.html import CLASSES, build, unpack_cells

DATA = Path(__file__).parent / "data"


def variant() -> RunResult:
    """The broken fixture plus one cell of each other kind (real runs rarely show all at once)."""
    run = copy.deepcopy(RunResult.load(DATA / "results-broken.json"))
    cells = [c for c in run.scenarios[5].steps[0].cells if c.status is CellStatus.MATCH]
    denied, flaky, failed, unsupported = cells[:4]
    denied.status, denied.observed, denied.observed_verdict = (
        CellStatus.MISMATCH,
        Outcome.TIMEOUT,
        Verdict.DENY,
    )
    denied.expected = Verdict.ALLOW
    denied.reason = "ingress of x/a: allowed by <b>policy</b> & friends"
    flaky.flaky = True
    failed.status, failed.observed, failed.observed_verdict = (
        CellStatus.CHECK_FAILED,
        Outcome.CHECK_FAILED,
        None,
    )
    unsupported.status = CellStatus.NOT_SUPPORTED
    run.scenarios[5].status = run.scenarios[5].steps[0].status = Status.FAIL
    return run


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "action") and value:
                self.refs.append(value)


def test_self_contained() -> None:
    text = render(variant(), "html")
    parser = _Collector()
    parser.feed(text)
    assert "link" not in parser.tags  # no stylesheets to fetch
    assert all(r.startswith("#") for r in parser.refs), parser.refs
    assert not re.search(r"https?://(?!127\.0\.0\.1)", text.split('id="cell-data"')[0])
    assert "default-src 'none'" in text  # the page cannot fetch anything even if it tried


def test_every_cell_class_is_rendered() -> None:
    text = render(variant(), "html")
    for css in ("match-allow", "match-deny", "unexpectedly-allowed", "unexpectedly-denied"):
        assert f'class="c {css}' in text
    assert 'class="c match-allow flaky"' in text or 'class="c match-deny flaky"' in text
    assert 'class="c check-failed"' in text
    assert 'class="c not-supported"' in text
    assert 'class="c implementation-defined"' in text
    assert set(CLASSES) >= {"known", "flaky"}


def test_cell_data_is_escaped_and_indexed() -> None:
    run = variant()
    text = render(run, "html")
    assert "<b>policy</b>" not in text  # in titles it is escaped, in the JSON it is \u003c
    raw = text.split('<script type="application/json" id="cell-data">')[1].split("</script>")[0]
    data = unpack_cells(json.loads(raw))
    flat = [(sc, st, c) for sc in run.scenarios for st in sc.steps for c in st.cells]
    assert len(data) == len(flat)
    hit = [d for d in data if d["kind"] == "unexpectedly-denied"]
    assert hit and hit[0]["reason"] == "ingress of x/a: allowed by <b>policy</b> & friends"
    for d, (sc, st, c) in zip(data, flat, strict=True):  # nothing lost in packing
        assert (d["scenario"], d["step"], d["cell"], d["reason"], d["command"]) == (
            sc.name,
            f"step {st.index + 1}: {st.name}",
            f"{c.source} -> {c.target} {c.port}/{c.protocol}",
            c.reason,
            c.command,
        )
        assert (d["history"], d["attempts"], d["convergedAfter"]) == (
            c.history,
            c.attempts,
            c.converged_after_s,
        )
    views, packed = build(judge(run))
    cells = packed["cells"]
    indices = [
        gc.index
        for v in views
        for st in v.steps
        for g in st.grids
        for r in g.rows
        for gc in r
        if gc
    ]
    assert sorted(indices) == list(range(len(cells)))


def test_summary_identity_tags_and_chart() -> None:
    text = render(RunResult.load(DATA / "results-broken.json"), "html")
    assert "4 of 6 scenarios fail" in text
    assert "v1.32.0-netpol-embedded" in text
    assert '<td id="cni">not detected</td>' in text
    assert text.count('class="bar-match"') == 11  # one bar per tag
    assert (
        '<tr class="bad"><td><a href="#tag=udp" data-tag="udp">udp</a></td><td>0/2</td><td>16/24</td>'
        in text
    )
    assert "kind: NetworkPolicy" in text  # policies as YAML


def test_known_deviation_cells_are_marked() -> None:
    devs = KnownDeviations.parse("- {scenario: '*udp*', reason: UDP not filtered}\n")
    text = render(RunResult.load(DATA / "results-broken.json"), "html", devs)
    assert text.count('class="c unexpectedly-allowed known"') == 8
    assert "known deviation: UDP not filtered" in text
