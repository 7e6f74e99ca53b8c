"""Never touch what the run did not create: cleanup checks labels itself, and a user's
BaselineAdminNetworkPolicy ``default`` (a singleton) is never replaced or deleted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from conformance.errors import NotFound, PermanentClusterError
from conformance.live.deploy import RUN_LABEL, TOOL_LABEL, TOOL_NAME, carries_labels
from conformance.live.ops import ExecResult
from conformance.live.results import Status
from conformance.live.runner import Runner, delete_labelled
from conformance.scenario.load import load_scenario

ROOT = Path(__file__).resolve().parent.parent
BANP_SCENARIO = ROOT / "scenarios" / "admin" / "v1alpha1" / "banp-core-egress-tcp-rules.yaml"


def ns(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}}


class SelectorIgnoringCluster:
    """A server that answers every list with everything it has, whatever the labelSelector."""

    context = "kind-fake"
    server = "https://127.0.0.1:6443"
    kubeconfig = ""

    def __init__(self, objects: dict[str, list[dict[str, Any]]]) -> None:
        self.objects = objects
        self.deleted: list[tuple[str, str]] = []
        self.created: list[Mapping[str, Any]] = []

    def server_version(self) -> str:
        return "v1.31.0"

    def served_kinds(self) -> set[str]:
        return {"NetworkPolicy", "AdminNetworkPolicy", "BaselineAdminNetworkPolicy"}

    def list_items(
        self, kind: str, namespace: str | None = None, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        return list(self.objects.get(kind, []))

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        for obj in self.objects.get(kind, []):
            if obj["metadata"]["name"] == name:
                return obj
        raise NotFound(f"{kind} {name} not found")

    def delete(self, kind: str, namespace: str | None, name: str) -> None:
        self.deleted.append((kind, name))

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        self.created.append(obj)
        raise PermanentClusterError("this fake creates nothing")

    apply = create

    def patch_labels(
        self, kind: str, namespace: str | None, name: str, labels: Mapping[str, str | None]
    ) -> None:
        raise AssertionError("nothing may be relabelled")

    def delete_collection(self, kind: str, label_selector: str) -> list[str]:
        raise AssertionError("cleanup lists and checks each object itself")

    def events_for(self, namespace: str, name: str) -> list[str]:
        return []

    def exec(
        self, namespace: str, pod: str, container: str, argv: Sequence[str], timeout_s: float
    ) -> ExecResult:
        raise AssertionError("nothing may be probed")


def test_cleanup_deletes_only_objects_carrying_the_labels() -> None:
    ours = {TOOL_LABEL: TOOL_NAME, RUN_LABEL: "r1"}
    cluster = SelectorIgnoringCluster(
        {
            "Namespace": [
                ns("kube-system"),
                ns("default", {"kubernetes.io/metadata.name": "default"}),
                ns("x-r1", ours),
                ns("x-r2", {**ours, RUN_LABEL: "r2"}),
            ],
            "BaselineAdminNetworkPolicy": [ns("default")],
            "AdminNetworkPolicy": [ns("deny-r1", ours)],
        }
    )
    removed = delete_labelled(cluster, f"{RUN_LABEL}=r1", cluster.served_kinds())
    assert cluster.deleted == [("Namespace", "x-r1"), ("AdminNetworkPolicy", "deny-r1")]
    assert removed == ["Namespace x-r1", "AdminNetworkPolicy deny-r1"]
    cluster.deleted.clear()
    delete_labelled(cluster, f"{TOOL_LABEL}={TOOL_NAME}", cluster.served_kinds())
    assert cluster.deleted == [
        ("Namespace", "x-r1"),
        ("Namespace", "x-r2"),
        ("AdminNetworkPolicy", "deny-r1"),
    ]


@pytest.mark.parametrize(
    ("labels", "selector", "carries"),
    [
        ({"a": "1", "b": "2"}, "a=1,b=2", True),
        ({"a": "1"}, "a=1,b=2", False),
        ({"a": "2"}, "a=1", False),
        ({"a": "1"}, "a==1", True),
        ({}, "a=", False),
    ],
)
def test_carries_labels(labels: dict[str, str], selector: str, carries: bool) -> None:
    assert carries_labels(ns("o", labels), selector) is carries


def test_carries_labels_refuses_selectors_it_cannot_check() -> None:
    with pytest.raises(ValueError, match="not an equality label selector"):
        carries_labels(ns("o"), "a!=1")


def run_banp_scenario(banp: dict[str, Any]) -> tuple[SelectorIgnoringCluster, Any]:
    cluster = SelectorIgnoringCluster({"BaselineAdminNetworkPolicy": [banp]})
    runner = Runner(cluster, run_id="r1")
    try:
        return cluster, runner.run_scenario(load_scenario(BANP_SCENARIO))
    finally:
        runner.close()


def test_a_users_banp_default_skips_the_scenario_untouched() -> None:
    cluster, result = run_banp_scenario(ns("default", {"team": "platform"}))
    assert result.status is Status.SKIPPED
    assert "already has a BaselineAdminNetworkPolicy 'default'" in result.message
    assert "this run did not create it, so it is left alone" in result.message
    assert cluster.created == [] and cluster.deleted == []


def test_an_earlier_runs_banp_default_names_the_clean_command() -> None:
    _, result = run_banp_scenario(ns("default", {TOOL_LABEL: TOOL_NAME, RUN_LABEL: "old"}))
    assert result.status is Status.SKIPPED
    assert "netpol-conformance clean --run-id old" in result.message


def test_this_runs_banp_default_does_not_skip() -> None:
    cluster, result = run_banp_scenario(ns("default", {TOOL_LABEL: TOOL_NAME, RUN_LABEL: "r1"}))
    assert result.status is Status.ERROR  # the fake refuses to create the namespaces
    assert cluster.created, "the scenario went on to deploy"
