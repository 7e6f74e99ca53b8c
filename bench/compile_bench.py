"""Policy compile time without a cluster: the workload of cluster_bench.py, IPv4-only and dual-stack.

Why: the enforcer recompiles on every change, so compile time is part of every policy change's
latency; this measures it alone (no namespaces, no nft), repeatably, in a fraction of a second.
Run it from a checkout: ``PYTHONPATH=$PWD python3 bench/compile_bench.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from typing import Any

from conformance.cluster.compiler import ContainerPort, NamespaceView, PodView, compile_policies
from conformance.cluster.validation import default_network_policy

PORTS = tuple(
    ContainerPort(f"serve-{p}-{proto.lower()}", proto, p)
    for p in (80, 81)
    for proto in ("TCP", "UDP")
)


def world(count: int, dual: bool) -> tuple[list[PodView], list[NamespaceView]]:
    """``count`` pods in namespace ``scale`` plus x,y,z/a,b,c; dual: each also has an IPv6 address."""
    pods = []
    names = [(n, p, {"pod": p}) for n in "xyz" for p in "abc"]
    names += [("scale", f"p{i}", {"pod": f"p{i}", "grp": str(i % 10)}) for i in range(count)]
    for i, (ns, name, labels) in enumerate(names):
        v4 = f"10.244.{(i + 2) // 250}.{(i + 2) % 250 + 1}"
        extra: dict[str, Any] = {}
        if dual:
            extra["ips"] = (v4, f"fd00:10:244::{i + 2:x}")
        pods.append(PodView(ns, name, v4, labels, PORTS, i, **extra))
    spaces = [
        NamespaceView(n, {"kubernetes.io/metadata.name": n}) for n in ("x", "y", "z", "scale")
    ]
    return pods, spaces


def policies(count: int, dual: bool) -> list[dict[str, Any]]:
    out = []
    for i in range(count):
        blocks: list[dict[str, Any]] = [
            {"ipBlock": {"cidr": "10.0.0.0/8", "except": [f"10.{i % 250}.0.0/16"]}}
        ]
        if dual:
            blocks.append({"ipBlock": {"cidr": "fd00::/8", "except": [f"fd00:{i:x}::/32"]}})
        obj = {
            "metadata": {"namespace": "scale", "name": f"np{i}"},
            "spec": {
                "podSelector": {"matchLabels": {"grp": str(i % 10)}},
                "ingress": [
                    {
                        "from": [
                            {"podSelector": {"matchLabels": {"grp": str((i + 1) % 10)}}},
                            *blocks,
                        ],
                        "ports": [{"port": 80}, {"port": "serve-81-udp", "protocol": "UDP"}],
                    }
                ],
                "egress": [
                    {
                        "to": [{"namespaceSelector": {}}],
                        "ports": [{"port": 1000 + i, "endPort": 2000 + i}],
                    }
                ],
            },
        }
        default_network_policy(obj)
        out.append(obj)
    return out


def measure(
    pods: list[PodView], spaces: list[NamespaceView], pols: list[Any], rounds: int
) -> float:
    """Median seconds of one compile."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        compile_policies(pods, spaces, pols)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--policies", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    modes = [False]
    if "ips" in {f.name for f in dataclasses.fields(PodView)}:
        modes.append(True)
    for dual in modes:
        pods, spaces = world(args.pods, dual)
        seconds = measure(pods, spaces, policies(args.policies, dual), args.rounds)
        label = "dual-stack" if dual else "IPv4-only"
        print(
            f"{label}: compile {args.pods + 9} pods, {args.policies} policies: "
            f"median {seconds * 1000:.1f} ms over {args.rounds} rounds"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
