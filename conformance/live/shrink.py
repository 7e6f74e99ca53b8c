"""Delta-debugging a failing scenario on the cluster that fails it, down to a minimal scenario.

Why: a mismatch found by a generated scenario involves a few of its many objects; a CNI
maintainer needs those few. Starting from the scenario probing only the failing cells, each
smaller variant (``scenario.shrink.candidates``) is loaded (so the reference evaluator accepts
it) and run live; the first that still mismatches replaces the current one, until no single
removal keeps the failure. The result declares the evaluator's tables as its expectations.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from conformance.errors import ScenarioError
from conformance.live.results import CellResult, CellStatus, RunResult, ScenarioResult
from conformance.live.runner import Runner
from conformance.reference.expectations import evaluate_scenario
from conformance.scenario.load import load_data, load_scenario
from conformance.scenario.shrink import Doc, candidates, focus, size

Progress = Callable[[str], None]
Cell = tuple[str, str, int, str]


@dataclass
class Shrunk:
    """The minimal scenario, its last failing live result and how it was reached."""

    original: Doc
    doc: Doc
    result: ScenarioResult
    checks: int = 0
    removed: list[str] = field(default_factory=list)

    @property
    def mismatches(self) -> list[CellResult]:
        return [c for st in self.result.steps for c in st.cells if c.status is CellStatus.MISMATCH]


def failing_cells(run: RunResult, name: str) -> tuple[str, list[Cell]]:
    """The scenario's file and the mismatching cells of its first failing step; ValueError when
    the results have no such scenario or it did not mismatch."""
    for sc in run.scenarios:
        if sc.name != name:
            continue
        for st in sc.steps:
            cells = [
                (c.source, c.target, c.port, str(c.protocol))
                for c in st.cells
                if c.status is CellStatus.MISMATCH
            ]
            if cells:
                return sc.file, cells
        raise ValueError(f"scenario {name!r} has no mismatching cell in these results")
    known = ", ".join(sc.name for sc in run.scenarios[:10])
    raise ValueError(f"no scenario {name!r} in these results; it has: {known}")


def document(path: str | Path) -> Doc:
    """A scenario file as one self-contained document (``file:`` policy references inlined)."""
    scenario = load_scenario(path)
    doc: Doc = copy.deepcopy(scenario.doc.data)
    for step, sources in zip(doc.get("steps") or [], scenario.step_policies, strict=True):
        if step.get("apply"):
            step["apply"] = [copy.deepcopy(src.obj) for src in sources]
    return doc


class Shrinker:
    """Shrinks on one cluster through a ``Runner`` (each check is one live scenario run)."""

    def __init__(self, runner: Runner, max_checks: int = 200, progress: Progress | None = None):
        self.runner = runner
        self.max_checks = max_checks
        self.progress = progress or (lambda _m: None)
        self.checks = 0

    def fails(self, doc: Doc) -> ScenarioResult | None:
        """The live result when the document is a valid scenario that still mismatches."""
        try:
            scenario = load_data(doc, "<shrink>")
        except ScenarioError:
            return None
        self.checks += 1
        result = self.runner.run_scenario(scenario)
        bad = any(c.status is CellStatus.MISMATCH for st in result.steps for c in st.cells)
        return result if bad else None

    def shrink(self, doc: Doc, cells: list[Cell]) -> Shrunk:
        """The smallest failing variant found; ValueError when the scenario does not fail here.

        Only the first failing connection (source and target, all its failing ports) is kept
        in focus: one connection is enough for a bug report, and every other pod can go."""
        pair = cells[0][:2]
        cells = [c for c in cells if c[:2] == pair]
        current, result = focus(doc, cells), None
        result = self.fails(current)
        if result is None:
            current, result = doc, self.fails(doc)
        if result is None:
            raise ValueError("the scenario does not mismatch on this cluster: nothing to shrink")
        out = Shrunk(doc, current, result)
        keep = frozenset(k for c in cells for k in (c[0], c[1]))
        progress = True
        while progress and self.checks < self.max_checks:
            progress = False
            for label, candidate in candidates(current, keep):
                if self.checks >= self.max_checks:
                    break
                found = self.fails(candidate)
                if found is not None:
                    current, out.result = candidate, found
                    out.removed.append(label)
                    self.progress(f"removed {label}: {size(current)}")
                    progress = True
                    break
        out.doc, out.checks = current, self.checks
        return out


def with_expectations(doc: Doc) -> Doc:
    """The document with each step declaring the reference evaluator's table."""
    out = copy.deepcopy(doc)
    out["name"] = f"{doc.get('name', 'scenario')}-shrunk"
    out["description"] = (
        f"Shrunk from {doc.get('name', 'a scenario')} by `netpol-conformance shrink`: the "
        "smallest variant found that still mismatches on the cluster."
    )
    evaluated = evaluate_scenario(load_data(out, "<shrink>"))
    for step, ev in zip(out["steps"], evaluated.steps, strict=True):
        step["expect"] = {"table": ev.table.render() + "\n"}
    return out


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the expectation tables) as literal blocks."""


def _str(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _str)


def dump(doc: Doc) -> str:
    return str(yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True))
