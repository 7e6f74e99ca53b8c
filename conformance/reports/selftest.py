"""The detection matrix of ``selftest`` as a self-contained HTML page (docs/selftest.md).

One row per run: the clean run first (it must have no mismatch and no error), then each deviation,
caught or missed, with its mismatching and probed cells, the scenarios and steps that caught it,
its errors and its time. A missed deviation and a clean run that mismatches are marked as failures,
as in the single-run report; the page reuses its Jinja environment and stylesheet.
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup

from conformance.live.selftest import Catch, KnobRun, Selftest
from conformance.reports.html import asset, templates


@dataclass(frozen=True)
class RunView:
    """One row of the matrix: ``state`` is pass (caught, or a clean clean run), fail or error."""

    deviation: str
    clean: bool
    state: str
    verdict: str
    mismatches: int
    cells: int
    allowed: int
    scenarios: list[str]
    catches: list[Catch]
    errors: list[str]
    seconds: float
    results: str


def run_view(run: KnobRun, clean: bool) -> RunView:
    if clean:
        state = "fail" if run.caught else ("error" if run.errors else "pass")
        verdict = {"pass": "0 mismatches", "fail": "MISMATCH", "error": "errors"}[state]
    else:
        state = "pass" if run.caught else "fail"
        verdict = "caught" if run.caught else "MISSED"
    return RunView(
        deviation=run.deviation,
        clean=clean,
        state=state,
        verdict=verdict,
        mismatches=run.mismatches,
        cells=run.cells,
        allowed=sum(c.unexpectedly_allowed for c in run.catches),
        scenarios=sorted({c.scenario for c in run.catches}),
        catches=list(run.catches),
        errors=list(run.errors),
        seconds=run.seconds,
        results=run.results,
    )


def render_selftest_html(test: Selftest) -> str:
    views = ([run_view(test.clean, True)] if test.clean is not None else []) + [
        run_view(r, False) for r in test.runs
    ]
    caught = len(test.runs) - len(test.missed)
    sentence = f"{caught}/{len(test.runs)} deviations caught by {len(test.scenarios)} scenarios"
    if test.missed:
        sentence += f"; missed: {', '.join(test.missed)}"
    if test.clean is None:
        sentence += "; no clean run"
    elif test.clean.caught or test.clean.errors:
        sentence += (
            f"; the clean run has {test.clean.mismatches} mismatching cells and "
            f"{len(test.clean.errors)} errors"
        )
    return (
        templates()
        .get_template("selftest.html.j2")
        .render(
            test=test,
            verdict="pass" if test.ok else "fail",
            sentence=sentence + ".",
            runs=views,
            options=sorted(test.options.items()),
            seconds=sum(v.seconds for v in views),
            css=Markup(asset("report.css")),
        )
    )
