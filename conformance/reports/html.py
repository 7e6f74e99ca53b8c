"""Self-contained HTML report: one file, inline CSS, JS and SVG, nothing fetched when viewed.

Summary first (cluster and tool identity, totals, per-feature-tag table and bar chart), then per
scenario and step the truth-table grids per port/protocol, coloured by cell class, the policies in
force as YAML, and a details panel for a clicked cell (the evaluator's reason, the observed outcome,
attempts, convergence time, the ``kubectl exec`` that reproduces the probe).

The page honours a URL fragment so a screenshot or a test can open it in a given state without
clicking: ``#cell=first-mismatch`` (or ``#cell=<n>``), ``failures``, ``tag=udp``, ``protocol=UDP``,
``path=cross-node``, joined with ``&``. Each grid cell carries a corner mark for its path
(``PATH_MARKS``) and the tag table a column per path, so failures on one path stand out.
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
from conformance.live.results import (
    CellResult,
    CellStatus,
    ScenarioResult,
    StepResult,
    latency_phrase,
    latency_summary,
)
from conformance.reference.sampling import sample_phrase
from conformance.reference.truthtable import mark_for
from conformance.reports.judgement import (
    Judgement,
    TagScore,
    cell_class,
    one_sentence,
    path_counts,
    path_group,
    run_notes,
    step_title,
    tag_scores,
    totals,
)
from conformance.reports.text import retries_phrase

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


PATH_MARKS: dict[str, tuple[str, str]] = {
    "cross-node": ("xn", "cross-node: the pods run on different nodes (top-right corner)"),
    "node": ("nd", "a node's own address (host network) at one end (bottom-left corner)"),
    "external": ("ex", "a host outside the cluster at one end (bottom-right corner)"),
}
"""Path group -> (CSS class of the corner mark on a grid cell, legend text); same-node cells
carry no mark."""


@dataclass(frozen=True)
class GridCell:
    index: int  # into the page's cell data
    css: str
    mark: str


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
    latency: str = ""  # enforcement latency of the step's changed cells (latency_phrase)
    sample: str = ""  # how the cells were chosen when the step probed a sample (sample_phrase)


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
    notes: list[str] = field(default_factory=list)


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
    state: str  # TagScore.state: ok, bad or skipped


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
                state=s.state,
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
    path = PATH_MARKS.get(path_group(cell))
    if path:
        css.append(path[0])
    if known:
        css.append("known")
    if cell.flaky:
        css.append("flaky")
        mark += "~"
    return " ".join(css), mark


class _Table:
    """Values interned into a list: each distinct value is stored once, cells refer to it by
    index (-1 for "nothing")."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._index: dict[Any, int] = {}

    def __call__(self, value: Any) -> int:
        if value is None or value == "":
            return -1
        key = json.dumps(value) if isinstance(value, list) else value
        if key not in self._index:
            self._index[key] = len(self.items)
            self.items.append(value)
        return self._index[key]


CELL_FIELDS = [
    "step",
    "source",
    "target",
    "port",
    "protocol",
    "status",
    "kind",
    "expected",
    "declared",
    "served",
    "path",
    "family",
    "observed",
    "observedVerdict",
    "attempts",
    "history",
    "convergedAfter",
    "flaky",
    "reason",
    "detail",
    "command",
    "known",
    "slow",
]
"""The order of a packed cell's fields (``report.js`` and ``unpack_cells`` read them so)."""


class _Packer:
    """The page's cell data, packed: strings once (the ``strings`` table), a reason as the
    indices of its "; "-separated parts, a ``kubectl exec`` command as the indices of its part
    up to ``connect `` (one per source pod) and the rest (one per destination); each cell is one
    array of indices and numbers in ``CELL_FIELDS`` order. 10,000 cells take about 1 MB."""

    def __init__(self) -> None:
        self.strings = _Table()
        self.reasons = _Table()
        self.steps = _Table()
        self.knowns = _Table()
        self.node_maps = _Table()
        self.cells: list[list[Any]] = []

    def add(self, sc: ScenarioResult, st: StepResult, c: CellResult, j: Judgement) -> int:
        s = self.strings
        dev = j.known_for(sc, st, c)
        head, sep, tail = c.command.partition(" connect ")
        command = [s(head + sep), s(tail)] if sep else ([s(head), -1] if head else -1)
        pairs = [s(x) for pod, node in sorted(sc.nodes.items()) for x in (pod, node)]
        self.cells.append(
            [
                self.steps([s(sc.name), s(step_title(st)), self.node_maps(pairs or None)]),
                s(c.source),
                s(c.target),
                c.port,
                s(str(c.protocol)),
                s(str(c.status)),
                s(c.mismatch_kind),
                s(str(c.expected)),
                s(str(c.declared) if c.declared else None),
                int(c.served),
                s(str(c.path) if c.path else None),
                s(str(c.family)),
                s(str(c.observed) if c.observed else None),
                s(str(c.observed_verdict) if c.observed_verdict else None),
                c.attempts,
                [s(h) for h in c.history],
                c.converged_after_s,
                int(c.flaky),
                self.reasons([s(part) for part in c.reason.split("; ")]) if c.reason else -1,
                s(c.detail),
                command,
                self.knowns([s(dev.reason), s(dev.link)]) if dev else -1,
                s(c.propagation_note),
            ]
        )
        return len(self.cells) - 1

    def payload(self) -> dict[str, Any]:
        return {
            "fields": list(CELL_FIELDS),
            "strings": self.strings.items,
            "reasons": self.reasons.items,
            "steps": self.steps.items,
            "knowns": self.knowns.items,
            "nodeMaps": self.node_maps.items,
            "cells": self.cells,
        }


def unpack_cells(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The packed cell data back as one dict per cell, as ``report.js`` unpacks a cell to show
    it (scenario, step, cell label, status, reason, command, known deviation, ...)."""
    strings = payload["strings"]

    def s(i: int) -> Any:
        return None if i < 0 else strings[i]

    out = []
    for row in payload["cells"]:
        f = dict(zip(payload["fields"], row, strict=True))
        scenario_i, step_i, nodes_i = payload["steps"][f["step"]]
        scenario, step = strings[scenario_i], strings[step_i]
        flat = [strings[i] for i in payload["nodeMaps"][nodes_i]] if nodes_i >= 0 else []
        nodes = dict(zip(flat[::2], flat[1::2], strict=True))
        known = payload["knowns"][f["known"]] if f["known"] >= 0 else None
        cmd = f["command"]
        parts = payload["reasons"][f["reason"]] if f["reason"] >= 0 else []
        out.append(
            {
                "scenario": scenario,
                "step": step,
                "cell": f"{s(f['source'])} -> {s(f['target'])} {f['port']}/{s(f['protocol'])}",
                "status": s(f["status"]),
                "kind": s(f["kind"]),
                "expected": s(f["expected"]),
                "declared": s(f["declared"]),
                "served": bool(f["served"]),
                "path": s(f["path"]),
                "nodes": [nodes.get(s(f["source"])), nodes.get(s(f["target"]))],
                "family": s(f["family"]),
                "observed": s(f["observed"]),
                "observedVerdict": s(f["observedVerdict"]),
                "attempts": f["attempts"],
                "history": [strings[h] for h in f["history"]],
                "convergedAfter": f["convergedAfter"],
                "flaky": bool(f["flaky"]),
                "slow": s(f["slow"]),
                "reason": "; ".join(strings[p] for p in parts),
                "detail": s(f["detail"]) or "",
                "command": "" if cmd == -1 else s(cmd[0]) + (s(cmd[1]) or ""),
                "known": {"reason": s(known[0]), "link": s(known[1]) or ""} if known else None,
            }
        )
    return out


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
            at[(c.source, c.target)] = GridCell(i, css, mark)
        rows = [[at.get((s, t)) for t in targets] for s in sources]
        label = proto if family == AddressFamily.IPV4 else f"{proto}/{family}"
        grids.append(Grid(port, label, sources, targets, rows))
    return grids


def _policies_yaml(policies: list[dict[str, Any]]) -> str:
    if not policies:
        return "# no policies in force"
    # libyaml's emitter when present: the same text, about six times faster (a full-suite page
    # dumps every step's policies).
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return "---\n".join(
        yaml.dump(p, Dumper=dumper, sort_keys=False, default_flow_style=False) for p in policies
    )


def build(j: Judgement) -> tuple[list[ScenarioView], dict[str, Any]]:
    """The page's scenario views and the packed per-cell data its script reads (by index)."""
    packer = _Packer()
    views = []
    for n, sc in enumerate(j.run.scenarios):
        steps = []
        protocols: set[str] = set()
        for st in sc.steps:
            indexed = []
            known_idx: set[int] = set()
            failures = []
            for c in st.cells:
                i = packer.add(sc, st, c, j)
                indexed.append((i, c))
                protocols.add(str(c.protocol))
                dev = j.known_for(sc, st, c)
                if dev is not None:
                    known_idx.add(i)
                if c.status in (CellStatus.MISMATCH, CellStatus.CHECK_FAILED):
                    note = f"known deviation: {dev.reason}" if dev else c.propagation_note
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
                    latency=latency_phrase(latency_summary(st.cells)),
                    sample=sample_phrase(st.sample) if st.sample else "",
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
                notes=list(sc.notes),
            )
        )
    return views, packer.payload()


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
        paths=path_counts(j),
        notes=run_notes(run),
        path_marks=PATH_MARKS,
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
        retries=retries_phrase(run.retries) if run.retries else "",
        latency=latency_summary(c for sc in run.scenarios for st in sc.steps for c in st.cells),
    )
