"""The ``/agnhost`` program inside emulated pods: the ``connect`` client of the agnhost image.

Why: the runner probes with ``/agnhost connect HOST:PORT --protocol=P --timeout=T`` and reads exit
codes and stderr prefixes (TIMEOUT, REFUSED, DNS, OTHER, UNKNOWN); this reproduces them exactly.
Standard library only: the file is executed by path (``python -IS``) inside pod namespaces, and the
daemon imports ``run`` to serve exec calls without a process. Startup time matters (``sh -c``
batches start one per probe), so it avoids ``re``, ``dataclasses``, ``ipaddress`` and ``typing``.
"""

from __future__ import annotations

import errno
import os
import socket
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import TextIO

IPPROTO_SCTP = 132

USAGE = """Usage:
  agnhost connect [host:port] [flags]

Flags:
  -h, --help              help for connect
      --protocol string   The protocol to use to perform the connection, can be tcp, udp or sctp (default "tcp")
      --timeout duration  Maximum time before returning an error
      --udp-data string   The UDP payload send to the server (default "hostname")
"""

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class UsageError(Exception):
    """Bad flags or arguments: cobra prints ``Error: ...`` and the usage, exit 1."""


class ConnectArgs:
    """Parsed ``agnhost connect`` command line (a plain class: no dataclasses import)."""

    __slots__ = ("dest", "protocol", "timeout", "udp_data")

    def __init__(
        self, dest: str, protocol: str = "tcp", timeout: float = 0.0, udp_data: str = "hostname"
    ) -> None:
        self.dest = dest
        self.protocol = protocol
        self.timeout = timeout
        self.udp_data = udp_data


def parse_duration(text: str) -> float:
    """Parse a Go ``time.Duration`` string (``3s``, ``500ms``, ``1m30s``, ``0``) into seconds."""
    bad = UsageError(
        f'invalid argument "{text}" for "--timeout" flag: time: invalid duration "{text}"'
    )
    if text in ("0", "+0", "-0"):
        return 0.0
    body = text.lstrip("+-")
    sign = -1.0 if text.startswith("-") else 1.0
    if not body:
        raise bad
    pos, total = 0, 0.0
    while pos < len(body):
        start = pos
        while pos < len(body) and (body[pos].isdigit() or body[pos] == "."):
            pos += 1
        number = body[start:pos]
        unit = next(
            (u for u in ("ns", "us", "µs", "ms", "s", "m", "h") if body.startswith(u, pos)), None
        )
        if not number or number == "." or number.count(".") > 1 or unit is None:
            raise bad
        total += float(number) * _UNITS[unit]
        pos += len(unit)
    return sign * total


def parse_connect(argv: Sequence[str]) -> ConnectArgs:
    """Parse ``connect``'s flags the way cobra/pflag do (``--f=v`` or ``--f v``, flags anywhere)."""
    values: dict[str, str] = {}
    positional: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        item = items[i]
        if item == "--":
            positional.extend(items[i + 1 :])
            break
        if item.startswith("--"):
            name, eq, value = item[2:].partition("=")
            if name not in ("protocol", "timeout", "udp-data", "help"):
                raise UsageError(f"unknown flag: --{name}")
            if name == "help":
                raise UsageError("help requested")
            if not eq:
                if i + 1 >= len(items):
                    raise UsageError(f"flag needs an argument: --{name}")
                i += 1
                value = items[i]
            values[name] = value
        elif item.startswith("-") and item != "-":
            raise UsageError(f"unknown shorthand flag: '{item[1:2]}' in {item}")
        else:
            positional.append(item)
        i += 1
    if len(positional) != 1:
        raise UsageError(f"accepts 1 arg(s), received {len(positional)}")
    timeout = parse_duration(values["timeout"]) if "timeout" in values else 0.0
    return ConnectArgs(
        dest=positional[0],
        protocol=values.get("protocol", "tcp"),
        timeout=timeout,
        udp_data=values.get("udp-data", "hostname"),
    )


class _DestError(Exception):
    """Destination cannot be split or resolved; ``kind`` is SPLIT or DNS."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _split_host_port(dest: str) -> tuple[str, str]:
    """Go's ``net.SplitHostPort``."""
    if dest.startswith("["):
        end = dest.find("]")
        if end < 0:
            raise _DestError("SPLIT", f"address {dest}: missing ']' in address")
        host, rest = dest[1:end], dest[end + 1 :]
        if not rest.startswith(":"):
            raise _DestError("SPLIT", f"address {dest}: missing port in address")
        return host, rest[1:]
    if ":" not in dest:
        raise _DestError("SPLIT", f"address {dest}: missing port in address")
    host, _, port = dest.rpartition(":")
    if ":" in host:
        raise _DestError("SPLIT", f"address {dest}: too many colons in address")
    return host, port


def _resolve(dest: str, net: str) -> tuple[int, tuple[str, int]]:
    """Resolve ``host:port`` without DNS traffic: IP literals and ``localhost`` only."""
    host, port_text = _split_host_port(dest)
    if not port_text.isdigit():
        raise _DestError("DNS", f"lookup {net}/{port_text}: unknown port")
    port = int(port_text)
    if port > 65535:
        raise _DestError("DNS", f"address {port_text}: invalid port")
    if host in ("", "localhost"):
        host = "127.0.0.1"
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            packed = socket.inet_pton(family, host)
        except OSError:
            continue
        return family, (socket.inet_ntop(family, packed), port)
    raise _DestError("DNS", f"lookup {host}: no such host")


def _errtext(exc: OSError) -> str:
    """Go's lower-case errno text (``connection refused``)."""
    text = os.strerror(exc.errno) if exc.errno else str(exc)
    return text[:1].lower() + text[1:]


def _fmt(addr: tuple[str, int] | tuple[str, int, int, int]) -> str:
    host = addr[0]
    return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"


def _tcp(args: ConnectArgs, err: TextIO) -> int:
    try:
        _split_host_port(args.dest)
    except _DestError as exc:
        err.write(f"UNKNOWN: {exc}\n")
        return 1
    try:
        family, addr = _resolve(args.dest, "tcp")
    except _DestError as exc:
        err.write(f"DNS: {exc}\n")
        return 1
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(args.timeout if args.timeout > 0 else None)
        sock.connect(addr)
        return 0
    except TimeoutError:
        err.write("TIMEOUT\n")
        return 1
    except ConnectionRefusedError:
        err.write("REFUSED\n")
        return 1
    except OSError as exc:
        err.write(f"OTHER: dial tcp {_fmt(addr)}: connect: {_errtext(exc)}\n")
        return 1
    finally:
        sock.close()


def _udp(args: ConnectArgs, err: TextIO) -> int:
    try:
        family, addr = _resolve(args.dest, "udp")
    except _DestError as exc:
        err.write(f"DNS: {exc}\n")
        return 1
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        try:
            sock.connect(addr)
        except OSError as exc:
            err.write(f"OTHER: dial udp {_fmt(addr)}: connect: {_errtext(exc)}\n")
            return 1
        pair = f"{_fmt(sock.getsockname())}->{_fmt(addr)}"
        sock.settimeout(args.timeout if args.timeout > 0 else None)
        op = "write"
        try:
            sock.send(f"{args.udp_data}\n".encode())
            op = "read"
            data = sock.recv(1024)
        except TimeoutError:
            err.write(f"TIMEOUT: {op} udp {pair}: i/o timeout\n")
            return 1
        except OSError as exc:
            text = f"{op} udp {pair}: {op}: {_errtext(exc)}"
            prefix = "REFUSED" if exc.errno == errno.ECONNREFUSED else "UNKNOWN"
            err.write(f"{prefix}: {text}\n")
            return 1
        if not data:
            err.write(
                "OTHER: No data received from the server. "
                "Cannot guarantee the server received the request.\n"
            )
            return 1
        return 0
    finally:
        sock.close()


def _sctp(args: ConnectArgs, err: TextIO) -> int:
    try:
        family, addr = _resolve(args.dest, "sctp")
    except _DestError as exc:
        err.write(f"DNS: {exc}\n")
        return 1
    try:
        sock = socket.socket(family, socket.SOCK_STREAM, IPPROTO_SCTP)
    except OSError as exc:
        # agnhost returns the bare socket(2) errno: "protocol not supported" without SCTP.
        err.write(f"OTHER: {_errtext(exc)}\n")
        return 1
    try:
        sock.settimeout(args.timeout if args.timeout > 0 else None)
        sock.connect(addr)
        return 0
    except TimeoutError:
        err.write("TIMEOUT\n")
        return 1
    except OSError as exc:
        err.write(f"OTHER: {_errtext(exc)}\n")
        return 1
    finally:
        sock.close()


def run(argv: Sequence[str], out: TextIO, err: TextIO) -> int:
    """Run ``agnhost <argv...>`` (argv without the program name); returns the exit code."""
    if not argv:
        err.write("Error: a subcommand is required (this emulation supports: connect)\n")
        return 1
    command, rest = argv[0], argv[1:]
    if command != "connect":
        err.write(f'Error: unknown command "{command}" for "agnhost" in this emulation\n')
        return 1
    try:
        args = parse_connect(rest)
    except UsageError as exc:
        if str(exc) == "help requested":
            out.write(USAGE)
            return 0
        err.write(f"Error: {exc}\n{USAGE}")
        return 1
    if args.protocol in ("", "tcp"):
        return _tcp(args, err)
    if args.protocol == "udp":
        return _udp(args, err)
    if args.protocol == "sctp":
        return _sctp(args, err)
    err.write(f"Unsupported protocol\n{args.protocol}")
    return 1


def main() -> None:
    """Entry point when executed as ``/agnhost``."""
    sys.exit(run(sys.argv[1:], sys.stdout, sys.stderr))


if __name__ == "__main__":
    main()
