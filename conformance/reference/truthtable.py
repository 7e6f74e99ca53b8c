"""Truth tables: one grid per (port, protocol, address family), rows = sources, columns =
destinations.

The printed layout is also the input layout of a scenario's ``expect.table``: a grid printed by
``netpol-conformance evaluate`` can be pasted back into a scenario unchanged. The top-left corner
of each grid names its port and protocol (``80/TCP``), and the family when it is IPv6
(``80/TCP/IPv6``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from conformance.api.types import (
    AddressFamily,
    Grid,
    L4Protocol,
    PodKey,
    TargetKey,
    TrafficPath,
)
from conformance.reference.evaluator import Decision, Verdict

if TYPE_CHECKING:
    from conformance.reference.sampling import Sample

CellKey = tuple[PodKey, TargetKey, int, L4Protocol, AddressFamily]


class Mark:
    """One-character cell marks; lower-case and '-' mean the destination does not serve the port."""

    ALLOW = "."
    DENY = "X"
    UNDEFINED = "?"
    ALLOW_UNSERVED = "-"
    DENY_UNSERVED = "x"
    ALL = frozenset({ALLOW, DENY, UNDEFINED, ALLOW_UNSERVED, DENY_UNSERVED})


LEGEND = (
    "legend: . allow   X deny   ? implementation-defined (self traffic, tied priorities, node traffic the API leaves open)   "
    "- allow, port not served   x deny, port not served"
)


def mark_for(verdict: Verdict, served: bool) -> str:
    if verdict is Verdict.IMPLEMENTATION_DEFINED:
        return Mark.UNDEFINED
    if verdict is Verdict.ALLOW:
        return Mark.ALLOW if served else Mark.ALLOW_UNSERVED
    return Mark.DENY if served else Mark.DENY_UNSERVED


def verdict_of_mark(mark: str) -> Verdict:
    if mark == Mark.UNDEFINED:
        return Verdict.IMPLEMENTATION_DEFINED
    return Verdict.ALLOW if mark in (Mark.ALLOW, Mark.ALLOW_UNSERVED) else Verdict.DENY


@dataclass(frozen=True)
class Cell:
    source: PodKey
    target: TargetKey
    port: int
    protocol: L4Protocol
    verdict: Verdict
    served: bool
    decision: Decision | None = None
    path: TrafficPath | None = None
    family: AddressFamily = AddressFamily.IPV4

    @property
    def key(self) -> CellKey:
        return (self.source, self.target, self.port, self.protocol, self.family)

    @property
    def grid(self) -> Grid:
        return Grid(self.port, self.protocol, self.family)

    @property
    def mark(self) -> str:
        return mark_for(self.verdict, self.served)


@dataclass(frozen=True)
class TruthTable:
    sources: tuple[PodKey, ...]
    targets: tuple[TargetKey, ...]
    grids: tuple[Grid, ...]
    cells: Mapping[CellKey, Cell] = field(default_factory=dict)
    sample: Sample | None = None
    """How the cells were chosen when only a sample of the grids is evaluated and probed."""

    def cell(
        self,
        source: PodKey,
        target: TargetKey,
        port: int,
        protocol: L4Protocol,
        family: AddressFamily = AddressFamily.IPV4,
    ) -> Cell:
        return self.cells[(source, target, port, protocol, family)]

    def __iter__(self) -> Iterator[Cell]:
        """The cells in grid, source, target order (only the sampled ones of a sample)."""
        for port, proto, family in self.grids:
            for s in self.sources:
                for t in self.targets:
                    cell = self.cells.get((s, t, port, proto, family))
                    if cell is not None:
                        yield cell

    def render(self, marks: Mapping[CellKey, str] | None = None) -> str:
        """The grids, one per port/protocol/family; ``marks`` overrides cell marks (diffs).
        Cells left out of a sample are blank."""
        blocks = []
        for g in self.grids:
            grid: dict[tuple[PodKey, TargetKey], str] = {}
            for s in self.sources:
                for t in self.targets:
                    key = (s, t, *g)
                    cell = self.cells.get(key)
                    if marks and key in marks:
                        grid[(s, t)] = marks[key]
                    else:
                        grid[(s, t)] = cell.mark if cell is not None else " "
            blocks.append(render_grid(str(g), self.sources, self.targets, grid))
        return "\n\n".join(blocks)


def render_grid(
    corner: str,
    rows: Iterable[str],
    columns: Iterable[str],
    marks: Mapping[tuple[str, str], str],
) -> str:
    rows, columns = list(rows), list(columns)
    first = max(len(corner), *(len(r) for r in rows)) if rows else len(corner)
    widths = [len(c) for c in columns]
    lines = [
        " ".join([corner.ljust(first), *(c.ljust(w) for c, w in zip(columns, widths, strict=True))])
    ]
    for r in rows:
        cells = [marks[(r, c)].ljust(w) for c, w in zip(columns, widths, strict=True)]
        lines.append(" ".join([r.ljust(first), *cells]))
    return "\n".join(line.rstrip() for line in lines)


_CORNER = re.compile(r"^(\d+)/(TCP|UDP|SCTP)(?:/(IPv4|IPv6))?$")


class TableSyntaxError(ValueError):
    """A pasted table does not follow the printed layout; ``line`` is 1-based within the table."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def parse_tables(text: str) -> dict[CellKey, str]:
    """Parse grids in the printed layout into cell marks. Legend and ``#`` lines are ignored."""
    out: dict[CellKey, str] = {}
    header: tuple[Grid, list[str]] | None = None
    seen_rows: set[str] = set()
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("legend:"):
            continue
        tokens = line.split()
        corner = _CORNER.match(tokens[0])
        if corner:
            g = Grid(
                int(corner.group(1)),
                L4Protocol(corner.group(2)),
                AddressFamily(corner.group(3) or AddressFamily.IPV4),
            )
            if len(set(tokens[1:])) != len(tokens) - 1:
                raise TableSyntaxError(f"grid {tokens[0]} names a column twice", lineno)
            header = (g, tokens[1:])
            seen_rows = set()
            continue
        if header is None:
            raise TableSyntaxError(
                "expected a grid header starting with PORT/PROTOCOL (e.g. 80/TCP, or "
                f"80/TCP/IPv6), got {tokens[0]!r}",
                lineno,
            )
        g, columns = header
        source, marks = tokens[0], tokens[1:]
        if len(marks) != len(columns):
            raise TableSyntaxError(
                f"row {source} has {len(marks)} cells but the {g} header has {len(columns)} columns",
                lineno,
            )
        if source in seen_rows:
            raise TableSyntaxError(f"row {source} appears twice in grid {g}", lineno)
        seen_rows.add(source)
        for column, mark in zip(columns, marks, strict=True):
            if mark not in Mark.ALL:
                raise TableSyntaxError(
                    f"cell {source} -> {column} is {mark!r}; accepted marks: . X ? - x", lineno
                )
            out[(source, column, *g)] = mark
    return out
