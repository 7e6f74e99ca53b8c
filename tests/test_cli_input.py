"""Bad command-line values are refused in one line, without a traceback, before any cluster is
started or touched (so these need neither root nor a cluster)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DENY_INGRESS = (
    Path(__file__).resolve().parent.parent
    / "scenarios"
    / "upstream"
    / "should-support-a-default-deny-ingress-policy.yaml"
)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conformance", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_jobs_must_be_a_positive_number() -> None:
    proc = cli("run", str(DENY_INGRESS), "--jobs", "0")
    assert proc.returncode == 2
    assert "--jobs" in proc.stderr and "at least 1, not '0'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cluster_up_bad_input_is_one_line() -> None:
    res = cli("cluster", "up", "--name", "badinput", "--deviation", "ignore-everything")
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "unknown deviation 'ignore-everything'" in res.stderr
    assert "Traceback" not in res.stderr
    res = cli("cluster", "up", "--name", "Bad_Name")
    assert res.returncode == 1 and "instance name" in res.stderr and "Traceback" not in res.stderr
