"""Loading scenario files and turning them into one cluster state per step.

Data flows one way: YAML file -> ``Scenario`` (validated structure plus verbatim policy objects) ->
``Scenario.bind(binding)`` -> one ``BoundStep`` per step (cluster state, typed policies, probe set,
declared expectation). Every problem is a ``ScenarioError`` naming file, line and key path.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, get_args, get_origin

import pydantic

from conformance.api.adminpol import parse_admin_policy
from conformance.api.fields import KeyPath, format_path
from conformance.api.kinds import ADMIN_KINDS
from conformance.api.model import ClusterState, IPAddress
from conformance.api.netpol import IPNetwork, parse_network_policy
from conformance.api.types import AddressFamily, PodKey
from conformance.errors import Location, ScenarioError, ScenarioErrors
from conformance.scenario.bind import (
    Binder,
    Binding,
    BoundStep,
    PlaceholderError,
    all_pod_specs,
    external_address,
    initial_pods,
    offline_ip,
    offline_nodes,
    placement,
    render_value,
)
from conformance.scenario.limits import MAX_BOUND_POLICIES, MAX_CELLS, MAX_PODS, MAX_STEPS
from conformance.scenario.schema import ScenarioFile, Step
from conformance.scenario.source import (
    Document,
    PolicySource,
    load_document,
    load_documents,
    read_source,
)

SCENARIO_SUFFIXES = (".yaml", ".yml")


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
    def step_count(self) -> int:
        """How many steps the scenario has (shards balance by it)."""
        return len(self.spec.steps)

    @property
    def policy_kinds(self) -> frozenset[str]:
        """Kinds of every policy object any step applies (``NetworkPolicy``, admin kinds)."""
        return frozenset(str(src.obj.get("kind")) for step in self.step_policies for src in step)

    @property
    def uses_host_network(self) -> bool:
        """Whether any pod of any step runs in its node's network namespace."""
        return any(spec.host_network for _, spec in all_pod_specs(self.spec))

    def offline_binding(self) -> Binding:
        """Namespaces named as written, pod IPs from the pod CIDRs in order of first appearance
        (one address per family of ``ip_families``, the first primary), pods placed by
        ``placement``, host-network pods at their node's addresses."""
        topo = self.spec.topology
        families = topo.ip_families
        nodes = offline_nodes(
            self.spec,
            {
                AddressFamily.IPV4: ipaddress.ip_network(topo.node_cidr, strict=False),
                AddressFamily.IPV6: ipaddress.ip_network(topo.node_cidr_v6, strict=False),
            },
            families,
        )
        pod_nodes = placement(self.spec)
        by_family = {
            family: self._pod_addresses(family, {n.name: n.address(family) for n in nodes})
            for family in families
        }
        ips: dict[PodKey, Any] = dict(by_family[families[0]])
        extra = {
            key: tuple(by_family[f][key] for f in families[1:] if key in by_family[f])
            for key in ips
        }
        names = set(topo.namespaces)
        for step in self.spec.steps:
            names.update(step.add_namespaces)
        external_ips: dict[str, Any] = {}
        external_extra: dict[str, tuple[Any, ...]] = {}
        for e in self.spec.external:
            addrs = [a for f in families if (a := external_address(e, f)) is not None]
            if addrs:
                external_ips[e.name] = addrs[0]
                external_extra[e.name] = tuple(addrs[1:])
        return Binding(
            namespaces={n: n for n in names},
            pod_ips=ips,
            external_ips=external_ips,
            pod_cidr=self._pod_cidr(families[0]),
            pod_nodes=pod_nodes,
            nodes=nodes,
            pod_extra_ips=extra,
            external_extra_ips=external_extra,
        )

    def _pod_cidr(self, family: AddressFamily) -> IPNetwork:
        topo = self.spec.topology
        text = topo.pod_cidr if family is AddressFamily.IPV4 else topo.pod_cidr_v6
        return ipaddress.ip_network(text, strict=False)

    def _pod_addresses(
        self, family: AddressFamily, node_ips: Mapping[str, IPAddress | None]
    ) -> dict[PodKey, IPAddress]:
        """Every pod's address of ``family``: fixed ``ip`` of that family, its node's for a
        host-network pod, else the next free one of the pod CIDR."""
        cidr = self._pod_cidr(family)
        pod_nodes = placement(self.spec)
        fixed = {
            k: p.ip
            for k, p in all_pod_specs(self.spec)
            if p.ip is not None and p.ip.version == family.version
        }
        taken = set(fixed.values())
        ips: dict[PodKey, IPAddress] = {}
        index = 0
        for key, spec in all_pod_specs(self.spec):
            if key in ips:
                continue
            if key in fixed:
                ips[key] = fixed[key]
                continue
            if spec.host_network:
                # A host-network pod shares its node's network namespace, hence its address.
                node_ip = node_ips.get(pod_nodes.get(key, ""))
                if node_ip is not None:  # an unknown node: the binder reports it
                    ips[key] = node_ip
                continue
            ip = _offline_ip(cidr, index, self.doc)
            while ip in taken:
                index += 1
                ip = _offline_ip(cidr, index, self.doc)
            ips[key] = ip
            index += 1
        return ips

    def bind(self, binding: Binding | None = None) -> list[BoundStep]:
        """Resolve every step's state against ``binding`` (offline when None)."""
        return Binder(self, binding or self.offline_binding()).bind_all()

    @cached_property
    def offline_steps(self) -> tuple[BoundStep, ...]:
        """Every step bound offline, computed once (loading, ``evaluate`` and runs share it)."""
        return tuple(self.bind())

    def initial_state(self, binding: Binding | None = None) -> ClusterState:
        """Namespaces, pods and external endpoints before the first step."""
        return Binder(self, binding or self.offline_binding()).initial


def _offline_ip(cidr: IPNetwork, index: int, doc: Document) -> IPAddress:
    try:
        return offline_ip(cidr, index)
    except PlaceholderError as exc:
        raise ScenarioError(str(exc), doc.locate(("topology", "pod_cidr"))) from None


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
        head = read_source(path)
    except ScenarioError:
        return True  # loading it reports what is wrong (too big, not UTF-8, not a regular file)
    return any(line.startswith("steps:") for line in head.splitlines())


def load_scenario(path: str | Path) -> Scenario:
    """Load and fully validate one scenario (bound offline once, so placeholders are checked too)."""
    file = str(path)
    return _from_document(load_document(read_source(Path(path), file), file), file)


def load_text(text: str, file: str = "<scenario>") -> Scenario:
    """A scenario from YAML text (``file`` names it in errors; policy files are looked up next
    to it), validated like ``load_scenario``."""
    return _from_document(load_document(text, file), file)


def load_data(data: dict[str, Any], file: str = "<scenario>") -> Scenario:
    """A scenario from already-parsed data (errors carry key paths but no lines), validated like
    ``load_scenario``; ``generate`` checks each step it draws with this, without YAML."""
    return _from_document(Document(file, copy.deepcopy(data), {}), file)


def _from_document(doc: Document, file: str) -> Scenario:
    spec = _validate_structure(doc)
    name = spec.name or Path(file).stem
    step_policies = tuple(
        tuple(_policy_sources(doc, Path(file).parent, i, step)) for i, step in enumerate(spec.steps)
    )
    _check_work(spec, step_policies, doc)
    scenario = Scenario(name, file, spec, doc, step_policies)
    # Binding surfaces every semantic error at load time. A sampled step probes its sample.
    cells = 0
    for s in scenario.offline_steps:
        population = len(s.sources) * len(s.targets) * len(s.grids)
        cells += population if s.sample is None else min(population, s.sample.cells)
    if cells > MAX_CELLS:
        raise ScenarioError(
            f"the steps probe {cells} cells (source x target x port/protocol/family, summed over "
            f"steps); at most {MAX_CELLS} are allowed (limit MAX_CELLS): narrow `probe`, or "
            "probe a sample of each step with `probe.sample`",
            doc.locate(("steps",)),
        )
    return scenario


def _check_work(
    spec: ScenarioFile, step_policies: tuple[tuple[PolicySource, ...], ...], doc: Document
) -> None:
    """The limits on pods, steps and policies, checked before binding does work in proportion."""
    pods = len(initial_pods(spec)) + sum(len(step.add_pods) for step in spec.steps)
    if pods > MAX_PODS:
        raise ScenarioError(
            f"the scenario has {pods} pods; at most {MAX_PODS} are allowed (limit MAX_PODS)",
            doc.locate(("topology",)),
        )
    if len(spec.steps) > MAX_STEPS:
        raise ScenarioError(
            f"the scenario has {len(spec.steps)} steps; at most {MAX_STEPS} are allowed "
            "(limit MAX_STEPS)",
            doc.locate(("steps",)),
        )
    applied = bound = 0
    for policies in step_policies:
        applied += len(policies)
        bound += applied  # an upper bound: each step validates every policy still applied
    if bound > MAX_BOUND_POLICIES:
        raise ScenarioError(
            f"the steps validate up to {bound} policy objects (each step validates every policy "
            f"applied so far); at most {MAX_BOUND_POLICIES} are allowed (limit "
            "MAX_BOUND_POLICIES): delete policies, or split the scenario",
            doc.locate(("steps",)),
        )


def load_scenarios(paths: Iterable[str | Path], tags: Iterable[str] = ()) -> list[Scenario]:
    """Every scenario under ``paths`` carrying one of ``tags`` (all when none are given).

    Every file is loaded; if any is invalid, one ``ScenarioErrors`` lists all their problems."""
    wanted = set(tags)
    scenarios: list[Scenario] = []
    errors: list[ScenarioError] = []
    for path in discover(paths):
        try:
            scenario = load_scenario(path)
        except ScenarioError as exc:
            errors.append(exc)
            continue
        if not wanted or wanted & set(scenario.tags):
            scenarios.append(scenario)
    if errors:
        raise ScenarioErrors.collect(errors)
    return scenarios


def _validate_structure(doc: Document) -> ScenarioFile:
    if not isinstance(doc.data, dict):
        raise ScenarioError("a scenario must be a mapping with at least `steps`", doc.locate(()))
    try:
        return ScenarioFile.model_validate(doc.data)
    except pydantic.ValidationError as exc:
        # The file cannot be bound, but its inline policies can still be checked on their own:
        # report their problems too, so one run shows every mistake (docs/scenarios.md).
        errors = _pydantic_errors(doc, exc) + _inline_policy_errors(doc)
        errors.sort(key=lambda e: e.location.line if e.location else 0)
        raise ScenarioErrors.collect(errors) from None


def _inline_policy_errors(doc: Document) -> list[ScenarioError]:
    """Problems of each inline policy object of ``doc``, validated alone (no binding: objects
    with placeholders, policy files and kinds this tool does not know are left to binding)."""
    steps = doc.data.get("steps") if isinstance(doc.data, dict) else None
    binding = Binding({}, {}, {}, ipaddress.ip_network("10.0.0.0/8"))
    errors: list[ScenarioError] = []
    for i, step in enumerate(steps if isinstance(steps, list) else ()):
        items = step.get("apply") if isinstance(step, dict) else None
        for j, item in enumerate(items if isinstance(items, list) else ()):
            if not isinstance(item, dict) or set(item) == {"file"}:
                continue
            src = doc.sub(("steps", i, "apply", j), item)
            try:
                obj = render_value(item, binding)
            except PlaceholderError:
                continue
            try:
                if item.get("kind") == "NetworkPolicy":
                    parse_network_policy(obj, src.locate)
                elif item.get("kind") in ADMIN_KINDS:
                    parse_admin_policy(obj, src.locate)
            except ScenarioError as exc:
                errors.append(exc)
    return errors


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
            target = _policy_file(ref, base, doc.locate((*path, "file")))
            try:
                text = read_source(target)
            except ScenarioError as exc:
                if exc.location is not None and exc.location.line:
                    raise  # a problem inside the policy file (not UTF-8): point into it
                raise ScenarioError(
                    f"policy file {ref!r}: {exc.message}", doc.locate((*path, "file"))
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


def _policy_file(ref: str, base: Path, where: Location) -> Path:
    """``ref`` resolved against the scenario's folder, which it (and any symlink) must stay in.

    Why: a scenario names policy files, and whoever runs it should not find that a scenario read
    ``../../etc/shadow`` into an error message or a cluster object.
    """
    if not ref or "\0" in ref or Path(ref).is_absolute():
        raise ScenarioError(
            f"policy file {ref!r} must be a relative path under the scenario's folder", where
        )
    target = base / ref
    try:
        inside = target.resolve().is_relative_to(base.resolve())
    except (OSError, RuntimeError, ValueError):  # a symlink loop, or a name the OS rejects
        inside = False
    if not inside:
        raise ScenarioError(
            f"policy file {ref!r} is outside the scenario's folder {base}; policy files must be "
            "in that folder or below it",
            where,
        )
    try:
        target.stat()
    except FileNotFoundError:
        raise ScenarioError(f"policy file {ref!r} not found (looked in {target})", where) from None
    except OSError as exc:
        raise ScenarioError(f"cannot read policy file {ref!r}: {exc.strerror}", where) from None
    return target


__all__ = [
    "Scenario",
    "discover",
    "format_path",
    "load_data",
    "load_scenario",
    "load_scenarios",
    "load_text",
]
