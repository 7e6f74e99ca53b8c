"""The doctor's checks: is a cluster fit for a run, and if not, what to fix.

``Doctor(cluster, options).run()`` returns one ``Check`` per line of the checklist, in the order
the checks depend on each other (API server, nodes, CNI, admin policy APIs, probe image, SCTP);
``exit_status`` turns the checklist into the process exit code. The ``doctor`` command
(``conformance/commands/doctor.py``) explains each check and renders the list.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from conformance.api.kinds import ADMIN_KINDS
from conformance.cluster import is_embedded_version
from conformance.errors import ClusterError, ExitCode, NotFound
from conformance.live.cni import detect_cni, workload_ident
from conformance.live.deploy import RUN_LABEL, TOOL_LABEL, TOOL_NAME, PullPolicy, new_run_id
from conformance.live.ops import ClusterOps
from conformance.live.placement import cluster_nodes
from conformance.live.probing import PROBE_IMAGE

MAX_PROBE_NODES = 10
# Container waiting reasons that will not resolve by waiting longer.
STUCK_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "CrashLoopBackOff",
    }
)
PULL_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
SCTP_CHECK = "test -d /proc/net/sctp || test -d /sys/module/sctp"


class CheckStatus(StrEnum):
    OK = "ok"
    FAIL = "fail"  # the run would fail or mislead: fix before running
    WARN = "warn"  # could not be checked, or worth knowing; a run may still be fine
    SKIP = "skip"  # not asked for, or not possible because an earlier check failed
    INFO = "info"  # facts about the cluster (served APIs)


@dataclass(frozen=True)
class Check:
    """One line of the checklist; ``fix`` says what to do when the status is not ok."""

    name: str
    status: CheckStatus
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class DoctorOptions:
    sctp: bool = False
    image: str = PROBE_IMAGE
    image_pull_policy: PullPolicy = PullPolicy.IF_NOT_PRESENT
    pod_timeout_s: float = 120.0
    create_pods: bool = True  # False: read-only checks only
    pods_refused: str = ""  # why pods may not be created here (unsafe context), if so


# -- nodes and probe pods (pure) ---------------------------------------------------------------


def node_problems(nodes: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per node whose Ready condition is not True: 'name: reason: message'."""
    out = []
    for node in nodes:
        name = str((node.get("metadata") or {}).get("name", "?"))
        conds = (node.get("status") or {}).get("conditions") or []
        ready = next((c for c in conds if c.get("type") == "Ready"), None)
        if ready is None:
            out.append(f"{name}: no Ready condition reported yet")
        elif ready.get("status") != "True":
            why = ": ".join(str(x) for x in (ready.get("reason"), ready.get("message")) if x)
            out.append(f"{name}: {why or 'Ready=' + str(ready.get('status'))}")
    return out


def schedulable_nodes(nodes: Sequence[Mapping[str, Any]]) -> list[str]:
    """Ready nodes the scheduler would place the runner's pods on (no NoSchedule/NoExecute taint)."""
    bad = set()
    for line in node_problems(nodes):
        bad.add(line.split(":", 1)[0])
    out = []
    for node in nodes:
        name = str((node.get("metadata") or {}).get("name", ""))
        spec = node.get("spec") or {}
        taints = [
            t for t in spec.get("taints") or [] if t.get("effect") in ("NoSchedule", "NoExecute")
        ]
        if name and name not in bad and not spec.get("unschedulable") and not taints:
            out.append(name)
    return sorted(out)


def pod_state(pod: Mapping[str, Any]) -> tuple[str, str]:
    """('running' | 'pending' | 'stuck' | 'failed', explanation) for a probe pod."""
    status = pod.get("status") or {}
    phase = str(status.get("phase", "Pending"))
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in STUCK_REASONS:
            return "stuck", f"{waiting['reason']}: {waiting.get('message', '')}".rstrip(": ")
        term = state.get("terminated") or {}
        if term and phase != "Running":
            why = term.get("message") or term.get("reason") or f"exit code {term.get('exitCode')}"
            return "failed", str(why)
    if phase == "Running" and all(cs.get("ready") for cs in status.get("containerStatuses") or []):
        return "running", ""
    if phase in ("Failed", "Succeeded"):
        return "failed", str(status.get("message") or status.get("reason") or phase)
    waiting_reasons = [
        str(((cs.get("state") or {}).get("waiting") or {}).get("reason", ""))
        for cs in status.get("containerStatuses") or []
    ]
    unscheduled = next(
        (
            str(c.get("message", ""))
            for c in status.get("conditions") or []
            if c.get("type") == "PodScheduled" and c.get("status") == "False"
        ),
        "",
    )
    return "pending", unscheduled or ", ".join(r for r in waiting_reasons if r) or phase


# -- the checks ------------------------------------------------------------------------------


@dataclass
class _Probe:
    """A probe pod the doctor started: where it landed and what happened."""

    name: str
    node: str  # requested node, "" if left to the scheduler
    state: str = "pending"
    detail: str = ""
    seconds: float = 0.0
    events: list[str] = field(default_factory=list)


class Doctor:
    """Runs the checks in order against one cluster; ``run()`` returns the checklist."""

    def __init__(
        self,
        cluster: ClusterOps,
        options: DoctorOptions | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cluster = cluster
        self.options = options or DoctorOptions()
        self._sleep = sleep
        self._clock = clock
        self.embedded = False
        self.nodes: list[dict[str, Any]] | None = None  # None: not listable
        self.namespace = ""

    def run(self) -> list[Check]:
        checks = [self.check_api()]
        if checks[0].status is CheckStatus.FAIL:
            return [
                *checks,
                *(
                    Check(n, CheckStatus.SKIP, "not checked: the API server is unreachable")
                    for n in ("nodes", "CNI", "admin policy APIs", "probe image", "SCTP")
                ),
            ]
        checks.append(self.check_nodes())
        checks.append(self.check_cni())
        checks.append(self.check_admin_apis())
        checks.extend(self.check_pods())
        return checks

    # 1 ---------------------------------------------------------------------------------------
    def check_api(self) -> Check:
        try:
            version = self.cluster.server_version()
        except ClusterError as exc:
            return Check(
                "API server",
                CheckStatus.FAIL,
                f"cannot reach {self.cluster.server}: {exc}",
                f"is the cluster running (`kind get clusters`)? try "
                f"`kubectl --context {self.cluster.context} get --raw /version`",
            )
        self.embedded = is_embedded_version(version)
        return Check("API server", CheckStatus.OK, f"Kubernetes {version} at {self.cluster.server}")

    # 2 ---------------------------------------------------------------------------------------
    def check_nodes(self) -> Check:
        try:
            self.nodes = self.cluster.list_items("Node")
        except ClusterError as exc:
            if self.embedded and isinstance(exc, NotFound):
                return Check(
                    "nodes",
                    CheckStatus.OK,
                    "embedded cluster: no Node objects; its pods run on this machine",
                )
            return Check(
                "nodes",
                CheckStatus.WARN,
                f"cannot list nodes: {exc}",
                "grant `list nodes` (see `netpol-conformance rbac`) to let the doctor check them",
            )
        if not self.nodes:
            return Check("nodes", CheckStatus.FAIL, "the cluster has no nodes", "add nodes")
        problems = node_problems(self.nodes)
        if problems:
            network = any("network" in p.lower() or "cni" in p.lower() for p in problems)
            fix = (
                "the CNI is not installed or not ready yet: install it (on kind: "
                "`hack/kind/install-<cni>.sh`) and wait for its pods"
                if network
                else "see `kubectl describe node NAME` for why"
            )
            return Check(
                "nodes",
                CheckStatus.FAIL,
                f"{len(problems)} of {len(self.nodes)} nodes not Ready: " + "; ".join(problems),
                fix,
            )
        names = ", ".join(sorted(str(n["metadata"]["name"]) for n in self.nodes))
        workers = [n.name for n in cluster_nodes(self.nodes) if n.schedulable]
        if len(workers) < 2:
            return Check(
                "nodes",
                CheckStatus.WARN,
                f"{len(self.nodes)} Ready: {names}; only {len(workers)} schedulable for the "
                "runner's pods: scenarios that pin pods to nodes cannot run, the others test "
                "same-node paths only",
                "add a worker node (or untaint one), or choose nodes with `run --node-map`",
            )
        return Check(
            "nodes",
            CheckStatus.OK,
            f"{len(self.nodes)} Ready: {names}; node-1, node-2 of a scenario go on "
            f"{workers[0]}, {workers[1]}",
        )

    # 3 ---------------------------------------------------------------------------------------
    def check_cni(self) -> Check:
        if self.embedded:
            return Check(
                "CNI", CheckStatus.OK, "embedded cluster: its own nftables policy enforcer"
            )
        try:
            daemonsets = self.cluster.list_items("DaemonSet")
        except ClusterError as exc:
            return Check(
                "CNI",
                CheckStatus.WARN,
                f"cannot list DaemonSets: {exc}",
                "grant `list daemonsets,deployments` in group apps to let the doctor name the CNI",
            )
        try:
            deployments = self.cluster.list_items("Deployment")
        except ClusterError:
            deployments = []
        found = detect_cni(daemonsets, deployments)
        if not found:
            names = sorted({workload_ident("ds", d) for d in daemonsets})
            return Check(
                "CNI",
                CheckStatus.WARN,
                "no known CNI agent among the DaemonSets"
                + (f" ({', '.join(names[:8])})" if names else " (there are none)"),
                "if no CNI is installed, pods will not start: install one (hack/kind/)",
            )
        not_ready = [n for cni in found for n in cni.not_ready]
        described = "; ".join(
            f"{cni} ({', '.join(cni.workloads)})" + (f" — {cni.note}" if cni.note else "")
            for cni in found
        )
        if not_ready:
            first = not_ready[0].split(":", 1)[0]
            kind, ns, name = first.split("/", 2)
            return Check(
                "CNI",
                CheckStatus.FAIL,
                f"{described}; not ready: " + "; ".join(not_ready),
                f"wait for it: `kubectl -n {ns} rollout status {kind}/{name} --timeout=5m`; "
                f"if it never gets ready: `kubectl -n {ns} describe {kind}/{name}`",
            )
        return Check("CNI", CheckStatus.OK, described)

    # 4 ---------------------------------------------------------------------------------------
    def check_admin_apis(self) -> Check:
        try:
            served = self.cluster.served_kinds()
        except ClusterError as exc:
            return Check("admin policy APIs", CheckStatus.WARN, f"discovery failed: {exc}")
        parts = [
            f"{kind} {k.api_version}: {'served' if kind in served else 'not served'}"
            for kind, k in ADMIN_KINDS.items()
        ]
        missing = [k for k in ADMIN_KINDS if k not in served]
        return Check(
            "admin policy APIs",
            CheckStatus.INFO,
            "; ".join(parts),
            "scenarios using kinds not served are skipped (install the network-policy-api CRDs "
            "and a CNI that implements them to test those)"
            if missing
            else "",
        )

    # 5 and 6 -----------------------------------------------------------------------------------
    def check_pods(self) -> list[Check]:
        opts = self.options
        sctp_skip = Check(
            "SCTP",
            CheckStatus.SKIP,
            "not checked (pass --sctp when SCTP scenarios will run)",
        )
        if not opts.create_pods or opts.pods_refused:
            why = opts.pods_refused or "--no-pods given"
            return [
                Check("probe image", CheckStatus.SKIP, f"not checked: {why}"),
                Check("SCTP", CheckStatus.WARN, f"cannot check without a pod: {why}")
                if opts.sctp
                else sctp_skip,
            ]
        probes = self._probe_pods()
        try:
            image = self._image_check(probes)
            sctp = self._sctp_check(probes) if opts.sctp else sctp_skip
        finally:
            self._cleanup()
        return [image, sctp]

    def _targets(self) -> list[str]:
        if self.nodes is None:
            return [""]
        names = schedulable_nodes(self.nodes)
        return names[:MAX_PROBE_NODES] or [""]

    def _probe_pods(self) -> list[_Probe]:
        run_id = new_run_id()
        self.namespace = f"netpol-doctor-{run_id}"
        labels = {TOOL_LABEL: TOOL_NAME, RUN_LABEL: run_id}
        probes = [_Probe(f"doctor-{i}", node) for i, node in enumerate(self._targets())]
        try:
            self.cluster.create(
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": self.namespace, "labels": labels},
                }
            )
            for p in probes:
                spec: dict[str, Any] = {
                    "terminationGracePeriodSeconds": 0,
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "probe",
                            "image": self.options.image,
                            "imagePullPolicy": str(self.options.image_pull_policy),
                            "args": ["pause"],
                        }
                    ],
                }
                if p.node:
                    spec["nodeName"] = p.node
                self.cluster.create(
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {"name": p.name, "namespace": self.namespace, "labels": labels},
                        "spec": spec,
                    }
                )
        except ClusterError as exc:
            for p in probes:
                p.state, p.detail = "error", f"cannot create the probe pod: {exc}"
            return probes
        start = self._clock()
        deadline = start + self.options.pod_timeout_s
        while True:
            for p in probes:
                if p.state != "pending":
                    continue
                try:
                    pod = self.cluster.get("Pod", self.namespace, p.name)
                except ClusterError as exc:
                    p.detail = str(exc)
                    continue
                p.state, p.detail = pod_state(pod)
                p.node = p.node or str((pod.get("spec") or {}).get("nodeName", ""))
                p.seconds = self._clock() - start
            if all(p.state != "pending" for p in probes) or self._clock() >= deadline:
                break
            self._sleep(1.0)
        for p in probes:
            if p.state != "running":
                p.events = self.cluster.events_for(self.namespace, p.name)[-3:]
        return probes

    def _image_check(self, probes: Sequence[_Probe]) -> Check:
        image = self.options.image
        bad = [p for p in probes if p.state != "running"]
        if not bad:
            where = ", ".join(p.node or "(scheduler's choice)" for p in probes)
            slowest = max(p.seconds for p in probes)
            return Check(
                "probe image",
                CheckStatus.OK,
                f"{image} runs on {where} (ready within {slowest:.1f} s)",
            )
        lines = []
        for p in bad:
            what = "still pending" if p.state == "pending" else p.state
            extra = f" (events: {' | '.join(p.events)})" if p.events else ""
            lines.append(f"{p.name} on {p.node or '?'}: {what}: {p.detail}{extra}")
        pull = any(
            p.detail.startswith(PULL_REASONS)
            or any("pull image" in e or "pulling image" in e for e in p.events)
            for p in bad
        )
        if pull:
            fix = (
                f"the nodes cannot pull {image}: preload it (`docker pull {image} && "
                f"kind load docker-image {image} --name CLUSTER`) or pass --image with a mirror"
            )
        elif any(p.state == "pending" for p in bad):
            fix = (
                f"pods did not start within {self.options.pod_timeout_s:.0f} s: is the CNI ready "
                f"(`kubectl get pods -A`)? a slow pull may need --timeout"
            )
        else:
            fix = (
                f"see the events above; `kubectl run doctor-test --rm -it --restart=Never "
                f"--image {image} -- pause` reproduces it"
            )
        return Check("probe image", CheckStatus.FAIL, "; ".join(lines), fix)

    def _sctp_check(self, probes: Sequence[_Probe]) -> Check:
        running = [p for p in probes if p.state == "running"]
        if not running:
            return Check("SCTP", CheckStatus.WARN, "cannot check: no probe pod is running")
        missing, loaded, unknown = [], [], []
        for p in running:
            node = p.node or p.name
            try:
                res = self.cluster.exec(
                    self.namespace, p.name, "probe", ["/bin/sh", "-c", SCTP_CHECK], 20.0
                )
            except ClusterError as exc:
                unknown.append(f"{node}: {exc}")
                continue
            if res.exit_code == 0:
                loaded.append(node)
            elif res.exit_code == 1:
                missing.append(node)
            else:
                unknown.append(f"{node}: exit {res.exit_code} {res.stderr.strip()[:120]}")
        if missing and self.embedded:
            return Check(
                "SCTP",
                CheckStatus.FAIL,
                "the sctp kernel module is not loaded on this machine",
                "the embedded cluster's pods use this machine's kernel: run `sudo modprobe sctp` "
                "here (a kernel without the module cannot run SCTP scenarios; they are skipped), "
                "then run the doctor again",
            )
        if missing:
            return Check(
                "SCTP",
                CheckStatus.FAIL,
                f"the sctp kernel module is not loaded on {', '.join(missing)}",
                "kind nodes share the host's kernel: run `sudo modprobe sctp` on the host "
                "(other clusters: on each node), then run the doctor again",
            )
        if unknown:
            return Check(
                "SCTP",
                CheckStatus.WARN,
                "cannot check: " + "; ".join(unknown),
                "SCTP scenarios will show as not supported if the module is missing",
            )
        return Check("SCTP", CheckStatus.OK, f"sctp available on {', '.join(loaded)}")

    def _cleanup(self) -> None:
        if self.namespace:
            # Labelled: `netpol-conformance clean` finds it if the delete fails.
            with contextlib.suppress(ClusterError):
                self.cluster.delete("Namespace", None, self.namespace)


def exit_status(checks: Sequence[Check]) -> ExitCode:
    """INFRASTRUCTURE when a check failed (warnings and skips do not count), else OK."""
    return (
        ExitCode.INFRASTRUCTURE
        if any(c.status is CheckStatus.FAIL for c in checks)
        else ExitCode.OK
    )
