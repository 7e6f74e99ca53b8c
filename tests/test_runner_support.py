"""Scenarios needing a policy API the cluster does not serve are skipped with the reason."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from conformance.errors import PermanentClusterError
from conformance.live.kube import ExecResult
from conformance.live.results import Status
from conformance.live.runner import Runner
from conformance.scenario.load import load_scenario

ROOT = Path(__file__).resolve().parent.parent


class NetworkPolicyOnlyCluster:
    """A cluster that serves NetworkPolicy only; any attempt to deploy would be a test failure."""

    context = "kind-np-only"
    server = "https://np-only.invalid:6443"

    def server_version(self) -> str:
        return "v1.31.0"

    def served_kinds(self) -> set[str]:
        return {"NetworkPolicy"}

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise PermanentClusterError("nothing may be deployed for a scenario the cluster cannot run")

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        return self._refuse(obj)  # type: ignore[no-any-return]

    apply = create

    def delete(self, kind: str, namespace: str | None, name: str) -> None:
        self._refuse()

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        return self._refuse()  # type: ignore[no-any-return]

    def list_items(
        self, kind: str, namespace: str | None = None, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        return []

    def patch_labels(
        self, kind: str, namespace: str | None, name: str, labels: Mapping[str, str | None]
    ) -> None:
        self._refuse()

    def delete_collection(self, kind: str, label_selector: str) -> list[str]:
        return []

    def events_for(self, namespace: str, name: str) -> list[str]:
        return []

    def exec(
        self, namespace: str, pod: str, container: str, argv: Sequence[str], timeout_s: float
    ) -> ExecResult:
        return self._refuse()  # type: ignore[no-any-return]


def test_scenario_with_unserved_admin_api_is_not_supported() -> None:
    scenario = load_scenario(sorted((ROOT / "scenarios" / "admin" / "v1alpha2").glob("*.yaml"))[0])
    runner = Runner(NetworkPolicyOnlyCluster(), run_id="t")
    try:
        result = runner.run_scenario(scenario)
    finally:
        runner.close()
    assert result.status is Status.SKIPPED
    assert result.message == (
        "not supported: the cluster does not serve ClusterNetworkPolicy (policy.networking.k8s.io/v1alpha2)"
    )
    assert result.steps == []
