"""Thin helpers over Linux network namespaces: run ``ip``/``nft``, enter a namespace per thread.

Why: the daemon creates sockets inside pod namespaces from its own process (setns on one
thread, socket, setns back) instead of running a process per pod, which keeps pods cheap.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from conformance.errors import ClusterError

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"

_T = TypeVar("_T")
_libc = ctypes.CDLL(None, use_errno=True)


def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
    """Move the calling thread into the namespace behind ``fd`` (setns(2))."""
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def netns_path(name: str) -> str:
    """Path of a named namespace as ``ip netns`` creates it."""
    return os.path.join(NETNS_DIR, name)


@contextmanager
def entered(ns_fd: int) -> Iterator[None]:
    """Run a block with the current thread inside the namespace ``ns_fd``, then return."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        setns(ns_fd)
        try:
            yield
        finally:
            setns(home)
    finally:
        os.close(home)


def call_in(ns_fd: int, func: Callable[[], _T]) -> _T:
    """Call ``func`` with this thread inside the namespace ``ns_fd``."""
    with entered(ns_fd):
        return func()


def socket_in(ns_fd: int, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket that belongs to namespace ``ns_fd`` (sockets keep the namespace they were born in)."""
    return call_in(ns_fd, lambda: socket.socket(family, kind, proto))


def list_netns() -> list[str]:
    """Names of all named network namespaces on this machine."""
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def run(argv: Sequence[str], stdin: str | None = None) -> str:
    """Run a tool synchronously; a non-zero exit raises ``ClusterError`` naming the command."""
    proc = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise ClusterError(f"{' '.join(argv[:4])} failed: {msg[0] if msg else proc.returncode}")
    return proc.stdout


async def arun(argv: Sequence[str], stdin: str | None = None) -> str:
    """Async ``run``: the event loop keeps serving while ``ip``/``nft`` work."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    if proc.returncode != 0:
        text = (err or out).decode(errors="replace").strip().splitlines()
        first = text[0] if text else str(proc.returncode)
        raise ClusterError(f"{' '.join(argv[:4])} failed: {first}")
    return out.decode(errors="replace")
