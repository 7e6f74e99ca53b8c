"""The embedded API answers hostile requests as kube-apiserver does: 401 without the cluster's
token, 400 for malformed objects (never 500), 403 for system namespaces, 413 for huge bodies,
dryRun honoured; and exec cannot change the host's files."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import urllib.error
import urllib.request
from typing import Any

import kubernetes
import pytest
import yaml

from conformance.cluster.embedded import EmbeddedCluster
from tests.cluster.conftest import Kube, agnhost_pod

pytestmark = pytest.mark.cluster
NP = "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies"
PODS = "/api/v1/namespaces/default/pods"


def call(
    cluster: EmbeddedCluster,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> tuple[int, dict[str, Any]]:
    """(status, decoded body) of one request with the cluster's token unless ``headers``."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        cluster.server + path,
        data=data,
        method=method,
        headers={
            **(cluster.info.headers() if headers is None else headers),
            "Content-Type": content_type,
        },
    )
    try:
        with urllib.request.urlopen(
            request, timeout=60, context=cluster.info.ssl_context()
        ) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.mark.parametrize("path", ["/api", "/apis", "/version", "/embedded/v1/status", PODS])
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-the-token"}, {"Authorization": "Basic YWRtaW46YWRtaW4="}],
    ids=["none", "wrong-bearer", "basic"],
)
def test_without_the_token_every_path_is_401(
    cluster: EmbeddedCluster, path: str, headers: dict[str, str]
) -> None:
    status, body = call(cluster, "GET", path, headers=headers)
    assert status == 401
    assert body["reason"] == "Unauthorized" and body["kind"] == "Status"


def test_with_the_token_discovery_answers(cluster: EmbeddedCluster) -> None:
    status, body = call(cluster, "GET", "/api")
    assert status == 200 and body["versions"] == ["v1"]
    # The scheme is case-insensitive, as in kube-apiserver: the Python client's in-cluster
    # loader sends "bearer <token>".
    lower = {"Authorization": f"bearer {cluster.info.token}"}
    assert call(cluster, "GET", "/api", headers=lower)[0] == 200
    prefix = {"Authorization": f"Bearer {cluster.info.token[:-1]}"}
    assert call(cluster, "GET", "/api", headers=prefix)[0] == 401


def test_plain_http_is_not_served(cluster: EmbeddedCluster) -> None:
    assert cluster.server.startswith("https://127.0.0.1:")
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(
            "http://" + cluster.server.removeprefix("https://") + "/api", timeout=5
        )


def test_kubeconfig_and_state_are_private(cluster: EmbeddedCluster) -> None:
    assert stat.S_IMODE(os.stat(cluster.info.state_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(cluster.kubeconfig).st_mode) == 0o600
    with open(cluster.kubeconfig, encoding="utf-8") as fh:
        config = yaml.safe_load(fh)
    assert config["users"][0]["user"]["token"] == cluster.info.token
    assert len(cluster.info.token) >= 32
    assert config["clusters"][0]["cluster"]["certificate-authority-data"]


def test_kubectl_works_with_the_kubeconfig(cluster: EmbeddedCluster) -> None:
    out = subprocess.run(
        ["kubectl", "--kubeconfig", cluster.kubeconfig, "get", "namespaces", "-o", "name"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "namespace/kube-system" in out.split()


def deep(levels: int) -> bytes:
    return b'{"metadata": {"name": "deep"}, "spec": {"x": ' + b"[" * levels + b"]" * levels + b"}}"


POLICY = {"metadata": {"name": "shape"}, "spec": {"podSelector": {}}}
MALFORMED = [
    ("metadata a string", NP, {**POLICY, "metadata": "x"}, "NetworkPolicy.metadata of type object"),
    (
        "name a number",
        NP,
        {**POLICY, "metadata": {"name": 5}},
        "NetworkPolicy.metadata.name of type string",
    ),
    (
        "labels a list",
        NP,
        {**POLICY, "metadata": {"name": "l", "labels": ["a"]}},
        "NetworkPolicy.metadata.labels of type map",
    ),
    (
        "label value a number",
        NP,
        {**POLICY, "metadata": {"name": "l", "labels": {"a": 1}}},
        "NetworkPolicy.metadata.labels of type string",
    ),
    ("spec a list", NP, {**POLICY, "spec": [{"podSelector": {}}]}, "NetworkPolicy.spec of type"),
    ("spec an empty list", NP, {**POLICY, "spec": []}, "NetworkPolicy.spec of type"),
    ("pod spec a list", PODS, {"metadata": {"name": "p"}, "spec": []}, "Pod.spec of type"),
    (
        "containers a string",
        PODS,
        {"metadata": {"name": "p"}, "spec": {"containers": "x"}},
        "Pod.spec.containers of type []",
    ),
    (
        "namespace labels a list",
        "/api/v1/namespaces",
        {"metadata": {"name": "n", "labels": ["a"]}},
        "Namespace.metadata.labels of type map",
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "text"), [pytest.param(*m[1:], id=m[0]) for m in MALFORMED]
)
def test_malformed_objects_are_400(
    cluster: EmbeddedCluster, path: str, body: dict[str, Any], text: str
) -> None:
    status, answer = call(cluster, "POST", path, body)
    assert (status, answer["reason"]) == (400, "BadRequest"), answer
    assert "json: cannot unmarshal" in answer["message"] and text in answer["message"]


@pytest.mark.parametrize("path", [NP, PODS])
def test_json_nested_100k_deep_is_400(cluster: EmbeddedCluster, path: str) -> None:
    status, answer = call(cluster, "POST", path, raw=deep(100_000))
    assert (status, answer["reason"]) == (400, "BadRequest")
    assert "exceeded max depth" in answer["message"]


def test_malformed_patches_are_400(cluster: EmbeddedCluster) -> None:
    assert call(cluster, "POST", NP, {**POLICY, "metadata": {"name": "patched"}})[0] == 201
    merge = "application/merge-patch+json"
    deep_patch = b'{"spec": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_000 + b"}"
    for raw in (
        deep_patch,
        json.dumps({"metadata": {"labels": ["a"]}}).encode(),
        json.dumps({"spec": [1]}).encode(),
    ):
        status, answer = call(cluster, "PATCH", NP + "/patched", raw=raw, content_type=merge)
        assert (status, answer["reason"]) == (400, "BadRequest"), answer


def test_bodies_over_3_mib_are_413(cluster: EmbeddedCluster) -> None:
    big = {**POLICY, "metadata": {"name": "big", "annotations": {"a": "x" * (4 * 1024 * 1024)}}}
    status, answer = call(cluster, "POST", NP, big)
    assert (status, answer["reason"]) == (413, "RequestEntityTooLarge")
    status, _ = call(cluster, "POST", NP, raw=b"x" * (100 * 1024 * 1024))
    assert status == 413
    # Just under the limit is still an object like any other.
    fits = {**POLICY, "metadata": {"name": "fits", "annotations": {"a": "x" * (2 * 1024 * 1024)}}}
    assert call(cluster, "POST", NP, fits)[0] == 201


def test_dry_run_deletes_nothing(cluster: EmbeddedCluster) -> None:
    call(cluster, "POST", "/api/v1/namespaces", {"metadata": {"name": "dry"}})
    path = "/apis/networking.k8s.io/v1/namespaces/dry/networkpolicies"
    for name in ("a", "b"):
        assert call(cluster, "POST", path, {**POLICY, "metadata": {"name": name}})[0] == 201
    status, listed = call(cluster, "DELETE", path + "?dryRun=All")
    assert status == 200 and len(listed["items"]) == 2
    assert call(cluster, "DELETE", path + "/a?dryRun=All")[0] == 200
    assert len(call(cluster, "GET", path)[1]["items"]) == 2
    assert call(cluster, "DELETE", path + "?dryRun=Maybe")[0] == 400
    assert call(cluster, "DELETE", path)[0] == 200
    assert call(cluster, "GET", path)[1]["items"] == []


@pytest.mark.parametrize("name", ["default", "kube-system", "kube-public"])
def test_system_namespaces_cannot_be_deleted(cluster: EmbeddedCluster, name: str) -> None:
    status, answer = call(cluster, "DELETE", f"/api/v1/namespaces/{name}")
    assert (status, answer["reason"]) == (403, "Forbidden")
    assert call(cluster, "DELETE", "/api/v1/namespaces?dryRun=All")[0] == 405
    assert call(cluster, "DELETE", "/api/v1/namespaces")[0] == 405
    assert call(cluster, "GET", f"/api/v1/namespaces/{name}")[0] == 200


def test_exec_cannot_write_the_hosts_files_and_rejects_nul(
    cluster: EmbeddedCluster, kube: Kube
) -> None:
    kube.namespace("ro")
    kube.pods("ro", [agnhost_pod("a")])
    marker = f"/root/netpol-conformance-ro-{os.getpid()}"
    code, out, _ = kube.exec(
        "ro", "a", ["sh", "-c", f"touch {marker}; echo $?; echo scratch > /tmp/s && cat /tmp/s"]
    )
    assert code == 0 and out.split() == ["1", "scratch"]
    assert not os.path.exists(marker)
    with pytest.raises(kubernetes.client.ApiException) as exc:  # 400 instead of the upgrade
        kube.exec("ro", "a", ["echo", "a\x00b"])
    assert "Handshake status 400 Bad Request" in str(exc.value)
    # The API still serves after the refused exec.
    assert call(cluster, "GET", "/api/v1/namespaces/ro")[0] == 200
