"""``report --format npa-conformance``: the network-policy-api ConformanceReport preview."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.cli import main
from conformance.live.results import RunResult, ScenarioResult, Status
from conformance.reports import render
from conformance.reports.npa import (
    UPSTREAM_TESTS,
    Implementation,
    conformance_report,
    render_npa,
)
from conformance.scenario.load import load_scenario

ROOT = Path(__file__).parent.parent
V1ALPHA2 = ROOT / "scenarios" / "admin" / "v1alpha2"

# The key structure of a ConformanceReport as the upstream Go types (conformance/apis/v1alpha1
# in kubernetes-sigs/network-policy-api) serialise it: None marks a leaf, a dict a nested object
# and a one-element list a list of such objects. Optional keys (omitempty) are in OPTIONAL.
SHAPE: dict[str, Any] = {
    "apiVersion": None,
    "kind": None,
    "date": None,
    "networkPolicyV2APIVersion": None,
    "implementation": {
        "organization": None,
        "project": None,
        "url": None,
        "version": None,
        "contact": None,
        "additionalInformation": None,
    },
    "profiles": [
        {
            "name": None,
            "standard": {
                "result": None,
                "summary": None,
                "statistics": {"Passed": None, "Failed": None, "Skipped": None},
                "skippedTests": None,
                "failedTests": None,
            },
            "experimental": {
                "result": None,
                "summary": None,
                "statistics": {"Passed": None, "Failed": None, "Skipped": None},
                "skippedTests": None,
                "failedTests": None,
                "supportedFeatures": None,
                "unsupportedFeatures": None,
            },
        }
    ],
}
OPTIONAL = {
    "skippedTests",
    "failedTests",
    "experimental",
    "supportedFeatures",
    "unsupportedFeatures",
}


def assert_shape(doc: Any, shape: Any, where: str = "") -> None:
    if shape is None:
        assert not isinstance(doc, dict), where
        return
    if isinstance(shape, list):
        assert isinstance(doc, list), where
        for i, item in enumerate(doc):
            assert_shape(item, shape[0], f"{where}[{i}]")
        return
    assert isinstance(doc, dict), where
    assert set(doc) <= set(shape), f"{where}: unknown keys {set(doc) - set(shape)}"
    missing = set(shape) - set(doc) - OPTIONAL
    assert not missing, f"{where}: missing {missing}"
    for key, value in doc.items():
        assert_shape(value, shape[key], f"{where}.{key}")


def scenario(name: str, status: Status) -> ScenarioResult:
    return ScenarioResult(name, f"scenarios/admin/v1alpha2/{name}.yaml", [], status)


def run_of(*scenarios: ScenarioResult, cni: str = "cilium v1.18.1") -> RunResult:
    return RunResult(
        run_id="abc123",
        context="kind",
        server="https://127.0.0.1:6443",
        server_version="v1.33.1",
        tool_version="0.0.0",
        options={},
        started="2026-11-30T10:00:00Z",
        finished="2026-11-30T10:20:00Z",
        scenarios=list(scenarios),
        cni=cni,
    )


def profile(run: RunResult) -> dict[str, Any]:
    (p,) = conformance_report(run)["profiles"]
    assert isinstance(p, dict)
    return p


def test_every_mapped_scenario_exists_and_names_its_upstream_test_file() -> None:
    for name in UPSTREAM_TESTS:
        sc = load_scenario(V1ALPHA2 / f"{name}.yaml")
        assert sc.name == name
        assert "network-policy-api" in (sc.spec.source or "")
        requires = {str(f) for f in sc.spec.requires}
        # Upstream's experimental features here: named ports, and node peers (host-network pods).
        experimental = bool({"NamedPorts", "HostNetwork"} & requires)
        assert UPSTREAM_TESTS[name].experimental == experimental, name


def test_document_has_the_published_shape() -> None:
    run = run_of(
        scenario("cnp-admin-ingress-tcp-rules", Status.PASS),
        scenario("cnp-admin-egress-sctp-rules", Status.SKIPPED),
        scenario("cnp-baseline-gress-rules", Status.FAIL),
        scenario("cnp-admin-egress-named-port", Status.PASS),
        scenario("cnp-admin-ingress-named-port", Status.FAIL),
    )
    doc = yaml.safe_load(render_npa(run))
    assert_shape(doc, SHAPE)
    assert doc["apiVersion"] == "policy.networking.k8s.io/v1alpha1"
    assert doc["kind"] == "ConformanceReport"
    assert doc["date"] == "2026-11-30T10:20:00Z"
    assert doc["networkPolicyV2APIVersion"] == "v0.2.0"
    assert doc["implementation"] == {
        "organization": "cilium",
        "project": "cilium",
        "url": "https://github.com/cilium/cilium",
        "version": "v1.18.1",
        "contact": [],
        "additionalInformation": "",
    }
    assert [p["name"] for p in doc["profiles"]] == ["ClusterNetworkPolicy"]
    assert "experimental" in doc["profiles"][0]


def test_statistics_and_levels() -> None:
    run = run_of(
        scenario("cnp-admin-ingress-tcp-rules", Status.PASS),
        scenario("cnp-admin-egress-tcp-rules", Status.PASS),
        scenario("cnp-baseline-ingress-sctp-rules", Status.SKIPPED),
        scenario("cnp-admin-egress-named-port", Status.PASS),
        scenario("cnp-baseline-egress-named-port", Status.PASS),
    )
    p = profile(run)
    assert p["standard"] == {
        "result": "partial",  # a skipped standard test, none failed
        "summary": "",
        "statistics": {"Passed": 2, "Failed": 0, "Skipped": 1},
        "skippedTests": ["CNPBaselineTierIngressSCTP"],
    }
    assert p["experimental"] == {
        "result": "success",
        "summary": "",
        "statistics": {"Passed": 2, "Failed": 0, "Skipped": 0},
        "supportedFeatures": ["ClusterNetworkPolicyNamedPorts"],
        "unsupportedFeatures": ["ClusterNetworkPolicyEgressNodePeers"],  # no port here
    }


@pytest.mark.parametrize("status", [Status.FAIL, Status.ERROR])
def test_a_failing_or_erroring_scenario_fails_its_level_only(status: Status) -> None:
    run = run_of(
        scenario("cnp-admin-ingress-tcp-rules", Status.PASS),
        scenario("cnp-admin-priority-field", status),
        scenario("cnp-baseline-egress-udp-rules", Status.SKIPPED),
        scenario("cnp-admin-egress-named-port", Status.PASS),
    )
    p = profile(run)
    assert p["standard"]["result"] == "failure"  # failure wins over partial
    assert p["standard"]["failedTests"] == ["CNPAdminTierPriorityField"]
    assert p["standard"]["statistics"] == {"Passed": 1, "Failed": 1, "Skipped": 1}
    assert p["experimental"]["result"] == "success"


def test_an_unsupported_experimental_feature_is_not_counted() -> None:
    run = run_of(
        scenario("cnp-admin-ingress-tcp-rules", Status.PASS),
        scenario("cnp-admin-egress-named-port", Status.SKIPPED),
        scenario("cnp-admin-ingress-named-port", Status.SKIPPED),
    )
    p = profile(run)
    assert p["standard"]["result"] == "success"
    assert "experimental" not in p  # as upstream: no experimental test counted


def test_unknown_scenarios_are_ignored() -> None:
    run = run_of(
        scenario("should-support-a-default-deny-ingress-policy", Status.FAIL),
        scenario("cnp-admin-same-priority-disjoint-subjects", Status.FAIL),  # not in v0.2.0
        scenario("cnp-admin-ingress-tcp-rules", Status.PASS),
    )
    p = profile(run)
    assert p["standard"]["result"] == "success"
    assert p["standard"]["statistics"] == {"Passed": 1, "Failed": 0, "Skipped": 0}
    empty = run_of(scenario("should-support-a-default-deny-ingress-policy", Status.PASS))
    assert conformance_report(empty)["profiles"] == []


def test_implementation_defaults_from_the_cni() -> None:
    assert Implementation.from_cni("calico v3.30.0, kindnet v2") == Implementation(
        "projectcalico", "calico", "https://github.com/projectcalico/calico", "v3.30.0"
    )
    assert Implementation.from_cni("weave 2.8") == Implementation("weave", "weave", "", "2.8")
    assert Implementation.from_cni("") == Implementation("unknown", "unknown")


def test_render_dispatches_the_format() -> None:
    run = run_of(scenario("cnp-admin-ingress-tcp-rules", Status.PASS))
    assert render(run, "npa-conformance") == render_npa(run)


def test_report_command_writes_the_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_of(
        scenario("cnp-admin-ingress-tcp-rules", Status.PASS),
        scenario("cnp-admin-egress-tcp-rules", Status.FAIL),
    )
    results = tmp_path / "results.json"
    results.write_text(json.dumps(run.to_json(), default=str))
    out = tmp_path / "conformance" / "reports" / "v0.2.0" / "cilium.yaml"
    argv = ["report", str(results), "--format", "npa-conformance", "-o", str(out)]
    extra = ["--implementation", "isovalent/cilium", "--implementation-version", "v1.19.0"]
    extra += ["--contact", "@someone", "--contact", "@cilium/sig-policy"]
    extra += ["--additional-information", "https://example.org/ci/123"]
    assert main(argv + extra) == 0
    doc = yaml.safe_load(out.read_text())
    assert_shape(doc, SHAPE)
    assert doc["implementation"] == {
        "organization": "isovalent",
        "project": "cilium",
        "url": "https://github.com/cilium/cilium",  # same project: the default url stays
        "version": "v1.19.0",
        "contact": ["@someone", "@cilium/sig-policy"],
        "additionalInformation": "https://example.org/ci/123",
    }
    assert doc["profiles"][0]["standard"]["failedTests"] == ["CNPAdminTierEgressTCP"]
    assert main([*argv, "--implementation", "cilium"]) == 2
    assert "expected ORG/PROJECT" in capsys.readouterr().err
