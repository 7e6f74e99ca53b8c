"""The HTML report in a real headless browser (Debian's chromium, driven over the DevTools protocol).

Checks what a reader relies on: the page loads without console errors or network requests, clicking
a mismatch cell shows the evaluator's reason, the filters hide what they should. The screenshot
(``reports/report.png``, the broken-CNI fixture with a mismatch opened) is kept by CI as an artefact.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.live.results import RunResult
from conformance.reports import render

websocket = pytest.importorskip(
    "websocket", reason="websocket-client (a kubernetes dependency) is missing"
)

DATA = Path(__file__).parent / "data"
REPORTS = Path(__file__).parent.parent / "reports"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,2000",
    "--remote-debugging-port=0",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium not installed (apt-get install -y chromium; .ci/run installs it)",
    ),
]


class Page:
    """One DevTools session on a page: commands, and the events that arrived meanwhile."""

    def __init__(self, ws_url: str) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg.get("result", {})
                return result
            self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for ev in self.events:
            if ev.get("method") == method:
                return ev
        while time.monotonic() < deadline:
            msg: dict[str, Any] = json.loads(self.ws.recv())
            self.events.append(msg)
            if msg.get("method") == method:
                return msg
        raise AssertionError(f"no {method} within {timeout}s")

    def js(self, expression: str) -> Any:
        got = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in got:
            raise AssertionError(f"{expression}: {got['exceptionDetails']}")
        return got["result"].get("value")

    def open(self, url: str) -> None:
        """Load ``url`` afresh (via about:blank, so a new fragment is a new load too); only
        events of this load are kept."""
        self.events.clear()
        self.send("Page.navigate", url="about:blank")
        self.wait_for("Page.loadEventFired")
        self.events.clear()
        self.send("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        base = json.dumps(url.split("#")[0])
        deadline = time.monotonic() + 30
        while not self.js(
            f"document.readyState === 'complete' && location.href.split('#')[0] === {base}"
        ):
            assert time.monotonic() < deadline, f"{url} did not finish loading"
            time.sleep(0.05)
        self.js("new Promise(r => requestAnimationFrame(() => r(true)))")

    def errors(self) -> list[str]:
        """Uncaught exceptions, console.error/assert calls and error log entries so far."""
        out = []
        for ev in self.events:
            method, params = ev.get("method"), ev.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                described = details.get("exception", {}).get("description", details.get("text"))
                out.append(f"{details.get('url', '')}:{details.get('lineNumber')}: {described}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                out.append(json.dumps(params.get("args"))[:500])
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                out.append(params["entry"].get("text", ""))
        return out

    def requests(self) -> list[str]:
        return [
            ev["params"]["request"]["url"]
            for ev in self.events
            if ev.get("method") == "Network.requestWillBeSent"
        ]

    def click(self, selector: str) -> None:
        """A real mouse click at the centre of the element (not element.click())."""
        box = self.js(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            " el.scrollIntoView({block: 'center'}); const r = el.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box[0],
                y=box[1],
                button="left",
                clickCount=1,
            )


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    assert CHROMIUM is not None
    profile = tempfile.mkdtemp(prefix="netpol-chromium-")
    log = open(os.path.join(profile, "chromium.log"), "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 90
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"chromium did not start (exit {proc.poll()}): "
                    + Path(profile, "chromium.log").read_text(errors="replace")[-2000:]
                )
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as resp:
            targets = json.load(resp)
        ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        p = Page(ws_url)
        for domain in ("Runtime", "Log", "Page", "Network"):
            p.send(f"{domain}.enable")
        p.send(
            "Emulation.setDeviceMetricsOverride",
            width=1400,
            height=2000,
            deviceScaleFactor=1,
            mobile=False,
        )
        yield p
        p.ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def broken_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(render(RunResult.load(DATA / "results-broken.json"), "html"), encoding="utf-8")
    return path


def test_error_detection_works(page: Page, tmp_path: Path) -> None:
    """The console check below is only worth something if it sees an error when there is one."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><title>x</title><script>undefinedFunction();</script>")
    page.open(bad.as_uri())
    assert any("undefinedFunction" in e for e in page.errors())


@pytest.mark.parametrize("name", ["pass", "broken"])
def test_loads_without_console_errors_or_requests(page: Page, name: str, tmp_path: Path) -> None:
    html = tmp_path / f"{name}.html"
    html.write_text(render(RunResult.load(DATA / f"results-{name}.json"), "html"), encoding="utf-8")
    page.open(html.as_uri())
    assert page.errors() == []
    assert page.requests() == [html.as_uri()]  # the file itself and nothing else
    assert page.js("document.querySelectorAll('section.scenario').length") == 6
    assert page.js("typeof window.netpolReport") == "object"


def test_clicking_a_mismatch_shows_its_reason(page: Page, broken_html: Path) -> None:
    page.open(broken_html.as_uri())
    assert page.js("document.getElementById('panel').hidden") is True
    page.click("td.c.unexpectedly-allowed")
    panel = page.js("document.getElementById('panel').innerText")
    assert page.js("document.getElementById('panel').hidden") is False
    assert "x/a -> x/b 80/TCP: unexpectedly-allowed" in panel
    assert "isolated by x-59ab60-1/allow-client-a-via-cidr-egress-rule; no rule allows it" in panel
    assert "connected (means allow)" in panel
    assert "kubectl exec -n x-59ab60-1 a -c cont-80-tcp" in panel
    assert "13: connected" in panel  # attempts and history
    assert page.errors() == []


def test_filters(page: Page, broken_html: Path) -> None:
    page.open(broken_html.as_uri())
    visible = "[...document.querySelectorAll('section.scenario')].filter(s => !s.hidden).length"
    assert page.js(visible) == 4  # only failures, by default when something failed
    page.click("#only-failures")
    assert page.js(visible) == 6
    page.js(
        "(() => { const s = document.getElementById('protocol-filter'); s.value = 'UDP';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    assert page.js(visible) == 2
    page.js(  # resolves after the report's own hashchange listener ran
        "new Promise(r => { addEventListener('hashchange', () => setTimeout(r, 0), {once: true});"
        " location.hash = 'tag=ipblock&protocol='; })"
    )
    assert page.js(visible) == 2
    assert page.js("document.getElementById('shown').textContent") == "showing 2 of 6 scenarios"
    assert page.errors() == []


def test_screenshot_artefact(page: Page, broken_html: Path) -> None:
    """reports/report.png: summary, the first failing scenario and its opened mismatch."""
    page.open(broken_html.as_uri() + "#cell=first-mismatch")
    assert "unexpectedly-allowed" in page.js("document.getElementById('panel-title').textContent")
    shot = page.send("Page.captureScreenshot", format="png")
    REPORTS.mkdir(exist_ok=True)
    target = REPORTS / "report.png"
    target.write_bytes(base64.b64decode(shot["data"]))
    assert target.stat().st_size > 10_000
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mismatch_kinds_look_different(page: Page, tmp_path: Path) -> None:
    """A security hole and an outage must not look alike; an outage cell shows its reason too."""
    from tests.test_report_html import variant

    html = tmp_path / "variant.html"
    html.write_text(render(variant(), "html"), encoding="utf-8")
    page.open(html.as_uri() + "#all")

    def style(selector: str) -> list[str]:
        return list(
            page.js(
                f"(() => {{ const s = getComputedStyle(document.querySelector({json.dumps(selector)}));"
                " return [s.backgroundColor, s.outlineStyle, s.color, s.boxShadow]; })()"
            )
        )

    hole, outage = style("td.c.unexpectedly-allowed"), style("td.c.unexpectedly-denied")
    assert hole[0] != outage[0] and hole[1] != outage[1]
    assert style("td.c.flaky") != style("td.c.match-allow:not(.flaky)")
    page.click("td.c.unexpectedly-denied")
    panel = page.js("document.getElementById('panel').innerText")
    assert "unexpectedly-denied" in panel
    assert "allowed by <b>policy</b> & friends" in panel  # shown as text, not markup
    assert page.errors() == []


def test_first_mismatch_is_in_view_at_1400x1000_without_scrolling(
    page: Page, broken_html: Path, tmp_path: Path
) -> None:
    """Opened on a cell, the page shows the summary and that cell's step with no scroll (chromium's
    own --screenshot renders a scrolled page blank); #all shows everything again."""
    page.send(
        "Emulation.setDeviceMetricsOverride",
        width=1400,
        height=1000,
        deviceScaleFactor=1,
        mobile=False,
    )
    try:
        page.open(broken_html.as_uri() + "#cell=first-mismatch")
        assert page.js("scrollY") == 0
        box = page.js(
            "(() => { const r = document.querySelector('td.c.selected').getBoundingClientRect();"
            " return [r.top, r.bottom]; })()"
        )
        assert box[0] >= 0 and box[1] <= 1000, box
        assert page.js("document.getElementById('panel').hidden") is False
        visible = "[...document.querySelectorAll('section.scenario')].filter(s => !s.hidden).length"
        assert page.js(visible) == 1
        page.js(
            "new Promise(r => { addEventListener('hashchange', () => setTimeout(r, 0), {once: true});"
            " location.hash = 'all'; })"
        )
        assert page.js(visible) == 6
        assert page.errors() == []
    finally:
        page.send(
            "Emulation.setDeviceMetricsOverride",
            width=1400,
            height=2000,
            deviceScaleFactor=1,
            mobile=False,
        )
    assert CHROMIUM is not None
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            *(
                CHROMIUM,
                *FLAGS[:-2],
                "--window-size=1400,1000",
                f"--user-data-dir={tmp_path / 'p'}",
            ),
            *(f"--screenshot={shot}", broken_html.as_uri() + "#cell=first-mismatch"),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    # A blank 1400x1000 PNG is about 6 kB; the summary, grid and panel make it far larger.
    assert shot.stat().st_size > 50_000


def test_full_suite_report_renders_quickly(page: Page, tmp_path: Path) -> None:
    """The report of the whole shipped suite (about 10,500 cells): time from navigation to the
    first frame after load, in headless chromium. Measured on this 2-core machine: about 1 s."""
    from tests.helpers import suite_run

    html = tmp_path / "suite.html"
    html.write_text(render(suite_run(Path(__file__).resolve().parent.parent), "html"))
    started = time.monotonic()
    page.open(html.as_uri())
    first_render = time.monotonic() - started
    print(f"full-suite report: {html.stat().st_size:,} bytes, first render {first_render:.2f} s")
    assert page.errors() == []
    assert page.js("window.netpolReport.count") > 10_000
    assert page.js("document.querySelectorAll('td.c[data-i]').length") > 10_000
    assert first_render < 8.0, f"first render took {first_render:.1f} s"
    # A cell's panel is built from the packed data on demand.
    page.js("document.querySelector('td.c.match-deny').closest('details').open = true")
    page.click("td.c.match-deny")
    panel = page.js("document.getElementById('panel').innerText")
    assert "why the reference says deny" in panel and "/agnhost connect " in panel


def test_a_tag_whose_scenarios_were_all_skipped_does_not_look_failed(
    page: Page, tmp_path: Path
) -> None:
    from conformance.live.results import ScenarioResult, Status

    run = RunResult.load(DATA / "results-broken.json")
    run.scenarios.append(
        ScenarioResult("sctp-only", "f.yaml", ["sctp"], Status.SKIPPED, "SCTP not supported")
    )
    html = tmp_path / "skipped.html"
    html.write_text(render(run, "html"), encoding="utf-8")
    page.open(html.as_uri() + "#all")

    def look(tag: str) -> list[str]:
        return list(
            page.js(
                f"(() => {{ const a = document.querySelector('#tag-table a[data-tag={tag}]');"
                " const s = getComputedStyle(a); return [s.color, s.fontWeight]; })()"
            )
        )

    failed, skipped, passed = look("udp"), look("sctp"), look("pod-selector")
    assert skipped != failed and int(skipped[1]) < 600, (skipped, failed)
    assert skipped != passed, "skipped is told apart from passed too"


def test_cross_node_cells_are_marked_and_the_panel_names_the_nodes(
    page: Page, tmp_path: Path
) -> None:
    """A cross-node cell has a visible corner mark a same-node one lacks; its panel says which
    nodes the two pods ran on."""
    from conformance.reports import judge
    from conformance.reports.html import build, unpack_cells
    from tests.test_report_paths import cross_node_failures

    run = cross_node_failures()
    html = tmp_path / "paths.html"
    html.write_text(render(run, "html"), encoding="utf-8")
    page.open(html.as_uri() + "#all")

    def corner(selector: str) -> list[str]:
        return list(
            page.js(
                f"(() => {{ const s = getComputedStyle(document.querySelector({json.dumps(selector)}),"
                " '::after'); return [s.content, s.borderTopColor]; })()"
            )
        )

    content, colour = corner("td.c.xn")
    assert content == '""' and colour not in ("rgba(0, 0, 0, 0)", "transparent")
    assert corner("td.c.match-allow:not(.xn):not(.nd):not(.ex)")[0] == "none"
    assert corner("td.c.nd") != corner("td.c.xn")
    index = int(page.js("document.querySelector('td.c.unexpectedly-allowed.xn').dataset.i"))
    cell = unpack_cells(build(judge(run))[1])[index]
    page.click(f'td.c[data-i="{index}"]')
    panel = page.js("document.getElementById('panel').innerText")
    src, dst = cell["nodes"]
    assert f"cross-node, IPv4 (from {src} to {dst})" in panel
    assert src != dst
    assert page.js("document.querySelector('#path-totals td.path.bad').dataset.path") == (
        "cross-node"
    )

    def opacity(selector: str) -> str:
        return str(
            page.js(f"getComputedStyle(document.querySelector({json.dumps(selector)})).opacity")
        )

    same = "td.c.match-allow:not(.xn):not(.nd):not(.ex)"
    assert opacity(same) == opacity("td.c.xn") == "1"
    page.js(  # the path column's link in the tag table sets the path filter
        "new Promise(r => { addEventListener('hashchange', () => setTimeout(r, 0), {once: true});"
        " document.querySelector('#tag-table th.path a[href=\"#path=cross-node\"]').click(); })"
    )
    assert page.js("document.getElementById('path-filter').value") == "cross-node"
    assert opacity(same) == "0.15" and opacity("td.c.xn") == "1"
    page.js(
        "(() => { const s = document.getElementById('path-filter'); s.value = 'same-node';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    assert opacity(same) == "1" and opacity("td.c.xn") == "0.15"
    assert page.errors() == []
