"""Nothing is left behind: down, signals, crashes, failed starts and interrupted runs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conformance.cluster import embedded
from conformance.cluster.config import ClusterOptions, ExternalHost, state_dir
from conformance.cluster.netns import list_netns
from conformance.errors import ClusterError, ConformanceError
from tests.cluster.conftest import Kube, agnhost_pod, unique_instance

pytestmark = pytest.mark.cluster


BASE = 3
"""Namespaces of an idle default cluster: the underlay ("wire") and two nodes."""


def ours(instance: str) -> list[str]:
    return [n for n in list_netns() if n.startswith(f"npc-{instance}-")]


def processes_of(instance: str) -> list[int]:
    """PIDs whose command line or network namespace belongs to ``instance``."""
    inodes = set()
    for name in ours(instance):
        st = os.stat(f"/run/netns/{name}")
        inodes.add((st.st_dev, st.st_ino))
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read()
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (embedded.DAEMON_MODULE.encode() in cmd and f"/{instance}/".encode() in cmd) or (
            st.st_dev,
            st.st_ino,
        ) in inodes:
            found.append(int(entry))
    return found


def wait_gone(pid: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except OSError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still alive")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conformance", "cluster", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_up_status_down_leaves_nothing() -> None:
    name = unique_instance("cli")
    up = run_cli("up", "--name", name, "--external", "web=203.0.113.10:80/TCP")
    assert up.returncode == 0, up.stderr
    assert "kubeconfig: " in up.stdout
    assert len(ours(name)) == BASE + 1  # wire, nodes + external host
    status = run_cli("status", "--name", name)
    assert status.returncode == 0 and f"netpol-embedded-{name}" in status.stdout
    info = embedded.find(name)
    assert info is not None and os.path.exists(info.kubeconfig)
    down = run_cli("down", "--name", name)
    assert down.returncode == 0 and "stopped" in down.stdout
    wait_gone(info.pid)
    assert ours(name) == [] and processes_of(name) == []
    assert not os.path.exists(info.state_dir)
    assert run_cli("status", "--name", name).returncode == 3


def test_failed_start_removes_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = unique_instance("fail")
    with pytest.raises(ConformanceError, match=r"203\.0\.113\.0/24"):
        ClusterOptions(instance=name, externals=(ExternalHost("x", "10.0.0.5"),))
    # An nft that fails: start-up breaks after the node namespace exists.
    fake = tmp_path / "nft"
    fake.write_text("#!/bin/sh\necho 'Error: simulated nft failure' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with pytest.raises(
        ClusterError, match=r"did not start: nftables rules could not be installed: .*simulated"
    ):
        embedded.start(ClusterOptions(instance=name), timeout=20)
    assert ours(name) == [] and processes_of(name) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_daemon_removes_pods_and_exec_processes(sig: signal.Signals) -> None:
    name = unique_instance("sig")
    cluster = embedded.EmbeddedCluster(ClusterOptions(instance=name))
    info = cluster.start()
    try:
        kube = Kube(cluster)
        kube.pods("default", [agnhost_pod("a")])
        # A long-running exec: its processes live in the pod's namespace and must die too.
        import threading

        def long_exec() -> None:
            # The stream dies with the daemon; that is the point of this test.
            with contextlib.suppress(Exception):
                kube.exec("default", "a", ["sh", "-c", "sleep 60 & sleep 60"], 30)

        t = threading.Thread(target=long_exec, daemon=True)
        t.start()
        deadline = time.monotonic() + 10
        while len(processes_of(name)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = processes_of(name)
        assert len(ours(name)) == BASE + 1 and len(pids) >= 3
        os.kill(info.pid, sig)
        for pid in pids:
            wait_gone(pid)
        assert ours(name) == [] and processes_of(name) == []
    finally:
        cluster.stop()


def test_crashed_daemon_is_cleaned_by_next_down_and_up() -> None:
    name = unique_instance("crash")
    cluster = embedded.EmbeddedCluster(ClusterOptions(instance=name))
    info = cluster.start()
    kube = Kube(cluster)
    kube.pods("default", [agnhost_pod("a")])
    os.kill(info.pid, signal.SIGKILL)
    wait_gone(info.pid)
    assert len(ours(name)) == BASE + 1  # a crash leaves namespaces behind ...
    assert embedded.find(name) is None
    cluster2 = embedded.EmbeddedCluster(ClusterOptions(instance=name))
    cluster2.start()  # ... which the next up removes before starting afresh
    try:
        assert len(ours(name)) == BASE
    finally:
        cluster2.stop()
    assert ours(name) == [] and processes_of(name) == []
    cluster.stop()


def test_interrupted_run_with_context_manager_cleans_up(tmp_path: object) -> None:
    """A runner using ``EmbeddedCluster`` that gets Ctrl-C mid-run leaves nothing."""
    name = unique_instance("intr")
    script = textwrap.dedent(
        f"""
        import sys, time
        from conformance.cluster.config import ClusterOptions
        from conformance.cluster.embedded import EmbeddedCluster
        from tests.cluster.conftest import Kube, agnhost_pod
        with EmbeddedCluster(ClusterOptions(instance={name!r})) as c:
            Kube(c).pods("default", [agnhost_pod("a"), agnhost_pod("b")])
            print("ready", flush=True)
            time.sleep(60)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=os.getcwd(),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    assert len(ours(name)) == BASE + 2
    pids = processes_of(name)
    proc.send_signal(signal.SIGINT)
    proc.wait(30)
    for pid in pids:
        wait_gone(pid)
    assert ours(name) == [] and processes_of(name) == []


def test_owner_killed_without_cleanup_takes_its_cluster_along() -> None:
    """SIGKILL of a runner using ``EmbeddedCluster``: the daemon notices and removes everything."""
    name = unique_instance("own")
    script = textwrap.dedent(
        f"""
        import time
        from conformance.cluster.config import ClusterOptions
        from conformance.cluster.embedded import EmbeddedCluster
        from tests.cluster.conftest import Kube, agnhost_pod
        c = EmbeddedCluster(ClusterOptions(instance={name!r}))
        c.start()
        Kube(c).pods("default", [agnhost_pod("a")])
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    pids = processes_of(name)
    assert len(ours(name)) == BASE + 1 and pids
    proc.kill()
    proc.wait(10)
    for pid in pids:
        wait_gone(pid)
    assert ours(name) == [] and processes_of(name) == []
    deadline = time.monotonic() + 5
    while os.path.exists(state_dir(name)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(state_dir(name))


@pytest.mark.parametrize("timeout", [0.05, 0.15])
def test_start_timeout_stops_the_daemon_mid_startup(timeout: float) -> None:
    """A launcher giving up (slow machine) must not leave a half-started daemon behind."""
    name = unique_instance("slow")
    try:
        embedded.start(ClusterOptions(instance=name), timeout=timeout)
    except ClusterError as exc:
        assert "did not start" in str(exc)
    else:  # pragma: no cover - only on a machine faster than the timeout
        embedded.stop(name)
        pytest.skip(f"the cluster started within {timeout} s")
    deadline = time.monotonic() + 10
    while (ours(name) or processes_of(name)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ours(name) == [] and processes_of(name) == []
