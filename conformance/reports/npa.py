"""A preview of the network-policy-api conformance record (NPEP-137) for a run.

kubernetes-sigs/network-policy-api collects one ``ConformanceReport`` per implementation and
release under ``conformance/reports/<release>/<project>.yaml``. Its suite writes that document
(types in ``conformance/apis/v1alpha1``); this module writes the same shape from our ports of the
suite's ClusterNetworkPolicy tests, so a run shows what the record would say. It is not the
record: only the upstream suite produces that (docs/reports.md).

How results fold, as upstream does it (``conformance/utils/suite/conformance_reports.go``):
a test is at the experimental level when any of its features is one of the profile's
experimental features, else at the standard level; per level, any failed test makes the result
``failure``, else any skipped test makes it ``partial``, else ``success``. Tests of an
experimental feature the implementation does not support are not counted; here a feature counts
as unsupported when none of its scenarios ran (all skipped, or none in the run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from conformance.live.results import RunResult, ScenarioResult, Status

API_VERSION = "policy.networking.k8s.io/v1alpha1"
KIND = "ConformanceReport"
# The network-policy-api release whose conformance tests the v1alpha2 scenarios port.
NPA_VERSION = "v0.2.0"

PROFILE = "ClusterNetworkPolicy"
STANDARD_FEATURES = ("ClusterNetworkPolicy",)
EXPERIMENTAL_FEATURES = ("ClusterNetworkPolicyNamedPorts", "ClusterNetworkPolicyEgressNodePeers")


@dataclass(frozen=True)
class UpstreamTest:
    short_name: str  # the upstream ConformanceTest.ShortName
    features: tuple[str, ...]  # its Features, all within PROFILE

    @property
    def experimental(self) -> bool:
        return any(f in EXPERIMENTAL_FEATURES for f in self.features)


_STD = ("ClusterNetworkPolicy",)
_NAMED = ("ClusterNetworkPolicy", "ClusterNetworkPolicyNamedPorts")
_NODES = ("ClusterNetworkPolicy", "ClusterNetworkPolicyEgressNodePeers")

# Our scenario -> the upstream v0.2.0 test it ports (conformance/tests/<file>.go in
# kubernetes-sigs/network-policy-api). Scenarios left out port tests that are not in v0.2.0
# (ingress/egress isolation, same priority, pod selectors, port ranges) and are ignored here.
UPSTREAM_TESTS: dict[str, UpstreamTest] = {
    # admin-network-policy-standard-integration.go
    "cnp-admin-baseline-integration": UpstreamTest("CNPAdminTierIntegration", _STD),
    # admin-network-policy-standard-egress-inline-cidr-rules.go
    "cnp-admin-egress-inline-cidr-rules": UpstreamTest("CNPAdminTierEgressInlineCIDRPeers", _STD),
    # admin-network-policy-standard-egress-{sctp,tcp,udp}-rules.go
    "cnp-admin-egress-sctp-rules": UpstreamTest("CNPAdminTierEgressSCTP", _STD),
    "cnp-admin-egress-tcp-rules": UpstreamTest("CNPAdminTierEgressTCP", _STD),
    "cnp-admin-egress-udp-rules": UpstreamTest("CNPAdminTierEgressUDP", _STD),
    # admin-network-policy-standard-gress-rules.go
    "cnp-admin-gress-rules": UpstreamTest("CNPAdminTierGress", _STD),
    # admin-network-policy-standard-ingress-{sctp,tcp,udp}-rules.go
    "cnp-admin-ingress-sctp-rules": UpstreamTest("CNPAdminTierIngressSCTP", _STD),
    "cnp-admin-ingress-tcp-rules": UpstreamTest("CNPAdminTierIngressTCP", _STD),
    "cnp-admin-ingress-udp-rules": UpstreamTest("CNPAdminTierIngressUDP", _STD),
    # admin-network-policy-standard-priority.go
    "cnp-admin-priority-field": UpstreamTest("CNPAdminTierPriorityField", _STD),
    # admin-network-policy-experimental-{egress,ingress}-rules.go
    "cnp-admin-egress-named-port": UpstreamTest("CNPAdminTierEgressNamedPort", _NAMED),
    "cnp-admin-ingress-named-port": UpstreamTest("CNPAdminTierIngressNamedPort", _NAMED),
    "cnp-admin-egress-node-peers": UpstreamTest("CNPAdminTierEgressNodePeers", _NODES),
    # baseline-admin-network-policy-standard-egress-inline-cidr-rules.go
    "cnp-baseline-egress-inline-cidr-rules": UpstreamTest(
        "CNPBaselineTierEgressInlineCIDRPeers", _STD
    ),
    # baseline-admin-network-policy-standard-egress-{sctp,tcp,udp}-rules.go
    "cnp-baseline-egress-sctp-rules": UpstreamTest("CNPBaselineTierEgressSCTP", _STD),
    "cnp-baseline-egress-tcp-rules": UpstreamTest("CNPBaselineTierEgressTCP", _STD),
    "cnp-baseline-egress-udp-rules": UpstreamTest("CNPBaselineTierEgressUDP", _STD),
    # baseline-admin-network-policy-standard-gress-rules.go
    "cnp-baseline-gress-rules": UpstreamTest("CNPBaselineTierGress", _STD),
    # baseline-admin-network-policy-standard-ingress-{sctp,tcp,udp}-rules.go
    "cnp-baseline-ingress-sctp-rules": UpstreamTest("CNPBaselineTierIngressSCTP", _STD),
    "cnp-baseline-ingress-tcp-rules": UpstreamTest("CNPBaselineTierIngressTCP", _STD),
    "cnp-baseline-ingress-udp-rules": UpstreamTest("CNPBaselineTierIngressUDP", _STD),
    # baseline-admin-network-policy-experimental-egress-rules.go
    "cnp-baseline-egress-named-port": UpstreamTest("CNPBaselineTierEgressNamedPort", _NAMED),
    "cnp-baseline-egress-node-peers": UpstreamTest("CNPBaselineTierEgressNodePeers", _NODES),
}

# Organization and home page of implementations `detect_cni` can name, for the defaults.
KNOWN_PROJECTS: dict[str, tuple[str, str]] = {
    "antrea": ("antrea-io", "https://github.com/antrea-io/antrea"),
    "calico": ("projectcalico", "https://github.com/projectcalico/calico"),
    "cilium": ("cilium", "https://github.com/cilium/cilium"),
    "kube-network-policies": (
        "kubernetes-sigs",
        "https://github.com/kubernetes-sigs/kube-network-policies",
    ),
    "ovn-kubernetes": ("ovn-org", "https://github.com/ovn-org/ovn-kubernetes"),
}


@dataclass(frozen=True)
class Implementation:
    organization: str
    project: str
    url: str = ""
    version: str = ""
    contact: tuple[str, ...] = ()
    additional_information: str = ""

    @classmethod
    def from_cni(cls, cni: str) -> Implementation:
        """Defaults from ``RunResult.cni`` ("cilium v1.16.0", or several joined by ", ")."""
        first = cni.split(",")[0].split()
        if not first:
            return cls(organization="unknown", project="unknown")
        project, version = first[0], " ".join(first[1:])
        org, url = KNOWN_PROJECTS.get(project, (project, ""))
        return cls(organization=org, project=project, url=url, version=version)

    def to_doc(self) -> dict[str, Any]:
        return {
            "organization": self.organization,
            "project": self.project,
            "url": self.url,
            "version": self.version,
            "contact": list(self.contact),
            "additionalInformation": self.additional_information,
        }


@dataclass
class _Level:
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def result(self) -> str:
        if self.failed:
            return "failure"
        if self.skipped:
            return "partial"
        return "success"

    def counted(self) -> bool:
        return bool(self.passed or self.failed or self.skipped)

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "result": self.result(),
            "summary": "",
            "statistics": {
                "Passed": len(self.passed),
                "Failed": len(self.failed),
                "Skipped": len(self.skipped),
            },
        }
        if self.skipped:
            doc["skippedTests"] = sorted(self.skipped)
        if self.failed:
            doc["failedTests"] = sorted(self.failed)
        return doc


def _ported(run: RunResult) -> list[tuple[ScenarioResult, UpstreamTest]]:
    return [(sc, UPSTREAM_TESTS[sc.name]) for sc in run.scenarios if sc.name in UPSTREAM_TESTS]


def supported_features(run: RunResult) -> list[str]:
    """Experimental features with at least one scenario that ran (was not skipped)."""
    ran = {f for sc, t in _ported(run) if sc.status is not Status.SKIPPED for f in t.features}
    return [f for f in EXPERIMENTAL_FEATURES if f in ran]


def profile_report(run: RunResult) -> dict[str, Any] | None:
    """The ClusterNetworkPolicy entry of ``profiles``; None when no ported scenario is in the run."""
    ported = _ported(run)
    if not ported:
        return None
    supported = set(supported_features(run))
    standard, experimental = _Level(), _Level()
    for sc, test in ported:
        if test.experimental and not supported.issuperset(
            f for f in test.features if f in EXPERIMENTAL_FEATURES
        ):
            continue  # an unsupported feature's test: not counted upstream either
        level = experimental if test.experimental else standard
        if sc.status is Status.PASS:
            level.passed.append(test.short_name)
        elif sc.status is Status.SKIPPED:
            level.skipped.append(test.short_name)
        else:  # fail, and error: upstream has no separate error outcome, the test fails
            level.failed.append(test.short_name)
    doc: dict[str, Any] = {"name": PROFILE, "standard": standard.to_doc()}
    if experimental.counted():
        exp = experimental.to_doc()
        exp["supportedFeatures"] = sorted(supported)
        unsupported = sorted(set(EXPERIMENTAL_FEATURES) - supported)
        if unsupported:
            exp["unsupportedFeatures"] = unsupported
        doc["experimental"] = exp
    return doc


def conformance_report(
    run: RunResult, implementation: Implementation | None = None, npa_version: str = NPA_VERSION
) -> dict[str, Any]:
    """The ConformanceReport document as data; the date is when the run finished (or started)."""
    impl = implementation or Implementation.from_cni(run.cni)
    profile = profile_report(run)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "implementation": impl.to_doc(),
        "date": run.finished or run.started,
        "networkPolicyV2APIVersion": npa_version,
        "profiles": [profile] if profile else [],
    }


def render_npa(
    run: RunResult, implementation: Implementation | None = None, npa_version: str = NPA_VERSION
) -> str:
    """The ConformanceReport as YAML, keys sorted as the published reports have them."""
    doc = conformance_report(run, implementation, npa_version)
    return yaml.safe_dump(doc, sort_keys=True, default_flow_style=False)
