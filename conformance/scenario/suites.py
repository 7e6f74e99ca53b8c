"""The scenario suites shipped with the package: ``upstream``, ``admin``, ``examples``,
``detection`` (cases that catch the embedded cluster's deviation knobs) and ``all``.

Why: a user who installed the package from an index has no checkout; ``run``/``evaluate`` with no
path, ``--suite NAME`` and pytest's ``--netpol-suite`` find the same files wherever they live.
In a checkout they are ``scenarios/`` at the repository root; the wheel carries a copy as
``conformance/suites`` (``setup.py`` copies it at build time).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from conformance.errors import ScenarioError

SUITE_NAMES = ("upstream", "admin", "examples", "detection")
ALL = "all"
CHOICES = (*SUITE_NAMES, ALL)

_PACKAGE = Path(__file__).resolve().parent.parent


def suites_root() -> Path:
    """The folder holding one subfolder per suite: inside the installed package, else the
    checkout's ``scenarios/``."""
    for candidate in (_PACKAGE / "suites", _PACKAGE.parent / "scenarios"):
        if all((candidate / name).is_dir() for name in SUITE_NAMES):
            return candidate
    raise ScenarioError(
        f"the shipped scenario suites are missing (looked in {_PACKAGE / 'suites'} and "
        f"{_PACKAGE.parent / 'scenarios'}); reinstall the package or give scenario paths"
    )


def suite_paths(name: str) -> list[Path]:
    """The folders of suite ``name`` (``all``: every suite)."""
    if name not in CHOICES:
        raise ScenarioError(f"unknown suite {name!r}; choose one of: {', '.join(CHOICES)}")
    root = suites_root()
    return [root / n for n in (SUITE_NAMES if name == ALL else (name,))]


def scenario_sources(paths: list[str], suite: str | None) -> list[str]:
    """What ``run``/``evaluate`` load: the paths given, plus the suite's folders when ``--suite``
    is given; every suite when neither is."""
    if suite is None and paths:
        return list(paths)
    return [*paths, *(str(p) for p in suite_paths(suite or ALL))]


@dataclass(frozen=True)
class SuiteInfo:
    """What ``netpol-conformance suites`` prints for one suite."""

    name: str
    path: Path
    scenarios: int
    steps: int
    tags: dict[str, int]  # tag -> scenarios carrying it


def describe(name: str) -> SuiteInfo:
    """Counts of a suite's scenarios, steps and tags (loads, and so validates, every file)."""
    from conformance.scenario.load import load_scenarios

    paths = suite_paths(name)
    scenarios = load_scenarios(paths)
    tags = Counter(tag for sc in scenarios for tag in sc.tags)
    return SuiteInfo(
        name=name,
        path=paths[0].parent if name == ALL else paths[0],
        scenarios=len(scenarios),
        steps=sum(sc.step_count for sc in scenarios),
        tags=dict(sorted(tags.items())),
    )
