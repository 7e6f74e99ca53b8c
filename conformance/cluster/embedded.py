"""Python API of the embedded cluster: start, find, stop and clean up instances.

Why: the CLI (``cluster up|down|status``) and the runner (one cluster per run, removed afterwards)
share one launcher. The daemon is a separate process so ``up`` can return; the listening socket
is bound here and handed over, so the port (and kubeconfig) are known before the daemon starts.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import yaml

from conformance.cluster import dataplane as dp
from conformance.cluster import netns, tls
from conformance.cluster.config import INSTANCE_RE, ClusterOptions, context_name, state_dir
from conformance.cluster.config import state_root as config_state_root
from conformance.errors import ClusterError

DAEMON_MODULE = "conformance.cluster.daemon"


@dataclass(frozen=True)
class ClusterInfo:
    """A running instance: where to reach it and how to stop it."""

    instance: str
    server: str
    kubeconfig: str
    context: str
    pid: int
    state_dir: str
    token: str
    ca: str = ""
    """The cluster's CA certificate (PEM file) that signs the API's serving certificate."""

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts only this cluster's CA."""
        return ssl.create_default_context(cafile=self.ca)

    def headers(self) -> dict[str, str]:
        """The bearer token every request needs (401 Unauthorized without it)."""
        return {"Authorization": f"Bearer {self.token}"}


def kubeconfig_text(server: str, context: str, token: str, ca_pem: bytes = b"") -> str:
    """A kubeconfig with one cluster, user and context (namespace ``default``)."""
    cluster: dict[str, Any] = {"server": server}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": cluster}],
        "users": [{"name": context, "user": {"token": token} if token else {}}],
        "contexts": [
            {
                "name": context,
                "context": {"cluster": context, "user": context, "namespace": "default"},
            }
        ],
        "current-context": context,
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
    except OSError:
        return False
    if DAEMON_MODULE.encode() not in cmdline:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _read_state(directory: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(directory, "state.json"), encoding="utf-8") as fh:
            data: dict[str, Any] = json.load(fh)
            return data
    except (OSError, ValueError):
        return None


def _info(data: dict[str, Any], directory: str) -> ClusterInfo:
    return ClusterInfo(
        data["instance"],
        data["server"],
        data["kubeconfig"],
        data["context"],
        int(data["pid"]),
        directory,
        data["token"],
        data.get("ca", ""),
    )


def find(instance: str, state_root: str | None = None) -> ClusterInfo | None:
    """The running instance of that name, or None (a dead one's state does not count)."""
    directory = state_dir(instance, state_root)
    data = _read_state(directory)
    if data is None or not _alive(int(data.get("pid", 0))):
        return None
    return _info(data, directory)


def _kill_in_namespaces(instance: str) -> int:
    """SIGKILL every process whose network namespace is one of ``instance``'s; returns the count."""
    inodes = set()
    for name in netns.list_netns():
        if name.startswith(dp.prefix_for(instance)):
            with contextlib.suppress(OSError):
                st = os.stat(netns.netns_path(name))
                inodes.add((st.st_dev, st.st_ino))
    if not inodes:
        return 0
    killed = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            st = os.stat(f"/proc/{entry}/ns/net")
            if (st.st_dev, st.st_ino) in inodes:
                os.kill(int(entry), signal.SIGKILL)
                killed += 1
    return killed


def cleanup(instance: str, state_root: str | None = None) -> list[str]:
    """Remove whatever a crashed instance left: processes in its namespaces, namespaces, state."""
    directory = state_dir(instance, state_root)
    data = _read_state(directory)
    if data is not None and _alive(int(data.get("pid", 0))):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(data["pid"]), signal.SIGKILL)
    _kill_in_namespaces(instance)
    removed = dp.cleanup_namespaces(instance)
    root = os.path.join(directory, "root")
    if os.path.isdir(root):
        with contextlib.suppress(OSError):
            os.rmdir(root)
    shutil.rmtree(directory, ignore_errors=True)
    return removed


STARTING_GRACE_S = 600.0
"""A state folder without ``state.json`` younger than this may be an instance still starting."""


def running_instances() -> set[str]:
    """Instance names of every live embedded daemon on this machine, whatever its state root.

    Read from each daemon's command line (``--config <dir>/config.json``) and that config; a
    daemon that cannot be identified raises ``ClusterError`` so nothing is pruned by mistake.
    """
    names: set[str] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or not _alive(int(entry)):
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                args = fh.read().split(b"\0")
            if DAEMON_MODULE.encode() not in args:
                continue
            config = args[args.index(b"--config") + 1].decode()
            with open(config, encoding="utf-8") as fh:
                names.add(str(json.load(fh)["options"]["instance"]))
        except FileNotFoundError:
            continue  # it exited meanwhile (its cleanup removes the config first)
        except (OSError, ValueError, IndexError, KeyError, TypeError) as exc:
            raise ClusterError(
                f"cannot tell which embedded cluster daemon pid {entry} serves ({exc}); "
                "nothing was pruned"
            ) from None
    return names


def prune(state_root: str | None = None) -> list[str]:
    """Remove every orphaned embedded instance: one whose daemon is gone (killed, crashed) but
    whose state folder, network namespaces or processes in them are left. Running instances,
    in any state root, are never touched. Returns one line per instance removed."""
    running = running_instances()
    removed: list[str] = []
    root = config_state_root(state_root)
    try:
        entries = sorted(os.listdir(root))
    except FileNotFoundError:
        entries = []
    for name in entries:
        directory = os.path.join(root, name)
        if name in running or not INSTANCE_RE.match(name) or not os.path.isdir(directory):
            continue
        if _read_state(directory) is None:
            with contextlib.suppress(OSError):
                if time.time() - os.path.getmtime(directory) < STARTING_GRACE_S:
                    continue  # maybe starting right now: start() writes state.json when ready
        namespaces = cleanup(name, state_root)
        removed.append(f"embedded cluster {name}: {directory} and {len(namespaces)} namespaces")
    # Namespaces of daemons whose state is elsewhere (another state root) or already removed.
    orphans = {n.split("-")[1] for n in netns.list_netns() if n.startswith("npc-")} - running
    for name in sorted(o for o in orphans if INSTANCE_RE.match(o)):
        _kill_in_namespaces(name)
        namespaces = dp.cleanup_namespaces(name)
        if namespaces:
            removed.append(f"embedded cluster {name}: {len(namespaces)} namespaces")
    return removed


def rootless() -> bool:
    """Run the daemon in its own user+network+mount namespaces: when not root, or when forced
    with ``NETPOL_CONFORMANCE_ROOTLESS=1`` (how CI, which is root, exercises this path)."""
    return os.geteuid() != 0 or os.environ.get("NETPOL_CONFORMANCE_ROOTLESS") == "1"


def _launch_argv(config: str, listen_fd: int, ready_fd: int, lifeline_fd: int) -> list[str]:
    argv = [sys.executable, "-m", DAEMON_MODULE, "--config", config]
    argv += ["--listen-fd", str(listen_fd), "--ready-fd", str(ready_fd)]
    if lifeline_fd >= 0:
        argv += ["--lifeline-fd", str(lifeline_fd)]
    if rootless():
        prefix = [
            "unshare",
            "--user",
            "--map-root-user",
            "--net",
            "--mount",
            "--propagation",
            "private",
        ]
        return [*prefix, *argv, "--rootless"]
    return argv


def start(
    options: ClusterOptions, timeout: float = 30.0, detach: bool = True
) -> tuple[ClusterInfo, subprocess.Popen[bytes]]:
    """Start a daemon for ``options`` and wait until it serves; cleans a crashed predecessor.

    ``detach=False`` ties the cluster to this process: the daemon holds the read end of a pipe
    whose write end only this process has, and removes everything when it closes — also when
    this process is killed without a chance to call ``stop``.
    """
    if shutil.which("nft") is None or shutil.which("ip") is None:
        raise ClusterError(
            "the embedded cluster needs the 'nft' and 'ip' tools (apt-get install nftables iproute2)"
        )
    running = find(options.instance, options.state_root)
    if running is not None:
        raise ClusterError(
            f"embedded cluster {options.instance!r} is already running (kubeconfig {running.kubeconfig})"
        )
    cleanup(options.instance, options.state_root)
    directory = state_dir(options.instance, options.state_root)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)  # the token, key and kubeconfig are for this user only
    # Any local process can reach 127.0.0.1, and exec runs commands as root: every request needs
    # this per-cluster token, over TLS (kubectl sends no token over plain http).
    token = secrets.token_urlsafe(32)
    serving = tls.make_serving_files(directory, options.instance)
    config = os.path.join(directory, "config.json")
    with os.fdopen(os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
        json.dump(
            {
                "options": options.to_json(),
                "token": token,
                "tls": {"cert": serving.cert, "key": serving.key},
            },
            fh,
        )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", options.port))
        except OSError as exc:
            raise ClusterError(
                f"cannot listen on 127.0.0.1:{options.port}: {exc.strerror}"
            ) from None
        sock.listen(1024)
        port = sock.getsockname()[1]
        read_end, write_end = os.pipe()
        life_read, life_write = os.pipe() if not detach else (-1, -1)
        fds = (sock.fileno(), write_end) if detach else (sock.fileno(), write_end, life_read)
        try:
            proc = subprocess.Popen(
                _launch_argv(config, sock.fileno(), write_end, life_read),
                pass_fds=fds,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(directory, "daemon.stderr"), "wb"),  # noqa: SIM115
                start_new_session=True,
            )
        finally:
            os.close(write_end)
            if life_read >= 0:
                os.close(life_read)
    finally:
        sock.close()
    if life_write >= 0:
        _LIFELINES[proc.pid] = life_write
    line = b""
    try:
        deadline = time.monotonic() + timeout
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read_end], [], [], left)[0]:
                break
            chunk = os.read(read_end, 4096)
            if not chunk:
                break
            line += chunk
    finally:
        os.close(read_end)
    if line.strip() != b"ready":
        if proc.pid in _LIFELINES:
            os.close(_LIFELINES.pop(proc.pid))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            # No state file names this daemon yet, so cleanup() could not find it: kill it here.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        reason = line.decode(errors="replace").strip().removeprefix("error: ")
        if not reason:
            with (
                contextlib.suppress(OSError),
                open(os.path.join(directory, "daemon.stderr"), encoding="utf-8") as fh,
            ):
                tail = fh.read().strip().splitlines()
                reason = tail[-1] if tail else ""
        cleanup(options.instance, options.state_root)
        raise ClusterError(
            f"embedded cluster {options.instance!r} did not start: {reason or 'timed out'}"
        )
    server = f"https://127.0.0.1:{port}"
    context = context_name(options.instance)
    kubeconfig = os.path.join(directory, "kubeconfig")
    with open(serving.ca, "rb") as fh:
        ca_pem = fh.read()
    with os.fdopen(os.open(kubeconfig, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
        fh.write(kubeconfig_text(server, context, token, ca_pem))
    os.chmod(kubeconfig, 0o600)
    data = {
        "instance": options.instance,
        "server": server,
        "kubeconfig": kubeconfig,
        "context": context,
        "pid": proc.pid,
        "token": token,
        "ca": serving.ca,
    }
    state = os.path.join(directory, "state.json")
    with os.fdopen(os.open(state, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
        json.dump(data, fh)
    return _info(data, directory), proc


_LIFELINES: dict[int, int] = {}
"""Write ends of the lifeline pipes of clusters this process started with ``detach=False``."""


def stop(instance: str, state_root: str | None = None, timeout: float = 15.0) -> bool:
    """Stop an instance (SIGTERM, then SIGKILL) and remove all it left; True if one was running."""
    info = find(instance, state_root)
    if info is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(info.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    cleanup(instance, state_root)
    if info is not None and info.pid in _LIFELINES:
        with contextlib.suppress(OSError):
            os.close(_LIFELINES.pop(info.pid))
    return info is not None


def daemon_status(info: ClusterInfo, timeout: float = 5.0) -> dict[str, Any]:
    """The daemon's own counters (enforcement generations, rule counts, injected faults)."""
    req = urllib.request.Request(f"{info.server}/embedded/v1/status", headers=info.headers())
    with urllib.request.urlopen(req, timeout=timeout, context=info.ssl_context()) as resp:
        data: dict[str, Any] = json.load(resp)
        return data


def outside_exec(
    info: ClusterInfo, name: str, argv: list[str], timeout: float = 120.0
) -> dict[str, Any]:
    """Run ``argv`` on the simulated outside host ``name``: ``{exitCode, stdout, stderr}``."""
    req = urllib.request.Request(
        f"{info.server}/embedded/v1/outside/{urllib.parse.quote(name, safe='')}/exec",
        data=json.dumps({"command": argv}).encode(),
        headers={**info.headers(), "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=info.ssl_context()) as resp:
            out: dict[str, Any] = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("message", str(exc))
        except ValueError:
            message = str(exc)
        raise ClusterError(f"outside host {name}: {message}") from None
    except OSError as exc:
        raise ClusterError(f"outside host {name}: {exc}") from None
    return out


class EmbeddedCluster:
    """Context manager: an embedded cluster for the duration of a ``with`` block.

    >>> with EmbeddedCluster(ClusterOptions(instance="run1")) as cluster:
    ...     api = kubernetes.config.new_client_from_config(cluster.kubeconfig, cluster.context)
    """

    def __init__(self, options: ClusterOptions | None = None, start_timeout: float = 30.0) -> None:
        self.options = options or ClusterOptions()
        self.start_timeout = start_timeout
        self._info: ClusterInfo | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def info(self) -> ClusterInfo:
        if self._info is None:
            raise ClusterError("the embedded cluster is not running")
        return self._info

    @property
    def kubeconfig(self) -> str:
        return self.info.kubeconfig

    @property
    def context(self) -> str:
        return self.info.context

    @property
    def server(self) -> str:
        return self.info.server

    def start(self) -> ClusterInfo:
        self._info, self._proc = start(self.options, self.start_timeout, detach=False)
        return self._info

    def stop(self) -> None:
        stop(self.options.instance, self.options.state_root)
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(5)
        self._info, self._proc = None, None

    def status(self) -> dict[str, Any]:
        return daemon_status(self.info)

    def __enter__(self) -> EmbeddedCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
