"""Fixtures for the embedded-cluster tests: unique instances, clients, agnhost pods, exec."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conformance.cluster.config import ClusterOptions
from conformance.cluster.embedded import EmbeddedCluster

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"
_counter = itertools.count()


def unique_instance(tag: str = "t") -> str:
    """An instance name no other xdist worker or test uses."""
    return f"{tag}{os.getpid() % 100000}x{next(_counter)}"


def agnhost_container(port: int, proto: str) -> dict[str, Any]:
    """A container exactly as upstream's netpol e2e model builds it."""
    name = f"cont-{port}-{proto.lower()}"
    if proto == "SCTP":
        cmd = ["/agnhost", "porter"]
        env = [{"name": f"SERVE_SCTP_PORT_{port}", "value": "foo"}]
    else:
        cmd = [
            "/agnhost",
            "serve-hostname",
            f"--{proto.lower()}",
            "--http=false",
            "--port",
            str(port),
        ]
        env = []
    return {
        "name": name,
        "image": AGNHOST,
        "command": cmd,
        "env": env,
        "ports": [
            {"containerPort": port, "name": f"serve-{port}-{proto.lower()}", "protocol": proto}
        ],
    }


def agnhost_pod(
    name: str,
    labels: dict[str, str] | None = None,
    ports: tuple[tuple[int, str], ...] = ((80, "TCP"), (81, "TCP"), (80, "UDP"), (81, "UDP")),
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels if labels is not None else {"pod": name}},
        "spec": {"containers": [agnhost_container(p, proto) for p, proto in ports]},
    }


class Kube:
    """Official-client handles on one embedded cluster plus helpers the tests share."""

    def __init__(self, cluster: EmbeddedCluster) -> None:
        import kubernetes

        self.cluster = cluster
        self.api = kubernetes.config.new_client_from_config(cluster.kubeconfig, cluster.context)
        # Any: the tests send plain dicts (which the client accepts where it is annotated with
        # model classes) and read fields the server has filled (annotated Optional).
        self.core: Any = kubernetes.client.CoreV1Api(self.api)
        self.net: Any = kubernetes.client.NetworkingV1Api(self.api)
        self.custom: Any = kubernetes.client.CustomObjectsApi(self.api)

    def namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        self.core.create_namespace({"metadata": {"name": name, "labels": labels or {}}})

    def pods(
        self, namespace: str, pods: list[dict[str, Any]], timeout: float = 20
    ) -> dict[str, str]:
        """Create pods and wait until Running; returns name -> pod IP."""
        for pod in pods:
            self.core.create_namespaced_pod(namespace, pod)
        return self.wait_running(namespace, [p["metadata"]["name"] for p in pods], timeout)

    def wait_running(self, namespace: str, names: list[str], timeout: float = 20) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            ips: dict[str, str] = {}
            for pod in self.core.list_namespaced_pod(namespace).items:
                if pod.metadata.name in names and pod.status.phase == "Running":
                    ips[pod.metadata.name] = pod.status.pod_ip
            if len(ips) == len(names):
                return ips
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"pods not running after {timeout}s: {sorted(set(names) - set(ips))}"
                )
            time.sleep(0.05)

    def policy(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name},
            "spec": spec,
        }
        self.net.create_namespaced_network_policy(namespace, body)

    def exec(
        self, namespace: str, pod: str, command: list[str], timeout: float = 30
    ) -> tuple[int | None, str, str]:
        """Exec through the official client's WebSocket stream; returns (exit code, stdout, stderr)."""
        from kubernetes.stream import stream

        resp = stream(
            self.core.connect_get_namespaced_pod_exec,
            pod,
            namespace,
            command=command,
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
            _preload_content=False,
        )
        resp.run_forever(timeout=timeout)
        out, err = resp.read_stdout(), resp.read_stderr()
        code = resp.returncode
        resp.close()
        return code, out, err

    def connect(
        self, namespace: str, pod: str, target: str, proto: str = "tcp", timeout: str = "1s"
    ) -> tuple[int | None, str]:
        code, _, err = self.exec(
            namespace,
            pod,
            ["/agnhost", "connect", target, f"--protocol={proto}", f"--timeout={timeout}"],
        )
        return code, err


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmbeddedCluster]:
    """One embedded cluster per test module (and xdist worker), with two external hosts."""
    from conformance.cluster.config import ExternalHost

    options = ClusterOptions(
        instance=unique_instance("m"),
        externals=(ExternalHost("web", "203.0.113.10"), ExternalHost("db", "198.51.100.20")),
    )
    with EmbeddedCluster(options) as c:
        yield c


@pytest.fixture(scope="module")
def kube(cluster: EmbeddedCluster) -> Kube:
    return Kube(cluster)
