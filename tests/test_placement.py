"""Scenario nodes onto real nodes (``live.placement``): the mapping rules on fake Node objects,
and the runner placing pods with them on a fake kind-like cluster that schedules by nodeSelector."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from conformance.api.types import TrafficPath
from conformance.errors import NotFound, PermanentClusterError
from conformance.live.deploy import DeployOptions, pod_manifest
from conformance.live.ops import ExecResult
from conformance.live.options import NodeMapText, RunOptions
from conformance.live.placement import (
    PlacementError,
    cluster_node,
    cluster_nodes,
    natural_key,
    parse_node_map,
    place,
)
from conformance.live.results import ScenarioResult, Status
from conformance.live.runner import Runner
from conformance.scenario.load import load_scenario

HOST = "kubernetes.io/hostname"
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def node(
    name: str,
    *,
    ready: bool = True,
    taints: Sequence[Mapping[str, str]] = (),
    cordoned: bool = False,
    hostname: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A core/v1 Node as a kind cluster serves it."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {HOST: hostname or name, "kubernetes.io/os": "linux", **(labels or {})},
        },
        "spec": {"taints": list(taints), **({"unschedulable": True} if cordoned else {})},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}],
        },
    }


def kind(workers: int) -> list[dict[str, Any]]:
    """kind's nodes: a tainted control plane and ``workers`` workers (listed out of order)."""
    names = ["kind-worker" if i == 1 else f"kind-worker{i}" for i in range(1, workers + 1)]
    return [
        node("kind-control-plane", taints=[CONTROL_PLANE_TAINT]),
        *reversed([node(n) for n in names]),
    ]


# -- parsing and reading -----------------------------------------------------------------------


def test_parse_node_map() -> None:
    assert parse_node_map("node-1=kind-worker, node-2=kind-worker2") == {
        "node-1": "kind-worker",
        "node-2": "kind-worker2",
    }
    assert parse_node_map("") == {}
    for bad in ("node-1", "node-1=", "=kind-worker", "a=b,a=c"):
        with pytest.raises(ValueError):
            parse_node_map(bad)


def test_node_map_option_says_what_it_accepts() -> None:
    with pytest.raises(ValueError, match="expected SCENARIO_NODE=NODE"):
        NodeMapText("node-1:kind-worker")
    assert RunOptions(node_map=NodeMapText("node-1=w")).node_mapping == {"node-1": "w"}
    assert RunOptions(node_map="node-1=w").as_dict()["node_map"] == "node-1=w"
    assert "node_map" not in RunOptions().as_dict()


def test_natural_order() -> None:
    names = ["worker10", "worker2", "worker", "worker1"]
    assert sorted(names, key=natural_key) == ["worker", "worker1", "worker2", "worker10"]


@pytest.mark.parametrize(
    ("obj", "why"),
    [
        (node("w"), ""),
        (node("w", ready=False), "not Ready"),
        (node("w", cordoned=True), "cordoned"),
        (
            node("cp", taints=[CONTROL_PLANE_TAINT]),
            "tainted node-role.kubernetes.io/control-plane:NoSchedule",
        ),
        (node("w", taints=[{"key": "gpu", "effect": "NoExecute"}]), "tainted gpu:NoExecute"),
        (node("w", taints=[{"key": "soft", "effect": "PreferNoSchedule"}]), ""),
        ({"metadata": {"name": "bare"}}, "not Ready"),
    ],
)
def test_schedulable(obj: dict[str, Any], why: str) -> None:
    assert cluster_node(obj).unschedulable == why
    assert cluster_node(obj).schedulable is (why == "")


def test_hostname_label_falls_back_to_the_name() -> None:
    assert cluster_node(node("n", hostname="host-n")).hostname == "host-n"
    assert cluster_node({"metadata": {"name": "n"}}).hostname == "n"


# -- mapping rules -----------------------------------------------------------------------------


def test_automatic_onto_distinct_workers_in_natural_order() -> None:
    p = place(["node-1", "node-2", "node-3"], cluster_nodes(kind(10)))
    assert p.nodes == {"node-1": "kind-worker", "node-2": "kind-worker2", "node-3": "kind-worker3"}
    assert p.selector("node-2") == {HOST: "kind-worker2"}
    assert p.note == ""


def test_selector_uses_the_hostname_label() -> None:
    p = place(["node-1"], cluster_nodes([node("ip-10-0-0-7.ec2", hostname="ip-10-0-0-7")]))
    assert p.selector("node-1") == {HOST: "ip-10-0-0-7"}


def test_node_map_first_then_the_free_workers() -> None:
    p = place(["node-1", "node-2"], cluster_nodes(kind(3)), {"node-2": "kind-worker"})
    assert p.nodes == {"node-1": "kind-worker2", "node-2": "kind-worker"}


def test_node_map_may_name_the_control_plane() -> None:
    p = place(["node-1"], cluster_nodes(kind(1)), {"node-1": "kind-control-plane"})
    assert p.nodes == {"node-1": "kind-control-plane"}


def test_node_map_naming_an_unknown_node_is_an_error() -> None:
    with pytest.raises(
        PlacementError,
        match=r"--node-map node-1=kind-wrker: the cluster has no node 'kind-wrker' \(nodes: kind-control-plane, kind-worker\)",
    ):
        place(["node-1"], cluster_nodes(kind(1)), {"node-1": "kind-wrker"})


def test_too_few_nodes_for_a_pinning_scenario_is_one_clear_error() -> None:
    with pytest.raises(PlacementError) as info:
        place(["node-1", "node-2"], cluster_nodes(kind(1)), pins=True)
    message = str(info.value)
    assert message == (
        "the scenario pins pods to its nodes and needs 2 distinct nodes (node-1, node-2), but the "
        "cluster has 1 schedulable node; not schedulable: kind-control-plane (tainted "
        "node-role.kubernetes.io/control-plane:NoSchedule); add worker nodes or map scenario "
        "nodes onto nodes with --node-map node-1=NODE,..."
    )


def test_single_node_cluster_runs_an_unpinned_scenario_all_same_node() -> None:
    single = [node("kind-control-plane")]  # kind removes the taint when there are no workers
    p = place(["node-1", "node-2"], cluster_nodes(single))
    assert p.nodes == {"node-1": "kind-control-plane", "node-2": "kind-control-plane"}
    assert "every pod-to-pod cell is same-node" in p.note
    assert "1 schedulable node for the scenario's 2 nodes" in p.note


def test_fewer_workers_than_scenario_nodes_share_round_robin() -> None:
    p = place(["a", "b", "c"], cluster_nodes(kind(2)))
    assert p.nodes == {"a": "kind-worker", "b": "kind-worker2", "c": "kind-worker"}
    assert "c on kind-worker" in p.note and "same-node" in p.note


def test_no_schedulable_node_is_an_error_even_unpinned() -> None:
    with pytest.raises(PlacementError, match="has 0 schedulable nodes"):
        place(["node-1"], cluster_nodes([node("cp", taints=[CONTROL_PLANE_TAINT])]))


def test_global_node_selector_narrows_the_candidates_and_is_merged() -> None:
    nodes = cluster_nodes(
        [node("w1", labels={"pool": "a"}), node("w2"), node("w3", labels={"pool": "a"})]
    )
    p = place(["node-1", "node-2"], nodes, global_selector={"pool": "a"})
    assert p.nodes == {"node-1": "w1", "node-2": "w3"}
    assert p.selector("node-2") == {"pool": "a", HOST: "w3"}
    assert p.selector("elsewhere") == {"pool": "a"}
    with pytest.raises(PlacementError, match="matching --node-selector pool=a"):
        place(["node-1", "node-2", "node-3"], nodes, global_selector={"pool": "a"}, pins=True)
    with pytest.raises(PlacementError, match="does not carry the labels of --node-selector"):
        place(["node-1"], nodes, {"node-1": "w2"}, {"pool": "a"})


def test_global_hostname_selector_conflicting_with_placement_is_an_error() -> None:
    nodes = cluster_nodes([node("w1"), node("w2")])
    with pytest.raises(PlacementError, match="node w2 does not carry the labels"):
        place(["node-1"], nodes, {"node-1": "w2"}, {HOST: "w1"})
    # Without Node objects the selectors themselves disagree.
    with pytest.raises(
        PlacementError, match=r"^--node-selector kubernetes.io/hostname=w1 conflicts with placing"
    ):
        place(["node-1"], None, {"node-1": "w2"}, {HOST: "w1"})
    # A global hostname selector alone narrows automatic placement to that node.
    assert place(["node-1"], nodes, global_selector={HOST: "w2"}).nodes == {"node-1": "w2"}


def test_unreadable_nodes_skip_placement_with_a_note() -> None:
    p = place(["node-1", "node-2"], None, global_selector={"pool": "a"})
    assert p.nodes == {}
    assert p.selector("node-1") == {"pool": "a"}
    assert p.note.startswith("pods not placed on nodes: the cluster's Node objects cannot be read")
    assert "lists no Node objects" in place(["node-1"], ()).note


def test_unreadable_nodes_still_honour_the_node_map() -> None:
    p = place(["node-1", "node-2"], None, {"node-1": "kind-worker"})
    assert p.nodes == {"node-1": "kind-worker"}
    assert p.selector("node-1") == {HOST: "kind-worker"}
    assert p.selector("node-2") == {}
    assert "node-2 are not mapped" in p.note


def test_pod_manifest_carries_the_placement_selector() -> None:
    from conformance.api.model import Pod

    pod = Pod("x-1", "a", node="node-1")
    opts = DeployOptions(node_selector={"pool": "a"})
    spec = pod_manifest(pod, "x-1", {}, opts, {"pool": "a", HOST: "kind-worker"})["spec"]
    assert spec["nodeSelector"] == {"pool": "a", HOST: "kind-worker"}
    assert pod_manifest(pod, "x-1", {}, opts)["spec"]["nodeSelector"] == {"pool": "a"}
    assert "nodeSelector" not in pod_manifest(pod, "x-1", {}, DeployOptions())["spec"]


# -- the runner on a fake kind-like cluster ----------------------------------------------------


class SchedulingCluster:
    """A permissive cluster (every probe connects) with Node objects and a scheduler that honours
    ``nodeSelector`` on node labels, or ignores it (``honour=False``: every pod lands on the
    first schedulable node). ``nodes=None``: listing nodes is forbidden (no RBAC)."""

    context = "kind-kind"
    server = "https://127.0.0.1:6443"
    kubeconfig = ""

    def __init__(self, nodes: list[dict[str, Any]] | None, honour: bool = True) -> None:
        self.nodes = nodes
        self.honour = honour
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.created_pods: list[dict[str, Any]] = []
        self._ips = itertools.count(2)

    def server_version(self) -> str:
        return "v1.31.0"

    def served_kinds(self) -> set[str]:
        return {"NetworkPolicy"}

    def _schedule(self, pod: dict[str, Any]) -> str:
        schedulable = [n for n in cluster_nodes(self.nodes or [node("only")]) if n.schedulable]
        wanted = pod["spec"].get("nodeSelector") or {}
        for n in schedulable:
            labels = {HOST: n.hostname, **n.labels}
            if not self.honour or all(labels.get(k) == v for k, v in wanted.items()):
                return n.name
        raise AssertionError(f"no node fits {wanted}")

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {**obj, "metadata": dict(obj["metadata"])}
        if obj["kind"] == "Pod":
            self.created_pods.append(out)
            out["spec"] = {**obj["spec"], "nodeName": self._schedule(dict(obj))}
            out["status"] = {
                "phase": "Running",
                "podIP": f"10.244.0.{next(self._ips)}",
                "conditions": [{"type": "Ready", "status": "True"}],
            }
        meta = out["metadata"]
        self.objects[(obj["kind"], meta.get("namespace") or "", meta["name"])] = out
        return out

    apply = create

    def delete(self, kind: str, namespace: str | None, name: str) -> None:
        self.objects.pop((kind, namespace or "", name), None)

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        try:
            return self.objects[(kind, namespace or "", name)]
        except KeyError:
            raise NotFound(f"{kind} {name} not found") from None

    def list_items(
        self, kind: str, namespace: str | None = None, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        if kind == "Node":
            if self.nodes is None:
                raise PermanentClusterError("nodes is forbidden", status=403)
            return self.nodes
        return [
            o
            for (k, ns, _), o in self.objects.items()
            if k == kind and (namespace is None or ns == namespace)
        ]

    def patch_labels(
        self, kind: str, namespace: str | None, name: str, labels: Mapping[str, str | None]
    ) -> None:
        raise AssertionError("the test scenario patches no labels")

    def delete_collection(self, kind: str, label_selector: str) -> list[str]:
        return []

    def events_for(self, namespace: str, name: str) -> list[str]:
        return []

    def exec(
        self, namespace: str, pod: str, container: str, argv: Sequence[str], timeout_s: float
    ) -> ExecResult:
        # batch.sh's arguments after the script: probe PARALLEL (ID HOST PORT PROTO TIMEOUT)...
        rest = list(argv[argv.index("probe") + 2 :])
        idents = rest[0::5]
        return ExecResult(0, "".join(f"{i} ok\n" for i in idents), "")


def run(
    tmp_path: Path, cluster: SchedulingCluster, text: str = "steps: [{name: s}]\n", **options: Any
) -> ScenarioResult:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    runner = Runner(cluster, RunOptions(**options), run_id="t")
    try:
        return runner.run_scenario(load_scenario(path))
    finally:
        runner.close()


def paths_agree_with_nodes(result: ScenarioResult) -> set[TrafficPath | None]:
    """Every pod-to-pod cell's path is what the nodes the pods ran on say; the paths seen."""
    seen: set[TrafficPath | None] = set()
    for st in result.steps:
        for c in st.cells:
            same = result.nodes[c.source] == result.nodes[c.target]
            assert c.path is (TrafficPath.SAME_NODE if same else TrafficPath.CROSS_NODE), c
            seen.add(c.path)
    return seen


def test_runner_places_pods_on_distinct_workers(tmp_path: Path) -> None:
    cluster = SchedulingCluster(kind(2))
    result = run(tmp_path, cluster)
    assert result.status is Status.PASS, result.message
    assert result.node_map == {"node-1": "kind-worker", "node-2": "kind-worker2"}
    assert result.notes == []
    # The documented spread: x/a, x/c, y/b, z/a, z/c on node-1, the others on node-2.
    on_first = sorted(k for k, n in result.nodes.items() if n == "kind-worker")
    assert on_first == ["x/a", "x/c", "y/b", "z/a", "z/c"]
    selectors = {p["metadata"]["name"]: p["spec"]["nodeSelector"] for p in cluster.created_pods}
    assert {s[HOST] for s in selectors.values()} == {"kind-worker", "kind-worker2"}
    assert paths_agree_with_nodes(result) == {TrafficPath.SAME_NODE, TrafficPath.CROSS_NODE}


def test_runner_honours_node_map_and_pins(tmp_path: Path) -> None:
    text = (
        "topology:\n  pods: [{name: x/a, node: node-2}, {name: x/b, node: node-2}]\n"
        "steps: [{name: s}]\n"
    )
    cluster = SchedulingCluster(kind(3))
    result = run(tmp_path, cluster, text, node_map="node-2=kind-worker3")
    assert result.node_map == {"node-2": "kind-worker3"}  # node-1 has no pods
    assert result.nodes == {"x/a": "kind-worker3", "x/b": "kind-worker3"}
    assert paths_agree_with_nodes(result) == {TrafficPath.SAME_NODE}


def test_pod_on_another_node_than_asked_is_flagged(tmp_path: Path) -> None:
    cluster = SchedulingCluster(kind(2), honour=False)
    result = run(tmp_path, cluster)
    warnings = [n for n in result.notes if n.startswith("warning")]
    assert len(warnings) == 4  # x/b, y/a, y/c, z/b were asked onto kind-worker2
    assert warnings[0] == (
        "warning: pod x/b was placed on kind-worker2 (scenario node node-2) but runs on "
        "kind-worker: the cluster did not honour its nodeSelector; its cells' paths are where it ran"
    )
    assert paths_agree_with_nodes(result) == {TrafficPath.SAME_NODE}


def test_single_node_cluster_runs_unpinned_scenarios_and_says_so(tmp_path: Path) -> None:
    result = run(tmp_path, SchedulingCluster([node("kind-control-plane")]))
    assert result.status is Status.PASS
    assert len(result.notes) == 1 and "every pod-to-pod cell is same-node" in result.notes[0]
    assert paths_agree_with_nodes(result) == {TrafficPath.SAME_NODE}


def test_pinning_scenario_on_too_few_nodes_errors_before_creating_anything(
    tmp_path: Path,
) -> None:
    text = "topology:\n  pods: [{name: x/a, node: node-1}, {name: x/b, node: node-2}]\nsteps: [{name: s}]\n"
    cluster = SchedulingCluster(kind(1))
    result = run(tmp_path, cluster, text)
    assert result.status is Status.ERROR
    assert result.message.startswith("cannot place the scenario's pods: the scenario pins pods")
    assert "--node-map" in result.message
    assert cluster.objects == {}


def test_unreadable_nodes_leave_placement_to_the_scheduler(tmp_path: Path) -> None:
    cluster = SchedulingCluster(None)
    result = run(tmp_path, cluster)
    assert result.status is Status.PASS
    assert result.node_map == {}
    assert result.notes[0].startswith("pods not placed on nodes")
    assert all("nodeSelector" not in p["spec"] for p in cluster.created_pods)
    assert paths_agree_with_nodes(result) == {TrafficPath.SAME_NODE}


def test_node_map_names_no_scenario_has_are_reported(tmp_path: Path) -> None:
    from conformance.live.placement import unmapped_names

    path = tmp_path / "s.yaml"
    path.write_text("topology: {nodes: {left: {}, right: {}}}\nsteps: [{name: s}]\n")
    scenarios = [load_scenario(path)]
    assert unmapped_names({"left": "w", "node1": "w2", "node-1": "w3"}, scenarios) == [
        "node-1",
        "node1",
    ]


def test_scenario_nodes_without_pods_need_no_real_node(tmp_path: Path) -> None:
    text = "topology:\n  pods: [{name: x/a, node: node-1}, {name: x/b, node: node-1}]\nsteps: [{name: s}]\n"
    result = run(tmp_path, SchedulingCluster([node("kind-control-plane")]), text)
    assert result.status is Status.PASS, result.message
    assert result.node_map == {"node-1": "kind-control-plane"}
    assert result.notes == []
