"""Decoding, defaulting and validation of objects the way kube-apiserver does it.

Why: the runner must see the same 400/422 answers from the embedded cluster as from a real one,
and enforcement must work on objects defaulted as a real server stores them (``protocol: TCP``,
``policyTypes``). Messages follow apimachinery's ``field.Error`` wording.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conformance.api.names import (
    DNS1123_LABEL_FMT,
    DNS1123_LABEL_MAX_LENGTH,
    DNS1123_SUBDOMAIN_FMT,
    DNS1123_SUBDOMAIN_MAX_LENGTH,
    LABEL_VALUE_FMT,
    LABEL_VALUE_MAX_LENGTH,
    PORT_NAME_MAX_LENGTH,
    QUALIFIED_NAME_FMT,
    QUALIFIED_NAME_MAX_LENGTH,
    Broken,
    dns1123_label_violations,
    dns1123_subdomain_violations,
    label_value_violations,
    port_name_violations,
    qualified_name_violations,
)


def regex_error(message: str, fmt: str, *examples: str) -> str:
    """apimachinery ``RegexError``: the rule in words, examples and the regex it is checked with."""
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{fmt}')"


LABEL_MSG = regex_error(
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character",
    LABEL_VALUE_FMT,
    "MyValue",
    "my_value",
    "12345",
)
NAME_PART_MSG = regex_error(
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character",
    QUALIFIED_NAME_FMT,
    "MyName",
    "my.name",
    "123-abc",
)
SUBDOMAIN_MSG = regex_error(
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character",
    DNS1123_SUBDOMAIN_FMT,
    "example.com",
)
LABEL_NAME_MSG = regex_error(
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character",
    DNS1123_LABEL_FMT,
    "my-name",
    "123-abc",
)
CIDR_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
PORT_MSG = "must be between 1 and 65535, inclusive"


@dataclass(frozen=True)
class Cause:
    """One ``field.Error``: reason (FieldValueInvalid...), field path and detail text."""

    reason: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class Invalid(Exception):
    """The object is invalid (HTTP 422); carries every cause found."""

    def __init__(self, causes: list[Cause]) -> None:
        super().__init__("; ".join(str(c) for c in causes))
        self.causes = causes


class BadRequest(Exception):
    """The body cannot be decoded into the kind (HTTP 400)."""


def _value(v: Any) -> str:
    return (
        json.dumps(v) if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)
    )


def invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueInvalid", path, f"Invalid value: {_value(value)}: {detail}")


def required(path: str, detail: str = "") -> Cause:
    return Cause("FieldValueRequired", path, f"Required value{': ' + detail if detail else ''}")


def forbidden(path: str, detail: str) -> Cause:
    return Cause("FieldValueForbidden", path, f"Forbidden: {detail}")


def not_supported(path: str, value: Any, allowed: list[str]) -> Cause:
    supported = ", ".join(json.dumps(a) for a in allowed)
    return Cause(
        "FieldValueNotSupported",
        path,
        f"Unsupported value: {_value(value)}: supported values: {supported}",
    )


def _too_long(limit: int) -> str:
    return f"must be no more than {limit} characters"


# What the real API server says for each rule a name breaks, per apimachinery check.
_QUALIFIED_NAME_MSGS = {
    Broken.PARTS: "a qualified name "
    + NAME_PART_MSG.removeprefix("name part ")
    + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
    Broken.PREFIX_EMPTY: "prefix part must be non-empty",
    Broken.PREFIX_FORM: "prefix part " + SUBDOMAIN_MSG,
    Broken.NAME_EMPTY: "name part must be non-empty",
    Broken.NAME_TOO_LONG: "name part " + _too_long(QUALIFIED_NAME_MAX_LENGTH),
    Broken.NAME_FORM: NAME_PART_MSG,
}
_LABEL_VALUE_MSGS = {
    Broken.TOO_LONG: _too_long(LABEL_VALUE_MAX_LENGTH),
    Broken.FORM: LABEL_MSG,
}
_PORT_NAME_MSGS = {
    Broken.TOO_LONG: _too_long(PORT_NAME_MAX_LENGTH),
    Broken.CHARSET: "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
    Broken.NO_LETTER: "must contain at least one letter (a-z)",
    Broken.CONSECUTIVE_HYPHENS: "must not contain consecutive hyphens",
    Broken.EDGE_HYPHEN: "must not begin or end with a hyphen",
}
_DNS1123_LABEL_MSGS = {
    Broken.TOO_LONG: _too_long(DNS1123_LABEL_MAX_LENGTH),
    Broken.FORM: LABEL_NAME_MSG,
}
_DNS1123_SUBDOMAIN_MSGS = {
    Broken.TOO_LONG: _too_long(DNS1123_SUBDOMAIN_MAX_LENGTH),
    Broken.FORM: SUBDOMAIN_MSG,
}


def qualified_name_errors(name: str) -> list[str]:
    """apimachinery ``IsQualifiedName``."""
    return [_QUALIFIED_NAME_MSGS[b] for b in qualified_name_violations(name)]


def label_value_errors(value: str) -> list[str]:
    """apimachinery ``IsValidLabelValue``."""
    return [_LABEL_VALUE_MSGS[b] for b in label_value_violations(value)]


def port_name_errors(name: str) -> list[str]:
    """apimachinery ``IsValidPortName`` (IANA_SVC_NAME)."""
    return [_PORT_NAME_MSGS[b] for b in port_name_violations(name)]


def labels_errors(labels: Mapping[str, Any], path: str) -> list[Cause]:
    out = []
    for key, value in labels.items():
        out += [invalid(path, key, m) for m in qualified_name_errors(key)]
        out += [invalid(path, value, m) for m in label_value_errors(str(value))]
    return out


def selector_errors(sel: Mapping[str, Any] | None, path: str) -> list[Cause]:
    """apimachinery ``ValidateLabelSelector``."""
    if sel is None:
        return []
    out = labels_errors(sel.get("matchLabels") or {}, f"{path}.matchLabels")
    for i, expr in enumerate(sel.get("matchExpressions") or []):
        epath = f"{path}.matchExpressions[{i}]"
        op, values = expr.get("operator", ""), expr.get("values") or []
        if op in ("In", "NotIn"):
            if not values:
                out.append(
                    required(
                        f"{epath}.values", "must be specified when `operator` is 'In' or 'NotIn'"
                    )
                )
        elif op in ("Exists", "DoesNotExist"):
            if values:
                out.append(
                    forbidden(
                        f"{epath}.values",
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    )
                )
        else:
            out.append(invalid(f"{epath}.operator", op, "not a valid selector operator"))
        key = expr.get("key", "")
        out += [invalid(f"{epath}.key", key, m) for m in qualified_name_errors(key)]
        for j, v in enumerate(values):
            out += [invalid(f"{epath}.values[{j}]", v, m) for m in label_value_errors(str(v))]
    return out


def metadata_errors(meta: Mapping[str, Any], dns_label: bool = False) -> list[Cause]:
    """``ValidateObjectMeta``: name rules, labels, annotations."""
    out = []
    name = meta.get("name") or ""
    if not name:
        out.append(required("metadata.name", "name or generateName is required"))
    elif dns_label:
        for b in dns1123_label_violations(name):
            out.append(invalid("metadata.name", name, _DNS1123_LABEL_MSGS[b]))
    else:
        for b in dns1123_subdomain_violations(name):
            out.append(invalid("metadata.name", name, _DNS1123_SUBDOMAIN_MSGS[b]))
    out += labels_errors(meta.get("labels") or {}, "metadata.labels")
    for key in meta.get("annotations") or {}:
        out += [invalid("metadata.annotations", key, m) for m in qualified_name_errors(key)]
    return out


# --- structural decoding (what Go's json decoder into the typed struct would reject) -------

_SELECTOR = {
    "matchLabels": ("map", str),
    "matchExpressions": ("list", {"key": str, "operator": str, "values": ("list", str)}),
}
_PEER = {
    "podSelector": _SELECTOR,
    "namespaceSelector": _SELECTOR,
    "ipBlock": {"cidr": str, "except": ("list", str)},
}
_PORT = {"protocol": str, "port": "intorstr", "endPort": int}
NETWORK_POLICY_SCHEMA: dict[str, Any] = {
    "podSelector": _SELECTOR,
    "ingress": ("list", {"from": ("list", _PEER), "ports": ("list", _PORT)}),
    "egress": ("list", {"to": ("list", _PEER), "ports": ("list", _PORT)}),
    "policyTypes": ("list", str),
}
_GO_TYPES = {str: "string", int: "int32", bool: "bool"}


def _json_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def decode(value: Any, schema: Any, path: str, unknown: list[str]) -> Any:
    """Check ``value`` against a tiny schema; ``null`` means absent; unknown fields are dropped."""
    if value is None:
        return None
    if schema == "intorstr":
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise BadRequest(
                f"json: cannot unmarshal {_json_kind(value)} into Go struct field {path} of type intstr.IntOrString"
            )
        return value
    if schema in (str, int, bool):
        ok = isinstance(value, schema) and not (schema is int and isinstance(value, bool))
        if not ok:
            raise BadRequest(
                f"json: cannot unmarshal {_json_kind(value)} into Go struct field {path} of type {_GO_TYPES[schema]}"
            )
        return value
    if isinstance(schema, tuple):
        kind, inner = schema
        if kind == "list":
            if not isinstance(value, list):
                raise BadRequest(
                    f"json: cannot unmarshal {_json_kind(value)} into Go struct field {path} of type []"
                )
            return [decode(v, inner, path, unknown) for v in value]
        if not isinstance(value, dict):
            raise BadRequest(
                f"json: cannot unmarshal {_json_kind(value)} into Go struct field {path} of type map"
            )
        return {k: decode(v, inner, path, unknown) for k, v in value.items()}
    if not isinstance(value, dict):
        raise BadRequest(
            f"json: cannot unmarshal {_json_kind(value)} into Go struct field {path} of type object"
        )
    out = {}
    for key, sub in value.items():
        if key not in schema:
            unknown.append(f"{path}.{key}")
            continue
        decoded = decode(sub, schema[key], f"{path}.{key}", unknown)
        if decoded is not None:
            out[key] = decoded
    return out


def check_shape(value: Any, schema: Any, path: str) -> None:
    """Like ``decode`` but only checks the types of known fields (unknown ones are left alone):
    what Go's json decoder into the typed struct rejects with HTTP 400 before any validation."""
    if value is None:
        return
    if isinstance(schema, dict) and isinstance(value, dict):
        for key, sub in schema.items():
            check_shape(value.get(key), sub, f"{path}.{key}")
        return
    if isinstance(schema, tuple) and isinstance(value, list | dict):
        kind, inner = schema
        if kind == "list" and isinstance(value, list):
            for item in value:
                check_shape(item, inner, path)
            return
        if kind == "map" and isinstance(value, dict):
            for item in value.values():
                check_shape(item, inner, path)
            return
    decode(value, schema, path, [])  # raises BadRequest with the Go-style message


OBJECT_META: dict[str, Any] = {
    **{
        f: str
        for f in (
            "name",
            "generateName",
            "namespace",
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "selfLink",
        )
    },
    "labels": ("map", str),
    "annotations": ("map", str),
    "finalizers": ("list", str),
    "generation": int,
    "deletionGracePeriodSeconds": int,
    "ownerReferences": ("list", {"apiVersion": str, "kind": str, "name": str, "uid": str}),
}
_CONTAINER = {
    "name": str,
    "image": str,
    "imagePullPolicy": str,
    "workingDir": str,
    "command": ("list", str),
    "args": ("list", str),
    "ports": (
        "list",
        {"containerPort": int, "hostPort": int, "name": str, "protocol": str, "hostIP": str},
    ),
    "env": ("list", {"name": str, "value": str}),
}
SPEC_SHAPES: dict[str, dict[str, Any]] = {
    "Pod": {
        "containers": ("list", _CONTAINER),
        "initContainers": ("list", _CONTAINER),
        "nodeName": str,
        "nodeSelector": ("map", str),
        "hostNetwork": bool,
        "restartPolicy": str,
        "terminationGracePeriodSeconds": int,
    },
    "Service": {
        "selector": ("map", str),
        "ports": (
            "list",
            {"name": str, "port": int, "targetPort": "intorstr", "protocol": str, "nodePort": int},
        ),
        "type": str,
        "clusterIP": str,
        "clusterIPs": ("list", str),
        "ipFamilies": ("list", str),
        "ipFamilyPolicy": str,
        "sessionAffinity": str,
    },
    "Namespace": {"finalizers": ("list", str)},
    "NetworkPolicy": NETWORK_POLICY_SCHEMA,
}


def check_object_shape(kind: str, obj: Mapping[str, Any]) -> None:
    """``BadRequest`` when a field of the object has the wrong JSON type (``metadata`` a string,
    ``metadata.name`` a number, ``labels`` a list, ``spec`` a list ...); kube-apiserver answers
    these with 400 before validating."""
    check_shape(obj.get("apiVersion"), str, f"{kind}.apiVersion")
    check_shape(obj.get("kind"), str, f"{kind}.kind")
    check_shape(obj.get("metadata"), OBJECT_META, f"{kind}.metadata")
    check_shape(obj.get("spec"), SPEC_SHAPES.get(kind, {}), f"{kind}.spec")
    check_shape(obj.get("status"), {}, f"{kind}.status")


# --- kinds --------------------------------------------------------------------------------


def default_network_policy(obj: dict[str, Any]) -> None:
    """``SetDefaults_NetworkPolicy``: protocol TCP on ports; policyTypes from the rules present."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("podSelector", {})
    for direction in ("ingress", "egress"):
        for rule in spec.get(direction) or []:
            for port in rule.get("ports") or []:
                port.setdefault("protocol", "TCP")
    if not spec.get("policyTypes"):
        types = ["Ingress"]
        if spec.get("egress"):
            types.append("Egress")
        spec["policyTypes"] = types


def _port_errors(port: Mapping[str, Any], path: str) -> list[Cause]:
    out = []
    proto = port.get("protocol")
    if proto is not None and proto not in ("TCP", "UDP", "SCTP"):
        out.append(not_supported(f"{path}.protocol", proto, ["SCTP", "TCP", "UDP"]))
    value, end = port.get("port"), port.get("endPort")
    if value is not None:
        if isinstance(value, int):
            if not 1 <= value <= 65535:
                out.append(invalid(f"{path}.port", value, PORT_MSG))
            if end is not None:
                if end < value:
                    out.append(
                        invalid(f"{path}.endPort", value, "must be greater than or equal to `port`")
                    )
                if not 1 <= end <= 65535:
                    out.append(invalid(f"{path}.endPort", end, PORT_MSG))
        else:
            if end is not None:
                out.append(
                    invalid(
                        f"{path}.endPort", end, "may not be specified when `port` is non-numeric"
                    )
                )
            out += [invalid(f"{path}.port", value, m) for m in port_name_errors(value)]
    elif end is not None:
        out.append(
            invalid(f"{path}.endPort", end, "may not be specified when `port` is not specified")
        )
    return out


def _parse_cidr(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if "/" not in text:
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _ipblock_errors(block: Mapping[str, Any], path: str) -> list[Cause]:
    cidr = block.get("cidr") or ""
    if not cidr:
        return [required(f"{path}.cidr")]
    net = _parse_cidr(cidr)
    if net is None:
        return [invalid(f"{path}.cidr", cidr, CIDR_MSG)]
    out = []
    for i, text in enumerate(block.get("except") or []):
        epath = f"{path}.except[{i}]"
        hole = _parse_cidr(text)
        if hole is None:
            out.append(invalid(epath, text, CIDR_MSG))
            continue
        if (
            hole.version != net.version
            or hole.network_address not in net
            or net.prefixlen >= hole.prefixlen
        ):
            out.append(invalid(epath, text, "must be a strict subset of `cidr`"))
    return out


def _peer_errors(peer: Mapping[str, Any], path: str) -> list[Cause]:
    out = []
    count = 0
    for key in ("podSelector", "namespaceSelector"):
        if peer.get(key) is not None:
            count += 1
            out += selector_errors(peer[key], f"{path}.{key}")
    if peer.get("ipBlock") is not None:
        count += 1
        out += _ipblock_errors(peer["ipBlock"], f"{path}.ipBlock")
    if count == 0:
        out.append(required(path, "must specify a peer"))
    elif count > 1 and peer.get("ipBlock") is not None:
        out.append(forbidden(path, "may not specify both ipBlock and another peer"))
    return out


def network_policy_errors(obj: Mapping[str, Any]) -> list[Cause]:
    """``ValidateNetworkPolicy`` on a defaulted object."""
    out = metadata_errors(obj.get("metadata") or {})
    spec = obj.get("spec") or {}
    out += selector_errors(spec.get("podSelector"), "spec.podSelector")
    for direction, peer_key in (("ingress", "from"), ("egress", "to")):
        for i, rule in enumerate(spec.get(direction) or []):
            rpath = f"spec.{direction}[{i}]"
            for j, port in enumerate(rule.get("ports") or []):
                out += _port_errors(port, f"{rpath}.ports[{j}]")
            for j, peer in enumerate(rule.get(peer_key) or []):
                out += _peer_errors(peer, f"{rpath}.{peer_key}[{j}]")
    types = spec.get("policyTypes") or []
    if len(types) > 2:
        out.append(invalid("spec.policyTypes", types, "may not specify more than two policyTypes"))
    else:
        for i, t in enumerate(types):
            if t not in ("Ingress", "Egress"):
                out.append(not_supported(f"spec.policyTypes[{i}]", t, ["Ingress", "Egress"]))
    return out


def pod_errors(obj: Mapping[str, Any]) -> list[Cause]:
    """The parts of ``ValidatePod`` that matter here: containers, images, ports."""
    out = metadata_errors(obj.get("metadata") or {})
    containers = (obj.get("spec") or {}).get("containers") or []
    if not containers:
        out.append(required("spec.containers"))
    names: set[str] = set()
    for i, c in enumerate(containers):
        cpath = f"spec.containers[{i}]"
        name = c.get("name") or ""
        if not name:
            out.append(required(f"{cpath}.name"))
        elif name in names:
            out.append(
                Cause(
                    "FieldValueDuplicate", f"{cpath}.name", f"Duplicate value: {json.dumps(name)}"
                )
            )
        names.add(name)
        if not c.get("image"):
            out.append(required(f"{cpath}.image"))
        port_names: set[str] = set()
        for j, p in enumerate(c.get("ports") or []):
            ppath = f"{cpath}.ports[{j}]"
            number = p.get("containerPort")
            if not isinstance(number, int) or not 1 <= number <= 65535:
                out.append(invalid(f"{ppath}.containerPort", number, PORT_MSG))
            pname = p.get("name")
            if pname:
                out += [invalid(f"{ppath}.name", pname, m) for m in port_name_errors(pname)]
                if pname in port_names:
                    out.append(
                        Cause(
                            "FieldValueDuplicate",
                            f"{ppath}.name",
                            f"Duplicate value: {json.dumps(pname)}",
                        )
                    )
                port_names.add(pname)
            proto = p.get("protocol", "TCP")
            if proto not in ("TCP", "UDP", "SCTP"):
                out.append(not_supported(f"{ppath}.protocol", proto, ["SCTP", "TCP", "UDP"]))
    return out


def default_pod(obj: dict[str, Any]) -> None:
    """Defaults the embedded cluster relies on: port protocol TCP, restartPolicy Always."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    for c in spec.get("containers") or []:
        for p in c.get("ports") or []:
            p.setdefault("protocol", "TCP")


def namespace_errors(obj: Mapping[str, Any]) -> list[Cause]:
    return metadata_errors(obj.get("metadata") or {}, dns_label=True)


def admin_policy_errors(kind: str, obj: Mapping[str, Any]) -> list[Cause]:
    """The CRD schema checks of the admin policy kinds that a client is most likely to hit."""
    out = metadata_errors(obj.get("metadata") or {})
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [*out, required("spec")]
    if kind in ("AdminNetworkPolicy", "ClusterNetworkPolicy"):
        prio = spec.get("priority")
        if prio is None:
            out.append(required("spec.priority"))
        elif not isinstance(prio, int) or isinstance(prio, bool) or not 0 <= prio <= 1000:
            out.append(
                invalid(
                    "spec.priority",
                    prio,
                    "spec.priority in body should be less than or equal to 1000",
                )
            )
    if (
        kind == "BaselineAdminNetworkPolicy"
        and (obj.get("metadata") or {}).get("name") != "default"
    ):
        out.append(
            invalid(
                "metadata.name",
                (obj.get("metadata") or {}).get("name"),
                'Only one baseline admin network policy with metadata.name="default" can be created in the cluster',
            )
        )
    if kind == "ClusterNetworkPolicy" and spec.get("tier") not in ("Admin", "Baseline"):
        out.append(not_supported("spec.tier", spec.get("tier"), ["Admin", "Baseline"]))
    if spec.get("subject") is None:
        out.append(required("spec.subject"))
    for direction in ("ingress", "egress"):
        rules = spec.get(direction) or []
        if len(rules) > 100:
            out.append(
                Cause(
                    "FieldValueTooMany",
                    f"spec.{direction}",
                    "Too many: must have at most 100 items",
                )
            )
        for i, rule in enumerate(rules):
            if not isinstance(rule, dict) or not rule.get("action"):
                out.append(required(f"spec.{direction}[{i}].action"))
    return out
