"""Reports people read, built from a run's results JSON (docs/reports.md).

``render(run, fmt)`` gives one format as text (``html``, ``junit``, ``markdown``, and
``npa-conformance``, the network-policy-api ConformanceReport preview of ``npa``); ``write_reports``
writes the first three next to a results file, as ``run`` does; ``compare`` (``netpol-conformance
diff``) lists the cells whose verdict changed between two runs. Known deviations
(``KnownDeviations``) turn accepted mismatches into reported-but-allowed in every one of them.
"""

from __future__ import annotations

from pathlib import Path

from conformance.live.results import RunResult, write_with_latest
from conformance.reports.deviations import DeviationsError, KnownDeviation, KnownDeviations
from conformance.reports.judgement import Judgement, judge

FORMATS = ("html", "junit", "markdown")  # what `run` writes next to the results
# What `report` can render: the above and the network-policy-api ConformanceReport preview.
REPORT_FORMATS = (*FORMATS, "npa-conformance")
# Output names next to results-<run id>.json: (per-run name, latest-run name).
FILE_NAMES = {
    "html": ("report-{run_id}.html", "report.html"),
    "junit": ("junit-{run_id}.xml", "junit.xml"),
    "markdown": ("summary-{run_id}.md", "summary.md"),
}

__all__ = [
    "FILE_NAMES",
    "FORMATS",
    "REPORT_FORMATS",
    "DeviationsError",
    "Judgement",
    "KnownDeviation",
    "KnownDeviations",
    "judge",
    "render",
    "write_reports",
]


def render(run: RunResult, fmt: str, deviations: KnownDeviations | None = None) -> str:
    """One report as text; ``fmt`` is one of ``REPORT_FORMATS``. ``npa-conformance`` takes the
    implementation from the run's CNI and ignores ``deviations`` (the upstream record has none)."""
    if fmt == "npa-conformance":
        from conformance.reports.npa import render_npa

        return render_npa(run)
    j = judge(run, deviations)
    if fmt == "html":
        from conformance.reports.html import render_html

        return render_html(j)
    if fmt == "junit":
        from conformance.reports.junit import render_junit

        return render_junit(j)
    if fmt == "markdown":
        from conformance.reports.markdown import render_markdown

        return render_markdown(j)
    raise ValueError(f"unknown report format {fmt!r}; accepted: {', '.join(REPORT_FORMATS)}")


def write_reports(
    run: RunResult, directory: str | Path, deviations: KnownDeviations | None = None
) -> list[Path]:
    """Write every format into ``directory`` once, under its per-run name, and point the
    latest-run name at it; returns the per-run files."""
    out = []
    for fmt in FORMATS:
        text = render(run, fmt, deviations)
        per_run, latest = FILE_NAMES[fmt]
        out.append(
            write_with_latest(Path(directory), per_run.format(run_id=run.run_id), latest, text)
        )
    return out
