"""Which scenarios may share pods: the same signature (the namespaces, pod manifests, probed ports
and probing mode they would create), and none for steps that add or remove pods or namespaces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conformance.live.deploy import DeployOptions
from conformance.live.options import RunOptions, Via
from conformance.live.results import ScenarioResult, Status
from conformance.live.runner import Runner
from conformance.live.scenario_run import ScenarioRun
from conformance.scenario.load import load_scenario
from tests.test_runner_support import NetworkPolicyOnlyCluster

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
UPDATED_POD = SCENARIOS / "upstream" / "should-allow-ingress-access-from-updated-pod.yaml"
DELETED = SCENARIOS / "upstream" / "should-stop-enforcing-policies-after-they-are-deleted.yaml"
ADDRESS_REUSED = SCENARIOS / "detection" / "pod-address-reused.yaml"
EGRESS_DNS = SCENARIOS / "examples" / "egress-to-database-and-dns.yaml"


def signature(path: Path, **options: Any) -> str:
    runner = Runner(NetworkPolicyOnlyCluster(), RunOptions(**options))
    try:
        scenario = load_scenario(path)
        result = ScenarioResult(scenario.name, scenario.file, [], Status.PASS)
        return ScenarioRun(runner, scenario, "r-1", result).signature
    finally:
        runner.close()


def test_scenarios_on_the_default_topology_share_a_signature() -> None:
    assert signature(UPDATED_POD) and signature(UPDATED_POD) == signature(DELETED)


def test_another_topology_or_probing_mode_is_another_signature() -> None:
    assert signature(EGRESS_DNS) and signature(EGRESS_DNS) != signature(UPDATED_POD)
    assert signature(UPDATED_POD, via=Via.SERVICE) != signature(UPDATED_POD)
    other_image = DeployOptions(image="registry.example/agnhost:other")
    assert signature(UPDATED_POD, deploy=other_image) != signature(UPDATED_POD)


def test_no_sharing_for_steps_that_add_or_remove_pods_keep_or_no_reuse() -> None:
    assert signature(ADDRESS_REUSED) == ""
    assert signature(UPDATED_POD, keep=True) == ""
    assert signature(UPDATED_POD, no_reuse=True) == ""


def test_no_sharing_for_host_network_pods_which_hold_ports_on_their_node() -> None:
    nodes = SCENARIOS / "detection" / "node-paths.yaml"
    assert load_scenario(nodes).uses_host_network and signature(nodes) == ""
