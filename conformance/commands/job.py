"""``netpol-conformance job``: run the harness as a Job inside the cluster under test.

Prints (or with ``--apply`` pipes to ``kubectl apply``) one manifest: the namespace, the
ServiceAccount and RBAC of ``netpol-conformance rbac``, a ConfigMap with the chosen scenarios and a
Job whose pod runs ``netpol-conformance run --in-cluster`` on them. The pod prints the Markdown
summary to its log and then waits ``--hold`` seconds so ``kubectl cp`` can fetch the reports.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from conformance import __version__
from conformance.commands.options import help_text
from conformance.commands.run import RBAC
from conformance.commands.suites import add_suite_option, sources
from conformance.errors import ExitCode, ScenarioError
from conformance.live.kube import IN_CLUSTER_CONTEXT
from conformance.scenario.load import discover

NAME = "netpol-conformance"
# A ConfigMap holds at most 1 MiB (object and metadata together); keep room for the metadata.
CONFIGMAP_LIMIT = 1_000_000
SCENARIOS_DIR = "/scenarios"
REPORTS_DIR = "/reports"


def add_command(sub: Any) -> None:
    p = sub.add_parser(
        "job",
        help="print (or --apply) a Job that runs the harness inside the cluster",
        description=help_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "paths", nargs="*", metavar="PATH", help="scenario files or folders (default: every suite)"
    )
    add_suite_option(p)
    p.add_argument("--namespace", default=NAME, help="namespace of the Job (default: %(default)s)")
    p.add_argument(
        "--image",
        default=f"{NAME}:{__version__}",
        help="the harness image, built from the repository's Dockerfile (default: %(default)s)",
    )
    p.add_argument(
        "--hold",
        type=int,
        default=600,
        metavar="SECONDS",
        help="how long the pod waits after the run so kubectl cp can fetch the reports",
    )
    p.add_argument(
        "--run-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument of run in the pod (repeatable), e.g. --run-arg=--via=service",
    )
    p.add_argument("--apply", action="store_true", help="pipe the manifest to kubectl apply -f -")
    p.add_argument("--kubeconfig", help="for --apply")
    p.add_argument("--context", help="for --apply")
    p.set_defaults(func=cmd_job)


def scenario_files(paths: list[str]) -> dict[str, Path]:
    """Each scenario file under its path relative to the files' common folder (policy files a
    scenario names sit beside it, so they keep their relative place too)."""
    files = [p.resolve() for p in discover(paths)]
    extra = []
    for f in files:  # files a scenario refers to (`apply: - file: ...`) live in its folder
        extra += [s for s in f.parent.glob("*.y*ml") if s not in files and s not in extra]
    everything = files + extra
    if not files:
        raise ScenarioError(f"no scenario files found under {' '.join(paths)}")
    root = Path(os.path.commonpath([f.parent for f in everything]))
    return {str(f.relative_to(root)): f for f in sorted(everything)}


def manifest(args: argparse.Namespace, files: dict[str, Path]) -> str:
    ns = args.namespace
    data = {
        f"s{i:03d}-{Path(rel).name}": files[rel].read_text(encoding="utf-8")
        for i, rel in enumerate(files)
    }
    size = sum(len(v.encode()) for v in data.values())
    if size > CONFIGMAP_LIMIT:
        raise ScenarioError(
            f"the scenarios are {size} bytes, more than a ConfigMap holds ({CONFIGMAP_LIMIT}); "
            "choose fewer with --suite or PATH"
        )
    items = [{"key": key, "path": rel} for key, rel in zip(data, files, strict=True)]
    run = [
        NAME, "run", SCENARIOS_DIR, "--in-cluster", "--allow-context", IN_CLUSTER_CONTEXT,
        "--output-dir", REPORTS_DIR, *args.run_arg,
    ]  # fmt: skip
    script = (
        f"{shlex.join(run)}; rc=$?; cat {REPORTS_DIR}/summary.md 2>/dev/null; "
        f'echo "reports in {REPORTS_DIR} for {args.hold}s (kubectl cp)"; sleep {args.hold}; exit $rc'
    )
    labels = {"app.kubernetes.io/name": NAME}
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{NAME}-scenarios", "namespace": ns, "labels": labels},
            "data": data,
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": NAME, "namespace": ns, "labels": labels},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": NAME,
                        "restartPolicy": "Never",
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 10001,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": NAME,
                                "image": args.image,
                                "command": ["/bin/sh", "-c", script],
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "volumeMounts": [
                                    {
                                        "name": "scenarios",
                                        "mountPath": SCENARIOS_DIR,
                                        "readOnly": True,
                                    },
                                    {"name": "reports", "mountPath": REPORTS_DIR},
                                    {"name": "tmp", "mountPath": "/tmp"},
                                ],
                            }
                        ],
                        "volumes": [
                            {
                                "name": "scenarios",
                                "configMap": {"name": f"{NAME}-scenarios", "items": items},
                            },
                            {"name": "reports", "emptyDir": {}},
                            {"name": "tmp", "emptyDir": {}},
                        ],
                    },
                },
            },
        },
    ]
    pod = f"$(kubectl -n {ns} get pod -l job-name={NAME} -o name | cut -d/ -f2)"
    head = (
        f"# netpol-conformance {__version__}: run {len(files)} scenario files inside the cluster.\n"
        f"# Follow:  kubectl -n {ns} logs -f job/{NAME}   (ends with the Markdown summary)\n"
        f"# Reports: kubectl -n {ns} cp {pod}:{REPORTS_DIR} ./reports   (within {args.hold}s)\n"
        f"# Verdict: the Job fails when a cell mismatches; remove with kubectl delete namespace {ns}\n"
        "#          and the ClusterRole/ClusterRoleBinding netpol-conformance.\n"
    )
    docs = [yaml.safe_dump(objects[0], sort_keys=False), RBAC.format(ns=ns)]
    docs += [yaml.dump(o, Dumper=_Dumper, sort_keys=False, width=1000) for o in objects[1:]]
    return head + "---\n".join(d if d.endswith("\n") else d + "\n" for d in docs)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the scenario files) as literal blocks, so the ConfigMap reads as YAML;
    no anchors for values used twice (the labels)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def cmd_job(args: argparse.Namespace) -> int:
    try:
        text = manifest(args, scenario_files(sources(args)))
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    if not args.apply:
        sys.stdout.write(text)
        return ExitCode.OK
    cmd = ["kubectl", "apply", "-f", "-"]
    if args.kubeconfig:
        cmd += ["--kubeconfig", args.kubeconfig]
    if args.context:
        cmd += ["--context", args.context]
    try:
        proc = subprocess.run(cmd, input=text, text=True, check=False)
    except FileNotFoundError:
        print(
            "error: --apply needs kubectl on PATH (or print the manifest and apply it yourself)",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    return ExitCode.OK if proc.returncode == 0 else ExitCode.INFRASTRUCTURE
