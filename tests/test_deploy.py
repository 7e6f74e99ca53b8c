"""Names, manifests and policy rewriting for live runs (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.api.adminpol import parse_admin_policy
from conformance.api.model import ClusterState, ContainerPort, Namespace, Pod, frozen_labels
from conformance.api.types import L4Protocol
from conformance.live.deploy import (
    POD_LABEL,
    RUN_LABEL,
    DeployOptions,
    NameMap,
    confine_to_namespaces,
    pod_manifest,
    real_namespace,
    rewrite_policy,
    run_labels,
    service_manifest,
)
from conformance.live.session import UnsafeContextError, check_context
from conformance.reference.evaluator import Evaluator
from tests.helpers import upstream_state
from tests.strategies import ns_is
from tests.test_admin_policy import ANP, CNP, V2


def test_real_namespace_is_unique_and_a_dns_label() -> None:
    assert real_namespace("x", "ab12-3") == "x-ab12-3"
    long = real_namespace("n" * 70, "ab12-3")
    assert len(long) <= 63 and long.endswith("-ab12-3")


def test_rewrite_policy_maps_namespaces_consistently() -> None:
    names = NameMap.for_run("r1", ["x", "y"])
    obj: dict[str, Any] = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": "x"},
        "spec": {
            "podSelector": {},
            "ingress": [
                {
                    "from": [
                        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "y"}}}
                    ]
                },
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchExpressions": [
                                    {
                                        "key": "kubernetes.io/metadata.name",
                                        "operator": "In",
                                        "values": ["x", "other"],
                                    },
                                    {"key": "team", "operator": "In", "values": ["x"]},
                                ]
                            }
                        }
                    ]
                },
            ],
        },
    }
    out = rewrite_policy(obj, names)
    assert out["metadata"]["namespace"] == "x-r1"
    assert out["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "y-r1"
    }
    exprs = out["spec"]["ingress"][1]["from"][0]["namespaceSelector"]["matchExpressions"]
    assert exprs[0]["values"] == ["x-r1", "other"]
    assert exprs[1]["values"] == ["x"], "only the namespace-name label is rewritten"
    assert obj["metadata"]["namespace"] == "x", "the input is not modified"


def test_pod_manifest_follows_upstream_model() -> None:
    pod = Pod(
        "x",
        "a",
        frozen_labels({"pod": "a"}),
        (
            ContainerPort(80, L4Protocol.TCP, "serve-80-tcp"),
            ContainerPort(81, L4Protocol.UDP),
            ContainerPort(82, L4Protocol.SCTP),
        ),
    )
    m = pod_manifest(pod, "x-r1", run_labels("r1", "s"), DeployOptions(node_selector={"k": "v"}))
    spec = m["spec"]
    assert spec["terminationGracePeriodSeconds"] == 0 and spec["nodeSelector"] == {"k": "v"}
    tcp, udp, sctp = spec["containers"]
    assert tcp["name"] == "cont-80-tcp" and tcp["ports"] == [
        {"containerPort": 80, "protocol": "TCP", "name": "serve-80-tcp"}
    ]
    assert tcp["args"] == ["serve-hostname", "--tcp", "--http=false", "--port", "80"]
    assert udp["args"][1] == "--udp"
    assert sctp["args"] == ["porter"] and sctp["env"] == [
        {"name": "SERVE_SCTP_PORT_82", "value": "foo"}
    ]
    labels = m["metadata"]["labels"]
    assert labels["pod"] == "a" and labels[RUN_LABEL] == "r1" and labels[POD_LABEL] == "a"
    svc = service_manifest(pod, "x-r1", run_labels("r1", "s"))
    assert svc is not None
    assert svc["spec"]["selector"] == {POD_LABEL: "a"} and len(svc["spec"]["ports"]) == 3


def test_service_exposes_every_probed_port_even_those_the_pod_does_not_serve() -> None:
    """A probe through the ClusterIP to a port the pod does not serve must reach the pod (and be
    refused there, as a probe of the pod IP is), not time out on the Service (read as deny)."""
    pod = Pod("x", "a", frozen_labels({}), (ContainerPort(80, L4Protocol.TCP, "http"),))
    probed = [(80, L4Protocol.TCP), (8080, L4Protocol.TCP), (53, L4Protocol.UDP)]
    svc = service_manifest(pod, "x-r1", run_labels("r1", "s"), probed)
    assert svc is not None
    exposed = {(p["port"], p["protocol"], p["targetPort"]) for p in svc["spec"]["ports"]}
    assert exposed == {(80, "TCP", 80), (8080, "TCP", 8080), (53, "UDP", 53)}
    assert len({p["name"] for p in svc["spec"]["ports"]}) == 3, "port names are unique"
    bare = Pod("x", "b", frozen_labels({}), ())
    svc_bare = service_manifest(bare, "x-r1", run_labels("r1", "s"), probed)
    assert svc_bare is not None and len(svc_bare["spec"]["ports"]) == 3
    assert service_manifest(bare, "x-r1", run_labels("r1", "s")) is None


@pytest.mark.parametrize("context", ["kind-kind", "kind-calico", "netpol-embedded-default"])
def test_safe_contexts(context: str) -> None:
    check_context(context, [])


def test_other_contexts_need_allow() -> None:
    with pytest.raises(UnsafeContextError, match="--allow-context prod-eu"):
        check_context("prod-eu", [])
    check_context("prod-eu", ["prod-eu"])


def test_confine_to_namespaces_scopes_subject_and_pod_peers() -> None:
    confined = confine_to_namespaces(CNP, "run", "r1")
    req = {"key": "run", "operator": "In", "values": ["r1"]}
    assert confined["spec"]["subject"]["pods"]["namespaceSelector"] == {"matchExpressions": [req]}
    # The peer had no namespaceSelector (all namespaces): it now has one that only requires the label.
    assert confined["spec"]["egress"][0]["to"][0]["pods"]["namespaceSelector"] == {
        "matchExpressions": [req]
    }
    assert "namespaceSelector" not in CNP["spec"]["egress"][0]["to"][0]["pods"]  # input untouched
    parse_admin_policy(confined)
    anp = confine_to_namespaces(ANP, "run", "r1")
    assert anp["spec"]["ingress"][0]["from"][0]["namespaces"] == {
        "matchLabels": {"team": "y"},
        "matchExpressions": [req],
    }
    assert anp["spec"]["egress"][0]["to"][0] == ANP["spec"]["egress"][0]["to"][0]  # networks


def test_confined_policies_keep_verdicts_when_namespaces_carry_the_label() -> None:

    pol = {
        "apiVersion": V2,
        "kind": "ClusterNetworkPolicy",
        "metadata": {"name": "p"},
        "spec": {
            "tier": "Admin",
            "priority": 1,
            "subject": {"namespaces": {}},
            "ingress": [
                {"action": "Accept", "from": [{"namespaces": ns_is("y")}]},
                {"action": "Deny", "from": [{"pods": {"podSelector": {}}}]},
            ],
        },
    }
    base = upstream_state()
    labelled = ClusterState(
        tuple(Namespace(n.name, frozen_labels({"run": "r1"})) for n in base.namespaces),
        base.pods,
    )
    plain = Evaluator(labelled, [parse_admin_policy(pol)])
    scoped = Evaluator(labelled, [parse_admin_policy(confine_to_namespaces(pol, "run", "r1"))])
    keys = [p.key for p in base.pods]
    for s in keys:
        for t in keys:
            assert (
                plain.decide(s, t, 80, L4Protocol.TCP).verdict
                is scoped.decide(s, t, 80, L4Protocol.TCP).verdict
            )
