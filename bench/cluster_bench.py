"""Embedded cluster speed figures against the targets of issues 4 and 14; prints figures and ratios.

Run as root: ``python bench/cluster_bench.py``. Each line: measured value, target, ratio
(measured / target; below 1.0 meets the target). Nothing is asserted: this is a measurement.
First, per node count (``--node-counts 1,2,4``): start time, and the time for 9 pods spread over
the nodes to be Running, side by side with the 1-node figures; then the scale figures on a
default (2-node) cluster unless ``--nodes-only``.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kubernetes
from kubernetes.stream import stream

from conformance.cluster.config import ClusterOptions, ExternalHost
from conformance.cluster.embedded import EmbeddedCluster

IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.53"


def pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    containers = []
    for port in (80, 81):
        for proto in ("TCP", "UDP"):
            containers.append(
                {
                    "name": f"cont-{port}-{proto.lower()}",
                    "image": IMAGE,
                    "command": [
                        "/agnhost",
                        "serve-hostname",
                        f"--{proto.lower()}",
                        "--http=false",
                        "--port",
                        str(port),
                    ],
                    "ports": [
                        {
                            "containerPort": port,
                            "name": f"serve-{port}-{proto.lower()}",
                            "protocol": proto,
                        }
                    ],
                }
            )
    return {"metadata": {"name": name, "labels": labels}, "spec": {"containers": containers}}


def report(what: str, value: float, target: float, unit: str = "s") -> None:
    print(
        f"{what:<58} {value:8.3f} {unit:<3} target {target:7.3f} {unit:<3} ratio {value / target:5.2f}"
    )


def timed(func: Callable[[], Any]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def wait_ready(core: Any, namespaces: list[str], count: int) -> None:
    while True:
        ready = 0
        for ns in namespaces:
            for p in core.list_namespaced_pod(ns).items:
                if p.status.phase == "Running":
                    ready += 1
        if ready >= count:
            return
        time.sleep(0.02)


def node_sweep(counts: list[int], rounds: int) -> None:
    """Start, 9-pods-Running and stop times per node count (best of ``rounds``), with ratios to
    the first count: what extra nodes cost."""
    rows: dict[int, tuple[float, float, float]] = {}
    for count in counts:
        best = (float("inf"), float("inf"), float("inf"))
        for r in range(rounds):
            cluster = EmbeddedCluster(
                ClusterOptions(instance=f"benchn{os.getpid() % 10000}x{count}x{r}", nodes=count)
            )
            up = timed(cluster.start)
            try:
                api = kubernetes.config.new_client_from_config(cluster.kubeconfig, cluster.context)
                core: Any = kubernetes.client.CoreV1Api(api)
                for ns in "xyz":
                    core.create_namespace({"metadata": {"name": ns}})

                def nine(c: Any = core) -> None:
                    for ns in "xyz":
                        for name in "abc":
                            c.create_namespaced_pod(ns, pod(name, {"pod": name}))
                    wait_ready(c, list("xyz"), 9)

                ready = timed(nine)
                placed = {p.spec.node_name for p in core.list_pod_for_all_namespaces().items}
                assert len(placed) == count, f"pods ran on {len(placed)} of {count} nodes"
            finally:
                down = timed(cluster.stop)
            best = (min(best[0], up), min(best[1], ready), min(best[2], down))
        rows[count] = best
    base = rows[counts[0]]
    print(
        f"{'nodes':>5} {'up s':>7} {'9 pods Running s':>17} {'down s':>7}   ratios to {counts[0]} node(s)"
    )
    for count, (up, ready, down) in rows.items():
        print(
            f"{count:>5} {up:7.3f} {ready:17.3f} {down:7.3f}   "
            f"up {up / base[0]:4.2f}  pods {ready / base[1]:4.2f}  down {down / base[2]:4.2f}"
        )
    if 2 in rows:
        report("up with 2 nodes (start to API serving)", rows[2][0], 2.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--policies", type=int, default=100)
    parser.add_argument("--execs", type=int, default=500)
    parser.add_argument("--node-counts", default="1,2,4", help="node counts to compare")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per node count (best kept)")
    parser.add_argument("--nodes-only", action="store_true", help="only the node-count sweep")
    args = parser.parse_args()
    node_sweep([int(c) for c in args.node_counts.split(",")], args.rounds)
    if args.nodes_only:
        return 0
    options = ClusterOptions(
        instance=f"bench{os.getpid() % 10000}", externals=(ExternalHost("web", "203.0.113.10"),)
    )
    cluster = EmbeddedCluster(options)
    report("up (start to API serving)", timed(cluster.start), 2.0)
    try:
        api = kubernetes.config.new_client_from_config(cluster.kubeconfig, cluster.context)
        # Any: plain dicts go where the client is annotated with model classes (it accepts both).
        core: Any = kubernetes.client.CoreV1Api(api)
        net: Any = kubernetes.client.NetworkingV1Api(api)
        for ns in "xyz":
            core.create_namespace({"metadata": {"name": ns}})

        def nine() -> None:
            for ns in "xyz":
                for name in "abc":
                    core.create_namespaced_pod(ns, pod(name, {"pod": name}))
            wait_ready(core, list("xyz"), 9)

        report("9 pods (x,y,z/a,b,c; 4 ports each): create to all Running", timed(nine), 3.0)

        core.create_namespace({"metadata": {"name": "scale"}})

        def many() -> None:
            with ThreadPoolExecutor(8) as pool:
                list(
                    pool.map(
                        lambda i: core.create_namespaced_pod(
                            "scale", pod(f"p{i}", {"pod": f"p{i}", "grp": str(i % 10)})
                        ),
                        range(args.pods),
                    )
                )
            wait_ready(core, ["scale"], args.pods)

        report(f"{args.pods} pods: create to all Running", timed(many), 20.0)

        for i in range(args.policies):
            net.create_namespaced_network_policy(
                "scale",
                {
                    "metadata": {"name": f"np{i}"},
                    "spec": {
                        "podSelector": {"matchLabels": {"grp": str(i % 10)}},
                        "ingress": [
                            {
                                "from": [
                                    {"podSelector": {"matchLabels": {"grp": str((i + 1) % 10)}}},
                                    {
                                        "ipBlock": {
                                            "cidr": "10.0.0.0/8",
                                            "except": [f"10.{i}.0.0/16"],
                                        }
                                    },
                                ],
                                "ports": [
                                    {"port": 80},
                                    {"port": "serve-81-udp", "protocol": "UDP"},
                                ],
                            }
                        ],
                        "egress": [
                            {
                                "to": [{"namespaceSelector": {}}],
                                "ports": [{"port": 1000 + i, "endPort": 2000 + i}],
                            }
                        ],
                    },
                },
            )
        change = timed(
            lambda: net.create_namespaced_network_policy(
                "scale",
                {
                    "metadata": {"name": "extra"},
                    "spec": {
                        "podSelector": {"matchLabels": {"grp": "3"}},
                        "policyTypes": ["Egress"],
                    },
                },
            )
        )
        stats = cluster.status()
        print(
            f"  (rules: {stats['lastRules']} allow rules; compile {stats['lastCompileSeconds'] * 1000:.1f} ms, nft apply {stats['lastApplySeconds'] * 1000:.1f} ms)"
        )
        report(
            f"policy change enforced ({args.pods} pods, {args.policies + 1} policies)",
            change * 1000,
            100.0,
            "ms",
        )
        relabel = timed(
            lambda: core.patch_namespaced_pod("p1", "scale", {"metadata": {"labels": {"grp": "5"}}})
        )
        report("pod relabel enforced (same scale)", relabel * 1000, 100.0, "ms")

        ip = core.read_namespaced_pod("a", "x").status.pod_ip
        local = threading.local()
        errors: list[str] = []

        def probe(_: int) -> None:
            if not hasattr(local, "core"):
                local.core = kubernetes.client.CoreV1Api(
                    kubernetes.config.new_client_from_config(cluster.kubeconfig, cluster.context)
                )
            resp = stream(
                local.core.connect_get_namespaced_pod_exec,
                "b",
                "x",
                command=["/agnhost", "connect", f"{ip}:80", "--protocol=tcp", "--timeout=3s"],
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
                _preload_content=False,
            )
            resp.run_forever(timeout=30)
            if resp.returncode != 0:
                errors.append(resp.read_stderr())
            resp.close()

        def concurrent() -> None:
            with ThreadPoolExecutor(args.execs) as pool:
                list(pool.map(probe, range(args.execs)))

        took = timed(concurrent)
        print(
            f"{args.execs} exec probes, all at once: {took:.2f} s, {args.execs / took:.0f}/s, errors {len(errors)}"
        )
        batch = (
            " ".join(f"/agnhost connect {ip}:{80 + (i % 2)} --timeout=3s & " for i in range(50))
            + "wait"
        )

        def sh_batch() -> None:
            resp = stream(
                core.connect_get_namespaced_pod_exec,
                "b",
                "x",
                command=["sh", "-c", batch],
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
                _preload_content=False,
            )
            resp.run_forever(timeout=60)
            resp.close()

        took = timed(sh_batch)
        print(f"one sh -c batch of 50 parallel /agnhost connect: {took:.2f} s")
    finally:
        report("down", timed(cluster.stop), 2.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
