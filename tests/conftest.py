"""Test-suite configuration: pytester for the plugin tests, and the test tiers.

Every test under tests/ gets exactly one tier marker (pyproject.toml lists what each means):

- ``cluster``: uses the ``cluster``/``kube`` fixtures, or is marked by hand because it starts a
  cluster itself (EmbeddedCluster, ``netpol-conformance run`` without a kubeconfig) or needs root
  for nftables. Skipped, with the reason, where that cannot work.
- ``browser``: marked by hand (drives chromium).
- ``property``: a hypothesis test.
- ``unit``: everything else.

A test without the ``cluster`` marker that starts an embedded cluster in this process fails, so
``pytest -m "not cluster"`` can be trusted to start none.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import hypothesis
import pytest

pytest_plugins = ["pytester"]

TESTS = Path(__file__).resolve().parent
CLUSTER_FIXTURES = frozenset({"cluster", "kube"})


def _tier(item: pytest.Item) -> str:
    if item.get_closest_marker("cluster") or CLUSTER_FIXTURES & set(
        getattr(item, "fixturenames", ())
    ):
        return "cluster"
    if item.get_closest_marker("browser"):
        return "browser"
    if isinstance(item, pytest.Function) and hypothesis.is_hypothesis_test(item.obj):
        return "property"
    return "unit"


def _cannot_run_clusters() -> str:
    if os.geteuid() != 0:
        return "needs root for network namespaces and nftables"
    if shutil.which("nft") is None or shutil.which("ip") is None:
        return "needs nft and ip (apt-get install nftables iproute2)"
    return ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test of tests/ with its tier (this hook sees every item: scenario steps too)."""
    reason = _cannot_run_clusters()
    for item in items:
        if TESTS not in item.path.parents:
            continue
        tier = _tier(item)
        if not item.get_closest_marker(tier):
            item.add_marker(tier)
        if tier == "cluster" and reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _only_cluster_tests_start_clusters(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if request.node.get_closest_marker("cluster"):
        return

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(
            f"{request.node.nodeid} starts an embedded cluster: mark it cluster "
            "(pytest -m 'not cluster' must start none)"
        )

    monkeypatch.setattr("conformance.cluster.embedded.start", refuse)
