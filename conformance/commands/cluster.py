"""``netpol-conformance cluster up|down|prune|status``: manage embedded clusters from the shell.

Why: trying the tool needs no real cluster; ``up`` leaves a daemon running and prints the
kubeconfig to use with ``kubectl`` or the runner, ``down`` removes everything it created.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from conformance.cluster import embedded
from conformance.cluster.config import DEFAULT_INSTANCE, ClusterOptions, ExternalHost
from conformance.cluster.faults import Faults
from conformance.cluster.knobs import Deviation, Knobs
from conformance.errors import ConformanceError, ExitCode


def _codes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(c) for c in text.split(",") if c.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected codes like 429,500,503, got {text!r}") from None


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return ExitCode.FAILED


def cmd_up(args: argparse.Namespace) -> int:
    try:
        options = ClusterOptions(
            instance=args.name,
            knobs=Knobs.parse(args.enforcement_delay, args.deviation or []),
            faults=Faults(
                error_rate=args.error_rate,
                error_codes=args.error_codes,
                delay_rate=args.delay_rate,
                delay_seconds=args.delay_seconds,
                exec_drop_rate=args.exec_drop_rate,
                seed=args.seed,
            ),
            externals=tuple(ExternalHost.parse(e) for e in args.external or []),
            port=args.port,
            nodes=args.nodes,
            dual_stack=args.ip_family == "dual",
        )
        info, _ = embedded.start(options, args.timeout)
    except ConformanceError as exc:
        return _fail(str(exc))
    print(f"embedded cluster {info.instance!r} is up at {info.server}")
    print(f"kubeconfig: {info.kubeconfig}")
    print(f"context:    {info.context}")
    print(f"try:        kubectl --kubeconfig {info.kubeconfig} get namespaces")
    return ExitCode.OK


def cmd_down(args: argparse.Namespace) -> int:
    try:
        was_running = embedded.stop(args.name)
    except ConformanceError as exc:
        return _fail(str(exc))
    if was_running:
        print(f"embedded cluster {args.name!r} stopped and removed")
    else:
        print(f"embedded cluster {args.name!r} was not running; leftovers (if any) removed")
    return ExitCode.OK


def cmd_prune(args: argparse.Namespace) -> int:
    try:
        removed = embedded.prune()
    except ConformanceError as exc:
        return _fail(str(exc))
    print("\n".join(removed) if removed else "no orphaned embedded clusters")
    return ExitCode.OK


def cmd_status(args: argparse.Namespace) -> int:
    info = embedded.find(args.name)
    if info is None:
        print(f"embedded cluster {args.name!r} is not running")
        return ExitCode.INFRASTRUCTURE
    print(f"embedded cluster {info.instance!r} is running (pid {info.pid}) at {info.server}")
    print(f"kubeconfig: {info.kubeconfig}")
    print(f"context:    {info.context}")
    try:
        stats: dict[str, Any] = embedded.daemon_status(info)
    except OSError as exc:
        print(f"status endpoint not reachable: {exc}")
        return ExitCode.FAILED
    print(
        f"pods: {stats.get('pods')}  rules applied: generation {stats.get('appliedGeneration')}/{stats.get('generation')}"
    )
    faults = stats.get("faultsInjected") or {}
    print(
        "faults injected: "
        + (", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(faults.items())) or "none")
    )
    return ExitCode.OK


def cmd_outside_exec(args: argparse.Namespace) -> int:
    """Run a command on one of the cluster's simulated outside hosts; exit with its code."""
    info = embedded.find(args.name)
    if info is None:
        return _fail(f"embedded cluster {args.name!r} is not running")
    argv = list(args.command)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        return _fail("outside-exec needs a command after the host name, e.g. -- /agnhost --help")
    try:
        res = embedded.outside_exec(info, args.host, argv)
    except ConformanceError as exc:
        return _fail(str(exc))
    sys.stdout.write(str(res.get("stdout", "")))
    sys.stderr.write(str(res.get("stderr", "")))
    return int(res.get("exitCode", 1))


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``cluster up|down|prune|status`` on the main parser's subcommands."""
    cluster = sub.add_parser(
        "cluster", help="run an embedded cluster (loopback API + namespace dataplane)"
    )
    csub = cluster.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)

    up = csub.add_parser("up", help="start an embedded cluster in the background")
    up.add_argument("--name", default=DEFAULT_INSTANCE, help="instance name (default: %(default)s)")
    up.add_argument(
        "--port", type=int, default=0, help="API port on 127.0.0.1 (default: any free port)"
    )
    up.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for readiness")
    up.add_argument(
        "--nodes",
        type=int,
        default=2,
        help="number of nodes, each with its own network namespace and pod CIDR (default: %(default)s)",
    )
    up.add_argument(
        "--ip-family",
        choices=("ipv4", "dual"),
        default="ipv4",
        help="addresses pods and nodes get: IPv4 only, or IPv4 and IPv6 (default: %(default)s)",
    )
    up.add_argument(
        "--enforcement-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="delay before rule changes take effect",
    )
    up.add_argument(
        "--deviation",
        action="append",
        metavar="NAME",
        help="deliberate CNI deviation (repeatable): " + ", ".join(d.value for d in Deviation),
    )
    up.add_argument(
        "--external",
        action="append",
        metavar="NAME=IP[:PORT/PROTO,...]",
        help="external host on TEST-NET",
    )
    up.add_argument(
        "--error-rate",
        type=float,
        default=0.0,
        help="fraction of API requests answered with an error",
    )
    up.add_argument(
        "--error-codes",
        type=_codes,
        default=(429, 500, 503),
        help="codes to answer with (default 429,500,503)",
    )
    up.add_argument(
        "--delay-rate", type=float, default=0.0, help="fraction of API requests delayed"
    )
    up.add_argument("--delay-seconds", type=float, default=0.5, help="delay of delayed requests")
    up.add_argument(
        "--exec-drop-rate",
        type=float,
        default=0.0,
        help="fraction of exec streams cut before the exit status",
    )
    up.add_argument("--seed", type=int, default=0, help="seed of the fault injection RNG")
    up.set_defaults(func=cmd_up)

    down = csub.add_parser("down", help="stop an embedded cluster and remove all it created")
    down.add_argument("--name", default=DEFAULT_INSTANCE)
    down.set_defaults(func=cmd_down)

    prune = csub.add_parser(
        "prune",
        help="remove embedded clusters whose daemon is gone (state, namespaces, processes)",
    )
    prune.set_defaults(func=cmd_prune)

    outside = csub.add_parser(
        "outside-exec",
        help="run a command on a simulated host outside the cluster (probes from outside clients)",
    )
    outside.add_argument("--name", default=DEFAULT_INSTANCE, help="instance name")
    outside.add_argument("host", help="the outside host (a scenario's external endpoint name)")
    outside.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    outside.set_defaults(func=cmd_outside_exec)

    status = csub.add_parser("status", help="show whether an embedded cluster runs and where")
    status.add_argument("--name", default=DEFAULT_INSTANCE)
    status.set_defaults(func=cmd_status)
