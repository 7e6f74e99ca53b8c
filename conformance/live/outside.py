"""Probing from clients outside the cluster: a command template that runs the probe batch there.

Why: traffic from outside enters a node from its uplink, a path real CNIs treat apart from pod
traffic, so outside clients must really connect. The runner cannot exec into something that is
not a pod, so the user says how: ``--outside-exec TEMPLATE``, where ``{name}`` is the scenario's
external endpoint and the probe's argv (``sh -c SCRIPT ...``, needing ``/agnhost`` or $AGNHOST)
is appended. On kind: ``docker exec -i netpol-outside-{name}`` with an agnhost container on the
kind network (hack/kind). On the embedded cluster the default is its own simulated hosts
(``netpol-conformance cluster outside-exec``).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from conformance.cluster.config import DEFAULT_INSTANCE, context_name
from conformance.errors import ClusterError, ConformanceError
from conformance.live.ops import ExecResult


def embedded_instance(context: str) -> str | None:
    """The embedded instance behind a kubeconfig context name, or None for any other cluster."""
    if context == context_name(DEFAULT_INSTANCE):
        return DEFAULT_INSTANCE
    prefix = context_name(DEFAULT_INSTANCE) + "-"
    return context[len(prefix) :] if context.startswith(prefix) else None


def embedded_template(instance: str) -> str:
    """The template that reaches an embedded cluster's simulated outside hosts."""
    python = shlex.quote(sys.executable)
    return (
        f"{python} -m conformance cluster outside-exec --name {shlex.quote(instance)} {{name}} --"
    )


@dataclass(frozen=True)
class OutsideExec:
    """Runs argv on an outside client through ``template`` (``{name}``: the endpoint's name)."""

    template: str

    def __post_init__(self) -> None:
        try:
            words = shlex.split(self.template.replace("{name}", "NAME"))
        except ValueError as exc:
            raise ConformanceError(f"--outside-exec {self.template!r}: {exc}") from None
        if not words:
            raise ConformanceError("--outside-exec needs a command, e.g. 'docker exec -i {name}'")

    def argv(self, name: str, command: Sequence[str]) -> list[str]:
        """The full argv: the template's words with ``{name}`` filled in, then ``command``."""
        words = shlex.split(self.template)
        return [w.replace("{name}", name) for w in words] + list(command)

    def run(self, name: str, command: Sequence[str], timeout_s: float) -> ExecResult:
        """Run ``command`` on outside client ``name``; errors starting it raise ClusterError."""
        argv = self.argv(name, command)
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except FileNotFoundError:
            raise ClusterError(f"outside client {name}: command {argv[0]!r} not found") from None
        except subprocess.TimeoutExpired:
            raise ClusterError(
                f"outside client {name}: the probe command ran over {timeout_s:.0f} s"
            ) from None
        return ExecResult(proc.returncode, proc.stdout, proc.stderr)
