"""Helpers for validating verbatim Kubernetes objects given as plain dicts.

``Field`` walks a parsed YAML/JSON document while remembering the key path, so every validation
error can name the exact field (``spec.ingress[0].from[1].ipBlock.cidr``) and, through a
``Locator``, the file and line it came from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from conformance.api.names import (
    Broken,
    dns1123_label_violations,
    dns1123_subdomain_violations,
    label_value_violations,
    port_name_violations,
    qualified_name_violations,
)
from conformance.errors import Location, ScenarioError, ScenarioErrors

PathKey = str | int
KeyPath = tuple[PathKey, ...]
Locator = Callable[[KeyPath], Location]


def format_path(path: KeyPath) -> str:
    """``("spec", "ingress", 0, "from")`` -> ``spec.ingress[0].from``."""
    out = ""
    for key in path:
        if isinstance(key, int):
            out += f"[{key}]"
        else:
            out += f".{key}" if out else key
    return out


def no_location(file: str = "<object>") -> Locator:
    def locate(path: KeyPath) -> Location:
        return Location(file, 0, format_path(path))

    return locate


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
    }.get(type(value), type(value).__name__)


@dataclass
class Field:
    """A value inside an object, its key path and a shared error sink."""

    value: Any
    path: KeyPath
    locate: Locator
    errors: list[ScenarioError] = field(default_factory=list)

    # -- navigation -------------------------------------------------------------------------
    def child(self, key: PathKey, value: Any) -> Field:
        return Field(value, (*self.path, key), self.locate, self.errors)

    def get(self, key: str) -> Field | None:
        """The child ``key`` of a mapping, or None when absent (explicit null counts as absent)."""
        if not isinstance(self.value, Mapping) or self.value.get(key) is None:
            return None
        return self.child(key, self.value[key])

    def items(self) -> Iterator[Field]:
        for i, item in enumerate(self.value):
            yield self.child(i, item)

    # -- errors -----------------------------------------------------------------------------
    def error(self, message: str) -> None:
        self.errors.append(ScenarioError(message, self.locate(self.path)))

    def raise_errors(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise ScenarioErrors.collect(self.errors)

    # -- typed checks (each returns False and records an error when the check fails) ---------
    def expect_mapping(self, allowed: frozenset[str] | None = None) -> bool:
        if not isinstance(self.value, Mapping):
            self.error(f"expected a mapping, got {_type_name(self.value)}")
            return False
        if allowed is not None:
            for key in self.value:
                if key not in allowed:
                    self.child(str(key), None).error(
                        f"unknown field {key!r}; accepted: {', '.join(sorted(allowed))}"
                    )
        return True

    def expect_list(self) -> bool:
        if not isinstance(self.value, list):
            self.error(f"expected a list, got {_type_name(self.value)}")
            return False
        return True

    def expect_str(self) -> bool:
        if not isinstance(self.value, str):
            self.error(f"expected a string, got {_type_name(self.value)}")
            return False
        return True

    def expect_int(self) -> bool:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            self.error(f"expected an integer, got {_type_name(self.value)}")
            return False
        return True


OBJECT_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
"""Top-level fields of a Kubernetes object."""
METADATA_FIELDS = frozenset(
    {
        "name",
        "namespace",
        "labels",
        "annotations",
        "generateName",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "finalizers",
        "ownerReferences",
    }
)
"""ObjectMeta fields a verbatim object may carry (others are rejected as unknown)."""

# Messages for scenario authors on the Kubernetes name and label rules of ``conformance.api.names``.


def dns1123_label_problem(value: str) -> str | None:
    if dns1123_label_violations(value):
        return "must be a DNS-1123 label (lowercase letters, digits and '-', at most 63 characters)"
    return None


def dns1123_subdomain_problem(value: str) -> str | None:
    if dns1123_subdomain_violations(value):
        return "must be a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most 253)"
    return None


def label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid label key (qualified name), or None."""
    broken = qualified_name_violations(key)
    if not broken:
        return None
    # The prefix is everything before the last '/': with more than one '/', it holds a '/'.
    prefix = key.rpartition("/")[0]
    if Broken.PREFIX_EMPTY in broken:
        return f"label key {key!r} has an empty prefix"
    if Broken.PARTS in broken or Broken.PREFIX_FORM in broken:
        return f"label key prefix {prefix!r} must be a DNS-1123 subdomain"
    return (
        f"label key {key!r} is invalid: the name part must be 1-63 characters of "
        "alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
    )


def label_value_problem(value: str) -> str | None:
    if label_value_violations(value):
        return (
            f"label value {value!r} is invalid: at most 63 characters of alphanumerics, '-', '_' "
            "or '.', starting and ending with an alphanumeric"
        )
    return None


def port_name_problem(name: str) -> str | None:
    """IANA_SVC_NAME rules for named ports (validation.IsValidPortName)."""
    if port_name_violations(name):
        return (
            f"port name {name!r} is invalid: 1-15 lowercase letters, digits and single '-', "
            "with at least one letter, starting and ending with a letter or digit"
        )
    return None
