"""The pytest plugin, exercised by running pytest for real (pytester)."""

from __future__ import annotations

import textwrap

import pytest

from conformance.cluster.config import ClusterOptions
from conformance.cluster.embedded import EmbeddedCluster
from conformance.cluster.knobs import Knobs
from conformance.live.options import RunOptions, Via
from conformance.pytest_plugin import run_options

SCENARIO = textwrap.dedent(
    """\
    tags: [ingress, default-deny]
    probe: {ports: [80], protocols: [TCP], from: [x/a, y/a], to: [x/a, x/b]}
    steps:
      - name: deny ingress in x
        apply:
          - apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: deny, namespace: x}
            spec: {podSelector: {}}
        expect:
          default: allow
          rules: [{to: "x/*", verdict: %s}]
      - name: allow from y
        apply:
          - apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: from-y, namespace: x}
            spec:
              podSelector: {}
              ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}}]}]
        expect:
          default: allow
          rules: [{from: "x/*", to: "x/*", verdict: deny}]
    """
)


def make(pytester: pytest.Pytester, verdict: str = "deny") -> None:
    pytester.makefile(".yaml", **{"scenarios/deny": SCENARIO % verdict})


def test_offline_items_per_step(pytester: pytest.Pytester) -> None:
    make(pytester)
    result = pytester.runpytest("scenarios", "--netpol-offline", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*deny.yaml::deny ingress in x PASSED*", "*deny.yaml::allow from y PASSED*"]
    )


def test_offline_disagreement_prints_table_not_traceback(pytester: pytest.Pytester) -> None:
    make(pytester, "allow")
    result = pytester.runpytest("scenarios", "--netpol-offline")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        ["*declared cells disagree with the reference evaluator*", "80/TCP x/a*x/b*"]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_invalid_scenario_is_one_failing_item(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".yaml", **{"scenarios/bad": "steps:\n  - name: s\n    probe: {ports: [x]}\n"}
    )
    result = pytester.runpytest("scenarios", "--netpol-offline")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*bad.yaml:3: steps[[]0[]].probe.ports[[]0[]]: Input should be a valid integer*"]
    )


def test_tag_selection(pytester: pytest.Pytester) -> None:
    make(pytester)
    assert pytester.runpytest("scenarios", "--netpol-offline", "-k", "default-deny").ret == 0
    pytester.runpytest("scenarios", "--netpol-offline", "-k", "egress").assert_outcomes(
        deselected=2
    )
    pytester.runpytest("scenarios", "--netpol-offline", "--netpol-tag", "egress").assert_outcomes()


def test_ini_twin(pytester: pytest.Pytester) -> None:
    make(pytester, "allow")
    pytester.makeini("[pytest]\nnetpol_offline = true\n")
    pytester.runpytest("scenarios").assert_outcomes(failed=1, passed=1)


def test_via_typo_is_a_one_line_usage_error(pytester: pytest.Pytester) -> None:
    make(pytester)
    result = pytester.runpytest("scenarios", "--netpol-offline", "--netpol-via=servcie")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --netpol-via: invalid value 'servcie': expected one of: pod, service"]
    )
    result.stdout.no_fnmatch_line("*passed*")


def test_ini_typo_is_a_usage_error_naming_the_ini_key(pytester: pytest.Pytester) -> None:
    make(pytester)
    pytester.makeini("[pytest]\nnetpol_via = servcie\nnetpol_offline = true\n")
    result = pytester.runpytest("scenarios")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: ini netpol_via: invalid value 'servcie': *pod, service"])


def test_plugin_defaults_are_the_run_options_defaults(pytester: pytest.Pytester) -> None:
    assert run_options(pytester.parseconfig(), {}) == RunOptions()


def test_plugin_options_reach_run_options(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nnetpol_deadline = 2.5\nnetpol_include_self = yes\n")
    config = pytester.parseconfig("--netpol-via=service", "--netpol-probe-timeout=7")
    options = run_options(config, {"ext": "192.0.2.1"})
    assert (options.via, options.probe_timeout_s) == (Via.SERVICE, 7)
    assert (options.convergence_deadline_s, options.include_self) == (2.5, True)
    assert options.parallel == RunOptions().parallel
    assert options.externals == {"ext": "192.0.2.1"}


@pytest.mark.cluster
@pytest.mark.slow
def test_live_run_on_embedded_cluster_and_failure_tables(pytester: pytest.Pytester) -> None:
    make(pytester)
    pytester.runpytest_subprocess("scenarios").assert_outcomes(passed=2)
    # A cluster that enforces a policy only on the first pod it selects leaves another x pod open.
    instance = f"plg{__import__('os').getpid() % 100000}"
    with EmbeddedCluster(
        ClusterOptions(instance=instance, knobs=Knobs.parse(0, ["first-pod-only"]))
    ) as ec:
        result = pytester.runpytest_subprocess(
            "scenarios",
            f"--netpol-kubeconfig={ec.kubeconfig}",
            f"--netpol-context={ec.context}",
            "--netpol-deadline=2",
        )
    # Which pod is "first" depends on creation order, so step 1 fails for sure and step 2 may too.
    outcomes = result.parseoutcomes()
    assert (
        outcomes.get("failed", 0) >= 1
        and outcomes.get("failed", 0) + outcomes.get("passed", 0) == 2
    )
    result.stdout.fnmatch_lines(
        [
            "*the cluster disagrees with the reference evaluator*",
            "expected:",
            "observed:",
            "diff:",
            "*A allowed but should be denied*",
        ]
    )
    result.stdout.fnmatch_lines(["*reproduce: kubectl * exec -n *"])
