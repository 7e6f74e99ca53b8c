"""Compare two runs cell by cell: what a CNI upgrade (or a fix) changed.

A cell's *state* is its status, its observed verdict and the reference verdict. Cells whose state
differs between OLD and NEW are classified:

- ``regressed``: a mismatch in NEW that was not one in OLD (or a new cell that mismatches), and no
  known deviation covers it; these make ``diff`` exit 1.
- ``known``: the same, but covered by a known deviation (reported, allowed).
- ``fixed``: a mismatch in OLD that matches in NEW.
- ``changed``: anything else (match -> check-failed, not-supported -> match, a mismatch of another
  kind); reported, never a regression, since none of it is a new disagreement with the API.
- ``added`` / ``removed``: cells in only one run that do not mismatch (scenarios added or dropped).

A scenario in only one run (a full run against a subset) is summarised by name, not cell by cell;
its cells stay in the JSON, and a mismatching cell of a scenario only in NEW is still a regression.

Cells are keyed by scenario name, step number and the scenario's own pod names (``x/a``), so runs
with different run ids and namespaces compare.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from conformance.errors import ExitCode
from conformance.live.results import CellResult, CellStatus, RunResult
from conformance.reports.deviations import KnownDeviation, KnownDeviations
from conformance.reports.judgement import CellKey, cell_key, iter_cells, judge


class Change(StrEnum):
    REGRESSED = "regressed"
    KNOWN = "known"
    FIXED = "fixed"
    CHANGED = "changed"
    ADDED = "added"
    REMOVED = "removed"


TITLES = {
    Change.REGRESSED: "regressed (newly failing)",
    Change.KNOWN: "newly failing, allowed by known deviations",
    Change.FIXED: "fixed (newly passing)",
    Change.CHANGED: "changed (not a verdict on the CNI)",
    Change.ADDED: "only in NEW",
    Change.REMOVED: "only in OLD",
}


def state(c: CellResult | None) -> str:
    """``mismatch: expected deny, observed connected (allow)``; ``absent`` for a missing cell."""
    if c is None:
        return "absent"
    observed = f"{c.observed} ({c.observed_verdict})" if c.observed else "not probed"
    return f"{c.status}: expected {c.expected}, observed {observed}"


@dataclass(frozen=True)
class CellChange:
    key: CellKey
    change: Change
    step_name: str
    old: str
    new: str
    reason: str  # the reference's explanation in NEW (OLD for removed cells)
    command: str
    deviation: KnownDeviation | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "change": str(self.change),
            "scenario": self.key.scenario,
            "step": self.key.step,
            "step_name": self.step_name,
            "from": self.key.source,
            "to": self.key.target,
            "port": self.key.port,
            "protocol": self.key.protocol,
            "old": self.old,
            "new": self.new,
            "reason": self.reason,
            "command": self.command,
            "known_deviation": (
                {"reason": self.deviation.reason, "link": self.deviation.link}
                if self.deviation
                else None
            ),
        }


@dataclass(frozen=True)
class RunDiff:
    old: RunResult
    new: RunResult
    changes: tuple[CellChange, ...]

    def of(self, change: Change) -> list[CellChange]:
        return [c for c in self.changes if c.change is change]

    @property
    def only_old(self) -> list[str]:
        """Scenarios of OLD that NEW does not have, in OLD's order."""
        names = {sc.name for sc in self.new.scenarios}
        return [sc.name for sc in self.old.scenarios if sc.name not in names]

    @property
    def only_new(self) -> list[str]:
        """Scenarios of NEW that OLD does not have, in NEW's order."""
        names = {sc.name for sc in self.old.scenarios}
        return [sc.name for sc in self.new.scenarios if sc.name not in names]

    def _listed(self, c: CellChange) -> bool:
        """Whether the text lists the cell: added/removed cells of a scenario that only one run
        has are summarised with their scenario instead."""
        if c.change is Change.REMOVED:
            return c.key.scenario not in self.only_old
        if c.change is Change.ADDED:
            return c.key.scenario not in self.only_new
        return True

    @property
    def regressed(self) -> bool:
        return any(c.change is Change.REGRESSED for c in self.changes)

    def exit_code(self) -> ExitCode:
        """Failed when a cell regressed (newly failing, not a known deviation), else ok."""
        return ExitCode.FAILED if self.regressed else ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        return {
            "old": {"run_id": self.old.run_id, "context": self.old.context},
            "new": {"run_id": self.new.run_id, "context": self.new.context},
            "counts": dict(Counter(str(c.change) for c in self.changes)),
            "scenarios_only_in_old": self.only_old,
            "scenarios_only_in_new": self.only_new,
            "changes": [c.to_json() for c in self.changes],
        }

    def text(self) -> str:
        lines = [
            f"netpol-conformance diff: OLD run {self.old.run_id} ({self.old.context}, "
            f"{self.old.server_version}) -> NEW run {self.new.run_id} ({self.new.context}, "
            f"{self.new.server_version})"
        ]
        for names, which in ((self.only_old, "OLD"), (self.only_new, "NEW")):
            if names:
                shown = ", ".join(names[:10]) + (
                    f", and {len(names) - 10} more" if len(names) > 10 else ""
                )
                lines.append(
                    f"scenarios only in {which}: {len(names)} (their cells are not listed): {shown}"
                )
        for change in Change:
            items = [c for c in self.of(change) if self._listed(c)]
            if not items:
                continue
            lines.append(f"{TITLES[change]}: {len(items)}")
            for c in items:
                lines.append(
                    f"  {c.key.scenario} step {c.key.step + 1}: {c.key.label}: {c.old} -> {c.new}"
                )
                if change in (Change.REGRESSED, Change.KNOWN, Change.FIXED):
                    lines.append(f"      why expected: {c.reason}")
                if c.deviation:
                    lines.append(
                        f"      known deviation: {c.deviation.reason} {c.deviation.link}".rstrip()
                    )
                if change is Change.REGRESSED and c.command:
                    lines.append(f"      reproduce: {c.command}")
        n = {ch: len(self.of(ch)) for ch in Change}
        lines.append(
            f"{n[Change.REGRESSED]} regressed, {n[Change.FIXED]} fixed, {n[Change.KNOWN]} newly "
            f"failing but known, {n[Change.CHANGED]} otherwise changed, {n[Change.ADDED]} added, "
            f"{n[Change.REMOVED]} removed (cells); {len(self.only_old)} scenarios only in OLD, "
            f"{len(self.only_new)} only in NEW."
        )
        return "\n".join(lines)


def _index(run: RunResult) -> dict[CellKey, tuple[str, CellResult]]:
    return {cell_key(sc, st, c): (st.name, c) for sc, st, c in iter_cells(run)}


def _same(a: CellResult, b: CellResult) -> bool:
    return (a.status, a.observed_verdict, a.expected) == (b.status, b.observed_verdict, b.expected)


def compare(old: RunResult, new: RunResult, deviations: KnownDeviations | None = None) -> RunDiff:
    """Every cell whose state differs between ``old`` and ``new``, sorted by key."""
    before, after = _index(old), _index(new)
    known = judge(new, deviations).known
    changes = []
    for key in sorted(before.keys() | after.keys()):
        o = before.get(key)
        n = after.get(key)
        oc, nc = (o[1] if o else None), (n[1] if n else None)
        if oc is not None and nc is not None and _same(oc, nc):
            continue
        was_bad = oc is not None and oc.status is CellStatus.MISMATCH
        is_bad = nc is not None and nc.status is CellStatus.MISMATCH
        if is_bad and not was_bad:
            change = Change.KNOWN if key in known else Change.REGRESSED
        elif was_bad and nc is not None and nc.status is CellStatus.MATCH:
            change = Change.FIXED
        elif nc is None:
            change = Change.REMOVED
        elif oc is None:
            change = Change.ADDED
        else:
            change = Change.CHANGED
        ref = nc or oc
        assert ref is not None
        changes.append(
            CellChange(
                key=key,
                change=change,
                step_name=(n or o or ("", ref))[0],
                old=state(oc),
                new=state(nc),
                reason=ref.reason,
                command=ref.command,
                deviation=known.get(key),
            )
        )
    return RunDiff(old, new, tuple(changes))


def dumps(diff: RunDiff) -> str:
    return json.dumps(diff.to_json(), indent=2)
