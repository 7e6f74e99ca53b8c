"""Several nodes: Node objects, the scheduler, and enforcement on every path real CNIs have
(same node, across nodes, to and from a node, from outside), on real packets."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from conformance.cluster.config import ClusterOptions, ExternalHost
from conformance.cluster.embedded import EmbeddedCluster, outside_exec
from conformance.cluster.knobs import Deviation, Knobs
from tests.cluster.conftest import Kube, agnhost_pod, unique_instance

pytestmark = pytest.mark.cluster
W1, W2, W3 = "embedded-worker", "embedded-worker2", "embedded-worker3"


@contextlib.contextmanager
def _cluster(nodes: int = 2, deviations: tuple[Deviation, ...] = ()) -> Iterator[Kube]:
    options = ClusterOptions(
        instance=unique_instance("n"),
        nodes=nodes,
        knobs=Knobs(deviations=frozenset(deviations)),
        externals=(ExternalHost("web", "203.0.113.10"),),
    )
    with EmbeddedCluster(options) as cluster:
        yield Kube(cluster)


@pytest.fixture(scope="module")
def kube() -> Iterator[Kube]:
    with _cluster(nodes=3) as k:
        yield k


def pinned(name: str, node: str, host: bool = False, port: int = 80) -> dict[str, Any]:
    pod = agnhost_pod(name, ports=((port, "TCP"),))
    pod["spec"]["nodeName"] = node
    if host:
        pod["spec"]["hostNetwork"] = True
    return pod


def node_of(kube: Kube, namespace: str, name: str) -> str:
    return str(kube.core.read_namespaced_pod(name, namespace).spec.node_name)


def outside(kube: Kube, target: str) -> int:
    """Connect from the outside host ``web``; the exit code of agnhost connect."""
    res = outside_exec(kube.cluster.info, "web", ["/agnhost", "connect", target, "--timeout=1s"])
    return int(res["exitCode"])


def test_nodes_are_served_with_labels_and_addresses_and_cannot_be_created(kube: Kube) -> None:
    nodes = {n.metadata.name: n for n in kube.core.list_node().items}
    assert sorted(nodes) == [W1, W2, W3]
    addresses = [
        next(a.address for a in n.status.addresses if a.type == "InternalIP")
        for n in (nodes[W1], nodes[W2], nodes[W3])
    ]
    assert addresses == ["172.18.0.2", "172.18.0.3", "172.18.0.4"]
    assert nodes[W2].metadata.labels["kubernetes.io/hostname"] == W2
    with pytest.raises(kubernetes.client.ApiException) as err:
        kube.core.create_node({"metadata": {"name": "extra"}})
    assert err.value.status == 405
    kube.core.patch_node(W3, {"metadata": {"labels": {"zone": "c"}}})
    assert kube.core.read_node(W3).metadata.labels["zone"] == "c"
    assert kube.core.read_node(W3).status.addresses[0].address == "172.18.0.4"


def test_scheduler_honours_node_name_selector_and_required_affinity(kube: Kube) -> None:
    kube.namespace("sched")
    by_selector = agnhost_pod("sel")
    by_selector["spec"]["nodeSelector"] = {"kubernetes.io/hostname": W2}
    by_affinity = agnhost_pod("aff")
    by_affinity["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "no-such", "operator": "Exists"}]},
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [W3]}]},
                ]
            }
        }
    }
    kube.pods("sched", [pinned("named", W1), by_selector, by_affinity])
    assert [node_of(kube, "sched", n) for n in ("named", "sel", "aff")] == [W1, W2, W3]

    nowhere = agnhost_pod("nowhere")
    nowhere["spec"]["nodeSelector"] = {"zone": "mars"}
    kube.core.create_namespaced_pod("sched", nowhere)
    pod = kube.core.read_namespaced_pod("nowhere", "sched")
    assert pod.status.phase == "Pending" and pod.spec.node_name is None
    events = kube.core.list_namespaced_event("sched").items
    assert any(
        e.reason == "FailedScheduling" and "didn't match Pod's node affinity/selector" in e.message
        for e in events
    )


def test_a_pod_waiting_for_a_host_port_runs_once_the_holder_is_gone(kube: Kube) -> None:
    kube.namespace("ports")
    kube.pods("ports", [pinned("first", W1, True, 8181)])
    second = agnhost_pod("second", ports=((8181, "TCP"),))
    second["spec"]["hostNetwork"] = True
    second["spec"]["nodeSelector"] = {"kubernetes.io/hostname": W1}
    kube.core.create_namespaced_pod("ports", second)
    pod = kube.core.read_namespaced_pod("second", "ports")
    assert pod.status.phase == "Pending" and pod.spec.node_name is None
    assert "didn't have free ports" in pod.status.conditions[0].message
    kube.core.delete_namespaced_pod("first", "ports")
    assert kube.wait_running("ports", ["second"]) == {"second": "172.18.0.2"}
    assert node_of(kube, "ports", "second") == W1


def test_unpinned_pods_spread_over_the_least_loaded_nodes(kube: Kube) -> None:
    kube.namespace("spread")
    kube.pods("spread", [agnhost_pod(f"p{i}") for i in range(6)])
    counts: dict[str, int] = {}
    for pod in kube.core.list_namespaced_pod("spread").items:
        counts[pod.spec.node_name] = counts.get(pod.spec.node_name, 0) + 1
    assert len(counts) == 3 and max(counts.values()) - min(counts.values()) <= 2


def test_pod_addresses_come_from_their_node_slice(kube: Kube) -> None:
    kube.namespace("slices")
    ips = kube.pods("slices", [pinned("a", W1), pinned("b", W2)])
    assert ipaddress.ip_address(ips["a"]) in ipaddress.ip_network("10.244.16.0/20")
    assert ipaddress.ip_address(ips["b"]) in ipaddress.ip_network("10.244.32.0/20")
    assert kube.core.read_namespaced_pod("b", "slices").status.host_ip == "172.18.0.3"


def test_every_path_connects_without_policy(kube: Kube) -> None:
    kube.namespace("paths")
    ips = kube.pods(
        "paths",
        [pinned("a", W1), pinned("same", W1), pinned("far", W2), pinned("h2", W2, True, 8080)],
    )
    assert ips["h2"] == "172.18.0.3"
    assert kube.connect("paths", "a", f"{ips['same']}:80") == (0, "")  # same node
    assert kube.connect("paths", "a", f"{ips['far']}:80") == (0, "")  # cross node
    assert kube.connect("paths", "a", "172.18.0.3:8080") == (0, "")  # to a node
    assert kube.connect("paths", "h2", f"{ips['a']}:80") == (0, "")  # from a node
    assert kube.connect("paths", "a", "203.0.113.10:80") == (0, "")  # to outside
    assert outside(kube, f"{ips['a']}:80") == 0  # from outside, to either node
    assert outside(kube, f"{ips['far']}:80") == 0
    assert outside(kube, "172.18.0.3:8080") == 0


def test_isolation_is_enforced_on_each_side_and_spares_the_own_node(kube: Kube) -> None:
    kube.namespace("iso")
    ips = kube.pods(
        "iso",
        [
            pinned("srv", W1),
            pinned("near", W1),
            pinned("far", W2),
            pinned("h1", W1, True, 8081),
            pinned("h2", W2, True, 8082),
        ],
    )
    kube.policy(
        "iso",
        "srv-isolated",
        {
            "podSelector": {"matchLabels": {"pod": "srv"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "far"}}}]}],
        },
    )
    srv = f"{ips['srv']}:80"
    assert kube.connect("iso", "far", srv) == (0, "")  # allowed peer, across nodes
    assert kube.connect("iso", "near", srv)[0] == 1  # same node, not a peer
    assert outside(kube, srv) == 1  # outside, not a peer
    assert kube.connect("iso", "h1", srv) == (0, "")  # its own node: always allowed
    assert kube.connect("iso", "srv", "172.18.0.2:8081") == (0, "")  # egress to its own node
    assert kube.connect("iso", "srv", "172.18.0.3:8082")[0] == 1  # egress to another node
    assert kube.connect("iso", "srv", f"{ips['near']}:80")[0] == 1  # egress, same node


def test_admin_egress_to_nodes_is_decided_by_node_labels(kube: Kube) -> None:
    kube.namespace("anpn", {"anpn": "yes"})
    kube.pods("anpn", [pinned("c", W1), pinned("h1", W1, True, 8091), pinned("h2", W2, True, 8092)])
    kube.core.patch_node(W2, {"metadata": {"labels": {"deny-me": "yes"}}})
    kube.custom.create_cluster_custom_object(
        "policy.networking.k8s.io",
        "v1alpha1",
        "adminnetworkpolicies",
        {
            "apiVersion": "policy.networking.k8s.io/v1alpha1",
            "kind": "AdminNetworkPolicy",
            "metadata": {"name": "deny-labelled-nodes"},
            "spec": {
                "priority": 5,
                "subject": {"namespaces": {"matchLabels": {"anpn": "yes"}}},
                "egress": [
                    {
                        "name": "no-labelled-nodes",
                        "action": "Deny",
                        "to": [{"nodes": {"matchLabels": {"deny-me": "yes"}}}],
                    }
                ],
            },
        },
    )
    try:
        assert kube.connect("anpn", "c", "172.18.0.3:8092")[0] == 1
        assert kube.connect("anpn", "c", "172.18.0.2:8091") == (0, "")
        # Relabel: the node leaves the peer, and the admin tier no longer denies.
        kube.core.patch_node(W2, {"metadata": {"labels": {"deny-me": None}}})
        assert kube.connect("anpn", "c", "172.18.0.3:8092") == (0, "")
    finally:
        kube.custom.delete_cluster_custom_object(
            "policy.networking.k8s.io", "v1alpha1", "adminnetworkpolicies", "deny-labelled-nodes"
        )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("deviation", "path"),
    [
        (Deviation.CROSS_NODE_INGRESS_UNENFORCED, "cross"),
        (Deviation.SAME_NODE_EGRESS_SKIPPED, "same"),
    ],
)
def test_path_deviations_break_only_their_path(deviation: Deviation, path: str) -> None:
    """Each knob lets through exactly the path it names; the other path still enforces."""
    with _cluster(deviations=(deviation,)) as kube:
        kube.namespace("dev")
        ips = kube.pods("dev", [pinned("a", W1), pinned("b", W1), pinned("c", W2)])
        if deviation is Deviation.CROSS_NODE_INGRESS_UNENFORCED:
            kube.policy("dev", "deny-b-in", {"podSelector": {"matchLabels": {"pod": "a"}}})
            cross = kube.connect("dev", "c", f"{ips['a']}:80")[0]
            same = kube.connect("dev", "b", f"{ips['a']}:80")[0]
        else:
            kube.policy(
                "dev",
                "deny-a-out",
                {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"]},
            )
            cross = kube.connect("dev", "a", f"{ips['c']}:80")[0]
            same = kube.connect("dev", "a", f"{ips['b']}:80")[0]
        # 0: connected (the bug's path), 1: denied (correct).
        assert (same, cross) == ((0, 1) if path == "same" else (1, 0))


@pytest.mark.slow
def test_node_traffic_filtered_blocks_the_own_node() -> None:
    with _cluster(deviations=(Deviation.NODE_TRAFFIC_FILTERED,)) as kube:
        kube.namespace("dev")
        ips = kube.pods("dev", [pinned("a", W1), pinned("h1", W1, True, 8081)])
        kube.policy(
            "dev",
            "isolate-a",
            {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Ingress", "Egress"]},
        )
        assert kube.connect("dev", "h1", f"{ips['a']}:80")[0] == 1  # correct: allowed
        assert kube.connect("dev", "a", "172.18.0.2:8081")[0] == 1  # correct: allowed
