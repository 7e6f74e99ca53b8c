"""``/agnhost connect`` emulation on loopback: exit codes and stderr prefixes as agnhost prints them."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from conformance.cluster import agnhost, agnhost_cli, native

Runner = Callable[..., tuple[int, str, str]]


def _in_process(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = agnhost_cli.run(["connect", *args], out, err)
    return code, out.getvalue(), err.getvalue()


def _program(path: list[str]) -> Runner:
    def run(*args: str) -> tuple[int, str, str]:
        res = subprocess.run(
            [*path, "connect", *args], capture_output=True, text=True, check=False, timeout=30
        )
        return res.returncode, res.stdout, res.stderr

    return run


@pytest.fixture(scope="module")
def native_binary(tmp_path_factory: pytest.TempPathFactory) -> str | None:
    return native.build(str(tmp_path_factory.mktemp("native") / "agnhost"))


@pytest.fixture(params=["in-process", "python-program", "native"])
def run(request: pytest.FixtureRequest, native_binary: str | None) -> Runner:
    """Every implementation of /agnhost must print the same thing."""
    if request.param == "in-process":
        return _in_process
    if request.param == "python-program":
        return _program([sys.executable, "-IS", agnhost_cli.__file__])
    if native_binary is None:
        pytest.skip("no C compiler: pods use the Python /agnhost")
    return _program([native_binary])


@pytest.fixture()
def tcp_server() -> Iterator[int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    yield srv.getsockname()[1]
    srv.close()


@pytest.fixture()
def udp_echo() -> Iterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)

    def serve() -> None:
        try:
            _data, addr = sock.recvfrom(1024)
            sock.sendto(b"pod-a", addr)
        except OSError:
            pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield sock.getsockname()[1]
    sock.close()


def free_port(kind: int) -> int:
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def test_tcp_success_and_refused(tcp_server: int, run: Runner) -> None:
    assert run(f"127.0.0.1:{tcp_server}", "--timeout=1s") == (0, "", "")
    assert run(
        f"127.0.0.1:{free_port(socket.SOCK_STREAM)}", "--protocol", "tcp", "--timeout", "1s"
    ) == (1, "", "REFUSED\n")


def test_udp_reply_and_refused(udp_echo: int, run: Runner) -> None:
    assert run(f"127.0.0.1:{udp_echo}", "--protocol=udp", "--timeout=1s") == (0, "", "")
    code, _, err = run(
        f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}", "--protocol=udp", "--timeout=1s"
    )
    assert (
        code == 1
        and err.startswith("REFUSED: read udp 127.0.0.1:")
        and err.endswith(": read: connection refused\n")
    )


def test_udp_silence_is_timeout(run: Runner) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        code, _, err = run(
            f"127.0.0.1:{sock.getsockname()[1]}", "--protocol=udp", "--timeout=200ms"
        )
    finally:
        sock.close()
    assert code == 1 and err.startswith("TIMEOUT: read udp ") and err.endswith(": i/o timeout\n")


def test_argument_errors(run: Runner) -> None:
    assert run("127.0.0.1", "--timeout=1s")[2].startswith(
        "UNKNOWN: address 127.0.0.1: missing port in address"
    )
    assert run("some.host:80")[2] == "DNS: lookup some.host: no such host\n"
    assert run("127.0.0.1:80", "--protocol=icmp") == (1, "", "Unsupported protocol\nicmp")
    code, _, err = run("127.0.0.1:80", "--bogus")
    assert code == 1 and err.startswith("Error: unknown flag: --bogus")
    assert run()[2].startswith("Error: accepts 1 arg(s), received 0")
    assert run("127.0.0.1:80", "--timeout=3x")[2].startswith(
        'Error: invalid argument "3x" for "--timeout" flag'
    )
    assert run("--help")[0:2] == (0, agnhost_cli.USAGE)
    assert agnhost_cli.parse_duration("1m30s") == 90 and agnhost_cli.parse_duration("500ms") == 0.5


def test_sctp_without_kernel_support_is_other(run: Runner) -> None:
    if agnhost.sctp_available():
        pytest.skip("this kernel has SCTP")
    assert run("127.0.0.1:80", "--protocol=sctp", "--timeout=1s") == (
        1,
        "",
        "OTHER: protocol not supported\n",
    )


def test_runs_as_a_standalone_program() -> None:
    """As /agnhost inside pods: python -IS on the file, standard library only."""
    res = subprocess.run(
        [
            sys.executable,
            "-IS",
            agnhost_cli.__file__,
            "connect",
            f"127.0.0.1:{free_port(socket.SOCK_STREAM)}",
            "--timeout=1s",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (res.returncode, res.stderr) == (1, "REFUSED\n")


def test_pod_plans() -> None:
    img = "registry.k8s.io/e2e-test-images/agnhost:2.53"
    tcp = {
        "name": "c",
        "image": img,
        "command": ["/agnhost", "serve-hostname", "--tcp", "--http=false", "--port", "80"],
    }
    assert agnhost.listeners_for(tcp, "a") == [agnhost.Listener("TCP", 80, "a")]
    sctp = {
        "name": "s",
        "image": img,
        "command": ["/agnhost", "porter"],
        "env": [{"name": "SERVE_SCTP_PORT_81", "value": "foo"}],
    }
    assert agnhost.listeners_for(sctp, "a") == [agnhost.Listener("SCTP", 81, "foo")]
    with pytest.raises(agnhost.CannotEmulate, match="image 'busybox' cannot be emulated"):
        agnhost.listeners_for({"name": "b", "image": "busybox"}, "a")
    with pytest.raises(agnhost.CannotEmulate, match="netexec"):
        agnhost.listeners_for({"name": "n", "image": img, "args": ["netexec"]}, "a")
    with pytest.raises(agnhost.CannotEmulate, match="already in use"):
        agnhost.plan_pod({"containers": [tcp, {**tcp, "name": "d"}]}, "a")


def test_host_network_pods_are_planned_like_any_other() -> None:
    """They serve the same ports; only where (the node's namespace) differs."""
    img = "registry.k8s.io/e2e-test-images/agnhost:2.53"
    args = ["serve-hostname", "--tcp", "--http=false", "--port", "8080"]
    container = {"name": "c", "image": img, "args": args}
    host = agnhost.plan_pod({"hostNetwork": True, "containers": [container]}, "a")
    assert host == agnhost.plan_pod({"containers": [container]}, "a")
    assert [(lst.protocol, lst.port) for lst in host] == [("TCP", 8080)]
