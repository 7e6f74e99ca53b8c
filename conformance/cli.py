"""Command-line interface: ``netpol-conformance <command>`` (also ``python -m conformance``)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from conformance import __version__
from conformance.commands.cluster import add_commands as add_cluster_commands
from conformance.errors import ExitCode


def build_parser(prog: str = "netpol-conformance") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Check that a CNI enforces Kubernetes network policy exactly as the API defines it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    from conformance.commands import analyze as analyze_cmd
    from conformance.commands import doctor as doctor_cmd
    from conformance.commands import evaluate as evaluate_cmd
    from conformance.commands import generate as generate_cmd
    from conformance.commands import job as job_cmd
    from conformance.commands import report as report_cli
    from conformance.commands import run as run_cmd
    from conformance.commands import selftest as selftest_cmd
    from conformance.commands import shrink as shrink_cmd
    from conformance.commands import suites as suites_cmd

    evaluate_cmd.add_command(sub)
    run_cmd.add_commands(sub)
    report_cli.add_commands(sub)
    add_cluster_commands(sub)
    doctor_cmd.add_command(sub)
    analyze_cmd.add_command(sub)
    generate_cmd.add_command(sub)
    suites_cmd.add_command(sub)
    job_cmd.add_command(sub)
    selftest_cmd.add_command(sub)
    shrink_cmd.add_command(sub)
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


# kubectl's global flags that a plugin honours; kubectl users often write them before the command.
_KUBECTL_FLAGS = ("--kubeconfig", "--context")


def kubectl_main(argv: Sequence[str] | None = None) -> int:
    """``kubectl netpol-conformance ...`` (the ``kubectl-netpol_conformance`` executable).

    kubectl runs a plugin with the arguments after its name. ``--kubeconfig``/``--context`` given
    before the command are moved after it; with neither, ``run`` uses kubectl's current context
    (``$KUBECONFIG`` or ``~/.kube/config``) instead of starting an embedded cluster."""
    args = list(sys.argv[1:] if argv is None else argv)
    leading: list[str] = []
    while args and args[0].split("=", 1)[0] in _KUBECTL_FLAGS:
        take = 1 if "=" in args[0] else 2
        leading += args[:take]
        args = args[take:]
    if args and not args[0].startswith("-"):
        args = [args[0], *leading, *args[1:]]
        given = any(a.split("=", 1)[0] in _KUBECTL_FLAGS for a in args[1:])
        if args[0] == "run" and not given:
            args[1:1] = ["--kubeconfig", _default_kubeconfig()]
    else:
        args = leading + args
    parser = build_parser(prog="kubectl netpol-conformance")
    parsed = parser.parse_args(args)
    rc: int = parsed.func(parsed)
    return rc


def _default_kubeconfig() -> str:
    """kubectl's choice: the first file of ``$KUBECONFIG``, else ``~/.kube/config``."""
    import os
    from pathlib import Path

    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    return first or str(Path.home() / ".kube" / "config")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
