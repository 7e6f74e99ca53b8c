"""The README's commands are the ones a new user types: they must install what the tool needs
and show what the tool prints."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_first_command_installs_the_system_packages_the_default_run_needs() -> None:
    """`run` without a cluster starts the embedded one, which needs `ip` and `nft`; on a fresh
    Debian/Ubuntu machine pip alone cannot install into the system Python (PEP 668)."""
    first = _blocks("sh")[0].splitlines()[0].split("#")[0]
    commands = [shlex.split(c) for c in first.split("&&")]
    installs = [c for c in commands if c[:3] == ["sudo", "apt-get", "install"]]
    assert installs, first
    packages = set(installs[0][3:])
    from conformance.cluster import embedded

    needed = set(
        re.findall(r"apt-get install ([\w\- ]+)\)", Path(embedded.__file__).read_text())[0].split()
    )
    assert needed == {"nftables", "iproute2"} and needed <= packages
    assert "python3-venv" in packages and ["python3", "-m", "venv", ".venv"] in commands
    assert commands[-1][:3] == ["pip", "install", "-e"], "pip runs inside the virtualenv"
    assert _blocks("sh")[0].splitlines()[1].split("#")[0].split() == ["netpol-conformance", "run"]


def test_evaluate_example_is_what_evaluate_prints() -> None:
    (block,) = [b for b in _blocks("console") if "netpol-conformance evaluate" in b]
    command, *shown = block.splitlines()
    argv = shlex.split(command.removeprefix("$ "))
    out = subprocess.run(
        [sys.executable, "-m", "conformance", *argv[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.rstrip("\n").splitlines() == shown


def test_complete_scenarios_in_docs_evaluate_as_declared(tmp_path: Path) -> None:
    """Every complete scenario shown in docs/scenarios.md (a YAML block with `name:` and
    `steps:`) loads, and `evaluate` agrees with what it declares."""
    from conformance.cli import main

    text = (ROOT / "docs" / "scenarios.md").read_text()
    blocks = [
        b
        for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
        if b.startswith("name:") and "\nsteps:" in b
    ]
    assert blocks
    for i, block in enumerate(blocks):
        path = tmp_path / f"doc-{i}.yaml"
        path.write_text(block)
        assert main(["evaluate", str(path)]) == 0, block
