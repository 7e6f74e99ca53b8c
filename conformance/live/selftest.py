"""The suite's own mutation score: run scenarios on an embedded cluster once per deviation knob.

Why: a conformance suite is only as good as the enforcement bugs it catches. Each ``--deviation``
of the embedded cluster imitates a class of real CNI bugs (docs/cluster.md); a scenario *catches* a
deviation when one of its cells mismatches on the deviating cluster. The run without deviations
must have no mismatch at all, so every mismatch of a deviating run is the deviation's doing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.cluster.knobs import Deviation, Knobs
from conformance.live.deploy import new_run_id
from conformance.live.options import RunOptions
from conformance.live.results import CellStatus, RunResult, ScenarioResult, Status, now_utc
from conformance.live.runner import Runner
from conformance.live.session import ClusterChoice, open_cluster
from conformance.scenario.load import Scenario

CLEAN = "none"
"""Name of the run without deviations in the detection matrix."""
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Catch:
    """A step whose cells mismatch on a deviating cluster."""

    scenario: str
    file: str
    step: int
    step_name: str
    cells: int
    unexpectedly_allowed: int

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "file": self.file,
            "step": self.step,
            "stepName": self.step_name,
            "cells": self.cells,
            "unexpectedlyAllowed": self.unexpectedly_allowed,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Catch:
        return cls(
            str(doc["scenario"]),
            str(doc.get("file", "")),
            int(doc["step"]),
            str(doc.get("stepName", "")),
            int(doc["cells"]),
            int(doc.get("unexpectedlyAllowed", 0)),
        )


@dataclass
class KnobRun:
    """One run of the scenarios: ``deviation`` is ``CLEAN`` for the run without deviations."""

    deviation: str
    catches: list[Catch] = field(default_factory=list)
    cells: int = 0
    errors: list[str] = field(default_factory=list)  # "scenario: message" of errored scenarios
    seconds: float = 0.0
    results: str = ""  # the run's results JSON
    instance: str = ""  # the embedded cluster's instance name

    @property
    def mismatches(self) -> int:
        return sum(c.cells for c in self.catches)

    @property
    def caught(self) -> bool:
        return self.mismatches > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "deviation": self.deviation,
            "caught": self.caught,
            "mismatchingCells": self.mismatches,
            "probedCells": self.cells,
            "scenarios": sorted({c.scenario for c in self.catches}),
            "steps": [c.to_json() for c in self.catches],
            "errors": self.errors,
            "seconds": round(self.seconds, 1),
            "results": self.results,
            "instance": self.instance,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> KnobRun:
        """The inverse of ``to_json`` (``caught`` and the counts follow from ``steps``)."""
        return cls(
            str(doc["deviation"]),
            catches=[Catch.from_json(c) for c in doc.get("steps") or []],
            cells=int(doc.get("probedCells", 0)),
            errors=[str(e) for e in doc.get("errors") or []],
            seconds=float(doc.get("seconds", 0.0)),
            results=str(doc.get("results", "")),
            instance=str(doc.get("instance", "")),
        )


@dataclass
class Selftest:
    """The detection matrix: the clean run and one run per deviation."""

    scenarios: list[str]
    clean: KnobRun | None = None
    runs: list[KnobRun] = field(default_factory=list)
    started: str = field(default_factory=now_utc)
    finished: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def missed(self) -> list[str]:
        return [r.deviation for r in self.runs if not r.caught]

    @property
    def ok(self) -> bool:
        """Clean run without mismatches or errors, and every deviation caught."""
        clean_ok = self.clean is not None and not self.clean.caught and not self.clean.errors
        return clean_ok and not self.missed

    def to_json(self) -> dict[str, Any]:
        return {
            "schemaVersion": SCHEMA_VERSION,
            "started": self.started,
            "finished": self.finished,
            "options": self.options,
            "scenarios": self.scenarios,
            "ok": self.ok,
            "missed": self.missed,
            "clean": None if self.clean is None else self.clean.to_json(),
            "deviations": [r.to_json() for r in self.runs],
        }

    @staticmethod
    def is_selftest(doc: object) -> bool:
        """Whether a parsed JSON document is a detection matrix (not a run's results)."""
        return isinstance(doc, dict) and "deviations" in doc and "clean" in doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Selftest:
        """The inverse of ``to_json``, so the HTML page can be made again from selftest.json."""
        version = doc.get("schemaVersion", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"selftest schemaVersion {version} is not supported (this tool reads "
                f"{SCHEMA_VERSION})"
            )
        clean = doc.get("clean")
        return cls(
            [str(n) for n in doc.get("scenarios") or []],
            clean=None if clean is None else KnobRun.from_json(clean),
            runs=[KnobRun.from_json(r) for r in doc["deviations"]],
            started=str(doc.get("started", "")),
            finished=str(doc.get("finished", "")),
            options=dict(doc.get("options") or {}),
        )

    @classmethod
    def load(cls, path: str | Path) -> Selftest:
        """Read selftest.json; ValueError names the file when it is not one."""
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
            if not cls.is_selftest(doc):
                raise ValueError("not a selftest document: no 'deviations' and 'clean' keys")
            return cls.from_json(doc)
        except OSError as exc:
            raise ValueError(f"{path}: cannot read selftest: {exc.strerror}") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read selftest: {exc}") from exc

    def save(self, path: str | Path) -> Path:
        """Write the matrix as JSON (creating the folder); raises OSError."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        return out


def knob_run(deviation: str, result: RunResult) -> KnobRun:
    """What one run caught: its mismatching cells per step, and the scenarios that errored."""
    run = KnobRun(deviation)
    for sc in result.scenarios:
        if sc.status is Status.ERROR:
            run.errors.append(f"{sc.name}: {sc.message or 'error'}")
        for st in sc.steps:
            run.cells += sum(c.status in (CellStatus.MATCH, CellStatus.MISMATCH) for c in st.cells)
            bad = [c for c in st.cells if c.status is CellStatus.MISMATCH]
            if bad:
                allowed = sum(c.mismatch_kind == "unexpectedly-allowed" for c in bad)
                run.catches.append(Catch(sc.name, sc.file, st.index, st.name, len(bad), allowed))
            elif st.status is Status.ERROR and sc.status is not Status.ERROR:
                run.errors.append(f"{sc.name} step {st.index}: {st.message}")
    return run


Progress = Callable[[str], None]


class SelftestRunner:
    """Runs the scenarios on one embedded cluster per deviation (``clusters`` of them at once)."""

    def __init__(
        self,
        scenarios: Sequence[Scenario],
        options: RunOptions,
        jobs: int = 4,
        clusters: int = 1,
        output_dir: str | Path = "reports",
        progress: Progress | None = None,
    ) -> None:
        self.scenarios = list(scenarios)
        self.options = options
        self.jobs = jobs
        self.clusters = clusters
        self.output_dir = Path(output_dir)
        self.progress = progress or (lambda _m: None)
        self._runners: list[Runner] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def run(self, deviations: Sequence[Deviation]) -> Selftest:
        """The clean run and one run per deviation; every cluster is gone when this returns."""
        test = Selftest(
            [sc.name for sc in self.scenarios],
            options={
                **self.options.as_dict(),
                "jobs": self.jobs,
                "clusters": self.clusters,
                "deviations": [str(d) for d in deviations],
            },
        )
        names: list[Deviation | None] = [None, *deviations]
        pool = ThreadPoolExecutor(max_workers=max(1, self.clusters), thread_name_prefix="knob")
        try:
            futures = [pool.submit(self._one, i, d) for i, d in enumerate(names)]
            for fut in futures:
                while not fut.done():
                    wait([fut], timeout=0.2)
            results = [f.result() for f in futures]
        except BaseException:
            self._stop_all()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        test.clean, test.runs = results[0], results[1:]
        test.finished = now_utc()
        return test

    def _stop_all(self) -> None:
        self._stopping.set()
        with self._lock:
            for runner in self._runners:
                runner.stopping.set()

    def _one(self, index: int, deviation: Deviation | None) -> KnobRun:
        name = CLEAN if deviation is None else str(deviation)
        if self._stopping.is_set():
            raise KeyboardInterrupt
        start = time.monotonic()
        instance = f"st{os.getpid() % 100000}x{index}"
        choice = ClusterChoice(
            embedded_instance=instance,
            knobs=Knobs(deviations=frozenset() if deviation is None else frozenset({deviation})),
        )
        run_id = new_run_id()
        with open_cluster(choice, self.scenarios) as (cluster, externals):
            options = dataclasses.replace(self.options, externals=externals)
            runner = Runner(cluster, options, run_id)
            with self._lock:
                self._runners.append(runner)
            result = runner.new_result()
            try:
                done = 0

                def record(sc: ScenarioResult) -> None:
                    nonlocal done
                    done += 1
                    result.scenarios.append(sc)
                    self.progress(f"{name}: {done}/{len(self.scenarios)} scenarios")

                runner.run_many(self.scenarios, self.jobs, record)
            finally:
                runner.cleanup()
                runner.close()
                with self._lock:
                    self._runners.remove(runner)
        result.finished = now_utc()
        out = knob_run(name, result)
        out.seconds = time.monotonic() - start
        out.instance = instance
        path = result.save(self.output_dir / f"selftest-{name}")
        out.results = str(path)
        self.progress(f"{name}: {'caught' if out.caught else 'not caught'}")
        return out
