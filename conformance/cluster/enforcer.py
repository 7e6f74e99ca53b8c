"""Keeps the node's nftables ruleset equal to the compiled current policies.

Why: every change (policy, pod, label, namespace) must reach the dataplane as one atomic ``nft -f``
transaction, coalescing bursts, optionally after a delay that imitates slow CNIs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conformance.cluster.compiler import NamespaceView, NodeScope, PodView, compile_policies
from conformance.cluster.knobs import Knobs
from conformance.cluster.services import nat_chains

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inputs:
    """Everything enforcement depends on, as the controller sees it at one instant."""

    pods: Sequence[PodView]
    namespaces: Sequence[NamespaceView]
    policies: Sequence[dict[str, Any]]
    services: Sequence[dict[str, Any]] = ()
    admin: Sequence[dict[str, Any]] = ()
    baseline: Sequence[dict[str, Any]] = ()
    stale: Mapping[str, PodView] = field(default_factory=dict)
    """Deviation stale-address-rules: address -> the deleted pod whose rules it keeps."""
    host_pods: Sequence[PodView] = ()
    """Host-network pods: no policy selects them, but Services send to them (at their node's
    address)."""
    nodes: Sequence[NodeScope] = ()
    """Each node (name, addresses, labels); none: one ruleset for everything (compiler tests)."""

    def scopes(self) -> list[NodeScope]:
        """Each node with the addresses of the pods it runs (their rules are enforced there)."""
        local: dict[str, set[str]] = {}
        for pod in self.pods:
            local.setdefault(pod.node, set()).update(pod.addresses)
        return [dataclasses.replace(n, local=frozenset(local.get(n.name, ()))) for n in self.nodes]

    def policy_pods(self) -> list[PodView]:
        """The pods as policy enforcement sees them: a reused address keeps its old pod's rules."""
        out = []
        for pod in self.pods:
            old = self.stale.get(pod.ip)
            out.append(
                pod
                if old is None
                else PodView(
                    old.namespace,
                    old.name,
                    pod.ip,
                    old.labels,
                    old.ports,
                    old.order,
                    ips=pod.ips,
                    node=pod.node,
                )
            )
        return out


Snapshot = Callable[[], Inputs]
Ruleset = str | Mapping[str, str]
"""One script, or one per node name."""
Apply = Callable[[Any], Any]


@dataclass
class EnforcerStats:
    """Counters reported on the daemon's status endpoint (and used by the bench script)."""

    generation: int = 0
    applied_generation: int = 0
    applies: int = 0
    last_compile_seconds: float = 0.0
    last_apply_seconds: float = 0.0
    last_rules: int = 0
    last_error: str = ""


class Enforcer:
    """Recompiles on ``changed()``; ``wait(gen)`` resolves once rules of that generation are live."""

    def __init__(self, snapshot: Snapshot, apply: Apply, knobs: Knobs) -> None:
        self._snapshot = snapshot
        self._apply = apply
        self.knobs = knobs
        self.stats = EnforcerStats()
        self._dirty = asyncio.Event()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._delayed: set[asyncio.Task[None]] = set()
        # One install at a time, newest wins: with a delay, installs of successive generations can
        # overlap, and whichever `nft -f` committed last would otherwise decide what is live.
        self._installing = asyncio.Lock()
        self.last_script: Ruleset = ""

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._worker())

    async def stop(self) -> None:
        for task in [self._task, *self._delayed]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def install_now(self) -> None:
        """Compile and install the current state at once; errors propagate (start-up check)."""
        self.stats.generation += 1
        script, count = self._compile()
        await self._install(self.stats.generation, script, count)

    def changed(self) -> int:
        """Note a change; returns its generation number."""
        self.stats.generation += 1
        gen = self.stats.generation
        if self.knobs.enforcement_delay > 0:
            script, count = self._compile()
            task = asyncio.get_running_loop().create_task(self._later(gen, script, count))
            self._delayed.add(task)
            task.add_done_callback(self._delayed.discard)
        else:
            self._dirty.set()
        return gen

    async def wait(self, gen: int) -> None:
        """Return once rules reflecting generation ``gen`` (or later) are installed."""
        if self.stats.applied_generation >= gen:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((gen, fut))
        await fut

    def _compile(self) -> tuple[Ruleset, int]:
        start = time.perf_counter()
        inp = self._snapshot()
        compiled = compile_policies(
            inp.policy_pods(),
            inp.namespaces,
            inp.policies,
            self.knobs,
            nat_chains(inp.services, [*inp.pods, *inp.host_pods]),
            inp.admin,
            inp.baseline,
            inp.scopes(),
        )
        self.stats.last_compile_seconds = time.perf_counter() - start
        script: Ruleset = compiled.scripts or compiled.script
        return script, sum(len(v) for v in compiled.ingress.values()) + sum(
            len(v) for v in compiled.egress.values()
        )

    async def _install(self, gen: int, script: Ruleset, count: int) -> None:
        async with self._installing:
            if gen < self.stats.applied_generation:
                return  # a newer generation is live: a late snapshot must never overwrite it
            await self._install_locked(gen, script, count)

    async def _install_locked(self, gen: int, script: Ruleset, count: int) -> None:
        start = time.perf_counter()
        changed = _changed(self.last_script, script)
        try:
            if changed:
                await self._apply(changed)
        except Exception as exc:
            self.stats.last_error = str(exc)
            log.error("installing rules failed: %s", exc)
            # Some nodes may have taken the new rules: install every node's next time.
            self.last_script = ""
            raise
        self.last_script = script
        self.stats.last_apply_seconds = time.perf_counter() - start
        self.stats.applies += 1
        self.stats.last_rules = count
        self.stats.applied_generation = max(self.stats.applied_generation, gen)
        done = [w for w in self._waiters if w[0] <= self.stats.applied_generation]
        self._waiters = [w for w in self._waiters if w[0] > self.stats.applied_generation]
        for _, fut in done:
            if not fut.done():
                fut.set_result(None)

    async def _later(self, gen: int, script: Ruleset, count: int) -> None:
        await asyncio.sleep(self.knobs.enforcement_delay)
        with contextlib.suppress(Exception):
            await self._install(gen, script, count)

    async def _worker(self) -> None:
        backoff = 0.1
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            gen = self.stats.generation
            script, count = self._compile()
            try:
                await self._install(gen, script, count)
                backoff = 0.1
            except Exception:
                # A script nft rejects is a compiler bug: keep the last good rules, report it on
                # the status endpoint, and retry (a later change may produce a valid script).
                await asyncio.sleep(backoff)
                backoff = min(5.0, backoff * 2)
                self._dirty.set()


def _changed(installed: Ruleset, script: Ruleset) -> Ruleset:
    """What of ``script`` differs from the ``installed`` rules: the whole script, or per node the
    nodes whose script changed (nothing: empty). Why: most label changes (e.g. a label no policy
    selects on) compile to the very same rules, and installing those again only costs an
    ``nft -f`` per node; rules already live are left as they are."""
    if isinstance(script, str):
        return "" if script == installed else script
    if isinstance(installed, str):
        return script
    return {node: text for node, text in script.items() if installed.get(node) != text}
