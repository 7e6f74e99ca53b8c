"""Kubernetes name and label syntax: the rules of k8s.io/apimachinery/pkg/util/validation.

Rules only, no wording. Each check returns the rules a value breaks, in the order apimachinery
tests them, so that the scenario parser (``conformance.api.fields``) can word one problem for a
scenario author while the embedded API server (``conformance.cluster.validation``) repeats the
real server's messages, one per broken rule, from the same rules.

Patterns must match the whole value, as Go's anchored regexps do (Python's ``$`` would also accept
a trailing newline).
"""

from __future__ import annotations

import re
from enum import Enum

DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL_MAX_LENGTH = 63
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + "(\\." + DNS1123_LABEL_FMT + ")*"
DNS1123_SUBDOMAIN_MAX_LENGTH = 253
DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
DNS1035_LABEL_MAX_LENGTH = 63
QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
QUALIFIED_NAME_MAX_LENGTH = 63
"""Of the name part of a qualified name (a label key without its prefix)."""
LABEL_VALUE_FMT = f"({QUALIFIED_NAME_FMT})?"
LABEL_VALUE_MAX_LENGTH = 63
PORT_NAME_MAX_LENGTH = 15

_DNS1123_LABEL = re.compile(DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN = re.compile(DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL = re.compile(DNS1035_LABEL_FMT)
_QUALIFIED_NAME = re.compile(QUALIFIED_NAME_FMT)
_LABEL_VALUE = re.compile(LABEL_VALUE_FMT)
_PORT_NAME_CHARSET = re.compile("[-a-z0-9]+")
_PORT_NAME_LETTER = re.compile("[a-z]")


class Broken(Enum):
    """A rule a name breaks."""

    TOO_LONG = "too long"
    """Longer than the check's maximum (a port name: also empty)."""
    FORM = "form"
    """Does not match the check's pattern."""
    PARTS = "parts"
    """A qualified name with more than one '/'."""
    PREFIX_EMPTY = "prefix empty"
    PREFIX_FORM = "prefix form"
    """A qualified name's prefix is not a DNS-1123 subdomain."""
    NAME_EMPTY = "name empty"
    NAME_TOO_LONG = "name too long"
    NAME_FORM = "name form"
    CHARSET = "charset"
    """A port name with characters other than a-z, 0-9 and '-'."""
    NO_LETTER = "no letter"
    CONSECUTIVE_HYPHENS = "consecutive hyphens"
    EDGE_HYPHEN = "edge hyphen"


def _length_and_form(value: str, max_length: int, pattern: re.Pattern[str]) -> list[Broken]:
    out = []
    if len(value) > max_length:
        out.append(Broken.TOO_LONG)
    if not pattern.fullmatch(value):
        out.append(Broken.FORM)
    return out


def dns1123_label_violations(value: str) -> list[Broken]:
    """``IsDNS1123Label``: namespace names, among others."""
    return _length_and_form(value, DNS1123_LABEL_MAX_LENGTH, _DNS1123_LABEL)


def dns1123_subdomain_violations(value: str) -> list[Broken]:
    """``IsDNS1123Subdomain``: most object names, label key prefixes."""
    return _length_and_form(value, DNS1123_SUBDOMAIN_MAX_LENGTH, _DNS1123_SUBDOMAIN)


def dns1035_label_violations(value: str) -> list[Broken]:
    """``IsDNS1035Label``: Service names."""
    return _length_and_form(value, DNS1035_LABEL_MAX_LENGTH, _DNS1035_LABEL)


def qualified_name_violations(value: str) -> list[Broken]:
    """``IsQualifiedName``: label keys and annotation keys, ``[prefix/]name``."""
    parts = value.split("/")
    if len(parts) > 2:
        return [Broken.PARTS]
    out = []
    if len(parts) == 2:
        prefix, name = parts
        if not prefix:
            out.append(Broken.PREFIX_EMPTY)
        elif dns1123_subdomain_violations(prefix):
            out.append(Broken.PREFIX_FORM)
    else:
        name = parts[0]
    if not name:
        out.append(Broken.NAME_EMPTY)
    elif len(name) > QUALIFIED_NAME_MAX_LENGTH:
        out.append(Broken.NAME_TOO_LONG)
    if name and not _QUALIFIED_NAME.fullmatch(name):
        out.append(Broken.NAME_FORM)
    return out


def label_value_violations(value: str) -> list[Broken]:
    """``IsValidLabelValue``: empty, or a qualified name's name part."""
    return _length_and_form(value, LABEL_VALUE_MAX_LENGTH, _LABEL_VALUE)


def port_name_violations(value: str) -> list[Broken]:
    """``IsValidPortName`` (IANA_SVC_NAME): container port names, named ports in policies."""
    out = []
    if not 1 <= len(value) <= PORT_NAME_MAX_LENGTH:
        out.append(Broken.TOO_LONG)
    if not _PORT_NAME_CHARSET.fullmatch(value):
        out.append(Broken.CHARSET)
    if not _PORT_NAME_LETTER.search(value):
        out.append(Broken.NO_LETTER)
    if "--" in value:
        out.append(Broken.CONSECUTIVE_HYPHENS)
    if value.startswith("-") or value.endswith("-"):
        out.append(Broken.EDGE_HYPHEN)
    return out


__all__ = [
    "DNS1035_LABEL_FMT",
    "DNS1035_LABEL_MAX_LENGTH",
    "DNS1123_LABEL_FMT",
    "DNS1123_LABEL_MAX_LENGTH",
    "DNS1123_SUBDOMAIN_FMT",
    "DNS1123_SUBDOMAIN_MAX_LENGTH",
    "LABEL_VALUE_FMT",
    "LABEL_VALUE_MAX_LENGTH",
    "PORT_NAME_MAX_LENGTH",
    "QUALIFIED_NAME_FMT",
    "QUALIFIED_NAME_MAX_LENGTH",
    "Broken",
    "dns1035_label_violations",
    "dns1123_label_violations",
    "dns1123_subdomain_violations",
    "label_value_violations",
    "port_name_violations",
    "qualified_name_violations",
]
