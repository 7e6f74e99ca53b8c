"""The expected truth table of a bound step: the reference evaluator applied to every probe cell."""

from __future__ import annotations

from conformance.api.types import L4Protocol, TargetKey
from conformance.reference.evaluator import Evaluator
from conformance.reference.truthtable import Cell, CellKey, TruthTable
from conformance.scenario.bind import BoundStep


def expected_table(step: BoundStep, *, include_self: bool = False) -> TruthTable:
    evaluator = Evaluator(step.state, step.policies, include_self=include_self)
    cells: dict[CellKey, Cell] = {}
    for port, proto in step.port_protocols:
        for s in step.sources:
            for t in step.targets:
                decision = evaluator.decide(s, t, port, proto)
                served = _served(step, t, port, proto)
                cells[(s, t, port, proto)] = Cell(
                    s, t, port, proto, decision.verdict, served, decision
                )
    return TruthTable(step.sources, step.targets, step.port_protocols, cells)


def _served(step: BoundStep, target: TargetKey, port: int, protocol: L4Protocol) -> bool:
    """Whether the destination listens on the port (an unserved allowed probe is refused)."""
    if target.startswith("@"):
        return any(e.key == target and e.serves(port, protocol) for e in step.state.externals)
    return step.state.pod(target).serves(port, protocol)
