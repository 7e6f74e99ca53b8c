"""A run judged for reporting: cell keys and labels, known deviations, totals, per-tag scores.

Kept apart from the renderers so HTML, JUnit, Markdown and ``diff`` count the same way: a cell is
*judged* when its status is match or mismatch (check-failed, not-supported and pod-to-itself cells
say nothing about the CNI), and a mismatch covered by a known deviation is reported but allowed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from conformance.api.types import AddressFamily, Grid, L4Protocol, TrafficPath
from conformance.errors import ExitCode
from conformance.live.results import (
    CellResult,
    CellStatus,
    RunResult,
    ScenarioResult,
    Status,
    StepResult,
)
from conformance.reports.deviations import KnownDeviation, KnownDeviations


@dataclass(frozen=True, order=True)
class CellKey:
    """A cell's identity across runs: namespaces are the scenario's names (x/a), not the run's."""

    scenario: str
    step: int  # 0-based index, as in the results JSON
    source: str
    target: str
    port: int
    protocol: str
    family: str = "IPv4"

    @property
    def label(self) -> str:
        grid = Grid(self.port, L4Protocol(self.protocol), AddressFamily(self.family))
        return f"{self.source} -> {self.target} {grid}"


def cell_key(scenario: ScenarioResult, step: StepResult, cell: CellResult) -> CellKey:
    return CellKey(
        scenario.name,
        step.index,
        cell.source,
        cell.target,
        cell.port,
        str(cell.protocol),
        str(cell.family),
    )


def cell_label(cell: CellResult) -> str:
    """``x/a -> x/b 80/TCP`` (``80/TCP/IPv6`` for IPv6): the form known-deviation ``cell``
    patterns match."""
    return f"{cell.source} -> {cell.target} {Grid(cell.port, cell.protocol, cell.family)}"


def step_title(step: StepResult) -> str:
    return f"step {step.index + 1}: {step.name}"


def iter_cells(run: RunResult) -> Iterator[tuple[ScenarioResult, StepResult, CellResult]]:
    for sc in run.scenarios:
        for st in sc.steps:
            for c in st.cells:
                yield sc, st, c


def cell_class(cell: CellResult) -> str:
    """One word per display class: match-allow, match-deny, unexpectedly-allowed, ... ."""
    if cell.status is CellStatus.MISMATCH:
        return cell.mismatch_kind or "mismatch"
    if cell.status is CellStatus.MATCH:
        return (
            "match-allow"
            if str(cell.observed_verdict or cell.expected) == "allow"
            else "match-deny"
        )
    return str(cell.status)


@dataclass(frozen=True)
class Judgement:
    """A run read against known deviations: which mismatches are allowed, and by which entry."""

    run: RunResult
    known: dict[CellKey, KnownDeviation]
    unused: tuple[KnownDeviation, ...]

    def known_for(self, sc: ScenarioResult, st: StepResult, c: CellResult) -> KnownDeviation | None:
        return self.known.get(cell_key(sc, st, c))

    def unexpected_mismatches(self, sc: ScenarioResult, st: StepResult) -> list[CellResult]:
        return [
            c
            for c in st.cells
            if c.status is CellStatus.MISMATCH and cell_key(sc, st, c) not in self.known
        ]

    def step_outcome(self, sc: ScenarioResult, st: StepResult) -> str:
        """The step's status, except ``known`` when every mismatch is a known deviation."""
        if st.status is Status.FAIL and not self.unexpected_mismatches(sc, st):
            return "known"
        return str(st.status)

    def scenario_outcome(self, sc: ScenarioResult) -> str:
        if sc.status is Status.FAIL and all(self.step_outcome(sc, st) != "fail" for st in sc.steps):
            return "known"
        return str(sc.status)

    def exit_code(self) -> ExitCode:
        """``run``'s exit code with known deviations allowed: failed on unexpected mismatches."""
        outcomes = {self.scenario_outcome(sc) for sc in self.run.scenarios}
        if "fail" in outcomes:
            return ExitCode.FAILED
        if "error" in outcomes:
            return ExitCode.INFRASTRUCTURE
        return ExitCode.OK


def judge(run: RunResult, deviations: KnownDeviations | None = None) -> Judgement:
    known: dict[CellKey, KnownDeviation] = {}
    used: set[int] = set()
    if deviations is not None:
        for sc, st, c in iter_cells(run):
            if c.status is not CellStatus.MISMATCH:
                continue
            hit = deviations.match(
                sc.name, sc.file, st.index, st.name, cell_label(c), c.mismatch_kind
            )
            if hit is not None:
                known[cell_key(sc, st, c)] = hit
                used.add(id(hit))
    unused = tuple(d for d in (deviations.entries if deviations else ()) if id(d) not in used)
    return Judgement(run, known, unused)


@dataclass(frozen=True)
class Totals:
    """Counts for the summary: scenarios and steps by outcome, cells by class."""

    scenarios: Counter[str]
    steps: Counter[str]
    cells: Counter[str]  # match, mismatch, check-failed, not-supported, implementation-defined
    kinds: Counter[str]  # unexpectedly-allowed / unexpectedly-denied (unexpected ones only)
    known: int  # mismatches allowed by known deviations
    flaky: int

    @property
    def judged(self) -> int:
        return self.cells["match"] + self.cells["mismatch"]


def totals(j: Judgement) -> Totals:
    scenarios: Counter[str] = Counter(j.scenario_outcome(sc) for sc in j.run.scenarios)
    steps: Counter[str] = Counter(
        j.step_outcome(sc, st) for sc in j.run.scenarios for st in sc.steps
    )
    cells: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    flaky = 0
    for sc, st, c in iter_cells(j.run):
        cells[str(c.status)] += 1
        flaky += c.flaky
        if c.status is CellStatus.MISMATCH and cell_key(sc, st, c) not in j.known:
            kinds[c.mismatch_kind or "mismatch"] += 1
    return Totals(scenarios, steps, cells, kinds, len(j.known), flaky)


PATH_GROUPS: dict[TrafficPath | None, str] = {
    TrafficPath.SAME_NODE: "same-node",
    TrafficPath.CROSS_NODE: "cross-node",
    TrafficPath.FROM_NODE: "node",
    TrafficPath.TO_NODE: "node",
    TrafficPath.FROM_EXTERNAL: "external",
    TrafficPath.TO_EXTERNAL: "external",
    None: "unknown",
}
"""The path groups reports break counts down by (a node's or an outside host's two directions
are one group each; ``unknown`` when a pod's node was not known)."""
PATH_ORDER = ("same-node", "cross-node", "node", "external", "unknown")


def path_group(cell: CellResult) -> str:
    return PATH_GROUPS.get(cell.path, "unknown")


@dataclass(frozen=True)
class PathCount:
    """Cells of one path group: passed (match), failed (unexpected mismatch), known deviations,
    and skipped (not supported here, or the probe could not run). Pod-to-itself cells are not
    counted."""

    passed: int = 0
    failed: int = 0
    known: int = 0
    skipped: int = 0

    def __add__(self, other: PathCount) -> PathCount:
        return PathCount(
            self.passed + other.passed,
            self.failed + other.failed,
            self.known + other.known,
            self.skipped + other.skipped,
        )

    @property
    def phrase(self) -> str:
        """``118 pass, 2 fail, 4 skip`` (the non-zero counts; ``none`` when all are zero)."""
        parts = [
            f"{n} {word}"
            for n, word in (
                (self.passed, "pass"),
                (self.failed, "fail"),
                (self.known, "known"),
                (self.skipped, "skip"),
            )
            if n
        ]
        return ", ".join(parts) or "none"


def _path_count(j: Judgement, sc: ScenarioResult, st: StepResult, c: CellResult) -> PathCount:
    if c.status is CellStatus.MATCH:
        return PathCount(passed=1)
    if c.status is CellStatus.MISMATCH:
        return PathCount(known=1) if cell_key(sc, st, c) in j.known else PathCount(failed=1)
    if c.status in (CellStatus.NOT_SUPPORTED, CellStatus.CHECK_FAILED):
        return PathCount(skipped=1)
    return PathCount()


def path_counts(j: Judgement) -> dict[str, PathCount]:
    """The run's cells per path group, in ``PATH_ORDER``; groups without cells left out."""
    acc: dict[str, PathCount] = {}
    for sc, st, c in iter_cells(j.run):
        if c.status is CellStatus.IGNORED:
            continue
        group = path_group(c)
        acc[group] = acc.get(group, PathCount()) + _path_count(j, sc, st, c)
    return {g: acc[g] for g in PATH_ORDER if g in acc}


def path_line(j: Judgement) -> str:
    """``by path: same-node 120 pass; cross-node 98 pass, 22 fail`` ("" when no cell counts)."""
    counts = path_counts(j)
    if not counts:
        return ""
    return "by path: " + "; ".join(f"{g} {c.phrase}" for g, c in counts.items())


@dataclass(frozen=True)
class TagScore:
    """How a CNI does on one feature tag: scenarios passed and cells matched."""

    tag: str
    scenarios: int
    scenarios_passed: int  # pass or known
    cells_judged: int
    cells_matched: int
    allowed: int  # unexpectedly allowed (security holes), known deviations excluded
    denied: int  # unexpectedly denied (outages), known deviations excluded
    known: int = 0  # mismatches accepted as known deviations
    skipped: int = 0  # scenarios skipped (not supported here): neither passed nor failed
    paths: tuple[tuple[str, PathCount], ...] = ()
    """Cells per path group (``PATH_ORDER``), so "fails only cross-node" shows."""

    def path(self, group: str) -> PathCount | None:
        """The tag's cells of one path group; None when it has none."""
        return dict(self.paths).get(group)

    @property
    def ok(self) -> bool:
        """Nothing failed: every scenario passed (or only known deviations) or was skipped."""
        return (
            self.allowed == self.denied == 0
            and self.scenarios_passed + self.skipped == self.scenarios
        )

    @property
    def state(self) -> str:
        """``skipped`` when no scenario of the tag ran, else ``ok`` or ``bad`` (how to style it)."""
        if self.skipped == self.scenarios:
            return "skipped"
        return "ok" if self.ok else "bad"


def tag_scores(j: Judgement) -> list[TagScore]:
    """One score per tag (scenarios without tags count under ``untagged``), sorted by name."""
    acc: dict[str, list[int]] = {}
    paths: dict[str, dict[str, PathCount]] = {}
    for sc in j.run.scenarios:
        outcome = j.scenario_outcome(sc)
        row = [1, int(outcome in ("pass", "known")), 0, 0, 0, 0, 0, int(outcome == "skipped")]
        by_path: dict[str, PathCount] = {}
        for st in sc.steps:
            for c in st.cells:
                if c.status is not CellStatus.IGNORED:
                    group = path_group(c)
                    by_path[group] = by_path.get(group, PathCount()) + _path_count(j, sc, st, c)
                if c.status not in (CellStatus.MATCH, CellStatus.MISMATCH):
                    continue
                row[2] += 1
                if c.status is CellStatus.MATCH:
                    row[3] += 1
                elif cell_key(sc, st, c) in j.known:
                    row[6] += 1
                elif c.mismatch_kind == "unexpectedly-allowed":
                    row[4] += 1
                else:
                    row[5] += 1
        for tag in sc.tags or ["untagged"]:
            prev = acc.setdefault(tag, [0] * 8)
            acc[tag] = [a + b for a, b in zip(prev, row, strict=True)]
            mine = paths.setdefault(tag, {})
            for group, count in by_path.items():
                mine[group] = mine.get(group, PathCount()) + count
    return [
        TagScore(
            tag,
            scenarios=n,
            scenarios_passed=passed,
            cells_judged=judged,
            cells_matched=matched,
            allowed=allowed,
            denied=denied,
            known=known,
            skipped=skipped,
            paths=tuple((g, paths[tag][g]) for g in PATH_ORDER if g in paths[tag]),
        )
        for tag in sorted(acc)
        for n, passed, judged, matched, allowed, denied, known, skipped in [acc[tag]]
    ]


def run_notes(run: RunResult) -> list[tuple[str, list[str]]]:
    """Each distinct scenario note (how pods were placed, pods that ran elsewhere than asked)
    with the scenarios it is about, warnings first."""
    acc: dict[str, list[str]] = {}
    for sc in run.scenarios:
        for note in sc.notes:
            acc.setdefault(note, []).append(sc.name)
    return sorted(acc.items(), key=lambda item: not item[0].startswith("warning"))


def one_sentence(j: Judgement) -> str:
    """The report's first line: did the CNI conform, and if not, how badly."""
    t = totals(j)
    n = len(j.run.scenarios)
    if t.scenarios["fail"]:
        holes, outages = t.kinds["unexpectedly-allowed"], t.kinds["unexpectedly-denied"]
        return (
            f"{t.scenarios['fail']} of {n} scenarios fail: {t.cells['mismatch'] - t.known} cells "
            f"disagree with the reference ({holes} unexpectedly allowed, {outages} unexpectedly denied)"
            + (f"; {t.known} known deviations allowed." if t.known else ".")
        )
    if t.scenarios["error"]:
        return f"{t.scenarios['error']} of {n} scenarios could not run (infrastructure errors); no cell disagrees."
    extra = f" ({t.known} known deviations allowed)" if t.known else ""
    skipped = t.scenarios["skipped"]
    if skipped == n:
        return f"No scenario ran: all {n} were skipped (not supported by this cluster or run)."
    if skipped:
        return (
            f"{n - skipped} of {n} scenarios conform and {skipped} "
            f"{'was' if skipped == 1 else 'were'} skipped (not supported "
            f"by this cluster or run): {t.cells['match']} cells match the reference{extra}."
        )
    return f"All {n} scenarios conform: {t.cells['match']} cells match the reference{extra}."
