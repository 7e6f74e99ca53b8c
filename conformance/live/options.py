"""How a run probes: ``RunOptions``, and the table of the options a user sets from outside.

``RUN_OPTIONS`` is the one list of options that both ``netpol-conformance run`` (as ``--NAME``)
and the pytest plugin (as ``--netpol-NAME`` with an ini twin ``netpol_NAME``) offer. Each entry
names the ``RunOptions`` field it sets; its default is that field's default, so a default is
written down once, here, in the dataclass.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from conformance.api.model import IPAddress
from conformance.errors import ConformanceError
from conformance.live.deploy import DeployOptions
from conformance.live.placement import parse_node_map

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


def external_addresses(name: str, text: str) -> tuple[IPAddress, ...]:
    """The addresses of ``--external NAME=IP[,IP]``: one per family, the first primary."""
    out: list[IPAddress] = []
    for part in (p.strip() for p in text.split(",")):
        try:
            addr = ipaddress.ip_address(part)
        except ValueError:
            raise ConformanceError(
                f"--external {name}={text}: {part!r} is not an IP address"
            ) from None
        if any(a.version == addr.version for a in out):
            raise ConformanceError(f"--external {name}={text}: give at most one address per family")
        out.append(addr)
    return tuple(out)


def switch_value(value: object) -> bool:
    """A switch from a command line (a bool) or an ini file (``true``, ``1``, ``yes``, ``on``)."""
    if isinstance(value, str):
        return value.strip().lower() in TRUE_WORDS
    return bool(value)


class Via(StrEnum):
    """What a probe connects to."""

    POD = "pod"  # the target pod's IP
    SERVICE = "service"  # a ClusterIP Service per target pod


class NodeMapText(str):
    """A ``--node-map`` value, checked when made (ValueError saying what is accepted)."""

    __slots__ = ()

    def __new__(cls, value: object = "") -> NodeMapText:
        text = str(value).strip()
        parse_node_map(text)
        return super().__new__(cls, text)


@dataclass(frozen=True)
class RunOptions:
    probe_timeout_s: int = 3
    deny_timeout_s: float = 0.5
    """Timeout of probes of cells the reference denies (a timeout is what they should see);
    cells it allows always get ``probe_timeout_s``, so a slow allow is never cut short (0, or
    >= ``probe_timeout_s``: every probe gets ``probe_timeout_s``). 0.5 s: an allowed connection
    either connects within milliseconds or, its first SYN dropped, on the kernel's retransmit
    1 s in, past 1 s as much as past 0.5 s (docs/speed.md has the measurements)."""
    parallel: int = 16
    in_pod_parallel: int = 64
    via: Via = Via.POD
    convergence_deadline_s: float = 10.0
    ready_timeout_s: float = 120.0
    warmup_deadline_s: float = 20.0
    include_self: bool = False
    keep: bool = False
    no_reuse: bool = False
    """Create fresh pods for every scenario (by default a scenario takes over the pods of an
    earlier one with the same topology, after a clean-slate check)."""
    deploy: DeployOptions = field(default_factory=DeployOptions)
    externals: Mapping[str, str] = field(default_factory=dict)
    """Scenario external endpoint -> its address(es) on this cluster (``IP`` or ``IPv4,IPv6``)."""
    outside_exec: str = ""
    """Command template that runs a probe on a host outside the cluster (see
    conformance/live/outside.py); empty: the embedded cluster's own, else outside clients are
    not probed."""
    node_map: str = ""
    """``node-1=kind-worker,...``: scenario node names onto real nodes ("": automatic)."""
    sample: int = -1
    """Cells probed per step (-1: as each scenario's ``probe.sample`` says; 0: every cell; N:
    a sample of N cells in every step, see conformance/reference/sampling.py)."""
    sample_seed: int = -1
    """Seed of the samples (-1: the scenario's ``probe.sample.seed``, else 0)."""

    @property
    def node_mapping(self) -> dict[str, str]:
        return parse_node_map(self.node_map)

    @property
    def deny_probe_s(self) -> float:
        """The timeout of a probe the reference expects to be denied: ``deny_timeout_s`` when it
        is shorter than ``probe_timeout_s``, else ``probe_timeout_s``."""
        if 0 < self.deny_timeout_s < self.probe_timeout_s:
            return self.deny_timeout_s
        return float(self.probe_timeout_s)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "probe_timeout_s": self.probe_timeout_s,
            "deny_timeout_s": self.deny_timeout_s,
            "parallel": self.parallel,
            "via": str(self.via),
            "convergence_deadline_s": self.convergence_deadline_s,
            "include_self": self.include_self,
            "reuse_pods": not self.no_reuse,
            "image": self.deploy.image,
        }
        if self.node_map:
            out["node_map"] = str(self.node_map)
        if self.sample >= 0:
            out["sample"] = self.sample
        if self.sample_seed >= 0:
            out["sample_seed"] = self.sample_seed
        return out


_FIELDS = {f.name: f for f in dataclasses.fields(RunOptions)}


@dataclass(frozen=True)
class RunOption:
    """One user-settable field of ``RunOptions``.

    ``kind`` is ``bool`` (a switch: given means true), ``int``, ``float`` or a ``StrEnum`` (its
    values are the accepted choices).
    """

    name: str  # flag stem: `run --NAME`, `pytest --netpol-NAME`, ini `netpol_NAME`
    field: str  # the RunOptions field it sets
    kind: type[Any]
    help: str
    metavar: str | None = None

    def __post_init__(self) -> None:
        if self.field not in _FIELDS or self.default is dataclasses.MISSING:
            raise ValueError(f"RunOptions has no field {self.field!r} with a plain default")
        if self.kind is bool and self.default is not False:
            raise ValueError(f"switch {self.name} must default to False")

    @property
    def dest(self) -> str:
        """``NAME`` with dashes as underscores (argparse's attribute name for ``--NAME``)."""
        return self.name.replace("-", "_")

    @property
    def default(self) -> Any:
        return _FIELDS[self.field].default

    @property
    def is_switch(self) -> bool:
        return self.kind is bool

    @property
    def choices(self) -> tuple[str, ...]:
        """The accepted values of an enum option; () for the others."""
        if issubclass(self.kind, StrEnum):
            return tuple(member.value for member in self.kind)
        return ()

    def convert(self, value: object) -> Any:
        """A value from a command line or an ini file as the field wants it; ValueError saying
        what is accepted when it does not fit."""
        if self.is_switch:
            return switch_value(value)
        if self.choices:
            if str(value) not in self.choices:
                raise ValueError(f"expected one of: {', '.join(self.choices)}")
            return self.kind(str(value))
        try:
            return self.kind(value)
        except (TypeError, ValueError) as exc:
            if self.kind not in (int, float):
                raise ValueError(str(exc)) from None
            what = "a whole number" if self.kind is int else "a number"
            raise ValueError(f"expected {what}") from None


RUN_OPTIONS: tuple[RunOption, ...] = (
    RunOption("via", "via", Via, "probe pod IPs or per-pod Services"),
    RunOption(
        "probe-timeout", "probe_timeout_s", int, "agnhost connect timeout, in seconds", metavar="S"
    ),
    RunOption(
        "deny-timeout",
        "deny_timeout_s",
        float,
        "timeout of probes the reference expects to be denied (cells it allows always get "
        "--probe-timeout, so a slow allow is never cut short; 0: --probe-timeout for all)",
        metavar="S",
    ),
    RunOption("parallel", "parallel", int, "source pods probed at once"),
    RunOption(
        "deadline",
        "convergence_deadline_s",
        float,
        "seconds that disagreeing cells are re-probed after a step; raise it for a CNI that "
        "propagates policy changes slowly",
        metavar="S",
    ),
    RunOption("include-self", "include_self", bool, "also judge pod-to-itself cells"),
    RunOption(
        "outside-exec",
        "outside_exec",
        str,
        "command template that runs a probe on an outside client, {name} being the scenario's "
        "external endpoint, e.g. 'docker exec -i netpol-outside-{name}' (default on the "
        "embedded cluster: its simulated hosts; elsewhere outside-client cells are skipped)",
        metavar="TEMPLATE",
    ),
    RunOption(
        "node-map",
        "node_map",
        NodeMapText,
        "scenario nodes onto real nodes, e.g. node-1=kind-worker,node-2=kind-worker2 (default: "
        "each scenario's nodes in order onto distinct schedulable workers, sorted by name)",
        metavar="MAP",
    ),
    RunOption(
        "sample",
        "sample",
        int,
        "cells probed per step: a sample chosen by the reference's rules plus a random draw "
        "(0: every cell; default -1: what each scenario's probe.sample says, else every cell)",
        metavar="N",
    ),
    RunOption(
        "sample-seed",
        "sample_seed",
        int,
        "seed of --sample and of scenarios' probe.sample (default -1: the scenario's own seed)",
        metavar="SEED",
    ),
    RunOption(
        "no-reuse",
        "no_reuse",
        bool,
        "create fresh pods for every scenario instead of taking over those of an earlier "
        "scenario with the same namespaces and pods (after a clean-slate check)",
    ),
)
