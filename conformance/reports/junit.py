"""JUnit XML: one testcase per scenario step, for the test reporters of GitHub and GitLab CI.

Layout (the subset those reporters read, checked against ``tests/data/junit.xsd``)::

    testsuites(name, tests, failures, errors, skipped, time)
      testsuite(name = scenario, tests, failures, errors, skipped, time, timestamp)
        properties/property(name, value)      tags, file, context, server version
        testcase(name = "step N: ...", classname = scenario, time, file)
          failure(message, type) text = expected/observed/diff tables and one line per mismatch
          error(message, type)     infrastructure: pods not ready, probes could not run
          skipped(message)         not supported here, with the reason
          system-out               known deviations that were allowed

A scenario that stopped before its first step (skipped or an error) is one testcase named
``setup``, so nothing a run did is invisible in CI.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from conformance.live.results import CellResult, ScenarioResult, Status, StepResult
from conformance.reports.judgement import Judgement, cell_label, step_title
from conformance.reports.text import mismatch_lines, step_tables


def render_junit(j: Judgement) -> str:
    run = j.run
    root = ET.Element("testsuites", name="netpol-conformance")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for sc in run.scenarios:
        suite, counts, seconds = _suite(j, sc)
        root.append(suite)
        for k in totals:
            totals[k] += counts[k]
        total_time += seconds
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _suite(j: Judgement, sc: ScenarioResult) -> tuple[ET.Element, dict[str, int], float]:
    run = j.run
    suite = ET.Element("testsuite", name=sc.name)
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("file", sc.file),
        ("tags", ",".join(sc.tags)),
        ("run_id", run.run_id),
        ("context", run.context),
        ("server_version", run.server_version),
        ("cni", run.cni or "unknown"),
    ):
        ET.SubElement(props, "property", name=name, value=value)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    seconds = 0.0
    steps: list[StepResult | None] = list(sc.steps) or [None]
    for st in steps:
        case = ET.SubElement(
            suite,
            "testcase",
            name=step_title(st) if st else "setup",
            classname=f"netpol-conformance.{sc.name}",
            time=f"{st.duration_s if st else 0.0:.3f}",
            file=sc.file,
        )
        counts["tests"] += 1
        seconds += st.duration_s if st else 0.0
        status = st.status if st else sc.status
        message = (st.message if st else "") or sc.message
        if st is not None and status is Status.FAIL:
            unexpected = j.unexpected_mismatches(sc, st)
            if unexpected:
                counts["failures"] += 1
                failure = ET.SubElement(
                    case, "failure", message=_failure_message(unexpected), type="mismatch"
                )
                failure.text = "\n".join(
                    [
                        "the cluster disagrees with the reference evaluator:",
                        step_tables(st),
                        "",
                        *mismatch_lines(st),
                    ]
                )
            _known_out(j, sc, st, case)
        elif status is Status.ERROR:
            counts["errors"] += 1
            error = ET.SubElement(
                case, "error", message=message or "infrastructure error", type="infrastructure"
            )
            error.text = "\n".join(mismatch_lines(st)) if st else message
        elif status is Status.SKIPPED:
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", message=message or "skipped")
    for k, v in counts.items():
        suite.set(k, str(v))
    suite.set("time", f"{seconds:.3f}")
    if j.run.started:
        suite.set("timestamp", j.run.started.removesuffix("Z"))
    return suite, counts, seconds


def _failure_message(unexpected: list[CellResult]) -> str:
    kinds = [c.mismatch_kind for c in unexpected]
    n = len(unexpected)
    allowed = kinds.count("unexpectedly-allowed")
    denied = kinds.count("unexpectedly-denied")
    return (
        f"{n} cells disagree with the reference: {allowed} unexpectedly allowed (security hole), "
        f"{denied} unexpectedly denied (outage)"
    )


def _known_out(j: Judgement, sc: ScenarioResult, st: StepResult, case: ET.Element) -> None:
    lines = []
    for c in st.cells:
        dev = j.known_for(sc, st, c)
        if dev is not None:
            lines.append(f"known deviation: {cell_label(c)}: {dev.reason} {dev.link}".rstrip())
    if lines:
        ET.SubElement(case, "system-out").text = "\n".join(lines)
