"""``netpol-conformance doctor``: check a cluster before a run and say what to fix.

Why: a run on a half-installed cluster fails late and obscurely (pods Pending because the CNI is
not ready, ImagePullBackOff, SCTP cells "not supported" because the kernel module is missing).
The doctor checks those things up front, in the order they depend on each other:

1. API reachable (``/version``); nothing else is tried when it is not.
2. Nodes Ready (``Node`` conditions; the message of a NotReady node usually names the CNI).
3. CNI detected from DaemonSets/Deployments (names and images), and its agents ready.
4. Admin policy APIs served (information: scenarios needing them are skipped otherwise).
5. Probe image pullable: a pod per schedulable node in a temporary namespace carrying the tool's
   labels (``netpol-conformance clean`` removes it if the doctor is killed), deleted afterwards.
6. SCTP (``--sctp``): exec ``test -d /proc/net/sctp`` in those pods. Nodes expose no standard
   condition or label for kernel modules; ``/proc/net/sctp`` exists in every network namespace
   once the module is loaded (or built in), and an unprivileged pod can read it.

Exit codes: 0 no check failed (warnings and skips allowed), 3 at least one failed.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from conformance.commands.options import help_text
from conformance.errors import ConformanceError, ExitCode
from conformance.live.deploy import PullPolicy
from conformance.live.doctor import Check, CheckStatus, Doctor, DoctorOptions, exit_status

MARK = {
    CheckStatus.OK: "[ok]  ",
    CheckStatus.FAIL: "[FAIL]",
    CheckStatus.WARN: "[warn]",
    CheckStatus.SKIP: "[skip]",
    CheckStatus.INFO: "[info]",
}


def render(context: str, checks: Sequence[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"netpol-conformance doctor: context {context}"]
    for c in checks:
        lines.append(f"  {MARK[c.status]} {c.name.ljust(width)}  {c.detail}")
        if c.fix and c.status is not CheckStatus.OK:
            lines.append(f"  {' ' * 6} {' ' * width}  fix: {c.fix}")
    failed = [c.name for c in checks if c.status is CheckStatus.FAIL]
    warned = [c.name for c in checks if c.status is CheckStatus.WARN]
    if failed:
        lines.append(
            f"{len(failed)} check(s) failed ({', '.join(failed)}): fix them before "
            "`netpol-conformance run`, then run the doctor again."
        )
    else:
        lines.append(
            "ready for `netpol-conformance run`"
            + (f" ({len(warned)} warning(s): {', '.join(warned)})." if warned else ".")
        )
    return "\n".join(lines)


def add_command(sub: Any) -> None:
    defaults = DoctorOptions()
    p = sub.add_parser(
        "doctor",
        help="check a cluster before a run (API, nodes, CNI, probe image, SCTP) and say what to fix",
        description=help_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context (default: the current one)")
    p.add_argument(
        "--allow-context",
        action="append",
        default=[],
        metavar="NAME",
        help="let the doctor create its temporary namespace on a context not named kind-*",
    )
    p.add_argument("--sctp", action="store_true", help="check the sctp kernel module on the nodes")
    p.add_argument("--image", default=defaults.image, help="probe image")
    p.add_argument(
        "--image-pull-policy",
        default=defaults.image_pull_policy,
        choices=[p.value for p in PullPolicy],
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=defaults.pod_timeout_s,
        metavar="S",
        help="how long probe pods may take to start (s)",
    )
    p.add_argument(
        "--no-pods", action="store_true", help="read-only: do not create the probe namespace"
    )
    p.add_argument("--output", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from conformance.live.kube import KubeCluster
    from conformance.live.session import UnsafeContextError, check_context

    try:
        cluster = KubeCluster(args.kubeconfig, args.context)
    except ConformanceError as exc:
        checks = [
            Check(
                "kubeconfig",
                CheckStatus.FAIL,
                str(exc),
                "pass --kubeconfig/--context (e.g. --context kind-kind after `kind create cluster`)",
            )
        ]
        _emit(args.context or "?", checks, args.output)
        return exit_status(checks)
    refused = ""
    try:
        check_context(cluster.context, args.allow_context)
    except UnsafeContextError:
        refused = (
            f"context {cluster.context!r} is not kind-*/netpol-embedded*; pass "
            f"--allow-context {cluster.context} to let the doctor create a temporary namespace"
        )
    options = DoctorOptions(
        sctp=args.sctp,
        image=args.image,
        image_pull_policy=PullPolicy(args.image_pull_policy),
        pod_timeout_s=args.timeout,
        create_pods=not args.no_pods,
        pods_refused=refused,
    )
    try:
        checks = Doctor(cluster, options).run()
    finally:
        cluster.close()
    _emit(cluster.context, checks, args.output)
    return exit_status(checks)


def _emit(context: str, checks: Sequence[Check], output: str) -> None:
    if output == "json":
        doc = {
            "context": context,
            "ok": exit_status(checks) == ExitCode.OK,
            "checks": [{**asdict(c), "status": str(c.status)} for c in checks],
        }
        print(json.dumps(doc, indent=2))
    else:
        print(render(context, checks))
