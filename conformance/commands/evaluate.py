"""``netpol-conformance evaluate``: expected truth tables for scenarios, without a cluster."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from conformance.commands.suites import add_suite_option, sources
from conformance.errors import ExitCode, ScenarioError
from conformance.reference.expectations import (
    ScenarioEvaluation,
    declared_verdicts,
    diff_marks,
    evaluate_scenario,
)
from conformance.reference.truthtable import LEGEND
from conformance.scenario.load import discover, load_scenario


def add_command(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="print the expected truth tables of scenarios (no cluster needed)",
        description="Evaluate scenarios with the reference evaluator and print expected truth tables. "
        "Exit codes: 0 ok, 1 declared expectations disagree with the evaluator, 2 scenario errors.",
    )
    p.add_argument(
        "paths", nargs="*", metavar="PATH", help="scenario files or folders (default: every suite)"
    )
    add_suite_option(p)
    p.add_argument("--explain", action="store_true", help="print the reason for every cell")
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.add_argument(
        "--include-self",
        action="store_true",
        help="give pod-to-itself cells a verdict instead of implementation-defined",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    errors = 0
    results: list[ScenarioEvaluation] = []
    try:
        paths = sources(args)
        files = discover(paths)
    except ScenarioError as exc:
        print(f"error: {exc}", file=err)
        return ExitCode.USAGE
    if not files:
        print(f"error: no scenario files found under {' '.join(paths)}", file=err)
        return ExitCode.USAGE
    for path in files:
        try:
            scenario = load_scenario(path)
            results.append(evaluate_scenario(scenario, include_self=args.include_self))
        except ScenarioError as exc:
            errors += 1
            for line in str(exc).splitlines():
                print(f"error: {line}", file=err)
        except Exception as exc:  # a bug, not the file's fault: report it and go on with the rest
            errors += 1
            print(
                f"error: {path}: internal error while evaluating this file ({type(exc).__name__}: "
                f"{exc}); please report it with the file",
                file=err,
            )
    if args.output == "json":
        json.dump(to_json(results), out, indent=2)
        out.write("\n")
    else:
        for r in results:
            print_text(r, out, explain=args.explain)
    n_disagree = sum(len(s.disagreements) for r in results for s in r.steps)
    if n_disagree:
        print(f"{n_disagree} declared cells disagree with the reference evaluator", file=err)
    if errors:
        print(f"{errors} scenario file(s) have errors", file=err)
        return ExitCode.USAGE
    return ExitCode.FAILED if n_disagree else ExitCode.OK


def print_text(result: ScenarioEvaluation, out: TextIO, *, explain: bool) -> None:
    sc = result.scenario
    print(f"== {sc.name} ({sc.file})", file=out)
    if sc.spec.description:
        print(f"   {sc.spec.description.strip().splitlines()[0]}", file=out)
    for s in result.steps:
        print(f"-- step {s.step.index + 1}: {s.step.name}", file=out)
        if s.table.sample is not None:
            print(f"   {s.table.sample.describe()}; other cells are blank", file=out)
        print(s.table.render(), file=out)
        print(LEGEND, file=out)
        if explain:
            for cell in s.table:
                assert cell.decision is not None
                print(
                    f"  {cell.source} -> {cell.target} {cell.port}/{cell.protocol}: "
                    f"{cell.verdict}{'' if cell.served else ' (not served)'}: {cell.decision.reason}",
                    file=out,
                )
        if s.disagreements:
            print(f"!! {len(s.disagreements)} declared cells disagree (marked '!'):", file=out)
            print(s.table.render(diff_marks(s.table, s.disagreements)), file=out)
            for d in s.disagreements:
                print(f"  {d}", file=out)
        print(file=out)


def to_json(results: list[ScenarioEvaluation]) -> dict[str, Any]:
    """The documented ``--output json`` document (docs/evaluate-json.md)."""
    scenarios = []
    for r in results:
        steps = []
        for s in r.steps:
            declared = declared_verdicts(s.step, s.table)
            cells = []
            for c in s.table:
                assert c.decision is not None
                d = declared.get(c.key)
                cells.append(
                    {
                        "from": c.source,
                        "to": c.target,
                        "port": c.port,
                        "protocol": str(c.protocol),
                        "family": str(c.family),
                        "verdict": str(c.verdict),
                        "served": c.served,
                        "path": str(c.path) if c.path else None,
                        "reason": c.decision.reason,
                        "declared": str(d[0]) if d else None,
                    }
                )
            step: dict[str, Any] = {
                "name": s.step.name,
                "cells": cells,
                "disagreements": len(s.disagreements),
            }
            if s.table.sample is not None:
                step["sample"] = s.table.sample.summary()
            steps.append(step)
        scenarios.append(
            {
                "name": r.scenario.name,
                "file": r.scenario.file,
                "tags": list(r.scenario.tags),
                "steps": steps,
            }
        )
    return {"scenarios": scenarios}
