"""Scale (issue 18): a scenario of 200 pods and 500 NetworkPolicies on the embedded cluster,
probed by sampling; prints its wall time, where it went, and the dataplane's rule count.

Run as root from a checkout: ``PYTHONPATH=$PWD python3 bench/scale_bench.py``. The scenario is
``generate --pods 200 --policies 500 --seed 0`` (two steps: apply 500 policies; relabel and
delete a tenth of them); ``--sample`` cells are probed per step. ``--full-pods N`` also runs a
smaller scale scenario (N pods, policies in proportion) both sampled and with every cell probed
on the same cluster, and prints the ratios side by side: what sampling saves, and that both
agree with the reference. Nothing is asserted: this prints measurements.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from conformance.cluster.config import ClusterOptions
from conformance.cluster.dataplane import prefix_for
from conformance.cluster.embedded import EmbeddedCluster
from conformance.cluster.netns import list_netns
from conformance.live.kube import KubeCluster
from conformance.live.options import RunOptions
from conformance.live.results import CellStatus, ScenarioResult
from conformance.live.runner import Runner
from conformance.scenario.load import load_scenario
from conformance.scenario.scale import ScaleOptions, scale_scenario


def run_once(
    cluster: EmbeddedCluster, path: Path, options: RunOptions, run_id: str
) -> tuple[ScenarioResult, float, dict[str, Any]]:
    """One run of the scenario: its result, wall time (deploy to the last probe) and the
    dataplane's status after its last step (read before its namespaces are deleted)."""
    kube = KubeCluster(cluster.kubeconfig, cluster.context)
    runner = Runner(kube, replace(options, keep=True), run_id=run_id)
    out: list[ScenarioResult] = []
    start = time.monotonic()
    try:
        runner.run_many([load_scenario(path)], jobs=1, on_result=out.append)
        wall = time.monotonic() - start
        status = cluster.status()
        status["nft"] = nft_counts(cluster.options.instance)
    finally:
        runner.cleanup()
        runner.close()
        kube.close()
    return out[0], wall, status


def nft_counts(instance: str) -> list[tuple[str, int, int]]:
    """Per node namespace of the instance: nftables rules and set/map elements installed."""
    out = []
    node = re.compile(re.escape(prefix_for(instance)) + r"n\d+")
    for ns in sorted(n for n in list_netns() if node.fullmatch(n)):
        text = subprocess.run(
            ["ip", "netns", "exec", ns, "nft", "-j", "list", "ruleset"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        items = json.loads(text).get("nftables", [])
        rules = sum("rule" in item for item in items)
        elements = sum(
            len(item[kind].get("elem", []))
            for item in items
            for kind in ("set", "map")
            if kind in item
        )
        out.append((ns, rules, elements))
    return out


def describe(label: str, result: ScenarioResult, wall: float) -> None:
    cells = [c for st in result.steps for c in st.cells]
    probed = [c for c in cells if c.status in (CellStatus.MATCH, CellStatus.MISMATCH)]
    mismatch = sum(c.status is CellStatus.MISMATCH for c in cells)
    population = sum((st.sample or {}).get("population", len(st.cells)) for st in result.steps)
    print(
        f"{label:<28} wall {wall:7.1f} s  status {result.status}  cells probed {len(probed):6d} "
        f"of {population:6d} ({len(probed) / max(1, population):.3f})  mismatch {mismatch}"
    )
    if result.message:
        print(f"  {result.message}")
    for st in result.steps:
        print(
            f"  step {st.index + 1}: {st.duration_s:6.1f} s  {len(st.cells)} cells"
            + (f"  {st.sample['classes']} classes, seed {st.sample['seed']}" if st.sample else "")
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--policies", type=int, default=500)
    parser.add_argument("--sample", type=int, default=2000, help="cells probed per step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parallel", type=int, default=64, help="source pods probed at once")
    parser.add_argument(
        "--full-pods",
        type=int,
        default=0,
        help="also compare sampled with full probing on a scenario of this many pods",
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    doc = scale_scenario(
        ScaleOptions(pods=args.pods, policies=args.policies, seed=args.seed, sample=args.sample)
    )
    path = folder / "scale.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    options = RunOptions(parallel=args.parallel)
    print(f"load average {os.getloadavg()[0]:.1f}; scenario {doc['name']}")
    start = time.monotonic()
    with EmbeddedCluster(ClusterOptions(instance=f"scale{os.getpid() % 10000}")) as cluster:
        up = time.monotonic() - start
        result, wall, stats = run_once(cluster, path, options, "scale")
        print(f"cluster up {up:.1f} s")
        describe(f"{args.pods} pods, {args.policies} policies", result, wall)
        print(
            f"dataplane after the last step: {stats['lastRules']} allow entries compiled, "
            f"compile {stats['lastCompileSeconds'] * 1000:.0f} ms, nft apply "
            f"{stats['lastApplySeconds'] * 1000:.0f} ms, {stats['applies']} rulesets installed"
        )
        for ns, rules, elements in stats["nft"]:
            print(f"  {ns}: {rules} nftables rules, {elements} set/map elements")
        print(
            f"pods created {result.pods_created}, waiting for readiness {result.ready_wait_s:.1f} s"
        )
        if args.full_pods:
            small = scale_scenario(
                ScaleOptions(
                    pods=args.full_pods,
                    policies=max(1, args.policies * args.full_pods // args.pods),
                    seed=args.seed,
                    sample=args.sample,
                )
            )
            small_path = folder / "small.yaml"
            small_path.write_text(yaml.safe_dump(small, sort_keys=False), encoding="utf-8")
            sampled, t_sampled, _ = run_once(cluster, small_path, options, "sampled")
            full, t_full, _ = run_once(
                cluster, small_path, RunOptions(parallel=args.parallel, sample=0), "full"
            )
            describe(f"{args.full_pods} pods, sampled", sampled, t_sampled)
            describe(f"{args.full_pods} pods, every cell", full, t_full)
            print(f"ratio wall sampled/full {t_sampled / t_full:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
