"""The HTML report of the whole shipped suite stays small enough to open, mail and archive."""

from __future__ import annotations

from pathlib import Path

from conformance.reports import render
from tests.helpers import suite_run

ROOT = Path(__file__).resolve().parent.parent


def test_html_report_of_the_full_suite_is_at_most_3_mb() -> None:
    run = suite_run(ROOT)
    cells = sum(len(st.cells) for sc in run.scenarios for st in sc.steps)
    assert cells > 10_000, cells
    size = len(render(run, "html").encode())
    assert size <= 3_000_000, f"{size:,} bytes for {cells:,} cells"
