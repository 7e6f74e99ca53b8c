"""pytest plugin: scenario YAML files become test items, one per step.

It only wires pytest to the library: loading, evaluation and table printing live in
``conformance``. Without a cluster (the default) each step checks that its declared expectations
agree with the reference evaluator; failures print the disagreeing cells and the diff grid instead
of a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.errors import ScenarioError
from conformance.evaluate_cmd import StepResult, evaluate_scenario
from conformance.expectations import diff_marks
from conformance.scenario import SCENARIO_SUFFIXES, Scenario, is_scenario_file, load_scenario
from conformance.truthtable import LEGEND


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netpol", "netpol-conformance scenarios")
    group.addoption(
        "--netpol-include-self",
        action="store_true",
        default=None,
        help="give pod-to-itself cells a verdict instead of implementation-defined",
    )
    parser.addini(
        "netpol_scenario_paths",
        type="paths",
        default=["scenarios"],
        help="folders whose YAML scenario files are collected (files named on the command line always are)",
    )
    parser.addini(
        "netpol_include_self", type="bool", default=False, help="default for --netpol-include-self"
    )


def _include_self(config: pytest.Config) -> bool:
    opt = config.getoption("netpol_include_self")
    return bool(config.getini("netpol_include_self") if opt is None else opt)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in SCENARIO_SUFFIXES:
        return None
    roots = [Path(p) for p in parent.config.getini("netpol_scenario_paths")]
    wanted = parent.session.isinitpath(file_path) or any(file_path.is_relative_to(r) for r in roots)
    if wanted and is_scenario_file(file_path):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    """A scenario file; one item per step, or one failing item if the file is invalid."""

    def collect(self) -> Iterator[pytest.Item]:
        try:
            scenario = load_scenario(self.path)
            result = evaluate_scenario(scenario, include_self=_include_self(self.config))
        except ScenarioError as exc:
            yield InvalidScenario.from_parent(self, name="invalid", error=exc)
            return
        for step in result.steps:
            item = StepItem.from_parent(self, name=step.step.name, scenario=scenario, result=step)
            item.extra_keyword_matches.update(scenario.tags)  # `-k ipblock` selects by tag
            yield item


class InvalidScenario(pytest.Item):
    def __init__(self, *, error: ScenarioError, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error

    def runtest(self) -> None:
        raise self.error

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        return f"invalid scenario:\n{self.error}"

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.path.name}: invalid"


class DisagreementError(Exception):
    """Declared expectations of a step disagree with the reference evaluator."""


class StepItem(pytest.Item):
    def __init__(self, *, scenario: Scenario, result: StepResult, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.result = result

    def runtest(self) -> None:
        if self.result.disagreements:
            raise DisagreementError(len(self.result.disagreements))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if not isinstance(excinfo.value, DisagreementError):
            return str(super().repr_failure(excinfo))
        r = self.result
        lines = [
            f"{len(r.disagreements)} declared cells disagree with the reference evaluator "
            f"(step {r.step.index + 1} of {self.scenario.file}); '!' marks them:",
            r.table.render(diff_marks(r.table, r.disagreements)),
            LEGEND,
            *(f"  {d}" for d in r.disagreements),
        ]
        return "\n".join(lines)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.scenario.name} :: {self.name}"
