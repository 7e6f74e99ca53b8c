"""Command-line interface: ``netpol-conformance <command>`` (also ``python -m conformance``)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from conformance import __version__
from conformance.commands.cluster import add_commands as add_cluster_commands
from conformance.errors import ExitCode


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netpol-conformance",
        description="Check that a CNI enforces Kubernetes network policy exactly as the API defines it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    from conformance.commands import analyze as analyze_cmd
    from conformance.commands import doctor as doctor_cmd
    from conformance.commands import evaluate as evaluate_cmd
    from conformance.commands import generate as generate_cmd
    from conformance.commands import report as report_cli
    from conformance.commands import run as run_cmd

    evaluate_cmd.add_command(sub)
    run_cmd.add_commands(sub)
    report_cli.add_commands(sub)
    add_cluster_commands(sub)
    doctor_cmd.add_command(sub)
    analyze_cmd.add_command(sub)
    generate_cmd.add_command(sub)
    schema = sub.add_parser("schema", help="print the JSON Schema of scenario files")
    schema.set_defaults(func=_print_schema)
    return parser


def _print_schema(args: argparse.Namespace) -> int:
    from conformance.scenario.schema import json_schema

    print(json_schema())
    return ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = args.func
    try:
        rc: int = func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`... | head`): what it read was all it wanted. Point stdout at
        # /dev/null so the interpreter's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.OK
    return rc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
