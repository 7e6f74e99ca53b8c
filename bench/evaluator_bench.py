"""Full-matrix evaluation speed (issue 8): the fast matrix, the reference, and np-guard's NCA.

Run: ``python bench/evaluator_bench.py`` (default sizes take a few minutes on one core), add
``--large`` for 5,000 pods / 5,000 policies. Each size runs in a fresh child process so its peak
RSS (``resource.getrusage``) is its own. Nothing is asserted: this prints measurements, the
targets and whether they are met.

The peer tool is np-guard's network-config-analyzer (https://github.com/np-guard), an optional
bench dependency only. Install it into its own virtualenv so its pins do not touch ours::

    python -m venv /tmp/nca-venv && /tmp/nca-venv/bin/pip install network-config-analyzer

and pass ``--nca /tmp/nca-venv/bin/nca`` (default: ``nca`` on PATH; skipped when absent).

Synthetic clusters are generated reproducibly from ``--seed``: namespaces with labels (some with
empty values), workloads of 1-8 pods with app/tier/version labels and named TCP/UDP/SCTP ports,
and NetworkPolicies with pod/namespace selectors, matchExpressions, ipBlock with except,
numeric/named/endPort/protocol-only ports, ingress and egress.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conformance.api.model import ClusterState
from conformance.api.types import Direction, L4Protocol
from conformance.reference.evaluator import Evaluator, Verdict
from conformance.reference.inventory import Inventory, SourcedObject, build_inventory
from conformance.reference.matrix import ReachabilityMatrix, compute_matrix

PORTS = [
    (80, "TCP", "http"),
    (443, "TCP", "https"),
    (8080, "TCP", "http-alt"),
    (9090, "TCP", "metrics"),
    (5432, "TCP", "pg"),
    (53, "UDP", "dns"),
    (5000, "UDP", "stream"),
    (3868, "SCTP", "diameter"),
]
TIERS = ["web", "api", "db", "cache"]
TEAMS = ["a", "b", "c", "d", "e"]
ENVS = ["prod", "staging", "dev", ""]  # "" : an empty label value is valid and selectable
POD_NET = ipaddress.ip_network("10.128.0.0/12")


# -- synthetic clusters ---------------------------------------------------------------------


def generate(
    seed: int, n_pods: int, n_policies: int, n_admin: int = 0, singletons: bool = False
) -> list[dict[str, Any]]:
    """Namespaces, pods (with IPs) and policies as API objects, reproducible from seed.

    ``n_admin`` AdminNetworkPolicies (and then a BaselineAdminNetworkPolicy) are added after the
    NetworkPolicies, so the NetworkPolicy part is the same with or without them.
    ``singletons`` makes every pod its own workload (the worst case for grouping pods).
    """
    rnd = random.Random(seed)
    n_ns = max(2, n_pods // 40)
    namespaces = [f"ns{i}" for i in range(n_ns)]
    objects: list[dict[str, Any]] = []
    ns_labels: dict[str, dict[str, str]] = {}
    for ns in namespaces:
        labels = {"team": rnd.choice(TEAMS), "env": rnd.choice(ENVS)}
        ns_labels[ns] = labels
        objects.append({"kind": "Namespace", "metadata": {"name": ns, "labels": labels}})
    apps: dict[str, list[str]] = {ns: [] for ns in namespaces}
    made = 0
    w = 0
    while made < n_pods:
        ns = rnd.choice(namespaces)
        app = f"app{w}"
        w += 1
        apps[ns].append(app)
        labels = {"app": app, "tier": rnd.choice(TIERS)}
        if rnd.random() < 0.5:
            labels["version"] = rnd.choice(["v1", "v2"])
        ports = rnd.sample(PORTS, rnd.randint(1, 3))
        replicas = 1 if singletons else rnd.randint(1, 8)
        for r in range(min(replicas, n_pods - made)):
            ip = POD_NET.network_address + 10 + made
            objects.append(
                {
                    "kind": "Pod",
                    "metadata": {"name": f"{app}-{r}", "namespace": ns, "labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "c",
                                "image": "agnhost",
                                "ports": [
                                    {"containerPort": p, "protocol": proto, "name": name}
                                    for p, proto, name in ports
                                ],
                            }
                        ]
                    },
                    "status": {"podIP": str(ip), "phase": "Running"},
                }
            )
            made += 1
    for i in range(n_policies):
        ns = rnd.choice(namespaces)
        objects.append(_policy(rnd, f"pol{i}", ns, apps[ns] or ["none"]))
    all_apps = [a for ns in namespaces for a in apps[ns]] or ["none"]
    for i in range(n_admin):
        objects.append(_admin_policy(rnd, f"anp{i}", all_apps))
    if n_admin:
        objects.append(_banp(rnd))
    return objects


def _admin_rules(
    rnd: random.Random, key: str, actions: list[str], apps: list[str]
) -> list[dict[str, Any]]:
    rules = []
    for _ in range(rnd.randint(0, 3)):
        peers: list[dict[str, Any]] = []
        for _ in range(rnd.randint(1, 2)):
            r = rnd.random()
            if r < 0.4:
                peers.append({"namespaces": _ns_selector(rnd)})
            elif r < 0.8 or key == "from":
                peers.append(
                    {
                        "pods": {
                            "namespaceSelector": _ns_selector(rnd),
                            "podSelector": _pod_selector(rnd, apps),
                        }
                    }
                )
            else:
                peers.append({"networks": [f"10.128.{rnd.randrange(0, 16)}.0/24"]})
        rule: dict[str, Any] = {"action": rnd.choice(actions), key: peers}
        if rnd.random() < 0.6:
            p, proto, name = rnd.choice(PORTS)
            networks = any("networks" in peer for peer in peers)
            if rnd.random() < 0.5 or networks:  # named ports may not be used with networks
                rule["ports"] = [{"portNumber": {"port": p, "protocol": proto}}]
            else:
                rule["ports"] = [{"namedPort": name}]
        rules.append(rule)
    return rules


def _admin_policy(rnd: random.Random, name: str, apps: list[str]) -> dict[str, Any]:
    """A v1alpha1 AdminNetworkPolicy; priorities repeat sometimes (undefined ties included)."""
    actions = ["Allow", "Deny", "Pass"]
    return {
        "apiVersion": "policy.networking.k8s.io/v1alpha1",
        "kind": "AdminNetworkPolicy",
        "metadata": {"name": name},
        "spec": {
            "priority": rnd.randrange(0, 100),
            "subject": {"namespaces": _ns_selector(rnd)},
            "ingress": _admin_rules(rnd, "from", actions, apps),
            "egress": _admin_rules(rnd, "to", actions, apps),
        },
    }


def _banp(rnd: random.Random) -> dict[str, Any]:
    return {
        "apiVersion": "policy.networking.k8s.io/v1alpha1",
        "kind": "BaselineAdminNetworkPolicy",
        "metadata": {"name": "default"},
        "spec": {
            "subject": {"namespaces": {}},
            "ingress": [
                {"action": "Allow", "from": [{"namespaces": {"matchLabels": {"env": "prod"}}}]},
                {"action": "Deny", "from": [{"namespaces": {}}]},
            ],
        },
    }


def _pod_selector(rnd: random.Random, apps: list[str]) -> dict[str, Any]:
    r = rnd.random()
    if r < 0.15:
        return {}
    if r < 0.55:
        return {"matchLabels": {"app": rnd.choice(apps)}}
    if r < 0.75:
        return {"matchLabels": {"tier": rnd.choice(TIERS)}}
    op = rnd.choice(["In", "NotIn", "Exists", "DoesNotExist"])
    if op in ("In", "NotIn"):
        return {
            "matchExpressions": [
                {"key": "tier", "operator": op, "values": rnd.sample(TIERS, rnd.randint(1, 2))}
            ]
        }
    return {"matchExpressions": [{"key": "version", "operator": op}]}


def _ns_selector(rnd: random.Random) -> dict[str, Any]:
    r = rnd.random()
    if r < 0.2:
        return {}
    if r < 0.6:
        return {"matchLabels": {"team": rnd.choice(TEAMS)}}
    if r < 0.8:
        return {"matchLabels": {"env": rnd.choice(ENVS)}}
    return {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", ""]}]}


def _peer(rnd: random.Random, apps: list[str]) -> dict[str, Any]:
    r = rnd.random()
    if r < 0.35:
        return {"podSelector": _pod_selector(rnd, apps)}
    if r < 0.6:
        return {"namespaceSelector": _ns_selector(rnd)}
    if r < 0.85:
        return {"namespaceSelector": _ns_selector(rnd), "podSelector": _pod_selector(rnd, apps)}
    block = rnd.randrange(0, 16)
    choices = [
        {"cidr": "10.128.0.0/16", "except": [f"10.128.{block}.0/24"]},
        {"cidr": f"10.128.{block}.0/24"},
        {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]},
        {"cidr": f"10.128.{block}.{rnd.randrange(0, 256)}/32"},
    ]
    return {"ipBlock": rnd.choice(choices)}


def _port(rnd: random.Random) -> dict[str, Any]:
    r = rnd.random()
    p, proto, name = rnd.choice(PORTS)
    if r < 0.45:
        return {"port": p, "protocol": proto}
    if r < 0.75:
        return {"port": name, "protocol": proto}
    if r < 0.9:
        return {"port": 5000, "endPort": 9100, "protocol": rnd.choice(["TCP", "UDP"])}
    return {"protocol": proto}


def _rules(rnd: random.Random, key: str, apps: list[str]) -> list[dict[str, Any]]:
    rules = []
    for _ in range(rnd.choice([0, 1, 1, 2, 2, 3])):
        rule: dict[str, Any] = {}
        if rnd.random() < 0.85:
            rule[key] = [_peer(rnd, apps) for _ in range(rnd.randint(1, 2))]
        if rnd.random() < 0.7:
            rule["ports"] = [_port(rnd) for _ in range(rnd.randint(1, 2))]
        rules.append(rule)
    return rules


def _policy(rnd: random.Random, name: str, ns: str, apps: list[str]) -> dict[str, Any]:
    types = rnd.choice([["Ingress"], ["Ingress"], ["Egress"], ["Ingress", "Egress"]])
    spec: dict[str, Any] = {"podSelector": _pod_selector(rnd, apps), "policyTypes": types}
    if "Ingress" in types:
        spec["ingress"] = _rules(rnd, "from", apps)
    if "Egress" in types:
        spec["egress"] = _rules(rnd, "to", apps)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def inventory(
    seed: int, n_pods: int, n_policies: int, n_admin: int = 0, singletons: bool = False
) -> Inventory:
    objs = generate(seed, n_pods, n_policies, n_admin, singletons)
    return build_inventory(SourcedObject(o, "synthetic") for o in objs)


# -- one measurement (child process) --------------------------------------------------------


def measure(
    seed: int, n_pods: int, n_policies: int, n_admin: int = 0, singletons: bool = False
) -> dict[str, Any]:
    inv = inventory(seed, n_pods, n_policies, n_admin, singletons)
    start = time.process_time()
    matrix = compute_matrix(inv.state, inv.policies)
    cpu = time.process_time() - start
    return {
        "pods": n_pods,
        "policies": n_policies,
        "cells": matrix.cell_count,
        "seconds": cpu,
        "allow": matrix.counts()[Verdict.ALLOW],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def child(
    seed: int,
    n_pods: int,
    n_policies: int,
    timeout: float,
    n_admin: int = 0,
    singletons: bool = False,
) -> dict[str, Any] | None:
    cmd = [sys.executable, __file__, "--child", str(n_pods), str(n_policies), "--seed", str(seed)]
    cmd += ["--admin", str(n_admin)] + (["--singletons"] if singletons else [])
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- np-guard network-config-analyzer -------------------------------------------------------


def write_nca_inputs(objs: list[dict[str, Any]], folder: Path) -> None:
    def items(kind: str) -> list[dict[str, Any]]:
        out = []
        for o in objs:
            if o["kind"] == kind:
                o = {"apiVersion": "v1", **o}
                if kind == "Namespace":
                    meta = o["metadata"]
                    labels = {**meta["labels"], "kubernetes.io/metadata.name": meta["name"]}
                    o = {**o, "metadata": {**meta, "labels": labels}}
                out.append(o)
        return out

    (folder / "policies").mkdir()
    (folder / "ns.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "NamespaceList", "items": items("Namespace")})
    )
    (folder / "pods.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "PodList", "items": items("Pod")})
    )
    (folder / "policies" / "np.yaml").write_text(
        yaml.safe_dump_all([o for o in objs if o["kind"] == "NetworkPolicy"])
    )


_CONN = re.compile(r"\{([^{}]*)\}")


def parse_connections(text: str) -> set[tuple[L4Protocol, int | None, int | None]]:
    """NCA's connection text as (protocol, low, high) ranges; None bounds mean every port."""
    text = text.strip()
    if text == "All connections":
        return {(p, None, None) for p in L4Protocol}
    out: set[tuple[L4Protocol, int | None, int | None]] = set()
    for group in _CONN.findall(text):
        protos: list[L4Protocol] = []
        ports: list[tuple[int, int]] = []
        field = ""
        for part in group.split(","):
            part = part.strip()
            if ":" in part:
                field, part = part.split(":", 1)
            if field == "protocols" and part in L4Protocol.__members__:
                protos.append(L4Protocol(part))
            elif field == "dst_ports":
                low, _, high = part.partition("-")
                ports.append((int(low), int(high or low)))
        for proto in protos:
            if ports:
                out.update((proto, low, high) for low, high in ports)
            else:
                out.add((proto, None, None))
    return out


def nca_run(
    nca: str, objs: list[dict[str, Any]], timeout: float
) -> tuple[float, float, dict[tuple[str, str], set[Any]]] | None:
    """(wall seconds, NCA's own reported run time, allowed connections per pod pair)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_nca_inputs(objs, folder)
        cmd = [
            nca,
            "--connectivity",
            str(folder / "policies"),
            "-p",
            str(folder / "pods.yaml"),
            "-n",
            str(folder / "ns.yaml"),
            "-o",
            "txt_no_fw_rules",
            "--output_endpoints",
            "pods",
        ]
        start = time.perf_counter()
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        wall = time.perf_counter() - start
    reported = wall
    pairs: dict[tuple[str, str], set[Any]] = {}
    for line in done.stdout.splitlines():
        m = re.match(r"Total run time:\s+([\d.]+)", line.strip())
        if m:
            reported = float(m.group(1))
        if " => " in line and " : " in line:
            ends, conns = line.split(" : ", 1)
            src, dst = (e.strip() for e in ends.split(" => "))
            # A pair with several connection groups gets one line per group.
            pairs.setdefault((src, dst), set()).update(parse_connections(conns))
    return wall, reported, pairs


def nca_allows(conns: set[Any], port: int, proto: L4Protocol) -> bool:
    return any(p == proto and (lo is None or lo <= port <= hi) for p, lo, hi in conns)


def compare_with_nca(
    inv: Inventory, matrix: ReachabilityMatrix, pairs: dict[tuple[str, str], set[Any]]
) -> list[tuple[str, str, int, L4Protocol, Verdict, bool, str]]:
    """Cells (pod to another pod) where the two disagree, with the most likely reason."""
    no_ip = ClusterState(inv.state.namespaces, tuple(replace(p, ip=None) for p in inv.state.pods))
    without_ips = compute_matrix(no_ip, inv.policies)
    ev = matrix.evaluator
    out = []
    for s, t, port, proto, verdict in matrix.cells():
        if s == t or t.startswith("@"):
            continue
        theirs = nca_allows(pairs.get((s, t), set()), port, proto)
        if (verdict is Verdict.ALLOW) == theirs:
            continue
        if (without_ips.verdict(s, t, port, proto) is Verdict.ALLOW) == theirs:
            reason = "ipBlock: NCA gives pods no IPs, so ipBlock peers never match pods"
        elif _empty_ns_label_involved(inv, ev, s, t):
            reason = (
                "an empty label value on a namespace or in a namespaceSelector deciding the "
                "cell (NCA mishandles these)"
            )
        else:
            reason = "unexplained: " + matrix.reason(s, t, port, proto)
        out.append((s, t, port, proto, verdict, theirs, reason))
    return out


def _empty_ns_label_involved(inv: Inventory, ev: Evaluator, s: str, t: str) -> bool:
    """An empty label value on either end's namespace, or in a namespaceSelector deciding it."""
    if any("" in inv.state.namespace(k.split("/")[0]).labels.values() for k in (s, t)):
        return True
    for pod, direction in ((s, Direction.EGRESS), (t, Direction.INGRESS)):
        for policy in ev.isolating(pod, direction):
            for rule in policy.rules(direction):
                for peer in rule.peers:
                    sel = peer.namespace_selector
                    if sel is not None and (
                        "" in sel.match_labels.values()
                        or any("" in r.values for r in sel.match_expressions)
                    ):
                        return True
    return False


# -- report ----------------------------------------------------------------------------------


def _fmt(seconds: float) -> str:
    return f"{seconds:8.2f} s"


def scaling(seed: int, label: str, sizes: list[tuple[int, int]], timeout: float) -> None:
    print(f"\n{label}")
    print(f"  {'pods':>6} {'policies':>8} {'cells':>12} {'time':>10} {'µs/cell':>8} {'RSS MiB':>8}")
    for pods, pols in sizes:
        r = child(seed, pods, pols, timeout)
        if r is None:
            print(f"  {pods:>6} {pols:>8}  timed out after {timeout:.0f} s")
            continue
        per_cell = r["seconds"] / max(1, r["cells"]) * 1e6
        print(
            f"  {pods:>6} {pols:>8} {r['cells']:>12,} {_fmt(r['seconds'])} {per_cell:>8.3f}"
            f" {r['peak_rss_mib']:>8.0f}"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--large", action="store_true", help="also 5,000 pods / 5,000 policies")
    ap.add_argument("--nca", default="nca", help="path of np-guard's nca (default: on PATH)")
    ap.add_argument("--nca-timeout", type=float, default=300.0)
    ap.add_argument("--quick", action="store_true", help="smaller scaling series")
    ap.add_argument("--admin", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--singletons", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument(
        "--child", nargs=2, type=int, metavar=("PODS", "POLICIES"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.child:
        pods, pols = args.child
        print(json.dumps(measure(args.seed, pods, pols, args.admin, args.singletons)))
        return 0
    print("Full reachability matrix (every ordered pod pair x every port the target declares),")
    print(f"one core (CPU time of a child process per size), seed {args.seed}.")
    print("Caveat: a shared 2-core machine; figures vary by ~20 % between runs.\n")
    targets: list[tuple[int, int, float, float | None]] = [(1000, 1000, 10.0, None)]
    if args.large:
        targets.append((5000, 5000, 120.0, 4096.0))
    for pods, pols, limit, rss in targets:
        r = child(args.seed, pods, pols, 1200)
        if r is None:
            print(f"{pods} pods / {pols} policies: timed out")
            continue
        ok = r["seconds"] < limit and (rss is None or r["peak_rss_mib"] < rss)
        rss_txt = f", peak RSS {r['peak_rss_mib']:.0f} MiB" + (
            f" (target < {rss:.0f})" if rss else ""
        )
        print(
            f"{pods} pods / {pols} policies: {r['cells']:,} cells in {r['seconds']:.2f} s "
            f"(target < {limit:.0f} s){rss_txt}: {'MET' if ok else 'NOT MET'}"
        )
    if not args.large:
        print("(5,000 pods / 5,000 policies: run with --large)")
    for pods, pols, admin in [(1000, 1000, 50)] + ([(5000, 5000, 200)] if args.large else []):
        r = child(args.seed, pods, pols, 1200, n_admin=admin)
        if r is not None:
            print(
                f"{pods} pods / {pols} NetworkPolicies + {admin} AdminNetworkPolicies and a BANP:"
                f" {r['cells']:,} cells in {r['seconds']:.2f} s, peak RSS {r['peak_rss_mib']:.0f} MiB"
            )
    for pods, pols in [(1000, 1000)] + ([(5000, 5000)] if args.large else []):
        r = child(args.seed, pods, pols, 1200, singletons=True)
        if r is not None:
            print(
                f"{pods} pods / {pols} policies, every pod its own workload (no pods share "
                f"labels and ports; worst case for grouping): {r['cells']:,} cells in "
                f"{r['seconds']:.2f} s, peak RSS {r['peak_rss_mib']:.0f} MiB"
            )
    quick = args.quick
    pod_series = [250, 500, 1000, 2000] if not quick else [250, 500, 1000]
    pol_series = [250, 500, 1000, 2000] if not quick else [250, 500, 1000]
    scaling(args.seed, "growth with pods (500 policies):", [(p, 500) for p in pod_series], 600)
    scaling(args.seed, "growth with policies (1000 pods):", [(1000, p) for p in pol_series], 600)

    # Reference and NCA at 200 pods / 100 policies.
    print("\n200 pods / 100 policies: fast matrix vs the rule-by-rule reference vs NCA")
    objs = generate(args.seed, 200, 100)
    inv = build_inventory(SourcedObject(o, "synthetic") for o in objs)
    start = time.perf_counter()
    matrix = compute_matrix(inv.state, inv.policies)
    fast = time.perf_counter() - start
    start = time.perf_counter()
    ev = Evaluator(inv.state, inv.policies)
    mismatches = sum(
        ev.decide(s, t, port, proto).verdict is not v for s, t, port, proto, v in matrix.cells()
    )
    ref = time.perf_counter() - start
    print(f"  fast matrix     {_fmt(fast)}  ({matrix.cell_count:,} cells)")
    print(
        f"  reference       {_fmt(ref)}  ratio {ref / fast:6.1f}x; cells that differ: {mismatches}"
    )
    admin_inv = inventory(args.seed, 200, 100, 10)
    admin_matrix = compute_matrix(admin_inv.state, admin_inv.policies)
    admin_ev = Evaluator(admin_inv.state, admin_inv.policies)
    admin_diff = sum(
        admin_ev.decide(s, t, port, proto).verdict is not v
        for s, t, port, proto, v in admin_matrix.cells()
    )
    counts = admin_matrix.counts()
    print(
        f"  with 10 AdminNetworkPolicies and a BANP: cells that differ from the reference: "
        f"{admin_diff} ({counts[Verdict.IMPLEMENTATION_DEFINED]:,} implementation-defined)"
    )
    nca = shutil.which(args.nca) or (args.nca if Path(args.nca).exists() else None)
    if nca is None:
        print(
            "  NCA             skipped: `nca` not found (pip install network-config-analyzer "
            "into a venv and pass --nca PATH)"
        )
        return 0
    for pods, pols in [(200, 100), (500, 250)] if args.large else [(200, 100)]:
        objs = generate(args.seed, pods, pols)
        inv = build_inventory(SourcedObject(o, "synthetic") for o in objs)
        start = time.perf_counter()
        matrix = compute_matrix(inv.state, inv.policies)
        fast = time.perf_counter() - start
        got = nca_run(nca, objs, args.nca_timeout)
        if got is None:
            print(f"  NCA at {pods}/{pols}: did not finish in {args.nca_timeout:.0f} s")
            continue
        wall, reported, pairs = got
        ok = "MET" if reported / fast >= 100 else "NOT MET"
        print(
            f"  NCA {pods:>4} pods/{pols:>4} policies: wall {wall:.2f} s (its own 'Total run time' "
            f"{reported:.2f} s) vs fast {fast:.3f} s: {wall / fast:,.0f}x wall, "
            f"{reported / fast:,.0f}x run time (target >= 100x on run time: {ok})"
        )
        diffs = compare_with_nca(inv, matrix, pairs)
        pod_cells = sum(1 for s, t, *_ in matrix.cells() if s != t)
        print(f"    verdicts compared on {pod_cells:,} pod-to-other-pod cells; {len(diffs)} differ")
        by_reason: dict[str, int] = {}
        for d in diffs:
            key = d[6] if not d[6].startswith("unexplained") else "unexplained"
            by_reason[key] = by_reason.get(key, 0) + 1
        for reason, n in sorted(by_reason.items(), key=lambda x: -x[1]):
            print(f"    {n:>7,} {reason}")
        for s, t, port, proto, ours, theirs, reason in _first(diffs, 5):
            print(
                f"      e.g. {s} -> {t} {port}/{proto}: ours {ours}, NCA "
                f"{'allow' if theirs else 'deny'}: {reason[:300]}"
            )
    return 0


def _first(items: list[Any], n: int) -> Iterator[Any]:
    seen: set[str] = set()
    for item in items:
        key = item[6][:40]
        if key in seen:
            continue
        seen.add(key)
        yield item
        n -= 1
        if n == 0:
            return


if __name__ == "__main__":
    sys.exit(main())
