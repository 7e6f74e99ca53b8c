"""Probing speed on the embedded cluster: batched execs vs one exec per probe, and step wall time.

Setup (issue "Runner", speed targets): the default 9-pod topology, ports 80 and 81 on TCP and UDP,
a deny-all step. Prints a deny-all step's wall time against 2 x probe timeout + 1 s, then the full
matrix probed both ways (batched, one exec per probe; same client pool) with no policy and under
deny-all, and their ratios (target >= 10x under deny-all). Every embedded exec starts a real
process in the pod, as a runtime does. Run as root: python bench/probe_bench.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conformance.cluster.config import ClusterOptions
from conformance.cluster.embedded import EmbeddedCluster
from conformance.live.kube import KubeCluster
from conformance.live.options import RunOptions
from conformance.live.probing import Outcome, ProbeTarget, connect_command
from conformance.live.runner import Runner
from conformance.scenario.load import load_scenario

_DENY = (
    "      - {{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {{name: deny, namespace: {ns}}},"
    " spec: {{podSelector: {{}}, policyTypes: [Ingress]}}}}\n"
)
SCENARIO = (
    "name: bench-deny-all\n"
    "topology:\n"
    "  ports:\n"
    "    - {port: 80, protocol: TCP}\n"
    "    - {port: 81, protocol: TCP}\n"
    "    - {port: 80, protocol: UDP}\n"
    "    - {port: 81, protocol: UDP}\n"
    "steps:\n"
    "  - name: deny all\n"
    "    apply:\n" + "".join(_DENY.format(ns=ns) for ns in "xyz") + "    expect: {default: deny}\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timeout", type=int, default=1, help="probe timeout in seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(SCENARIO)
        scenario = load_scenario(path)
        with EmbeddedCluster(ClusterOptions(instance="bench")) as ec:
            cluster = KubeCluster(ec.kubeconfig, ec.context)
            runner = Runner(cluster, RunOptions(probe_timeout_s=args.timeout), run_id="bench")
            try:
                started = time.monotonic()
                sc = runner.run_scenario(scenario)
                total = time.monotonic() - started
                step = sc.steps[0]
                cells = [c for c in step.cells if c.status != "implementation-defined"]
                print(
                    f"scenario run (deploy, warm-up, one deny-all step): {total:.2f} s; status {sc.status}"
                )
                print(
                    f"deny-all step wall time: {step.duration_s:.2f} s for {len(cells)} probes; "
                    f"target < 2 x {args.timeout} s + 1 s = {2 * args.timeout + 1} s "
                    f"-> ratio {step.duration_s / (2 * args.timeout + 1):.2f} (must be < 1)"
                )
                compare_batched_with_single(runner, cluster, scenario, args.timeout)
            finally:
                runner.cleanup()
                runner.close()
                cluster.close()


def compare_batched_with_single(
    runner: Runner, cluster: KubeCluster, scenario: object, timeout: int
) -> None:
    """Time the full matrix both ways, with the same client pool, without and with deny-all.

    The target is the deny-all step: every probe waits out its timeout, so one exec per probe is
    bounded by how many execs the client keeps in flight, while a batch waits for all of a pod's
    probes at once inside the pod. The all-allowed matrix shows the per-exec overhead alone.
    """
    from conformance.live.deploy import probe_container
    from conformance.live.results import ScenarioResult, Status
    from conformance.live.runner import RealCell
    from conformance.live.scenario_run import ScenarioRun

    result = ScenarioResult("bench", "", [], Status.PASS)
    run = ScenarioRun(runner, scenario, "bench-cmp", result)  # type: ignore[arg-type]
    try:
        for ns in run.initial.namespaces:
            run._create_namespace(ns.name, ns.labels)
        run._create_pods(run.initial.pods)
        pods = list(run.live.pods.values())
        cells = [
            (RealCell(s.key, d.key, p.port, p.protocol), probe_container(s), str(d.ip))
            for s in pods
            for d in pods
            if s.key != d.key
            for p in d.ports
        ]

        def single(item: tuple[RealCell, str, str]) -> int:
            (src, _dst, port, proto, _family), container, host = item
            ns, pod = src.split("/", 1)
            argv = connect_command(ProbeTarget("", host, port, proto), timeout)
            return cluster.exec(ns, pod, container, argv, timeout + 10).exit_code

        def both_ways(label: str) -> float:
            t0 = time.monotonic()
            results = runner.probe(cells)
            batched = time.monotonic() - t0
            outcomes = Counter(str(r.outcome) for r in results.values())
            t0 = time.monotonic()
            with ThreadPoolExecutor(max_workers=runner.options.parallel) as pool:
                codes = Counter(pool.map(single, cells))
            one_by_one = time.monotonic() - t0
            print(
                f"{label}, {len(cells)} probes (batched {dict(outcomes)}; one by one, exit codes {dict(codes)}):"
            )
            print(f"  batched (one exec per source pod): {batched:.2f} s")
            print(
                f"  one exec per probe ({runner.options.parallel} execs in flight): {one_by_one:.2f} s"
            )
            print(f"  speed-up: {one_by_one / batched:.1f}x")
            return one_by_one / batched

        both_ways("full matrix, no policy (exec overhead only)")
        run._apply_changes(0)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # enforcement is asynchronous: wait until all denied
            if all(r.outcome == Outcome.TIMEOUT for r in runner.probe(cells).values()):
                break
        else:
            raise SystemExit("deny-all was not enforced within 10 s")
        ratio = both_ways("deny-all step (the target)")
        print(
            f"deny-all speed-up {ratio:.1f}x; target >= 10x: {'met' if ratio >= 10 else 'NOT met'}"
        )
    finally:
        run.teardown()


if __name__ == "__main__":
    main()
