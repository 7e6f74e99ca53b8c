"""The composite GitHub Action (action.yml): linted as the workflows are, and its verdict step.

Its shell steps run against the embedded cluster in tests/test_where_to_run_e2e.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())


@pytest.mark.parametrize(
    ("rc", "message"), [("1", "cells mismatch"), ("3", "the run could not complete")]
)
def test_the_last_step_fails_with_the_runs_exit_code_and_says_why(rc: str, message: str) -> None:
    step = next(s for s in ACTION["runs"]["steps"] if s["name"] == "Fail on mismatches")
    proc = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", step["run"]],
        env=dict(os.environ, RC=rc),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == int(rc)
    assert f"::error title=netpol-conformance::{message}" in proc.stdout


def test_inputs_reach_the_steps_only_through_env() -> None:
    """No ``${{ }}`` inside a shell script: inputs go through env (no template injection)."""
    for step in ACTION["runs"]["steps"]:
        assert "${{" not in step.get("run", ""), step["name"]


def test_the_cni_matrix_workflow_uses_the_action() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "cni-matrix.yml").read_text())
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    assert any(s.get("uses") == "./" for s in steps)


@pytest.mark.parametrize(
    "cmd",
    [
        ["check-jsonschema", "--builtin-schema", "vendor.github-actions", "action.yml"],
        ["zizmor", "--offline", "--no-progress", "action.yml"],
    ],
)
def test_action_passes_the_workflow_linters(cmd: list[str]) -> None:
    if shutil.which(cmd[0]) is None:
        pytest.skip(f"{cmd[0]} is not installed (.ci/run installs it)")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
