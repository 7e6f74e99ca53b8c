"""Sampled probing on the embedded cluster: a scale scenario probes its sample (recorded in the
results), warms up on a sample too, matches the reference, and still shows a CNI bug."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

import pytest
import yaml

from conformance.cluster.knobs import Deviation, Knobs
from conformance.live.options import RunOptions
from conformance.live.results import CellStatus, ScenarioResult, Status
from conformance.live.runner import Runner
from conformance.scenario.load import load_scenario
from conformance.scenario.scale import ScaleOptions, scale_scenario
from tests.helpers import embedded_runner

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

PODS, POLICIES, SAMPLE = 40, 80, 300


def runner_on(knobs: Knobs, options: RunOptions) -> AbstractContextManager[Runner]:
    return embedded_runner("smp", knobs, options)


def run(knobs: Knobs, path: Path, options: RunOptions | None = None) -> ScenarioResult:
    out: list[ScenarioResult] = []
    with runner_on(knobs, options or RunOptions(parallel=32)) as runner:
        runner.run_many([load_scenario(path)], jobs=1, on_result=out.append)
    return out[0]


@pytest.fixture(scope="module")
def scale_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    doc = scale_scenario(ScaleOptions(pods=PODS, policies=POLICIES, seed=3, sample=SAMPLE))
    path = tmp_path_factory.mktemp("scale") / "scale.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def test_a_sampled_scale_scenario_matches_and_records_its_sample(scale_file: Path) -> None:
    result = run(Knobs(), scale_file)
    assert result.status is Status.PASS, result.message
    assert result.pods_created == PODS
    for step in result.steps:
        assert step.sample is not None
        assert step.sample["cells"] == SAMPLE == len(step.cells)
        assert step.sample["population"] == PODS * PODS * 2  # ports 80 and 443
        assert step.sample["seed"] == 3
        assert step.sample["boundary"] + step.sample["random"] == SAMPLE
        assert {c.status for c in step.cells} <= {CellStatus.MATCH, CellStatus.IGNORED}
    # Step 2 changes verdicts: the sample holds changed cells, measured for latency.
    assert any(c.changed for c in result.steps[1].cells)


def test_sampling_still_shows_a_cni_that_ignores_port_ranges(scale_file: Path) -> None:
    result = run(Knobs(deviations=frozenset({Deviation.IGNORE_ENDPORT})), scale_file)
    mismatches = [c for st in result.steps for c in st.cells if c.status is CellStatus.MISMATCH]
    assert result.status is Status.FAIL
    assert mismatches and all(c.expected.value == "allow" for c in mismatches)


def test_sample_zero_probes_every_cell(tmp_path: Path) -> None:
    doc = scale_scenario(ScaleOptions(pods=12, policies=20, seed=3, sample=50))
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    result = run(Knobs(), path, RunOptions(parallel=32, sample=0))
    assert result.status is Status.PASS, result.message
    assert [st.sample for st in result.steps] == [None, None]
    assert [len(st.cells) for st in result.steps] == [12 * 12 * 2] * 2
