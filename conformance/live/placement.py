"""Where a scenario's pods run on a live cluster: its node names mapped onto real nodes.

A scenario names its own nodes (``topology.nodes``, default ``node-1``, ``node-2``) and places
every pod on one of them (``scenario.bind.placement``: pinned by ``node``, else spread). On a real
cluster each scenario node becomes one real node, either as ``--node-map node-1=kind-worker,...``
says, or automatically: the scenario's nodes in their order onto distinct *schedulable workers*
(Ready, not cordoned, no ``NoSchedule``/``NoExecute`` taint such as the control plane's), sorted
naturally by name (``worker2`` before ``worker10``). Pods then carry a ``nodeSelector`` on the
node's ``kubernetes.io/hostname`` label.

Why: real CNIs enforce policy on different code paths for traffic on one node and across nodes,
so a run must put pods where the scenario says, and say where they really ran.

Pure functions over core/v1 Node objects (plain dicts), so the rules are unit-tested without a
cluster.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conformance.api.model import HOSTNAME_LABEL
from conformance.errors import ConformanceError
from conformance.scenario.load import Scenario

NO_SCHEDULE_EFFECTS = frozenset({"NoSchedule", "NoExecute"})
"""Taint effects that keep pods without a toleration off a node (``PreferNoSchedule`` does not)."""


class PlacementError(ConformanceError):
    """A scenario's nodes cannot be mapped onto the cluster's (too few nodes, a bad --node-map)."""


def parse_node_map(text: str) -> dict[str, str]:
    """``node-1=kind-worker,node-2=kind-worker2`` as a mapping; ValueError saying what is wrong."""
    out: dict[str, str] = {}
    for term in (t.strip() for t in text.split(",")):
        if not term:
            continue
        scenario, eq, real = (s.strip() for s in term.partition("="))
        if not eq or not scenario or not real:
            raise ValueError(
                f"expected SCENARIO_NODE=NODE[,...] such as node-1=kind-worker, got {term!r}"
            )
        if scenario in out and out[scenario] != real:
            raise ValueError(f"scenario node {scenario!r} is mapped twice")
        out[scenario] = real
    return out


def unmapped_names(node_map: Mapping[str, str], scenarios: Sequence[Scenario]) -> list[str]:
    """``--node-map`` keys that no scenario has as a node (a typo, or another shard's nodes)."""
    known = {name for sc in scenarios for name in sc.spec.topology.nodes}
    return sorted(set(node_map) - known)


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key reading digit runs as numbers: ``worker``, ``worker2``, ``worker10``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


@dataclass(frozen=True)
class ClusterNode:
    """What placement needs to know of one core/v1 Node."""

    name: str
    hostname: str
    """Its ``kubernetes.io/hostname`` label (the node's name when the label is missing)."""
    labels: Mapping[str, str] = field(default_factory=dict)
    unschedulable: str = ""
    """Why pods cannot be scheduled on it ("" when they can): not Ready, cordoned, tainted."""

    @property
    def schedulable(self) -> bool:
        return not self.unschedulable


def cluster_node(obj: Mapping[str, Any]) -> ClusterNode:
    """A Node object read for placement: name, hostname label and schedulability."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    name = str(meta.get("name", ""))
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    taints = [
        f"{t.get('key', '')}:{t.get('effect')}"
        for t in spec.get("taints") or []
        if t.get("effect") in NO_SCHEDULE_EFFECTS
    ]
    why = ""
    if not ready:
        why = "not Ready"
    elif spec.get("unschedulable"):
        why = "cordoned"
    elif taints:
        why = f"tainted {', '.join(taints)}"
    return ClusterNode(name, labels.get(HOSTNAME_LABEL) or name, labels, why)


def cluster_nodes(items: Sequence[Mapping[str, Any]]) -> tuple[ClusterNode, ...]:
    """Every node, naturally sorted by name."""
    return tuple(sorted((cluster_node(o) for o in items), key=lambda n: natural_key(n.name)))


def _matches(node: ClusterNode, selector: Mapping[str, str]) -> bool:
    labels = {HOSTNAME_LABEL: node.hostname, **node.labels}
    return all(labels.get(k) == v for k, v in selector.items())


@dataclass(frozen=True)
class Placement:
    """A scenario's nodes on a cluster: each scenario node's real node and pod ``nodeSelector``.

    Empty ``nodes`` means the runner does not choose (the scheduler places pods, with only the
    global ``--node-selector``); ``note`` then says why, or says what a run on fewer nodes than
    the scenario has means for its cells.
    """

    nodes: Mapping[str, str] = field(default_factory=dict)
    """Scenario node name -> real node name."""
    selectors: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Scenario node name -> the nodeSelector of its pods (global selector merged in)."""
    default_selector: Mapping[str, str] = field(default_factory=dict)
    """The nodeSelector of pods whose scenario node is not mapped (the global one)."""
    note: str = ""

    def selector(self, scenario_node: str | None) -> dict[str, str]:
        """The nodeSelector for a pod the scenario places on ``scenario_node``."""
        if scenario_node is not None and scenario_node in self.selectors:
            return dict(self.selectors[scenario_node])
        return dict(self.default_selector)

    def asked(self, scenario_node: str | None) -> str | None:
        """The real node a pod on ``scenario_node`` was asked to run on (None: not chosen)."""
        return self.nodes.get(scenario_node) if scenario_node is not None else None


def _merge(
    scenario_node: str, real: str, hostname: str, global_selector: Mapping[str, str]
) -> dict[str, str]:
    """The global selector plus ``kubernetes.io/hostname``; PlacementError when they disagree."""
    given = global_selector.get(HOSTNAME_LABEL)
    if given is not None and given != hostname:
        raise PlacementError(
            f"--node-selector {HOSTNAME_LABEL}={given} conflicts with placing the pods of scenario "
            f"node {scenario_node} on {real} ({HOSTNAME_LABEL}={hostname}); drop it from "
            "--node-selector and choose nodes with --node-map instead"
        )
    return {**global_selector, HOSTNAME_LABEL: hostname}


def place(
    scenario_nodes: Sequence[str],
    nodes: Sequence[ClusterNode] | None,
    node_map: Mapping[str, str] | None = None,
    global_selector: Mapping[str, str] | None = None,
    pins: bool = False,
) -> Placement:
    """Map ``scenario_nodes`` (in scenario order) onto the cluster's ``nodes``.

    ``nodes`` None: the cluster's Node objects cannot be read; only ``node_map`` places pods (on
    the named node's name as hostname). ``pins``: the scenario pins pods to nodes, so running it
    on fewer real nodes than it has would test something else, and is an error; a scenario that
    only spreads its pods runs with several scenario nodes sharing a real node (``note`` says so).
    """
    given = dict(node_map or {})
    glob = dict(global_selector or {})
    if nodes is None or not nodes:
        why = (
            "the cluster's Node objects cannot be read"
            if nodes is None
            else "the cluster lists no Node objects"
        )
        mapped = {s: given[s] for s in scenario_nodes if s in given}
        if not mapped:
            return Placement(
                default_selector=glob,
                note=f"pods not placed on nodes: {why}, so the scheduler chose; each cell's "
                "path is where its pods ran",
            )
        selectors = {s: _merge(s, r, r, glob) for s, r in mapped.items()}
        rest = [s for s in scenario_nodes if s not in mapped]
        note = (
            f"{why}: --node-map used as given (hostname = node name); scenario nodes "
            f"{', '.join(rest)} are not mapped, so the scheduler places their pods"
            if rest
            else ""
        )
        return Placement(mapped, selectors, glob, note)

    by_name = {n.name: n for n in nodes}
    for s, real in given.items():
        if s in scenario_nodes and real not in by_name:
            names = ", ".join(n.name for n in nodes)
            raise PlacementError(
                f"--node-map {s}={real}: the cluster has no node {real!r} (nodes: {names})"
            )
        if s in scenario_nodes and not _matches(by_name[real], glob):
            raise PlacementError(
                f"--node-map {s}={real}: node {real} does not carry the labels of --node-selector "
                f"{','.join(f'{k}={v}' for k, v in glob.items())}"
            )
    mapped = {s: given[s] for s in scenario_nodes if s in given}
    rest = [s for s in scenario_nodes if s not in mapped]
    candidates = [n for n in nodes if n.schedulable and _matches(n, glob)]
    free = [n for n in candidates if n.name not in mapped.values()]
    note = ""
    if len(free) < len(rest):
        pool = free or [n for n in candidates if n.name in mapped.values()] or candidates
        what = "schedulable node" + ("" if len(candidates) == 1 else "s")
        if glob:
            what += f" matching --node-selector {','.join(f'{k}={v}' for k, v in glob.items())}"
        unavailable = [f"{n.name} ({n.unschedulable})" for n in nodes if not n.schedulable]
        skipped = f"; not schedulable: {', '.join(unavailable)}" if unavailable else ""
        if pins or not pool:
            reason = "pins pods to its nodes" if pins and pool else "has pods to place"
            raise PlacementError(
                f"the scenario {reason} and needs {len(scenario_nodes)} distinct nodes "
                f"({', '.join(scenario_nodes)}), but the cluster has {len(candidates)} {what}"
                f"{skipped}; add worker nodes or map scenario nodes onto nodes with --node-map "
                f"{scenario_nodes[0]}=NODE,..."
            )
        shared = {s: pool[i % len(pool)].name for i, s in enumerate(rest)}
        real_count = len(set(mapped.values()) | set(shared.values()))
        if real_count == 1:
            only = next(iter({**mapped, **shared}.values()))
            note = (
                f"the cluster has {len(candidates)} {what} for the scenario's "
                f"{len(scenario_nodes)} nodes: all run on {only}, so every pod-to-pod cell is "
                "same-node (cross-node paths are not tested)"
            )
        else:
            note = (
                f"the cluster has {len(candidates)} {what} for the scenario's "
                f"{len(scenario_nodes)} nodes: "
                + ", ".join(f"{s} on {r}" for s, r in {**mapped, **shared}.items())
                + " (some cells that would be cross-node are same-node)"
            )
        mapped = {**mapped, **shared}
    else:
        mapped = {**mapped, **{s: free[i].name for i, s in enumerate(rest)}}
    ordered = {s: mapped[s] for s in scenario_nodes}
    selectors = {s: _merge(s, r, by_name[r].hostname, glob) for s, r in ordered.items()}
    return Placement(ordered, selectors, glob, note)
