"""Node placement on the embedded cluster with several nodes: the runner maps scenario nodes onto
its workers (automatically or by --node-map), the scheduler honours the nodeSelector, and cells
take their path from where the pods ran; on one node a spreading scenario runs all same-node and a
pinning one stops with one clear error."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.api.types import TrafficPath
from conformance.cluster.config import ClusterOptions
from conformance.cluster.embedded import EmbeddedCluster
from conformance.live.kube import KubeCluster
from conformance.live.options import RunOptions
from conformance.live.results import ScenarioResult, Status
from conformance.live.runner import Runner
from conformance.scenario.load import load_scenario
from tests.cluster.conftest import unique_instance

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

SPREAD = "probe: {ports: [80], protocols: [TCP]}\nsteps: [{name: s}]\n"
PINNED = (
    "topology:\n  namespaces: {x: {}}\n"
    "  pods: [{name: x/a, node: node-1}, {name: x/b, node: node-2}, {name: x/c, node: node-2}]\n"
    "probe: {ports: [80], protocols: [TCP]}\nsteps: [{name: s}]\n"
)


@contextlib.contextmanager
def runner_on(nodes: int, **options: Any) -> Iterator[Runner]:
    with EmbeddedCluster(ClusterOptions(instance=unique_instance("pl"), nodes=nodes)) as ec:
        kube = KubeCluster(ec.kubeconfig, ec.context)
        runner = Runner(kube, RunOptions(**options), run_id=unique_instance("r"))
        try:
            yield runner
        finally:
            runner.cleanup()
            runner.close()
            kube.close()


def run(runner: Runner, tmp_path: Path, text: str) -> ScenarioResult:
    path = tmp_path / f"s{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(text)
    return runner.run_scenario(load_scenario(path))


def paths(result: ScenarioResult) -> set[TrafficPath | None]:
    """The paths of the judged cells, each checked against the nodes the pods ran on."""
    seen: set[TrafficPath | None] = set()
    for st in result.steps:
        for c in st.cells:
            if c.status.value == "implementation-defined":
                continue
            same = result.nodes[c.source] == result.nodes[c.target]
            assert c.path is (TrafficPath.SAME_NODE if same else TrafficPath.CROSS_NODE), c
            seen.add(c.path)
    return seen


def test_scenario_nodes_go_onto_the_workers_and_node_map_swaps_them(tmp_path: Path) -> None:
    with runner_on(3) as runner:
        auto = run(runner, tmp_path, PINNED)
        assert auto.status is Status.PASS, auto.message
        assert auto.node_map == {"node-1": "embedded-worker", "node-2": "embedded-worker2"}
        assert auto.nodes == {
            "x/a": "embedded-worker",
            "x/b": "embedded-worker2",
            "x/c": "embedded-worker2",
        }
        assert paths(auto) == {TrafficPath.SAME_NODE, TrafficPath.CROSS_NODE}
        assert auto.notes == []
    with runner_on(3, node_map="node-1=embedded-worker3,node-2=embedded-worker") as runner:
        mapped = run(runner, tmp_path, PINNED)
        assert mapped.status is Status.PASS, mapped.message
        assert mapped.nodes["x/a"] == "embedded-worker3"
        assert mapped.nodes["x/b"] == mapped.nodes["x/c"] == "embedded-worker"


def test_one_node_runs_spreading_scenarios_same_node_and_refuses_pinning_ones(
    tmp_path: Path,
) -> None:
    with runner_on(1) as runner:
        spread = run(runner, tmp_path, SPREAD)
        assert spread.status is Status.PASS, spread.message
        assert set(spread.nodes.values()) == {"embedded-worker"}
        assert paths(spread) == {TrafficPath.SAME_NODE}
        assert "every pod-to-pod cell is same-node" in spread.notes[0]
        pinned = run(runner, tmp_path, PINNED)
        assert pinned.status is Status.ERROR
        assert "needs 2 distinct nodes (node-1, node-2), but the cluster has 1" in pinned.message
        assert pinned.steps == [] and pinned.nodes == {}
