"""Binding a scenario to a cluster: real namespace names, pod IPs, the pod CIDR, placeholders, and
the walk over the steps that turns each into a ``BoundStep`` (cluster state, typed policies, probe
set, declared expectation).

Policy strings may contain Jinja placeholders for values only known on a live cluster, e.g.
``cidr: "{{ ip('x/a') }}/32"``. Available: ``ip('ns/pod')`` or ``ip('@external')``, ``ns('x')``
(the real namespace name) and ``pod_cidr``. Offline evaluation binds namespaces to themselves,
gives pods addresses from the topology's pod CIDR in order of appearance, places them on the
topology's nodes (``placement``) and gives host-network pods their node's address.

A ``Binder`` binds steps one at a time, in order, so a runner can bind each step once against the
addresses the cluster has given by then.
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import jinja2
import jinja2.nodes

from conformance.api.adminpol import AdminPolicy, parse_admin_policy
from conformance.api.fields import (
    Field,
    KeyPath,
    Locator,
    dns1123_label_problem,
    dns1123_subdomain_problem,
    port_name_problem,
)
from conformance.api.kinds import ADMIN_KINDS, POLICY_KINDS
from conformance.api.model import (
    ClusterState,
    ContainerPort,
    ExternalHost,
    IPAddress,
    Namespace,
    Node,
    Pod,
    frozen_labels,
)
from conformance.api.netpol import IPNetwork, NetworkPolicy, parse_network_policy
from conformance.api.selectors import parse_label_map
from conformance.api.types import AddressFamily, Grid, L4Protocol, PodKey, TargetKey
from conformance.errors import ScenarioError, ScenarioErrors
from conformance.scenario.limits import MAX_PLACEHOLDER_NESTING, MAX_PLACEHOLDER_OUTPUT
from conformance.scenario.schema import (
    Expectation,
    ExternalSpec,
    NamespaceSpec,
    PodSpec,
    PortSpec,
    ProbeSpec,
    SampleSpec,
    ScenarioFile,
    Step,
)
from conformance.scenario.source import PolicySource

if TYPE_CHECKING:
    from conformance.scenario.load import Scenario


@dataclass(frozen=True)
class Binding:
    """Scenario names mapped to what exists on the cluster (or offline stand-ins)."""

    namespaces: Mapping[str, str]
    pod_ips: Mapping[PodKey, IPAddress]
    external_ips: Mapping[str, IPAddress]
    pod_cidr: IPNetwork
    pod_nodes: Mapping[PodKey, str] = field(default_factory=lambda: MappingProxyType({}))
    """Node each pod runs on (scenario names offline; the real node on a live cluster)."""
    nodes: tuple[Node, ...] = ()
    """The nodes of the cluster state: the topology's offline, the real ones live."""
    pod_extra_ips: Mapping[PodKey, tuple[IPAddress, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Each pod's addresses of the other families (dual-stack), after ``pod_ips``."""
    external_extra_ips: Mapping[str, tuple[IPAddress, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def namespace(self, name: str) -> str:
        return self.namespaces.get(name, name)


class PlaceholderError(ValueError):
    """A placeholder could not be resolved; the message says which and why.

    ``path`` is the key path of the string, relative to the value ``render_value`` was given."""

    def __init__(self, message: str, path: KeyPath = ()) -> None:
        super().__init__(message)
        self.path = path


# Placeholders are parsed with Jinja's parser but never run by Jinja: ``_Placeholders`` evaluates
# only the documented forms, so no placeholder can loop, multiply strings or call anything else,
# and each string's work and output are bounded by its own length (plus MAX_PLACEHOLDER_OUTPUT).
_parser = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)

ACCEPTED_PLACEHOLDERS = (
    "ip('ns/pod'), ip('@external'), ip('ns/pod', 'IPv6'), ns('name') and pod_cidr, alone, joined "
    "with '~' or in "
    "`A if X in Y else B` (e.g. {{ '128' if ':' in ip('x/a') else '32' }})"
)


def render_value(value: Any, binding: Binding, path: KeyPath = ()) -> Any:
    """``value`` with every placeholder string rendered; other values unchanged."""
    if isinstance(value, dict):
        return {k: render_value(v, binding, (*path, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, binding, (*path, i)) for i, v in enumerate(value)]
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        try:
            return render_string(value, binding)
        except PlaceholderError as exc:
            raise PlaceholderError(str(exc), (*path, *exc.path)) from None
    return value


def render_string(text: str, binding: Binding) -> str:
    """``text`` with its placeholders resolved against ``binding`` (see ``ACCEPTED_PLACEHOLDERS``)."""
    out = "".join(_Placeholders(text, binding).pieces(_parse(text)))
    if len(out) > MAX_PLACEHOLDER_OUTPUT:
        raise PlaceholderError(
            f"placeholders in {_snippet(text)} resolve to {len(out)} characters; at most "
            f"{MAX_PLACEHOLDER_OUTPUT} are allowed (limit MAX_PLACEHOLDER_OUTPUT)"
        )
    return out


@functools.lru_cache(maxsize=512)
def _parse(text: str) -> jinja2.nodes.Template:
    depth = deepest = 0
    for ch in text:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth = max(0, depth - 1)
    if deepest > MAX_PLACEHOLDER_NESTING + 2:  # '{{' itself nests two braces
        raise PlaceholderError(
            f"placeholder in {_snippet(text)} nests brackets {deepest - 2} deep; at most "
            f"{MAX_PLACEHOLDER_NESTING} are allowed (limit MAX_PLACEHOLDER_NESTING)"
        )
    try:
        return _parser.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise PlaceholderError(
            f"placeholder in {_snippet(text)} is not valid: {exc.message}; accepted: "
            f"{ACCEPTED_PLACEHOLDERS}"
        ) from None
    except RecursionError:
        raise PlaceholderError(
            f"placeholder in {_snippet(text)} is nested too deeply; accepted: {ACCEPTED_PLACEHOLDERS}"
        ) from None


def _snippet(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


class _Placeholders:
    """Evaluates the parsed template of one string; anything but the documented forms is refused."""

    def __init__(self, text: str, binding: Binding) -> None:
        self.text = text
        self.binding = binding

    def pieces(self, template: jinja2.nodes.Template) -> Iterator[str]:
        for node in template.body:
            if not isinstance(node, jinja2.nodes.Output):
                raise PlaceholderError(
                    f"{_snippet(self.text)}: statements ({{% ... %}}) are not supported; "
                    f"placeholders are {ACCEPTED_PLACEHOLDERS}"
                )
            for part in node.nodes:
                if isinstance(part, jinja2.nodes.TemplateData):
                    yield part.data
                else:
                    yield self.string(part)

    def unsupported(self, node: jinja2.nodes.Node) -> PlaceholderError:
        return PlaceholderError(
            f"{_snippet(self.text)}: {type(node).__name__.lower()} expressions are not supported "
            f"in placeholders; accepted: {ACCEPTED_PLACEHOLDERS}"
        )

    def string(self, node: jinja2.nodes.Node) -> str:
        value = self.value(node)
        if not isinstance(value, str):
            raise self.unsupported(node)
        return value

    def value(self, node: jinja2.nodes.Node) -> str | bool:
        if isinstance(node, jinja2.nodes.Const) and isinstance(node.value, str):
            return node.value
        if isinstance(node, jinja2.nodes.Name) and node.name == "pod_cidr":
            return str(self.binding.pod_cidr)
        if isinstance(node, jinja2.nodes.Call):
            return self.call(node)
        if isinstance(node, jinja2.nodes.Concat):
            out = "".join(self.string(n) for n in node.nodes)
            if len(out) > MAX_PLACEHOLDER_OUTPUT:
                raise PlaceholderError(
                    f"{_snippet(self.text)} builds a string longer than {MAX_PLACEHOLDER_OUTPUT} "
                    "characters (limit MAX_PLACEHOLDER_OUTPUT)"
                )
            return out
        if isinstance(node, jinja2.nodes.CondExpr) and node.expr2 is not None:
            return self.value(node.expr1) if self.value(node.test) else self.value(node.expr2)
        if isinstance(node, jinja2.nodes.Compare) and len(node.ops) == 1:
            op = node.ops[0]
            left, right = self.string(node.expr), self.string(op.expr)
            if op.op == "in":
                return left in right
            if op.op == "notin":
                return left not in right
            if op.op == "eq":
                return left == right
            if op.op == "ne":
                return left != right
        if isinstance(node, jinja2.nodes.Const):
            raise PlaceholderError(
                f"{_snippet(self.text)}: {node.value!r} is not a quoted string; accepted: "
                f"{ACCEPTED_PLACEHOLDERS}"
            )
        if isinstance(node, jinja2.nodes.Name):
            raise PlaceholderError(
                f"{_snippet(self.text)}: {node.name!r} is not a placeholder; accepted: "
                f"{ACCEPTED_PLACEHOLDERS}"
            )
        raise self.unsupported(node)

    def call(self, node: jinja2.nodes.Call) -> str:
        fn = node.node.name if isinstance(node.node, jinja2.nodes.Name) else None
        if fn not in ("ip", "ns"):
            raise PlaceholderError(
                f"{_snippet(self.text)}: only ip() and ns() can be called; accepted: "
                f"{ACCEPTED_PLACEHOLDERS}"
            )
        most = 2 if fn == "ip" else 1
        if not 1 <= len(node.args) <= most or node.kwargs or node.dyn_args or node.dyn_kwargs:
            raise PlaceholderError(
                f"{_snippet(self.text)}: {fn}() takes "
                + (
                    "a quoted key and optionally a family, e.g. ip('x/a'), ip('@external') or "
                    "ip('x/a', 'IPv6')"
                    if fn == "ip"
                    else "exactly one quoted string, e.g. ns('x')"
                )
            )
        args = []
        for arg_node in node.args:
            arg = (
                arg_node.value if isinstance(arg_node, jinja2.nodes.Const) else self.value(arg_node)
            )
            if not isinstance(arg, str):
                raise PlaceholderError(
                    f"{_snippet(self.text)}: {fn}() takes quoted strings, e.g. "
                    + ("ip('x/a')" if fn == "ip" else "ns('x')")
                )
            args.append(arg)
        if fn == "ns":
            return self.binding.namespace(args[0])
        return self.ip(args[0], args[1] if len(args) > 1 else None)

    def ip(self, key: str, family: str | None = None) -> str:
        binding = self.binding
        if key.startswith("@"):
            if key[1:] not in binding.external_ips:
                known = ", ".join(f"@{e}" for e in sorted(binding.external_ips)) or "none"
                raise PlaceholderError(
                    f"ip({key!r}): no external endpoint named {key[1:]!r}; endpoints: {known}"
                )
            addrs = (binding.external_ips[key[1:]], *binding.external_extra_ips.get(key[1:], ()))
        else:
            if key not in binding.pod_ips:
                known = ", ".join(sorted(binding.pod_ips)) or "none"
                raise PlaceholderError(f"ip({key!r}): no such pod at this step; pods: {known}")
            addrs = (binding.pod_ips[key], *binding.pod_extra_ips.get(key, ()))
        if family is None:
            return str(addrs[0])
        if family not in ("IPv4", "IPv6"):
            raise PlaceholderError(f"ip({key!r}, {family!r}): the family is 'IPv4' or 'IPv6'")
        found = next((a for a in addrs if a.version == (4 if family == "IPv4" else 6)), None)
        if found is None:
            raise PlaceholderError(f"ip({key!r}, {family!r}): it has no {family} address")
        return str(found)


def offline_ip(pod_cidr: IPNetwork, index: int) -> IPAddress:
    """The ``index``-th offline pod address: .10, .11, ... within the pod CIDR."""
    offset = 10 + index
    if offset >= pod_cidr.num_addresses:
        raise PlaceholderError(
            f"pod CIDR {pod_cidr} is too small: offline evaluation gives pods addresses from its "
            f"11th address on, and pod {index + 1} does not fit; use a shorter prefix"
        )
    return ipaddress.ip_address(int(pod_cidr.network_address) + offset)


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
    grids: tuple[Grid, ...]
    """Every probed (port, protocol, family), families first."""
    expect: Expectation | None
    locate: Locator
    """Location of a key path relative to this step (``("expect", "rules", 0)``)."""
    sample: SampleSpec | None = None
    """Probe a sample of the step's cells (``probe.sample``); None: every cell."""


def pod_key(spec: PodSpec) -> PodKey:
    if "/" in spec.name:
        return spec.name
    return f"{spec.namespace}/{spec.name}"


def all_pod_specs(spec: ScenarioFile) -> Iterable[tuple[PodKey, PodSpec]]:
    """Every pod the scenario ever creates, topology first, then each step's ``add_pods``."""
    for pod in initial_pods(spec):
        yield pod_key(pod), pod
    for step in spec.steps:
        for pod in step.add_pods:
            yield pod_key(pod), pod


def placement(spec: ScenarioFile) -> dict[PodKey, str]:
    """Node of every pod: its ``node`` if set, else spread over the topology's nodes in order.

    The i-th pod without ``node`` (counting in order of first appearance) goes on node i mod N,
    so the default x/y/z topology on two nodes has x/a, x/c, y/b, z/a, z/c on node-1 and the
    others on node-2: every namespace has a same-node and a cross-node pair.
    """
    nodes = list(spec.topology.nodes)
    out: dict[PodKey, str] = {}
    spread = 0
    for key, pod in all_pod_specs(spec):
        if key in out:
            continue
        if pod.node is not None:
            out[key] = pod.node
        elif nodes:
            out[key] = nodes[spread % len(nodes)]
            spread += 1
    return out


def offline_nodes(
    spec: ScenarioFile,
    node_cidrs: Mapping[AddressFamily, IPNetwork],
    families: Sequence[AddressFamily] = (AddressFamily.IPV4,),
) -> tuple[Node, ...]:
    """The topology's nodes with addresses .2, .3, ... of each family's node CIDR (the first
    family's primary)."""
    out = []
    for i, (name, node) in enumerate(spec.topology.nodes.items()):
        addrs = []
        for family in families:
            cidr = node_cidrs[family]
            addr = cidr.network_address + 2 + i
            if addr not in cidr:
                raise PlaceholderError(f"node CIDR {cidr} is too small for {i + 1} nodes")
            addrs.append(ipaddress.ip_address(addr))
        out.append(Node(name, frozen_labels(node.labels), addrs[0], tuple(addrs[1:])))
    return tuple(out)


DOCUMENTATION_V6 = ipaddress.IPv6Network("2001:db8::/96")
"""Where an external endpoint given only an IPv4 address gets its IPv6 one (RFC 3849 prefix)."""


def external_address(spec: ExternalSpec, family: AddressFamily) -> IPAddress | None:
    """An external endpoint's address of ``family``: its ``ip`` or ``ipv6``, or for IPv6 its
    IPv4 address in the low 32 bits of 2001:db8::/96; None when it has none of that family."""
    if spec.ip.version == family.version:
        return spec.ip
    if family is AddressFamily.IPV6:
        if spec.ipv6 is not None:
            return spec.ipv6
        return DOCUMENTATION_V6.network_address + int(spec.ip)
    return None


def initial_pods(spec: ScenarioFile) -> list[PodSpec]:
    if spec.topology.pods is not None:
        return spec.topology.pods
    return [
        PodSpec(name=f"{ns}/{pod}") for ns in spec.topology.namespaces for pod in ("a", "b", "c")
    ]


class Binder:
    """Walks the steps in order, applying each one's changes to a mutable copy of the state.

    ``bind_step`` binds the next step, optionally against a newer binding (a live runner learns
    pod addresses as it creates pods); ``bind_all`` binds every step and reports every problem.
    """

    def __init__(self, scenario: Scenario, binding: Binding) -> None:
        self.sc = scenario
        self.doc = scenario.doc
        self.binding = binding
        self.errors: list[ScenarioError] = []
        self.namespaces: dict[str, dict[str, str]] = {}
        self.pods: dict[PodKey, Pod] = {}
        self.policies: dict[tuple[str, str, str], PolicySource] = {}
        self.externals = tuple(
            ExternalHost(
                e.name,
                binding.external_ips.get(e.name, e.ip),
                _ports(e.ports),
                binding.external_extra_ips.get(e.name, ()),
            )
            for e in scenario.spec.external
        )
        self.node_names = list(scenario.spec.topology.nodes)
        self._topology()
        self._next = 0

    @property
    def initial(self) -> ClusterState:
        """The topology before the first step (what a runner deploys first)."""
        if self.errors:
            raise ScenarioErrors.collect(self.errors) if len(self.errors) > 1 else self.errors[0]
        return self._state()

    def fail(self, message: str, path: KeyPath) -> None:
        self.errors.append(ScenarioError(message, self.doc.locate(path)))

    def _raise_errors(self) -> None:
        if self.errors:
            errors, self.errors = self.errors, []
            raise ScenarioErrors.collect(errors) if len(errors) > 1 else errors[0]

    def _state(self) -> ClusterState:
        return ClusterState(
            tuple(Namespace(n, frozen_labels(lbl)) for n, lbl in self.namespaces.items()),
            tuple(self.pods.values()),
            self.externals,
            self.binding.nodes,
        )

    def bind_step(self, index: int, binding: Binding | None = None) -> BoundStep:
        """Bind step ``index`` (steps are bound in order, each once), against ``binding`` if given."""
        if index != self._next:
            raise ValueError(f"steps are bound in order: expected step {self._next}, got {index}")
        if binding is not None:
            self.binding = binding
        self._next += 1
        step = self._step(index, self.sc.spec.steps[index])
        self._raise_errors()
        return step

    def bind_all(self) -> list[BoundStep]:
        """Every step; all problems of all steps are raised together at the end."""
        steps = [self._step(i, step) for i, step in enumerate(self.sc.spec.steps)]
        self._next = len(steps)
        self._raise_errors()
        return steps

    def _topology(self) -> None:
        topo = self.sc.spec.topology
        if not topo.nodes:
            self.fail("a topology needs at least one node", ("topology", "nodes"))
        for name, node in topo.nodes.items():
            path: KeyPath = ("topology", "nodes", name)
            problem = dns1123_subdomain_problem(name)
            if problem:
                self.fail(f"node name {name!r} {problem}", path)
            self._labels(node.labels, (*path, "labels"))
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
            for family in topo.ip_families:
                if external_address(e, family) is None:
                    self.fail(
                        f"external endpoint {e.name!r} has no {family} address, but the "
                        f"topology's ip_families include {family}: give `ip` in {family}",
                        ("external", i, "ip"),
                    )

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
        if spec.node is not None and spec.node not in self.node_names:
            self.fail(
                f"pod {key} is placed on unknown node {spec.node!r}; nodes: "
                f"{', '.join(self.node_names) or 'none'} (topology.nodes)",
                (*path, "node"),
            )
            return
        ip = self.binding.pod_ips.get(key)
        if ip is None:
            self.fail(f"pod {key} has no IP in the binding", path)
            return
        self.pods[key] = Pod(
            ns,
            name,
            frozen_labels(labels),
            _ports(ports),
            ip,
            spec.host_network,
            self.binding.pod_nodes.get(key),
            self.binding.pod_extra_ips.get(key, ()),
        )

    def _step(self, index: int, step: Step) -> BoundStep:
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
            self.pods[key] = replace(pod, labels=frozen_labels(labels))
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
        state = self._state()
        sources, targets, pps = self._probe(state, step, base)
        sample = _merge_probe(self.sc.spec.probe, step.probe).sample
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
            sample,
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
                self.errors.append(ScenarioError(str(exc), src.doc.locate(exc.path)))
                continue
            policy: NetworkPolicy | AdminPolicy | None
            if src.kind == "NetworkPolicy":
                policy = self._network_policy(src, obj)
            elif src.kind in ADMIN_KINDS:
                policy = self._admin_policy(src, obj)
            else:
                accepted = ", ".join(POLICY_KINDS)
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
        if feature is not None and feature not in self.sc.spec.requires:
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
    ) -> tuple[tuple[PodKey, ...], tuple[TargetKey, ...], tuple[Grid, ...]]:
        probe = _merge_probe(self.sc.spec.probe, step.probe)
        sources = tuple(p.key for p in state.pods if _any_glob(p.key, probe.from_))
        # External clients are sources only when a `from` glob names them (`@...`): the default
        # and `*` mean pods, so scenarios written before outside clients keep their cells.
        client_globs = [g for g in probe.from_ or () if g.startswith("@")]
        sources += tuple(e.key for e in state.externals if _any_glob(e.key, client_globs))
        targets = tuple(
            [p.key for p in state.pods if _any_glob(p.key, probe.to)]
            + [e.key for e in state.externals if _any_glob(e.key, probe.to)]
        )
        for field_name, globs in (("from", probe.from_), ("to", probe.to)):
            for g in globs or ():
                # A literal `@name` that names no endpoint is a typo, not an empty selection.
                if (
                    g.startswith("@")
                    and not any(c in g for c in "*?[")
                    and g not in {e.key for e in state.externals}
                ):
                    known = ", ".join(e.key for e in state.externals) or "none"
                    self.fail(
                        f"probe.{field_name} names {g}, but there is no external endpoint "
                        f"{g[1:]!r}; external endpoints: {known}",
                        (*base, "probe"),
                    )
        served = {(p.port, p.protocol) for pod in state.pods for p in pod.ports}
        served |= {(p.port, p.protocol) for e in state.externals for p in e.ports}
        protocols = probe.protocols or sorted({proto for _, proto in served}, key=_proto_order)
        if probe.ports is not None:
            pps = {(port, proto) for port in probe.ports for proto in protocols}
        else:
            pps = {pp for pp in served if pp[1] in protocols}
        topo_families = self.sc.spec.topology.ip_families
        families = probe.families or topo_families
        for family in families:
            if family not in topo_families:
                self.fail(
                    f"probe.families names {family}, which is not in the topology's "
                    f"ip_families ({', '.join(topo_families)})",
                    (*base, "probe"),
                )
        if not sources:
            self.fail(
                f"probe.from {probe.from_} matches no pod or external endpoint", (*base, "probe")
            )
        if not targets:
            self.fail(f"probe.to {probe.to} matches no pod or external endpoint", (*base, "probe"))
        if not pps:
            self.fail("the probe selects no port and protocol", (*base, "probe"))
        ordered = sorted(pps, key=lambda pp: (pp[0], _proto_order(pp[1])))
        grids = tuple(
            Grid(port, proto, family)
            for family in topo_families
            if family in families
            for port, proto in ordered
        )
        return sources, targets, grids


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
