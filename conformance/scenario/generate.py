"""Random scenarios for differential testing: seeded, reproducible and valid by construction.

Why: the shipped scenarios cover the cases people thought of; random NetworkPolicies over the
upstream model (namespaces x, y, z; pods a, b, c) find the rest. A generated scenario declares no
expectations: the reference evaluator is the expectation, so on a cluster every mismatch is a CNI
bug (or an evaluator bug), and ``generate --seed S`` reproduces the file that showed it.

Only the API's own fields are drawn (``pod_selector``, ``namespace_selector``, ``ip_block`` with
``except``, numbered, named and ranged ports, both policy types), and only values the API server
accepts, so a real cluster never rejects a generated policy. Pods differ in what their port names
mean (some swap ``serve-80-*`` and ``serve-81-*``), so a named port resolved on the wrong pod
shows; admin steps sometimes add two policies whose priority order decides verdicts, or a Pass
whose traffic the Baseline tier denies (so Pass read as allow shows); with an
``accept`` check every step changes at least one verdict. A step's kind (policies, namespace
label, pod label, pod churn) is drawn once and redrawn within that kind first, so a kind that
rarely flips a verdict (a namespace label only matters to a selector on it) is not crowded out
by the kinds that usually do.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

NAMESPACES = ("x", "y", "z")
PODS = ("a", "b", "c")
PORTS = (80, 81)
NS_LABEL = "kubernetes.io/metadata.name"
TEAM = "team"  # a namespace label that relabelling steps add, so selectors can start matching
MAX_DRAWS = 40  # attempts at a step that flips a verdict before the last attempt is kept
SAME_KIND_DRAWS = 20  # of those, attempts at the step's own kind before falling back to policies
KINDS = (("policy", 0.5), ("namespace-label", 0.15), ("pod-label", 0.15), ("churn", 0.2))
SWAP_CHANCE = 0.4  # a pod names its port 80 `serve-81-*` and 81 `serve-80-*`
PAIR_CHANCE = 0.3  # a policy step adds two admin policies of different priorities that disagree
PAIR_PRIORITIES = (3, 4)  # never drawn otherwise: no tie with the other admin policies
PASS_CHANCE = 0.3  # a policy step adds an Admin-tier Pass and a Baseline Deny on the same traffic
PASS_PRIORITY = 6  # never drawn otherwise (nor by the opposing pair)

Accept = Callable[[dict[str, Any]], bool]
"""Judges a scenario document whose last step was just drawn (True: keep it)."""


@dataclass(frozen=True)
class GenerateOptions:
    """What to draw: ``count`` scenarios from ``seed``, each with ``steps`` steps of at most
    ``max_policies`` policies, serving ``protocols`` on ports 80 and 81."""

    seed: int = 0
    count: int = 10
    steps: int = 2
    max_policies: int = 3
    protocols: tuple[str, ...] = ("TCP", "UDP")
    admin: str = (
        ""  # "", "v1alpha1" (AdminNetworkPolicy + BANP) or "v1alpha2" (ClusterNetworkPolicy)
    )


ADMIN_VERSIONS = ("v1alpha1", "v1alpha2")


def generate(options: GenerateOptions, accept: Accept | None = None) -> list[dict[str, Any]]:
    """``count`` scenario documents; the same options (and ``accept``) give the same documents.

    ``accept`` judges each step as it is drawn (the CLI passes "flips at least one cell's
    verdict", computed by the reference evaluator); a rejected step is drawn again, up to
    ``MAX_DRAWS`` times."""
    return [_Draw(options, index, accept).scenario() for index in range(options.count)]


class _Draw:
    """One scenario's random choices (its own generator: scenario i does not depend on i-1)."""

    def __init__(self, options: GenerateOptions, index: int, accept: Accept | None = None) -> None:
        self.o = options
        self.index = index
        self.accept = accept
        self.rng = random.Random(f"{options.seed}/{index}")
        self.features: set[str] = set()
        self.pods = [f"{ns}/{pod}" for ns in NAMESPACES for pod in PODS]  # as of the current step
        self.referenced: set[str] = set()  # pods whose IP the live policies name (never removed)
        self.added = 0
        # Per pod, whether its port names are swapped: a named port then means another number
        # on that pod, so resolving a name on the wrong pod changes verdicts.
        self.swapped = {key: self.rng.random() < SWAP_CHANCE for key in self.pods}
        self.teams: dict[str, str | None] = dict.fromkeys(NAMESPACES)  # each namespace's TEAM
        self.pod_labels = {key: key.split("/")[1] for key in self.pods}  # each pod's `pod` label

    def scenario(self) -> dict[str, Any]:
        steps: list[dict[str, Any]] = []
        live: set[str] = set()  # "ns/name" of the policies left by earlier steps
        for number in range(self.o.steps):
            saved = self._state(live)
            kind = self._kind(number)
            for attempt in range(MAX_DRAWS):
                if attempt:
                    self._restore(saved, live)
                if attempt == SAME_KIND_DRAWS:
                    kind = "policy"  # nothing of the kind flips a verdict now: change policies
                step = self._step(number, live, kind)
                if self.accept is None or self.accept(self._document([*steps, step])):
                    break
            steps.append(step)
        return self._document(steps)

    def _kind(self, number: int) -> str:
        if number == 0:
            return "policy"
        draw = self.rng.random()
        for kind, share in KINDS:
            if draw < share:
                return kind
            draw -= share
        return KINDS[-1][0]

    def _step(self, number: int, live: set[str], kind: str) -> dict[str, Any]:
        if kind == "policy":
            return self._policy_step(number, live)
        if kind == "namespace-label":
            return self._namespace_label_step(number)
        if kind == "pod-label":
            return self._pod_label_step(number)
        return self._churn_step(number)

    def _state(self, live: set[str]) -> tuple[Any, ...]:
        return (
            set(self.features),
            list(self.pods),
            set(self.referenced),
            self.added,
            dict(self.swapped),
            set(live),
            dict(self.teams),
            dict(self.pod_labels),
        )

    def _restore(self, saved: tuple[Any, ...], live: set[str]) -> None:
        features, pods, referenced, added, swapped, old_live, teams, pod_labels = saved
        self.features, self.pods, self.referenced = set(features), list(pods), set(referenced)
        self.added, self.swapped = added, dict(swapped)
        self.teams, self.pod_labels = dict(teams), dict(pod_labels)
        live.clear()
        live.update(old_live)

    def _ports(self, key: str) -> list[dict[str, Any]]:
        swap = self.swapped.get(key, False)
        return [
            {"port": p, "protocol": proto, "name": _port_name(_other(p) if swap else p, proto)}
            for p in PORTS
            for proto in self.o.protocols
        ]

    def _document(self, steps: list[dict[str, Any]]) -> dict[str, Any]:
        requires = self.features | {p for p in ("UDP", "SCTP") if p in self.o.protocols}
        doc: dict[str, Any] = {
            "name": f"generated-{self.o.seed}-{self.index}",
            "description": (
                "Random NetworkPolicies; no declared expectations: the reference evaluator decides. "
                f"Reproduce with `netpol-conformance generate --seed {self.o.seed} "
                f"--count {self.index + 1}`."
            ),
            "source": f"netpol-conformance generate --seed {self.o.seed}",
            "tags": ["generated"],
            "requires": sorted(requires),
            "topology": {
                "namespaces": {ns: {} for ns in NAMESPACES},
                "pods": [
                    {"name": key, "labels": {"pod": key.split("/")[1]}, "ports": self._ports(key)}
                    for key in (f"{ns}/{pod}" for ns in NAMESPACES for pod in PODS)
                ],
            },
            "steps": steps,
        }
        return doc

    # -- steps ---------------------------------------------------------------------------------
    def _policy_step(self, number: int, live: set[str]) -> dict[str, Any]:
        self.referenced = set()  # every live policy is replaced or deleted below
        policies = [self._policy(i) for i in range(self.rng.randint(1, self.o.max_policies))]
        if self.o.admin:
            policies += self._admin_policies()
        names = {_ident(p) for p in policies}
        step: dict[str, Any] = {"name": f"step {number + 1}: {len(policies)} policies"}
        gone = sorted(live - names)
        if gone:
            step["delete"] = gone
        step["apply"] = policies
        live.clear()
        live.update(names)
        return step

    # -- admin policies (policy.networking.k8s.io) ---------------------------------------------
    def _admin_policies(self) -> list[dict[str, Any]]:
        """0-2 admin policies; priorities from a small set, so equal priorities (whose overlap
        the API leaves to the implementation) happen too."""
        out = []
        banp = False
        for i in range(self.rng.choice([0, 1, 1, 2])):
            if self.o.admin == "v1alpha2":
                tier = self.rng.choice(["Admin", "Baseline"])
                self.features.add("ClusterNetworkPolicy")
                spec: dict[str, Any] = {"tier": tier, "priority": self.rng.choice([1, 2, 5])}
                kind, version, name = "ClusterNetworkPolicy", "v1alpha2", f"cnp{i}"
            elif not banp and self.rng.random() < 0.3:
                banp, tier = True, "Baseline"
                self.features.add("BaselineAdminNetworkPolicy")
                spec, kind, version, name = {}, "BaselineAdminNetworkPolicy", "v1alpha1", "default"
            else:
                tier = "Admin"
                self.features.add("AdminNetworkPolicy")
                spec = {"priority": self.rng.choice([1, 2, 5])}
                kind, version, name = "AdminNetworkPolicy", "v1alpha1", f"anp{i}"
            spec["subject"] = self._admin_subject()
            for direction, peer_key in (("ingress", "from"), ("egress", "to")):
                rules = [self._admin_rule(r, peer_key, tier) for r in range(self.rng.randint(0, 2))]
                if rules:
                    spec[direction] = rules
                    if direction == "egress":
                        self.features.add("Egress")
            out.append(
                {
                    "apiVersion": f"policy.networking.k8s.io/{version}",
                    "kind": kind,
                    "metadata": {"name": name},
                    "spec": spec,
                }
            )
        if self.rng.random() < PAIR_CHANCE:
            out += self._opposing_pair()
        if self.rng.random() < PASS_CHANCE and not banp:
            out += self._pass_and_baseline_deny()
        return out

    def _pass_and_baseline_deny(self) -> list[dict[str, Any]]:
        """An Admin-tier Pass and a Baseline-tier Deny with one subject, one peer, one direction:
        where no NetworkPolicy isolates the subject pod, the traffic is passed to the baseline
        and denied, so an implementation that reads Pass as allow (or skips the baseline) lets
        it through."""
        v2 = self.o.admin == "v1alpha2"
        subject = {"namespaces": {"matchLabels": {NS_LABEL: self.rng.choice(NAMESPACES)}}}
        direction, peer_key = self.rng.choice([("ingress", "from"), ("egress", "to")])
        if direction == "egress":
            self.features.add("Egress")
        peer = {"namespaces": {"matchLabels": {NS_LABEL: self.rng.choice(NAMESPACES)}}}

        def policy(kind: str, version: str, name: str, spec: dict[str, Any], action: str) -> Any:
            rules = [{"name": "r0", "action": action, peer_key: [peer]}]
            return {
                "apiVersion": f"policy.networking.k8s.io/{version}",
                "kind": kind,
                "metadata": {"name": name},
                "spec": {**spec, "subject": subject, direction: rules},
            }

        if v2:
            self.features.add("ClusterNetworkPolicy")
            return [
                policy(
                    "ClusterNetworkPolicy",
                    "v1alpha2",
                    "cnp-pass",
                    {"tier": "Admin", "priority": PASS_PRIORITY},
                    "Pass",
                ),
                policy(
                    "ClusterNetworkPolicy",
                    "v1alpha2",
                    "cnp-pass-deny",
                    {"tier": "Baseline", "priority": PASS_PRIORITY},
                    "Deny",
                ),
            ]
        self.features |= {"AdminNetworkPolicy", "BaselineAdminNetworkPolicy"}
        return [
            policy(
                "AdminNetworkPolicy", "v1alpha1", "anp-pass", {"priority": PASS_PRIORITY}, "Pass"
            ),
            policy("BaselineAdminNetworkPolicy", "v1alpha1", "default", {}, "Deny"),
        ]

    def _opposing_pair(self) -> list[dict[str, Any]]:
        """Two Admin-tier policies with one subject, one peer and one direction, of different
        priorities with opposite actions: the lower number must win on every connection both
        match, so an implementation that orders priorities wrongly flips those verdicts."""
        v2 = self.o.admin == "v1alpha2"
        ns = self.rng.choice(NAMESPACES)
        subject = {"namespaces": {"matchLabels": {NS_LABEL: ns}}}
        direction, peer_key = self.rng.choice([("ingress", "from"), ("egress", "to")])
        if direction == "egress":
            self.features.add("Egress")
        peer = {"namespaces": {"matchLabels": {NS_LABEL: self.rng.choice(NAMESPACES)}}}
        actions = ["Accept" if v2 else "Allow", "Deny"]
        self.rng.shuffle(actions)
        if v2:
            self.features.add("ClusterNetworkPolicy")
            kind, version, extra = "ClusterNetworkPolicy", "v1alpha2", {"tier": "Admin"}
        else:
            self.features.add("AdminNetworkPolicy")
            kind, version, extra = "AdminNetworkPolicy", "v1alpha1", {}
        prefix = "cnp" if v2 else "anp"
        return [
            {
                "apiVersion": f"policy.networking.k8s.io/{version}",
                "kind": kind,
                "metadata": {"name": f"{prefix}-pair{priority}"},
                "spec": {
                    **extra,
                    "priority": priority,
                    "subject": subject,
                    direction: [{"name": "r0", "action": action, peer_key: [peer]}],
                },
            }
            for priority, action in zip(PAIR_PRIORITIES, actions, strict=True)
        ]

    def _admin_subject(self) -> dict[str, Any]:
        if self.rng.random() < 0.5:
            return {"namespaces": self._namespace_selector()}
        return {"pods": self._admin_pods()}

    def _admin_pods(self) -> dict[str, Any]:
        return {
            "namespaceSelector": self._namespace_selector(),
            "podSelector": self._pod_selector(),
        }

    def _admin_rule(self, index: int, peer_key: str, tier: str) -> dict[str, Any]:
        v2 = self.o.admin == "v1alpha2"
        actions = ["Accept" if v2 else "Allow", "Deny"] + (["Pass"] if tier == "Admin" else [])
        peers: list[dict[str, Any]] = []
        for _ in range(self.rng.randint(1, 2)):
            choice = self.rng.randrange(3 if peer_key == "to" else 2)
            if choice == 0:
                peers.append({"namespaces": self._namespace_selector()})
            elif choice == 1:
                peers.append({"pods": self._admin_pods()})
            else:
                pod = self._ip_pod()
                cidr = self.rng.choice(
                    ["{{ pod_cidr }}", f"{{{{ ip('{pod}') }}}}/32", f"{{{{ ip('{pod}') }}}}/30"]
                )
                peers.append({"networks": [cidr]})
        rule: dict[str, Any] = {
            "name": f"r{index}",
            "action": self.rng.choice(actions),
            peer_key: peers,
        }
        # Egress CEL rule: no named ports in a rule with `networks` peers.
        named_ok = not any("networks" in p for p in peers)
        if self.rng.random() < 0.6:
            entries = [self._admin_port(named_ok) for _ in range(self.rng.randint(1, 2))]
            rule["protocols" if v2 else "ports"] = entries
        return rule

    def _admin_port(self, named_ok: bool) -> dict[str, Any]:
        proto = self.rng.choice(self.o.protocols)
        choice = self.rng.randrange(3 if named_ok else 2)
        port = self.rng.choice(PORTS)
        if self.o.admin == "v1alpha2":
            if choice == 0:
                return {proto.lower(): {"destinationPort": {"number": port}}}
            if choice == 1:
                start = self.rng.choice([79, 80])
                end = start + self.rng.choice([1, 2])
                return {proto.lower(): {"destinationPort": {"range": {"start": start, "end": end}}}}
            return {"destinationNamedPort": _port_name(port, self.rng.choice(self.o.protocols))}
        if choice == 0:
            return {"portNumber": {"protocol": proto, "port": port}}
        if choice == 1:
            start = self.rng.choice([79, 80])
            end = start + self.rng.choice([1, 2])
            return {"portRange": {"protocol": proto, "start": start, "end": end}}
        return {"namedPort": _port_name(port, self.rng.choice(self.o.protocols))}

    def _churn_step(self, number: int) -> dict[str, Any]:
        """Remove a pod and add one elsewhere: addresses are reused and new pods must be
        selected (or not) from their first packet, as CNIs must handle during rollouts."""
        step: dict[str, Any] = {"name": f"step {number + 1}: pod churn"}
        key = f"{self.rng.choice(NAMESPACES)}/d{self.added}"
        self.added += 1
        self.swapped[key] = self.rng.random() < SWAP_CHANCE
        self.pod_labels[key] = self.rng.choice([*PODS, "d"])
        step["add_pods"] = [
            {
                "name": key,
                "labels": {"pod": self.pod_labels[key]},
                "ports": self._ports(key),
            }
        ]
        removable = [p for p in self.pods if p not in self.referenced]
        if removable:
            gone = self.rng.choice(removable)
            self.pods.remove(gone)
            step["remove_pods"] = [gone]
        self.pods.append(key)
        return step

    def _ip_pod(self) -> str:
        """A pod whose IP a policy may name (then kept alive while that policy is)."""
        pod = self.rng.choice(self.pods)
        self.referenced.add(pod)
        return pod

    def _namespace_label_step(self, number: int) -> dict[str, Any]:
        """Set, change or remove a namespace's TEAM label (never to the value it has)."""
        ns = self.rng.choice(NAMESPACES)
        team = self.rng.choice([t for t in ("blue", "red", None) if t != self.teams[ns]])
        self.teams[ns] = team
        return {
            "name": f"step {number + 1}: label namespace {ns}",
            "label_namespaces": {ns: {TEAM: team}},
        }

    def _pod_label_step(self, number: int) -> dict[str, Any]:
        """Give a pod another ``pod`` label (never the one it has)."""
        key = self.rng.choice(self.pods)
        label = self.rng.choice([p for p in PODS if p != self.pod_labels.get(key)])
        self.pod_labels[key] = label
        return {
            "name": f"step {number + 1}: relabel pod {key}",
            "label_pods": {key: {"pod": label}},
        }

    # -- policies ------------------------------------------------------------------------------
    def _policy(self, index: int) -> dict[str, Any]:
        ns = self.rng.choice(NAMESPACES)
        spec: dict[str, Any] = {"podSelector": self._pod_selector()}
        # policyTypes omitted: Ingress, plus Egress when egress rules exist (API default).
        types = self.rng.choice([None, ["Ingress"], ["Egress"], ["Ingress", "Egress"]])
        if types is not None:
            spec["policyTypes"] = types
        if types is None or "Ingress" in types:
            spec["ingress"] = [self._rule("from") for _ in range(self.rng.randint(0, 2))]
        egress = "Egress" in types if types is not None else self.rng.random() < 0.3
        if egress:
            spec["egress"] = [self._rule("to") for _ in range(self.rng.randint(0, 2))]
        if "Egress" in (types or []) or "egress" in spec:
            self.features.add("Egress")
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": f"p{index}", "namespace": ns},
            "spec": spec,
        }

    def _rule(self, peer_key: str) -> dict[str, Any]:
        rule: dict[str, Any] = {}
        if self.rng.random() < 0.8:
            rule[peer_key] = [self._peer() for _ in range(self.rng.randint(1, 2))]
        if self.rng.random() < 0.6:
            rule["ports"] = [self._port() for _ in range(self.rng.randint(1, 2))]
        return rule

    def _peer(self) -> dict[str, Any]:
        kind = self.rng.choice(["pod", "namespace", "both", "ip"])
        if kind == "pod":
            return {"podSelector": self._pod_selector()}
        if kind == "namespace":
            return {"namespaceSelector": self._namespace_selector()}
        if kind == "both":
            return {
                "podSelector": self._pod_selector(),
                "namespaceSelector": self._namespace_selector(),
            }
        return {"ipBlock": self._ip_block()}

    def _pod_selector(self) -> dict[str, Any]:
        choice = self.rng.randrange(5)
        if choice == 0:
            return {}
        if choice == 1:
            return {"matchLabels": {"pod": self.rng.choice(PODS)}}
        if choice == 2:
            values = self.rng.sample(PODS, self.rng.randint(1, 2))
            op = self.rng.choice(["In", "NotIn"])
            return {"matchExpressions": [{"key": "pod", "operator": op, "values": values}]}
        if choice == 3:
            op = self.rng.choice(["Exists", "DoesNotExist"])
            return {"matchExpressions": [{"key": "pod", "operator": op}]}
        return {
            "matchLabels": {"pod": self.rng.choice(PODS)},
            "matchExpressions": [
                {"key": "pod", "operator": "NotIn", "values": [self.rng.choice(PODS)]}
            ],
        }

    def _namespace_selector(self) -> dict[str, Any]:
        choice = self.rng.randrange(4)
        if choice == 0:
            return {}
        if choice == 1:
            return {"matchLabels": {NS_LABEL: self.rng.choice(NAMESPACES)}}
        if choice == 2:
            values = self.rng.sample(NAMESPACES, 2)
            return {"matchExpressions": [{"key": NS_LABEL, "operator": "NotIn", "values": values}]}
        return {"matchLabels": {TEAM: self.rng.choice(["blue", "red"])}}

    def _ip_block(self) -> dict[str, Any]:
        """A CIDR around a pod's IP (host bits set, as upstream writes them) or the pod CIDR,
        with ``except`` entries always inside it, as the API server requires."""
        self.features.add("IPBlock")
        pod = self._ip_pod()
        if self.rng.random() < 0.3:
            block: dict[str, Any] = {"cidr": "{{ pod_cidr }}"}
            if self.rng.random() < 0.6:
                block["except"] = [f"{{{{ ip('{pod}') }}}}/{self.rng.choice([32, 31, 30])}"]
            return block
        prefix = self.rng.choice([32, 30, 28, 24, 16])
        block = {"cidr": f"{{{{ ip('{pod}') }}}}/{prefix}"}
        if prefix < 32 and self.rng.random() < 0.5:
            hole = self.rng.choice([p for p in (32, 31, 30, 29) if p > prefix])
            block["except"] = [f"{{{{ ip('{pod}') }}}}/{hole}"]
        return block

    def _port(self) -> dict[str, Any]:
        proto = self.rng.choice(self.o.protocols)
        choice = self.rng.randrange(4)
        if choice == 0:
            return {"port": self.rng.choice(PORTS), "protocol": proto}
        if choice == 1:
            self.features.add("NamedPorts")
            # Sometimes a name served with another protocol: the port then matches nothing.
            named = self.rng.choice(self.o.protocols)
            return {"port": _port_name(self.rng.choice(PORTS), named), "protocol": proto}
        if choice == 2:
            self.features.add("EndPort")
            start = self.rng.choice([79, 80, 81])
            return {"port": start, "endPort": start + self.rng.choice([0, 1, 2]), "protocol": proto}
        return {"protocol": proto}


def _ident(policy: dict[str, Any]) -> str:
    """How a step's ``delete`` names the policy: ``ns/name``, or ``Kind/name`` cluster-scoped."""
    meta = policy["metadata"]
    if policy["kind"] == "NetworkPolicy":
        return f"{meta['namespace']}/{meta['name']}"
    return f"{policy['kind']}/{meta['name']}"


def _other(port: int) -> int:
    """The other served port (80 <-> 81)."""
    return PORTS[1 - PORTS.index(port)]


def _port_name(port: int, protocol: str) -> str:
    return f"serve-{port}-{protocol.lower()}"
