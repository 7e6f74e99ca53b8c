"""``analyze`` against a live API (the embedded cluster): read-only listing, matrix, scenario."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.56"


def _pod(ns: str, name: str, labels: dict[str, str], port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "serve",
                    "image": IMAGE,
                    "args": ["serve-hostname", "--tcp", "--http=false", "--port", str(port)],
                    "ports": [{"containerPort": port, "name": "serve", "protocol": "TCP"}],
                }
            ],
        },
    }


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conformance", "analyze", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_analyze_reads_the_embedded_cluster(tmp_path: Path) -> None:
    from conformance.cluster.config import ClusterOptions
    from conformance.cluster.dataplane import prefix_for
    from conformance.cluster.embedded import EmbeddedCluster
    from conformance.live.kube import KubeCluster

    instance = f"an{os.getpid() % 100000}"
    with EmbeddedCluster(ClusterOptions(instance=instance)) as ec:
        kube = KubeCluster(ec.kubeconfig, ec.context)
        for ns, labels in (("shop", {"team": "shop"}), ("ops", {})):
            kube.create(
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": ns, "labels": labels},
                }
            )
        kube.create(_pod("shop", "web", {"app": "web"}, 80))
        kube.create(_pod("shop", "db", {"app": "db"}, 5432))
        kube.create(_pod("ops", "tool", {"app": "tool"}, 80))
        kube.create(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": "db", "namespace": "shop"},
                "spec": {
                    "podSelector": {"matchLabels": {"app": "db"}},
                    "ingress": [
                        {
                            "from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                            "ports": [{"port": "serve"}],
                        }
                    ],
                },
            }
        )
        admin = "AdminNetworkPolicy" in kube.served_kinds()
        if admin:
            kube.create(
                {
                    "apiVersion": "policy.networking.k8s.io/v1alpha1",
                    "kind": "AdminNetworkPolicy",
                    "metadata": {"name": "ops-no-db"},
                    "spec": {
                        "priority": 5,
                        "subject": {"namespaces": {"matchLabels": {"team": "shop"}}},
                        "ingress": [
                            {
                                "name": "not-from-ops",
                                "action": "Deny",
                                "from": [
                                    {
                                        "namespaces": {
                                            "matchLabels": {"kubernetes.io/metadata.name": "ops"}
                                        }
                                    }
                                ],
                            }
                        ],
                    },
                }
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pods = [p for ns in ("shop", "ops") for p in kube.list_items("Pod", ns)]
            if len(pods) == 3 and all((p.get("status") or {}).get("podIP") for p in pods):
                break
            time.sleep(0.1)
        kube.close()
        base = ("--kubeconfig", ec.kubeconfig, "--context", ec.context)

        out = cli(*base, "--output", "json")
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        assert {"shop/web", "shop/db", "ops/tool"} <= set(doc["sources"])
        db = next(c for c in doc["cells"] if c["target"] == "shop/db")
        assert db["port"] == 5432 and db["allow"] == ["shop/web"]

        summary = cli(*base)
        assert summary.returncode == 0, summary.stderr
        assert "1 NetworkPolicy," in summary.stdout and "to shop (2 pods" in summary.stdout
        admin_count = f"{int(admin)} admin polic{'y' if int(admin) == 1 else 'ies'}"
        assert admin_count in summary.stdout
        assert "had no IP" not in summary.stdout  # real pod IPs were read

        explain = cli(*base, "--explain", "ops/tool", "shop/db", "5432/TCP")
        assert explain.returncode == 0, explain.stderr
        assert explain.stdout.startswith("ops/tool -> shop/db 5432/TCP: deny")
        if admin:
            web = cli(*base, "--explain", "ops/tool", "shop/web", "80/TCP")
            assert "AdminNetworkPolicy ops-no-db" in web.stdout, web.stdout

        scenario = tmp_path / "live.yaml"
        written = cli(*base, "--to-scenario", str(scenario), "--sample", "3")
        assert written.returncode == 0, written.stderr
        evaluated = subprocess.run(
            [sys.executable, "-m", "conformance", "evaluate", str(scenario)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr

        bad = cli("--kubeconfig", ec.kubeconfig, "--context", "nope")
        assert bad.returncode == 3 and bad.stderr.count("\n") == 1
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert prefix_for(instance) not in netns
