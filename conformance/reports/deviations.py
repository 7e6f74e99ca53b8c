"""Known deviations: mismatches a team has accepted for a CNI, with a reason and a link.

A file lists entries whose patterns (shell-style, ``fnmatch``) select mismatching cells; a selected
mismatch is still reported but no longer fails ``run`` or ``diff``. Format (docs/reports.md)::

    deviations:
      - scenario: should-enforce-except-clause-*   # scenario name or file (required)
        step: "*"                                  # step name, or its number (1 = first)
        cell: "x/a -> x/b 80/TCP"                  # "FROM -> TO PORT/PROTOCOL"
        kind: unexpectedly-allowed                 # or unexpectedly-denied; default: either
        reason: the CNI ignores ipBlock.except     # required: why this is accepted
        link: https://example.org/issue/1          # where it is tracked

Pydantic checks the YAML; errors name file, line and key path (``known.yaml:7: deviations[2].reason:
field 'reason' is required``), as scenario errors do.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conformance.errors import ConformanceError, Location, ScenarioError
from conformance.scenario.source import load_documents


class DeviationsError(ConformanceError):
    """A known-deviations file cannot be read or is invalid (a usage error: fix the file)."""


@dataclass(frozen=True)
class KnownDeviation:
    """One accepted mismatch pattern."""

    scenario: str
    reason: str
    link: str = ""
    step: str = "*"
    cell: str = "*"
    kind: str | None = None

    def matches(
        self,
        scenario: str,
        file: str,
        step_index: int,
        step_name: str,
        cell: str,
        kind: str | None,
    ) -> bool:
        if not (fnmatchcase(scenario, self.scenario) or fnmatchcase(file, self.scenario)):
            return False
        step_ok = (
            int(self.step) == step_index + 1
            if self.step.isdigit()
            else fnmatchcase(step_name, self.step)
        )
        if not step_ok or not fnmatchcase(cell, self.cell):
            return False
        return self.kind is None or self.kind == kind

    @property
    def label(self) -> str:
        where = " / ".join(p for p in (self.scenario, self.step, self.cell) if p != "*")
        return where or "*"


@dataclass(frozen=True)
class KnownDeviations:
    """The entries of one file, first match wins."""

    entries: tuple[KnownDeviation, ...]
    source: str = ""

    def match(
        self,
        scenario: str,
        file: str,
        step_index: int,
        step_name: str,
        cell: str,
        kind: str | None,
    ) -> KnownDeviation | None:
        for entry in self.entries:
            if entry.matches(scenario, file, step_index, step_name, cell, kind):
                return entry
        return None

    @classmethod
    def parse(cls, text: str, source: str = "<string>") -> KnownDeviations:
        """Entries of a file's text; ``DeviationsError`` has one ``file:line: field: problem``
        line per problem (with the accepted fields or values where that helps)."""
        try:
            docs = load_documents(text, source)
        except ScenarioError as exc:
            raise DeviationsError(str(exc)) from exc
        if len(docs) > 1:
            raise DeviationsError(f"{source}: expected one YAML document, found {len(docs)}")
        doc = docs[0] if docs else None
        data = doc.data if doc is not None else None
        bare = isinstance(data, list)  # a bare list of entries is accepted too
        if data is None:
            data = {"deviations": []}
        elif bare:
            data = {"deviations": data}
        try:
            model = _File.model_validate(data)
        except ValidationError as exc:
            lines = []
            for err in exc.errors(include_url=False):
                loc = tuple(err["loc"])[1:] if bare else tuple(err["loc"])
                where = doc.locate(loc) if doc is not None else Location(source)
                lines.append(f"{where}: {_message(err)}")
            raise DeviationsError("\n".join(dict.fromkeys(lines))) from exc
        return cls(
            tuple(
                KnownDeviation(
                    scenario=e.scenario,
                    reason=e.reason,
                    link=e.link,
                    step=str(e.step),
                    cell=e.cell,
                    kind=e.kind,
                )
                for e in model.deviations
            ),
            source,
        )

    @classmethod
    def load(cls, path: str | Path) -> KnownDeviations:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise DeviationsError(f"cannot read known deviations {path}: {exc.strerror}") from exc
        return cls.parse(text, str(path))


def _message(err: Any) -> str:
    """A pydantic error in the words scenario errors use (docs/reports.md lists the fields)."""
    loc = tuple(err["loc"])
    name = loc[-1] if loc else ""
    if err["type"] == "extra_forbidden":
        accepted = ", ".join(_Entry.model_fields) if len(loc) >= 3 else "deviations"
        return f"unknown field {name!r}; accepted: {accepted}"
    if err["type"] == "missing":
        return f"field {name!r} is required"
    if err["type"] in ("model_type", "dict_type"):
        return "expected a mapping" + (
            f" with {', '.join(_Entry.model_fields)}" if len(loc) >= 2 else " with `deviations:`"
        )
    message = str(err["msg"])
    if "input" in err and err["type"] not in ("list_type",):
        message += f" (got {err['input']!r})"
    return message


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scenario: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    link: str = ""
    step: str | int = "*"
    cell: str = "*"
    kind: Literal["unexpectedly-allowed", "unexpectedly-denied"] | None = None


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deviations: list[_Entry]
