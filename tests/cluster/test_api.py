"""The embedded API through the official client and kubectl: shapes, errors, selectors, exec."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes
import kubernetes.watch
import pytest

from conformance.cluster.embedded import EmbeddedCluster
from tests.cluster.conftest import AGNHOST, Kube, agnhost_pod

pytestmark = pytest.mark.cluster
KUBECTL = "/usr/bin/kubectl"


def _err(exc: kubernetes.client.ApiException) -> dict[str, Any]:
    assert exc.body, "the API server answers every error with a Status object"
    body: dict[str, Any] = json.loads(exc.body)
    return body


def test_discovery_and_version(kube: Kube) -> None:
    assert kubernetes.client.VersionApi(kube.api).get_code().minor == "32"
    groups = {
        g.name: [v.version for v in g.versions]
        for g in kubernetes.client.ApisApi(kube.api).get_api_versions().groups
    }
    assert groups["networking.k8s.io"] == ["v1"]
    assert set(groups["policy.networking.k8s.io"]) == {"v1alpha1", "v1alpha2"}
    names = {r.name for r in kube.core.get_api_resources().resources}
    assert {"pods", "pods/exec", "namespaces"} <= names


def test_namespace_gets_metadata_name_label(kube: Kube) -> None:
    kube.namespace("lbl", {"team": "a"})
    ns = kube.core.read_namespace("lbl")
    assert ns.metadata.labels == {"team": "a", "kubernetes.io/metadata.name": "lbl"}
    assert ns.status.phase == "Active"


def test_errors_404_409_422(kube: Kube) -> None:
    with pytest.raises(kubernetes.client.ApiException) as nf:
        kube.core.read_namespaced_pod("nope", "default")
    assert nf.value.status == 404 and _err(nf.value)["reason"] == "NotFound"
    kube.namespace("errs")
    kube.policy("errs", "p", {"podSelector": {}})
    with pytest.raises(kubernetes.client.ApiException) as dup:
        kube.policy("errs", "p", {"podSelector": {}})
    assert dup.value.status == 409 and _err(dup.value)["reason"] == "AlreadyExists"
    with pytest.raises(kubernetes.client.ApiException) as bad:
        kube.policy(
            "errs",
            "bad",
            {
                "podSelector": {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
                "ingress": [{"ports": [{"port": "http", "endPort": 90}, {"port": 70000}]}],
                "policyTypes": ["Sideways"],
            },
        )
    body = _err(bad.value)
    assert bad.value.status == 422 and body["reason"] == "Invalid"
    fields = {c["field"] for c in body["details"]["causes"]}
    assert fields == {
        "spec.podSelector.matchExpressions[0].values",
        "spec.ingress[0].ports[0].endPort",
        "spec.ingress[0].ports[1].port",
        "spec.policyTypes[0]",
    }


def test_unknown_resource_is_404(cluster: EmbeddedCluster) -> None:
    for path in (
        "/apis/networking.k8s.io/v1/namespaces/default/widgets",
        "/apis/example.com/v1/things",
        "/api/v2",
    ):
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(
                urllib.request.Request(cluster.server + path, headers=cluster.info.headers()),
                timeout=5,
                context=cluster.info.ssl_context(),
            )
        assert exc.value.code == 404
        assert json.loads(exc.value.read())["reason"] == "NotFound"


def test_list_with_label_selectors_and_patch(kube: Kube) -> None:
    kube.namespace("sel")
    kube.pods(
        "sel", [agnhost_pod("a", {"app": "web", "tier": "1"}), agnhost_pod("b", {"app": "db"})]
    )

    def names(sel: str) -> list[str]:
        return sorted(
            p.metadata.name for p in kube.core.list_namespaced_pod("sel", label_selector=sel).items
        )

    assert names("app=web") == ["a"]
    assert names("app in (web,db)") == ["a", "b"]
    assert names("app!=web") == ["b"]
    assert names("tier") == ["a"]
    assert names("!tier") == ["b"]
    kube.core.patch_namespaced_pod("b", "sel", {"metadata": {"labels": {"tier": "2"}}})
    assert names("tier") == ["a", "b"]
    kube.core.patch_namespaced_pod(
        "b",
        "sel",
        [{"op": "remove", "path": "/metadata/labels/tier"}],
        _content_type="application/json-patch+json",
    )
    assert names("tier") == ["a"]
    kube.core.patch_namespaced_pod(
        "b",
        "sel",
        {"metadata": {"labels": {"app": None}}},
        _content_type="application/merge-patch+json",
    )
    assert kube.core.read_namespaced_pod("b", "sel").metadata.labels == {}


def test_pod_status_shape(kube: Kube) -> None:
    kube.namespace("status")
    ip = kube.pods("status", [agnhost_pod("a")])["a"]
    pod = kube.core.read_namespaced_pod("a", "status")
    assert pod.status.pod_ip == ip and ip.startswith("10.244.")
    ready = [c for c in pod.status.conditions if c.type == "Ready"]
    assert ready[0].status == "True"
    assert all(cs.ready for cs in pod.status.container_statuses)


def test_unemulatable_pod_fails_with_reason(kube: Kube) -> None:
    kube.namespace("failing")
    pod = agnhost_pod("a")
    pod["spec"]["containers"][0]["image"] = "nginx:1.27"
    kube.core.create_namespaced_pod("failing", pod)
    cmd = agnhost_pod("b")
    cmd["spec"]["containers"][0]["command"] = ["/bin/sleep", "1000"]
    kube.core.create_namespaced_pod("failing", cmd)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pods = {p.metadata.name: p.status for p in kube.core.list_namespaced_pod("failing").items}
        if all(s.phase == "Failed" for s in pods.values()):
            break
        time.sleep(0.05)
    assert (
        pods["a"].phase == "Failed"
        and "nginx:1.27" in pods["a"].message
        and "cannot be emulated" in pods["a"].message
    )
    assert pods["b"].phase == "Failed" and "/bin/sleep" in pods["b"].message


def test_admin_policy_kinds_are_stored(kube: Kube) -> None:
    anp = {
        "apiVersion": "policy.networking.k8s.io/v1alpha1",
        "kind": "AdminNetworkPolicy",
        "metadata": {"name": "deny-x"},
        "spec": {
            "priority": 10,
            # AdminNetworkPolicies are enforced: select nothing so other tests here are unaffected.
            "subject": {"namespaces": {"matchLabels": {"no-such": "namespace"}}},
            "ingress": [{"action": "Deny", "from": [{"namespaces": {}}]}],
        },
    }
    kube.custom.create_cluster_custom_object(
        "policy.networking.k8s.io", "v1alpha1", "adminnetworkpolicies", anp
    )
    got = kube.custom.get_cluster_custom_object(
        "policy.networking.k8s.io", "v1alpha1", "adminnetworkpolicies", "deny-x"
    )
    assert got["spec"]["priority"] == 10
    banp = {
        "apiVersion": "policy.networking.k8s.io/v1alpha1",
        "kind": "BaselineAdminNetworkPolicy",
        "metadata": {"name": "other"},
        "spec": {"subject": {"namespaces": {}}},
    }
    with pytest.raises(kubernetes.client.ApiException) as exc:
        kube.custom.create_cluster_custom_object(
            "policy.networking.k8s.io", "v1alpha1", "baselineadminnetworkpolicies", banp
        )
    assert exc.value.status == 422
    cnp = {
        "apiVersion": "policy.networking.k8s.io/v1alpha2",
        "kind": "ClusterNetworkPolicy",
        "metadata": {"name": "c1"},
        "spec": {"tier": "Admin", "priority": 5, "subject": {"namespaces": {}}},
    }
    kube.custom.create_cluster_custom_object(
        "policy.networking.k8s.io", "v1alpha2", "clusternetworkpolicies", cnp
    )
    items = kube.custom.list_cluster_custom_object(
        "policy.networking.k8s.io", "v1alpha2", "clusternetworkpolicies"
    )["items"]
    assert [i["metadata"]["name"] for i in items] == ["c1"]


def test_exec_agnhost_connect_semantics(kube: Kube) -> None:
    kube.namespace("exec")
    ports = ((80, "TCP"), (80, "UDP"), (81, "SCTP"))
    ip = kube.pods("exec", [agnhost_pod("a", ports=ports)])["a"]
    assert kube.connect("exec", "a", "203.0.113.10:80") == (0, "")
    assert kube.connect("exec", "a", "203.0.113.10:80", "udp") == (0, "")
    assert kube.connect("exec", "a", "203.0.113.10:83") == (1, "REFUSED\n")
    code, err = kube.connect("exec", "a", "203.0.113.10:83", "udp")
    assert (
        code == 1
        and err.startswith("REFUSED: read udp 10.244.")
        and err.endswith("connection refused\n")
    )
    assert kube.connect("exec", "a", "no-such-host:80")[1].startswith("DNS: ")
    assert kube.connect("exec", "a", "10.244.0.1")[1].startswith("UNKNOWN: ")
    pod = kube.core.read_namespaced_pod("a", "exec")
    # This kernel has no SCTP: the pod reports its SCTP port unsupported and connect says why.
    if (
        pod.metadata.annotations
        and "embedded.netpol-conformance.io/unsupported-ports" in pod.metadata.annotations
    ):
        assert (
            pod.metadata.annotations["embedded.netpol-conformance.io/unsupported-ports"]
            == "81/SCTP"
        )
        assert kube.connect("exec", "a", f"{ip}:81", "sctp") == (
            1,
            "OTHER: protocol not supported\n",
        )


def test_exec_shell_batch_runs_parallel_probes(kube: Kube) -> None:
    kube.namespace("batch")
    ips = kube.pods("batch", [agnhost_pod("a"), agnhost_pod("b")])
    script = "\n".join(
        f'( r=$(/agnhost connect {t} --protocol={p} --timeout=5s 2>&1); echo "{t}/{p} $? ${{r%%:*}}" ) &'
        for t in (f"{ips['b']}:80", f"{ips['b']}:81", f"{ips['b']}:82", "203.0.113.10:80")
        for p in ("tcp", "udp")
    )
    code, out, err = kube.exec("batch", "a", ["sh", "-c", script + "\nwait; exit 7"])
    assert code == 7, err
    lines = sorted(out.splitlines())
    assert len(lines) == 8
    results = {line.split()[0]: line.split()[1:] for line in lines}
    assert results[f"{ips['b']}:80/tcp"] == ["0"], out
    assert results[f"{ips['b']}:82/tcp"] == ["1", "REFUSED"]
    assert results[f"{ips['b']}:82/udp"] == ["1", "REFUSED"]
    assert results["203.0.113.10:80/udp"] == ["0"], out


def test_exec_takes_a_command_longer_than_aiohttp_default_line(kube: Kube) -> None:
    """An exec's command travels in the URL: a batch of hundreds of probes is tens of KB, which
    kube-apiserver accepts (1 MiB of headers) and aiohttp's default 8 KiB request line does not."""
    kube.namespace("longexec")
    kube.pods("longexec", [agnhost_pod("a")])
    words = [f"word{i:05d}" for i in range(4000)]  # about 40 KB of arguments
    code, out, err = kube.exec("longexec", "a", ["sh", "-c", 'echo "$#"', "sh", *words])
    assert (code, out.strip()) == (0, str(len(words))), err


def test_exec_many_concurrent(kube: Kube) -> None:
    """500 exec streams at once through the official client, none lost.

    ``kubernetes.stream.stream`` swaps ``ApiClient.call_api`` while it runs, so concurrent
    streams need one ApiClient per thread.
    """
    import threading
    from concurrent.futures import ThreadPoolExecutor

    kube.namespace("many")
    ip = kube.pods("many", [agnhost_pod("a")])["a"]
    local = threading.local()

    def probe(_: int) -> tuple[int | None, str]:
        if not hasattr(local, "kube"):
            local.kube = Kube(kube.cluster)
        mine: Kube = local.kube
        return mine.connect("many", "a", f"{ip}:80")

    with ThreadPoolExecutor(100) as pool:
        results = list(pool.map(probe, range(500)))
    assert results.count((0, "")) == 500


@pytest.fixture()
def kubectl(cluster: EmbeddedCluster, tmp_path: Any) -> Any:
    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        # A private discovery cache: nothing is left in the user's ~/.kube.
        env = {
            **os.environ,
            "KUBECONFIG": cluster.kubeconfig,
            "KUBECACHEDIR": str(tmp_path / "cache"),
        }
        return subprocess.run(
            [KUBECTL, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    if not os.path.exists(KUBECTL):
        pytest.skip("kubectl is not installed")
    return run


def test_kubectl_apply_get_exec_delete(kubectl: Any, kube: Kube) -> None:
    manifest = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: kctl, labels: {{team: k}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: a, namespace: kctl, labels: {{pod: a}}}}
spec:
  containers:
  - name: c80
    image: {AGNHOST}
    command: ["/agnhost", "serve-hostname", "--tcp", "--http=false", "--port", "80"]
    ports: [{{containerPort: 80, name: serve-80-tcp}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: deny, namespace: kctl}}
spec:
  podSelector: {{}}
  policyTypes: [Egress]
"""
    res = kubectl("apply", "-f", "-", stdin=manifest)
    assert res.returncode == 0, res.stderr
    assert "networkpolicy.networking.k8s.io/deny created" in res.stdout
    kube.wait_running("kctl", ["a"])
    res = kubectl("get", "pods", "-n", "kctl", "-o", "wide")
    assert res.returncode == 0 and "Running" in res.stdout and "10.244." in res.stdout
    res = kubectl("get", "netpol", "-n", "kctl", "-o", "json")
    assert json.loads(res.stdout)["items"][0]["spec"]["policyTypes"] == ["Egress"]
    res = kubectl(
        "exec", "-n", "kctl", "a", "--", "/agnhost", "connect", "203.0.113.10:80", "--timeout=1s"
    )
    assert res.returncode == 1 and "TIMEOUT" in res.stderr
    res = kubectl("exec", "-n", "kctl", "a", "--", "sh", "-c", "echo out; exit 3")
    assert res.returncode == 3 and res.stdout == "out\n"
    # Re-apply with a change: kubectl sends a strategic merge patch.
    res = kubectl(
        "apply",
        "-f",
        "-",
        stdin=manifest.replace("policyTypes: [Egress]", "policyTypes: [Ingress]"),
    )
    assert (
        res.returncode == 0 and "networkpolicy.networking.k8s.io/deny configured" in res.stdout
    ), res.stderr
    res = kubectl(
        "exec", "-n", "kctl", "a", "--", "/agnhost", "connect", "203.0.113.10:80", "--timeout=1s"
    )
    assert res.returncode == 0, res.stderr
    res = kubectl(
        "apply",
        "-f",
        "-",
        stdin="apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bad, namespace: kctl}\nspec: {podSelector: {}, policyTypes: [Up]}\n",
    )
    assert res.returncode != 0 and 'Unsupported value: "Up"' in res.stderr
    res = kubectl("label", "pod", "a", "-n", "kctl", "extra=yes")
    assert res.returncode == 0, res.stderr
    res = kubectl("delete", "namespace", "kctl")
    assert res.returncode == 0, res.stderr
    res = kubectl("get", "namespace", "kctl")
    assert res.returncode != 0 and "NotFound" in res.stderr


def test_exec_process_is_killed_when_the_client_goes_away(kube: Kube) -> None:
    from kubernetes.stream import stream

    kube.namespace("gone")
    kube.pods("gone", [agnhost_pod("a")])
    resp = stream(
        kube.core.connect_get_namespaced_pod_exec,
        "a",
        "gone",
        command=["sh", "-c", "echo started; exec sleep 300"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    deadline = time.monotonic() + 10
    while "started" not in resp.read_stdout(timeout=1) and time.monotonic() < deadline:
        pass

    def sleepers() -> list[str]:
        out = []
        for pid in os.listdir("/proc"):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    if fh.read() == b"sleep\x00300\x00":
                        out.append(pid)
            except OSError:
                continue
        return out

    # "started" is printed just before `exec sleep`: wait for the exec to have happened.
    deadline = time.monotonic() + 10
    while not sleepers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sleepers()
    resp.close()
    # Generous: on a 2-core CI machine other workers saturate the CPU meanwhile.
    deadline = time.monotonic() + 30
    while sleepers() and time.monotonic() < deadline:
        time.sleep(0.05)
    left = sleepers()
    assert left == [], [Path(f"/proc/{pid}/status").read_text()[:300] for pid in left]


def test_watch_streams_events(kube: Kube) -> None:
    kube.namespace("watch")
    kube.pods("watch", [agnhost_pod("a")])
    seen: list[tuple[str, str]] = []
    w = kubernetes.watch.Watch()

    def delete_soon() -> None:
        time.sleep(0.5)
        kube.core.delete_namespaced_pod("a", "watch")

    import threading

    threading.Thread(target=delete_soon, daemon=True).start()
    for event in w.stream(kube.core.list_namespaced_pod, "watch", timeout_seconds=5):
        seen.append((event["type"], event["object"].metadata.name))
        if event["type"] == "DELETED":
            w.stop()
    assert seen[0] == ("ADDED", "a") and seen[-1] == ("DELETED", "a")


def test_kubectl_everyday_commands_work_or_say_why_not(kubectl: Any, kube: Kube) -> None:
    """get svc/events print the real API's columns, get all lists pods and services, auth can-i
    answers, logs prints what the emulated agnhost serves; what the embedded cluster cannot do
    (server-side apply, deployments) fails with a message that says so."""
    manifest = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: kday}}
---
apiVersion: v1
kind: Pod
metadata: {{name: a, namespace: kday, labels: {{pod: a}}}}
spec:
  containers:
  - name: c80
    image: {AGNHOST}
    args: ["serve-hostname", "--tcp", "--http=false", "--port", "80"]
    ports: [{{containerPort: 80}}]
---
apiVersion: v1
kind: Service
metadata: {{name: s-a, namespace: kday}}
spec:
  selector: {{pod: a}}
  ports: [{{name: tcp-80, port: 80, protocol: TCP}}, {{name: udp-53, port: 53, protocol: UDP}}]
---
apiVersion: v1
kind: Event
metadata: {{name: a.1, namespace: kday}}
involvedObject: {{kind: Pod, name: a, namespace: kday}}
reason: Tested
message: hello from the test
type: Normal
"""
    res = kubectl("apply", "-f", "-", stdin=manifest)
    assert res.returncode == 0, res.stderr
    kube.wait_running("kday", ["a"])
    svc = kubectl("get", "svc", "-n", "kday")
    assert svc.stdout.split("\n")[0].split() == [
        "NAME",
        "TYPE",
        "CLUSTER-IP",
        "EXTERNAL-IP",
        "PORT(S)",
        "AGE",
    ], svc.stdout
    assert "ClusterIP" in svc.stdout and "80/TCP,53/UDP" in svc.stdout
    ev = kubectl("get", "events", "-n", "kday")
    assert ev.stdout.split("\n")[0].split() == [
        "LAST",
        "SEEN",
        "TYPE",
        "REASON",
        "OBJECT",
        "MESSAGE",
    ]
    assert "pod/a" in ev.stdout and "hello from the test" in ev.stdout
    everything = kubectl("get", "all", "-n", "kday")
    assert "pod/a" in everything.stdout and "service/s-a" in everything.stdout, everything.stderr
    can = kubectl("auth", "can-i", "create", "pods", "-n", "kday")
    assert can.returncode == 0 and can.stdout.strip() == "yes", can.stderr
    ssa = kubectl("apply", "--server-side", "-f", "-", stdin=manifest)
    assert ssa.returncode != 0 and "server-side apply is not supported" in ssa.stderr
    dep = kubectl("create", "deployment", "d", "--image=x", "-n", "kday")
    assert dep.returncode != 0 and "does not serve deployments (apps/v1)" in dep.stderr
    logs = kubectl("logs", "a", "-n", "kday")
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == "serving TCP on port 80 (emulated agnhost)\n"
    stamped = kubectl("logs", "a", "-c", "c80", "--timestamps", "-n", "kday")
    assert stamped.stdout.split(" ", 1)[1] == logs.stdout and stamped.stdout[:2] == "20"
    wrong = kubectl("logs", "a", "-c", "nope", "-n", "kday")
    assert wrong.returncode != 0 and "container nope is not valid for pod a" in wrong.stderr
    explain = kubectl("explain", "networkpolicy.spec.ingress.from.ipBlock")
    assert explain.returncode == 0, explain.stderr
    assert "cidr" in explain.stdout and "except" in explain.stdout
    explain = kubectl("explain", "clusternetworkpolicies")
    assert explain.returncode == 0 and "Admin or the Baseline tier" in explain.stdout, (
        explain.stderr
    )
    assert kubectl("delete", "namespace", "kday").returncode == 0
