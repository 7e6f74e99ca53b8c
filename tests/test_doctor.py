"""``netpol-conformance doctor``: pure helpers table-driven, the flow on a fake cluster, and the
real thing on the embedded cluster (slow tier)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.commands.doctor import render
from conformance.errors import ExitCode, PermanentClusterError, TransientClusterError
from conformance.live.cni import detect_cni
from conformance.live.doctor import (
    CheckStatus,
    Doctor,
    DoctorOptions,
    exit_status,
    node_problems,
    pod_state,
    schedulable_nodes,
)
from conformance.live.ops import ExecResult

# -- fixtures shaped like what the API returns -------------------------------------------------


def ds(
    name: str, image: str, ns: str = "kube-system", ready: int = 3, desired: int = 3
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": ns},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}},
        "status": {"desiredNumberScheduled": desired, "numberReady": ready},
    }


def deploy(name: str, ns: str = "kube-system", replicas: int = 1, ready: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": []}}},
        "status": {"readyReplicas": ready},
    }


def node(name: str, ready: str = "True", message: str = "", taint: str = "") -> dict[str, Any]:
    cond: dict[str, Any] = {"type": "Ready", "status": ready}
    if message:
        cond.update(reason="KubeletNotReady", message=message)
    spec: dict[str, Any] = {}
    if taint:
        spec["taints"] = [{"key": taint, "effect": "NoSchedule"}]
    return {"metadata": {"name": name}, "spec": spec, "status": {"conditions": [cond]}}


KUBE_PROXY = ds("kube-proxy", "registry.k8s.io/kube-proxy:v1.35.8")


@pytest.mark.parametrize(
    ("daemonsets", "deployments", "expected"),
    [
        pytest.param(
            [KUBE_PROXY, ds("calico-node", "quay.io/calico/node:v3.32.2", "calico-system")],
            [deploy("calico-kube-controllers", "calico-system")],
            [("calico", "v3.32.2", 2, 0)],
            id="calico-operator-install",
        ),
        pytest.param(
            [ds("cilium", "quay.io/cilium/cilium:v1.19.9@sha256:abc", ready=1)],
            [deploy("cilium-operator", replicas=2, ready=2)],
            [("cilium", "v1.19.9", 2, 1)],
            id="cilium-agent-not-ready-tag-before-digest",
        ),
        pytest.param(
            [ds("antrea-agent", "antrea/antrea-agent-ubuntu:v2.7.0")],
            [deploy("antrea-controller", ready=0)],
            [("antrea", "v2.7.0", 2, 1)],
            id="antrea-controller-not-ready",
        ),
        pytest.param(
            [KUBE_PROXY, ds("kindnet", "docker.io/kindest/kindnetd:v20250512-df8de77b")],
            [deploy("coredns", replicas=2, ready=2)],
            [("kindnet", "v20250512-df8de77b", 1, 0)],
            id="kind-default",
        ),
        pytest.param(
            [ds("renamed-agent", "quay.io/calico/node:v3.31.0")],
            [],
            [("calico", "v3.31.0", 1, 0)],
            id="matched-by-image-only",
        ),
        pytest.param([KUBE_PROXY], [], [], id="none"),
        pytest.param(
            [ds("cilium-envoy", "quay.io/cilium/cilium-envoy:v1.34")], [], [], id="not-the-agent"
        ),
    ],
)
def test_detect_cni_names_agent_version_and_unready_workloads(
    daemonsets: list[dict[str, Any]],
    deployments: list[dict[str, Any]],
    expected: list[tuple[str, str, int, int]],
) -> None:
    found = detect_cni(daemonsets, deployments)
    assert [(c.name, c.version, len(c.workloads), len(c.not_ready)) for c in found] == expected


def test_unready_workload_is_described_with_counts() -> None:
    (cni,) = detect_cni([ds("cilium", "quay.io/cilium/cilium:v1.19.9", ready=1, desired=3)])
    assert cni.not_ready == ("ds/kube-system/cilium: 1/3 ready",)
    assert "9209" in cni.note, "the documented ipBlock deviation is shown with the detection"


def test_nodes_not_ready_carry_the_kubelet_message_and_taints_exclude_probe_targets() -> None:
    nodes = [
        node("cp", taint="node-role.kubernetes.io/control-plane"),
        node("w1"),
        node("w2", "False", "container runtime network not ready: NetworkPluginNotReady"),
    ]
    assert node_problems(nodes) == [
        "w2: KubeletNotReady: container runtime network not ready: NetworkPluginNotReady"
    ]
    assert schedulable_nodes(nodes) == ["w1"]


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ({"phase": "Running", "containerStatuses": [{"ready": True, "state": {}}]}, "running"),
        ({"phase": "Running", "containerStatuses": [{"ready": False, "state": {}}]}, "pending"),
        (
            {
                "phase": "Pending",
                "containerStatuses": [
                    {"state": {"waiting": {"reason": "ImagePullBackOff", "message": "x"}}}
                ],
            },
            "stuck",
        ),
        (
            {
                "phase": "Pending",
                "containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}}],
            },
            "pending",
        ),
        ({"phase": "Failed", "message": "CannotEmulate"}, "failed"),
    ],
)
def test_pod_state_classifies_what_waiting_longer_cannot_fix(
    status: dict[str, Any], state: str
) -> None:
    assert pod_state({"status": status})[0] == state


# -- the flow on a fake cluster ---------------------------------------------------------------


class FakeCluster:
    """Just enough of a cluster for the doctor's flow; records what was created and deleted."""

    context = "kind-fake"
    server = "https://127.0.0.1:6443"
    kubeconfig = ""

    def __init__(
        self,
        *,
        version: str | Exception = "v1.35.8",
        nodes: list[dict[str, Any]] | Exception | None = None,
        daemonsets: list[dict[str, Any]] | None = None,
        pod_status: dict[str, Any] | None = None,
        sctp_exit: int = 0,
    ) -> None:
        self.version = version
        self.nodes = [node("w1"), node("w2")] if nodes is None else nodes
        self.daemonsets = daemonsets if daemonsets is not None else [ds("kindnet", "kindnetd:v1")]
        self.pod_status = pod_status or {
            "phase": "Running",
            "containerStatuses": [{"ready": True, "state": {"running": {}}}],
        }
        self.sctp_exit = sctp_exit
        self.created: list[Mapping[str, Any]] = []
        self.deleted: list[tuple[str, str]] = []
        self.execs: list[Sequence[str]] = []

    def server_version(self) -> str:
        if isinstance(self.version, Exception):
            raise self.version
        return self.version

    def served_kinds(self) -> set[str]:
        return {"NetworkPolicy"}

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        self.created.append(obj)
        return dict(obj)

    def delete(self, kind: str, namespace: str | None, name: str) -> None:
        self.deleted.append((kind, name))

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        pod = next(o for o in self.created if o["metadata"]["name"] == name)
        return {**pod, "status": self.pod_status}

    def list_items(
        self, kind: str, namespace: str | None = None, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        if kind == "Node":
            if isinstance(self.nodes, Exception):
                raise self.nodes
            return self.nodes
        return self.daemonsets if kind == "DaemonSet" else []

    def events_for(self, namespace: str, name: str) -> list[str]:
        return ["Failed: Failed to pull image: not found"]

    def exec(
        self, namespace: str, pod: str, container: str, argv: Sequence[str], timeout_s: float
    ) -> ExecResult:
        self.execs.append(argv)
        return ExecResult(self.sctp_exit, "", "")

    # The doctor only reads and creates its probe pods; it must never change other objects.
    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        raise AssertionError("doctor must not apply objects")

    def patch_labels(
        self, kind: str, namespace: str | None, name: str, labels: Mapping[str, str | None]
    ) -> None:
        raise AssertionError("doctor must not relabel objects")

    def delete_collection(self, kind: str, label_selector: str) -> list[str]:
        raise AssertionError("doctor deletes its own pods by name")


def statuses(checks: Sequence[Any]) -> dict[str, CheckStatus]:
    return {c.name: c.status for c in checks}


def run_doctor(cluster: FakeCluster, **options: Any) -> list[Any]:
    return Doctor(cluster, DoctorOptions(**options), sleep=lambda s: None).run()


def test_healthy_cluster_passes_with_one_probe_pod_per_schedulable_node() -> None:
    cluster = FakeCluster()
    checks = run_doctor(cluster, sctp=True)
    assert statuses(checks) == {
        "API server": CheckStatus.OK,
        "nodes": CheckStatus.OK,
        "CNI": CheckStatus.OK,
        "admin policy APIs": CheckStatus.INFO,
        "probe image": CheckStatus.OK,
        "SCTP": CheckStatus.OK,
    }
    assert exit_status(checks) is ExitCode.OK
    ns, *pods = cluster.created
    assert ns["kind"] == "Namespace"
    assert ns["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "netpol-conformance"
    assert [p["spec"]["nodeName"] for p in pods] == ["w1", "w2"]
    assert len(cluster.execs) == 2
    assert cluster.deleted == [("Namespace", ns["metadata"]["name"])], "the namespace is removed"


def test_unreachable_api_fails_and_skips_everything_else() -> None:
    checks = run_doctor(FakeCluster(version=TransientClusterError("GET /version: refused")))
    assert statuses(checks)["API server"] is CheckStatus.FAIL
    assert {c.status for c in checks[1:]} == {CheckStatus.SKIP}
    assert exit_status(checks) is ExitCode.INFRASTRUCTURE
    assert "kubectl --context kind-fake get --raw /version" in checks[0].fix


def test_unready_nodes_point_at_the_cni() -> None:
    cluster = FakeCluster(nodes=[node("w1", "False", "network plugin not ready: cni config")])
    check = next(c for c in run_doctor(cluster) if c.name == "nodes")
    assert check.status is CheckStatus.FAIL and "hack/kind/install-" in check.fix


def test_forbidden_node_list_is_a_warning_not_a_failure() -> None:
    cluster = FakeCluster(nodes=PermanentClusterError("list Node in cluster: HTTP 403 Forbidden"))
    checks = run_doctor(cluster)
    assert statuses(checks)["nodes"] is CheckStatus.WARN
    assert exit_status(checks) is ExitCode.OK


def test_image_pull_failure_says_how_to_preload() -> None:
    stuck = {
        "phase": "Pending",
        "containerStatuses": [
            {"state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}}}
        ],
    }
    checks = run_doctor(FakeCluster(pod_status=stuck), sctp=True)
    image = next(c for c in checks if c.name == "probe image")
    assert image.status is CheckStatus.FAIL and "kind load docker-image" in image.fix
    assert statuses(checks)["SCTP"] is CheckStatus.WARN, "no pod to look from: cannot check"


def test_missing_sctp_fails_with_modprobe_hint() -> None:
    check = next(c for c in run_doctor(FakeCluster(sctp_exit=1), sctp=True) if c.name == "SCTP")
    assert check.status is CheckStatus.FAIL and "modprobe sctp" in check.fix


def test_missing_sctp_on_the_embedded_cluster_points_at_this_machine_not_kind_nodes() -> None:
    cluster = FakeCluster(version="v1.32.0-netpol-embedded", sctp_exit=1)
    check = next(c for c in run_doctor(cluster, sctp=True) if c.name == "SCTP")
    assert check.status is CheckStatus.FAIL and "this machine" in check.detail
    assert "kind" not in check.fix and "modprobe sctp" in check.fix and "here" in check.fix


def test_unready_cni_fails_with_rollout_command() -> None:
    cluster = FakeCluster(daemonsets=[ds("antrea-agent", "antrea/antrea-agent:v2.7.0", ready=0)])
    check = next(c for c in run_doctor(cluster) if c.name == "CNI")
    assert check.status is CheckStatus.FAIL
    assert "kubectl -n kube-system rollout status ds/antrea-agent" in check.fix


def test_refused_context_creates_nothing() -> None:
    cluster = FakeCluster()
    checks = run_doctor(cluster, sctp=True, pods_refused="context 'prod' is not kind-*")
    assert cluster.created == []
    assert statuses(checks)["probe image"] is CheckStatus.SKIP
    assert statuses(checks)["SCTP"] is CheckStatus.WARN


def test_render_lists_fixes_and_a_closing_sentence() -> None:
    checks = run_doctor(FakeCluster(sctp_exit=1), sctp=True)
    text = render("kind-fake", checks)
    assert "[FAIL] SCTP" in text and "fix: kind nodes share the host's kernel" in text
    assert text.splitlines()[-1].startswith("1 check(s) failed (SCTP)")


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conformance", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_cli_missing_kubeconfig_exits_3(tmp_path: Path) -> None:
    proc = cli("--kubeconfig", str(tmp_path / "nope"), "--output", "json")
    assert proc.returncode == ExitCode.INFRASTRUCTURE, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False and doc["checks"][0]["name"] == "kubeconfig"


# -- the embedded cluster ---------------------------------------------------------------------

HOST_HAS_SCTP = os.path.isdir("/proc/net/sctp") or os.path.isdir("/sys/module/sctp")


@pytest.mark.cluster
@pytest.mark.slow
def test_doctor_on_the_embedded_cluster(tmp_path: Path) -> None:
    from conformance.cluster.config import ClusterOptions
    from conformance.cluster.dataplane import prefix_for
    from conformance.cluster.embedded import EmbeddedCluster
    from conformance.live.kube import KubeCluster

    instance = f"doc{os.getpid() % 100000}"
    with EmbeddedCluster(ClusterOptions(instance=instance)) as ec:
        base = ("--kubeconfig", ec.kubeconfig, "--context", ec.context)
        ok = cli(*base, "--output", "json")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        doc = json.loads(ok.stdout)
        by_name = {c["name"]: c for c in doc["checks"]}
        assert by_name["probe image"]["status"] == "ok"
        assert by_name["CNI"]["status"] == "ok" and "embedded" in by_name["CNI"]["detail"]
        assert by_name["SCTP"]["status"] == "skip"

        sctp = cli(*base, "--sctp")
        # The embedded cluster's pods use this machine's kernel: the answer is the host's.
        assert sctp.returncode == (0 if HOST_HAS_SCTP else 3), sctp.stdout + sctp.stderr
        assert ("[ok]   SCTP" if HOST_HAS_SCTP else "[FAIL] SCTP") in sctp.stdout
        if not HOST_HAS_SCTP:
            assert "sudo modprobe sctp" in sctp.stdout

        bad = cli(*base, "--image", "busybox:1.36", "--timeout", "20")
        assert bad.returncode == 3 and "[FAIL] probe image" in bad.stdout, bad.stdout

        # A context not named like a test cluster: read-only checks only, nothing created.
        config = yaml.safe_load(Path(ec.kubeconfig).read_text())
        config["contexts"][0]["name"] = "prod"
        config["current-context"] = "prod"
        renamed = tmp_path / "kubeconfig"
        renamed.write_text(yaml.safe_dump(config))
        ro = cli("--kubeconfig", str(renamed))
        assert ro.returncode == 0, ro.stdout + ro.stderr
        assert "[skip] probe image" in ro.stdout and "--allow-context prod" in ro.stdout

        kube = KubeCluster(ec.kubeconfig, ec.context)
        left = kube.list_items("Namespace", label_selector="app.kubernetes.io/managed-by")
        kube.close()
        assert left == [], "every doctor namespace was deleted"
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert prefix_for(instance) not in out


def test_nodes_check_says_where_scenario_nodes_go_and_warns_on_one_worker() -> None:
    checks = {c.name: c for c in run_doctor(FakeCluster(nodes=[node("w2"), node("w1")]))}
    assert checks["nodes"].status is CheckStatus.OK
    assert checks["nodes"].detail.endswith("node-1, node-2 of a scenario go on w1, w2")
    one = [node("cp", taint="node-role.kubernetes.io/control-plane"), node("w1")]
    checks = {c.name: c for c in run_doctor(FakeCluster(nodes=one))}
    assert checks["nodes"].status is CheckStatus.WARN
    assert "only 1 schedulable for the runner's pods" in checks["nodes"].detail
    assert "--node-map" in checks["nodes"].fix
