"""Markdown summary for ``$GITHUB_STEP_SUMMARY`` (GitHub-flavoured tables, no raw HTML but
``<details>``): the one-sentence verdict, totals, a per-feature-tag table, the failing cells with the
evaluator's reason and the command that reproduces them, and the diff grids folded away.

Sizes are bounded (``limit`` failing cells; GitHub caps a step summary at 1 MiB) so a badly broken
CNI still gets a readable summary; the HTML report has everything.
"""

from __future__ import annotations

from collections.abc import Sequence

from conformance.live.results import Status, latency_phrase, latency_summary
from conformance.reports.judgement import (
    Judgement,
    PathCount,
    cell_label,
    one_sentence,
    path_counts,
    run_notes,
    step_title,
    tag_scores,
    totals,
)
from conformance.reports.text import DIFF_LEGEND, _grids

LIMIT = 50


def md_escape(text: object) -> str:
    """Make text safe inside a table cell: pipes, newlines and angle brackets."""
    return (
        str(text)
        .replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\r", "")
        .replace("\n", "<br>")
    )


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    out = [
        "| " + " | ".join(md_escape(h) for h in header) + " |",
        "|" + "|".join(" --- " for _ in header) + "|",
    ]
    out += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return out


def _path_cell(count: PathCount | None) -> str:
    """A tag's cells on one path: ``98 pass, 22 fail`` (failures bold), ``-`` for none."""
    if count is None:
        return "-"
    return f"**{count.phrase}**" if count.failed else count.phrase


def render_markdown(j: Judgement, limit: int = LIMIT) -> str:
    run, t = j.run, totals(j)
    paths = path_counts(j)
    verdict = "FAIL" if t.scenarios["fail"] else ("ERROR" if t.scenarios["error"] else "PASS")
    lines = [
        f"## netpol-conformance: {verdict}",
        "",
        one_sentence(j),
        "",
        *table(
            ["run", "context", "server version", "CNI", "tool", "started", "finished"],
            [
                [
                    run.run_id,
                    run.context,
                    run.server_version,
                    run.cni or "unknown",
                    run.tool_version,
                    run.started,
                    run.finished,
                ]
            ],
        ),
        "",
        "### Totals",
        "",
        *table(
            ["", "pass", "fail", "known deviation", "error", "skipped"],
            [
                [what, c["pass"], c["fail"], c["known"], c["error"], c["skipped"]]
                for what, c in (("scenarios", t.scenarios), ("steps", t.steps))
            ],
        ),
        "",
        *table(
            [
                "cells",
                "match",
                "unexpectedly allowed",
                "unexpectedly denied",
                "known deviation",
                "flaky",
                "not supported",
                "check failed",
                "implementation-defined",
            ],
            [
                [
                    t.judged,
                    t.cells["match"],
                    t.kinds["unexpectedly-allowed"],
                    t.kinds["unexpectedly-denied"],
                    t.known,
                    t.flaky,
                    t.cells["not-supported"],
                    t.cells["check-failed"],
                    t.cells["implementation-defined"],
                ]
            ],
        ),
        "",
        "### By feature tag",
        "",
        *table(
            [
                "tag",
                "scenarios passed",
                "cells matched",
                "unexpectedly allowed",
                "unexpectedly denied",
                "known deviations",
                *paths,
            ],
            [
                [
                    s.tag if s.ok else f"**{s.tag}**",
                    f"{s.scenarios_passed}/{s.scenarios}",
                    f"{s.cells_matched}/{s.cells_judged}",
                    s.allowed,
                    s.denied,
                    s.known,
                    *(_path_cell(s.path(g)) for g in paths),
                ]
                for s in tag_scores(j)
            ],
        ),
    ]
    if paths:
        lines += [
            "",
            "### By path",
            "",
            *table(
                ["path", "pass", "fail", "known deviation", "skipped"],
                [
                    [g if not c.failed else f"**{g}**", c.passed, c.failed, c.known, c.skipped]
                    for g, c in paths.items()
                ],
            ),
        ]
    notes = run_notes(run)
    if notes:
        lines += ["", "### Notes", ""]
        lines += [
            f"- {md_escape(note)} ({', '.join(md_escape(n) for n in names[:5])}"
            + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            + ")"
            for note, names in notes
        ]
    lines += _sampled(j, limit)
    lines += _latency(j, limit)
    lines += _failures(j, limit)
    lines += _skipped(j)
    lines += _known(j)
    return "\n".join(lines) + "\n"


def _sampled(j: Judgement, limit: int) -> list[str]:
    """Steps that probed a sample of their cells: how many, of how many, and the seed."""
    rows = [
        [
            md_escape(sc.name),
            md_escape(st.name),
            st.sample["cells"],
            st.sample["population"],
            st.sample["seed"],
            st.sample["classes"],
            st.sample["boundary"],
            st.sample["random"],
        ]
        for sc in j.run.scenarios
        for st in sc.steps
        if st.sample
    ]
    if not rows:
        return []
    out = [
        "",
        "### Sampled steps",
        "",
        "These steps probed a sample of their cells: one cell of each class of cells the rules "
        "treat alike (rarest first), the rest at random; the same seed and state give the same "
        "sample.",
        "",
        *table(
            ["scenario", "step", "probed", "cells", "seed", "classes", "by class", "at random"],
            rows[:limit],
        ),
    ]
    if len(rows) > limit:
        out.append(f"\n... and {len(rows) - limit} more sampled steps.")
    return out


def _latency(j: Judgement, limit: int) -> list[str]:
    """Enforcement latency of the run and of its slowest steps (only cells a step changed)."""
    run = latency_summary(c for sc in j.run.scenarios for st in sc.steps for c in st.cells)
    if run is None:
        return []
    steps = [
        (summary, sc.name, step_title(st))
        for sc in j.run.scenarios
        for st in sc.steps
        if (summary := latency_summary(st.cells)) is not None
    ]
    steps.sort(key=lambda s: -float(s[0]["max_s"]))
    rows = [
        [name, title, s["cells"], f"{s['p50_s']:.2f}", f"{s['p95_s']:.2f}", f"{s['max_s']:.2f}"]
        for s, name, title in steps[:limit]
    ]
    out = [
        "",
        "### Enforcement latency",
        "",
        "From the API accepting a step's last change to the first probe that saw a changed "
        f"cell's new verdict: {latency_phrase(run)}.",
        "",
        *table(["scenario", "step", "changed cells", "p50 s", "p95 s", "max s"], rows),
    ]
    if len(steps) > limit:
        out += ["", f"... and {len(steps) - limit} faster steps: see the results JSON."]
    return out


def _failures(j: Judgement, limit: int) -> list[str]:
    rows: list[list[object]] = []
    folded: list[str] = []
    more = 0
    for sc in j.run.scenarios:
        if sc.status is Status.ERROR and not sc.steps:
            rows.append([sc.name, "", "", "", "", "error", sc.message, ""])
        for st in sc.steps:
            if st.status is Status.ERROR:  # infrastructure: say what, not a CNI verdict
                rows.append([sc.name, step_title(st), "", "", "", "error", st.message, ""])
            bad = j.unexpected_mismatches(sc, st)
            if bad:
                folded += [
                    f"<details><summary>{md_escape(sc.name)} {md_escape(step_title(st))}: diff</summary>",
                    "",
                    "```text",
                    _grids(st.cells, "diff"),
                    DIFF_LEGEND,
                    "```",
                    "",
                    "</details>",
                    "",
                ]
            for c in bad:
                if len(rows) >= limit:
                    more += 1
                    continue
                rows.append(
                    [
                        sc.name,
                        step_title(st),
                        cell_label(c),
                        c.expected,
                        f"{c.observed} ({c.observed_verdict})",
                        c.mismatch_kind or "",
                        f"{c.reason} ({c.propagation_note})" if c.propagation_note else c.reason,
                        f"`{c.command}`" if c.command else "",
                    ]
                )
    if not rows:
        return []
    out = [
        "",
        "### Failures",
        "",
        *table(
            [
                "scenario",
                "step",
                "cell",
                "expected",
                "observed",
                "kind",
                "why expected",
                "reproduce",
            ],
            rows,
        ),
    ]
    if more:
        out += ["", f"... and {more} more failing cells: see the HTML report or the results JSON."]
    return [*out, "", *folded] if folded else out


def _skipped(j: Judgement) -> list[str]:
    """Scenarios and steps this cluster or run did not support, with the reason."""
    rows: list[list[object]] = []
    for sc in j.run.scenarios:
        if sc.status is Status.SKIPPED and not sc.steps:
            rows.append([sc.name, "", sc.message])
        rows += [
            [sc.name, step_title(st), st.message] for st in sc.steps if st.status is Status.SKIPPED
        ]
    if not rows:
        return []
    return ["", "### Skipped", "", *table(["scenario", "step", "reason"], rows)]


def _known(j: Judgement) -> list[str]:
    rows: list[list[object]] = []
    for sc in j.run.scenarios:
        for st in sc.steps:
            for c in st.cells:
                dev = j.known_for(sc, st, c)
                if dev:
                    rows.append([sc.name, step_title(st), cell_label(c), dev.reason, dev.link])
    out = []
    if rows:
        out += [
            "",
            "### Known deviations (reported, allowed)",
            "",
            *table(["scenario", "step", "cell", "reason", "link"], rows),
        ]
    if j.unused:
        out += ["", "Known-deviation entries that matched nothing (fixed? remove them):", ""]
        out += [f"- `{md_escape(d.label)}`: {md_escape(d.reason)}" for d in j.unused]
    return out
