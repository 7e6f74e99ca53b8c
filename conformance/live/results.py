"""Run results: per cell, step, scenario and run; one JSON document per run (docs/results-json.md).

Cells keep everything a person needs to judge a mismatch: what the scenario declared, what the
reference evaluator says and why, what was observed and how (attempts, time to converge), and the
command that reproduces the probe.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from conformance.api.types import AddressFamily, L4Protocol, TrafficPath
from conformance.errors import ExitCode
from conformance.live.probing import Outcome, ProbeResult
from conformance.reference.evaluator import Verdict

SCHEMA_VERSION = 1
_E = TypeVar("_E", bound=StrEnum)


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
    protocol: L4Protocol
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
    path: TrafficPath | None = None
    """same-node, cross-node, from-node, ... as the pods actually ran (None: node unknown)."""
    family: AddressFamily = AddressFamily.IPV4
    slow_propagation: bool = False
    """A mismatch that may be propagation slower than the deadline: it still showed the verdict
    from before the step's changes, or it agreed only in probes after the deadline."""
    settled_after_s: float | None = None
    """A mismatch that agreed in the extra probes after the deadline: when (as converged_after_s)."""
    changed: bool = False
    """The step changed this cell's expected verdict (from the previous step's, or from allow
    before the first policy): only such cells measure enforcement latency."""
    stale_until_s: float | None = None
    """A changed cell: when (as converged_after_s) the last attempt that still showed the verdict
    from before the change started; the enforcement latency lies after it (None: none did)."""

    def record(self, res: ProbeResult, since_change: float) -> None:
        """Fold one observation into the cell: status, attempts, convergence, flakiness.

        ``since_change`` is how long after the API accepted the step's last change this attempt
        started; an attempt that agrees with the reference sets ``converged_after_s`` to it (the
        cell is not probed again once it agrees, so that is the first attempt that saw the final
        verdict)."""
        self.attempts += 1
        self.observed = res.outcome
        self.detail = res.detail
        self.observed_verdict = observed_verdict(res.outcome, self.served)
        self.history.append(str(res.outcome))
        if res.outcome is Outcome.UNSUPPORTED:
            self.status = CellStatus.NOT_SUPPORTED
        elif self.observed_verdict is None:
            self.status = CellStatus.CHECK_FAILED
        elif self.observed_verdict == self.expected:
            self.status = CellStatus.MATCH
            self.converged_after_s = round(max(0.0, since_change), 3)
        else:
            self.status = CellStatus.MISMATCH
            if self.changed:
                self.stale_until_s = round(max(0.0, since_change), 3)
        verdicts = [
            h for h in self.history if h in (Outcome.CONNECTED, Outcome.TIMEOUT, Outcome.REFUSED)
        ]
        changes = sum(1 for a, b in itertools.pairwise(verdicts) if a != b)
        self.flaky = changes >= 2 or (changes >= 1 and self.status is CellStatus.MISMATCH)

    @property
    def latency_s(self) -> float | None:
        """Enforcement latency of a changed cell: from the API accepting the step's last change
        to the start of the first probe that saw the new verdict (within the deadline, or in
        the late watch); None for unchanged cells and cells that never showed it."""
        if not self.changed:
            return None
        if self.status is CellStatus.MATCH:
            return self.converged_after_s
        return self.settled_after_s

    @property
    def propagation_note(self) -> str:
        """One phrase for a mismatch flagged ``slow_propagation`` ("" otherwise)."""
        if self.status is not CellStatus.MISMATCH or not self.slow_propagation:
            return ""
        if self.settled_after_s is not None:
            return (
                f"agreed {self.settled_after_s:.1f} s after the change, after the deadline: "
                "slow propagation, try a longer --deadline"
            )
        return (
            "still the verdict from before the step's changes: maybe slow propagation, "
            "try a longer --deadline"
        )

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
    sample: dict[str, int] | None = None
    """How ``cells`` were chosen when the step probed a sample (``Sample.summary``: cells,
    population, requested, seed, classes, covering, boundary, random); None: every cell."""

    def counts(self) -> Counter[str]:
        return Counter(str(c.status) for c in self.cells)

    def settle(self, deadline_s: float | None = None) -> None:
        """A step that ran (still PASS) takes its status from its cells: any mismatch fails it;
        only unsupported/ignored cells skip it; probes that could not run make it an error.
        Mismatches that look like slow propagation say so and suggest a longer ``--deadline``."""
        if self.status is not Status.PASS:
            return
        statuses = {c.status for c in self.cells}
        if CellStatus.MISMATCH in statuses:
            self.status = Status.FAIL
            self.message = (
                f"{sum(c.status is CellStatus.MISMATCH for c in self.cells)} cells mismatch"
            )
            hint = slow_propagation_hint(self.cells, deadline_s)
            if hint:
                self.message += f"; {hint}"
        elif statuses and statuses <= {CellStatus.NOT_SUPPORTED, CellStatus.IGNORED}:
            self.status = Status.SKIPPED
            self.message = "not supported here: " + next(
                c.detail for c in self.cells if c.status is CellStatus.NOT_SUPPORTED
            )
        elif CellStatus.CHECK_FAILED in statuses:
            self.status = Status.ERROR
            self.message = f"{sum(c.status is CellStatus.CHECK_FAILED for c in self.cells)} probes could not run"


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-quantile (0 < q <= 1) of non-empty ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def latency_summary(cells: Iterable[CellResult]) -> dict[str, Any] | None:
    """p50/p95/max enforcement latency over the changed cells that showed their new verdict
    (None when there are none). ``resolution_s`` is the widest window between a cell's last
    probe still showing the old verdict (or the change) and its first showing the new one: each
    latency is exact to within it. ``unsettled`` counts changed cells that never agreed (cells
    not probed, e.g. not supported here, are left out)."""
    changed = [
        c for c in cells if c.changed and c.status in (CellStatus.MATCH, CellStatus.MISMATCH)
    ]
    seen = [c for c in changed if c.latency_s is not None]
    if not seen:
        return None
    values = [float(c.latency_s or 0.0) for c in seen]
    windows = [float(c.latency_s or 0.0) - (c.stale_until_s or 0.0) for c in seen]
    return {
        "cells": len(seen),
        "unsettled": len(changed) - len(seen),
        "p50_s": round(percentile(values, 0.5), 3),
        "p95_s": round(percentile(values, 0.95), 3),
        "max_s": round(max(values), 3),
        "resolution_s": round(max(windows), 3),
    }


def latency_phrase(summary: Mapping[str, Any] | None) -> str:
    """``latency_summary`` in one phrase for reports ("" when there is nothing to say)."""
    if not summary:
        return ""
    text = (
        f"p50 {summary['p50_s']:.2f} s, p95 {summary['p95_s']:.2f} s, max {summary['max_s']:.2f} s "
        f"over {summary['cells']} changed cells (each within {summary['resolution_s']:.2f} s)"
    )
    if summary.get("unsettled"):
        text += f"; {summary['unsettled']} never showed the new verdict"
    return text


def slow_propagation_hint(cells: list[CellResult], deadline_s: float | None) -> str:
    """What the mismatches flagged ``slow_propagation`` suggest, with a ``--deadline`` to try
    ("" when none is flagged)."""
    slow = [c for c in cells if c.status is CellStatus.MISMATCH and c.slow_propagation]
    if not slow:
        return ""
    settled = [c.settled_after_s for c in slow if c.settled_after_s is not None]
    within = f"the {deadline_s:g} s deadline" if deadline_s else "the deadline"
    if settled:
        latest = max(settled)
        text = (
            f"{len(settled)} of them agreed only after {within} (the last {latest:.1f} s after "
            "the change): propagation is slower than --deadline"
        )
        suggest = max(2 * latest, (deadline_s or 0) * 2)
    else:
        text = (
            f"{len(slow)} of them still showed the verdict from before the step's changes at "
            f"{within}: maybe propagation is slower than --deadline"
        )
        suggest = 3 * (deadline_s or 10)
    return f"{text}; try --deadline {int(suggest + 0.999)}"


@dataclass
class ScenarioResult:
    name: str
    file: str
    tags: list[str]
    status: Status
    message: str = ""
    steps: list[StepResult] = field(default_factory=list)
    namespaces: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, str] = field(default_factory=dict)
    """Node each scenario pod ran on (``ns/pod`` in scenario names -> node name)."""
    node_map: dict[str, str] = field(default_factory=dict)
    """Real node each scenario node was mapped to (empty: the runner did not choose)."""
    notes: list[str] = field(default_factory=list)
    """What a reader must know about how the scenario ran: placement on fewer nodes than it
    has, pods that ran on another node than asked."""
    pods_created: int = 0
    ready_wait_s: float = 0.0
    """Seconds this scenario waited for the pods it created to become ready."""
    pods_reused: int = 0
    """Pods taken over from an earlier scenario with the same topology (after a clean slate)."""

    def settle(self) -> None:
        """A scenario that ran (still PASS) takes the worst status of its steps; it is skipped
        only when every step was."""
        if self.status is not Status.PASS:
            return
        statuses = {s.status for s in self.steps}
        if Status.FAIL in statuses:
            self.status = Status.FAIL
        elif Status.ERROR in statuses:
            self.status = Status.ERROR
        elif statuses == {Status.SKIPPED}:
            self.status = Status.SKIPPED
            self.message = self.steps[0].message


def now_utc() -> str:
    """The current time as ``RunResult.started``/``finished`` record it: ``2026-01-31T12:00:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class RunResult:
    run_id: str
    context: str
    server: str
    server_version: str
    tool_version: str
    options: dict[str, Any]
    started: str  # now_utc() format
    finished: str = ""
    scenarios: list[ScenarioResult] = field(default_factory=list)
    cni: str = ""  # the CNI, when the runner can tell (kube-system workloads); "" if unknown
    retries: dict[str, int] = field(default_factory=dict)
    """Transient failures retried during the run: ``api`` requests, ``exec`` streams."""

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
            "pods": {
                "created": sum(sc.pods_created for sc in self.scenarios),
                "reused": sum(sc.pods_reused for sc in self.scenarios),
                "ready_wait_s": round(sum(sc.ready_wait_s for sc in self.scenarios), 3),
            },
            "enforcement_latency": latency_summary(
                c for sc in self.scenarios for st in sc.steps for c in st.cells
            ),
        }

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        for sc, sc_obj in zip(doc["scenarios"], self.scenarios, strict=True):
            for st, st_obj in zip(sc["steps"], sc_obj.steps, strict=True):
                st["enforcement_latency"] = latency_summary(st_obj.cells)
                for cell in st["cells"]:
                    # Same names as `evaluate --output json`.
                    cell["from"] = cell.pop("source")
                    cell["to"] = cell.pop("target")
        doc["schema_version"] = SCHEMA_VERSION
        doc["summary"] = self.summary()
        return doc

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, default=str)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RunResult:
        """The inverse of ``to_json`` (``summary`` is recomputed), so reports can be regenerated
        from a results file. Unknown keys are ignored: files only ever gain fields."""
        if not isinstance(doc, Mapping) or "scenarios" not in doc:
            raise ValueError(
                "not a results document: no 'scenarios' key (see docs/results-json.md)"
            )
        version = doc.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"results schema_version {version} is not supported (this tool reads {SCHEMA_VERSION})"
            )
        return cls(
            run_id=str(doc.get("run_id", "")),
            context=str(doc.get("context", "")),
            server=str(doc.get("server", "")),
            server_version=str(doc.get("server_version", "")),
            tool_version=str(doc.get("tool_version", "")),
            options=dict(doc.get("options") or {}),
            started=str(doc.get("started", "")),
            finished=str(doc.get("finished", "")),
            scenarios=[_scenario_from_json(sc) for sc in doc["scenarios"]],
            cni=str(doc.get("cni") or ""),
            retries={str(k): int(v) for k, v in (doc.get("retries") or {}).items()},
        )

    def save(self, directory: str | Path) -> Path:
        """Write ``results-<run id>.json`` and ``results.json`` (the latest run) into
        ``directory``, creating it; returns the per-run file. Raises OSError."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        return write_with_latest(
            folder, f"results-{self.run_id}.json", "results.json", self.dumps()
        )

    @classmethod
    def load(cls, path: str | Path) -> RunResult:
        """Read a results file; ValueError names the file when it is not one."""
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls.from_json(doc)
        except OSError as exc:
            raise ValueError(f"{path}: cannot read results: {exc.strerror}") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read results: {exc}") from exc


def write_with_latest(folder: Path, name: str, latest: str, text: str) -> Path:
    """Write ``folder/name`` once and point ``folder/latest`` at it (a relative symlink,
    replaced atomically; a copy where symlinks cannot be made). Raises OSError."""
    path = folder / name
    path.write_text(text, encoding="utf-8")
    link = folder / latest
    tmp = folder / f".{latest}.{os.getpid()}.tmp"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(name)
        os.replace(tmp, link)
    except OSError:
        tmp.unlink(missing_ok=True)
        link.unlink(missing_ok=True)
        link.write_text(text, encoding="utf-8")
    return path


def _opt(enum: type[_E], value: Any) -> _E | None:
    return None if value is None else enum(value)


def _cell_from_json(c: Mapping[str, Any]) -> CellResult:
    return CellResult(
        source=c["from"] if "from" in c else c["source"],  # files before 0.1.0 used source/target
        target=c["to"] if "to" in c else c["target"],
        port=int(c["port"]),
        protocol=L4Protocol(c["protocol"]),
        expected=Verdict(c["expected"]),
        served=bool(c.get("served", True)),
        reason=str(c.get("reason", "")),
        declared=_opt(Verdict, c.get("declared")),
        observed=_opt(Outcome, c.get("observed")),
        observed_verdict=_opt(Verdict, c.get("observed_verdict")),
        status=CellStatus(c.get("status", CellStatus.CHECK_FAILED)),
        attempts=int(c.get("attempts", 0)),
        converged_after_s=c.get("converged_after_s"),
        flaky=bool(c.get("flaky", False)),
        history=[str(h) for h in c.get("history", [])],
        detail=str(c.get("detail", "")),
        command=str(c.get("command", "")),
        path=_opt(TrafficPath, c.get("path")),
        family=AddressFamily(c.get("family", AddressFamily.IPV4)),
        slow_propagation=bool(c.get("slow_propagation", False)),
        settled_after_s=c.get("settled_after_s"),
        changed=bool(c.get("changed", False)),
        stale_until_s=c.get("stale_until_s"),
    )


def _scenario_from_json(sc: Mapping[str, Any]) -> ScenarioResult:
    return ScenarioResult(
        name=str(sc["name"]),
        file=str(sc.get("file", "")),
        tags=[str(t) for t in sc.get("tags", [])],
        status=Status(sc["status"]),
        message=str(sc.get("message", "")),
        namespaces=dict(sc.get("namespaces") or {}),
        nodes={str(k): str(v) for k, v in (sc.get("nodes") or {}).items()},
        node_map={str(k): str(v) for k, v in (sc.get("node_map") or {}).items()},
        notes=[str(n) for n in sc.get("notes") or []],
        pods_created=int(sc.get("pods_created", 0)),
        ready_wait_s=float(sc.get("ready_wait_s", 0.0)),
        pods_reused=int(sc.get("pods_reused", 0)),
        steps=[
            StepResult(
                index=int(st["index"]),
                name=str(st["name"]),
                status=Status(st["status"]),
                duration_s=float(st.get("duration_s", 0.0)),
                message=str(st.get("message", "")),
                cells=[_cell_from_json(c) for c in st.get("cells", [])],
                policies=list(st.get("policies", [])),
                sample={str(k): int(v) for k, v in st["sample"].items()}
                if st.get("sample")
                else None,
            )
            for st in sc.get("steps", [])
        ],
    )


def exit_code(run: RunResult) -> ExitCode:
    """Ok when all match, failed on mismatches, infrastructure on errors."""
    statuses = {s.status for s in run.scenarios}
    if Status.FAIL in statuses:
        return ExitCode.FAILED
    if Status.ERROR in statuses:
        return ExitCode.INFRASTRUCTURE
    return ExitCode.OK
