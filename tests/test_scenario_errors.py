"""Bad scenario files give one clear line naming file, line and field, and exit code 2."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from conformance.cli import main

GOOD_POLICY = """\
      - apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: p, namespace: x}
        spec:
          podSelector: {}
"""


def scenario(body: str) -> str:
    return textwrap.dedent(body)


CASES = [
    (
        "wrong type",
        "tags: ingress\nsteps:\n  - name: s\n",
        1,
        "tags: Input should be a valid list",
    ),
    (
        "unknown top-level key",
        "stepz: []\nsteps:\n  - name: s\n",
        1,
        "stepz: unknown field 'stepz'; accepted: name, description",
    ),
    (
        "unknown step key",
        "steps:\n  - name: s\n    aply: []\n",
        3,
        "steps[0].aply: unknown field 'aply'; accepted: name, apply, delete",
    ),
    (
        "missing required field",
        "steps:\n  - probe: {}\n",
        2,
        "steps[0].name: field 'name' is required",
    ),
    (
        "bad selector operator",
        "steps:\n  - name: s\n    apply:\n"
        + GOOD_POLICY.replace("podSelector: {}", "podSelector:\n            matchExpressions:")
        + "              - {key: a, operator: Equals, values: [b]}\n",
        10,
        "steps[0].apply[0].spec.podSelector.matchExpressions[0].operator: 'Equals' is not a valid operator",
    ),
    (
        "bad cidr",
        "steps:\n  - name: s\n    apply:\n"
        + GOOD_POLICY
        + "          ingress:\n            - from:\n                - ipBlock: {cidr: 10.0.0.0/33}\n",
        11,
        "steps[0].apply[0].spec.ingress[0].from[0].ipBlock.cidr: '10.0.0.0/33' is not a valid CIDR",
    ),
    (
        "missing policy file",
        "steps:\n  - name: s\n    apply:\n      - file: nope.yaml\n",
        4,
        "steps[0].apply[0].file: policy file 'nope.yaml' not found",
    ),
    (
        "yaml syntax",
        "steps:\n  - name: s\n    apply: [\n",
        4,
        "invalid YAML",
    ),
    (
        "duplicate key",
        "steps:\n  - name: s\n    name: t\n",
        3,
        "steps[0].name: duplicate key 'name'",
    ),
    (
        "unknown pod relabelled",
        "steps:\n  - name: s\n    label_pods: {x/q: {a: b}}\n",
        3,
        "steps[0].label_pods.x/q: no pod 'x/q' to relabel",
    ),
    (
        "delete of absent policy",
        "steps:\n  - name: s\n    delete: [x/p]\n",
        3,
        "steps[0].delete[0]: no NetworkPolicy x/p to delete at this step",
    ),
    (
        "policy in unknown namespace",
        "steps:\n  - name: s\n    apply:\n" + GOOD_POLICY.replace("namespace: x", "namespace: w"),
        6,
        "namespace 'w' does not exist",
    ),
    (
        "placeholder for unknown pod",
        "steps:\n  - name: s\n    apply:\n"
        + GOOD_POLICY
        + "          ingress: [{from: [{ipBlock: {cidr: \"{{ ip('x/q') }}/32\"}}]}]\n",
        9,
        "ipBlock.cidr: ip('x/q'): no such pod",
    ),
    (
        "bad verdict in rule",
        "steps:\n  - name: s\n    expect: {default: allow, rules: [{to: x/a, verdict: block}]}\n",
        3,
        "verdict: Input should be 'allow' or 'deny'",
    ),
    (
        "expect without default",
        "steps:\n  - name: s\n    expect: {rules: []}\n",
        3,
        "steps[0].expect: give `default`",
    ),
    (
        "table row with too few cells",
        "steps:\n  - name: s\n    probe: {ports: [80], protocols: [TCP], to: [x/a, x/b]}\n"
        "    expect:\n      table: |\n        80/TCP x/a x/b\n        x/a ?\n",
        7,
        "row x/a has 1 cells but the 80/TCP header has 2 columns",
    ),
    (
        "table missing cells",
        "steps:\n  - name: s\n    probe: {ports: [80], protocols: [TCP], to: [x/a]}\n"
        "    expect:\n      table: |\n        80/TCP x/a\n        x/a ?\n",
        4,
        "the table has no cell x/b -> x/a 80/TCP",
    ),
    (
        "bad label on pod",
        "topology:\n  namespaces: {x: {}}\n  pods: [{name: x/a, labels: {'a b': c}}]\nsteps:\n  - name: s\n",
        3,
        "label key 'a b' is invalid",
    ),
    (
        "pod in unknown namespace",
        "topology:\n  namespaces: {x: {}}\n  pods: [{name: q/a}]\nsteps:\n  - name: s\n",
        3,
        "unknown namespace 'q'",
    ),
    (
        "bad port in probe",
        "steps:\n  - name: s\n    probe: {ports: [eighty]}\n",
        3,
        "steps[0].probe.ports[0]: Input should be a valid integer",
    ),
]


@pytest.mark.parametrize(("body", "line", "text"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_scenario_gives_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, line: int, text: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(scenario(body))
    assert main(["evaluate", str(path)]) == 2
    err = capsys.readouterr().err
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, err
    assert errors[0].startswith(f"error: {path}:{line}: "), errors[0]
    assert text in errors[0]
    assert "Traceback" not in err


def test_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(tmp_path / "nope.yaml")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_policy_file_errors_point_into_that_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pol.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\n"
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: q, namespace: x}\n"
        "spec:\n  policyTypes: [Sideways]\n"
    )
    (tmp_path / "s.yaml").write_text("steps:\n  - name: s\n    apply: [{file: pol.yaml}]\n")
    assert main(["evaluate", str(tmp_path / "s.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'pol.yaml'}:1: spec is required" in err
    assert f"{tmp_path / 'pol.yaml'}:9: spec.policyTypes[0]: 'Sideways' is not a policy type" in err


def test_every_problem_of_a_file_is_reported_in_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A structural error (here in `expect`) does not hide the errors of the inline policies."""
    path = tmp_path / "three.yaml"
    path.write_text(
        scenario(
            """\
            topology:
              namespaces: {x: {}}
              pods: [{name: x/a}, {name: x/b}]
            steps:
              - name: one
                apply:
                  - apiVersion: networking.k8s.io/v1
                    kind: NetworkPolicy
                    metadata: {name: p, namespace: x}
                    spec:
                      podSelector:
                        matchLabel: {app: a}
                      policyTypes: [ingress]
                expect:
                  default: allwo
            """
        )
    )
    assert main(["evaluate", str(path)]) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error: ")]
    assert errors == [
        f"error: {path}:12: steps[0].apply[0].spec.podSelector.matchLabel: unknown field "
        "'matchLabel'; accepted: matchExpressions, matchLabels",
        f"error: {path}:13: steps[0].apply[0].spec.policyTypes[0]: 'ingress' is not a policy "
        "type; accepted: Ingress, Egress",
        f"error: {path}:15: steps[0].expect.default: Input should be 'allow' or 'deny' (got "
        "'allwo')",
    ]


def test_expect_rule_matching_nothing_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(
        "steps:\n  - name: s\n    probe: {ports: [80], protocols: [TCP]}\n"
        "    expect:\n      default: allow\n      rules:\n        - {from: x/q, verdict: deny}\n"
    )
    assert main(["evaluate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"error: {path}:7: steps[0].expect.rules[0]: this rule matches no probed cell" in err


def test_load_scenarios_reports_every_bad_file_and_filters_by_tag(tmp_path: Path) -> None:
    from conformance.errors import ScenarioErrors
    from conformance.scenario.load import load_scenarios

    (tmp_path / "good.yaml").write_text("tags: [a]\nsteps:\n  - name: s\n")
    (tmp_path / "other.yaml").write_text("tags: [b]\nsteps:\n  - name: s\n")
    assert [s.name for s in load_scenarios([tmp_path], ["a"])] == ["good"]
    assert [s.name for s in load_scenarios([tmp_path])] == ["good", "other"]
    (tmp_path / "bad1.yaml").write_text("tags: x\nsteps:\n  - name: s\n")
    (tmp_path / "bad2.yaml").write_text("steps:\n  - name: s\n    aply: []\n")
    with pytest.raises(ScenarioErrors) as err:
        load_scenarios([tmp_path])
    text = str(err.value)
    assert "bad1.yaml:1: tags" in text and "bad2.yaml:3: steps[0].aply" in text
