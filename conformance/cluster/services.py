"""ClusterIP Services: address allocation, validation and the node's DNAT rules (kube-proxy's job).

Why: the runner can probe through Services; a Service IP must lead to the selected pods with
policy enforced on the translated packet, as with kube-proxy in front of a real CNI.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from conformance.api.names import DNS1035_LABEL_FMT, dns1035_label_violations
from conformance.cluster.compiler import PodView
from conformance.cluster.dataplane import GATEWAY
from conformance.cluster.selectors import matches
from conformance.cluster.validation import (
    PORT_MSG,
    Cause,
    invalid,
    metadata_errors,
    not_supported,
    port_name_errors,
    regex_error,
    required,
)

SERVICE_CIDR = ipaddress.IPv4Network("10.96.0.0/16")
DNS1035_MSG = regex_error(
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character",
    DNS1035_LABEL_FMT,
    "my-name",
    "abc-123",
)


class Allocator:
    """Hands out ClusterIPs from 10.96.0.0/16 (10.96.0.1 is kept for the ``kubernetes`` service)."""

    def __init__(self) -> None:
        self._next = int(SERVICE_CIDR.network_address) + 10
        self.used: set[str] = set()

    def allocate(self) -> str:
        while True:
            ip = str(ipaddress.IPv4Address(self._next))
            self._next += 1
            if ip not in self.used:
                self.used.add(ip)
                return ip

    def release(self, ip: str) -> None:
        self.used.discard(ip)


def default_service(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))


def service_errors(obj: Mapping[str, Any]) -> list[Cause]:
    """The parts of ``ValidateService`` a ClusterIP Service needs."""
    out = [
        c
        for c in metadata_errors(obj.get("metadata") or {}, dns_label=True)
        if c.field != "metadata.name"
    ]
    name = (obj.get("metadata") or {}).get("name") or ""
    if not name:
        out.append(required("metadata.name", "name or generateName is required"))
    elif dns1035_label_violations(name):
        out.append(invalid("metadata.name", name, DNS1035_MSG))
    spec = obj.get("spec") or {}
    if spec.get("type") not in ("ClusterIP",):
        out.append(not_supported("spec.type", spec.get("type"), ["ClusterIP"]))
    ports = spec.get("ports") or []
    if not ports and spec.get("clusterIP") != "None":
        out.append(required("spec.ports"))
    names: set[str] = set()
    for i, port in enumerate(ports):
        path = f"spec.ports[{i}]"
        pname = port.get("name") or ""
        if len(ports) > 1 and not pname:
            out.append(required(f"{path}.name"))
        if pname:
            out += [invalid(f"{path}.name", pname, m) for m in port_name_errors(pname)]
            if pname in names:
                out.append(
                    Cause("FieldValueDuplicate", f"{path}.name", f'Duplicate value: "{pname}"')
                )
            names.add(pname)
        number = port.get("port")
        if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 65535:
            out.append(invalid(f"{path}.port", number, PORT_MSG))
        if port.get("protocol") not in ("TCP", "UDP", "SCTP"):
            out.append(
                not_supported(f"{path}.protocol", port.get("protocol"), ["SCTP", "TCP", "UDP"])
            )
        target = port.get("targetPort")
        if isinstance(target, int) and not 1 <= target <= 65535:
            out.append(invalid(f"{path}.targetPort", target, PORT_MSG))
        elif isinstance(target, str):
            out += [invalid(f"{path}.targetPort", target, m) for m in port_name_errors(target)]
    return out


def nat_chains(services: Sequence[Mapping[str, Any]], pods: Sequence[PodView]) -> list[str]:
    """nftables chains (inside the cluster table) that DNAT ClusterIPs to ready endpoint pods."""
    pre: list[str] = []
    reject: list[str] = []
    extra: list[str] = []
    hairpin: set[str] = set()
    for svc in sorted(services, key=lambda s: (s["metadata"]["namespace"], s["metadata"]["name"])):
        spec = svc.get("spec") or {}
        vip = spec.get("clusterIP")
        if not vip or vip == "None":
            continue
        selector = spec.get("selector")
        ns = svc["metadata"]["namespace"]
        endpoints = []
        if selector:
            endpoints = [
                p
                for p in pods
                if p.namespace == ns and p.ip and matches({"matchLabels": selector}, p.labels)
            ]
        for port in spec.get("ports") or []:
            proto = str(port.get("protocol", "TCP")).lower()
            match = f"ip daddr {vip} meta l4proto {proto} th dport {port['port']}"
            targets = []
            for pod in sorted(endpoints, key=lambda p: p.ip):
                # The endpoint address of the ClusterIP's family (IPv4): a pod may be IPv6-primary.
                address = next((a for a in pod.ips if ":" not in a), None)
                target = port.get("targetPort", port["port"])
                number = (
                    target if isinstance(target, int) else pod.named(str(target), proto.upper())
                )
                if number is not None and address is not None:
                    targets.append(f"{address}:{number}")
                    hairpin.add(address)
            if not targets:
                reject.append(f"    {match} reject")
            elif len(targets) == 1:
                pre.append(f"    {match} dnat ip to {targets[0]}")
            else:
                base = f"svc_{len(extra)}"
                verdicts = []
                for i, target in enumerate(targets):
                    # nft wants the transport protocol matched in the rule that maps the port.
                    extra.append(
                        f"  chain {base}_{i} {{\n    meta l4proto {proto} dnat ip to {target}\n  }}"
                    )
                    verdicts.append(f"{i} : goto {base}_{i}")
                pre.append(
                    f"    {match} numgen random mod {len(targets)} vmap {{ {', '.join(verdicts)} }}"
                )
    if not pre and not reject:
        return []
    # prerouting: what pods send through the node; output: what the node itself (and its
    # host-network pods) sends, as kube-proxy does for both.
    out = []
    for hook in ("prerouting", "output"):
        out += [
            f"  chain services_dnat_{hook} {{",
            # -100 is "dstnat", a keyword nft accepts for prerouting only.
            f"    type nat hook {hook} priority -100; policy accept;",
            *pre,
            "  }",
            f"  chain services_reject_{hook} {{",
            f"    type filter hook {hook} priority filter; policy accept;",
            *reject,
            "  }",
        ]
    out += [
        "  chain services_hairpin {",
        "    type nat hook postrouting priority srcnat; policy accept;",
    ]
    out += [
        f"    ip saddr {ip} ip daddr {ip} ct status dnat snat ip to {GATEWAY}"
        for ip in sorted(hairpin)
    ]
    out += ["  }", *extra]
    return out
