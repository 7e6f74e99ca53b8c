"""Sampled probing: which cells of a large step to probe, chosen by the reference's rules.

Why: 200 pods make 40,000 cells per port, and probing each one costs the cluster far more than
the verdicts are worth; most cells are decided exactly like many others. A CNI bug is nearly
always about a rule or a feature (a port range, an ``except``, a named port, a selector on
namespace labels), so a useful sample probes every distinct way the rules treat a cell, then
spends the rest at random to catch what the model does not predict (address order, node, load).

How (all bitsets over the matrix compiler's indexes, see ``matrix.py``):

1. Each cell gets *facts*: for every rule of the policies (NetworkPolicy or admin) that select
   either end, whether its peers match the other end and whether its ports match the cell, so a
   cell one condition away from a rule (a near miss on the port or on the peer) differs from one
   it matches; its path (same node, host network); whether the destination serves the port; its
   verdict; its verdict before the step (so the cells a step changes are classes of their own).
2. Cells with the same facts form a *class*: the rules cannot tell them apart. Classes are the
   regions between rule boundaries; a small class is a thin sliver next to one (an ``except``
   block, the one pod a selector picks).
3. Up to half of the budget goes to one cell of each class, rarest classes first (the
   *boundary* cells); the rest is a uniform random draw from the cells left. Every choice comes
   from one ``random.Random(seed)`` over the caller's order of sources and targets, so a seed and
   a state give the same sample.

Outside clients (sources that are not pods) are classes of their own, one per client and grid.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conformance.api.adminpol import AdminPolicy
from conformance.api.model import ClusterState
from conformance.api.netpol import NetworkPolicy
from conformance.api.types import Direction, Grid, PodKey, TargetKey
from conformance.reference.evaluator import AnyPolicy, Verdict
from conformance.reference.matrix import (
    MatrixCompiler,
    ReachabilityMatrix,
    bit_indices,
    port_matches,
)
from conformance.reference.truthtable import CellKey

Fact = tuple[Any, ...]
_UNDEFINED: Fact = ("undefined",)


@dataclass(frozen=True)
class Sample:
    """The cells chosen from a step's ``population`` cells, and how they were chosen."""

    cells: frozenset[CellKey]
    population: int
    requested: int
    seed: int
    classes: int
    """Classes of cells the rules treat alike (implementation-defined cells, never probed, left
    out)."""
    covering: int
    """Classes chosen because they had a fact (a rule match or near miss) no earlier one had."""
    boundary: int
    """Cells chosen as one per class (rarest classes first)."""
    random: int
    """Cells drawn uniformly from the rest."""
    matrices: Mapping[Grid, ReachabilityMatrix] = field(repr=False, compare=False)

    @property
    def complete(self) -> bool:
        """Every cell was chosen (the step had no more cells than ``requested``)."""
        return len(self.cells) == self.population

    def verdict(self, key: CellKey) -> Verdict | None:
        """The reference's verdict of any cell of the step (sampled or not); None if unknown
        (an outside client as the source, or a cell outside the step)."""
        return _verdict(self.matrices, key)

    def summary(self) -> dict[str, int]:
        """What the results JSON keeps (docs/results-json.md)."""
        return {
            "cells": len(self.cells),
            "population": self.population,
            "requested": self.requested,
            "seed": self.seed,
            "classes": self.classes,
            "covering": self.covering,
            "boundary": self.boundary,
            "random": self.random,
        }

    def describe(self) -> str:
        """One line for consoles and reports."""
        return sample_phrase(self.summary())


def _verdict(matrices: Mapping[Grid, ReachabilityMatrix], key: CellKey) -> Verdict | None:
    source, target, port, protocol, family = key
    matrix = matrices.get(Grid(port, protocol, family))
    if matrix is None:
        return None
    try:
        return matrix.verdict(source, target, port, protocol)
    except KeyError:
        return None


def sample_phrase(summary: Mapping[str, int]) -> str:
    """A step's ``Sample.summary`` (as the results JSON keeps it) in one phrase."""
    if summary["cells"] >= summary["population"]:
        return (
            f"every cell probed ({summary['population']}; a sample of {summary['requested']} asked)"
        )
    return (
        f"sampled {summary['cells']} of {summary['population']} cells (seed {summary['seed']}): "
        f"{summary['boundary']} from {summary['classes']} classes of cells the rules treat alike "
        f"({summary['covering']} of them for a rule match or near miss not yet probed), "
        f"{summary['random']} at random"
    )


def sample_cells(
    state: ClusterState,
    policies: Sequence[AnyPolicy],
    sources: Sequence[PodKey],
    targets: Sequence[TargetKey],
    grids: Sequence[Grid],
    *,
    cells: int,
    seed: int = 0,
    include_self: bool = False,
    previous: Sample | None = None,
) -> Sample:
    """Choose ``cells`` of the step's cells (sources x targets x grids); see the module doc."""
    rng = random.Random(seed)
    population = len(sources) * len(targets) * len(grids)
    classes: dict[tuple[Fact, ...], _Reservoir] = {}
    matrices: dict[Grid, ReachabilityMatrix] = {}
    pod_sources = [s for s in sources if state.has_pod(s)]
    source_order = {s: i for i, s in enumerate(sources)}
    for grid in grids:
        compiler = MatrixCompiler(
            state, tuple(policies), include_self, [(grid.port, grid.protocol)], None, grid.family
        )
        matrix = compiler.run()
        matrices[grid] = matrix
        facts = _Facts(compiler, (grid.port, grid.protocol))
        probed = _or(1 << compiler.bit[s] for s in pod_sources)
        by_bit = {compiler.bit[s]: s for s in pod_sources}
        prev = previous.matrices.get(grid) if previous is not None else None
        for target in targets:
            column = facts.column(target, probed)
            allow, undefined = matrix.bits(target, (grid.port, grid.protocol))
            column.split(allow, ("allow",))
            column.split(undefined, _UNDEFINED)
            if prev is not None:
                _split_previous(column, prev, matrix, target, grid, by_bit)
            for bits, own in column.classes:
                sig = (column.constant, *own)
                found = classes.get(sig)
                if found is None:
                    found = classes[sig] = _Reservoir()
                if found.add(rng, bits):
                    members = sorted(
                        (by_bit[i] for i in bit_indices(bits)), key=source_order.__getitem__
                    )
                    found.cell = (members[rng.randrange(len(members))], target, *grid)
        for source in sources:
            if not state.has_pod(source):
                # An outside client: the matrix has no row for it; one class per client and grid.
                found = classes.setdefault((("outside", source, grid),), _Reservoir())
                for target in targets:
                    found.add_one(rng, (source, target, *grid))
    probed_classes = sum(_UNDEFINED not in sig for sig in classes)
    if population <= cells:
        chosen = frozenset((s, t, *g) for g in grids for t in targets for s in sources)
        return Sample(chosen, population, cells, seed, probed_classes, 0, 0, 0, matrices)
    boundary, covered = _boundary(classes, max(1, cells // 2))
    picked = set(boundary)
    # Twice the cells left, so that skipping chosen and implementation-defined cells (never
    # probed) still fills the budget.
    draws = rng.sample(range(population), min(population, 2 * cells + len(boundary)))
    n_t, n_s = len(targets), len(sources)
    extra: list[CellKey] = []
    for index in draws:
        if len(picked) >= cells:
            break
        g, rest = divmod(index, n_t * n_s)
        t, s = divmod(rest, n_s)
        key = (sources[s], targets[t], *grids[g])
        if key not in picked and _verdict(matrices, key) is not Verdict.IMPLEMENTATION_DEFINED:
            picked.add(key)
            extra.append(key)
    return Sample(
        frozenset(picked),
        population,
        cells,
        seed,
        probed_classes,
        covered,
        len(boundary),
        len(extra),
        matrices,
    )


def _boundary(
    classes: Mapping[tuple[Fact, ...], _Reservoir], budget: int
) -> tuple[list[CellKey], int]:
    """One cell per class, up to ``budget``: first, rarest first, each class that has a fact no
    class chosen before has (so every rule is probed where it matches and where it misses on the
    port alone, when the budget allows); then the rarest classes left. Also returns how many
    classes were chosen for a new fact."""
    # Implementation-defined cells are not probed: no budget for them.
    ordered = sorted(
        ((sig, r) for sig, r in classes.items() if _UNDEFINED not in sig),
        key=lambda item: item[1].count,  # ties: first seen first
    )
    seen: set[Fact] = set()
    chosen: list[int] = []
    for i, (sig, _) in enumerate(ordered):
        if len(chosen) >= budget:
            break
        facts = set(_flatten(sig))
        if not facts <= seen:
            seen |= facts
            chosen.append(i)
    covering = len(chosen)
    taken = set(chosen)
    for i in range(len(ordered)):
        if len(chosen) >= budget:
            break
        if i not in taken:
            chosen.append(i)
    cells = [ordered[i][1].cell for i in chosen]
    return [c for c in cells if c is not None], covering


def _flatten(sig: tuple[Fact, ...]) -> Iterable[Fact]:
    """The facts of a class signature: the column's constant facts and each split's facts."""
    for part in sig:
        if part and isinstance(part[0], tuple):
            yield from part
        else:
            yield part


def warmup_sample(
    cells: Sequence[tuple[Any, Any, Grid]], budget: int, seed: int = 0
) -> list[tuple[Any, Any, Grid]]:
    """A warm-up's probes when the steps are sampled: ``(source, target, grid)`` cells (sources
    and targets with a ``key``) such that every pod sends and receives at least once per grid,
    topped up at random to ``budget``. Why: without policies every cell is allowed, so the
    warm-up proves each pod connects both ways; all 40,000 pairs of 200 pods prove little more."""
    if len(cells) <= budget:
        return list(cells)
    order = list(cells)
    random.Random(seed).shuffle(order)
    sent: set[tuple[Any, Grid]] = set()
    received: set[tuple[Any, Grid]] = set()
    chosen: list[int] = []
    for i, (src, dst, grid) in enumerate(order):
        if (src.key, grid) not in sent or (dst.key, grid) not in received:
            sent.add((src.key, grid))
            received.add((dst.key, grid))
            chosen.append(i)
    taken = set(chosen)
    chosen += [i for i in range(len(order)) if i not in taken][: max(0, budget - len(chosen))]
    return [order[i] for i in sorted(chosen)]


class _Reservoir:
    """One class: how many cells, and one of them chosen uniformly (reservoir sampling by chunks)."""

    def __init__(self) -> None:
        self.count = 0
        self.cell: CellKey | None = None

    def add(self, rng: random.Random, bits: int) -> bool:
        """Count a chunk of ``bits`` cells; True when the chosen cell must come from it."""
        size = bits.bit_count()
        self.count += size
        return rng.random() * self.count < size

    def add_one(self, rng: random.Random, cell: CellKey) -> None:
        self.count += 1
        if rng.random() * self.count < 1:
            self.cell = cell


def _split_previous(
    column: _Column,
    prev: ReachabilityMatrix,
    matrix: ReachabilityMatrix,
    target: TargetKey,
    grid: Grid,
    by_bit: Mapping[int, PodKey],
) -> None:
    """Split by the verdict before the step (cells a step changes are classes of their own)."""
    pp = (grid.port, grid.protocol)
    if target not in prev.ports:
        column.split(-1, ("new",))
        return
    if prev.same_sources(matrix):
        allow, undefined = prev.bits(target, pp)
        column.split(allow, ("was-allow",))
        column.split(undefined, ("was-undefined",))
        return
    was_allow = was_undefined = 0
    for bit, source in by_bit.items():
        try:
            verdict = prev.verdict(source, target, *pp)
        except KeyError:
            continue
        if verdict is Verdict.ALLOW:
            was_allow |= 1 << bit
        elif verdict is Verdict.IMPLEMENTATION_DEFINED:
            was_undefined |= 1 << bit
    column.split(was_allow, ("was-allow",))
    column.split(was_undefined, ("was-undefined",))


class _Column:
    """The sources of one column split into classes by the facts that hold for them."""

    def __init__(self, constant: Fact, universe: int) -> None:
        self.constant = constant
        self.classes: list[tuple[int, list[Fact]]] = [(universe, [])] if universe else []

    def split(self, mask: int, fact: Fact) -> None:
        out: list[tuple[int, list[Fact]]] = []
        for bits, facts in self.classes:
            inside = bits & mask
            if not inside:
                out.append((bits, facts))
            elif inside == bits:
                facts.append(fact)
                out.append((bits, facts))
            else:
                out.append((inside, [*facts, fact]))
                out.append((bits ^ inside, list(facts)))
        self.classes = out


class _Facts:
    """Per destination, the facts of its column (see the module docstring, step 1)."""

    def __init__(self, c: MatrixCompiler, pp: tuple[int, Any]) -> None:
        self.c = c
        self.pp = pp
        self.target_bit: dict[TargetKey, int] = dict(c.bit)
        for j, e in enumerate(c.externals):
            self.target_bit[e.key] = c.n + j
        self.ingress: list[tuple[int, int, NetworkPolicy]] = []  # (index, subjects, policy)
        self.egress: list[tuple[int, int, NetworkPolicy]] = []
        for index, policy in enumerate(c.netpols):
            subjects = c.subjects(policy)
            if not subjects:
                continue
            if Direction.INGRESS in policy.policy_types:
                self.ingress.append((index, subjects, policy))
            if Direction.EGRESS in policy.policy_types:
                self.egress.append((index, subjects, policy))
        self.egress_isolated = _or(bits for _, bits, _ in self.egress)
        # Egress rules grouped by the sources they bind: (subjects, facts per target).
        self.egress_rules = [
            (
                index,
                subjects,
                [
                    (c.peers(policy, rule, Direction.EGRESS), c.port_targets(rule, pp))
                    for rule in policy.egress
                ],
            )
            for index, subjects, policy in self.egress
        ]
        self.admin: list[tuple[int, int, AdminPolicy]] = []
        for index, admin in enumerate(c.admin):
            bits = c.admin_subjects(admin)
            if bits:
                self.admin.append((index, bits, admin))

    def column(self, target: TargetKey, probed: int) -> _Column:
        c, pp = self.c, self.pp
        t = self.target_bit[target]
        tb = 1 << t
        constant: list[Any] = []
        groups: dict[int, list[Fact]] = {}

        def fact(mask: int, f: Fact) -> None:
            if mask & probed:
                groups.setdefault(mask & probed, []).append(f)

        if t < c.n:
            pod = c.pods[t]
            constant.append(("served", pod.serves(*pp)))
            constant.append(("host-network", pod.host_network))
            for index, subjects, policy in self.ingress:
                if not subjects & tb:
                    continue
                if ("in-isolated",) not in constant:
                    constant.append(("in-isolated",))
                for r_index, rule in enumerate(policy.ingress):
                    # Whether the rule's ports match here is the column's; its peers, the rows'.
                    how = "port" if port_matches(rule, pod, pp) else "port-miss"
                    constant.append(("in", index, r_index, how))
                    certain, unsure = c.peers(policy, rule, Direction.INGRESS)
                    fact(certain, ("in", index, r_index, "peer"))
                    fact(unsure, ("in", index, r_index, "peer", "undecidable"))
            for index, subjects, admin in self.admin:
                if not subjects & tb:
                    continue
                for r_index, arule in enumerate(admin.rules(Direction.INGRESS)):
                    pm, pu = c._admin_ports_at(arule, pod, pp)
                    constant.append(
                        ("admin-in", index, r_index, "port" if pm or pu else "port-miss")
                    )
                    certain, unsure = c._admin_peers(arule, Direction.INGRESS)
                    fact(certain, ("admin-in", index, r_index, "peer"))
                    fact(unsure, ("admin-in", index, r_index, "peer", "undecidable"))
            fact(c.node_pods.get(pod.node, 0), ("same-node",))
        else:
            constant.append(("external", target))
        fact(c.host, ("from-node",))
        fact(self.egress_isolated, ("eg-isolated",))
        for index, subjects, rules in self.egress_rules:
            for r_index, ((certain, unsure), at) in enumerate(rules):
                _egress_fact(fact, subjects, ("eg", index, r_index), certain, unsure, at, tb)
        for index, subjects, admin in self.admin:
            for r_index, arule in enumerate(admin.rules(Direction.EGRESS)):
                certain, unsure = c._admin_peers(arule, Direction.EGRESS)
                pm, pu = c._admin_ports_by_target(arule, pp)
                _egress_fact(
                    fact, subjects, ("admin-eg", index, r_index), certain, unsure, pm | pu, tb
                )
        column = _Column(tuple(constant), probed)
        for mask, facts in groups.items():
            column.split(mask, tuple(facts))
        return column


def _egress_fact(
    fact: Callable[[int, Fact], None],
    subjects: int,
    rule: Fact,
    certain: int,
    unsure: int,
    ports: int,
    target: int,
) -> None:
    """The fact an egress rule gives its subjects' cells to ``target``: its peers and ports match,
    or one of them misses (a near miss); none when both miss (two conditions away)."""
    peer = "peer" if certain & target else "peer-undecidable" if unsure & target else "peer-miss"
    port = "port" if ports & target else "port-miss"
    if (peer, port) != ("peer-miss", "port-miss"):
        fact(subjects, (*rule, peer, port))


def _or(values: Iterable[int]) -> int:
    out = 0
    for v in values:
        out |= v
    return out
