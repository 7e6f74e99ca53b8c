"""The ``report --compare`` HTML page in headless chromium (the DevTools session of
test_report_browser): it loads without errors or requests and shows the expected tables. The
screenshot (``reports/compare.png``) is kept by CI as an artefact, like ``reports/report.png``."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from conformance.reports.compare import render_compare
from tests.test_report_browser import CHROMIUM, REPORTS, Page, page  # noqa: F401 (page: fixture)
from tests.test_report_compare import EXCEPT, runs

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium not installed (apt-get install -y chromium; .ci/run installs it)",
    ),
]


def test_compare_page_shows_the_tables(page: Page, tmp_path: Path) -> None:  # noqa: F811
    html = tmp_path / "compare.html"
    html.write_text(render_compare(list(runs()), "html"), encoding="utf-8")
    page.open(html.as_uri())
    assert page.errors() == []
    assert page.requests() == [html.as_uri()]  # the file itself and nothing else

    def texts(selector: str) -> list[str]:
        return list(page.js(f"[...document.querySelectorAll({selector!r})].map(e => e.innerText)"))

    assert texts("#scenarios thead th") == ["scenario", "cilium", "flannel", "calico"]
    assert page.js("document.querySelectorAll('#scenarios tbody tr').length") == 6
    row = page.js(
        "[...document.querySelectorAll('#scenarios tbody tr')]"
        f".find(r => r.cells[0].innerText.startsWith({EXCEPT!r}))"
        ".innerText.split('\\t').map(s => s.trim())"
    )
    assert row[1:] == ["PASS", "FAIL", "PASS"]
    udp = page.js(
        "[...document.querySelectorAll('#tags tbody tr')]"
        ".find(r => r.cells[0].innerText === 'udp').innerText.split('\\t')"
    )
    assert udp == ["udp", "2/2", "0/2", "2/2"]
    assert page.js("document.querySelectorAll('#disagreements tbody tr').length") == 11
    # A security hole looks like one: the single-run report's colours apply.
    hole, match = (
        page.js(f"getComputedStyle(document.querySelector({sel!r})).backgroundColor")
        for sel in ("#disagreements td.c.unexpectedly-allowed", "#disagreements td.c.match-deny")
    )
    assert hole != match

    shot = page.send("Page.captureScreenshot", format="png")
    REPORTS.mkdir(exist_ok=True)
    target = REPORTS / "compare.png"
    target.write_bytes(base64.b64decode(shot["data"]))
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert target.stat().st_size > 10_000
