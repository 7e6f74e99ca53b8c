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
import contextlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from conformance.errors import ClusterError, ConformanceError, ExitCode, NotFound
from conformance.live.deploy import RUN_LABEL, TOOL_LABEL, TOOL_NAME, new_run_id
from conformance.live.ops import ExecResult
from conformance.live.probing import AGNHOST_IMAGE, AGNHOST_TAG

EMBEDDED_VERSION_MARK = "netpol-embedded"
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
    image: str = f"{AGNHOST_IMAGE}:{AGNHOST_TAG}"
    image_pull_policy: str = "IfNotPresent"
    pod_timeout_s: float = 120.0
    create_pods: bool = True  # False: read-only checks only
    pods_refused: str = ""  # why pods may not be created here (unsafe context), if so


class DoctorOps(Protocol):
    """What the doctor needs from a cluster; ``conformance.live.kube.KubeCluster`` is the real one."""

    context: str
    server: str

    def server_version(self) -> str: ...
    def served_kinds(self) -> set[str]: ...
    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]: ...
    def delete(self, kind: str, namespace: str | None, name: str) -> None: ...
    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]: ...
    def list_items(
        self, kind: str, namespace: str | None = None, label_selector: str = ""
    ) -> list[dict[str, Any]]: ...
    def events_for(self, namespace: str, name: str) -> list[str]: ...
    def exec(
        self, namespace: str, pod: str, container: str, argv: Sequence[str], timeout_s: float
    ) -> ExecResult: ...


# -- CNI detection (pure) ----------------------------------------------------------------------


@dataclass(frozen=True)
class CniSignature:
    """How a CNI's node agent shows up: DaemonSet names, image substrings, companion Deployments."""

    name: str
    daemonsets: tuple[str, ...]
    images: tuple[str, ...]
    deployments: tuple[str, ...] = ()
    note: str = ""


CNI_SIGNATURES: tuple[CniSignature, ...] = (
    CniSignature(
        "calico", ("calico-node",), ("calico/node",), ("calico-kube-controllers", "tigera-operator")
    ),
    CniSignature(
        "cilium",
        ("cilium",),
        ("cilium/cilium:", "cilium/cilium@"),
        ("cilium-operator",),
        "ipBlock CIDRs are not matched against pod IPs (cilium issue 9209)",
    ),
    CniSignature("antrea", ("antrea-agent",), ("antrea/antrea-agent",), ("antrea-controller",)),
    CniSignature(
        "kindnet",
        ("kindnet",),
        ("kindnetd",),
        (),
        "enforces standard NetworkPolicy through kube-network-policies (kind >= 0.24); no admin policies",
    ),
    CniSignature(
        "kube-network-policies", ("kube-network-policies",), ("kube-network-policies",), ()
    ),
    CniSignature(
        "flannel",
        ("kube-flannel-ds",),
        ("flannel/flannel:",),
        (),
        "flannel alone enforces no policy",
    ),
    CniSignature("weave", ("weave-net",), ("weave-kube",)),
    CniSignature("kube-router", ("kube-router",), ("kube-router",)),
    CniSignature("ovn-kubernetes", ("ovnkube-node",), ("ovn-kubernetes",)),
    CniSignature("aws-vpc-cni", ("aws-node",), ("amazon-k8s-cni",)),
)


@dataclass(frozen=True)
class DetectedCni:
    name: str
    version: str  # image tag of the agent, "" if none
    workloads: tuple[str, ...]  # "ds/ns/name" and "deploy/ns/name"
    not_ready: tuple[str, ...] = ()  # "ds/ns/name: 1/3 ready"
    note: str = ""

    def __str__(self) -> str:
        return f"{self.name} {self.version}".strip()


def _images(obj: Mapping[str, Any]) -> list[str]:
    spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [
        str(c.get("image", ""))
        for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
    ]


def _tag(image: str) -> str:
    """``repo/name:tag@sha256:...`` -> ``tag`` (empty when the image has no tag)."""
    ref = image.split("@", 1)[0]
    name, _, tag = ref.rpartition(":")
    return tag if name and "/" not in tag else ""


def _ident(kind: str, obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{kind}/{meta.get('namespace', '')}/{meta.get('name', '')}"


def workload_not_ready(kind: str, obj: Mapping[str, Any]) -> str:
    """'' when a DaemonSet/Deployment has all its pods ready, else 'ds/ns/name: 1/3 ready'."""
    status = obj.get("status") or {}
    if kind == "ds":
        want = int(status.get("desiredNumberScheduled") or 0)
        ready = int(status.get("numberReady") or 0)
    else:
        want = int((obj.get("spec") or {}).get("replicas", 1) or 0)
        ready = int(status.get("readyReplicas") or 0)
    if want and ready >= want:
        return ""
    return f"{_ident(kind, obj)}: {ready}/{want} ready"


def detect_cni(
    daemonsets: Sequence[Mapping[str, Any]], deployments: Sequence[Mapping[str, Any]] = ()
) -> list[DetectedCni]:
    """CNIs whose node agent is among ``daemonsets`` (by name or image), in signature order."""
    found: list[DetectedCni] = []
    for sig in CNI_SIGNATURES:
        agents = []
        version = ""
        for ds in daemonsets:
            name = str((ds.get("metadata") or {}).get("name", ""))
            matching = [i for i in _images(ds) if any(s in i for s in sig.images)]
            if name in sig.daemonsets or matching:
                agents.append(ds)
                version = version or next((_tag(i) for i in matching if _tag(i)), "")
        if not agents:
            continue
        companions = [
            d
            for d in deployments
            if str((d.get("metadata") or {}).get("name", "")) in sig.deployments
        ]
        workloads = [_ident("ds", d) for d in agents] + [_ident("deploy", d) for d in companions]
        not_ready = [workload_not_ready("ds", d) for d in agents] + [
            workload_not_ready("deploy", d) for d in companions
        ]
        found.append(
            DetectedCni(
                sig.name, version, tuple(workloads), tuple(n for n in not_ready if n), sig.note
            )
        )
    return found


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
        cluster: DoctorOps,
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
        self.embedded = EMBEDDED_VERSION_MARK in version
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
        return Check("nodes", CheckStatus.OK, f"{len(self.nodes)} Ready: {names}")

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
            names = sorted({_ident("ds", d) for d in daemonsets})
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
        from conformance.api.kinds import ADMIN_KINDS

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
                            "imagePullPolicy": self.options.image_pull_policy,
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


# -- output and CLI ---------------------------------------------------------------------------

MARK = {
    CheckStatus.OK: "[ok]  ",
    CheckStatus.FAIL: "[FAIL]",
    CheckStatus.WARN: "[warn]",
    CheckStatus.SKIP: "[skip]",
    CheckStatus.INFO: "[info]",
}


def exit_status(checks: Sequence[Check]) -> ExitCode:
    return (
        ExitCode.INFRASTRUCTURE
        if any(c.status is CheckStatus.FAIL for c in checks)
        else ExitCode.OK
    )


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
    p = sub.add_parser(
        "doctor",
        help="check a cluster before a run (API, nodes, CNI, probe image, SCTP) and say what to fix",
        description=__doc__,
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
    p.add_argument("--image", default=f"{AGNHOST_IMAGE}:{AGNHOST_TAG}", help="probe image")
    p.add_argument(
        "--image-pull-policy", default="IfNotPresent", choices=("Always", "IfNotPresent", "Never")
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=120.0,
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
        image_pull_policy=args.image_pull_policy,
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
