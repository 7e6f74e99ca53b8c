"""Truth-table printing and parsing: a printed grid parses back to the same marks."""

from __future__ import annotations

import pytest

from conformance.api.types import AddressFamily, Grid, L4Protocol
from conformance.reference.evaluator import Verdict
from conformance.reference.truthtable import (
    Cell,
    TableSyntaxError,
    TruthTable,
    mark_for,
    parse_tables,
    verdict_of_mark,
)


def make_table() -> TruthTable:
    sources = ("x/a", "x/b")
    targets = ("x/a", "x/b", "@db")
    pps = (Grid(80, L4Protocol.TCP), Grid(81, L4Protocol.UDP))
    cells = {}
    for port, proto, _family in pps:
        for s in sources:
            for t in targets:
                verdict = (
                    Verdict.IMPLEMENTATION_DEFINED
                    if s == t
                    else (Verdict.DENY if t == "x/b" else Verdict.ALLOW)
                )
                served = not (t == "@db" and port == 81)
                cells[(s, t, port, proto, AddressFamily.IPV4)] = Cell(
                    s, t, port, proto, verdict, served
                )
    return TruthTable(sources, targets, pps, cells)


def test_render_layout() -> None:
    text = make_table().render()
    assert text.splitlines()[:3] == [
        "80/TCP x/a x/b @db",
        "x/a    ?   X   .",
        "x/b    .   ?   .",
    ]
    assert "81/UDP x/a x/b @db" in text
    assert "x/a    ?   X   -" in text


def test_printed_table_parses_back() -> None:
    table = make_table()
    marks = parse_tables(table.render() + "\nlegend: ignored\n# comment\n")
    assert marks == {c.key: c.mark for c in table}


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("x/a . X\n", "expected a grid header", 1),
        ("80/TCP x/a x/b\nx/a . \n", "has 1 cells", 2),
        ("80/TCP x/a x/b\nx/a . Y\n", "accepted marks", 2),
        ("80/TCP x/a x/a\n", "names a column twice", 1),
        ("80/TCP x/a\nx/a .\nx/a .\n", "appears twice", 3),
    ],
)
def test_parse_errors(text: str, message: str, line: int) -> None:
    with pytest.raises(TableSyntaxError, match=message) as info:
        parse_tables(text)
    assert info.value.line == line


@pytest.mark.parametrize("verdict", [Verdict.ALLOW, Verdict.DENY])
@pytest.mark.parametrize("served", [True, False])
def test_marks_round_trip(verdict: Verdict, served: bool) -> None:
    assert verdict_of_mark(mark_for(verdict, served)) is verdict
