"""The whole shipped suite on the embedded cluster through the CLI: zero mismatches.

The embedded cluster's policy compiler is independent of the reference evaluator, so every
mismatch here is a real bug in one of them (NetworkPolicy and the admin tiers alike).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import disagreeing_cells

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent


def test_whole_suite_agrees_on_real_packets(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance",
            "run",
            str(ROOT / "scenarios"),
            "--output-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    doc = json.loads((tmp_path / "results.json").read_text())
    problems = disagreeing_cells(doc)
    assert not problems, "\n".join(problems[:30])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    statuses = {s["status"] for s in doc["scenarios"]}
    assert statuses <= {"pass", "skipped"}
    skipped = [s for s in doc["scenarios"] if s["status"] == "skipped"]
    assert all("SCTP" in s["message"] for s in skipped), "only SCTP is unsupported here"
    assert doc["summary"]["cells"]["match"] > 5000
