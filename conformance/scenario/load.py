"""Loading scenario files and turning them into one cluster state per step.

Data flows one way: YAML file -> ``Scenario`` (validated structure plus verbatim policy objects) ->
``Scenario.bind(binding)`` -> one ``BoundStep`` per step (cluster state, typed policies, probe set,
declared expectation). Every problem is a ``ScenarioError`` naming file, line and key path.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

import pydantic

from conformance.api.adminpol import ADMIN_KINDS, AdminPolicy, parse_admin_policy
from conformance.api.fields import (
    Field,
    KeyPath,
    Locator,
    dns1123_label_problem,
    format_path,
    port_name_problem,
)
from conformance.api.model import (
    ClusterState,
    ContainerPort,
    ExternalHost,
    Namespace,
    Pod,
    frozen_labels,
)
from conformance.api.netpol import IPNetwork, NetworkPolicy, parse_network_policy
from conformance.api.selectors import parse_label_map
from conformance.api.types import L4Protocol, PodKey, TargetKey
from conformance.errors import Location, ScenarioError, ScenarioErrors
from conformance.reference.truthtable import PortProtocol
from conformance.scenario.bind import Binding, PlaceholderError, offline_ip, render_value
from conformance.scenario.schema import (
    Expectation,
    NamespaceSpec,
    PodSpec,
    PortSpec,
    ProbeSpec,
    ScenarioFile,
    Step,
)
from conformance.scenario.source import Document, load_document, load_documents

SCENARIO_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class PolicySource:
    """A verbatim policy object and where it was written (for error locations)."""

    obj: dict[str, Any]
    doc: Document

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def ident(self) -> tuple[str, str, str]:
        """(kind, namespace, name); the namespace is "" for cluster-scoped admin policy kinds."""
        meta = self.obj.get("metadata") or {}
        namespace = "" if self.kind in ADMIN_KINDS else str(meta.get("namespace") or "")
        return (self.kind, namespace, str(meta.get("name") or ""))


@dataclass(frozen=True)
class BoundStep:
    """One step with everything resolved against a binding."""

    index: int
    name: str
    spec: Step
    state: ClusterState
    policies: tuple[NetworkPolicy | AdminPolicy, ...]
    objects: tuple[dict[str, Any], ...]
    sources: tuple[PodKey, ...]
    targets: tuple[TargetKey, ...]
    port_protocols: tuple[PortProtocol, ...]
    expect: Expectation | None
    locate: Locator
    """Location of a key path relative to this step (``("expect", "rules", 0)``)."""


@dataclass(frozen=True)
class Scenario:
    name: str
    file: str
    spec: ScenarioFile
    doc: Document
    step_policies: tuple[tuple[PolicySource, ...], ...] = field(default=())

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(self.spec.tags)

    @property
    def policy_kinds(self) -> frozenset[str]:
        """Kinds of every policy object any step applies (``NetworkPolicy``, admin kinds)."""
        return frozenset(str(src.obj.get("kind")) for step in self.step_policies for src in step)

    def offline_binding(self) -> Binding:
        """Namespaces named as written, pod IPs from the pod CIDR in order of first appearance."""
        cidr = ipaddress.ip_network(self.spec.topology.pod_cidr, strict=False)
        ips: dict[PodKey, Any] = {}
        fixed = {k: p.ip for k, p in self._all_pod_specs() if p.ip is not None}
        taken = set(fixed.values())
        index = 0
        for key, _spec in self._all_pod_specs():
            if key in ips:
                continue
            if key in fixed:
                ips[key] = fixed[key]
                continue
            ip = offline_ip(cidr, index)
            while ip in taken:
                index += 1
                ip = offline_ip(cidr, index)
            ips[key] = ip
            index += 1
        names = set(self.spec.topology.namespaces)
        for step in self.spec.steps:
            names.update(step.add_namespaces)
        return Binding(
            namespaces={n: n for n in names},
            pod_ips=ips,
            external_ips={e.name: e.ip for e in self.spec.external},
            pod_cidr=cidr,
        )

    def _all_pod_specs(self) -> Iterator[tuple[PodKey, PodSpec]]:
        for spec in initial_pods(self.spec):
            yield pod_key(spec), spec
        for step in self.spec.steps:
            for spec in step.add_pods:
                yield pod_key(spec), spec

    def bind(self, binding: Binding | None = None) -> list[BoundStep]:
        """Resolve every step's state against ``binding`` (offline when None)."""
        return _Binder(self, binding or self.offline_binding()).run()

    def initial_state(self, binding: Binding | None = None) -> ClusterState:
        """Namespaces, pods and external endpoints before the first step."""
        return _Binder(self, binding or self.offline_binding()).initial()


# --- loading --------------------------------------------------------------------------------


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Scenario files under ``paths`` (files as given; folders searched recursively, sorted)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.suffix in SCENARIO_SUFFIXES and is_scenario_file(p)
                )
            )
        elif path.exists():
            found.append(path)
        else:
            raise ScenarioError("no such file or folder", Location(str(path)))
    return found


def is_scenario_file(path: Path) -> bool:
    """Policy files referenced by scenarios live beside them; a scenario has a ``steps`` key."""
    try:
        head = path.read_text(encoding="utf-8")
    except OSError:
        return False
    return any(line.startswith("steps:") for line in head.splitlines())


def load_scenario(path: str | Path) -> Scenario:
    """Load and fully validate one scenario (bound offline once, so placeholders are checked too)."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError("no such file", Location(file)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read file: {exc}", Location(file)) from None
    doc = load_document(text, file)
    spec = _validate_structure(doc)
    name = spec.name or Path(file).stem
    step_policies = tuple(
        tuple(_policy_sources(doc, Path(file).parent, i, step)) for i, step in enumerate(spec.steps)
    )
    scenario = Scenario(name, file, spec, doc, step_policies)
    scenario.bind()  # surfaces every semantic error at load time
    return scenario


def _validate_structure(doc: Document) -> ScenarioFile:
    if not isinstance(doc.data, dict):
        raise ScenarioError("a scenario must be a mapping with at least `steps`", doc.locate(()))
    try:
        return ScenarioFile.model_validate(doc.data)
    except pydantic.ValidationError as exc:
        raise ScenarioErrors.collect(_pydantic_errors(doc, exc)) from None


def _pydantic_errors(doc: Document, exc: pydantic.ValidationError) -> list[ScenarioError]:
    errors: list[ScenarioError] = []
    seen: set[str] = set()
    for err in exc.errors():
        path = _data_path(doc.data, err["loc"], err["type"])
        if err["type"] == "extra_forbidden":
            accepted = _accepted_fields(path[:-1])
            message = f"unknown field {path[-1]!r}" + (
                f"; accepted: {accepted}" if accepted else ""
            )
        elif err["type"] == "missing":
            message = f"field {path[-1]!r} is required"
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
            if "input" in err and err["type"] not in ("model_type", "dict_type", "list_type"):
                message += f" (got {err['input']!r})"
        line = str(doc.locate(path)) + message
        if line not in seen:
            seen.add(line)
            errors.append(ScenarioError(message, doc.locate(path)))
    return errors


def _data_path(data: Any, loc: tuple[Any, ...], kind: str) -> KeyPath:
    """Map a pydantic error location onto the document's key path (dropping union tags)."""
    path: list[str | int] = []
    cur = data
    for i, el in enumerate(loc):
        last = i == len(loc) - 1
        if (isinstance(cur, dict) and el in cur) or (
            isinstance(cur, list) and isinstance(el, int) and 0 <= el < len(cur)
        ):
            path.append(el)
            cur = cur[el]
        elif last and kind == "missing":
            path.append(el)
        elif isinstance(cur, dict) and isinstance(el, str) and "[" not in el and el[:1].islower():
            path.append(el)
            cur = None
    return tuple(path)


def _accepted_fields(path: KeyPath) -> str:
    """Field names accepted at ``path`` of the scenario model, for "unknown field" messages."""
    model: Any = ScenarioFile
    for el in path:
        model = _strip_optional(model)
        origin = get_origin(model)
        if isinstance(el, int):
            if origin is not list:
                return ""
            model = get_args(model)[0]
        elif origin is dict:
            model = get_args(model)[1]
        elif isinstance(model, type) and issubclass(model, pydantic.BaseModel):
            fld = next((f for n, f in model.model_fields.items() if el in (n, f.alias)), None)
            if fld is None:
                return ""
            model = fld.annotation
        else:
            return ""
    model = _strip_optional(model)
    if isinstance(model, type) and issubclass(model, pydantic.BaseModel):
        return ", ".join(f.alias or n for n, f in model.model_fields.items())
    return ""


def _strip_optional(tp: Any) -> Any:
    args = [a for a in get_args(tp) if a is not type(None)]
    if get_origin(tp) not in (list, dict) and len(args) == 1 and type(None) in get_args(tp):
        return args[0]
    return tp


def _policy_sources(doc: Document, base: Path, index: int, step: Step) -> Iterator[PolicySource]:
    for j, item in enumerate(step.apply):
        path: KeyPath = ("steps", index, "apply", j)
        if set(item) == {"file"}:
            ref = item["file"]
            if not isinstance(ref, str):
                raise ScenarioError("expected a relative file path", doc.locate((*path, "file")))
            target = base / ref
            try:
                text = target.read_text(encoding="utf-8")
            except OSError:
                raise ScenarioError(
                    f"policy file {ref!r} not found (looked in {target})",
                    doc.locate((*path, "file")),
                ) from None
            docs = load_documents(text, str(target))
            if not docs:
                raise ScenarioError(f"policy file {ref!r} is empty", doc.locate((*path, "file")))
            for d in docs:
                if not isinstance(d.data, dict):
                    raise ScenarioError("expected a Kubernetes object (a mapping)", d.locate(()))
                yield PolicySource(d.data, d)
        else:
            yield PolicySource(item, doc.sub(path, item))


# --- binding: per-step state ------------------------------------------------------------------


def pod_key(spec: PodSpec) -> PodKey:
    if "/" in spec.name:
        return spec.name
    return f"{spec.namespace}/{spec.name}"


def initial_pods(spec: ScenarioFile) -> list[PodSpec]:
    if spec.topology.pods is not None:
        return spec.topology.pods
    return [
        PodSpec(name=f"{ns}/{pod}") for ns in spec.topology.namespaces for pod in ("a", "b", "c")
    ]


class _Binder:
    """Walks the steps, applying each one's changes to a mutable copy of the state."""

    def __init__(self, scenario: Scenario, binding: Binding) -> None:
        self.sc = scenario
        self.doc = scenario.doc
        self.binding = binding
        self.errors: list[ScenarioError] = []
        self.namespaces: dict[str, dict[str, str]] = {}
        self.pods: dict[PodKey, Pod] = {}
        self.policies: dict[tuple[str, str, str], PolicySource] = {}
        self.externals = tuple(
            ExternalHost(e.name, binding.external_ips.get(e.name, e.ip), _ports(e.ports))
            for e in scenario.spec.external
        )

    def fail(self, message: str, path: KeyPath) -> None:
        self.errors.append(ScenarioError(message, self.doc.locate(path)))

    def initial(self) -> ClusterState:
        """The topology before the first step (what a runner deploys first)."""
        self._topology()
        if self.errors:
            raise ScenarioErrors.collect(self.errors) if len(self.errors) > 1 else self.errors[0]
        return ClusterState(
            tuple(Namespace(n, frozen_labels(lbl)) for n, lbl in self.namespaces.items()),
            tuple(self.pods.values()),
            self.externals,
        )

    def run(self) -> list[BoundStep]:
        self._topology()
        steps = [self._step(i, step) for i, step in enumerate(self.sc.spec.steps)]
        if self.errors:
            raise ScenarioErrors.collect(self.errors) if len(self.errors) > 1 else self.errors[0]
        return [s for s in steps if s is not None]

    def _topology(self) -> None:
        topo = self.sc.spec.topology
        for name, ns in topo.namespaces.items():
            self._add_namespace(name, ns, ("topology", "namespaces", name))
        pods_path: KeyPath = ("topology", "pods")
        for i, spec in enumerate(initial_pods(self.sc.spec)):
            self._add_pod(spec, (*pods_path, i) if topo.pods is not None else ("topology",))
        seen_ext: set[str] = set()
        for i, e in enumerate(self.sc.spec.external):
            if e.name in seen_ext:
                self.fail(f"external endpoint {e.name!r} is defined twice", ("external", i, "name"))
            seen_ext.add(e.name)

    def _add_namespace(self, name: str, spec: NamespaceSpec, path: KeyPath) -> None:
        problem = dns1123_label_problem(name)
        if problem:
            self.fail(f"namespace name {name!r} {problem}", path)
        if name in self.namespaces:
            self.fail(f"namespace {name!r} already exists", path)
        self.namespaces[name] = self._labels(spec.labels, (*path, "labels"))

    def _labels(self, labels: Mapping[str, Any], path: KeyPath) -> dict[str, str]:
        f = Field(dict(labels), path, self.doc.locate, [])
        out = parse_label_map(f)
        self.errors.extend(f.errors)
        return out

    def _add_pod(self, spec: PodSpec, path: KeyPath) -> None:
        if "/" in spec.name:
            ns, _, name = spec.name.partition("/")
            if spec.namespace is not None and spec.namespace != ns:
                self.fail(f"pod {spec.name!r} also sets namespace {spec.namespace!r}", path)
        else:
            ns, name = spec.namespace or "", spec.name
            if not ns:
                self.fail(f"pod {spec.name!r} needs a namespace: write 'ns/{spec.name}'", path)
                return
        problem = dns1123_label_problem(name)
        if problem:
            self.fail(f"pod name {name!r} {problem}", (*path, "name"))
        if ns not in self.namespaces:
            self.fail(
                f"pod {ns}/{name} is in unknown namespace {ns!r}; namespaces: {', '.join(self.namespaces)}",
                path,
            )
        key = f"{ns}/{name}"
        if key in self.pods:
            self.fail(f"pod {key} already exists", path)
        labels = (
            self._labels(spec.labels, (*path, "labels"))
            if spec.labels is not None
            else {"pod": name}
        )
        ports = spec.ports if spec.ports is not None else self.sc.spec.topology.ports
        seen_names: set[tuple[str, L4Protocol]] = set()
        for i, p in enumerate(ports):
            if p.name is None:
                continue
            problem = port_name_problem(p.name)
            if problem:
                self.fail(problem, (*path, "ports", i, "name"))
            if (p.name, p.protocol) in seen_names:
                self.fail(
                    f"pod {key} names two {p.protocol} ports {p.name!r}",
                    (*path, "ports", i, "name"),
                )
            seen_names.add((p.name, p.protocol))
        ip = self.binding.pod_ips.get(key)
        if ip is None:
            self.fail(f"pod {key} has no IP in the binding", path)
            return
        self.pods[key] = Pod(ns, name, frozen_labels(labels), _ports(ports), ip, spec.host_network)

    def _step(self, index: int, step: Step) -> BoundStep | None:
        base: KeyPath = ("steps", index)
        for name, ns_spec in step.add_namespaces.items():
            self._add_namespace(name, ns_spec, (*base, "add_namespaces", name))
        for i, spec in enumerate(step.add_pods):
            self._add_pod(spec, (*base, "add_pods", i))
        for i, key in enumerate(step.remove_pods):
            if self.pods.pop(key, None) is None:
                self.fail(f"no pod {key!r} to remove", (*base, "remove_pods", i))
        for ns, patch in step.label_namespaces.items():
            if ns not in self.namespaces:
                self.fail(f"no namespace {ns!r} to relabel", (*base, "label_namespaces", ns))
                continue
            self.namespaces[ns] = self._patch(
                self.namespaces[ns], patch, (*base, "label_namespaces", ns)
            )
        for key, patch in step.label_pods.items():
            pod = self.pods.get(key)
            if pod is None:
                self.fail(f"no pod {key!r} to relabel", (*base, "label_pods", key))
                continue
            labels = self._patch(dict(pod.labels), patch, (*base, "label_pods", key))
            self.pods[key] = Pod(
                pod.namespace, pod.name, frozen_labels(labels), pod.ports, pod.ip, pod.host_network
            )
        for i, ref in enumerate(step.delete):
            ident = _parse_ref(ref)
            if ident is None:
                self.fail(f"{ref!r} is not 'ns/name' or 'Kind/ns/name'", (*base, "delete", i))
            elif self.policies.pop(ident, None) is None:
                self.fail(
                    f"no {ident[0]} {'/'.join(ident[1:])} to delete at this step",
                    (*base, "delete", i),
                )
        for src in self.sc.step_policies[index]:
            self.policies[src.ident] = src
        policies, objects = self._policies()
        state = ClusterState(
            tuple(Namespace(n, frozen_labels(lbl)) for n, lbl in self.namespaces.items()),
            tuple(self.pods.values()),
            self.externals,
        )
        sources, targets, pps = self._probe(state, step, base)
        return BoundStep(
            index,
            step.name,
            step,
            state,
            policies,
            objects,
            sources,
            targets,
            pps,
            step.expect,
            self.doc.sub(base, step).locate,
        )

    def _patch(
        self, labels: dict[str, str], patch: Mapping[str, str | None], path: KeyPath
    ) -> dict[str, str]:
        # Merge-patch semantics, as `kubectl label` and JSON merge patch: null removes a label.
        out = dict(labels)
        out.update(self._labels({k: v for k, v in patch.items() if v is not None}, path))
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
        return out

    def _policies(
        self,
    ) -> tuple[tuple[NetworkPolicy | AdminPolicy, ...], tuple[dict[str, Any], ...]]:
        """Parse every live policy object by kind: NetworkPolicy or one of ``ADMIN_KINDS``."""
        policies: list[NetworkPolicy | AdminPolicy] = []
        objects: list[dict[str, Any]] = []
        for src in self.policies.values():
            try:
                obj = render_value(src.obj, self.binding)
            except PlaceholderError as exc:
                self.errors.append(ScenarioError(str(exc), src.doc.locate(())))
                continue
            policy: NetworkPolicy | AdminPolicy | None
            if src.kind == "NetworkPolicy":
                policy = self._network_policy(src, obj)
            elif src.kind in ADMIN_KINDS:
                policy = self._admin_policy(src, obj)
            else:
                accepted = ", ".join(["NetworkPolicy", *ADMIN_KINDS])
                self.errors.append(
                    ScenarioError(
                        f"kind {src.kind or '(missing)'!r} is not supported; accepted: {accepted}",
                        src.doc.locate(("kind",)),
                    )
                )
                continue
            if policy is not None:
                policies.append(policy)
                objects.append(obj)
        return tuple(policies), tuple(objects)

    def _network_policy(self, src: PolicySource, obj: Any) -> NetworkPolicy | None:
        try:
            policy = parse_network_policy(obj, src.doc.locate)
        except ScenarioError as exc:
            self.errors.append(exc)
            return None
        if policy.namespace not in self.namespaces:
            self.errors.append(
                ScenarioError(
                    f"namespace {policy.namespace!r} does not exist; namespaces: {', '.join(self.namespaces)}",
                    src.doc.locate(("metadata", "namespace")),
                )
            )
            return None
        return policy

    def _admin_policy(self, src: PolicySource, obj: Any) -> AdminPolicy | None:
        try:
            policy = parse_admin_policy(obj, src.doc.locate)
        except ScenarioError as exc:
            self.errors.append(exc)
            return None
        # A runner skips a scenario whose required features a cluster lacks, so a scenario that
        # applies an admin kind must say so in `requires:` (the kind's API may not be served).
        feature = policy.api.feature
        if feature not in self.sc.spec.requires:
            self.errors.append(
                ScenarioError(
                    f"{policy.kind} needs the cluster to serve {policy.api.api_version}: add "
                    f"{feature} to the scenario's `requires:`",
                    src.doc.locate(("kind",)),
                )
            )
            return None
        return policy

    def _probe(
        self, state: ClusterState, step: Step, base: KeyPath
    ) -> tuple[tuple[PodKey, ...], tuple[TargetKey, ...], tuple[PortProtocol, ...]]:
        probe = _merge_probe(self.sc.spec.probe, step.probe)
        sources = tuple(p.key for p in state.pods if _any_glob(p.key, probe.from_))
        targets = tuple(
            [p.key for p in state.pods if _any_glob(p.key, probe.to)]
            + [e.key for e in state.externals if _any_glob(e.key, probe.to)]
        )
        served = {(p.port, p.protocol) for pod in state.pods for p in pod.ports}
        served |= {(p.port, p.protocol) for e in state.externals for p in e.ports}
        protocols = probe.protocols or sorted({proto for _, proto in served}, key=_proto_order)
        if probe.ports is not None:
            pps = {(port, proto) for port in probe.ports for proto in protocols}
        else:
            pps = {pp for pp in served if pp[1] in protocols}
        if not sources:
            self.fail(f"probe.from {probe.from_} matches no pod", (*base, "probe"))
        if not targets:
            self.fail(f"probe.to {probe.to} matches no pod or external endpoint", (*base, "probe"))
        if not pps:
            self.fail("the probe selects no port and protocol", (*base, "probe"))
        return sources, targets, tuple(sorted(pps, key=lambda pp: (pp[0], _proto_order(pp[1]))))


def _merge_probe(default: ProbeSpec, own: ProbeSpec) -> ProbeSpec:
    """The step's probe, with keys it leaves unset taken from the scenario-level ``probe``."""
    return ProbeSpec.model_validate(
        {**default.model_dump(exclude_none=True), **own.model_dump(exclude_none=True)}
    )


def _proto_order(p: L4Protocol) -> int:
    return list(L4Protocol).index(p)


def _any_glob(key: str, globs: list[str] | None) -> bool:
    return globs is None or any(fnmatch.fnmatchcase(key, g) for g in globs)


def _ports(specs: Iterable[PortSpec]) -> tuple[ContainerPort, ...]:
    return tuple(ContainerPort(p.port, p.protocol, p.name) for p in specs)


def _parse_ref(ref: str) -> tuple[str, str, str] | None:
    """``ns/name`` (a NetworkPolicy), ``Kind/ns/name`` or ``Kind/name`` (cluster-scoped)."""
    parts = ref.split("/")
    if len(parts) == 2 and parts[0][:1].islower():
        return ("NetworkPolicy", parts[0], parts[1])
    if len(parts) == 3 and parts[0][:1].isupper():
        return (parts[0], parts[1], parts[2])
    if len(parts) == 2 and parts[0][:1].isupper():
        return (parts[0], "", parts[1])
    return None


__all__ = [
    "BoundStep",
    "IPNetwork",
    "Scenario",
    "discover",
    "format_path",
    "load_scenario",
]
