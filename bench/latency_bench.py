"""Enforcement latency as the runner measures it, against the embedded cluster's --enforcement-delay.

For each configured delay (one embedded cluster each; its API answers a write at once and installs
the rules that much later) a scenario closes namespace x (deny-all ingress: 24 cells go from allow
to deny), then opens it again (the policy is deleted: 24 cells go back to allow). Per direction it
prints the measured p50 and max against the configured delay, their ratio, and the resolution:
the widest window between a cell's last probe that still saw the old verdict (or the change) and
its first that saw the new one. Closing cells are re-probed with the short --deny-timeout every
0.1-0.5 s, so they resolve to about that interval; opening cells wait out a full
--probe-timeout per stale probe, so they resolve to about that. At delay 0 the API answers only
once the rules are in, so what is measured there is the runner's own overhead (reading the state
back, evaluating, starting the exec). Nothing is asserted: run as root,
``python bench/latency_bench.py [--delays 0,0.5,1,2] [--probe-timeout 1]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from conformance.cluster.config import ClusterOptions
from conformance.cluster.embedded import EmbeddedCluster
from conformance.cluster.knobs import Knobs
from conformance.live.kube import KubeCluster
from conformance.live.options import RunOptions
from conformance.live.results import CellResult, latency_summary
from conformance.live.runner import Runner
from conformance.scenario.load import load_scenario

TOLERANCE = 0.1

SCENARIO = """\
name: bench-latency
topology:
  ports:
    - {port: 80, protocol: TCP}
steps:
  - name: close x
    apply:
      - apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: deny, namespace: x}
        spec: {podSelector: {}, policyTypes: [Ingress]}
    expect:
      default: allow
      rules:
        - {to: "x/*", verdict: deny}
  - name: open x
    delete: [x/deny]
    expect: {default: allow}
"""


def row(label: str, delay: float, cells: list[CellResult]) -> str:
    s: dict[str, Any] | None = latency_summary(cells)
    if s is None:
        return f"{label:<8} delay {delay:4.1f} s: no changed cell showed its new verdict"
    ratio = f"{s['p50_s'] / delay:5.2f}" if delay else "  -  "
    # Each cell's latency lies after its last stale probe (or the change) and at most its first
    # probe that saw the new verdict: does that window hold the configured delay? A probe's
    # packet leaves a little after its exec started (TOLERANCE), and the server starts the delay
    # a little before its answer reaches the runner.
    inside = sum(
        1
        for c in cells
        if c.latency_s is not None
        and (c.stale_until_s or 0.0) - TOLERANCE <= delay <= c.latency_s + TOLERANCE
    )
    return (
        f"{label:<8} delay {delay:4.1f} s: measured p50 {s['p50_s']:5.2f} s max {s['max_s']:5.2f} s "
        f"(ratio p50/configured {ratio}; resolution {s['resolution_s']:4.2f} s; "
        f"{s['cells']} cells, {s['unsettled']} unsettled; window +-{TOLERANCE} s holds the delay for "
        f"{inside}/{s['cells']})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delays", default="0,0.5,1,2", help="comma-separated seconds")
    parser.add_argument("--probe-timeout", type=int, default=1)
    parser.add_argument("--deny-timeout", type=float, default=0.5)
    args = parser.parse_args()
    options = RunOptions(probe_timeout_s=args.probe_timeout, deny_timeout_s=args.deny_timeout)
    print(
        f"probe timeout {args.probe_timeout} s, deny timeout {args.deny_timeout} s; "
        "latency from the API's answer to the first probe seeing the new verdict"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(SCENARIO)
        scenario = load_scenario(path)
        for n, delay in enumerate(float(d) for d in args.delays.split(",")):
            instance = f"lat{os.getpid() % 10000}x{n}"
            knobs = Knobs(enforcement_delay=delay)
            with EmbeddedCluster(ClusterOptions(instance=instance, knobs=knobs)) as ec:
                cluster = KubeCluster(ec.kubeconfig, ec.context)
                runner = Runner(cluster, options, run_id=f"lat{n}")
                try:
                    started = time.monotonic()
                    result = runner.run_scenario(scenario)
                    wall = time.monotonic() - started
                finally:
                    runner.cleanup()
                    runner.close()
                    cluster.close()
            closing, opening = (st.cells for st in result.steps)
            print(row("closing", delay, closing))
            print(row("opening", delay, opening))
            print(f"         scenario {result.status} in {wall:.1f} s")


if __name__ == "__main__":
    main()
