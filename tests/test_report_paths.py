"""Reports break cells down by path (same-node, cross-node, node, external), so a CNI that fails
only across nodes shows it at a glance: HTML grid marks and tag table, Markdown, console."""

from __future__ import annotations

import copy
import re
from pathlib import Path

from conformance.api.types import TrafficPath
from conformance.live.results import CellStatus, RunResult
from conformance.reports import judge, render
from conformance.reports.html import build, unpack_cells
from conformance.reports.judgement import PathCount, path_counts, tag_scores
from conformance.reports.text import note_lines, summary_lines

DATA = Path(__file__).parent / "data"
NODES = {"a": "kind-worker", "b": "kind-worker2", "c": "kind-worker"}


def cross_node_failures() -> RunResult:
    """The broken fixture as if its pods ran on two nodes (a, c on kind-worker, b on
    kind-worker2) and every mismatch were between the nodes; plus one node and one external
    cell, and a placement note."""
    run = copy.deepcopy(RunResult.load(DATA / "results-broken.json"))
    for sc in run.scenarios:
        pods = {c.source for st in sc.steps for c in st.cells} | {
            c.target for st in sc.steps for c in st.cells
        }
        sc.nodes = {p: NODES[p.rsplit("/", 1)[1]] for p in pods if "/" in p}
        for st in sc.steps:
            for c in st.cells:
                same = sc.nodes.get(c.source) == sc.nodes.get(c.target)
                c.path = TrafficPath.SAME_NODE if same else TrafficPath.CROSS_NODE
                if c.status is CellStatus.MISMATCH:
                    c.path = TrafficPath.CROSS_NODE
    passing = [c for c in run.scenarios[5].steps[0].cells if c.status is CellStatus.MATCH]
    passing[0].path, passing[1].path = TrafficPath.TO_NODE, TrafficPath.FROM_EXTERNAL
    for sc in run.scenarios[:2]:
        sc.notes.append("the cluster has 1 schedulable node for the scenario's 2 nodes: ...")
    return run


def test_path_counts_split_pass_fail_skip() -> None:
    j = judge(cross_node_failures())
    counts = path_counts(j)
    assert list(counts) == ["same-node", "cross-node", "node", "external"]
    assert counts["same-node"].failed == 0
    mismatches = sum(
        c.status is CellStatus.MISMATCH
        for sc in j.run.scenarios
        for st in sc.steps
        for c in st.cells
    )
    assert counts["cross-node"].failed == mismatches == 10
    assert counts["node"] == PathCount(passed=1) and counts["external"] == PathCount(passed=1)
    judged = sum(
        c.status in (CellStatus.MATCH, CellStatus.MISMATCH)
        for sc in j.run.scenarios
        for st in sc.steps
        for c in st.cells
    )
    assert sum(c.passed + c.failed for c in counts.values()) == judged
    assert PathCount(3, 1, 0, 2).phrase == "3 pass, 1 fail, 2 skip"
    assert PathCount().phrase == "none"


def test_tag_scores_carry_paths() -> None:
    scores = {s.tag: s for s in tag_scores(judge(cross_node_failures()))}
    udp = scores["udp"]
    assert udp.path("cross-node") is not None and udp.path("cross-node").failed == 8  # type: ignore[union-attr]
    assert udp.path("same-node").failed == 0  # type: ignore[union-attr]
    assert scores["pod-selector"].path("external") is None


def _tag_row(html: str, tag: str) -> str:
    match = re.search(rf'<tr class="\w+"><td><a href="#tag={tag}".*?</tr>', html)
    assert match, tag
    return match.group(0)


def test_html_tag_table_shows_failures_only_cross_node() -> None:
    html = render(cross_node_failures(), "html")
    head = re.search(r'<table class="tags" id="tag-table">.*?</thead>', html, re.S)
    assert head and all(
        f'<th class="path"><a href="#path={g}">{g}</a></th>' in head.group(0)
        for g in ("same-node", "cross-node", "node", "external")
    )
    row = _tag_row(html, "udp")
    assert re.search(r'<td class="path bad" data-path="cross-node">\d+ pass, 8 fail</td>', row)
    assert re.search(r'<td class="path" data-path="same-node">\d+ pass</td>', row)
    assert '<td class="path" data-path="external">–</td>' in row
    totals = re.search(r'<tr id="path-totals">.*?</tr>', html)
    assert totals and 'data-path="cross-node">' in totals.group(0)
    assert re.search(r'class="path bad" data-path="cross-node">\d+ pass, 10 fail', totals.group(0))


def test_html_grid_cells_carry_path_marks_and_the_panel_data_nodes() -> None:
    run = cross_node_failures()
    views, data = build(judge(run))
    cells = unpack_cells(data)
    by_index = {
        g.index: g
        for v in views
        for st in v.steps
        for grid in st.grids
        for row in grid.rows
        for g in row
        if g
    }
    for i, c in enumerate(cells):
        css = by_index[i].css.split()
        assert ("xn" in css) is (c["path"] == "cross-node"), (c, css)
        assert ("nd" in css) is (c["path"] in ("to-node", "from-node"))
        assert ("ex" in css) is (c["path"] in ("from-external", "to-external"))
    first = cells[0]
    src, dst = first["cell"].split(" ")[0], first["cell"].split(" ")[2]
    assert first["nodes"] == [NODES[src[-1]], NODES[dst[-1]]]
    html = render(run, "html")
    assert 'class="legend paths"' in html
    assert "(2 scenarios)" in html  # the note, once, with how many scenarios it is about


def test_markdown_has_a_path_table_and_path_columns() -> None:
    md = render(cross_node_failures(), "markdown")
    assert "### By path" in md
    assert re.search(r"\| \*\*cross-node\*\* \| \d+ \| 10 \| 0 \| 0 \|", md)
    assert re.search(r"\| same-node \| \d+ \| 0 \| 0 \| 0 \|", md)
    header = next(line for line in md.splitlines() if line.startswith("| tag |"))
    assert header.endswith("| same-node | cross-node | node | external |")
    udp = next(line for line in md.splitlines() if line.startswith("| **udp** |"))
    assert re.search(r"\| \d+ pass \| \*\*\d+ pass, 8 fail\*\* \| - \| - \|$", udp)
    assert "### Notes" in md and "1 schedulable node" in md


def test_console_summary_has_per_path_counts_and_notes() -> None:
    j = judge(cross_node_failures())
    lines = summary_lines(j)
    by_path = next(line for line in lines if line.startswith("by path: "))
    assert re.fullmatch(
        r"by path: same-node \d+ pass; cross-node \d+ pass, 10 fail; node 1 pass; "
        r"external 1 pass\.",
        by_path,
    )
    notes = note_lines(j)
    assert notes == [
        "note: the cluster has 1 schedulable node for the scenario's 2 nodes: ... ["
        + ", ".join(sc.name for sc in j.run.scenarios[:2])
        + "]"
    ]


def test_results_without_paths_read_unknown() -> None:
    j = judge(RunResult.load(DATA / "results-pass.json"))
    assert list(path_counts(j)) == ["unknown"]


def test_path_filter_only_when_the_run_has_several_paths() -> None:
    assert '<select id="path-filter">' in render(cross_node_failures(), "html")
    assert 'id="path-filter"' not in render(RunResult.load(DATA / "results-pass.json"), "html")
