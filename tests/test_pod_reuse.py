"""Pod reuse: scenarios with the same namespaces and pods share one deployment, after a clean-slate
check, and reuse never changes a verdict (same cells as fresh pods), even when a CNI keeps a deleted
policy enforced (the check fails and fresh pods are made)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from conformance.cluster.knobs import Deviation, Knobs
from conformance.live.options import RunOptions
from conformance.live.results import ScenarioResult, Status
from conformance.live.runner import Runner
from conformance.scenario.load import load_scenario
from tests.helpers import embedded_runner

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

UPSTREAM = Path(__file__).resolve().parent.parent / "scenarios" / "upstream"
# Default topology (x, y, z with pods a, b, c); they change pod and namespace labels and delete
# policies, so each leaves something the next must not see.
SHARED = [
    UPSTREAM / "should-allow-ingress-access-from-updated-pod.yaml",
    UPSTREAM / "should-allow-ingress-access-from-updated-namespace.yaml",
    UPSTREAM / "should-stop-enforcing-policies-after-they-are-deleted.yaml",
    UPSTREAM / "should-deny-ingress-access-to-updated-pod.yaml",
]
DELETED = UPSTREAM / "should-stop-enforcing-policies-after-they-are-deleted.yaml"


def runner_on(knobs: Knobs, options: RunOptions) -> AbstractContextManager[Runner]:
    return embedded_runner("reuse", knobs, options)


def cells(results: list[ScenarioResult]) -> list[tuple[object, ...]]:
    return [
        (sc.name, st.index, c.source, c.target, c.port, c.expected, c.observed_verdict, c.status)
        for sc in results
        for st in sc.steps
        for c in st.cells
    ]


def run(runner: Runner, paths: list[Path]) -> list[ScenarioResult]:
    out: list[ScenarioResult] = []
    runner.run_many([load_scenario(p) for p in paths], jobs=1, on_result=out.append)
    return out


def test_reused_pods_give_the_same_cells_as_fresh_pods() -> None:
    with runner_on(Knobs(), RunOptions()) as runner:
        reused = run(runner, SHARED)
        fresh = run(runner, [SHARED[0]])  # its pods went back idle: this one takes them too
    with runner_on(Knobs(), RunOptions(no_reuse=True)) as runner:
        separate = run(runner, SHARED)
    assert all(sc.status is Status.PASS for sc in reused + separate), [
        (sc.name, sc.message) for sc in reused + separate
    ]
    assert cells(reused) == cells(separate)
    assert [sc.pods_created for sc in reused] == [9, 0, 0, 0]
    assert [sc.pods_reused for sc in reused] == [0, 9, 9, 9]
    assert len({tuple(sc.namespaces.values()) for sc in reused}) == 1, "one set of namespaces"
    assert [sc.pods_created for sc in separate] == [9, 9, 9, 9]
    assert fresh[0].pods_reused == 9 and cells(fresh) == cells(reused[:1])


def test_a_deleted_policy_still_enforced_fails_the_clean_slate_and_fresh_pods_are_made() -> None:
    """With a CNI that keeps deleted policies, the first scenario shows the mismatch; the second
    must not inherit it: the warm-up on the reused pods fails, so they are discarded."""
    knobs = Knobs(deviations=frozenset({Deviation.DELETED_POLICY_ENFORCED}))
    with runner_on(knobs, RunOptions(convergence_deadline_s=2)) as runner:
        first, second = run(runner, [DELETED, SHARED[0]])
        namespaces = {i["metadata"]["name"] for i in runner.cluster.list_items("Namespace")}
    assert first.status is Status.FAIL
    assert second.status is Status.PASS, second.message
    assert second.pods_created == 9 and second.pods_reused == 0
    assert set(first.namespaces.values()).isdisjoint(second.namespaces.values())
    assert not set(first.namespaces.values()) & namespaces, "the dirty topology was deleted"
