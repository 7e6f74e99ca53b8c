"""Options of one embedded cluster instance and where its state lives.

Why: the launcher (CLI or Python API) and the background daemon share one serialisable
description of an instance: name, knobs, faults, external hosts.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from conformance.cluster import EMBEDDED_MARK
from conformance.cluster.dataplane import MAX_NODES, external_ip6_problem, external_ip_problem
from conformance.cluster.faults import Faults
from conformance.cluster.knobs import Deviation, Knobs
from conformance.errors import ConformanceError

# No '-': namespace names are "npc-<instance>-...", so a prefix must never match another instance.
INSTANCE_RE = re.compile(r"^[a-z0-9]{1,20}$")
DEFAULT_INSTANCE = "default"
CONTEXT_PREFIX = EMBEDDED_MARK


@dataclass(frozen=True)
class ExternalHost:
    """A simulated host outside the cluster, on TEST-NET, serving ``ports`` like agnhost does.

    ``ports`` are ``(protocol, port)`` pairs; it replies with its ``name`` like a pod's hostname.
    """

    name: str
    ip: str
    ports: tuple[tuple[str, int], ...] = (("TCP", 80), ("TCP", 81), ("UDP", 80), ("UDP", 81))
    ip6: str = ""
    """Its IPv6 address on a dual-stack cluster (in 2001:db8::/96), or none."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ip": self.ip,
            "ip6": self.ip6,
            "ports": [list(p) for p in self.ports],
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> ExternalHost:
        return ExternalHost(
            data["name"],
            data["ip"],
            tuple((str(p), int(n)) for p, n in data["ports"]),
            str(data.get("ip6") or ""),
        )

    @staticmethod
    def parse(text: str) -> ExternalHost:
        """``NAME=IP[:PORT/PROTO,...]`` as given to ``cluster up --external``."""
        name, eq, rest = text.partition("=")
        if not eq or not name or not rest:
            raise ConformanceError(f"--external expects NAME=IP[:PORT/PROTO,...], got {text!r}")
        ip, colon, spec = rest.partition(":")
        if not colon:
            return ExternalHost(name, ip)
        ports = []
        for item in spec.split(","):
            port, slash, proto = item.partition("/")
            proto = (proto or "TCP").upper()
            if (
                not port.isdigit()
                or proto not in ("TCP", "UDP", "SCTP")
                or not 0 < int(port) < 65536
            ):
                raise ConformanceError(
                    f"--external port must be PORT/TCP, PORT/UDP or PORT/SCTP, got {item!r}"
                )
            del slash
            ports.append((proto, int(port)))
        return ExternalHost(name, ip, tuple(ports))


@dataclass(frozen=True)
class ClusterOptions:
    """Everything that defines an instance; ``port`` 0 picks a free loopback port."""

    instance: str = DEFAULT_INSTANCE
    knobs: Knobs = field(default_factory=Knobs)
    faults: Faults = field(default_factory=Faults)
    externals: tuple[ExternalHost, ...] = ()
    port: int = 0
    state_root: str | None = None
    nodes: int = 2
    dual_stack: bool = False

    def __post_init__(self) -> None:
        if not INSTANCE_RE.match(self.instance):
            raise ConformanceError(
                f"instance name {self.instance!r} must be 1-20 lower-case letters or digits"
            )
        names = [e.name for e in self.externals]
        if len(set(names)) != len(names):
            raise ConformanceError("external host names must be unique")
        for ext in self.externals:
            problem = external_ip_problem(ext.ip)
            if problem:
                raise ConformanceError(problem)
        if len({e.ip for e in self.externals}) != len(self.externals):
            raise ConformanceError("external host addresses must be unique")
        for ext in self.externals:
            problem = external_ip6_problem(ext.ip6) if ext.ip6 else ""
            if problem:
                raise ConformanceError(problem)
        if not 1 <= self.nodes <= MAX_NODES:
            raise ConformanceError(f"--nodes must be between 1 and {MAX_NODES}, got {self.nodes}")

    @property
    def context(self) -> str:
        return context_name(self.instance)

    def to_json(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "enforcementDelay": self.knobs.enforcement_delay,
            "deviations": sorted(d.value for d in self.knobs.deviations),
            "faults": {
                "errorRate": self.faults.error_rate,
                "errorCodes": list(self.faults.error_codes),
                "delayRate": self.faults.delay_rate,
                "delaySeconds": self.faults.delay_seconds,
                "execDropRate": self.faults.exec_drop_rate,
                "seed": self.faults.seed,
            },
            "externals": [e.to_json() for e in self.externals],
            "port": self.port,
            "stateRoot": self.state_root,
            "nodes": self.nodes,
            "dualStack": self.dual_stack,
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> ClusterOptions:
        f = data.get("faults") or {}
        return ClusterOptions(
            instance=data["instance"],
            knobs=Knobs(
                float(data.get("enforcementDelay", 0)),
                frozenset(Deviation(d) for d in data.get("deviations", [])),
            ),
            faults=Faults(
                error_rate=float(f.get("errorRate", 0)),
                error_codes=tuple(int(c) for c in f.get("errorCodes", (429, 500, 503))),
                delay_rate=float(f.get("delayRate", 0)),
                delay_seconds=float(f.get("delaySeconds", 0.5)),
                exec_drop_rate=float(f.get("execDropRate", 0)),
                seed=int(f.get("seed", 0)),
            ),
            externals=tuple(ExternalHost.from_json(e) for e in data.get("externals", [])),
            port=int(data.get("port", 0)),
            state_root=data.get("stateRoot"),
            nodes=int(data.get("nodes", 2)),
            dual_stack=bool(data.get("dualStack", False)),
        )

    def dumps(self) -> str:
        return json.dumps(self.to_json())


def context_name(instance: str) -> str:
    """kubeconfig context of an instance: ``netpol-embedded`` or ``netpol-embedded-<instance>``."""
    return CONTEXT_PREFIX if instance == DEFAULT_INSTANCE else f"{CONTEXT_PREFIX}-{instance}"


def state_root(override: str | None = None) -> str:
    """Directory holding every instance's state (pid, kubeconfig, log)."""
    if override:
        return override
    env = os.environ.get("NETPOL_CONFORMANCE_STATE")
    if env:
        return env
    if os.geteuid() == 0:
        return "/run/netpol-conformance"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = runtime if runtime and os.access(runtime, os.W_OK) else os.path.expanduser("~/.cache")
    return os.path.join(base, "netpol-conformance")


def state_dir(instance: str, override: str | None = None) -> str:
    return os.path.join(state_root(override), instance)
