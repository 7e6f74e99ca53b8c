"""Label selectors of the embedded cluster: the ``LabelSelector`` object and list-call query strings.

Why: the API server filters list calls with ``labelSelector=...`` and the policy compiler selects
pods and namespaces with ``metav1.LabelSelector``; both follow the apimachinery rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Labels = Mapping[str, str]
Matcher = Callable[[Labels], bool]

_TOKEN = re.compile(r"\s*([A-Za-z0-9_./-]*)\s*")


class SelectorSyntaxError(ValueError):
    """A ``labelSelector`` query string that apimachinery would reject."""


def matches(selector: Mapping[str, Any], labels: Labels) -> bool:
    """Whether ``labels`` satisfy a ``metav1.LabelSelector`` (``{}`` matches everything)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key", ""), expr.get("operator", "")
        values = expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def parse_query(text: str) -> Matcher:
    """Compile a list-call ``labelSelector`` (``a=b,c!=d,e in (f,g),!h,i``) into a predicate."""
    checks: list[Matcher] = []
    if not text.strip():
        return lambda labels: True
    for part in _split_top(text):
        if not part:
            raise SelectorSyntaxError(f"found '', expected: identifier in {text!r}")
        m = re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", part)
        if m:
            key, op = m.group(1), m.group(2)
            vals = {v.strip() for v in m.group(3).split(",") if v.strip()}
            if op == "in":
                checks.append(lambda labels, k=key, v=vals: labels.get(k) in v)  # type: ignore[misc]
            else:
                checks.append(lambda labels, k=key, v=vals: labels.get(k) not in v)  # type: ignore[misc]
            continue
        m = re.fullmatch(r"([\w./-]+)\s*(==|!=|=)\s*([\w./-]*)", part)
        if m:
            key, op, val = m.group(1), m.group(2), m.group(3)
            if op == "!=":
                checks.append(lambda labels, k=key, v=val: labels.get(k) != v)  # type: ignore[misc]
            else:
                checks.append(lambda labels, k=key, v=val: labels.get(k) == v)  # type: ignore[misc]
            continue
        m = re.fullmatch(r"(!?)([\w./-]+)", part)
        if m:
            key, negate = m.group(2), bool(m.group(1))
            checks.append(lambda labels, k=key, n=negate: (k in labels) != n)  # type: ignore[misc]
            continue
        raise SelectorSyntaxError(f"unable to parse requirement: {part!r}")
    return lambda labels: all(check(labels) for check in checks)


def parse_field_query(text: str) -> Callable[[Mapping[str, Any]], bool]:
    """Compile a ``fieldSelector`` (``metadata.name=x``, ``involvedObject.name=y``, ...)."""
    checks: list[Callable[[Mapping[str, Any]], bool]] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        m = re.fullmatch(r"([\w.]+)\s*(==|!=|=)\s*(.*)", part)
        if not m:
            raise SelectorSyntaxError(f'"{part}" is not a known field selector')
        path, op, val = m.group(1).split("."), m.group(2), m.group(3)

        def get(obj: Mapping[str, Any], p: list[str] = path) -> str:
            cur: Any = obj
            for key in p:
                cur = cur.get(key, {}) if isinstance(cur, Mapping) else {}
            return cur if isinstance(cur, str) else ""

        if op == "!=":
            checks.append(lambda obj, g=get, v=val: g(obj) != v)  # type: ignore[misc]
        else:
            checks.append(lambda obj, g=get, v=val: g(obj) == v)  # type: ignore[misc]
    return lambda obj: all(check(obj) for check in checks)
