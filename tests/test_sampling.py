"""Sampled probing: the sample's size and seed, its classes reaching the thin slivers next to rule
boundaries, the cells a step changes, the warm-up's cover, and sampled tables and limits."""

from __future__ import annotations

import random
from typing import Any

import pytest

from conformance.api.types import Grid
from conformance.errors import ScenarioError
from conformance.reference.evaluator import Evaluator
from conformance.reference.expectations import evaluate_scenario, expected_table
from conformance.reference.sampling import sample_cells, warmup_sample
from conformance.scenario.bind import BoundStep
from conformance.scenario.load import load_data
from conformance.scenario.scale import ScaleOptions, scale_scenario

N = 30  # pods in namespace `a`: 900 cells per port


def scenario(steps: list[dict[str, Any]], sample: dict[str, int] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "sampling",
        "topology": {
            "namespaces": {"a": {}},
            "pods": [{"name": f"a/p{i}", "labels": {"app": f"p{i}"}} for i in range(N)],
        },
        "steps": steps,
    }
    if sample is not None:
        doc["probe"] = {"sample": sample}
    return doc


def except_one(excepted_ip: str) -> dict[str, Any]:
    """p0 admits every pod at port 80 through a /16 that excepts one pod's address."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "ipblock", "namespace": "a"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "p0"}},
            "ingress": [
                {
                    "from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": [f"{excepted_ip}/32"]}}],
                    "ports": [{"port": 80}],
                }
            ],
        },
    }


def steps_of(doc: dict[str, Any]) -> tuple[BoundStep, ...]:
    return load_data(doc).offline_steps


def sample_of(step: BoundStep, cells: int, seed: int = 0, previous: Any = None) -> Any:
    return sample_cells(
        step.state,
        step.policies,
        step.sources,
        step.targets,
        step.grids,
        cells=cells,
        seed=seed,
        previous=previous,
    )


def ip_of(step: BoundStep, key: str) -> str:
    return str(step.state.pod(key).ip)


def test_a_sample_has_the_size_asked_and_is_the_same_for_a_seed() -> None:
    (step,) = steps_of(scenario([{"name": "none"}]))
    population = len(step.sources) * len(step.targets) * len(step.grids)
    one = sample_of(step, 50, seed=1)
    assert len(one.cells) == 50 == one.boundary + one.random
    assert one.population == population
    assert all(
        s in step.sources and t in step.targets and Grid(*g) in step.grids for s, t, *g in one.cells
    )
    assert sample_of(step, 50, seed=1).cells == one.cells
    assert sample_of(step, 50, seed=2).cells != one.cells
    everything = sample_of(step, population)
    assert everything.complete and len(everything.cells) == population


def test_the_one_cell_an_except_carves_out_is_always_probed() -> None:
    offline = steps_of(scenario([{"name": "none"}]))[0]
    doc = scenario([{"name": "except", "apply": [except_one(ip_of(offline, "a/p17"))]}])
    (step,) = steps_of(doc)
    verdicts = Evaluator(step.state, step.policies)
    for seed in range(5):
        sample = sample_of(step, 12, seed=seed)  # 12 of 1,800 cells
        p0 = [c for c in sample.cells if c[1] == "a/p0" and c[2] == 80]
        assert ("a/p17", "a/p0", *step.grids[0]) in sample.cells, seed
        # ... next to an allowed cell of the same rule: both sides of the boundary are probed.
        assert any(
            str(verdicts.decide(s, t, port, proto, fam).verdict) == "allow"
            for s, t, port, proto, fam in p0
        ), seed


def test_a_sample_covers_every_class_when_the_budget_allows() -> None:
    offline = steps_of(scenario([{"name": "none"}]))[0]
    doc = scenario([{"name": "except", "apply": [except_one(ip_of(offline, "a/p17"))]}])
    (step,) = steps_of(doc)
    sample = sample_of(step, 6 * 900)
    assert sample.complete  # 900 cells in each of 6 grids: all of them
    small = sample_of(step, 2 * 40)
    assert small.classes <= 40, "this step has few classes"
    assert small.boundary == small.classes
    # Implementation-defined cells are never probed: no budget goes to them.
    assert {str(v) for v in map(sample.verdict, small.cells)} == {"allow", "deny"}


def test_the_cells_a_step_changes_are_sampled() -> None:
    offline = steps_of(scenario([{"name": "none"}]))[0]
    policy = except_one(ip_of(offline, "a/p17"))
    narrowed = except_one(ip_of(offline, "a/p17"))
    narrowed["spec"]["ingress"][0]["from"][0]["ipBlock"]["except"].append(
        f"{ip_of(offline, 'a/p23')}/32"
    )
    doc = scenario(
        [{"name": "one except", "apply": [policy]}, {"name": "two", "apply": [narrowed]}]
    )
    first, second = steps_of(doc)
    for seed in range(5):
        before = sample_of(first, 12, seed=seed)
        after = sample_of(second, 12, seed=seed, previous=before)
        changed = ("a/p23", "a/p0", *second.grids[0])
        assert before.verdict(changed) != after.verdict(changed)
        assert changed in after.cells, seed


def test_the_warm_up_sample_has_every_pod_send_and_receive_per_grid() -> None:
    class P:
        def __init__(self, key: str) -> None:
            self.key = key

    pods = [P(f"n/p{i}") for i in range(40)]
    grids = [Grid(80, "TCP"), Grid(81, "TCP")]  # type: ignore[arg-type]
    cells = [(s, d, g) for s in pods for d in pods for g in grids if s is not d]
    chosen = warmup_sample(cells, 100, seed=3)
    assert 100 <= len(chosen) < len(cells)
    for g in grids:
        assert {s.key for s, _, gg in chosen if gg == g} == {p.key for p in pods}
        assert {d.key for _, d, gg in chosen if gg == g} == {p.key for p in pods}
    assert warmup_sample(cells, 100, seed=3) == chosen
    assert warmup_sample(cells[:50], 100) == cells[:50]


def test_a_sampled_table_has_the_sampled_cells_and_blank_marks() -> None:
    doc = scenario(
        [
            {
                "name": "deny all",
                "apply": [
                    {
                        "apiVersion": "networking.k8s.io/v1",
                        "kind": "NetworkPolicy",
                        "metadata": {"name": "deny", "namespace": "a"},
                        "spec": {"podSelector": {}},
                    }
                ],
                # Matches only a/p3 -> a/p4 (maybe not sampled): still not an unused rule.
                "expect": {
                    "default": "deny",
                    "rules": [{"from": "a/p3", "to": "a/p4", "verdict": "deny"}],
                },
            }
        ],
        sample={"cells": 40, "seed": 5},
    )
    evaluation = evaluate_scenario(load_data(doc))
    (step,) = evaluation.steps
    assert step.table.sample is not None and len(step.table.sample.cells) == 40
    assert len(list(step.table)) == 40
    assert not step.disagreements
    rows = step.table.render().splitlines()[1:]
    assert sum(row.count("X") for row in rows) == sum(c.verdict.value == "deny" for c in step.table)


def test_a_sample_lifts_the_cell_limit_and_no_sample_keeps_it() -> None:
    doc = scale_scenario(ScaleOptions(pods=200, policies=20, sample=0))
    with pytest.raises(ScenarioError, match=r"probe\.sample"):
        load_data(doc)
    doc["probe"]["sample"] = {"cells": 500}
    steps = load_data(doc).offline_steps
    assert [s.sample.cells if s.sample else None for s in steps] == [500, 500]


def test_the_scale_scenario_is_what_it_says() -> None:
    doc = scale_scenario(ScaleOptions(pods=200, policies=500, seed=4))
    scenario_ = load_data(doc)
    first, second = scenario_.offline_steps
    assert len(first.state.pods) == 200
    assert len(first.policies) == 500
    assert len(second.policies) == 450
    assert scale_scenario(ScaleOptions(pods=200, policies=500, seed=4)) == doc
    table = expected_table(first)
    assert table.sample is not None and len(list(table)) == 2000
    rng = random.Random(0)
    evaluator = Evaluator(first.state, first.policies)
    for cell in rng.sample(list(table), 50):
        assert evaluator.decide(*cell.key).verdict == cell.verdict
        assert table.sample.verdict(cell.key) == cell.verdict
