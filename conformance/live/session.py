"""A run session: which cluster to use (given, or an embedded one started for the run), the safety
check on the context, and cleanup that also happens on Ctrl-C and SIGTERM.

Shared by the ``run`` command and the pytest plugin, so both behave the same.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import FrameType

from conformance.api.types import AddressFamily
from conformance.cluster import EMBEDDED_MARK
from conformance.cluster.config import ExternalHost
from conformance.cluster.knobs import Knobs
from conformance.errors import ConformanceError
from conformance.live.kube import KubeCluster
from conformance.scenario.bind import external_address
from conformance.scenario.load import Scenario

EMBEDDED_CONTEXT_PREFIX = EMBEDDED_MARK
SAFE_CONTEXT_PREFIXES = ("kind-", EMBEDDED_CONTEXT_PREFIX)


class UnsafeContextError(ConformanceError):
    """The context does not look like a disposable test cluster."""


@dataclass(frozen=True)
class ClusterChoice:
    kubeconfig: str | None = None
    context: str | None = None
    allow_context: tuple[str, ...] = ()
    embedded_instance: str | None = None  # name for an embedded cluster started for the run
    externals: dict[str, str] = field(default_factory=dict)
    in_cluster: bool = False  # the pod's ServiceAccount credentials (KubeCluster.in_cluster)
    knobs: Knobs = field(default_factory=Knobs)  # deviations of an embedded cluster (selftest)
    keep_embedded: bool = False
    """Leave an embedded cluster started for the run running when the run ends normally
    (``run --keep``: the kept objects and the reproduce commands need it)."""

    @property
    def wants_embedded(self) -> bool:
        """No kubeconfig, no context, not in-cluster: start an embedded cluster for the run."""
        return self.kubeconfig is None and self.context is None and not self.in_cluster

    @property
    def instance(self) -> str:
        """The instance name of an embedded cluster started for the run."""
        return self.embedded_instance or f"run{os.getpid()}"


def _addresses(host: ExternalHost) -> str:
    """``--external`` form of a simulated host's addresses (IPv4 first)."""
    return f"{host.ip},{host.ip6}" if host.ip6 else host.ip


def check_context(context: str, allowed: Sequence[str]) -> None:
    if context.startswith(SAFE_CONTEXT_PREFIXES) or context in allowed:
        return
    raise UnsafeContextError(
        f"context {context!r} does not look like a test cluster (kind-* or {EMBEDDED_CONTEXT_PREFIX}*); "
        f"netpol-conformance creates and deletes namespaces there: pass --allow-context {context} to proceed"
    )


def scenario_externals(
    scenarios: Sequence[Scenario],
) -> dict[str, tuple[str, tuple[tuple[str, int], ...], str]]:
    """External endpoints the scenarios use (name -> IPv4 address, served ports, IPv6 address or
    ""), first definition wins."""
    out: dict[str, tuple[str, tuple[tuple[str, int], ...], str]] = {}
    for sc in scenarios:
        for e in sc.spec.external:
            v6 = external_address(e, AddressFamily.IPV6)
            out.setdefault(
                e.name,
                (
                    str(e.ip),
                    tuple((str(p.protocol), p.port) for p in e.ports),
                    str(v6) if v6 is not None and wants_ipv6([sc]) else "",
                ),
            )
    return out


def wants_ipv6(scenarios: Sequence[Scenario]) -> bool:
    """Whether any scenario's topology has IPv6 (an embedded cluster is then dual-stack)."""
    return any(AddressFamily.IPV6 in sc.spec.topology.ip_families for sc in scenarios)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt while inside, so ``finally`` cleanup always runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def open_cluster(
    choice: ClusterChoice, scenarios: Sequence[Scenario]
) -> Iterator[tuple[KubeCluster, dict[str, str]]]:
    """The cluster to run on, plus the external-endpoint addresses usable there.

    An embedded cluster started here is stopped (and everything it created removed) on exit,
    whatever the reason for leaving; with ``keep_embedded`` it keeps running after a normal exit.
    """
    externals = dict(choice.externals)
    if not choice.wants_embedded:
        cluster = (
            KubeCluster.in_cluster()
            if choice.in_cluster
            else KubeCluster(choice.kubeconfig, choice.context)
        )
        check_context(cluster.context, choice.allow_context)
        try:
            yield cluster, externals
        finally:
            cluster.close()
        return
    from conformance.cluster.config import ClusterOptions
    from conformance.cluster.embedded import EmbeddedCluster

    wanted = scenario_externals(scenarios)
    hosts = tuple(
        ExternalHost(name, ip, ports, ip6)
        for name, (ip, ports, ip6) in wanted.items()
        if name not in externals
    )
    options = ClusterOptions(
        instance=choice.instance,
        externals=hosts,
        knobs=choice.knobs,
        dual_stack=wants_ipv6(scenarios),
    )
    if choice.keep_embedded:
        # Detached, so it outlives this process; stopped here only when the run did not finish.
        from conformance.cluster import embedded as daemon

        info, _ = daemon.start(options, detach=True)
        kept = False
        try:
            externals.update({h.name: _addresses(h) for h in hosts})
            cluster = KubeCluster(info.kubeconfig, info.context)
            try:
                yield cluster, externals
                kept = True
            finally:
                cluster.close()
        finally:
            if not kept:
                daemon.stop(options.instance, options.state_root)
        return
    embedded = EmbeddedCluster(options)
    embedded.start()
    try:
        externals.update({h.name: _addresses(h) for h in hosts})
        cluster = KubeCluster(embedded.kubeconfig, embedded.context)
        try:
            yield cluster, externals
        finally:
            cluster.close()
    finally:
        embedded.stop()
