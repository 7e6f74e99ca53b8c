"""The runner end to end on the embedded cluster: real API calls, real packets, real cleanup.

The whole shipped suite runs live once, as the plugin's scenario items (one per step, each failing
on a mismatch). The ``run`` command's own path (one cluster for every scenario, side by side,
results and reports written, exit code) is checked here on a representative subset: every API
family (NetworkPolicy, AdminNetworkPolicy with the v1alpha1 baseline, v1alpha2
ClusterNetworkPolicy), external endpoints and an SCTP scenario this cluster cannot run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance.cluster.config import ClusterOptions, state_dir
from conformance.cluster.dataplane import prefix_for
from conformance.cluster.embedded import EmbeddedCluster
from conformance.cluster.knobs import Knobs
from conformance.live.deploy import TOOL_LABEL, TOOL_NAME
from conformance.live.kube import KubeCluster
from tests.helpers import disagreeing_cells

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT / "scenarios" / "upstream"
DENY_INGRESS = UPSTREAM / "should-support-a-default-deny-ingress-policy.yaml"
EXCEPT = UPSTREAM / "should-enforce-except-clause-while-egress-access-to-server-in-cidr-block.yaml"
UPDATED_POD = UPSTREAM / "should-allow-ingress-access-from-updated-pod.yaml"
SCTP = UPSTREAM / "should-support-a-default-deny-ingress-policy-sctp.yaml"
EXAMPLE_EGRESS = ROOT / "scenarios" / "examples" / "egress-to-database-and-dns.yaml"
ANP_V1ALPHA1 = ROOT / "scenarios" / "admin" / "v1alpha1" / "anp-core-integration.yaml"
CNP_V1ALPHA2 = ROOT / "scenarios" / "admin" / "v1alpha2" / "cnp-admin-baseline-integration.yaml"


def netns(instance: str) -> set[str]:
    """Network namespaces of one embedded-cluster instance (others may run in parallel)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    names = {line.split()[0] for line in out.splitlines() if line.strip()}
    return {n for n in names if n.startswith(prefix_for(instance))}


def target(ec: EmbeddedCluster) -> tuple[str, ...]:
    """The CLI options that point a command at embedded cluster ``ec``."""
    return ("--kubeconfig", ec.kubeconfig, "--context", ec.context)


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conformance", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_run_on_embedded_default_matches_and_leaves_nothing(tmp_path: Path) -> None:
    instance = f"dflt{os.getpid() % 100000}"
    files = (DENY_INGRESS, UPDATED_POD, SCTP, EXAMPLE_EGRESS, ANP_V1ALPHA1, CNP_V1ALPHA2)
    proc = cli(
        "run",
        *map(str, files),
        "--output-dir",
        str(tmp_path),
        "--embedded-name",
        instance,
        "--jobs",
        "3",
    )
    doc = json.loads((tmp_path / "results.json").read_text())
    problems = disagreeing_cells(doc)
    assert not problems, "\n".join(problems[:30])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert doc["schema_version"] == 1 and doc["context"].startswith("netpol-embedded")
    assert [s["file"] for s in doc["scenarios"]] == [str(p) for p in files], (
        "scenarios run side by side are reported in the order given"
    )
    by_name = {s["name"]: s for s in doc["scenarios"]}
    sctp = by_name.pop("should-support-a-default-deny-ingress-policy-sctp")
    assert sctp["status"] == "skipped" and "SCTP" in sctp["message"], (
        "no SCTP here: not-supported, not pass/fail"
    )
    assert {n: s["status"] for n, s in by_name.items()} == dict.fromkeys(by_name, "pass"), (
        "the embedded cluster serves every policy API: only SCTP is unsupported here"
    )
    assert all(
        any(c["status"] == "match" for c in st["cells"])
        for s in by_name.values()
        for st in s["steps"]
    ), "every step of a scenario that ran judged real packets"
    for name in ("report.html", "junit.xml", "summary.md"):
        assert (tmp_path / name).stat().st_size > 0, f"run writes {name} next to results.json"
    cells = [
        c
        for s in doc["scenarios"]
        for st in s["steps"]
        for c in st["cells"]
        if c["status"] == "match"
    ]
    assert doc["summary"]["cells"]["match"] == len(cells) > 300, "328 when written"
    assert cells and all(
        c["attempts"] >= 1
        and c["command"].startswith(f"kubectl --kubeconfig {state_dir(instance)}/kubeconfig ")
        and f" --context netpol-embedded-{instance} exec -n " in c["command"]
        for c in cells
    )
    deny = by_name["should-support-a-default-deny-ingress-policy"]
    real = set(deny["namespaces"].values())
    deny_cells = [c for st in deny["steps"] for c in st["cells"] if c["status"] == "match"]
    reasons = [c["reason"] for c in deny_cells]
    assert any("isolated by x/" in r for r in reasons), "reasons use the scenario's names"
    assert not any(name in r for r in reasons for name in real), "as the cells do"
    assert all(c["command"].split()[7] in real for c in deny_cells), "commands: live names"
    egress = by_name["egress-to-database-and-dns"]["steps"]
    observed = {
        (c["from"], c["to"], c["port"]): c["observed"] for st in egress for c in st["cells"]
    }
    assert "connected" in observed.values() and "timeout" in observed.values()
    assert any(to.startswith("@") for _, to, _ in observed), (
        "external endpoints are probed on the embedded cluster"
    )
    assert netns(instance) == set(), "the embedded cluster started for the run is gone"


def test_broken_knob_produces_the_expected_mismatches(tmp_path: Path) -> None:
    instance = f"knob{os.getpid() % 100000}"
    with EmbeddedCluster(
        ClusterOptions(instance=instance, knobs=Knobs.parse(0, ["ignore-except"]))
    ) as ec:
        proc = cli(
            "run",
            str(EXCEPT),
            *target(ec),
            "--output-dir",
            str(tmp_path),
            "--deadline",
            "8",
        )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = json.loads((tmp_path / "results.json").read_text())
    bad = [
        c for st in doc["scenarios"][0]["steps"] for c in st["cells"] if c["status"] == "mismatch"
    ]
    # The policy allows egress from x/a to x/b's /4 except x/b itself: ignoring `except` opens x/a -> x/b.
    assert [(c["from"], c["to"], c["expected"], c["observed"]) for c in bad] == [
        ("x/a", "x/b", "deny", "connected")
    ]
    assert "except" in bad[0]["reason"] or "no rule allows it" in bad[0]["reason"]
    assert bad[0]["attempts"] > 1, "a mismatch is re-probed until the deadline"


def test_converged_after_counts_from_the_change_to_the_attempt_that_saw_the_verdict(
    tmp_path: Path,
) -> None:
    """With a 2 s enforcement delay, cells the policy closes converge 2 s (plus at most one
    backoff interval) after the policy was accepted, not at the end of a 3 s probe timeout; cells
    it leaves open agree on the first attempt, right after the change."""
    instance = f"conv{os.getpid() % 100000}"
    with EmbeddedCluster(ClusterOptions(instance=instance, knobs=Knobs.parse(2, []))) as ec:
        proc = cli(
            "run",
            str(DENY_INGRESS),
            *target(ec),
            "--output-dir",
            str(tmp_path),
        )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((tmp_path / "results.json").read_text())
    cells = [c for c in doc["scenarios"][0]["steps"][0]["cells"] if c["status"] == "match"]
    closed = [c["converged_after_s"] for c in cells if c["expected"] == "deny"]
    open_ = [c["converged_after_s"] for c in cells if c["expected"] == "allow"]
    assert closed and all(1.9 <= t < 4.0 for t in closed), closed
    assert open_ and all(t < 1.0 for t in open_), open_


def test_delay_longer_than_the_deadline_is_reported_as_slow_propagation(tmp_path: Path) -> None:
    """Enforcement 3 s late with a 2 s deadline: every mismatch still shows the verdict from
    before the step's changes, agrees in the probes after the deadline, and the cell, the step
    message, the console and the reports say so and suggest a longer --deadline."""
    scenario = UPSTREAM / "should-stop-enforcing-policies-after-they-are-deleted.yaml"
    instance = f"late{os.getpid() % 100000}"
    with EmbeddedCluster(ClusterOptions(instance=instance, knobs=Knobs.parse(3, []))) as ec:
        proc = cli(
            "run",
            str(scenario),
            *target(ec),
            "--output-dir",
            str(tmp_path),
            "--deadline",
            "2",
        )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = json.loads((tmp_path / "results.json").read_text())
    steps = doc["scenarios"][0]["steps"]
    bad = [c for st in steps for c in st["cells"] if c["status"] == "mismatch"]
    assert bad and all(c["slow_propagation"] for c in bad), bad
    assert all(c["settled_after_s"] is not None and 2.5 < c["settled_after_s"] < 6 for c in bad)
    assert {c["to"] for c in bad if c["expected"] == "deny"}, "the policy's cells in step 1"
    assert {c["to"] for c in bad if c["expected"] == "allow"}, "the deleted policy's in step 2"
    for st in steps:
        assert "try --deadline" in st["message"], st["message"]
    assert "try --deadline" in proc.stdout
    assert "slow propagation" in (tmp_path / "report.html").read_text()
    assert "slow propagation" in (tmp_path / "summary.md").read_text()


def test_keep_on_an_auto_started_cluster_keeps_the_cluster_and_its_reproduce_commands(
    tmp_path: Path,
) -> None:
    """`run --keep` without a cluster: the embedded cluster started for the run stays up, so the
    kept namespaces exist and a cell's reproduce command works; `cluster down` removes it all."""
    from conformance.cluster import embedded

    instance = f"kept{os.getpid() % 100000}"
    try:
        proc = cli(
            "run",
            str(DENY_INGRESS),
            "--keep",
            "--embedded-name",
            instance,
            "--output-dir",
            str(tmp_path),
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"netpol-conformance cluster down --name {instance}" in proc.stdout
        assert embedded.find(instance) is not None, "the cluster is still running"
        doc = json.loads((tmp_path / "results.json").read_text())
        cell = next(c for st in doc["scenarios"][0]["steps"] for c in st["cells"] if c["command"])
        again = subprocess.run(cell["command"].split(), capture_output=True, text=True, timeout=60)
        expected_rc = 0 if cell["observed"] == "connected" else 1
        assert again.returncode == expected_rc, again.stdout + again.stderr
        down = cli("cluster", "down", "--name", instance)
        assert down.returncode == 0, down.stdout + down.stderr
    finally:
        embedded.stop(instance)
    assert embedded.find(instance) is None and netns(instance) == set()


@pytest.mark.parametrize("jobs", [1, 3])
def test_interrupt_mid_run_removes_everything(tmp_path: Path, jobs: int) -> None:
    instance = f"intr{jobs}{os.getpid() % 100000}"
    with EmbeddedCluster(ClusterOptions(instance=instance)) as ec:
        kube = KubeCluster(ec.kubeconfig, ec.context)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "conformance",
                "run",
                str(EXAMPLE_EGRESS),
                str(DENY_INGRESS),
                str(UPDATED_POD),
                "--jobs",
                str(jobs),
                *target(ec),
                "--output-dir",
                str(tmp_path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if kube.list_items("Pod", None, f"{TOOL_LABEL}={TOOL_NAME}"):
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        assert kube.list_items("Namespace", None, f"{TOOL_LABEL}={TOOL_NAME}"), (
            "the run deployed something"
        )
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err
        assert "interrupted" in err
        assert kube.list_items("Namespace", None, f"{TOOL_LABEL}={TOOL_NAME}") == []
        kube.close()
    assert netns(instance) == set()


def test_api_faults_at_ten_percent_still_give_correct_verdicts(tmp_path: Path) -> None:
    """429/500/503 on 10% of requests and 10% of exec streams dropped: retries absorb them."""
    from conformance.cluster.faults import Faults

    instance = f"flt{os.getpid() % 100000}"
    faults = Faults(error_rate=0.1, exec_drop_rate=0.1, seed=7)
    with EmbeddedCluster(ClusterOptions(instance=instance, faults=faults)) as ec:
        proc = cli(
            "run",
            str(DENY_INGRESS),
            str(UPDATED_POD),
            str(EXCEPT),
            *target(ec),
            "--output-dir",
            str(tmp_path),
        )
        injected = ec.status()["faultsInjected"]
        status = cli("cluster", "status", "--name", instance)
    doc = json.loads((tmp_path / "results.json").read_text())
    # Retries are visible: counted in the results and the console, injected faults in `status`.
    assert doc["retries"]["api"] > 0 and doc["retries"]["exec"] > 0, doc["retries"]
    assert "retried after transient errors: " in proc.stdout
    assert f"faults injected: {injected['delays']} delays, {injected['errors']} errors, " in (
        status.stdout
    )
    cells = [c for s in doc["scenarios"] for st in s["steps"] for c in st["cells"]]
    statuses = {c["status"] for c in cells}
    assert "mismatch" not in statuses, proc.stdout
    # Only cells whose retries were exhausted may come out check-failed; with 10% faults none should.
    assert statuses <= {"match", "implementation-defined"}, proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert injected["errors"] > 0 and injected["exec_drops"] > 0, injected


def test_probing_via_services_gives_the_same_verdicts_as_probing_pods(tmp_path: Path) -> None:
    """The examples probe ports some destinations do not serve: through the per-pod Service such
    a probe must be refused by the pod (as it is on the pod IP), not time out as if denied."""
    examples = ROOT / "scenarios" / "examples"
    proc = cli("run", str(examples), "--via", "service", "--output-dir", str(tmp_path))
    doc = json.loads((tmp_path / "results.json").read_text())
    problems = disagreeing_cells(doc)
    assert not problems, "\n".join(problems[:30])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cells = [
        c
        for s in doc["scenarios"]
        for st in s["steps"]
        for c in st["cells"]
        if c["status"] == "match"
    ]
    assert cells and all("--protocol=" in c["command"] for c in cells)
    hosts = {c["command"].split()[-3].rsplit(":", 1)[0] for c in cells if c["to"][0] != "@"}
    assert all(ip.startswith("10.96.") for ip in hosts), "probes went to ClusterIPs, not pod IPs"
    unserved = [c for c in cells if not c["served"] and c["expected"] == "allow"]
    assert unserved and {c["observed"] for c in unserved} == {"refused"}


def test_keep_then_clean_removes_namespaces_and_cluster_scoped_policies(tmp_path: Path) -> None:
    """`run --keep` leaves the run's objects (a ClusterNetworkPolicy among them); `clean --run-id`
    removes exactly those, and a second `clean` finds nothing."""
    scenario = ROOT / "scenarios" / "admin" / "v1alpha2" / "cnp-admin-ingress-egress-isolation.yaml"
    instance = f"keep{os.getpid() % 100000}"
    with EmbeddedCluster(ClusterOptions(instance=instance)) as ec:
        proc = cli("run", str(scenario), *target(ec), "--keep", "--output-dir", str(tmp_path))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        run_id = json.loads((tmp_path / "results.json").read_text())["run_id"]
        kube = KubeCluster(ec.kubeconfig, ec.context)
        try:
            selector = f"netpol-conformance.io/run={run_id}"
            kept = kube.list_items("Namespace", label_selector=selector)
            cnps = kube.list_items("ClusterNetworkPolicy", label_selector=selector)
            assert kept and cnps, "--keep leaves the namespaces and the cluster-scoped policies"
            cleaned = cli("clean", "--run-id", run_id, *target(ec))
            assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
            lines = set(cleaned.stdout.split("\n")) - {""}
            expected = {f"deleted Namespace {n['metadata']['name']}" for n in kept} | {
                f"deleted ClusterNetworkPolicy {p['metadata']['name']}" for p in cnps
            }
            assert lines == expected
            assert kube.list_items("ClusterNetworkPolicy", label_selector=selector) == []
            again = cli("clean", "--run-id", run_id, *target(ec))
            assert again.returncode == 0 and again.stdout.strip() == "nothing to remove"
        finally:
            kube.close()


def test_outside_clients_nodes_and_ipv6_are_probed_through_the_outside_exec_template(
    tmp_path: Path,
) -> None:
    """Every path of a two-node cluster on real packets: outside clients through the documented
    --outside-exec template (here the embedded cluster's CLI), host-network pods on their node,
    and IPv6 cells on the dual-stack cluster a scenario with IPv6 gets."""
    instance = f"outs{os.getpid() % 100000}"
    template = f"{sys.executable} -m conformance cluster outside-exec --name {instance} {{name}} --"
    proc = cli(
        "run",
        str(ROOT / "scenarios" / "examples" / "nodes-and-outside-clients.yaml"),
        str(ROOT / "scenarios" / "examples" / "dual-stack-ip-block.yaml"),
        "--output-dir",
        str(tmp_path),
        "--embedded-name",
        instance,
        "--outside-exec",
        template,
    )
    doc = json.loads((tmp_path / "results.json").read_text())
    problems = disagreeing_cells(doc)
    assert not problems, "\n".join(problems[:30])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cells = [c for s in doc["scenarios"] for st in s["steps"] for c in st["cells"]]
    judged = [c for c in cells if c["status"] == "match"]
    assert not [c for c in cells if c["status"] == "not-supported"], "every path runs here"
    paths = {c["path"] for c in judged}
    assert paths >= {"from-node", "to-node", "from-external"} and paths & {
        "same-node",
        "cross-node",
    }
    outside = [c for c in judged if c["path"] == "from-external"]
    assert {"connected", "timeout"} <= {c["observed"] for c in outside}
    assert all(c["command"].startswith(template.replace("{name}", c["from"][1:])) for c in outside)
    assert {c["family"] for c in judged} == {"IPv4", "IPv6"}
    nodes = doc["scenarios"][0]["nodes"]
    assert set(nodes.values()) == {"embedded-worker", "embedded-worker2"}
    assert netns(instance) == set()
