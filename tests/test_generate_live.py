"""Random scenarios on real packets: the evaluator and the embedded cluster's independent policy
compiler must agree on every cell (differential testing; any mismatch is a bug in one of them).

The seed is fixed so CI is reproducible; set NETPOL_GENERATE_SEED to explore other draws.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import disagreeing_cells

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

SEED = int(os.environ.get("NETPOL_GENERATE_SEED", "20261128"))


# (--admin, count): NetworkPolicies only, then each admin API version with NetworkPolicies.
SETS = (("", 12), ("v1alpha1", 6), ("v1alpha2", 6))


def test_random_policies_agree_on_real_packets(tmp_path: Path) -> None:
    """Each set generated on its own, all run by one `run` (one embedded cluster for all)."""
    cmd = [sys.executable, "-m", "conformance"]
    folders = {}
    for admin, count in SETS:
        gen = folders[admin] = tmp_path / f"generated-{admin or 'netpol'}"
        args = ["--seed", str(SEED), "--count", str(count), "--steps", "3", "--out", str(gen)]
        subprocess.run(
            [*cmd, "generate", *args, *(["--admin", admin] if admin else [])],
            check=True,
            capture_output=True,
        )
    proc = subprocess.run(
        [*cmd, "run", *map(str, folders.values()), "--output-dir", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    problems = disagreeing_cells(doc)
    assert not problems, f"seed {SEED}:\n" + "\n".join(problems[:30])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for admin, count in SETS:
        ran = [s for s in doc["scenarios"] if Path(s["file"]).parent == folders[admin]]
        assert [s["status"] for s in ran] == ["pass"] * count, admin
        matched = sum(c["status"] == "match" for s in ran for st in s["steps"] for c in st["cells"])
        assert matched >= count * 3 * 200, admin
