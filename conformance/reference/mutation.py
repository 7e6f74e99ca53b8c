"""Does a scenario step change anything? The check ``generate`` uses on every step it draws.

Why: a step that changes no cell's verdict (relabelling a pod to the label it already has, a
policy that repeats the last one) tests nothing a dataplane could get wrong about the change; a
generated corpus full of such steps misses whole classes of bugs (ignored label changes, policies
left enforced after deletion). The reference semantics say which cells a step flips (the bitset
matrix, property-tested against the evaluator, so drawing many candidates stays cheap).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conformance.reference.evaluator import Verdict
from conformance.reference.matrix import compute_matrix
from conformance.reference.truthtable import CellKey
from conformance.scenario.bind import BoundStep
from conformance.scenario.load import load_data

DECIDED = (Verdict.ALLOW, Verdict.DENY)
Verdicts = Mapping[CellKey, Verdict]


def verdicts(step: BoundStep) -> dict[CellKey, Verdict]:
    """The verdict of every cell the step probes (one matrix per address family)."""
    out: dict[CellKey, Verdict] = {}
    for family in dict.fromkeys(f for _, _, f in step.grids):
        pps = [(port, proto) for port, proto, f in step.grids if f == family]
        matrix = compute_matrix(step.state, step.policies, port_protocols=pps, family=family)
        for port, proto in pps:
            for s in step.sources:
                for t in step.targets:
                    out[(s, t, port, proto, family)] = matrix.verdict(s, t, port, proto)
    return out


def flipped(before: Verdicts | None, after: Verdicts) -> int:
    """Cells whose verdict ``after`` differs from ``before`` (None: no policy, everything
    allowed). A cell new in ``after`` (a pod added) counts when it is denied: a new pod that
    some policy must reach from its first packet."""
    count = 0
    for key, verdict in after.items():
        if verdict not in DECIDED:
            continue
        old = before.get(key) if before is not None else None
        if old is None:
            count += verdict is Verdict.DENY
        elif old in DECIDED and old != verdict:
            count += 1
    return count


def _steps(doc: dict[str, Any]) -> tuple[BoundStep, ...]:
    return load_data(doc, f"<{doc.get('name', 'scenario')}>").offline_steps


def step_flips(doc: dict[str, Any]) -> list[int]:
    """For each step of a scenario document, how many cells it flips (see ``flipped``)."""
    tables = [verdicts(step) for step in _steps(doc)]
    return [flipped(tables[i - 1] if i else None, table) for i, table in enumerate(tables)]


def last_step_flips(doc: dict[str, Any]) -> bool:
    """Whether the document's last step flips at least one cell."""
    steps = _steps(doc)
    before = verdicts(steps[-2]) if len(steps) > 1 else None
    return flipped(before, verdicts(steps[-1])) > 0
