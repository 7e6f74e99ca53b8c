"""The scenario file format as pydantic models (the YAML boundary; see docs/scenarios.md).

Only structure and simple values are checked here; policy objects stay verbatim dicts and are
validated by ``conformance.api.netpol`` with the API server's rules. ``docs/scenario.schema.json`` is
generated from ``ScenarioFile``.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from ipaddress import IPv6Address
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyAddress,
    field_validator,
    model_validator,
)

from conformance.api.types import AddressFamily, L4Protocol


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Feature(StrEnum):
    """Features a scenario may require; clusters or runs lacking one skip it with that reason."""

    SCTP = "SCTP"
    UDP = "UDP"
    END_PORT = "EndPort"
    NAMED_PORTS = "NamedPorts"
    IP_BLOCK = "IPBlock"
    EGRESS = "Egress"
    IPV6 = "IPv6"
    ADMIN_NETWORK_POLICY = "AdminNetworkPolicy"
    BASELINE_ADMIN_NETWORK_POLICY = "BaselineAdminNetworkPolicy"
    CLUSTER_NETWORK_POLICY = "ClusterNetworkPolicy"
    HOST_NETWORK = "HostNetwork"
    EXTERNAL_CLIENTS = "ExternalClients"


PortNumber = Annotated[int, Field(strict=True, ge=1, le=65535)]
"""A port number: an integer 1-65535 (not "80", 80.0 or true, which YAML would let through)."""


def _no_zone(ip: Any) -> Any:
    if getattr(ip, "scope_id", None):
        raise ValueError(f"{ip} has an IPv6 zone (%{ip.scope_id}); write the address without it")
    return ip


Address = Annotated[IPvAnyAddress, AfterValidator(_no_zone)]
"""An IPv4 or IPv6 address without a zone (``fe80::1%eth0`` is not an address a pod can have)."""


class PortSpec(_Model):
    """A served container port."""

    port: PortNumber
    protocol: L4Protocol = L4Protocol.TCP
    name: str | None = Field(default=None, description="Container port name (IANA_SVC_NAME).")


class NamespaceSpec(_Model):
    labels: dict[str, str] = Field(default_factory=dict)


class NodeSpec(_Model):
    """A node; it also gets the labels every real node has (``kubernetes.io/hostname: <name>``,
    ``kubernetes.io/os: linux``) unless set here."""

    labels: dict[str, str] = Field(default_factory=dict)


def default_nodes() -> dict[str, NodeSpec]:
    """Two nodes, so every scenario has same-node and cross-node pairs."""
    return {"node-1": NodeSpec(), "node-2": NodeSpec()}


class PodSpec(_Model):
    """A pod; ``name`` is ``ns/pod``, or just ``pod`` with ``namespace`` set."""

    name: str
    namespace: str | None = None
    labels: dict[str, str] | None = Field(
        default=None, description="Default: {pod: <name>} as in the upstream e2e model."
    )
    ports: list[PortSpec] | None = Field(
        default=None, description="Default: the topology's `ports`."
    )
    ip: Address | None = Field(default=None, description="Fixed IP (evaluation only).")
    host_network: bool = Field(
        default=False,
        strict=True,
        description="Runs in its node's network namespace: an endpoint at the node's address, "
        "never selected by a policy's subject.",
    )
    node: str | None = Field(
        default=None,
        description="Node (a `topology.nodes` name) the pod runs on. Default: spread, the i-th "
        "pod without `node` (in order of appearance) on the (i mod N)-th node.",
    )


def default_ports() -> list[PortSpec]:
    """Ports 80 and 81 on TCP, UDP and SCTP named serve-<port>-<proto>, as upstream."""
    return [
        PortSpec(port=port, protocol=proto, name=f"serve-{port}-{proto.lower()}")
        for port in (80, 81)
        for proto in L4Protocol
    ]


class Topology(_Model):
    nodes: dict[str, NodeSpec] = Field(
        default_factory=default_nodes, description="Default: node-1 and node-2."
    )
    namespaces: dict[str, NamespaceSpec] = Field(
        default_factory=lambda: {n: NamespaceSpec() for n in ("x", "y", "z")}
    )
    pods: list[PodSpec] | None = Field(
        default=None, description="Default: pods a, b, c in every namespace."
    )
    ports: list[PortSpec] = Field(default_factory=default_ports)
    pod_cidr: str = Field(
        default="10.244.0.0/16", description="Pod CIDR used for offline evaluation."
    )
    node_cidr: str = Field(
        default="172.18.0.0/24",
        description="Node addresses for offline evaluation: .2, .3, ... in `nodes` order.",
    )
    ip_families: list[AddressFamily] = Field(
        default_factory=lambda: [AddressFamily.IPV4],
        description="Address families of every pod, node and external endpoint; the first is "
        "each one's primary address. [IPv4, IPv6] is dual-stack: every cell is probed in both.",
    )
    pod_cidr_v6: str = Field(
        default="fd00:10:244::/64", description="IPv6 pod CIDR used for offline evaluation."
    )
    node_cidr_v6: str = Field(
        default="fd00:172:18::/64", description="IPv6 node addresses for offline evaluation."
    )

    @model_validator(mode="after")
    def _cidrs_fit(self) -> Topology:
        if not self.ip_families or len(set(self.ip_families)) != len(self.ip_families):
            raise ValueError("ip_families must list IPv4, IPv6 or both, each once")
        for name, version in (
            ("node_cidr", 4),
            ("node_cidr_v6", 6),
            ("pod_cidr", 4),
            ("pod_cidr_v6", 6),
        ):
            text = getattr(self, name)
            example = "172.18.0.0/24" if version == 4 else "fd00:172:18::/64"
            try:
                net = ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ValueError(f"{name} {text!r} is not a CIDR such as {example}") from None
            if net.version != version:
                hint = (
                    " (for IPv6 pods set ip_families and pod_cidr_v6)" if name == "pod_cidr" else ""
                )
                raise ValueError(
                    f"{name} {text} must be an IPv{version} CIDR such as {example}{hint}"
                )
            if name.startswith("node") and net.num_addresses < len(self.nodes) + 2:
                raise ValueError(f"{name} {text} is too small for {len(self.nodes)} nodes")
        return self

    @field_validator("pod_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        if "/" not in value or "%" in value:
            raise ValueError(f"{value!r} is not a CIDR (e.g. 10.244.0.0/16 or fd00:10:244::/56)")
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a CIDR (e.g. 10.244.0.0/16 or fd00:10:244::/56)"
            ) from None
        return value


class ExternalSpec(_Model):
    """An endpoint outside the cluster, e.g. 203.0.113.10: a destination, and a client when a
    probe's `from` names it (`@name`)."""

    name: str
    ip: Address
    ipv6: Annotated[IPv6Address, AfterValidator(_no_zone)] | None = Field(
        default=None,
        description="Its IPv6 address when `ip` is IPv4 and the topology has IPv6. Default: "
        "2001:db8:: with the IPv4 address in the low 32 bits (documentation prefix).",
    )
    ports: list[PortSpec] = Field(default_factory=lambda: [PortSpec(port=80)])


class PolicyFileRef(_Model):
    file: str = Field(description="Path relative to the scenario file; may hold several documents.")


class SampleSpec(_Model):
    """Sampled probing: probe ``cells`` cells of each step instead of all of them."""

    cells: int = Field(
        strict=True,
        ge=1,
        description="Cells probed per step: one from each class of cells the rules treat alike "
        "(rarest first, up to half), the rest drawn at random. A step with no more cells than "
        "this probes them all.",
    )
    seed: int = Field(default=0, strict=True, description="Seed of the random choices.")


class ProbeSpec(_Model):
    ports: list[PortNumber] | None = Field(default=None, description="Default: every served port.")
    protocols: list[L4Protocol] | None = Field(
        default=None, description="Default: every served protocol."
    )
    from_: list[str] | None = Field(
        default=None,
        alias="from",
        description="Source globs over ns/pod; `@name` globs select external clients. "
        "Default: every pod.",
    )
    to: list[str] | None = Field(default=None, description="Destination globs (ns/pod, @external).")
    families: list[AddressFamily] | None = Field(
        default=None, description="Default: every family of the topology's `ip_families`."
    )
    sample: SampleSpec | None = Field(
        default=None,
        description="Probe a sample of each step's cells (for large topologies); default: "
        "every cell. `run --sample` overrides it.",
    )


VerdictName = Literal["allow", "deny"]


class ExpectRule(_Model):
    from_: str = Field(
        default="*", alias="from", description="Glob over source ns/pod or @external."
    )
    to: str = Field(default="*", description="Glob over destination ns/pod or @external.")
    ports: list[PortNumber] | None = None
    protocols: list[L4Protocol] | None = None
    families: list[AddressFamily] | None = None
    verdict: VerdictName


class Expectation(_Model):
    """Declared connectivity: ``default`` + ``rules`` (last match wins), or a pasted ``table``."""

    default: VerdictName | None = None
    rules: list[ExpectRule] = Field(default_factory=list)
    table: str | None = Field(default=None, description="Grids in the layout `evaluate` prints.")

    @model_validator(mode="after")
    def _one_form(self) -> Expectation:
        if self.table is not None and (self.default is not None or self.rules):
            raise ValueError("use either `table` or `default`/`rules`, not both")
        if self.table is None and self.default is None:
            raise ValueError(
                "give `default` (allow or deny), optionally with `rules`, or a `table`"
            )
        return self


LabelPatch = dict[str, str | None]


class Step(_Model):
    name: str
    apply: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Policy objects to create or replace: verbatim objects or {file: path}.",
    )
    delete: list[str] = Field(
        default_factory=list,
        description="'ns/name' of a NetworkPolicy; 'Kind/ns/name', or 'Kind/name' if cluster-scoped.",
    )
    label_namespaces: dict[str, LabelPatch] = Field(
        default_factory=dict, description="Merge patch of labels; null removes a label."
    )
    label_pods: dict[str, LabelPatch] = Field(default_factory=dict)
    add_namespaces: dict[str, NamespaceSpec] = Field(default_factory=dict)
    add_pods: list[PodSpec] = Field(default_factory=list)
    remove_pods: list[str] = Field(default_factory=list)
    probe: ProbeSpec = Field(default_factory=ProbeSpec)
    expect: Expectation | None = None


class ScenarioFile(_Model):
    """A netpol-conformance scenario."""

    name: str | None = Field(default=None, description="Default: the file name without extension.")
    description: str = ""
    source: str | None = Field(
        default=None, description="Where the case comes from (e.g. upstream test name)."
    )
    tags: list[str] = Field(default_factory=list)
    requires: list[Feature] = Field(default_factory=list)
    topology: Topology = Field(default_factory=Topology)
    external: list[ExternalSpec] = Field(default_factory=list)
    probe: ProbeSpec = Field(
        default_factory=ProbeSpec, description="Default probe of every step; a step's own keys win."
    )
    steps: list[Step] = Field(min_length=1)


def json_schema() -> str:
    """The published JSON Schema (docs/scenario.schema.json), stable text for diffing."""
    import json

    schema = ScenarioFile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "netpol-conformance scenario"
    return json.dumps(schema, indent=2, sort_keys=True)
