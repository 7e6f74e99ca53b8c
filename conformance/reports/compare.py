"""Several runs side by side (``netpol-conformance report --compare``): which CNI does what.

One results file per CNI or run. The model (``build_comparison``) judges each run against the same
known deviations and lines them up: a scenario x run table of outcomes (pass, fail, known, error,
skipped, or ``absent`` when a run did not have the scenario), per-tag scores per run (scenarios
passed out of the scenarios carrying the tag), and the cells worth a look: those where some run
disagrees with the reference (a mismatch) or where runs observed different verdicts for the same
cell. Markdown and a self-contained HTML page are rendered from the model alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

from conformance.live.results import CellResult, CellStatus, RunResult
from conformance.reports.deviations import KnownDeviations
from conformance.reports.html import asset, templates
from conformance.reports.judgement import CellKey, Judgement, cell_key, iter_cells, judge
from conformance.reports.markdown import table

ABSENT = "absent"  # the run has no such scenario (or cell)
FORMATS = ("html", "markdown")


def run_labels(runs: Sequence[RunResult]) -> list[str]:
    """A column name per run: its CNI, else its context, else its run id; repeated names get
    ``#2``, ``#3``... so every column is distinct."""
    names = [r.cni or r.context or r.run_id or "run" for r in runs]
    out: list[str] = []
    seen: dict[str, int] = {}
    for name in names:
        n = seen.get(name, 0) + 1
        seen[name] = n
        label = name if n == 1 else f"{name} #{n}"
        while label in out:  # "x #2" may itself be a run's name
            n += 1
            seen[name] = n
            label = f"{name} #{n}"
        out.append(label)
    return out


@dataclass(frozen=True)
class ScenarioRow:
    name: str
    tags: tuple[str, ...]
    outcomes: tuple[str, ...]  # per run: pass, fail, known, error, skipped or absent

    @property
    def agree(self) -> bool:
        return len(set(self.outcomes)) == 1


@dataclass(frozen=True)
class TagRow:
    tag: str
    scores: tuple[tuple[int, int], ...]  # per run: (scenarios passed or known, scenarios)


@dataclass(frozen=True)
class CellView:
    """One run's view of a cell: the observed verdict and how it compares to the reference."""

    verdict: str  # allow, deny, or "" when nothing was observed
    status: str  # match, unexpectedly-allowed/denied, known, check-failed, ..., absent

    @property
    def css(self) -> str:
        """The single-run report's cell class (match-allow, unexpectedly-denied, known, ...)."""
        return f"match-{self.verdict}" if self.status == "match" else self.status

    @property
    def text(self) -> str:
        if self.status == ABSENT:
            return "-"
        if self.status == "match":
            return self.verdict
        if self.verdict:
            return f"{self.verdict} ({self.status})"
        return self.status


@dataclass(frozen=True)
class Disagreement:
    key: CellKey
    step_name: str
    expected: str
    why: str  # "mismatch", "runs differ", or both joined with ", "
    cells: tuple[CellView, ...]  # per run

    @property
    def step_title(self) -> str:
        return f"step {self.key.step + 1}: {self.step_name}"


@dataclass(frozen=True)
class Comparison:
    labels: tuple[str, ...]
    runs: tuple[RunResult, ...]
    scenarios: tuple[ScenarioRow, ...]
    tags: tuple[TagRow, ...]
    disagreements: tuple[Disagreement, ...]

    def totals(self) -> list[tuple[int, int]]:
        """Per run: (scenarios passed or known, scenarios in the comparison)."""
        n = len(self.scenarios)
        return [
            (sum(row.outcomes[i] in ("pass", "known") for row in self.scenarios), n)
            for i in range(len(self.labels))
        ]


def _cell_view(cell: CellResult | None, known: bool) -> CellView:
    if cell is None:
        return CellView("", ABSENT)
    verdict = str(cell.observed_verdict) if cell.observed_verdict else ""
    if cell.status is CellStatus.MISMATCH:
        return CellView(verdict, "known" if known else (cell.mismatch_kind or "mismatch"))
    return CellView(verdict, str(cell.status))


def build_comparison(
    runs: Sequence[RunResult], deviations: KnownDeviations | None = None
) -> Comparison:
    if not runs:
        raise ValueError("nothing to compare: no runs")
    judgements: list[Judgement] = [judge(r, deviations) for r in runs]

    # Scenarios in first-seen order across runs.
    names: dict[str, set[str]] = {}
    for run in runs:
        for sc in run.scenarios:
            names.setdefault(sc.name, set()).update(sc.tags)
    by_name = [{sc.name: sc for sc in run.scenarios} for run in runs]
    rows = []
    for name, tags in names.items():
        outcomes = tuple(
            j.scenario_outcome(found[name]) if name in found else ABSENT
            for j, found in zip(judgements, by_name, strict=True)
        )
        rows.append(ScenarioRow(name, tuple(sorted(tags)), outcomes))

    # Per tag and run: scenarios carrying the tag in that run, and how many passed.
    acc: dict[str, list[list[int]]] = {}
    for i, j in enumerate(judgements):
        for sc in j.run.scenarios:
            passed = int(j.scenario_outcome(sc) in ("pass", "known"))
            for tag in sc.tags or ["untagged"]:
                counts = acc.setdefault(tag, [[0, 0] for _ in runs])
                counts[i][0] += passed
                counts[i][1] += 1
    tag_rows = tuple(TagRow(tag, tuple((p, n) for p, n in acc[tag])) for tag in sorted(acc))

    # Cells: where a run disagrees with the reference, or runs disagree with each other.
    cells: dict[CellKey, list[CellResult | None]] = {}
    steps: dict[CellKey, str] = {}
    known: dict[CellKey, list[bool]] = {}
    for i, j in enumerate(judgements):
        for sc, st, c in iter_cells(j.run):
            key = cell_key(sc, st, c)
            cells.setdefault(key, [None] * len(runs))[i] = c
            known.setdefault(key, [False] * len(runs))[i] = key in j.known
            steps.setdefault(key, st.name)
    disagreements = []
    for key in cells:  # first-seen order: scenarios as the runs list them
        per_run = cells[key]
        present = [c for c in per_run if c is not None]
        mismatch = any(c.status is CellStatus.MISMATCH for c in present)
        verdicts = {c.observed_verdict for c in present if c.observed_verdict is not None}
        why = [w for w, hit in (("mismatch", mismatch), ("runs differ", len(verdicts) > 1)) if hit]
        if not why:
            continue
        disagreements.append(
            Disagreement(
                key=key,
                step_name=steps[key],
                expected=str(present[0].expected),
                why=", ".join(why),
                cells=tuple(_cell_view(c, k) for c, k in zip(per_run, known[key], strict=True)),
            )
        )
    return Comparison(
        labels=tuple(run_labels(runs)),
        runs=tuple(runs),
        scenarios=tuple(rows),
        tags=tag_rows,
        disagreements=tuple(disagreements),
    )


def _score(p: int, n: int) -> str:
    return f"{p}/{n}" if n else "-"


def render_compare_markdown(c: Comparison, limit: int = 200) -> str:
    labels = list(c.labels)
    lines = [
        f"## netpol-conformance: {len(labels)} runs compared",
        "",
        *table(
            ["run", "CNI", "context", "run id", "server version", "scenarios passed"],
            [
                [label, r.cni or "unknown", r.context, r.run_id, r.server_version, _score(*t)]
                for label, r, t in zip(labels, c.runs, c.totals(), strict=True)
            ],
        ),
        "",
        "### Scenarios",
        "",
        *table(["scenario", *labels], [[row.name, *row.outcomes] for row in c.scenarios]),
        "",
        "### By feature tag (scenarios passed / scenarios with the tag)",
        "",
        *table(["tag", *labels], [[t.tag, *(_score(*s) for s in t.scores)] for t in c.tags]),
        "",
        "### Where runs disagree",
        "",
    ]
    if not c.disagreements:
        lines.append("Every run agrees with the reference and with each other on every cell.")
    else:
        lines.append(
            f"{len(c.disagreements)} cells where a run disagrees with the reference (mismatch) "
            "or runs observed different verdicts (runs differ); each run's observed verdict:"
        )
        lines.append("")
        lines += table(
            ["scenario", "step", "cell", "expected", "why", *labels],
            [
                [
                    d.key.scenario,
                    d.step_title,
                    d.key.label,
                    d.expected,
                    d.why,
                    *(v.text for v in d.cells),
                ]
                for d in c.disagreements[:limit]
            ],
        )
        if len(c.disagreements) > limit:
            lines += ["", f"... and {len(c.disagreements) - limit} more (see the HTML comparison)."]
    return "\n".join(lines) + "\n"


def render_compare_html(c: Comparison) -> str:
    return (
        templates()
        .get_template("compare.html.j2")
        .render(
            c=c,
            labels=c.labels,
            runs=list(zip(c.labels, c.runs, c.totals(), strict=True)),
            score=_score,
            css=Markup(asset("report.css")),  # the single-run report's stylesheet: both look alike
        )
    )


def render_compare(
    runs: Sequence[RunResult], fmt: str, deviations: KnownDeviations | None = None
) -> str:
    """The comparison of ``runs`` as ``html`` or ``markdown`` text."""
    if fmt not in FORMATS:
        raise ValueError(f"--compare renders {' or '.join(FORMATS)}, not {fmt!r}")
    c = build_comparison(runs, deviations)
    return render_compare_html(c) if fmt == "html" else render_compare_markdown(c)
