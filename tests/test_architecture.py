"""The import rules of pyproject.toml's ``[tool.importlinter]`` hold (what ``lint-imports`` checks).

One test per contract, so a failure names the broken rule; its message is import-linter's report:
which module imports which, and on what line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
    "contracts"
]


def lint_imports(*args: str) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on this checkout (not whichever copy of the package is installed)."""
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "COLUMNS": "200"}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlinter.cli import lint_imports_command; lint_imports_command()",
            "--no-cache",
            "--no-logo",
            *args,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_contracts_are_declared() -> None:
    ids = [c["id"] for c in CONTRACTS]
    assert {"layers", "pure-core", "independent-cluster", "commands-are-leaves"} <= set(ids)


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c["id"])
def test_import_contract_is_kept(contract: dict[str, str]) -> None:
    proc = lint_imports("--contract", contract["id"])
    assert proc.returncode == 0, f"broken: {contract['name']}\n{proc.stdout}{proc.stderr}"
    assert "1 kept, 0 broken" in proc.stdout, proc.stdout + proc.stderr
