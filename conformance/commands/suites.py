"""``netpol-conformance suites``, and the ``--suite`` option of ``run`` and ``evaluate``.

The suites ship inside the package (``conformance.scenario.suites``), so an installed copy runs
them with no checkout: ``netpol-conformance run`` with no path runs every suite.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from conformance.errors import ExitCode, ScenarioError
from conformance.scenario.shard import Shard
from conformance.scenario.suites import ALL, CHOICES, SUITE_NAMES, describe, scenario_sources


def add_suite_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--suite",
        choices=CHOICES,
        help="a shipped suite (default when no PATH is given: all); netpol-conformance suites "
        "lists them",
    )


def shard_type(text: str) -> Shard:
    """argparse type: ``K/N``."""
    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_shard_option(p: argparse.ArgumentParser, flag: str) -> None:
    p.add_argument(
        flag,
        type=shard_type,
        metavar="K/N",
        help="run only shard K of N (deterministic, balanced by step count); join the shards' "
        "results with report --merge",
    )


def sources(args: argparse.Namespace) -> list[str]:
    """The scenario paths a command loads: its PATHs, plus ``--suite``; every suite if neither.

    Suite folders under the working directory are given relative to it, so a run in a checkout
    names files ``scenarios/...`` as before; PATHs stay as the user wrote them."""
    given = list(args.paths)
    return [p if p in given else _shorter(p) for p in scenario_sources(given, args.suite)]


def _shorter(path: str) -> str:
    p = Path(path)
    if p.is_absolute() and p.is_relative_to(Path.cwd()):
        return os.path.relpath(p)
    return path


def add_command(sub: Any) -> None:
    p = sub.add_parser(
        "suites",
        help="list the shipped scenario suites with their scenario, step and tag counts",
        description="List the scenario suites shipped with netpol-conformance: "
        "use them with run --suite NAME, evaluate --suite NAME or pytest --netpol-suite NAME.",
    )
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_suites)


def cmd_suites(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        infos = [describe(name) for name in (*SUITE_NAMES, ALL)]
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    if args.output == "json":
        doc = [
            {
                "name": i.name,
                "path": str(i.path),
                "scenarios": i.scenarios,
                "steps": i.steps,
                "tags": i.tags,
            }
            for i in infos
        ]
        json.dump({"suites": doc}, out, indent=2)
        out.write("\n")
        return ExitCode.OK
    for i in infos:
        print(f"{i.name:<9} {i.scenarios:>3} scenarios {i.steps:>4} steps  {i.path}", file=out)
        if i.name != ALL:
            tags = ", ".join(f"{t} ({n})" for t, n in i.tags.items())
            print(f"          tags: {tags or '-'}", file=out)
    return ExitCode.OK
