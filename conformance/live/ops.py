"""The seam between the library and a cluster: ``ClusterOps`` is every operation the runner,
``doctor`` and ``analyze`` use; ``kube.KubeCluster`` implements it with the official client, and
tests pass fakes. Objects travel as plain dicts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str


class ClusterOps(Protocol):
    """What the runner, ``doctor`` and ``analyze`` need from a cluster; ``KubeCluster`` is the
    real one, test fakes are others."""

    context: str
    """The kubeconfig context in use (named in reproduce commands and reports)."""
    server: str
    """The API server's URL."""
    kubeconfig: str
    """The kubeconfig file given, or "" for the default ($KUBECONFIG or ~/.kube/config)."""

    def server_version(self) -> str: ...
    def served_kinds(self) -> set[str]: ...
    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]: ...
    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]: ...
    def delete(self, kind: str, namespace: str | None, name: str) -> None: ...
    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]: ...
    def list_items(
        self, kind: str, namespace: str | None = None, label_selector: str = ""
    ) -> list[dict[str, Any]]: ...
    def patch_labels(
        self, kind: str, namespace: str | None, name: str, labels: Mapping[str, str | None]
    ) -> None: ...
    def delete_collection(self, kind: str, label_selector: str) -> list[str]: ...
    def events_for(self, namespace: str, name: str) -> list[str]: ...
    def exec(
        self, namespace: str, pod: str, container: str, argv: Sequence[str], timeout_s: float
    ) -> ExecResult: ...
