"""The probe batch script, run for real by sh against a stand-in agnhost, and its parsing."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from conformance.api.types import L4Protocol
from conformance.live.probing import (
    Outcome,
    ProbeTarget,
    batch_command,
    batch_seconds,
    classify,
    kubectl_command,
    parse_batch_output,
)

FAKE_AGNHOST = """#!/bin/sh
# Stand-in for `agnhost connect HOST:PORT --protocol=P --timeout=Ts`, keyed on the host.
host=${2%%:*}
case "$host" in
  ok*) exit 0 ;;
  slow*) sleep 1; echo "TIMEOUT" >&2; exit 1 ;;
  refused*) echo "REFUSED" >&2; exit 1 ;;
  args*) echo "ARGS $*" >&2; exit 1 ;;
  sctp*) echo "OTHER: dial sctp 10.0.0.1:80: socket: protocol not supported" >&2; exit 1 ;;
  *) echo "DNS: lookup failed" >&2; echo "second line" >&2; exit 1 ;;
esac
"""


@pytest.fixture
def fake_agnhost(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "agnhost"
    path.write_text(FAKE_AGNHOST)
    path.chmod(0o755)
    return {**os.environ, "AGNHOST": str(path)}


def test_batch_runs_targets_in_parallel_and_reports_each(fake_agnhost: dict[str, str]) -> None:
    targets = [
        ProbeTarget("c0", "ok.example", 80, L4Protocol.TCP),
        ProbeTarget("c1", "refused.example", 81, L4Protocol.UDP),
        ProbeTarget("c2", "sctp.example", 80, L4Protocol.SCTP),
        ProbeTarget("c3", "nxdomain.example", 80, L4Protocol.TCP),
        *(ProbeTarget(f"s{i}", f"slow{i}", 80, L4Protocol.TCP) for i in range(6)),
    ]
    start = time.monotonic()
    proc = subprocess.run(
        batch_command(targets, 1, 16), env=fake_agnhost, capture_output=True, text=True, check=True
    )
    elapsed = time.monotonic() - start
    results = parse_batch_output(proc.stdout, [t.ident for t in targets])
    assert results["c0"].outcome is Outcome.CONNECTED
    assert results["c1"].outcome is Outcome.REFUSED
    assert results["c2"].outcome is Outcome.UNSUPPORTED
    assert results["c3"].outcome is Outcome.CHECK_FAILED
    assert results["c3"].detail == "DNS: lookup failed"
    assert all(results[f"s{i}"].outcome is Outcome.TIMEOUT for i in range(6))
    assert elapsed < 4, "six 1-second probes must overlap"


@pytest.mark.parametrize(("seconds", "flag"), [(3, "--timeout=3s"), (0.5, "--timeout=0.5s")])
def test_batch_passes_the_timeout_as_a_go_duration(
    fake_agnhost: dict[str, str], seconds: float, flag: str
) -> None:
    """``--deny-timeout`` may be a fraction of a second; each target keeps its own."""
    targets = [ProbeTarget("c0", "args.example", 80, L4Protocol.UDP, seconds)]
    proc = subprocess.run(
        batch_command(targets, 7, 4), env=fake_agnhost, capture_output=True, text=True
    )
    detail = parse_batch_output(proc.stdout, ["c0"])["c0"].detail
    assert detail == f"ARGS connect args.example:80 --protocol=udp {flag}"


def test_batch_seconds_counts_each_wave_at_its_longest_timeout() -> None:
    targets = [
        ProbeTarget("a", "h", 80, L4Protocol.TCP, 1.0),
        ProbeTarget("b", "h", 80, L4Protocol.TCP),  # the batch's 3 s
        ProbeTarget("c", "h", 80, L4Protocol.TCP, 0.5),
    ]
    assert batch_seconds(targets, 3, 2) == 3.5
    assert batch_seconds(targets, 3, 8) == 3
    assert batch_seconds(targets[::2], 3, 1) == 1.5


def test_parallel_limit_runs_in_waves(fake_agnhost: dict[str, str]) -> None:
    targets = [ProbeTarget(f"s{i}", f"slow{i}", 80, L4Protocol.TCP) for i in range(4)]
    start = time.monotonic()
    subprocess.run(batch_command(targets, 1, 2), env=fake_agnhost, capture_output=True, check=True)
    assert time.monotonic() - start >= 2


def test_missing_lines_are_check_failed() -> None:
    results = parse_batch_output("a ok\ngarbage\nb fail 1 TIMEOUT\n", ["a", "b", "c"])
    assert results["a"].outcome is Outcome.CONNECTED
    assert results["b"].outcome is Outcome.TIMEOUT
    assert results["c"].outcome is Outcome.CHECK_FAILED


@pytest.mark.parametrize(
    ("code", "line", "outcome"),
    [
        (0, "", Outcome.CONNECTED),
        (1, "TIMEOUT", Outcome.TIMEOUT),
        (1, "REFUSED", Outcome.REFUSED),
        (1, "OTHER: socket: protocol not supported", Outcome.UNSUPPORTED),
        (1, "UNKNOWN", Outcome.CHECK_FAILED),
        (126, "", Outcome.CHECK_FAILED),
    ],
)
def test_classify(code: int, line: str, outcome: Outcome) -> None:
    assert classify(code, line).outcome is outcome


def test_kubectl_command_reproduces_one_probe() -> None:
    cmd = kubectl_command(
        "x-1", "a", "cont-80-tcp", ProbeTarget("c", "fd00::5", 80, L4Protocol.UDP), 3
    )
    assert (
        cmd
        == "kubectl exec -n x-1 a -c cont-80-tcp -- /agnhost connect '[fd00::5]:80' --protocol=udp --timeout=3s"
    )


def test_kubectl_command_names_the_run_s_cluster() -> None:
    """Pasting it must reach the cluster the run used, not the current context."""
    cmd = kubectl_command(
        "x-1",
        "a",
        "cont-80-tcp",
        ProbeTarget("c", "10.0.0.5", 80, L4Protocol.TCP),
        1,
        context="kind-calico",
        kubeconfig="/tmp/my config",
    )
    assert cmd.startswith(
        "kubectl --kubeconfig '/tmp/my config' --context kind-calico exec -n x-1 a -c cont-80-tcp --"
    )
