"""The selftest detection matrix page in headless chromium (the DevTools session of
test_report_browser): it loads without errors or requests, and a missed deviation and a clean run
that mismatches look like failures. The screenshot is ``reports/selftest.png``."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from conformance.reports.selftest import render_selftest_html
from tests.test_report_browser import CHROMIUM, REPORTS, Page, page  # noqa: F401 (page: fixture)
from tests.test_report_selftest import matrix

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium not installed (apt-get install -y chromium; .ci/run installs it)",
    ),
]


def test_selftest_page_marks_misses_and_a_dirty_clean_run(page: Page, tmp_path: Path) -> None:  # noqa: F811
    html = tmp_path / "selftest.html"
    html.write_text(render_selftest_html(matrix(clean_mismatch=True)), encoding="utf-8")
    page.open(html.as_uri())
    assert page.errors() == []
    assert page.requests() == [html.as_uri()]  # the file itself and nothing else

    def at(deviation: str) -> str:
        return f'#matrix tr[data-deviation="{deviation}"]'

    def row(deviation: str) -> list[str]:
        return list(
            page.js(
                f"[...document.querySelector({at(deviation)!r}).cells].map(c => c.innerText.trim())"
            )
        )

    assert row("none")[:3] == ["none (clean run)", "MISMATCH", "3"]
    assert row("ignore-except")[:3] == ["ignore-except", "caught", "5"]
    assert row("named-port-wrong-pod")[:3] == ["named-port-wrong-pod", "MISSED", "0"]

    def background(deviation: str) -> str:
        return str(
            page.js(f"getComputedStyle(document.querySelector({at(deviation)!r})).backgroundColor")
        )

    assert background("named-port-wrong-pod") == background("none")
    assert background("named-port-wrong-pod") != background("ignore-except")
    assert page.js("document.querySelectorAll('section.run.fail').length") == 2

    shot = page.send("Page.captureScreenshot", format="png")
    REPORTS.mkdir(exist_ok=True)
    target = REPORTS / "selftest.png"
    target.write_bytes(base64.b64decode(shot["data"]))
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert target.stat().st_size > 10_000
