"""Probe commands and their outcomes: what runs in a source pod and how its output is read.

Pure: builds the exec argv for one source pod (a ``sh`` batch over ``/agnhost connect``, see
``probes/batch.sh``) and classifies each target's line. An outcome is an enum, never a bool: a probe
that could not run is ``CHECK_FAILED``, never "denied".
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources

from conformance.api.types import L4Protocol

AGNHOST_IMAGE = "registry.k8s.io/e2e-test-images/agnhost"
AGNHOST_TAG = "2.56"
PROBE_IMAGE = f"{AGNHOST_IMAGE}:{AGNHOST_TAG}"
"""The image of every pod the tool starts (scenario pods and the doctor's probe pods)."""


class Outcome(StrEnum):
    """What one probe saw (agnhost connect's documented results)."""

    CONNECTED = "connected"  # exit 0: TCP handshake done / UDP reply received / SCTP echo
    TIMEOUT = "timeout"  # "TIMEOUT": packets dropped: what policy denial looks like
    REFUSED = "refused"  # "REFUSED": path open, nothing listening (or a rejecting CNI)
    UNSUPPORTED = "unsupported"  # the protocol is not available (e.g. no SCTP in the kernel)
    CHECK_FAILED = "check-failed"  # the probe itself could not run: never a verdict


@dataclass(frozen=True)
class ProbeTarget:
    """One connection to try from a source pod; ``ident`` is echoed back in the output line."""

    ident: str
    host: str
    port: int
    protocol: L4Protocol
    timeout_s: float | None = None
    """This probe's timeout; None: the batch's."""


@dataclass(frozen=True)
class ProbeResult:
    outcome: Outcome
    detail: str = ""
    started: float | None = None
    """``time.monotonic()`` when the exec that ran this probe started (set by the runner)."""


def batch_script() -> str:
    return (resources.files("conformance.probes") / "batch.sh").read_text(encoding="utf-8")


def duration_seconds(seconds: float) -> str:
    """Seconds as the number of a Go duration in seconds (``3``, ``0.5``; batch.sh adds ``s``)."""
    return f"{seconds:g}"


def batch_command(targets: Sequence[ProbeTarget], timeout_s: float, parallel: int) -> list[str]:
    """The exec argv: ``sh -c SCRIPT probe PARALLEL ID HOST PORT PROTO TIMEOUT ...``, each
    target with its own timeout (``timeout_s`` when it has none)."""
    argv = ["sh", "-c", batch_script(), "probe", str(parallel)]
    for t in targets:
        # batch.sh joins HOST:PORT as agnhost connect wants it: IPv6 hosts go in brackets.
        host = f"[{t.host}]" if ":" in t.host else t.host
        seconds = timeout_s if t.timeout_s is None else t.timeout_s
        argv += [t.ident, host, str(t.port), t.protocol.lower(), duration_seconds(seconds)]
    return argv


def batch_seconds(targets: Sequence[ProbeTarget], timeout_s: float, parallel: int) -> float:
    """The longest a batch can take: its waves of ``parallel`` probes, each as long as its
    longest timeout."""
    seconds = [timeout_s if t.timeout_s is None else t.timeout_s for t in targets]
    return sum(max(seconds[i : i + parallel]) for i in range(0, len(seconds), parallel))


def connect_command(target: ProbeTarget, timeout_s: int) -> list[str]:
    """One probe as agnhost runs it (used for reproduction commands and single probes)."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    return [
        "/agnhost",
        "connect",
        f"{host}:{target.port}",
        f"--protocol={target.protocol.lower()}",
        f"--timeout={timeout_s}s",
    ]


def kubectl_command(
    namespace: str,
    pod: str,
    container: str,
    target: ProbeTarget,
    timeout_s: int,
    context: str = "",
    kubeconfig: str = "",
) -> str:
    """A command a person can paste to reproduce one probe (on the run's cluster, not whichever
    context happens to be current)."""
    argv = [
        "kubectl",
        *(["--kubeconfig", kubeconfig] if kubeconfig else []),
        *(["--context", context] if context else []),
        "exec",
        "-n",
        namespace,
        pod,
        "-c",
        container,
        "--",
        *connect_command(target, timeout_s),
    ]
    return shlex.join(argv)


def classify(exit_code: int, stderr_first_line: str) -> ProbeResult:
    """Map agnhost connect's exit code and first stderr line onto an ``Outcome``."""
    line = stderr_first_line.strip()
    if exit_code == 0:
        return ProbeResult(Outcome.CONNECTED)
    if line.startswith("TIMEOUT"):
        return ProbeResult(Outcome.TIMEOUT, line)
    if line.startswith("REFUSED"):
        return ProbeResult(Outcome.REFUSED, line)
    lowered = line.lower()
    if "protocol not supported" in lowered or "protocol not available" in lowered:
        return ProbeResult(Outcome.UNSUPPORTED, line)
    return ProbeResult(Outcome.CHECK_FAILED, line or f"exit code {exit_code} without a message")


def parse_batch_output(stdout: str, idents: Sequence[str]) -> Mapping[str, ProbeResult]:
    """One result per ident; idents missing from the output are ``CHECK_FAILED``."""
    wanted = set(idents)
    out: dict[str, ProbeResult] = {}
    for raw in stdout.splitlines():
        parts = raw.strip().split(" ", 3)
        if not parts or parts[0] not in wanted:
            continue
        if len(parts) >= 2 and parts[1] == "ok":
            out[parts[0]] = ProbeResult(Outcome.CONNECTED)
        elif len(parts) >= 3 and parts[1] == "fail" and parts[2].lstrip("-").isdigit():
            out[parts[0]] = classify(int(parts[2]), parts[3] if len(parts) > 3 else "")
    for ident in idents:
        out.setdefault(
            ident, ProbeResult(Outcome.CHECK_FAILED, "no result line: the exec ended early")
        )
    return out
