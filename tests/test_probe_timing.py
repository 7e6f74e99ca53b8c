"""Adaptive probe timeouts and enforcement latency on the embedded cluster, under its delay knobs.

Cells the reference denies are probed with the short ``--deny-timeout``; every other cell keeps
the full ``--probe-timeout``. With enforcement 2 s late and slowed API answers, the cells a deleted
policy opens get their first SYN dropped and connect on a kernel retransmit (1 s, then 3 s after
it) once the rules are gone: a slow allow, longer than the short timeout, and within the 5 s
probe timeout for any probe that starts before the rules change. It must come out as the allow it
is.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conformance.cluster.config import ClusterOptions
from conformance.cluster.embedded import EmbeddedCluster
from conformance.cluster.faults import Faults
from conformance.cluster.knobs import Knobs
from conformance.live.kube import KubeCluster
from conformance.live.options import RunOptions
from conformance.live.results import CellStatus, Status
from conformance.live.runner import Runner
from conformance.reference.evaluator import Verdict
from conformance.scenario.load import load_scenario

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
DELETED = (
    ROOT / "scenarios" / "upstream" / "should-stop-enforcing-policies-after-they-are-deleted.yaml"
)
DELAY = 2.0
SHORT = 0.5


def test_a_slow_allow_is_never_cut_short_by_the_deny_timeout() -> None:
    options = ClusterOptions(
        instance=f"slow{os.getpid() % 100000}",
        knobs=Knobs(enforcement_delay=DELAY),
        faults=Faults(delay_rate=0.2, delay_seconds=0.2, seed=18),
    )
    with EmbeddedCluster(options) as ec:
        cluster = KubeCluster(ec.kubeconfig, ec.context)
        runner = Runner(
            cluster, RunOptions(probe_timeout_s=5, deny_timeout_s=SHORT), run_id="slowallow"
        )
        try:
            result = runner.run_scenario(load_scenario(DELETED))
        finally:
            runner.cleanup()
            runner.close()
            cluster.close()
    problems = [
        f"{st.name}: {c.source} -> {c.target} expected {c.expected}, history {c.history}"
        for st in result.steps
        for c in st.cells
        if c.status not in (CellStatus.MATCH, CellStatus.IGNORED)
    ]
    assert result.status is Status.PASS and not problems, (result.message, problems)

    closing, opening = result.steps
    closed = [c for c in closing.cells if c.changed]
    opened = [c for c in opening.cells if c.changed]
    assert closed and all(c.expected is Verdict.DENY for c in closed)
    assert opened and all(c.expected is Verdict.ALLOW for c in opened)
    # The policy took effect DELAY late: probes before that still connected, and the latency the
    # run measured is not shorter than that (the short probes re-run every <= 1 s).
    assert all(c.history[0] == "connected" for c in closed), [c.history for c in closed]
    assert all((c.latency_s or 0) >= DELAY - 0.1 for c in closed), [c.latency_s for c in closed]
    # Slow allows: probes that started before the deleted policy's rules were gone still
    # connected (on a SYN retransmit, 1 or 3 s in: longer than the 0.5 s deny timeout).
    slow = [
        c
        for c in opened
        if c.history == ["connected"] and (c.converged_after_s or DELAY) < DELAY - 0.2
    ]
    assert slow, [(c.history, c.converged_after_s) for c in opened]
