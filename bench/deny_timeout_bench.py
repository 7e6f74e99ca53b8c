"""Would a shorter --deny-timeout read a slow allow as a deny? Connect times of allowed probes.

A probe the reference expects to be denied gets ``--deny-timeout``; if the dataplane wrongly
allows that connection but the connection takes longer than the timeout to complete, the run
reads a timeout, the verdict the reference expects, and the mismatch is hidden (a "false deny").
On this dataplane an allowed connection is slow only when its first SYN is dropped (it then
connects on the kernel's retransmit, 1 s in: past a 1 s timeout as much as past 0.5 s) or when
the machine is too busy to run the probe's packets and processes in time. This bench measures
the second: it deploys the 9-pod topology (TCP and UDP, ports 80 and 81) without policies, so
every probe should connect, and probes the full matrix again and again with per-probe timeouts of
0.1 to 1 s, ``--concurrent`` matrices at once (as ``--jobs`` scenarios would), while ``--hogs``
busy processes load the CPUs and, with ``--api-delay``, the API answers slowly. Every probe that
does not connect within its timeout is one a deny timeout that short would have read as denied.

Run as root: python bench/deny_timeout_bench.py --hogs 4 --rounds 20
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conformance.cluster.config import ClusterOptions
from conformance.cluster.embedded import EmbeddedCluster
from conformance.cluster.faults import Faults
from conformance.cluster.knobs import Knobs
from conformance.live.deploy import probe_container
from conformance.live.kube import KubeCluster
from conformance.live.options import RunOptions
from conformance.live.probing import Outcome
from conformance.live.results import ScenarioResult, Status
from conformance.live.runner import RealCell, Runner
from conformance.live.scenario_run import ScenarioRun
from conformance.scenario.load import load_scenario

SCENARIO = """name: bench-allowed
topology:
  ports:
    - {port: 80, protocol: TCP}
    - {port: 81, protocol: TCP}
    - {port: 80, protocol: UDP}
    - {port: 81, protocol: UDP}
steps:
  - name: nothing
    expect: {default: allow}
"""
TIMEOUTS = (0.1, 0.25, 0.5, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10, help="matrices per timeout")
    parser.add_argument("--concurrent", type=int, default=4, help="matrices probed at once")
    parser.add_argument("--hogs", type=int, default=0, help="busy-looping processes meanwhile")
    parser.add_argument(
        "--api-delay", type=float, default=0.0, help="delay 20%% of API answers by this (s)"
    )
    parser.add_argument(
        "--enforcement-delay", type=float, default=0.0, help="the cluster's enforcement delay"
    )
    args = parser.parse_args()
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hogs)]
    try:
        run(args)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def run(args: argparse.Namespace) -> None:
    faults = (
        Faults(delay_rate=0.2, delay_seconds=args.api_delay, seed=18)
        if args.api_delay
        else Faults()
    )
    options = ClusterOptions(
        instance=f"dtb{os.getpid() % 100000}",
        knobs=Knobs(enforcement_delay=args.enforcement_delay),
        faults=faults,
    )
    with tempfile.TemporaryDirectory() as tmp, EmbeddedCluster(options) as ec:
        path = Path(tmp) / "bench.yaml"
        path.write_text(SCENARIO)
        scenario = load_scenario(path)
        cluster = KubeCluster(ec.kubeconfig, ec.context)
        runner = Runner(cluster, RunOptions(), run_id="dtb")
        result = ScenarioResult("bench", "", [], Status.PASS)
        sc = ScenarioRun(runner, scenario, "dtb", result)
        try:
            for ns in sc.initial.namespaces:
                sc._create_namespace(ns.name, ns.labels)
            sc._create_pods(sc.initial.pods)
            sc._warm_up()
            pods = list(sc.live.pods.values())
            cells = [
                (RealCell(s.key, d.key, p.port, p.protocol), probe_container(s), str(d.ip))
                for s in pods
                for d in pods
                if s.key != d.key
                for p in d.ports
            ]
            print(
                f"{len(cells)} allowed probes per matrix, {args.concurrent} matrices at once, "
                f"{args.rounds} rounds per timeout; {args.hogs} CPU hogs on {os.cpu_count()} "
                f"CPUs; API delay {args.api_delay} s on 20% of answers; "
                f"load average {os.getloadavg()[0]:.1f}"
            )
            for timeout in TIMEOUTS:
                outcomes: Counter[tuple[str, bool]] = Counter()
                started = time.monotonic()
                with ThreadPoolExecutor(max_workers=args.concurrent) as pool:
                    for _ in range(args.rounds):
                        batches = [
                            pool.submit(runner.probe, cells, {c[0]: timeout for c in cells})
                            for _ in range(args.concurrent)
                        ]
                        for batch in batches:
                            outcomes.update(
                                (str(cell.protocol), r.outcome is Outcome.CONNECTED)
                                for cell, r in batch.result().items()
                            )
                total = sum(outcomes.values())
                missed = {proto: n for (proto, ok), n in sorted(outcomes.items()) if not ok}
                print(
                    f"timeout {timeout:4.2f} s: {total} probes, not connected "
                    f"{sum(missed.values())} {missed or ''}; {time.monotonic() - started:.1f} s, "
                    f"load average {os.getloadavg()[0]:.1f}"
                )
        finally:
            sc.teardown()
            runner.cleanup()
            runner.close()
            cluster.close()


if __name__ == "__main__":
    main()
