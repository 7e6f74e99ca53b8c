"""Plain-text truth tables of a live step: expected, observed and where they differ.

Used by the pytest plugin's failure output and by text reports; the grid layout is the one
``evaluate`` prints (rows = from, columns = to, one grid per port/protocol).
"""

from __future__ import annotations

from collections.abc import Iterable

from conformance.api.types import Grid
from conformance.live.probing import Outcome
from conformance.live.results import CellResult, CellStatus, StepResult
from conformance.reference.evaluator import Verdict
from conformance.reference.truthtable import mark_for, render_grid

OBSERVED_MARKS = {
    Outcome.CONNECTED: ".",
    Outcome.TIMEOUT: "X",
    Outcome.REFUSED: "r",
    Outcome.UNSUPPORTED: "n",
    Outcome.CHECK_FAILED: "!",
}
OBSERVED_LEGEND = (
    "observed: . connected   X timeout (dropped)   r refused   n not supported here   "
    "! probe could not run   ? not probed (self)"
)
DIFF_LEGEND = (
    "diff: A allowed but should be denied (security hole)   D denied but should be allowed (outage)"
)


def _grids(cells: Iterable[CellResult], mark: str) -> str:
    cells = list(cells)
    grids = sorted(
        {Grid(c.port, c.protocol, c.family) for c in cells},
        key=lambda g: (str(g.family), g.port, str(g.protocol)),
    )
    sources = list(dict.fromkeys(c.source for c in cells))
    targets = list(dict.fromkeys(c.target for c in cells))
    blocks = []
    for g in grids:
        marks = {(s, t): " " for s in sources for t in targets}
        for c in cells:
            if Grid(c.port, c.protocol, c.family) == g:
                marks[(c.source, c.target)] = _mark(c, mark)
        blocks.append(render_grid(str(g), sources, targets, marks))
    return "\n\n".join(blocks)


def _mark(c: CellResult, which: str) -> str:
    if which == "expected":
        return mark_for(c.expected, c.served)
    if which == "observed":
        return OBSERVED_MARKS.get(c.observed, "?") if c.observed else "?"
    if c.status is CellStatus.MISMATCH:
        return "A" if c.observed_verdict is Verdict.ALLOW else "D"
    return {
        CellStatus.CHECK_FAILED: "!",
        CellStatus.NOT_SUPPORTED: "n",
        CellStatus.IGNORED: "?",
    }.get(c.status, ".")


def step_tables(step: StepResult) -> str:
    """Expected, observed and diff grids of one step, with legends."""
    return "\n".join(
        [
            "expected:",
            _grids(step.cells, "expected"),
            "",
            "observed:",
            _grids(step.cells, "observed"),
            OBSERVED_LEGEND,
            "",
            "diff:",
            _grids(step.cells, "diff"),
            DIFF_LEGEND,
        ]
    )


def mismatch_lines(step: StepResult, limit: int = 20) -> list[str]:
    """One line per mismatching cell: what differs, the evaluator's reason, how to reproduce."""
    lines = []
    bad = [c for c in step.cells if c.status in (CellStatus.MISMATCH, CellStatus.CHECK_FAILED)]
    for c in bad[:limit]:
        what = (
            f"expected {c.expected}, observed {c.observed}"
            if c.status is CellStatus.MISMATCH
            else f"probe could not run ({c.detail})"
        )
        lines.append(
            f"{c.source} -> {c.target} {c.port}/{c.protocol}: {what} after {c.attempts} attempts"
            f"{' (flaky)' if c.flaky else ''}\n    why expected: {c.reason}\n    reproduce: {c.command}"
        )
    if len(bad) > limit:
        lines.append(f"... and {len(bad) - limit} more (see the results JSON)")
    return lines
