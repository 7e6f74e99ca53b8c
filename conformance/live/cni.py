"""Which CNI a cluster runs, told from its workloads: node-agent DaemonSets (by name or image) and
the companion Deployments, with the agent's version and what is not ready yet.

Pure functions over the objects the API returns; ``doctor`` checks the CNI with them and the runner
names it in results (``RunResult.cni``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


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


def workload_ident(kind: str, obj: Mapping[str, Any]) -> str:
    """``kind/namespace/name`` of a workload, ``kind`` being ``ds`` or ``deploy``."""
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
    return f"{workload_ident(kind, obj)}: {ready}/{want} ready"


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
        workloads = [workload_ident("ds", d) for d in agents] + [
            workload_ident("deploy", d) for d in companions
        ]
        not_ready = [workload_not_ready("ds", d) for d in agents] + [
            workload_not_ready("deploy", d) for d in companions
        ]
        found.append(
            DetectedCni(
                sig.name, version, tuple(workloads), tuple(n for n in not_ready if n), sig.note
            )
        )
    return found
