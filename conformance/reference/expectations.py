"""Expected truth tables, and declared expectations (compact rules or a pasted table) checked
against them.

``expected_table`` applies the reference evaluator to every probe cell of a bound step;
``evaluate_scenario`` does so for every step of a scenario bound offline and lists where the
author's declaration disagrees. A disagreement means the scenario's author and the reference
evaluator read the API differently: it is a scenario error, reported cell by cell, never silently
resolved either way.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from conformance.api.model import ClusterState, traffic_path
from conformance.api.types import Grid, L4Protocol, PodKey, TargetKey, TrafficPath
from conformance.errors import Location, ScenarioError
from conformance.reference.evaluator import Evaluator, Verdict
from conformance.reference.sampling import Sample, sample_cells
from conformance.reference.truthtable import (
    Cell,
    CellKey,
    TableSyntaxError,
    TruthTable,
    mark_for,
    parse_tables,
    verdict_of_mark,
)
from conformance.scenario.bind import BoundStep
from conformance.scenario.load import Scenario
from conformance.scenario.schema import Expectation


def expected_table(
    step: BoundStep, *, include_self: bool = False, previous: Sample | None = None
) -> TruthTable:
    """The reference evaluator applied to every probe cell of a bound step, or to the cells of
    its sample when it has ``probe.sample`` (``previous``: the sample of the step before)."""
    state = step.state
    sample = None
    if step.sample is not None:
        sample = sample_cells(
            state,
            step.policies,
            step.sources,
            step.targets,
            step.grids,
            cells=step.sample.cells,
            seed=step.sample.seed,
            include_self=include_self,
            previous=previous,
        )
    evaluator = Evaluator(state, step.policies, include_self=include_self)
    paths: dict[tuple[PodKey, TargetKey], TrafficPath | None] = {}  # per pair, not per grid
    cells: dict[CellKey, Cell] = {}
    for port, proto, family in step.grids:
        for s in step.sources:
            for t in step.targets:
                key = (s, t, port, proto, family)
                if sample is not None and key not in sample.cells:
                    continue
                decision = evaluator.decide(s, t, port, proto, family)
                served = is_served(state, t, port, proto)
                if (s, t) not in paths:
                    paths[(s, t)] = traffic_path(state.endpoint(s), state.endpoint(t))
                cells[key] = Cell(
                    s, t, port, proto, decision.verdict, served, decision, paths[(s, t)], family
                )
    return TruthTable(step.sources, step.targets, step.grids, cells, sample)


def is_served(state: ClusterState, target: TargetKey, port: int, protocol: L4Protocol) -> bool:
    """Whether the destination listens on the port (an unserved allowed probe is refused)."""
    return state.endpoint(target).serves(port, protocol)


@dataclass(frozen=True)
class Disagreement:
    cell: Cell
    declared: Verdict
    declared_served: bool | None = None

    def __str__(self) -> str:
        c = self.cell
        where = f"{c.source} -> {c.target} {c.grid}"
        if self.declared != c.verdict:
            reason = c.decision.reason if c.decision else ""
            return f"{where}: declared {self.declared}, evaluator says {c.verdict} ({reason})"
        said = "served" if self.declared_served else "not served"
        return f"{where}: declared {said}, but the destination {'serves' if c.served else 'does not serve'} that port"


def declared_verdicts(
    step: BoundStep, table: TruthTable
) -> dict[CellKey, tuple[Verdict, bool | None]]:
    """Declared verdict (and, from tables, served state) for every probed cell."""
    expect = step.expect
    if expect is None:
        return {}
    if expect.table is not None:
        return _from_table(expect, step, table)
    out: dict[CellKey, tuple[Verdict, bool | None]] = {}
    default = Verdict(expect.default or "allow")
    for cell in table:
        verdict = default
        for rule in expect.rules:  # Last matching rule wins.
            if (
                fnmatch.fnmatchcase(cell.source, rule.from_)
                and fnmatch.fnmatchcase(cell.target, rule.to)
                and (rule.ports is None or cell.port in rule.ports)
                and (rule.protocols is None or cell.protocol in rule.protocols)
                and (rule.families is None or cell.family in rule.families)
            ):
                verdict = Verdict(rule.verdict)
        out[cell.key] = (verdict, None)
    for i, rule in enumerate(expect.rules):
        # Cells are every source x target x grid (also when only a sample is probed).
        if not (
            any(fnmatch.fnmatchcase(s, rule.from_) for s in step.sources)
            and any(fnmatch.fnmatchcase(t, rule.to) for t in step.targets)
            and any(
                (rule.ports is None or g.port in rule.ports)
                and (rule.protocols is None or g.protocol in rule.protocols)
                and (rule.families is None or g.family in rule.families)
                for g in step.grids
            )
        ):
            # A rule that matches nothing is almost always a typo in a glob or a port.
            raise ScenarioError(
                "this rule matches no probed cell; check its from/to globs, ports and protocols "
                "against the step's probe",
                step.locate(("expect", "rules", i)),
            )
    return out


def _from_table(
    expect: Expectation, step: BoundStep, table: TruthTable
) -> dict[CellKey, tuple[Verdict, bool | None]]:
    assert expect.table is not None
    loc = step.locate(("expect",))
    try:
        marks = parse_tables(expect.table)
    except TableSyntaxError as exc:
        # A block scalar's first line is the line after the `table:` key.
        raise ScenarioError(
            str(exc), Location(loc.file, loc.line + 1 + exc.line, f"{loc.path}.table")
        ) from None
    wanted = {c.key for c in table}
    table_loc = Location(loc.file, loc.line, f"{loc.path}.table")
    missing = sorted(wanted - marks.keys(), key=str)
    if missing:
        s, t, port, proto, family = missing[0]
        raise ScenarioError(
            f"the table has no cell {s} -> {t} {Grid(port, proto, family)}, which the step probes "
            f"({len(missing)} cells missing); paste the grid `evaluate` prints",
            table_loc,
        )
    sources, targets, grids = set(step.sources), set(step.targets), set(step.grids)
    extra = sorted(
        (
            k
            for k in marks.keys() - wanted
            if k[0] not in sources or k[1] not in targets or Grid(*k[2:]) not in grids
        ),
        key=str,
    )
    if extra:
        s, t, port, proto, family = extra[0]
        raise ScenarioError(
            f"the table has cell {s} -> {t} {Grid(port, proto, family)}, which the step does not "
            "probe",
            table_loc,
        )
    return {
        key: (verdict_of_mark(m), None if m == "?" else m in (".", "X"))
        for key, m in marks.items()
        if key in wanted
    }


def disagreements(step: BoundStep, table: TruthTable) -> list[Disagreement]:
    """Cells where the declaration and the evaluator differ; implementation-defined cells never do."""
    out = []
    declared = declared_verdicts(step, table)
    for cell in table:
        if cell.key not in declared or cell.verdict is Verdict.IMPLEMENTATION_DEFINED:
            continue
        verdict, served = declared[cell.key]
        if verdict is Verdict.IMPLEMENTATION_DEFINED:
            continue
        if verdict != cell.verdict or (served is not None and served != cell.served):
            out.append(Disagreement(cell, verdict, served))
    return out


def diff_marks(table: TruthTable, found: list[Disagreement]) -> dict[CellKey, str]:
    """Marks for a diff grid: evaluator's mark where they agree, '!' plus mark where they differ."""
    marks = {c.key: mark_for(c.verdict, c.served) for c in table}
    for d in found:
        marks[d.cell.key] = "!" + marks[d.cell.key]
    return marks


@dataclass
class StepEvaluation:
    """One step bound offline: its expected table and where the declaration disagrees."""

    step: BoundStep
    table: TruthTable
    disagreements: list[Disagreement]


@dataclass
class ScenarioEvaluation:
    scenario: Scenario
    steps: list[StepEvaluation] = field(default_factory=list)


def evaluate_scenario(scenario: Scenario, *, include_self: bool = False) -> ScenarioEvaluation:
    """Expected tables and declared-vs-evaluated disagreements for every step (offline binding)."""
    result = ScenarioEvaluation(scenario)
    previous = None
    for step in scenario.offline_steps:
        table = expected_table(step, include_self=include_self, previous=previous)
        previous = table.sample
        result.steps.append(StepEvaluation(step, table, disagreements(step, table)))
    return result
