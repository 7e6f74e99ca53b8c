"""Shipped suites: ``suites``, ``--suite`` on evaluate/run, the pytest twin, and shards."""

from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import conformance
from conformance.cli import build_parser, kubectl_main, main
from conformance.commands import suites as suites_cmd
from conformance.scenario.load import load_scenarios
from conformance.scenario.shard import Shard, assign, select
from conformance.scenario.suites import SUITE_NAMES, scenario_sources, suite_paths, suites_root

ROOT = Path(__file__).resolve().parent.parent


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.yaml"))}


def test_the_suites_are_the_scenarios_folder() -> None:
    """In a checkout, scenarios/ itself; installed (e.g. tox), the package's identical copy."""
    root = suites_root()
    assert root in (ROOT / "scenarios", Path(conformance.__file__).parent / "suites")
    assert _tree(root) == _tree(ROOT / "scenarios")
    assert suite_paths("all") == [root / n for n in SUITE_NAMES]
    assert suite_paths("admin") == [root / "admin"]


def test_no_path_means_every_suite_and_paths_alone_mean_only_them() -> None:
    assert scenario_sources([], None) == [str(p) for p in suite_paths("all")]
    assert scenario_sources(["x.yaml"], None) == ["x.yaml"]
    assert scenario_sources(["x.yaml"], "examples") == ["x.yaml", str(suite_paths("examples")[0])]


def test_suites_json_counts_match_the_files_and_their_tags() -> None:
    out = io.StringIO()
    args = build_parser().parse_args(["suites", "--output", "json"])
    assert suites_cmd.cmd_suites(args, out) == 0
    doc = {s["name"]: s for s in json.loads(out.getvalue())["suites"]}
    for name in SUITE_NAMES:
        scenarios = load_scenarios(suite_paths(name))
        assert doc[name]["scenarios"] == len(list((ROOT / "scenarios" / name).rglob("*.yaml")))
        assert doc[name]["steps"] == sum(len(s.spec.steps) for s in scenarios)
        assert doc[name]["tags"] == dict(Counter(t for s in scenarios for t in s.tags))
    assert doc["all"]["scenarios"] == sum(doc[n]["scenarios"] for n in SUITE_NAMES)


def test_evaluate_suite_is_evaluate_of_its_folder(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--suite", "examples", "--output", "json"]) == 0
    by_suite = json.loads(capsys.readouterr().out)
    assert main(["evaluate", str(ROOT / "scenarios" / "examples"), "--output", "json"]) == 0
    by_path = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in by_suite["scenarios"]] == [s["name"] for s in by_path["scenarios"]]
    assert len(by_suite["scenarios"]) == len(list((ROOT / "scenarios" / "examples").glob("*.yaml")))


def test_an_unknown_suite_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "--suite", "nope"])
    assert exc.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "a/b", "3", "-1/2"])
def test_a_bad_shard_is_a_usage_error(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", f"--shard={text}"])
    assert "--shard: expected K/N" in capsys.readouterr().err


# --- shards -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    name: str
    file: str
    step_count: int


items_st = st.lists(
    st.builds(
        Item, st.text("abcxyz", min_size=1, max_size=4), st.just("f.yaml"), st.integers(1, 9)
    ),
    unique_by=lambda i: i.name,
    max_size=30,
)


@given(items_st, st.integers(1, 6))
def test_shards_partition_the_scenarios(items: list[Item], n: int) -> None:
    shards = assign(items, n)
    assert len(shards) == n
    assert sorted(i.name for s in shards for i in s) == sorted(i.name for i in items)


@given(items_st, st.integers(1, 6), st.randoms())
def test_shards_do_not_depend_on_input_order(items: list[Item], n: int, rnd: object) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    for k in range(1, n + 1):
        assert {i.name for i in select(items, Shard(k, n))} == {
            i.name for i in select(shuffled, Shard(k, n))
        }


@given(items_st, st.integers(1, 6))
def test_shards_are_balanced_within_one_scenario(items: list[Item], n: int) -> None:
    loads = [sum(i.step_count for i in s) for s in assign(items, n)]
    heaviest = max((i.step_count for i in items), default=0)
    assert max(loads) - min(loads) <= heaviest


def test_the_shipped_suite_splits_evenly_in_three() -> None:
    scenarios = load_scenarios(suite_paths("all"))
    loads = [sum(s.step_count for s in shard) for shard in assign(scenarios, 3)]
    assert sum(loads) == sum(s.step_count for s in scenarios)
    assert max(loads) - min(loads) <= 1, loads


# --- the kubectl plugin's argument handling ---------------------------------------------


def test_kubectl_plugin_help_names_itself(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        kubectl_main(["--help"])
    assert capsys.readouterr().out.startswith("usage: kubectl netpol-conformance")


def test_kubectl_plugin_moves_leading_flags_and_defaults_to_the_current_context(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr("conformance.cli.build_parser", _recording_parser(seen))
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path}/a:{tmp_path}/b")
    kubectl_main(["--context", "kind-x", "run", "--suite", "examples"])
    kubectl_main(["--kubeconfig=/k", "doctor"])
    kubectl_main(["run", "--suite", "examples"])
    assert seen == [
        ["run", "--context", "kind-x", "--suite", "examples"],
        ["doctor", "--kubeconfig=/k"],
        ["run", "--kubeconfig", f"{tmp_path}/a", "--suite", "examples"],
    ]


def _recording_parser(seen: list[list[str]]):  # type: ignore[no-untyped-def]
    class Parser:
        def parse_args(self, args: list[str]) -> object:
            seen.append(list(args))

            class Parsed:
                @staticmethod
                def func(_: object) -> int:
                    return 0

            return Parsed()

    return lambda prog="": Parser()


# --- the pytest plugin's twins -----------------------------------------------------------


def _passed_ids(pytester: pytest.Pytester, *args: str) -> set[str]:
    """``file.yaml::step`` of each passed item (the file by its name only)."""
    passed, _, failed = pytester.inline_run(*args).listoutcomes()
    assert not failed
    return {f"{Path(r.nodeid.split('::')[0]).name}::{r.nodeid.split('::', 1)[1]}" for r in passed}


def test_pytest_collects_a_suite_by_name(pytester: pytest.Pytester) -> None:
    """No path and no scenarios/ folder here: the suite comes from the package."""
    result = pytester.runpytest("--netpol-suite", "examples", "--netpol-offline", "-v")
    steps = sum(s.step_count for s in load_scenarios(suite_paths("examples")))
    result.assert_outcomes(passed=steps)
    assert any(
        "default-deny-with-ingress-controller.yaml::" in line for line in result.stdout.lines
    )


def test_pytest_shards_partition_the_suite_like_run_does(pytester: pytest.Pytester) -> None:
    common = ("--netpol-suite", "upstream", "--netpol-offline", "-p", "no:randomly")
    whole = _passed_ids(pytester, *common)
    parts = [_passed_ids(pytester, *common, f"--netpol-shard={k}/3") for k in (1, 2, 3)]
    assert whole and set().union(*parts) == whole
    assert sum(len(p) for p in parts) == len(whole)  # disjoint
    # The same scenarios `run --shard` would pick (by file name of each step's item).
    scenarios = load_scenarios(suite_paths("upstream"))
    for k, part in enumerate(parts, start=1):
        files = {Path(s.file).name for s in select(scenarios, Shard(k, 3))}
        assert {i.split("::")[0] for i in part} == files


def test_pytest_rejects_a_bad_suite_or_shard(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--netpol-suite", "nope", "--netpol-offline")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--netpol-suite: invalid value 'nope': expected one of:*"])
    result = pytester.runpytest("--netpol-shard", "3/2", "--netpol-offline")
    result.stderr.fnmatch_lines(["*--netpol-shard: invalid value '3/2': expected K/N*"])
