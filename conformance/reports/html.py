"""Self-contained HTML report: one file, inline CSS, JS and SVG, nothing fetched when viewed.

Summary first (cluster and tool identity, totals, per-feature-tag table and bar chart), then per
scenario and step the truth-table grids per port/protocol, coloured by cell class, the policies in
force as YAML, and a details panel for a clicked cell (the evaluator's reason, the observed outcome,
attempts, convergence time, the ``kubectl exec`` that reproduces the probe).

The page honours a URL fragment so a screenshot or a test can open it in a given state without
clicking: ``#cell=first-mismatch`` (or ``#cell=<n>``), ``failures``, ``tag=udp``, ``protocol=UDP``,
joined with ``&``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from conformance.api.types import AddressFamily
from conformance.live.results import CellResult, CellStatus, ScenarioResult, StepResult
from conformance.reference.truthtable import mark_for
from conformance.reports.judgement import (
    Judgement,
    TagScore,
    cell_class,
    cell_label,
    one_sentence,
    step_title,
    tag_scores,
    totals,
)
from conformance.reports.text import OBSERVED_MARKS

# What each cell class shows and means; the legend and the summary cards use the same words.
CLASSES: dict[str, tuple[str, str]] = {
    "match-allow": (".", "allowed, as the reference says"),
    "match-deny": ("X", "denied, as the reference says"),
    "unexpectedly-allowed": ("A", "allowed but should be denied: a security hole"),
    "unexpectedly-denied": ("D", "denied but should be allowed: an outage"),
    "known": ("K", "a mismatch accepted as a known deviation"),
    "flaky": ("~", "flaky: the observation changed while re-probing"),
    "not-supported": ("n", "not supported by this cluster (e.g. SCTP)"),
    "check-failed": ("!", "the probe could not run: says nothing about the CNI"),
    "implementation-defined": ("?", "pod to itself: implementation-defined, not judged"),
}


@dataclass(frozen=True)
class GridCell:
    index: int  # into the page's cell data
    css: str
    mark: str
    title: str


@dataclass(frozen=True)
class Grid:
    port: int
    protocol: str
    sources: list[str]
    targets: list[str]
    rows: list[list[GridCell | None]]


@dataclass(frozen=True)
class StepView:
    title: str
    outcome: str
    message: str
    grids: list[Grid]
    failures: list[tuple[int, CellResult, str]]  # (cell index, cell, known-deviation note)
    policies_yaml: str
    policy_count: int


@dataclass(frozen=True)
class ScenarioView:
    anchor: str
    name: str
    file: str
    tags: list[str]
    outcome: str
    message: str
    protocols: list[str]
    steps: list[StepView] = field(default_factory=list)


@dataclass(frozen=True)
class Bar:
    """One row of the per-tag bar chart, geometry in SVG user units."""

    tag: str
    y: int
    match_w: float
    allowed_w: float
    denied_w: float
    known_w: float
    label: str
    ok: bool


CHART_WIDTH = 360


def bars(scores: list[TagScore]) -> list[Bar]:
    """Stacked 100% bars: the share of judged cells matched, unexpectedly allowed, unexpectedly
    denied, and known deviations."""
    out = []
    for i, s in enumerate(scores):
        n = s.cells_judged or 1
        out.append(
            Bar(
                tag=s.tag,
                y=i * 24,
                match_w=CHART_WIDTH * s.cells_matched / n,
                allowed_w=CHART_WIDTH * s.allowed / n,
                denied_w=CHART_WIDTH * s.denied / n,
                known_w=CHART_WIDTH * s.known / n,
                label=f"{s.cells_matched}/{s.cells_judged}",
                ok=s.ok,
            )
        )
    return out


def _display(cell: CellResult, known: bool) -> tuple[str, str]:
    """CSS classes and the one-character mark of a cell."""
    base = cell_class(cell)
    if cell.status is CellStatus.MATCH:
        mark = mark_for(cell.expected, cell.served)
    elif cell.status is CellStatus.MISMATCH:
        mark = "A" if base == "unexpectedly-allowed" else "D"
    elif cell.status is CellStatus.CHECK_FAILED:
        mark = "!"
    elif cell.status is CellStatus.NOT_SUPPORTED:
        mark = "n"
    else:
        mark = "?"
    css = ["c", base]
    if known:
        css.append("known")
    if cell.flaky:
        css.append("flaky")
        mark += "~"
    return " ".join(css), mark


def _cell_data(sc: ScenarioResult, st: StepResult, c: CellResult, j: Judgement) -> dict[str, Any]:
    dev = j.known_for(sc, st, c)
    return {
        "scenario": sc.name,
        "step": step_title(st),
        "cell": cell_label(c),
        "status": str(c.status),
        "kind": c.mismatch_kind,
        "expected": str(c.expected),
        "declared": str(c.declared) if c.declared else None,
        "served": c.served,
        "path": str(c.path) if c.path else None,
        "family": str(c.family),
        "observed": str(c.observed) if c.observed else None,
        "observedMark": OBSERVED_MARKS.get(c.observed, "") if c.observed else "",
        "observedVerdict": str(c.observed_verdict) if c.observed_verdict else None,
        "attempts": c.attempts,
        "history": c.history,
        "convergedAfter": c.converged_after_s,
        "flaky": c.flaky,
        "reason": c.reason,
        "detail": c.detail,
        "command": c.command,
        "known": {"reason": dev.reason, "link": dev.link} if dev else None,
    }


def _grids(cells: list[tuple[int, CellResult]], j_known: set[int]) -> list[Grid]:
    # One grid per port/protocol/family; an IPv6 grid's protocol reads "TCP/IPv6".
    pps = sorted({(str(c.family), c.port, str(c.protocol)) for _, c in cells})
    sources = list(dict.fromkeys(c.source for _, c in cells))
    targets = list(dict.fromkeys(c.target for _, c in cells))
    grids = []
    for family, port, proto in pps:
        at: dict[tuple[str, str], GridCell] = {}
        for i, c in cells:
            if (str(c.family), c.port, str(c.protocol)) != (family, port, proto):
                continue
            css, mark = _display(c, i in j_known)
            what = c.mismatch_kind or str(c.status)
            at[(c.source, c.target)] = GridCell(
                i, css, mark, f"{cell_label(c)}: {what} (click for details)\nwhy: {c.reason}"
            )
        rows = [[at.get((s, t)) for t in targets] for s in sources]
        label = proto if family == AddressFamily.IPV4 else f"{proto}/{family}"
        grids.append(Grid(port, label, sources, targets, rows))
    return grids


def _policies_yaml(policies: list[dict[str, Any]]) -> str:
    if not policies:
        return "# no policies in force"
    return "---\n".join(
        yaml.safe_dump(p, sort_keys=False, default_flow_style=False) for p in policies
    )


def build(j: Judgement) -> tuple[list[ScenarioView], list[dict[str, Any]]]:
    """The page's scenario views and the per-cell data its script reads (by index)."""
    data: list[dict[str, Any]] = []
    views = []
    for n, sc in enumerate(j.run.scenarios):
        steps = []
        protocols: set[str] = set()
        for st in sc.steps:
            indexed = []
            known_idx: set[int] = set()
            failures = []
            for c in st.cells:
                i = len(data)
                data.append(_cell_data(sc, st, c, j))
                indexed.append((i, c))
                protocols.add(str(c.protocol))
                dev = j.known_for(sc, st, c)
                if dev is not None:
                    known_idx.add(i)
                if c.status in (CellStatus.MISMATCH, CellStatus.CHECK_FAILED):
                    note = f"known deviation: {dev.reason}" if dev else ""
                    failures.append((i, c, note))
            steps.append(
                StepView(
                    title=step_title(st),
                    outcome=j.step_outcome(sc, st),
                    message=st.message,
                    grids=_grids(indexed, known_idx),
                    failures=failures,
                    policies_yaml=_policies_yaml(st.policies),
                    policy_count=len(st.policies),
                )
            )
        views.append(
            ScenarioView(
                anchor=f"sc-{n}",
                name=sc.name,
                file=sc.file,
                tags=list(sc.tags),
                outcome=j.scenario_outcome(sc),
                message=sc.message,
                protocols=sorted(protocols),
                steps=steps,
            )
        )
    return views, data


def asset(name: str) -> str:
    """A file of ``reports/templates`` (stylesheet, script) as text, for inlining."""
    return (resources.files("conformance.reports") / "templates" / name).read_text("utf-8")


def templates() -> Environment:
    """The Jinja environment every HTML report renders with (single run and comparison)."""
    return Environment(
        loader=PackageLoader("conformance.reports", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _json_for_script(value: object) -> Markup:
    """JSON safe inside a <script> element: no '</script>' or '<!--' can appear."""
    text = json.dumps(value, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def render_html(j: Judgement) -> str:
    env = templates()
    views, data = build(j)
    scores = tag_scores(j)
    run = j.run
    t = totals(j)
    failing = any(v.outcome in ("fail", "error") for v in views)
    return env.get_template("report.html.j2").render(
        run=run,
        sentence=one_sentence(j),
        verdict="fail" if t.scenarios["fail"] else ("error" if t.scenarios["error"] else "pass"),
        totals=t,
        scores=scores,
        bars=bars(scores),
        chart_width=CHART_WIDTH,
        classes=CLASSES,
        scenarios=views,
        tags=sorted({tag for v in views for tag in v.tags}),
        protocols=sorted({p for v in views for p in v.protocols}),
        unused=j.unused,
        failing=failing,
        options=sorted(run.options.items()),
        css=Markup(asset("report.css")),
        js=Markup(asset("report.js")),
        cells_json=_json_for_script(data),
    )
