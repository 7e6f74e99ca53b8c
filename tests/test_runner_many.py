"""``Runner.run_many``: scenarios side by side, results in input order, the BANP singleton never
shared, and an interrupt that stops running scenarios before it propagates."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.live.results import ScenarioResult, Status
from conformance.live.runner import Runner, RunStopped
from conformance.scenario.load import Scenario, load_scenario
from tests.test_runner_support import NetworkPolicyOnlyCluster

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = sorted((ROOT / "scenarios" / "upstream").glob("*.yaml"))[:6]
BANP = sorted((ROOT / "scenarios" / "admin" / "v1alpha1").glob("banp-*.yaml"))[:4]


class Recorder:
    """Stands in for running one scenario on a cluster: records who ran at the same time."""

    def __init__(self, runner: Runner, seconds: float = 0.15) -> None:
        self.runner = runner
        self.seconds = seconds
        self.lock = threading.Lock()
        self.active: set[str] = set()
        self.max_active = 0
        self.overlapping_banp = 0
        self.started: list[str] = []
        self.finished: list[str] = []

    def __call__(self, scenario: Scenario) -> ScenarioResult:
        banp = "banp" in Path(scenario.file).name
        with self.lock:
            if banp and any("banp" in a for a in self.active):
                self.overlapping_banp += 1
            self.active.add(scenario.file)
            self.started.append(scenario.file)
            self.max_active = max(self.max_active, len(self.active))
        try:
            deadline = time.monotonic() + self.seconds
            while time.monotonic() < deadline:
                self.runner.check()  # as the real run does before every change
                time.sleep(0.01)
        finally:
            with self.lock:
                self.active.discard(scenario.file)
                self.finished.append(scenario.file)
        return ScenarioResult(scenario.name, scenario.file, [], Status.PASS)


@pytest.fixture()
def runner() -> Iterator[Runner]:
    r = Runner(NetworkPolicyOnlyCluster(), run_id="t")
    yield r
    r.close()


def test_results_come_in_input_order_while_scenarios_overlap(
    runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenarios = [load_scenario(p) for p in UPSTREAM]
    recorder = Recorder(runner)
    monkeypatch.setattr(runner, "_run_scenario", recorder)
    got: list[str] = []
    runner.run_many(scenarios, jobs=3, on_result=lambda r: got.append(r.file))
    assert got == [s.file for s in scenarios]
    assert recorder.max_active == 3


def test_baseline_admin_policy_scenarios_never_share_the_cluster(
    runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """v1alpha1 BANP is a singleton named `default`: its scenarios run one at a time."""
    scenarios = [load_scenario(p) for p in [*BANP, *UPSTREAM[:2]]]
    recorder = Recorder(runner, 0.1)
    monkeypatch.setattr(runner, "_run_scenario", recorder)
    runner.run_many(scenarios, jobs=4)
    assert len(recorder.finished) == len(scenarios)
    assert recorder.overlapping_banp == 0 and recorder.max_active >= 2


def test_host_network_scenarios_never_share_the_cluster(
    runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Host-network pods bind ports on the node placement pins them to: such scenarios run one at a
    time (one of them also uses the BANP singleton: both locks, in a fixed order)."""
    host = [p for p in sorted(ROOT.glob("scenarios/**/*node*.yaml")) if "node" in p.name]
    scenarios = [load_scenario(p) for p in [*host, *BANP[:2], *UPSTREAM[:2]]]
    assert sum(s.uses_host_network for s in scenarios) >= 4
    lock = threading.Lock()
    active: set[str] = set()
    overlaps = []
    recorder = Recorder(runner, 0.1)

    def run(scenario: Scenario) -> ScenarioResult:
        with lock:
            if scenario.uses_host_network and active:
                overlaps.append((scenario.name, set(active)))
            if scenario.uses_host_network:
                active.add(scenario.name)
        try:
            return recorder(scenario)
        finally:
            with lock:
                active.discard(scenario.name)

    monkeypatch.setattr(runner, "_run_scenario", run)
    runner.run_many(scenarios, jobs=4)
    assert len(recorder.finished) == len(scenarios)
    assert overlaps == [] and recorder.max_active >= 2 and recorder.overlapping_banp == 0


def test_interrupt_stops_running_scenarios_before_propagating(
    runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenarios = [load_scenario(p) for p in UPSTREAM]
    recorder = Recorder(runner, 30.0)
    monkeypatch.setattr(runner, "_run_scenario", recorder)

    def interrupt_after_start() -> None:
        while len(recorder.started) < 2:
            time.sleep(0.01)
        import _thread

        _thread.interrupt_main()

    threading.Thread(target=interrupt_after_start, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        runner.run_many(scenarios, jobs=2)
    assert time.monotonic() - started < 10, "running scenarios stopped at their next check"
    assert runner.stopping.is_set()
    assert sorted(recorder.finished) == sorted(recorder.started) and recorder.active == set()
    assert len(recorder.started) == 2, "queued scenarios never start"
    with pytest.raises(RunStopped):
        runner.check()


def test_a_scenario_waiting_for_a_singleton_does_not_hold_a_worker(
    runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers, BANP scenarios queued first: while one runs, the other worker runs the
    NetworkPolicy scenarios instead of waiting for the BANP singleton (each BANP scenario here
    only finishes once a NetworkPolicy one has run beside it)."""
    scenarios = [load_scenario(p) for p in [*BANP[:2], *UPSTREAM[:4]]]
    others_ran = threading.Semaphore(0)
    waited_in_vain: list[str] = []

    def run(scenario: Scenario) -> ScenarioResult:
        if "banp" in Path(scenario.file).name:
            if not others_ran.acquire(timeout=10):
                waited_in_vain.append(scenario.name)
        else:
            others_ran.release()
        return ScenarioResult(scenario.name, scenario.file, [], Status.PASS)

    monkeypatch.setattr(runner, "_run_scenario", run)
    got: list[str] = []
    runner.run_many(scenarios, jobs=2, on_result=lambda r: got.append(r.file))
    assert waited_in_vain == []
    assert got == [s.file for s in scenarios]


def test_scenarios_without_singletons_start_in_input_order(
    runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neighbours in a suite tend to share a topology: starting them in order lets one take over
    the pods the one before left."""
    scenarios = [load_scenario(p) for p in UPSTREAM]
    recorder = Recorder(runner, 0.01)
    monkeypatch.setattr(runner, "_run_scenario", recorder)
    runner.run_many(scenarios, jobs=1)
    assert recorder.started == [s.file for s in scenarios]
