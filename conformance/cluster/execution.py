"""Running exec'd commands inside a pod: every exec is a real process, as a container runtime makes.

Why: probes must originate in the pod's network namespace, and an exec must cost what it costs on a
real node (a process started in the container's namespaces), or comparisons such as batched versus
one-exec-per-probe would measure a shortcut. Commands run via ``nsenter`` in the pod's network and
the holder's file view, where ``/agnhost`` exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence

from conformance.cluster import native, rootfs
from conformance.errors import ClusterError

Sink = Callable[[bytes], Awaitable[None]]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Executor:
    """Owns the rootfs holder process and every running exec process."""

    def __init__(self, state_dir: str) -> None:
        self.root = os.path.join(state_dir, "root")
        self.holder: asyncio.subprocess.Process | None = None
        self.procs: set[asyncio.subprocess.Process] = set()
        self.native: str | None = None

    async def start(self) -> None:
        """Start the holder; it prints ``ready`` once ``/agnhost`` exists in its view."""
        os.makedirs(self.root, exist_ok=True)
        cache = os.path.join(os.path.dirname(os.path.dirname(self.root)), ".native")
        self.native = await asyncio.to_thread(native.cached, cache)
        self.holder = await asyncio.create_subprocess_exec(
            *rootfs.holder_argv(self.root, self.native or ""),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.holder.stdout is not None
        try:
            line = await asyncio.wait_for(self.holder.stdout.readline(), 10)
        except TimeoutError:
            line = b""
        if line.strip() != b"ready":
            err = b""
            if self.holder.stderr is not None:
                with contextlib.suppress(TimeoutError):
                    err = await asyncio.wait_for(self.holder.stderr.read(), 2)
            text = err.decode(errors="replace").strip().splitlines()
            raise ClusterError(
                f"exec file view could not be prepared: {text[-1] if text else 'no output'}"
            )

    async def run(
        self,
        netns_file: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        stdout: Sink,
        stderr: Sink,
        stdin: asyncio.Queue[bytes | None] | None = None,
    ) -> int:
        """Run ``argv`` in the pod; streams output to the sinks; returns the exit code."""
        loop = asyncio.get_running_loop()
        if self.holder is None:
            raise ClusterError("exec is not available: the cluster is not started")
        full_env = {"PATH": DEFAULT_PATH, "HOME": "/root", **env}
        proc = await asyncio.create_subprocess_exec(
            *rootfs.exec_argv(self.holder.pid, netns_file, list(argv)),
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=full_env,
            start_new_session=True,
        )
        self.procs.add(proc)
        try:

            async def pump(stream: asyncio.StreamReader | None, sink: Sink) -> None:
                if stream is None:
                    return
                while chunk := await stream.read(65536):
                    await sink(chunk)

            async def feed() -> None:
                if stdin is None or proc.stdin is None:
                    return
                while (data := await stdin.get()) is not None:
                    proc.stdin.write(data)
                    with contextlib.suppress(ConnectionError):
                        await proc.stdin.drain()
                proc.stdin.close()

            feeder = loop.create_task(feed())
            await asyncio.gather(pump(proc.stdout, stdout), pump(proc.stderr, stderr))
            code = await proc.wait()
            feeder.cancel()
            return code
        finally:
            if proc.returncode is None:
                self.kill(proc)
                await proc.wait()
            self.procs.discard(proc)

    @staticmethod
    def kill(proc: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    async def stop(self) -> None:
        """Kill every exec process group and the holder."""
        for proc in list(self.procs):
            self.kill(proc)
        if self.holder is not None and self.holder.returncode is None:
            if self.holder.stdin is not None:
                self.holder.stdin.close()
            with contextlib.suppress(ProcessLookupError):
                self.holder.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.holder.wait(), 5)
        with contextlib.suppress(OSError):
            os.rmdir(self.root)
