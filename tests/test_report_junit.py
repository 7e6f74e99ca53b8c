"""JUnit XML: valid against the subset GitHub/GitLab read, one testcase per step, counts agree."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conformance.live.results import RunResult, Status
from conformance.reports import KnownDeviations, render

xmlschema = pytest.importorskip(
    "xmlschema", reason="xmlschema is a dev dependency (pip install -e '.[dev]')"
)

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def schema() -> object:
    return xmlschema.XMLSchema(str(DATA / "junit.xsd"))


def runs() -> list[RunResult]:
    broken = RunResult.load(DATA / "results-broken.json")
    odd = copy.deepcopy(broken)
    odd.scenarios[0].status = Status.SKIPPED  # a scenario that never reached a step
    odd.scenarios[0].message = "SCTP is not supported by this cluster"
    odd.scenarios[0].steps = []
    odd.scenarios[1].steps[0].status = Status.ERROR
    odd.scenarios[1].steps[0].message = "pods not ready: x/a <not & ready>"
    return [RunResult.load(DATA / "results-pass.json"), broken, odd]


@pytest.mark.parametrize("run", runs(), ids=["pass", "broken", "skipped-and-error"])
def test_junit_is_valid_and_counts_agree(run: RunResult, schema: object) -> None:
    text = render(run, "junit")
    schema.validate(text)  # type: ignore[attr-defined]
    root = ET.fromstring(text)
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [sc.name for sc in run.scenarios]
    for suite, sc in zip(suites, run.scenarios, strict=True):
        cases = suite.findall("testcase")
        assert len(cases) == max(1, len(sc.steps))  # one per step; "setup" when none ran
        for attr, tag in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
            assert int(suite.get(attr, "0")) == len(suite.findall(f"testcase/{tag}"))
        assert int(suite.get("tests", "0")) == len(cases)
    for attr in ("tests", "failures", "errors", "skipped"):
        assert int(root.get(attr, "0")) == sum(int(s.get(attr, "0")) for s in suites)


def test_failure_carries_diff_table_reason_and_command() -> None:
    run = RunResult.load(DATA / "results-broken.json")
    root = ET.fromstring(render(run, "junit"))
    failures = root.findall(".//failure")
    assert len(failures) == 4  # the four failing steps of the fixture
    first = failures[0]
    assert "1 cells disagree" in (first.get("message") or "")
    body = first.text or ""
    assert "diff:" in body and "x/a    ?   A   ." in body
    assert "why expected: egress of x-59ab60-1/a" in body
    assert "kubectl exec -n x-59ab60-1 a" in body


def test_known_deviation_turns_failure_into_system_out() -> None:
    run = RunResult.load(DATA / "results-broken.json")
    devs = KnownDeviations.parse(
        "deviations:\n  - scenario: '*udp*'\n    reason: UDP is not filtered\n    link: https://example.org/1\n"
    )
    root = ET.fromstring(render(run, "junit", devs))
    assert len(root.findall(".//failure")) == 2  # only the two ipBlock except failures remain
    outs = [o.text or "" for o in root.findall(".//system-out")]
    assert any("known deviation: x/a -> x/b 80/UDP: UDP is not filtered" in o for o in outs)
