"""Pod sharing on the embedded cluster: the same scenarios with and without it, side by side.

Runs the given scenarios (default: the upstream suite) twice on one embedded cluster, first with
``--no-reuse`` then with pods shared, and prints per run the wall time, pods created, seconds
waiting for readiness, and the ratios (shared / fresh), and whether every cell came out the same.
On kind, multiply the pods saved by a pod's start-up time there (docs/speed.md). Nothing is
asserted: run as root, ``python bench/reuse_bench.py [PATH ...] [--jobs 4]``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from conformance.cluster.config import ClusterOptions
from conformance.cluster.embedded import EmbeddedCluster
from conformance.live.kube import KubeCluster
from conformance.live.options import RunOptions
from conformance.live.results import ScenarioResult
from conformance.live.runner import Runner
from conformance.scenario.load import load_scenarios

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("paths", nargs="*", type=Path, default=[ROOT / "scenarios" / "upstream"])
    parser.add_argument("--jobs", type=int, default=4)
    args = parser.parse_args()
    scenarios = load_scenarios(args.paths)
    figures: dict[str, tuple[float, int, float]] = {}
    verdicts: dict[str, list[tuple[object, ...]]] = {}
    with EmbeddedCluster(ClusterOptions(instance=f"reuse{os.getpid() % 10000}")) as ec:
        cluster = KubeCluster(ec.kubeconfig, ec.context)
        try:
            for label, no_reuse in (("fresh", True), ("shared", False)):
                runner = Runner(cluster, RunOptions(no_reuse=no_reuse), run_id=f"rb{label}")
                results: list[ScenarioResult] = []
                try:
                    started = time.monotonic()
                    runner.run_many(scenarios, args.jobs, results.append)
                    wall = time.monotonic() - started
                finally:
                    runner.cleanup()
                    runner.close()
                created = sum(sc.pods_created for sc in results)
                waited = sum(sc.ready_wait_s for sc in results)
                figures[label] = (wall, created, waited)
                verdicts[label] = [
                    (
                        sc.name,
                        st.index,
                        c.source,
                        c.target,
                        c.port,
                        c.expected,
                        c.observed,
                        c.status,
                    )
                    for sc in results
                    for st in sc.steps
                    for c in st.cells
                ]
                print(
                    f"{label:<7} {len(scenarios)} scenarios, --jobs {args.jobs}: wall {wall:6.1f} s, "
                    f"pods created {created:4d}, waiting for readiness {waited:6.1f} s"
                )
        finally:
            cluster.close()
    (w0, c0, r0), (w1, c1, r1) = figures["fresh"], figures["shared"]
    print(
        f"ratios shared/fresh: wall {w1 / w0:.2f}, pods created {c1 / max(1, c0):.2f}, "
        f"readiness wait {r1 / max(1e-9, r0):.2f}"
    )
    same = verdicts["fresh"] == verdicts["shared"]
    print(f"every cell the same with and without sharing: {same} ({len(verdicts['fresh'])} cells)")


if __name__ == "__main__":
    main()
