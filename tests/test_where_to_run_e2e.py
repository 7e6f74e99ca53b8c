"""Where users run it, end to end on one embedded cluster: shards merged equal one run, the kubectl
plugin through the real ``kubectl``, and the in-cluster credentials a Job's pod has.

Why: each path changes how the CLI is reached or how it authenticates, which unit tests cannot
show; the embedded cluster gives real API calls and real probes for all of them.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.cluster.config import ClusterOptions
from conformance.cluster.embedded import EmbeddedCluster
from conformance.live.results import RunResult
from conformance.reports import render
from conformance.scenario.load import load_scenarios
from conformance.scenario.suites import suite_paths

# One worker, one embedded cluster for the module.
pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.xdist_group("where-to-run")]

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT / "scenarios" / "upstream"
# Scenarios of one, two and three steps, so the shards differ in size and in step count.
SCENARIOS = [
    str(ROOT / "scenarios" / "examples" / "default-deny-with-ingress-controller.yaml"),
    str(ROOT / "scenarios" / "examples" / "egress-to-database-and-dns.yaml"),
    str(UPSTREAM / "should-allow-ingress-access-from-updated-pod.yaml"),
    str(UPSTREAM / "should-enforce-except-clause-while-egress-access-to-server-in-cidr-block.yaml"),
]
SMALL = str(UPSTREAM / "should-support-a-default-deny-ingress-policy.yaml")


@pytest.fixture(scope="module")
def ec() -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster(ClusterOptions(instance=f"wr{os.getpid() % 100000}")) as c:
        yield c


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conformance", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


# --- shards ---------------------------------------------------------------------------------

# Run-specific values: timing, retries, and the names and addresses each run generates.
_RUN_FIELDS = ("run_id", "started", "finished")
_ADDRESS = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b|\b[0-9a-f]{1,4}(?::[0-9a-f]{0,4}){2,7}\b")
_CELL_FIELDS: dict[str, Any] = {
    "converged_after_s": None,
    "stale_until_s": None,
    "attempts": 1,
    "flaky": False,
    "history": [],
    "detail": "",
    "command": "",
}


def normalized(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    for key in _RUN_FIELDS:
        doc[key] = ""
    # Retries depend on timing; what must match is that both documents count the same kinds.
    doc["retries"] = dict.fromkeys(doc.get("retries") or {}, 0)
    doc["scenarios"].sort(key=lambda s: (s["file"], s["name"]))
    for sc in doc["scenarios"]:
        sc["namespaces"] = {}
        # Which scenario creates pods and which reuses them depends on what ran before it.
        sc.update(pods_created=0, pods_reused=0, ready_wait_s=0.0)
        for st in sc["steps"]:
            st["duration_s"] = 0.0
            st["enforcement_latency"] = None
            # Bound policies carry the run's namespace names and pod IPs: keep kind and name.
            st["policies"] = [
                {"kind": p["kind"], "metadata": {"name": p["metadata"]["name"]}}
                for p in st["policies"]
            ]
            for cell in st["cells"]:
                cell.update(_CELL_FIELDS)
                # Reasons quote pod addresses (near misses, bound ipBlocks): each run has its own.
                cell["reason"] = _ADDRESS.sub("<ip>", cell["reason"])
    doc["summary"]["flaky"] = 0
    doc["summary"]["enforcement_latency"] = None
    doc["summary"]["pods"] = {}
    return doc


def test_two_shards_merged_equal_one_run(ec: EmbeddedCluster, tmp_path: Path) -> None:
    target = ("--kubeconfig", ec.kubeconfig, "--context", ec.context)
    one = cli("run", *SCENARIOS, *target, "--output-dir", str(tmp_path / "one"), "--jobs", "2")
    assert one.returncode == 0, one.stdout + one.stderr
    shards = []
    for k in (1, 2):
        out = tmp_path / f"shard{k}"
        proc = cli("run", *SCENARIOS, *target, "--output-dir", str(out), "--shard", f"{k}/2")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        shards.append(json.loads((out / "results.json").read_text()))
    names = [{s["name"] for s in doc["scenarios"]} for doc in shards]
    assert names[0] and names[1] and not names[0] & names[1]  # both ran something, disjoint

    merged = tmp_path / "merged"
    proc = cli(
        "report",
        "--merge",
        str(tmp_path / "shard1" / "results.json"),
        str(tmp_path / "shard2" / "results.json"),
        "--output-dir",
        str(merged),
    )
    assert proc.returncode == 0, proc.stderr
    assert normalized(merged / "results.json") == normalized(tmp_path / "one" / "results.json")
    # The HTML report of the merged results is the single run's, up to run-specific values.
    html = [
        render(RunResult.from_json(normalized(d / "results.json")), "html")
        for d in (merged, tmp_path / "one")
    ]
    assert html[0] == html[1]
    assert (merged / "report.html").read_text() == render(
        RunResult.load(merged / "results.json"), "html"
    )


def test_merge_refuses_results_of_different_runs(tmp_path: Path) -> None:
    data = ROOT / "tests" / "data" / "results-pass.json"
    proc = cli("report", "--merge", str(data), str(data), "--output-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "is in both" in proc.stderr and "give each shard's results once" in proc.stderr
    other = json.loads(data.read_text())
    other["context"] = "kind-other"
    other["scenarios"] = []
    (tmp_path / "other.json").write_text(json.dumps(other))
    proc = cli("report", "--merge", str(data), str(tmp_path / "other.json"))
    assert proc.returncode == 2
    assert "differ in context" in proc.stderr, proc.stderr


# --- kubectl plugin -------------------------------------------------------------------------


@pytest.fixture
def plugin_path(tmp_path: Path) -> str:
    """A PATH with kubectl and the plugin executable as pip installs it (a script calling the
    ``kubectl-netpol_conformance`` entry point)."""
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    script = bin_ / "kubectl-netpol_conformance"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nfrom conformance.cli import kubectl_main\n"
        "sys.exit(kubectl_main())\n"
    )
    script.chmod(0o755)
    return f"{bin_}{os.pathsep}{os.environ['PATH']}"


def kubectl(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", *args], capture_output=True, text=True, timeout=300, check=False, env=env
    )


def test_kubectl_plugin_runs_with_kubectl_flags_and_the_current_context(
    ec: EmbeddedCluster, plugin_path: str, tmp_path: Path
) -> None:
    env = _env(PATH=plugin_path)
    listed = kubectl("plugin", "list", env=env)
    assert "kubectl-netpol_conformance" in listed.stdout, listed.stdout + listed.stderr

    out1 = tmp_path / "flags"
    proc = kubectl(
        "netpol-conformance",
        "--kubeconfig",
        ec.kubeconfig,
        "--context",
        ec.context,
        "run",
        SMALL,
        "--output-dir",
        str(out1),
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((out1 / "results.json").read_text())["context"] == ec.context

    # No flags: kubectl's current context from $KUBECONFIG, not an embedded cluster of its own.
    out2 = tmp_path / "current"
    proc = kubectl(
        "netpol-conformance",
        "run",
        SMALL,
        "--output-dir",
        str(out2),
        env=_env(PATH=plugin_path, KUBECONFIG=ec.kubeconfig),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((out2 / "results.json").read_text())
    assert (doc["context"], doc["server"]) == (ec.context, ec.server)
    assert doc["summary"]["cells"]["match"] > 0


# --- in-cluster credentials -----------------------------------------------------------------


def test_run_in_cluster_uses_the_service_account(ec: EmbeddedCluster, tmp_path: Path) -> None:
    """The pod's view: KUBERNETES_SERVICE_HOST/PORT plus a token and CA file. The embedded API
    serves TLS and checks a bearer token, so its own token and CA play the ServiceAccount's."""
    config = yaml.safe_load(Path(ec.kubeconfig).read_text())
    cluster = config["clusters"][0]["cluster"]
    token = config["users"][0]["user"]["token"]
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "ca.crt").write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    (account / "token").write_text(token)
    host, _, port = cluster["server"].removeprefix("https://").partition(":")
    env = _env(
        KUBERNETES_SERVICE_HOST=host,
        KUBERNETES_SERVICE_PORT=port,
        NETPOL_CONFORMANCE_SERVICEACCOUNT_DIR=str(account),
    )
    env.pop("KUBECONFIG", None)
    out = tmp_path / "out"
    args = ("run", SMALL, "--in-cluster", "--allow-context", "in-cluster")
    proc = cli(*args, "--output-dir", str(out), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((out / "results.json").read_text())
    assert (doc["context"], doc["server"]) == ("in-cluster", f"https://{host}:{port}")
    assert doc["summary"]["cells"]["match"] > 0 and "mismatch" not in doc["summary"]["cells"]

    # A wrong token is refused by the API (401): an infrastructure error, not a verdict.
    (account / "token").write_text("wrong")
    proc = cli(*args, "--output-dir", str(tmp_path / "bad"), env=env)
    assert proc.returncode == 3, proc.stdout + proc.stderr

    # Outside a pod: one sentence saying what to do.
    proc = cli(*args, env={k: v for k, v in env.items() if not k.startswith("KUBERNETES_")})
    assert proc.returncode == 3
    assert "cannot use in-cluster credentials" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


# --- GitHub Action --------------------------------------------------------------------------

ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
_EXPR = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


def run_action(
    inputs: dict[str, str], tmp_path: Path, skip: tuple[str, ...] = ("Install netpol-conformance",)
) -> tuple[list[tuple[str, int]], dict[str, str], str]:
    """Run the action's shell steps as the runner would (bash -e -o pipefail, step env with
    ``${{ }}`` filled in), except ``uses:`` steps and the install step (the wheel test covers
    installing; here ``netpol-conformance`` in the venv the action made is this checkout).
    Returns (step name, exit code) per step run, the step outputs and the job summary."""
    values = {k: v.get("default", "") for k, v in ACTION["inputs"].items()} | inputs
    venv_bin = tmp_path / "runner-temp" / "netpol-conformance" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "netpol-conformance").write_text(
        f'#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m conformance "$@"\n'
    )
    (venv_bin / "netpol-conformance").chmod(0o755)
    output, summary = tmp_path / "output", tmp_path / "summary.md"
    output.touch()
    outputs: dict[str, str] = {}

    def fill(text: str) -> str:
        def one(m: re.Match[str]) -> str:
            expr = m.group(1)
            if expr.startswith("inputs."):
                return str(values[expr.removeprefix("inputs.")])
            if expr == "github.action_path":
                return str(ROOT)
            if expr.startswith("steps.run.outputs."):
                return outputs.get(expr.removeprefix("steps.run.outputs."), "")
            raise AssertionError(f"unexpected expression {expr}")

        return _EXPR.sub(one, text)

    ran: list[tuple[str, int]] = []
    failed = False
    for step in ACTION["runs"]["steps"]:
        if "uses" in step or step["name"] in skip:
            continue
        if failed and "always()" not in step.get("if", ""):
            continue
        env = dict(
            os.environ,
            RUNNER_TEMP=str(tmp_path / "runner-temp"),
            GITHUB_OUTPUT=str(output),
            GITHUB_STEP_SUMMARY=str(summary),
        )
        env.update({k: fill(str(v)) for k, v in step.get("env", {}).items()})
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        ran.append((step["name"], proc.returncode))
        failed = failed or proc.returncode != 0
        for line in output.read_text().splitlines():
            key, _, value = line.partition("=")
            outputs[key] = value
    return ran, outputs, summary.read_text() if summary.exists() else ""


def test_action_runs_the_suite_writes_the_summary_and_passes(
    ec: EmbeddedCluster, tmp_path: Path
) -> None:
    inputs = {
        "suite": "examples",
        "context": ec.context,
        "kubeconfig": ec.kubeconfig,
        "args": "--jobs 2 --probe-timeout 2",
    }
    ran, outputs, summary = run_action(inputs, tmp_path)
    assert ran == [("Run the scenarios", 0), ("Job summary", 0), ("Fail on mismatches", 0)]
    assert outputs["exit-code"] == "0"
    results = json.loads((tmp_path / outputs["results"]).read_text())
    shipped = load_scenarios(suite_paths("examples"))
    assert sorted(s["name"] for s in results["scenarios"]) == sorted(s.name for s in shipped)
    assert results["options"]["probe_timeout_s"] == 2  # extra args reach `run`
    assert summary.startswith("## netpol-conformance: PASS")


def test_action_fails_the_step_with_the_runs_exit_code(ec: EmbeddedCluster, tmp_path: Path) -> None:
    inputs = {
        "scenarios": f"{SMALL}\n{SMALL}",
        "context": ec.context,
        "kubeconfig": ec.kubeconfig,
        "known-deviations": str(tmp_path / "missing.yaml"),
    }
    ran, outputs, summary = run_action(inputs, tmp_path)
    assert ran == [("Run the scenarios", 0), ("Job summary", 0), ("Fail on mismatches", 2)]
    assert outputs["exit-code"] == "2"
    assert "wrote no summary" in summary
