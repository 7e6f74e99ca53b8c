"""Run results: per cell, step, scenario and run; one JSON document per run (docs/results-json.md).

Cells keep everything a person needs to judge a mismatch: what the scenario declared, what the
reference evaluator says and why, what was observed and how (attempts, time to converge), and the
command that reproduces the probe.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from conformance._types import Protocol
from conformance.evaluator import Verdict
from conformance.probing import Outcome

SCHEMA_VERSION = 1


class CellStatus(StrEnum):
    MATCH = "match"
    MISMATCH = "mismatch"
    CHECK_FAILED = "check-failed"  # the probe could not run: never a CNI verdict
    NOT_SUPPORTED = "not-supported"  # e.g. SCTP without the kernel module
    IGNORED = "implementation-defined"  # pod to itself


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"  # the CNI disagrees with the reference
    ERROR = "error"  # infrastructure: could not deploy or probe
    SKIPPED = "skipped"  # not supported by this cluster or run (reason given)


def observed_verdict(outcome: Outcome, served: bool) -> Verdict | None:
    """What an outcome says about policy: TIMEOUT is a drop; REFUSED means packets got through
    when nothing listens, and is read as a rejection when the destination serves the port."""
    if outcome is Outcome.CONNECTED:
        return Verdict.ALLOW
    if outcome is Outcome.TIMEOUT:
        return Verdict.DENY
    if outcome is Outcome.REFUSED:
        return Verdict.DENY if served else Verdict.ALLOW
    return None


@dataclass
class CellResult:
    source: str
    target: str
    port: int
    protocol: Protocol
    expected: Verdict
    served: bool
    reason: str
    declared: Verdict | None = None
    observed: Outcome | None = None
    observed_verdict: Verdict | None = None
    status: CellStatus = CellStatus.CHECK_FAILED
    attempts: int = 0
    converged_after_s: float | None = None
    flaky: bool = False
    history: list[str] = field(default_factory=list)
    detail: str = ""
    command: str = ""

    @property
    def mismatch_kind(self) -> str | None:
        """'allowed' (a security hole) or 'denied' (an outage) for mismatches."""
        if self.status is not CellStatus.MISMATCH:
            return None
        return (
            "unexpectedly-allowed"
            if self.observed_verdict is Verdict.ALLOW
            else "unexpectedly-denied"
        )


@dataclass
class StepResult:
    index: int
    name: str
    status: Status
    duration_s: float = 0.0
    message: str = ""
    cells: list[CellResult] = field(default_factory=list)
    policies: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> Counter[str]:
        return Counter(str(c.status) for c in self.cells)


@dataclass
class ScenarioResult:
    name: str
    file: str
    tags: list[str]
    status: Status
    message: str = ""
    steps: list[StepResult] = field(default_factory=list)
    namespaces: dict[str, str] = field(default_factory=dict)


@dataclass
class RunResult:
    run_id: str
    context: str
    server: str
    server_version: str
    tool_version: str
    options: dict[str, Any]
    started: str
    finished: str = ""
    scenarios: list[ScenarioResult] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        cells: Counter[str] = Counter()
        for sc in self.scenarios:
            for st in sc.steps:
                cells.update(st.counts())
        flaky = sum(c.flaky for sc in self.scenarios for st in sc.steps for c in st.cells)
        return {
            "scenarios": dict(Counter(str(s.status) for s in self.scenarios)),
            "steps": dict(Counter(str(st.status) for s in self.scenarios for st in s.steps)),
            "cells": dict(cells),
            "flaky": flaky,
        }

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        for sc in doc["scenarios"]:
            for st in sc["steps"]:
                for cell in st["cells"]:
                    # Same names as `evaluate --output json`.
                    cell["from"] = cell.pop("source")
                    cell["to"] = cell.pop("target")
        doc["schema_version"] = SCHEMA_VERSION
        doc["summary"] = self.summary()
        return doc

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, default=str)


def exit_code(run: RunResult) -> int:
    """0 all match, 1 mismatches, 3 infrastructure errors (2 is for scenario/usage errors)."""
    statuses = {s.status for s in run.scenarios}
    if Status.FAIL in statuses:
        return 1
    if Status.ERROR in statuses:
        return 3
    return 0
