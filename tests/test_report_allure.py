"""Allure labels from the pytest plugin: feature/tag per scenario tag, CNI and cluster parameters,
policies attached as YAML. allure's own calls are recorded, not run (they need a live Allure test)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conformance import pytest_plugin
from conformance.live.results import RunResult

allure = pytest.importorskip("allure", reason="allure-pytest is a dev dependency")

DATA = Path(__file__).parent / "data"


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> None:
            self.calls.append((name, args, kwargs))

        return record


def _config(state: Any) -> Any:
    return SimpleNamespace(
        pluginmanager=SimpleNamespace(hasplugin=lambda name: name == "allure_pytest"),
        option=SimpleNamespace(allure_report_dir="/tmp/allure-results"),
        stash={pytest_plugin._SESSION: state},
    )


def test_labels_parameters_and_yaml_policies(monkeypatch: pytest.MonkeyPatch) -> None:
    run = RunResult.load(DATA / "results-broken.json")
    scenario = run.scenarios[3]  # should-support-a-default-deny-ingress-policy-udp
    step = scenario.steps[0]
    cluster = SimpleNamespace(context="kind-calico", server_version=lambda: "v1.32.2")
    state = SimpleNamespace(
        results={scenario.file: scenario}, runner=SimpleNamespace(cluster=cluster)
    )
    dynamic, attached = _Recorder(), []
    monkeypatch.setattr(allure, "dynamic", dynamic)
    monkeypatch.setattr(allure, "attach", lambda body, **kw: attached.append((kw["name"], body)))
    monkeypatch.setenv("NETPOL_CONFORMANCE_CNI", "calico v3.29")

    pytest_plugin._attach_allure(_config(state), step.name, step)

    calls = {(name, args) for name, args, _ in dynamic.calls}
    tags = tuple(scenario.tags)
    assert ("feature", tags) in calls and ("tag", tags) in calls
    assert ("story", (scenario.name,)) in calls
    assert ("parameter", ("CNI", "calico v3.29")) in calls
    assert ("parameter", ("cluster", "kind-calico")) in calls
    assert ("parameter", ("server version", "v1.32.2")) in calls
    names = [n for n, _ in attached]
    assert names == [f"{step.name}: tables", "policies", "cells"]
    policies = dict(attached)["policies"]
    assert "kind: NetworkPolicy" in policies and "policyTypes:" in policies


class _CalicoCluster:
    """Serves what CNI detection reads: a calico-node DaemonSet in kube-system."""

    context, server, kubeconfig = "kind-calico", "https://127.0.0.1:6443", ""

    def server_version(self) -> str:
        return "v1.32.2"

    def list_items(self, kind: str, namespace: str | None = None, label_selector: str = "") -> Any:
        if kind != "DaemonSet":
            return []
        return [
            {
                "metadata": {"name": "calico-node", "namespace": "kube-system"},
                "spec": {"template": {"spec": {"containers": [{"image": "calico/node:v3.30.2"}]}}},
                "status": {"desiredNumberScheduled": 1, "numberReady": 1},
            }
        ]


def test_cni_parameter_is_the_detected_cni(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner's detected CNI labels the test (it was always "unknown" before)."""
    from conformance.live.runner import Runner

    run = RunResult.load(DATA / "results-broken.json")
    scenario = run.scenarios[3]
    runner = Runner(_CalicoCluster())  # type: ignore[arg-type]
    try:
        state = SimpleNamespace(results={scenario.file: scenario}, runner=runner)
        dynamic = _Recorder()
        monkeypatch.setattr(allure, "dynamic", dynamic)
        monkeypatch.setattr(allure, "attach", lambda body, **kw: None)
        monkeypatch.delenv("NETPOL_CONFORMANCE_CNI", raising=False)
        pytest_plugin._attach_allure(_config(state), scenario.steps[0].name, scenario.steps[0])
    finally:
        runner.close()
    calls = {(name, args) for name, args, _ in dynamic.calls}
    assert ("parameter", ("CNI", "calico v3.30.2")) in calls
    assert runner.new_result().cni == "calico v3.30.2"


def test_inactive_allure_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    dynamic = _Recorder()
    monkeypatch.setattr(allure, "dynamic", dynamic)
    config = _config(None)
    config.option.allure_report_dir = None
    step = RunResult.load(DATA / "results-broken.json").scenarios[0].steps[0]
    pytest_plugin._attach_allure(config, "x", step)
    assert dynamic.calls == []
