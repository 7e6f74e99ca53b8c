"""``netpol-conformance generate``: write random scenarios (see ``generate``) as YAML files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

import yaml

from conformance.commands.options import positive_int
from conformance.errors import ExitCode, ScenarioError
from conformance.reference.mutation import last_step_flips
from conformance.scenario.generate import ADMIN_VERSIONS, GenerateOptions, generate
from conformance.scenario.load import load_data
from conformance.scenario.scale import ScaleOptions, scale_scenario

DEFAULT_OUT = "generated-scenarios"


def add_command(sub: Any) -> None:
    p = sub.add_parser(
        "generate",
        help="write random NetworkPolicy scenarios for differential testing",
        description="Write COUNT random scenarios over the upstream x/y/z model. They declare no "
        "expectations: run compares the cluster with the reference evaluator, so every "
        "mismatch is a finding, reproducible from the seed.",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--count", type=positive_int, default=10, help="how many scenarios (default 10)")
    p.add_argument("--steps", type=positive_int, default=2, help="steps per scenario (default 2)")
    p.add_argument(
        "--max-policies",
        type=positive_int,
        default=3,
        help="policies per step, at most (default 3)",
    )
    p.add_argument(
        "--protocol",
        action="append",
        choices=("TCP", "UDP", "SCTP"),
        help="protocols served and probed (repeatable; default TCP and UDP)",
    )
    p.add_argument(
        "--admin",
        choices=ADMIN_VERSIONS,
        default="",
        help="also draw admin policies: v1alpha1 AdminNetworkPolicy/BaselineAdminNetworkPolicy "
        "or v1alpha2 ClusterNetworkPolicy (both tiers)",
    )
    p.add_argument(
        "--pods",
        type=positive_int,
        help="write one scale scenario instead: this many pods in team namespaces under "
        "--policies NetworkPolicies, probed by sampling (docs/speed.md#scale)",
    )
    p.add_argument(
        "--policies",
        type=positive_int,
        default=500,
        help="NetworkPolicies of the scale scenario (with --pods; default 500)",
    )
    p.add_argument(
        "--sample",
        type=int,
        default=2000,
        help="cells the scale scenario probes per step (with --pods; default 2000; 0: all)",
    )
    p.add_argument(
        "--out",
        default=DEFAULT_OUT,
        help=f"output folder (default: {DEFAULT_OUT}, outside the shipped scenarios/ so that "
        "'run scenarios/' and pytest do not pick the generated files up)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    if getattr(args, "pods", None):
        return _scale(args, out, err)
    options = GenerateOptions(
        seed=args.seed,
        count=args.count,
        steps=args.steps,
        max_policies=args.max_policies,
        protocols=tuple(dict.fromkeys(args.protocol or ("TCP", "UDP"))),
        admin=args.admin,
    )
    folder = Path(args.out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for doc in generate(options, last_step_flips):
            path = folder / f"{doc['name']}.yaml"
            path.write_text(
                yaml.safe_dump(doc, sort_keys=False, width=100, allow_unicode=True),
                encoding="utf-8",
            )
    except OSError as exc:
        err.write(f"error: cannot write to {folder}: {exc.strerror or exc}\n")
        return ExitCode.USAGE
    out.write(
        f"wrote {options.count} scenarios to {folder} (seed {options.seed}); run them with "
        f"`netpol-conformance run {folder}`\n"
    )
    return ExitCode.OK


def _scale(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``generate --pods N``: one scale scenario (see conformance/scenario/scale.py)."""
    if args.sample < 0:
        err.write(f"error: --sample {args.sample}: give 0 (every cell) or a number of cells\n")
        return ExitCode.USAGE
    doc = scale_scenario(
        ScaleOptions(pods=args.pods, policies=args.policies, seed=args.seed, sample=args.sample)
    )
    try:
        load_data(doc, f"<{doc['name']}>")
    except ScenarioError as exc:
        err.write(f"error: {exc}\n")
        return ExitCode.USAGE
    folder = Path(args.out)
    path = folder / f"{doc['name']}.yaml"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(doc, sort_keys=False, width=100), encoding="utf-8")
    except OSError as exc:
        err.write(f"error: cannot write to {folder}: {exc.strerror or exc}\n")
        return ExitCode.USAGE
    out.write(f"wrote {path}; run it with `netpol-conformance run {path}`\n")
    return ExitCode.OK
