"""pytest plugin: scenario YAML files become test items, one per step.

It only wires pytest to the library (``conformance.live.runner`` does the work). By default every step
runs on a cluster: the one given by ``--netpol-kubeconfig``/``--netpol-context``, or an embedded
cluster started per pytest worker. ``--netpol-offline`` only checks declared expectations against
the reference evaluator. Failures print expected, observed and diff tables, not tracebacks.

With pytest-xdist, the steps of one scenario must run in order on one worker: the plugin groups
them (``xdist_group``) and switches ``--dist load`` to ``loadgroup``; scenarios run side by side
in their own namespaces.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conformance.errors import ConformanceError, ScenarioError
from conformance.live.deploy import new_run_id
from conformance.live.options import RUN_OPTIONS, RunOption, RunOptions, switch_value
from conformance.live.results import ScenarioResult, Status
from conformance.live.runner import Runner
from conformance.live.session import ClusterChoice, open_cluster
from conformance.reference.expectations import StepEvaluation, diff_marks, evaluate_scenario
from conformance.reference.truthtable import LEGEND
from conformance.reports.text import mismatch_lines, step_tables
from conformance.scenario.load import SCENARIO_SUFFIXES, Scenario, is_scenario_file, load_scenario
from conformance.scenario.shard import Shard, select
from conformance.scenario.suites import CHOICES as SUITE_CHOICES
from conformance.scenario.suites import suite_paths


@dataclass(frozen=True)
class _Option:
    """A ``--netpol-*`` option and its ini twin; ``convert`` turns a given value into the setting
    (ValueError saying what is accepted when it does not fit)."""

    flag: str
    ini: str
    help: str
    default: Any = None
    convert: Callable[[Any], Any] = str
    switch: bool = False

    @classmethod
    def run_option(cls, o: RunOption) -> _Option:
        """The pytest twin of a ``run`` option (``--via``: ``--netpol-via``, ini ``netpol_via``)."""
        text = f"{o.help} (one of: {', '.join(o.choices)})" if o.choices else o.help
        return cls(f"--netpol-{o.name}", _ini(o), text, o.default, o.convert, o.is_switch)


def _ini(o: RunOption) -> str:
    return f"netpol_{o.dest}"


def _suite(value: str) -> str:
    if value not in SUITE_CHOICES:
        raise ValueError(f"expected one of: {', '.join(SUITE_CHOICES)}")
    return value


_OPTIONS: tuple[_Option, ...] = (
    _Option(
        "--netpol-offline",
        "netpol_offline",
        "only check declared expectations against the evaluator",
        False,
        switch_value,
        switch=True,
    ),
    _Option(
        "--netpol-kubeconfig",
        "netpol_kubeconfig",
        "kubeconfig (default: an embedded cluster per worker)",
    ),
    _Option("--netpol-context", "netpol_context", "kubeconfig context (e.g. kind-kind)"),
    _Option("--netpol-allow-context", "netpol_allow_context", "allow a context not named kind-*"),
    *(_Option.run_option(o) for o in RUN_OPTIONS),
    _Option("--netpol-tag", "netpol_tags", "only scenarios with one of these comma-separated tags"),
    _Option(
        "--netpol-suite",
        "netpol_suite",
        f"collect a shipped suite ({', '.join(SUITE_CHOICES)}) instead of testpaths, or besides "
        "the paths given",
        None,
        _suite,
    ),
    _Option(
        "--netpol-shard",
        "netpol_shard",
        "only shard K/N of the collected scenarios (deterministic, balanced by step count)",
        None,
        Shard.parse,
    ),
)
_BY_INI = {o.ini: o for o in _OPTIONS}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netpol", "netpol-conformance scenarios")
    for o in _OPTIONS:
        if o.switch:
            group.addoption(
                o.flag, action="store_const", const=True, default=None, dest=o.ini, help=o.help
            )
        else:
            # Checked and converted by option(), so a command line and an ini file get the same
            # one-line error.
            group.addoption(o.flag, default=None, dest=o.ini, help=f"{o.help} (ini: {o.ini})")
        parser.addini(o.ini, help=o.help, default=None)
    parser.addini(
        "netpol_scenario_paths",
        type="paths",
        default=["scenarios"],
        help="folders whose scenario files are collected (files named on the command line always are)",
    )


def option(config: pytest.Config, ini: str) -> Any:
    """Command line first, then the ini file, then the default; converted to the option's type.

    A value that does not convert is a usage error naming the option and what it accepts."""
    spec = _BY_INI[ini]
    value, source = config.getoption(ini), spec.flag
    if value is None:
        value, source = config.getini(ini), f"ini {ini}"
    if value is None or value == "":
        return spec.default
    try:
        return spec.convert(value)
    except ValueError as exc:
        raise pytest.UsageError(f"{source}: invalid value {value!r}: {exc}") from None


def run_options(config: pytest.Config, externals: Mapping[str, str]) -> RunOptions:
    """The run options this session's ``--netpol-*`` options and ini settings ask for."""
    return RunOptions(
        **{o.field: option(config, _ini(o)) for o in RUN_OPTIONS}, externals=externals
    )


_SESSION = pytest.StashKey["_ClusterSession"]()


def pytest_configure(config: pytest.Config) -> None:
    for o in _OPTIONS:  # a typo in an option is a usage error now, not a surprise later
        option(config, o.ini)
    config.addinivalue_line(
        "markers", "cluster: runs on a cluster (scenario steps, unless offline)"
    )
    # Steps of a scenario share state: keep each scenario's items on one xdist worker.
    if getattr(config.option, "dist", "no") == "load":
        config.option.dist = "loadgroup"
    config.stash[_SESSION] = _ClusterSession(config)
    _add_suite_args(config)


def _suite_folders(config: pytest.Config) -> list[Path]:
    suite = option(config, "netpol_suite")
    if suite is None:
        return []
    try:
        return suite_paths(suite)
    except ScenarioError as exc:
        raise pytest.UsageError(f"--netpol-suite {suite}: {exc}") from None


def _add_suite_args(config: pytest.Config) -> None:
    """``--netpol-suite``: the suite's folders replace testpaths (or join the paths given)."""
    folders = [str(f) for f in _suite_folders(config)]
    if not folders:
        return
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        config.args[:] = []
    config.args.extend(f for f in folders if f not in config.args)


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(_SESSION, None)
    if state is not None:
        state.close()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in SCENARIO_SUFFIXES:
        return None
    # ini values are resolved against the ini file; the default is relative to the rootdir.
    roots = [parent.config.rootpath / p for p in parent.config.getini("netpol_scenario_paths")]
    roots += _suite_folders(parent.config)
    wanted = parent.session.isinitpath(file_path) or any(file_path.is_relative_to(r) for r in roots)
    if wanted and is_scenario_file(file_path):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


@dataclass
class _ClusterSession:
    """Per-process cluster, runner and results (lazily started on the first live item)."""

    config: pytest.Config
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    runner: Runner | None = None
    results: dict[str, ScenarioResult] = field(default_factory=dict)
    failure: str | None = None

    def run(self, scenario: Scenario) -> ScenarioResult:
        if scenario.file not in self.results:
            if self.failure:
                raise ConformanceError(self.failure)
            runner = self._runner([scenario])
            self.results[scenario.file] = runner.run_scenario(scenario)
        return self.results[scenario.file]

    def _runner(self, scenarios: list[Scenario]) -> Runner:
        if self.runner is not None:
            return self.runner
        cfg = self.config
        worker = os.environ.get("PYTEST_XDIST_WORKER", "")
        allow = option(cfg, "netpol_allow_context")
        choice = ClusterChoice(
            kubeconfig=option(cfg, "netpol_kubeconfig"),
            context=option(cfg, "netpol_context"),
            allow_context=(allow,) if allow else (),
            embedded_instance=f"pt{os.getpid() % 100000}{worker.replace('gw', 'w')}",
        )
        try:
            cluster, externals = self.stack.enter_context(open_cluster(choice, _all_scenarios(cfg)))
        except ConformanceError as exc:
            self.failure = f"cannot use a cluster: {exc}"
            raise
        self.runner = Runner(cluster, run_options(cfg, externals), new_run_id(worker))
        return self.runner

    def close(self) -> None:
        if self.runner is not None:
            with contextlib.suppress(ConformanceError):
                self.runner.cleanup()
            self.runner.close()
        self.stack.close()


def _all_scenarios(config: pytest.Config) -> list[Scenario]:
    """Scenarios collected in this session (their external endpoints shape the embedded cluster)."""
    session = getattr(config, "_netpol_items", None)
    return list(session or [])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shard = option(config, "netpol_shard")
    if shard is not None:
        _keep_shard(config, items, shard)
    scenarios = {id(i.scenario): i.scenario for i in items if isinstance(i, StepItem)}
    config._netpol_items = list(scenarios.values())  # type: ignore[attr-defined]


def _keep_shard(config: pytest.Config, items: list[pytest.Item], shard: Shard) -> None:
    """``--netpol-shard K/N``: deselect the steps of scenarios in other shards (the split is
    the one ``run --shard`` makes, so both agree on the same scenarios)."""
    scenarios = list(
        {id(i.scenario): i.scenario for i in items if isinstance(i, StepItem)}.values()
    )
    kept = {id(sc) for sc in select(scenarios, shard)}
    deselected = [i for i in items if isinstance(i, StepItem) and id(i.scenario) not in kept]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [
            i for i in items if not (isinstance(i, StepItem) and id(i.scenario) not in kept)
        ]


class ScenarioFile(pytest.File):
    """A scenario file; one item per step, or one failing item if the file is invalid."""

    def collect(self) -> Iterator[pytest.Item]:
        try:
            scenario = load_scenario(self.path)
            offline = evaluate_scenario(
                scenario, include_self=option(self.config, "netpol_include_self")
            )
        except ScenarioError as exc:
            yield InvalidScenario.from_parent(self, name="invalid", error=exc)
            return
        tags = option(self.config, "netpol_tags")
        if tags and not set(tags.split(",")) & set(scenario.tags):
            return
        # Steps share state, so a scenario's items stay on one worker. The v1alpha1 BANP is a
        # cluster singleton: scenarios using it share one group so they never overlap in time.
        banp = "BaselineAdminNetworkPolicy" in scenario.policy_kinds
        group = "netpol-banp-singleton" if banp else str(self.path)
        live = not option(self.config, "netpol_offline")
        for step in offline.steps:
            item = StepItem.from_parent(self, name=step.step.name, scenario=scenario, offline=step)
            item.extra_keyword_matches.update(scenario.tags)  # `-k ipblock` selects by tag
            item.add_marker(pytest.mark.xdist_group(group))
            if live:  # `-m "not cluster"` deselects live steps, so no cluster is started
                item.add_marker(pytest.mark.cluster)
            yield item


class InvalidScenario(pytest.Item):
    def __init__(self, *, error: ScenarioError, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error

    def runtest(self) -> None:
        raise self.error

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        return f"invalid scenario:\n{self.error}"

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.path.name}: invalid"


class NetpolFailure(Exception):
    """A step failed; ``text`` is what the report shows instead of a traceback."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class StepItem(pytest.Item):
    def __init__(self, *, scenario: Scenario, offline: StepEvaluation, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.offline = offline

    def runtest(self) -> None:
        if self.offline.disagreements:
            raise NetpolFailure(self._disagreement_text())
        if option(self.config, "netpol_offline"):
            return
        result = self.config.stash[_SESSION].run(self.scenario)
        index = self.offline.step.index
        if result.status is Status.SKIPPED and not result.steps:
            pytest.skip(result.message)
        if index >= len(result.steps):
            raise NetpolFailure(
                f"not run: {result.message or 'an earlier step stopped the scenario'}"
            )
        step = result.steps[index]
        _attach_allure(self.config, self.name, step)
        if step.status is Status.SKIPPED:
            pytest.skip(step.message)
        if step.status is Status.FAIL:
            text = "\n".join(
                [
                    f"the cluster disagrees with the reference evaluator ({step.message}):",
                    step_tables(step),
                    *mismatch_lines(step),
                ]
            )
            raise NetpolFailure(text)
        if step.status is Status.ERROR:
            raise NetpolFailure(
                f"infrastructure error: {step.message}\n" + "\n".join(mismatch_lines(step))
            )

    def _disagreement_text(self) -> str:
        r = self.offline
        return "\n".join(
            [
                f"{len(r.disagreements)} declared cells disagree with the reference evaluator "
                f"(step {r.step.index + 1} of {self.scenario.file}); '!' marks them:",
                r.table.render(diff_marks(r.table, r.disagreements)),
                LEGEND,
                *(f"  {d}" for d in r.disagreements),
            ]
        )

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, NetpolFailure | ConformanceError):
            return str(getattr(excinfo.value, "text", excinfo.value))
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.scenario.name} :: {self.name}"


def _attach_allure(config: pytest.Config, name: str, step: Any) -> None:
    """With allure-pytest active, attach the tables, the policies (YAML) and the per-cell
    evidence, and label the test: feature and tag per scenario tag (so an Allure report groups
    failures by area of the API), the scenario as story, the cluster and CNI as parameters
    (the CNI the runner detected, or ``$NETPOL_CONFORMANCE_CNI``). See docs/reports.md."""
    if not config.pluginmanager.hasplugin("allure_pytest") or not getattr(
        config.option, "allure_report_dir", None
    ):
        return
    import allure
    import yaml

    dynamic: Any = allure.dynamic  # allure-pytest is only partly annotated
    state = config.stash.get(_SESSION, None)
    results = state.results.values() if state is not None else ()
    scenario = next((sc for sc in results if any(st is step for st in sc.steps)), None)
    if scenario is not None:
        if scenario.tags:
            dynamic.feature(*scenario.tags)
            dynamic.tag(*scenario.tags)
        dynamic.story(scenario.name)
    runner = state.runner if state is not None else None
    if runner is not None:
        version = ""
        with contextlib.suppress(Exception):  # a label is not worth failing the test over
            version = runner.cluster.server_version()
        dynamic.parameter("cluster", runner.cluster.context, excluded=True)
        dynamic.parameter("server version", version or "unknown", excluded=True)
    # $NETPOL_CONFORMANCE_CNI names the CNI when detection cannot (or a version must be exact).
    detected = ""
    if runner is not None:
        with contextlib.suppress(Exception):  # a label is not worth failing the test over
            detected = runner.cni
    cni = os.environ.get("NETPOL_CONFORMANCE_CNI", "") or detected or "unknown"
    dynamic.parameter("CNI", cni)

    allure.attach(
        step_tables(step), name=f"{name}: tables", attachment_type=allure.attachment_type.TEXT
    )
    allure.attach(
        "---\n".join(yaml.safe_dump(p, sort_keys=False) for p in step.policies)
        or "# no policies in force\n",
        name="policies",
        attachment_type=allure.attachment_type.YAML,
    )
    cells = [
        {k: str(v) for k, v in vars(c).items() if k != "history"}
        for c in step.cells
        if c.status != "implementation-defined"
    ]
    allure.attach(
        json.dumps(cells, indent=2), name="cells", attachment_type=allure.attachment_type.JSON
    )
