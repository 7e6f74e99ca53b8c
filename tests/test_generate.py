"""Random scenarios: reproducible from the seed, valid by construction, and varied enough."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.cli import main
from conformance.reference.expectations import evaluate_scenario
from conformance.reference.mutation import step_flips, verdicts
from conformance.scenario.generate import GenerateOptions, generate
from conformance.scenario.load import load_data, load_scenario


def _walk(node: Any, found: Counter[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            found[key] += 1
            if key == "port":
                found["named port" if isinstance(value, str) else "numbered port"] += 1
            _walk(value, found)
    elif isinstance(node, list):
        for item in node:
            _walk(item, found)


def test_same_seed_same_scenarios_other_seed_others() -> None:
    one = generate(GenerateOptions(seed=3, count=5))
    assert json.dumps(one) == json.dumps(generate(GenerateOptions(seed=3, count=5)))
    assert json.dumps(one) != json.dumps(generate(GenerateOptions(seed=4, count=5)))
    # Scenario i does not depend on how many come before or after it.
    assert generate(GenerateOptions(seed=3, count=2))[1] == one[1]


def test_generated_files_load_and_evaluate(tmp_path: Path) -> None:
    """Every file passes the scenario checks, placeholders included, and evaluates."""
    args = ["generate", "--seed", "11", "--count", "60", "--steps", "4"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    files = sorted(tmp_path.glob("*.yaml"))
    assert len(files) == 60
    verdicts: Counter[str] = Counter()
    for path in files:
        result = evaluate_scenario(load_scenario(path))
        for step in result.steps:
            assert step.disagreements == []  # nothing declared: nothing to disagree with
            verdicts.update(str(cell.verdict) for cell in step.table)
    assert verdicts["allow"] > 0 and verdicts["deny"] > 0


def test_default_folder_is_outside_the_shipped_suite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run scenarios/` and pytest's scenario collection must not pick generated files up."""
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "--count", "2"]) == 0
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.yaml"))
    assert len(written) == 2
    assert all(p.parts[0] == "generated-scenarios" for p in written), written
    assert not (tmp_path / "scenarios").exists()


def test_draws_cover_every_field_the_api_offers() -> None:
    found: Counter[str] = Counter()
    for doc in generate(GenerateOptions(seed=5, count=200, steps=3)):
        _walk(doc, found)
    for key in (
        "podSelector",
        "namespaceSelector",
        "ipBlock",
        "except",
        "matchLabels",
        "matchExpressions",
        "policyTypes",
        "ingress",
        "egress",
        "from",
        "to",
        "endPort",
        "named port",
        "numbered port",
        "delete",
        "label_pods",
        "label_namespaces",
        "add_pods",
        "remove_pods",
    ):
        assert found[key] > 0, key


@pytest.mark.parametrize("version", ["v1alpha1", "v1alpha2"])
def test_admin_policies_load_and_cover_tiers_actions_and_peers(
    tmp_path: Path, version: str
) -> None:
    args = ["generate", "--seed", "2", "--count", "40", "--steps", "3", "--admin", version]
    assert main([*args, "--out", str(tmp_path)]) == 0
    found: Counter[str] = Counter()
    for path in sorted(tmp_path.glob("*.yaml")):
        # Admin validation included (priorities, singleton BANP name, CEL rules).
        evaluate_scenario(load_scenario(path))
    for doc in generate(GenerateOptions(seed=2, count=40, steps=3, admin=version)):
        _walk(doc, found)
        for step in doc["steps"]:
            for obj in step.get("apply", []):
                found[obj["kind"]] += 1
                for rule in [*obj["spec"].get("ingress", []), *obj["spec"].get("egress", [])]:
                    found[f"action {rule.get('action', '')}"] += 1
    kinds = (
        ["AdminNetworkPolicy", "BaselineAdminNetworkPolicy"]
        if version == "v1alpha1"
        else ["ClusterNetworkPolicy"]
    )
    allow = "Allow" if version == "v1alpha1" else "Accept"
    ports = (
        ["portNumber", "portRange", "namedPort"]
        if version == "v1alpha1"
        else ["number", "range", "destinationNamedPort"]
    )
    for key in [
        *kinds,
        f"action {allow}",
        "action Deny",
        "action Pass",
        "namespaces",
        "pods",
        "networks",
        "subject",
        *ports,
    ]:
        assert found[key] > 0, key


@pytest.mark.parametrize("bad", ["0", "-1", "many"])
def test_count_must_be_positive(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["generate", "--count", bad])
    assert exc.value.code == 2
    assert "at least 1" in capsys.readouterr().err


def test_every_generated_step_flips_a_verdict(tmp_path: Path) -> None:
    """With the CLI's evaluator check, no step is a no-op: each one changes at least one cell
    (the first compared with no policy at all), label and churn steps included."""
    args = ["generate", "--seed", "7", "--count", "12", "--steps", "4"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    kinds: Counter[str] = Counter()
    for path in sorted(tmp_path.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        flips = step_flips(doc)
        assert all(n > 0 for n in flips), (path.name, flips)
        for step in doc["steps"]:
            kinds.update(
                k for k in ("apply", "label_pods", "label_namespaces", "add_pods") if k in step
            )
    assert all(kinds[k] for k in ("apply", "label_pods", "label_namespaces", "add_pods")), kinds


def test_label_steps_never_set_the_value_a_label_has() -> None:
    """A relabel to the same value is a no-op that the flip check would only throw away, and
    enough of them crowded namespace label steps out of a 40-scenario corpus entirely."""
    for doc in generate(GenerateOptions(seed=9, count=60, steps=4)):
        teams: dict[str, Any] = {}
        labels = {p["name"]: p["labels"]["pod"] for p in doc["topology"]["pods"]}
        for step in doc["steps"]:
            for ns, new in step.get("label_namespaces", {}).items():
                assert new["team"] != teams.get(ns), (doc["name"], step["name"])
                teams[ns] = new["team"]
            for key, new in step.get("label_pods", {}).items():
                assert new["pod"] != labels[key], (doc["name"], step["name"])
                labels[key] = new["pod"]
            for pod in step.get("add_pods", []):
                labels[pod["name"]] = pod["labels"]["pod"]


def test_without_the_check_no_op_steps_happen() -> None:
    """The check is what removes no-op steps: drawing without it leaves some (else the test
    above could pass by luck)."""
    flips = [
        n for doc in generate(GenerateOptions(seed=7, count=12, steps=4)) for n in step_flips(doc)
    ]
    assert 0 in flips


def test_port_names_map_to_different_numbers_on_different_pods() -> None:
    doc = generate(GenerateOptions(seed=1, count=1))[0]
    meaning = {
        pod["name"]: {p["name"]: p["port"] for p in pod["ports"]} for pod in doc["topology"]["pods"]
    }
    assert len({m["serve-80-tcp"] for m in meaning.values()}) == 2, meaning
    assert all(set(m.values()) == {80, 81} for m in meaning.values())


@pytest.mark.parametrize("admin", ["", "v1alpha1", "v1alpha2"])
def test_the_flip_check_sees_what_the_evaluator_sees(admin: str) -> None:
    """``generate`` judges steps with the bitset matrix (fast); it must give the reference
    evaluator's verdict on every probed cell, admin tiers included."""
    for doc in generate(GenerateOptions(seed=3, count=4, steps=3, admin=admin)):
        scenario = load_data(doc)
        for bound, evaluated in zip(
            scenario.offline_steps, evaluate_scenario(scenario).steps, strict=True
        ):
            assert verdicts(bound) == {c.key: c.verdict for c in evaluated.table}


def _inverted(doc: dict[str, Any]) -> dict[str, Any]:
    """The scenario with every Admin-tier priority order reversed (as the knob
    ``admin-priority-inverted`` evaluates them: the highest number first)."""
    out = copy.deepcopy(doc)
    for step in out["steps"]:
        for obj in step.get("apply", []):
            if obj["kind"] == "AdminNetworkPolicy" or obj["spec"].get("tier") == "Admin":
                obj["spec"]["priority"] = 1000 - obj["spec"]["priority"]
    return out


def _tables(doc: dict[str, Any]) -> list[dict[Any, Any]]:
    return [{c.key: c.verdict for c in s.table} for s in evaluate_scenario(load_data(doc)).steps]


@pytest.mark.parametrize("admin", ["v1alpha1", "v1alpha2"])
def test_some_admin_scenarios_depend_on_the_priority_order(admin: str) -> None:
    """Two admin policies of different priorities with opposite actions on the same connections:
    a corpus must contain scenarios whose verdicts change when the order is inverted, or it
    cannot catch an implementation that orders priorities wrongly."""
    docs = generate(GenerateOptions(seed=70, count=20, steps=3, admin=admin))
    sensitive = [d["name"] for d in docs if _tables(d) != _tables(_inverted(d))]
    assert sensitive, admin
    # The opposing pair is what makes them so: without it no scenario here would be.
    paired = {
        d["name"]
        for d in docs
        if any("pair" in o["metadata"]["name"] for s in d["steps"] for o in s.get("apply", []))
    }
    assert set(sensitive) <= paired


def _pass_as_allow(doc: dict[str, Any]) -> dict[str, Any]:
    """The scenario with every Pass rule read as allow (as the knob ``pass-as-allow`` does)."""
    out = copy.deepcopy(doc)
    for step in out["steps"]:
        for obj in step.get("apply", []):
            allow = "Accept" if obj["apiVersion"].endswith("v1alpha2") else "Allow"
            for direction in ("ingress", "egress"):
                for rule in obj["spec"].get(direction) or []:
                    if rule.get("action") == "Pass":
                        rule["action"] = allow
    return out


@pytest.mark.parametrize("admin", ["v1alpha1", "v1alpha2"])
def test_some_admin_scenarios_depend_on_pass_handing_over(admin: str) -> None:
    """An Admin-tier Pass and a Baseline Deny on the same traffic: a 10-scenario corpus must
    contain scenarios whose verdicts change when Pass is read as allow (the seed-70 corpus of
    v1alpha2 scenarios had none, and selftest missed pass-as-allow)."""
    docs = generate(GenerateOptions(seed=70, count=10, steps=3, admin=admin))
    sensitive = [d["name"] for d in docs if _tables(d) != _tables(_pass_as_allow(d))]
    assert len(sensitive) >= 2, admin
