"""A scale scenario: many pods in team namespaces under hundreds of NetworkPolicies, seeded.

Why: the shipped scenarios have nine pods; a real cluster has hundreds of pods and policies, and
both the dataplane (rule count, compile time) and the harness (cells to evaluate and probe) behave
differently there. ``generate --pods 200 --policies 500`` writes one such scenario, reproducible
from its seed, shaped like a multi-team cluster: namespaces per team, workloads of 1-4 replicas
with app/tier labels, each namespace isolated by a default deny, then allows between tiers and
teams, ``ipBlock`` egress with ``except`` blocks where pods are, port ranges, and named ports
whose numbers differ between workloads. Step 2 relabels a
namespace and a workload and deletes a tenth of the policies, so verdicts change in both
directions. It declares no expectations: the reference evaluator is the expectation. Such a
scenario has about 40,000 cells per port per step, so it sets ``probe.sample`` (sampled probing,
see ``conformance/reference/sampling.py``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

TIERS = ("web", "api", "db", "cache")
ENVS = ("prod", "staging")
# A port name means different numbers on different workloads (as `metrics` or `web` do in real
# clusters): the web tier serves `web` on 80, the others on 443, so a named port resolved on the
# wrong pod shows.
PORTS = {
    "web": (
        {"port": 80, "protocol": "TCP", "name": "web"},
        {"port": 443, "protocol": "TCP", "name": "tls"},
    ),
    "other": (
        {"port": 80, "protocol": "TCP", "name": "plain"},
        {"port": 443, "protocol": "TCP", "name": "web"},
    ),
}
PODS_PER_NAMESPACE = 20
NS_LABEL = "kubernetes.io/metadata.name"
NP = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy"}


@dataclass(frozen=True)
class ScaleOptions:
    """``pods`` pods and ``policies`` NetworkPolicies drawn from ``seed``; ``sample`` cells probed
    per step (0: every cell)."""

    pods: int = 200
    policies: int = 500
    seed: int = 0
    sample: int = 2000


def scale_scenario(options: ScaleOptions) -> dict[str, Any]:
    """The scenario document (plain YAML data, validated by the loader like any other)."""
    rng = random.Random(options.seed)
    n_ns = max(1, -(-options.pods // PODS_PER_NAMESPACE))
    namespaces = {
        f"team-{i}": {"labels": {"team": f"t{i}", "env": ENVS[i % len(ENVS)]}} for i in range(n_ns)
    }
    pods: list[dict[str, Any]] = []
    apps: list[tuple[str, str, str]] = []  # (namespace, app, tier)
    while len(pods) < options.pods:
        ns = f"team-{len(pods) // PODS_PER_NAMESPACE}"
        app, tier = f"app{len(apps)}", rng.choice(TIERS)
        apps.append((ns, app, tier))
        for r in range(min(rng.randint(1, 4), options.pods - len(pods))):
            pods.append(
                {
                    "name": f"{ns}/{app}-{r}",
                    "labels": {"app": app, "tier": tier},
                    "ports": [dict(p) for p in PORTS["web" if tier == "web" else "other"]],
                }
            )
    draw = _Draw(rng, sorted(namespaces), apps)
    policies = [draw.default_deny(ns) for ns in sorted(namespaces)][: options.policies]
    while len(policies) < options.policies:
        policies.append(draw.policy(len(policies)))
    removed = rng.sample(policies[len(namespaces) :], k=len(policies) // 10)
    relabel_ns = rng.choice(sorted(namespaces))
    relabel_app = rng.choice(apps)
    first_pod = next(p["name"] for p in pods if p["labels"]["app"] == relabel_app[1])
    probe: dict[str, Any] = {"ports": [80, 443], "protocols": ["TCP"]}
    if options.sample:
        probe["sample"] = {"cells": options.sample, "seed": options.seed}
    return {
        "name": f"scale-{options.pods}-pods-{options.policies}-policies-{options.seed}",
        "description": (
            f"{options.pods} pods in {n_ns} team namespaces under {options.policies} "
            f"NetworkPolicies (generate --pods {options.pods} --policies {options.policies} "
            f"--seed {options.seed}); step 2 relabels a namespace and a pod and deletes a tenth "
            "of the policies. No expectations: the reference evaluator is the expectation."
        ),
        "tags": ["scale", "generated"],
        "topology": {"namespaces": namespaces, "pods": pods},
        "probe": probe,
        "steps": [
            {"name": f"apply {len(policies)} policies", "apply": policies},
            {
                "name": "relabel, and delete a tenth of the policies",
                "delete": [
                    f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in removed
                ],
                "label_namespaces": {relabel_ns: {"env": "quarantine"}},
                "label_pods": {first_pod: {"tier": "web" if relabel_app[2] != "web" else "api"}},
            },
        ],
    }


class _Draw:
    """Draws one NetworkPolicy at a time (valid by construction: only what the API accepts)."""

    def __init__(self, rng: random.Random, namespaces: list[str], apps: list[tuple[str, str, str]]):
        self.rng = rng
        self.namespaces = namespaces
        self.apps = apps

    def default_deny(self, ns: str) -> dict[str, Any]:
        return {
            **NP,
            "metadata": {"name": "default-deny", "namespace": ns},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        }

    def policy(self, index: int) -> dict[str, Any]:
        ns, app, tier = self.rng.choice(self.apps)
        kind = self.rng.choices(
            ("tier", "team", "app", "egress-ipblock", "egress-app", "expressions"),
            weights=(30, 20, 20, 10, 10, 10),
        )[0]
        subject: dict[str, Any] = self.rng.choice(
            [{"matchLabels": {"app": app}}, {"matchLabels": {"tier": tier}}]
        )
        spec: dict[str, Any] = {"podSelector": subject}
        if kind == "egress-ipblock":
            base = self.rng.choice(("10.244.0.0/16", "10.0.0.0/8"))
            spec["policyTypes"] = ["Egress"]
            spec["egress"] = [
                {
                    "to": [{"ipBlock": {"cidr": base, "except": [self._slice()]}}],
                    "ports": [self._port()],
                },
                {"to": [{"namespaceSelector": {"matchLabels": {NS_LABEL: ns}}}]},
            ]
        elif kind == "egress-app":
            _, other, _ = self.rng.choice(self.apps)
            spec["policyTypes"] = ["Egress"]
            spec["egress"] = [
                {
                    "to": [
                        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": other}}}
                    ],
                    "ports": [self._port()],
                },
                {"to": [{"podSelector": {}}]},
            ]
        else:
            spec["policyTypes"] = ["Ingress"]
            spec["ingress"] = [{"from": [self._peer(kind, ns)], "ports": [self._port()]}]
        return {**NP, "metadata": {"name": f"{kind}-{index}", "namespace": ns}, "spec": spec}

    def _peer(self, kind: str, ns: str) -> dict[str, Any]:
        rng = self.rng
        if kind == "tier":
            return {"podSelector": {"matchLabels": {"tier": rng.choice(TIERS)}}}
        if kind == "team":
            other = rng.choice(self.namespaces)
            return {
                "namespaceSelector": {"matchLabels": {"team": f"t{other.rsplit('-', 1)[1]}"}},
                "podSelector": {"matchLabels": {"tier": rng.choice(TIERS)}},
            }
        if kind == "app":
            _, app, _ = rng.choice(self.apps)
            return {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": app}}}
        return {
            "namespaceSelector": {
                "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["staging"]}]
            },
            "podSelector": {
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": rng.sample(TIERS, 2)}
                ]
            },
        }

    def _port(self) -> dict[str, Any]:
        roll = self.rng.random()
        if roll < 0.4:
            return {"port": self.rng.choice((80, 443)), "protocol": "TCP"}
        if roll < 0.7:
            return {"port": self.rng.choice(("web", "web", "tls", "plain")), "protocol": "TCP"}
        low = self.rng.choice((79, 80, 81, 400, 443))
        return {"port": low, "endPort": low + self.rng.choice((0, 1, 100)), "protocol": "TCP"}

    def _slice(self) -> str:
        # Where pods are: the first addresses of a node's pod CIDR (kind: 10.244.N.0/24 per node;
        # the embedded cluster: 10.244.16.0/20, 10.244.32.0/20, ...), so `except` carves pods out.
        third = self.rng.choice((0, 1, 2, 16, 32))
        return f"10.244.{third}.{self.rng.randrange(0, 64, 16)}/28"
