"""Emulation of the agnhost image's servers (``serve-hostname``, ``porter``, ``pause``) in a pod.

Why: pods of the embedded cluster run no container; this module decides from a pod spec what the
real image would serve, refuses what it cannot emulate, and serves those ports from sockets the
daemon creates inside the pod's network namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conformance.cluster import netns
from conformance.cluster.agnhost_cli import IPPROTO_SCTP

AGNHOST_IMAGE = re.compile(r"^registry\.k8s\.io/e2e-test-images/agnhost:[\w][\w.-]{0,127}$")
_SCTP_ENV = re.compile(r"^SERVE_SCTP_PORT_(\d+)$")
_HTTP_ENV = re.compile(r"^SERVE_PORT_(\d+)$")
_TLS_ENV = re.compile(r"^SERVE_TLS_PORT_(\d+)$")


class CannotEmulate(Exception):
    """A container the embedded cluster cannot run; the message becomes the pod's failure reason."""


@dataclass(frozen=True)
class Listener:
    """One port a pod serves: protocol ``TCP``/``UDP``/``SCTP``, style ``raw`` or ``http``."""

    protocol: str
    port: int
    reply: str
    style: str = "raw"


def _bool_flag(value: str, name: str) -> bool:
    if value in ("true", "1", "t", "T", "TRUE", "True"):
        return True
    if value in ("false", "0", "f", "F", "FALSE", "False"):
        return False
    raise CannotEmulate(f'invalid value "{value}" for --{name}')


def _parse_flags(args: Sequence[str], bools: set[str], values: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    items = list(args)
    i = 0
    while i < len(items):
        item = items[i]
        if not item.startswith("-"):
            raise CannotEmulate(f"unexpected argument {item!r}")
        name, eq, value = item.lstrip("-").partition("=")
        if name in bools:
            out[name] = value if eq else "true"
        elif name in values:
            if not eq:
                i += 1
                if i >= len(items):
                    raise CannotEmulate(f"flag --{name} needs a value")
                value = items[i]
            out[name] = value
        else:
            raise CannotEmulate(f"flag {item!r} is not emulated")
        i += 1
    return out


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise CannotEmulate(f"invalid port {text!r}")
    return int(text)


def _serve_hostname(args: Sequence[str], hostname: str) -> list[Listener]:
    flags = _parse_flags(args, {"tcp", "udp", "http", "close"}, {"port"})
    tcp = _bool_flag(flags.get("tcp", "false"), "tcp")
    udp = _bool_flag(flags.get("udp", "false"), "udp")
    http = _bool_flag(flags.get("http", "true"), "http")
    port = _port(flags.get("port", "9376"))
    if http and (tcp or udp):
        raise CannotEmulate("serve-hostname exits: --http cannot be combined with --tcp or --udp")
    out: list[Listener] = []
    if tcp:
        out.append(Listener("TCP", port, hostname))
    if udp:
        out.append(Listener("UDP", port, hostname))
    if http:
        out.append(Listener("TCP", port, hostname, "http"))
    return out


def _porter(env: Mapping[str, str]) -> list[Listener]:
    out: list[Listener] = []
    for name, value in sorted(env.items()):
        if m := _SCTP_ENV.match(name):
            out.append(Listener("SCTP", _port(m.group(1)), value))
        elif m := _HTTP_ENV.match(name):
            out.append(Listener("TCP", _port(m.group(1)), value, "http"))
        elif _TLS_ENV.match(name):
            raise CannotEmulate(f"porter TLS port {name} is not emulated")
    return out


def listeners_for(container: Mapping[str, Any], hostname: str) -> list[Listener]:
    """What one container of a pod spec serves; raises ``CannotEmulate`` if not agnhost-like."""
    name = container.get("name", "?")
    image = str(container.get("image", ""))
    if not AGNHOST_IMAGE.match(image):
        raise CannotEmulate(
            f"container {name}: image {image!r} cannot be emulated "
            "(only registry.k8s.io/e2e-test-images/agnhost:<tag> can)"
        )
    command = container.get("command")
    argv = [*(command or ["/agnhost"]), *(container.get("args") or [])]
    if argv[0] not in ("/agnhost", "agnhost"):
        raise CannotEmulate(f"container {name}: command {argv[0]!r} cannot be emulated")
    env = {str(e.get("name")): str(e.get("value", "")) for e in container.get("env") or []}
    sub = argv[1] if len(argv) > 1 else ""
    try:
        if sub == "serve-hostname":
            return _serve_hostname(argv[2:], hostname)
        if sub == "porter":
            return _porter(env)
        if sub == "pause":
            return []
    except CannotEmulate as exc:
        raise CannotEmulate(f"container {name}: {exc}") from None
    raise CannotEmulate(f"container {name}: agnhost subcommand {sub!r} cannot be emulated")


def plan_pod(spec: Mapping[str, Any], hostname: str) -> list[Listener]:
    """Every listener of a pod; duplicate protocol/port pairs fail like a real bind would."""
    out: list[Listener] = []
    seen: set[tuple[str, int]] = set()
    for container in spec.get("containers") or []:
        for listener in listeners_for(container, hostname):
            key = (listener.protocol, listener.port)
            if key in seen:
                raise CannotEmulate(
                    f"container {container.get('name')}: port {listener.port}/{listener.protocol} "
                    "is already in use by another container"
                )
            seen.add(key)
            out.append(listener)
    return out


def sctp_available() -> bool:
    """Whether this kernel can create SCTP sockets at all."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, IPPROTO_SCTP).close()
    except OSError:
        return False
    return True


class _UDPReply(asyncio.DatagramProtocol):
    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(self.reply, addr)

    def error_received(self, exc: Exception) -> None:
        """ICMP errors for earlier replies are expected and harmless."""


async def _raw_reply(
    reply: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    with contextlib.suppress(OSError):
        writer.write(reply)
        await writer.drain()
    writer.close()


async def _http_reply(
    reply: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(reply)}\r\nConnection: close\r\n\r\n"
        writer.write(head.encode() + reply)
        await writer.drain()
    writer.close()


@dataclass
class PodServers:
    """The live sockets of one pod; ``unsupported`` lists ports the kernel cannot serve."""

    servers: list[asyncio.AbstractServer] = field(default_factory=list)
    transports: list[asyncio.BaseTransport] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)

    def close(self) -> None:
        for server in self.servers:
            server.close()
        for transport in self.transports:
            transport.close()
        self.servers.clear()
        self.transports.clear()


def _dual_socket(ns_fd: int, kind: int, proto: int) -> socket.socket:
    """A socket in ``ns_fd`` that serves IPv4 and IPv6 alike (IPv4 only if IPv6 is off)."""
    try:
        sock = netns.socket_in(ns_fd, socket.AF_INET6, kind, proto)
    except OSError as exc:
        if exc.errno != errno.EAFNOSUPPORT:
            raise
        return netns.socket_in(ns_fd, socket.AF_INET, kind, proto)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    return sock


async def serve(ns_fd: int, listeners: Sequence[Listener]) -> PodServers:
    """Open every listener inside namespace ``ns_fd``; SCTP without kernel support is recorded."""
    loop = asyncio.get_running_loop()
    out = PodServers()
    try:
        for lst in listeners:
            reply = lst.reply.encode()
            if lst.protocol == "UDP":
                sock = _dual_socket(ns_fd, socket.SOCK_DGRAM, 0)
                sock.bind(
                    ("::", lst.port) if sock.family == socket.AF_INET6 else ("0.0.0.0", lst.port)
                )
                transport, _ = await loop.create_datagram_endpoint(
                    lambda r=reply: _UDPReply(r),  # type: ignore[misc]
                    sock=sock,
                )
                out.transports.append(transport)
                continue
            proto = IPPROTO_SCTP if lst.protocol == "SCTP" else 0
            try:
                sock = _dual_socket(ns_fd, socket.SOCK_STREAM, proto)
            except OSError as exc:
                if proto and exc.errno in (errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT):
                    out.unsupported.append(f"{lst.port}/SCTP")
                    continue
                raise
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("::", lst.port) if sock.family == socket.AF_INET6 else ("0.0.0.0", lst.port))
            sock.listen(512)
            handler = _http_reply if lst.style == "http" else _raw_reply

            async def on_conn(
                r: asyncio.StreamReader, w: asyncio.StreamWriter, h: Any = handler, b: bytes = reply
            ) -> None:
                await h(b, r, w)

            out.servers.append(await asyncio.start_server(on_conn, sock=sock))
    except BaseException:
        out.close()
        raise
    return out
