"""``shrink``: smaller variants of a scenario (pure), and live shrinking on embedded clusters
whose deviation knobs make generated scenarios fail: each shrinks to a handful of objects."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.cluster.config import ClusterOptions
from conformance.cluster.embedded import EmbeddedCluster
from conformance.cluster.knobs import Knobs
from conformance.live.kube import KubeCluster
from conformance.live.options import RunOptions
from conformance.live.results import CellStatus
from conformance.live.runner import Runner
from conformance.live.shrink import Shrinker, document, with_expectations
from conformance.reference.expectations import evaluate_scenario
from conformance.scenario.load import load_data, load_scenario
from conformance.scenario.shrink import candidates, focus, size
from tests.cluster.conftest import unique_instance
from tests.test_run_e2e import cli

NP = "networking.k8s.io/v1"


def netpol(ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": NP,
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


DOC: dict[str, Any] = {
    "name": "small",
    "topology": {
        "namespaces": {"x": {}},
        "pods": [{"name": f"x/{p}", "labels": {"pod": p}} for p in "abc"],
    },
    "steps": [
        {
            "name": "one",
            "apply": [
                netpol(
                    "x",
                    "p",
                    {
                        "podSelector": {},
                        "ingress": [
                            {
                                "from": [
                                    {"podSelector": {"matchLabels": {"pod": "a"}}},
                                    {"podSelector": {}},
                                ],
                                "ports": [{"port": 80}, {"port": 81}],
                            }
                        ],
                    },
                ),
                netpol("x", "q", {"podSelector": {"matchLabels": {"pod": "b"}}}),
            ],
        },
        {"name": "two", "delete": ["x/q"], "label_pods": {"x/c": {"pod": "z"}}},
    ],
}


@pytest.mark.unit
def test_candidates_remove_one_thing_each_and_stay_loadable() -> None:
    labels = [label for label, _ in candidates(DOC, frozenset({"x/a"}))]
    assert labels[:2] == ["step 0", "step 1"]
    assert "step 0 policy NetworkPolicy/x/q" in labels
    assert {"pod x/b", "pod x/c"} <= set(labels) and "pod x/a" not in labels  # kept
    assert "step 0 policy NetworkPolicy/x/p ingress[0].from[1]" in labels
    assert "step 0 policy NetworkPolicy/x/p ingress[0].ports[0]" in labels
    for label, doc in candidates(DOC, frozenset({"x/a"})):
        load_data(doc)  # every variant is a valid scenario (deletes and pod references pruned)
        assert size(doc) != size(DOC) or label.startswith("step 0 policy NetworkPolicy/x/p "), label
    assert json.loads(json.dumps(DOC)) == DOC, "the input is never modified"


@pytest.mark.unit
def test_removing_a_policy_drops_its_later_delete_and_removing_a_pod_its_relabel() -> None:
    found = dict(candidates(DOC))
    no_q = found["step 0 policy NetworkPolicy/x/q"]
    assert "delete" not in no_q["steps"][1]
    no_c = found["pod x/c"]
    assert "label_pods" not in no_c["steps"][1]
    no_first = found["step 0"]  # what step 0 applied moves to the next step
    assert [o["metadata"]["name"] for o in no_first["steps"][0]["apply"]] == ["p", "q"]


@pytest.mark.unit
def test_focus_probes_only_the_failing_cells_and_drops_declared_expectations() -> None:
    doc = copy.deepcopy(DOC)
    doc["steps"][0]["expect"] = {"default": "allow"}
    out = focus(doc, [("x/b", "x/a", 80, "TCP"), ("x/c", "x/a", 81, "TCP")])
    assert out["probe"] == {
        "from": ["x/b", "x/c"],
        "to": ["x/a"],
        "ports": [80, 81],
        "protocols": ["TCP"],
    }
    assert all("expect" not in s for s in out["steps"])
    assert "expect" in doc["steps"][0]


def _generated(tmp_path: Path, index: int) -> Path:
    assert (
        cli(
            "generate",
            "--seed",
            "7",
            "--count",
            str(index + 1),
            "--steps",
            "3",
            "--out",
            str(tmp_path),
        ).returncode
        == 0
    )
    return tmp_path / f"generated-7-{index}.yaml"


def _check_minimal(doc: dict[str, Any]) -> None:
    small = size(doc)
    assert small["policies"] <= 2 and small["pods"] <= 4, small
    evaluated = evaluate_scenario(load_data(doc))  # declared tables agree with the evaluator
    assert all(step.disagreements == [] for step in evaluated.steps)


@pytest.mark.cluster
@pytest.mark.slow
def test_shrink_cli_reduces_a_generated_scenario_that_an_except_bug_fails(tmp_path: Path) -> None:
    path = _generated(tmp_path / "gen", 0)
    st = cli(
        "selftest", str(path), "--deviation", "ignore-except", "--output-dir", str(tmp_path / "st")
    )
    assert st.returncode == 0, st.stdout + st.stderr
    results = tmp_path / "st" / "selftest-ignore-except" / "results.json"
    res = cli(
        "shrink",
        str(results),
        "--scenario",
        "generated-7-0",
        "--deviation",
        "ignore-except",
        "--out",
        str(tmp_path / "out"),
        timeout=900,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    doc = yaml.safe_load((tmp_path / "out" / "generated-7-0-shrunk.yaml").read_text())
    _check_minimal(doc)
    assert load_scenario(tmp_path / "out" / "generated-7-0-shrunk.yaml").spec.steps[0].expect
    report = (tmp_path / "out" / "generated-7-0-shrunk.md").read_text()
    assert "| deny | allow (connected) |" in report and "kubectl" in report
    assert "shrunk generated-7-0 from 3 steps" in res.stdout

    not_failing = cli(
        "shrink",
        str(results),
        "--scenario",
        "generated-7-0",
        "--out",
        str(tmp_path / "none"),
        timeout=300,
    )  # no deviation: the scenario passes, nothing to shrink
    assert not_failing.returncode == 1 and "does not mismatch" in not_failing.stderr


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.parametrize(("knob", "index"), [("first-pod-only", 1), ("udp-unfiltered", 1)])
def test_shrink_reduces_generated_scenarios_failed_by_other_knobs(
    tmp_path: Path, knob: str, index: int
) -> None:
    path = _generated(tmp_path, index)
    options = ClusterOptions(instance=unique_instance("s"), knobs=Knobs.parse(0, [knob]))
    with EmbeddedCluster(options) as ec:
        cluster = KubeCluster(ec.kubeconfig, ec.context)
        runner = Runner(cluster, RunOptions(probe_timeout_s=2, convergence_deadline_s=1.0), "shr")
        try:
            first = runner.run_scenario(load_scenario(path))
            cells = [
                (c.source, c.target, c.port, str(c.protocol))
                for st in first.steps
                for c in st.cells
                if c.status is CellStatus.MISMATCH
            ]
            assert cells, f"{knob} does not fail {path.name}: pick another generated scenario"
            first_step = min(
                st.index
                for st in first.steps
                if any(c.status is CellStatus.MISMATCH for c in st.cells)
            )
            cells = [
                (c.source, c.target, c.port, str(c.protocol))
                for c in first.steps[first_step].cells
                if c.status is CellStatus.MISMATCH
            ]
            shrunk = Shrinker(runner).shrink(document(path), cells)
        finally:
            runner.cleanup()
            runner.close()
            cluster.close()
    assert shrunk.mismatches
    _check_minimal(with_expectations(shrunk.doc))
