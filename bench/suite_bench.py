"""The whole shipped suite on the embedded cluster, at default options, against the 60 s target.

Runs ``netpol-conformance run scenarios/`` (each variant one after the other, in this checkout),
prints each run's wall time, its ratio to the 60 s target (issue 18: <= 60 s on a 2-core
machine), the machine's load average before and after, the runner's CPU time, and whether every
cell (expected, observed verdict, status) is the same as in the first variant's run.

A variant adds options: ``--variant "deny 0.5=--deny-timeout 0.5"``; without any, the defaults
alone. Run as root: python bench/suite_bench.py [--variant LABEL=ARGS ...] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 60.0

CellKey = tuple[Any, ...]


def cells(results: Path) -> dict[CellKey, tuple[Any, ...]]:
    """Every cell of a results JSON: (scenario, step, from, to, port, protocol, family) ->
    (expected, observed verdict, status, declared)."""
    doc = json.loads(results.read_text())
    out = {}
    for sc in doc["scenarios"]:
        for st in sc["steps"]:
            for c in st["cells"]:
                key = (sc["name"], st["index"], c["from"], c["to"], c["port"], c["protocol"])
                out[(*key, c.get("family"))] = (
                    c["expected"],
                    c.get("observed_verdict"),
                    c["status"],
                    c.get("declared"),
                )
    return out


def run_once(args: list[str], out_dir: Path) -> tuple[float, float, int, Path]:
    """Wall time, CPU seconds of the run (its process and children), exit code, results."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance",
            "run",
            "scenarios/",
            "--output-dir",
            str(out_dir),
            *args,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0, 1):
        print(proc.stdout[-2000:])
    return wall, cpu, proc.returncode, out_dir / "results.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL=ARGS",
        help="run options of one variant (repeatable; default: one run at default options)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each variant, in turn")
    args = parser.parse_args()
    variants = [v.split("=", 1) for v in args.variant] or [["default", ""]]
    reference: dict[CellKey, tuple[Any, ...]] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.repeat):
            for label, extra in variants:
                load = os.getloadavg()[0]
                out = Path(tmp) / f"{round_}-{len(label)}-{abs(hash(label))}"
                wall, cpu, code, results = run_once(shlex.split(extra), out)
                got = cells(results) if results.exists() else {}
                if reference is None:
                    reference = got
                same = got == reference and bool(got)
                print(
                    f"{label:24s} wall {wall:6.1f} s  ratio to {TARGET_S:.0f} s: "
                    f"{wall / TARGET_S:4.2f}  cpu {cpu:6.1f} s  exit {code}  "
                    f"load {load:5.1f} -> {os.getloadavg()[0]:5.1f}  "
                    f"cells {len(got)} same as the first run: {same}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
