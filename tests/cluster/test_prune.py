"""``cluster prune`` (and ``clean``) remove embedded instances whose daemon is gone, and never a
running one, whatever state root it uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.cluster import embedded
from conformance.cluster.netns import list_netns
from tests.cluster.conftest import unique_instance

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]


def add_netns(name: str) -> subprocess.Popen[bytes]:
    """A named network namespace with a process sleeping in it (like a pod's server)."""
    subprocess.run(["ip", "netns", "add", name], check=True)
    return subprocess.Popen(["ip", "netns", "exec", name, "sleep", "120"])


def state(root: Path, instance: str, pid: int) -> Path:
    directory = root / instance
    directory.mkdir(parents=True)
    config = directory / "config.json"
    config.write_text(json.dumps({"options": {"instance": instance}, "token": ""}))
    (directory / "state.json").write_text(json.dumps({"instance": instance, "pid": pid}))
    return config


@pytest.fixture
def leftovers() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        if name in list_netns():
            subprocess.run(["ip", "netns", "delete", name], check=False)


def test_prune_removes_orphans_and_keeps_running_instances(
    tmp_path: Path, leftovers: list[str]
) -> None:
    dead, alive, starting = unique_instance("pd"), unique_instance("pa"), unique_instance("ps")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    state(tmp_path, dead, gone.pid)
    leftovers += [f"npc-{dead}-a", f"npc-{alive}-a"]
    orphan_server = add_netns(f"npc-{dead}-a")
    # A "daemon" as prune sees one: its command line names the module and its config.
    config = state(tmp_path / "elsewhere", alive, 0)
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; time.sleep(120)",
            embedded.DAEMON_MODULE,
            "--config",
            str(config),
        ]
    )
    live_server = add_netns(f"npc-{alive}-a")
    (tmp_path / starting).mkdir()  # no state.json yet: maybe starting right now
    try:
        time.sleep(0.2)
        assert alive in embedded.running_instances()
        removed = embedded.prune(str(tmp_path))
        assert any(line.startswith(f"embedded cluster {dead}:") for line in removed), removed
        assert not any(alive in line or starting in line for line in removed), removed
        assert not (tmp_path / dead).exists() and (tmp_path / starting).is_dir()
        assert f"npc-{dead}-a" not in list_netns() and f"npc-{alive}-a" in list_netns()
        assert orphan_server.wait(10) != 0  # killed with its namespace
        assert live_server.poll() is None and daemon.poll() is None
    finally:
        for proc in (daemon, live_server, orphan_server):
            proc.kill()
            proc.wait()


def test_cluster_prune_command_removes_a_dead_instances_state(tmp_path: Path) -> None:
    dead = unique_instance("pc")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    state(tmp_path, dead, gone.pid)
    env = {**os.environ, "NETPOL_CONFORMANCE_STATE": str(tmp_path), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "conformance", "cluster", "prune"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"embedded cluster {dead}: {tmp_path / dead} and 0 namespaces" in proc.stdout
    assert not (tmp_path / dead).exists()
