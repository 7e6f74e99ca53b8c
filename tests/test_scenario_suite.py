"""The shipped scenario suite: every file loads and agrees with the reference evaluator."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.reference.expectations import evaluate_scenario
from conformance.scenario.load import discover, load_scenario
from conformance.scenario.schema import json_schema

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = discover([ROOT / "scenarios"])


def test_suite_is_not_empty() -> None:
    assert len(SCENARIOS) >= 2


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: str(p.relative_to(ROOT / "scenarios")))
def test_scenario_agrees_with_evaluator(path: Path) -> None:
    result = evaluate_scenario(load_scenario(path))
    problems = [str(d) for step in result.steps for d in step.disagreements]
    assert not problems, "\n".join(problems)
    assert all(step.step.expect is not None for step in result.steps), (
        "every shipped step declares expectations"
    )


def test_upstream_ports_name_their_source() -> None:
    for path in SCENARIOS:
        if "upstream" in path.parts:
            assert load_scenario(path).spec.source, f"{path} lacks `source:`"


def test_published_schema_is_current() -> None:
    published = (ROOT / "docs" / "scenario.schema.json").read_text()
    assert published.strip() == json_schema().strip(), (
        "run: netpol-conformance schema > docs/scenario.schema.json"
    )
