"""Binding a scenario to a cluster: real namespace names, pod IPs, the pod CIDR, and placeholders.

Policy strings may contain Jinja placeholders for values only known on a live cluster, e.g.
``cidr: "{{ ip('x/a') }}/32"``. Available: ``ip('ns/pod')`` or ``ip('@external')``, ``ns('x')``
(the real namespace name) and ``pod_cidr``. Offline evaluation binds namespaces to themselves and
gives pods addresses from the topology's pod CIDR in order of appearance.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
import jinja2.sandbox

from conformance.api.model import IPAddress
from conformance.api.netpol import IPNetwork
from conformance.api.types import PodKey


@dataclass(frozen=True)
class Binding:
    """Scenario names mapped to what exists on the cluster (or offline stand-ins)."""

    namespaces: Mapping[str, str]
    pod_ips: Mapping[PodKey, IPAddress]
    external_ips: Mapping[str, IPAddress]
    pod_cidr: IPNetwork

    def namespace(self, name: str) -> str:
        return self.namespaces.get(name, name)


class PlaceholderError(ValueError):
    """A placeholder could not be resolved; the message says which and why."""


_env = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


def render_value(value: Any, binding: Binding) -> Any:
    """``value`` with every placeholder string rendered; other values unchanged."""
    if isinstance(value, dict):
        return {k: render_value(v, binding) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, binding) for v in value]
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        return render_string(value, binding)
    return value


def render_string(text: str, binding: Binding) -> str:
    def ip(key: str) -> str:
        if key.startswith("@"):
            if key[1:] not in binding.external_ips:
                raise PlaceholderError(f"ip({key!r}): no external endpoint named {key[1:]!r}")
            return str(binding.external_ips[key[1:]])
        if key not in binding.pod_ips:
            known = ", ".join(sorted(binding.pod_ips)) or "none"
            raise PlaceholderError(f"ip({key!r}): no such pod at this step; pods: {known}")
        return str(binding.pod_ips[key])

    def ns(name: str) -> str:
        return binding.namespace(name)

    try:
        return _env.from_string(text).render(ip=ip, ns=ns, pod_cidr=str(binding.pod_cidr))
    except PlaceholderError:
        raise
    except jinja2.TemplateError as exc:
        raise PlaceholderError(f"placeholder in {text!r} failed: {exc}") from None


def offline_ip(pod_cidr: IPNetwork, index: int) -> IPAddress:
    """The ``index``-th offline pod address: .10, .11, ... within the pod CIDR."""
    addr = pod_cidr.network_address + 10 + index
    if addr not in pod_cidr:
        raise PlaceholderError(f"pod CIDR {pod_cidr} is too small for {index + 1} pods")
    return ipaddress.ip_address(addr)
