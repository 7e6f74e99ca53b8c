"""The embedded scheduler's placement rules (core/v1 NodeSelector semantics), without a cluster."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.cluster.scheduler import fits, schedule


def node(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}}}


def pod_on(name: str, host_ports: tuple[int, ...] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {"nodeName": name, "containers": []}
    if host_ports:
        spec["hostNetwork"] = True
        spec["containers"] = [{"ports": [{"containerPort": p} for p in host_ports]}]
    return {"spec": spec}


NODES = [node("w1", zone="a", size="4"), node("w2", zone="b", size="16"), node("w3")]


def affinity(*terms: dict[str, Any]) -> dict[str, Any]:
    required = {"nodeSelectorTerms": list(terms)}
    return {
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}
    }


@pytest.mark.parametrize(
    ("spec", "wanted"),
    [
        ({}, ["w1", "w2", "w3"]),
        ({"nodeSelector": {"zone": "a"}}, ["w1"]),
        ({"nodeSelector": {"zone": "a", "size": "16"}}, []),
        (
            affinity({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}),
            ["w2"],
        ),
        (
            affinity({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["b"]}]}),
            ["w1", "w3"],
        ),
        (affinity({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}), ["w3"]),
        (
            affinity({"matchExpressions": [{"key": "size", "operator": "Gt", "values": ["8"]}]}),
            ["w2"],
        ),
        (
            affinity({"matchExpressions": [{"key": "size", "operator": "Lt", "values": ["8"]}]}),
            ["w1"],
        ),
        # Terms are ORed; the expressions of one term are ANDed.
        (
            affinity(
                {
                    "matchExpressions": [
                        {"key": "zone", "operator": "Exists"},
                        {"key": "size", "operator": "In", "values": ["4"]},
                    ]
                },
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["w3"]}]},
            ),
            ["w1", "w3"],
        ),
        # An empty term matches no node.
        (affinity({}), []),
    ],
)
def test_fits_follows_node_selector_and_required_affinity(
    spec: dict[str, Any], wanted: list[str]
) -> None:
    assert [n["metadata"]["name"] for n in NODES if fits(spec, n)] == wanted


def test_unpinned_pods_go_to_the_least_loaded_node_first_by_order() -> None:
    assert schedule({}, NODES, []) == ("w1", "")
    assert schedule({}, NODES, [pod_on("w1")]) == ("w2", "")
    assert schedule({}, NODES, [pod_on("w1"), pod_on("w2")]) == ("w3", "")
    assert schedule({"nodeSelector": {"zone": "a"}}, NODES, [pod_on("w1")] * 5) == ("w1", "")


def test_node_name_wins_and_an_unknown_one_is_refused() -> None:
    assert schedule({"nodeName": "w2"}, NODES, [pod_on("w2")] * 3) == ("w2", "")
    assert schedule({"nodeName": "nope"}, NODES, []) == (None, "node 'nope' does not exist")


def test_unschedulable_pods_get_the_schedulers_reason() -> None:
    name, why = schedule({"nodeSelector": {"zone": "z"}}, NODES, [])
    assert name is None
    assert why == "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."


def test_host_network_pods_do_not_share_a_port_on_one_node() -> None:
    spec = {"hostNetwork": True, "containers": [{"ports": [{"containerPort": 8080}]}]}
    assert schedule(spec, NODES[:2], [pod_on("w1", (8080,))]) == ("w2", "")
    pinned = {**spec, "nodeSelector": {"zone": "a"}}
    name, why = schedule(pinned, NODES, [pod_on("w1", (8080,))])
    assert name is None and "didn't have free ports" in why
    # Pod-network pods never conflict.
    assert schedule({"containers": spec["containers"]}, NODES[:1], [pod_on("w1", (8080,))]) == (
        "w1",
        "",
    )
