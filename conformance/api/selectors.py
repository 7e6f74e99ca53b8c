"""Label selectors (meta/v1 LabelSelector): parsing with API validation, and matching.

Semantics (LabelSelector field docs): ``matchLabels`` and ``matchExpressions`` are ANDed; an empty
selector matches everything; a null (absent) selector is handled by the caller, because its meaning
depends on the field (in a NetworkPolicyPeer, an absent podSelector means "all pods").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from conformance.api.fields import Field, label_key_problem, label_value_problem
from conformance.api.model import frozen_labels


class Operator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        # LabelSelectorRequirement: NotIn and DoesNotExist match objects that lack the key.
        if self.operator is Operator.IN:
            return self.key in labels and labels[self.key] in self.values
        if self.operator is Operator.NOT_IN:
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator is Operator.EXISTS:
            return self.key in labels
        return self.key not in labels

    def __str__(self) -> str:
        if self.operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST):
            return f"{self.key} {self.operator}"
        return f"{self.key} {self.operator} ({', '.join(self.values)})"


@dataclass(frozen=True)
class LabelSelector:
    match_labels: Mapping[str, str]
    match_expressions: tuple[Requirement, ...] = ()

    @classmethod
    def everything(cls) -> LabelSelector:
        return cls(frozen_labels(None))

    @classmethod
    def of(cls, labels: Mapping[str, str]) -> LabelSelector:
        return cls(frozen_labels(labels))

    @property
    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            r.matches(labels) for r in self.match_expressions
        )

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in sorted(self.match_labels.items())]
        parts += [str(r) for r in self.match_expressions]
        return "{" + ", ".join(parts) + "}" if parts else "{} (all)"


_SELECTOR_FIELDS = frozenset({"matchLabels", "matchExpressions"})
_REQUIREMENT_FIELDS = frozenset({"key", "operator", "values"})


def parse_label_map(f: Field) -> dict[str, str]:
    """A ``labels``/``matchLabels`` map with key and value validation."""
    out: dict[str, str] = {}
    if not f.expect_mapping():
        return out
    for key, value in f.value.items():
        item = f.child(str(key), value)
        if not isinstance(key, str):
            item.error(f"label key must be a string, got {key!r}")
            continue
        problem = label_key_problem(key)
        if problem:
            item.error(problem)
            continue
        if not isinstance(value, str):
            item.error(f"label value must be a string, got {value!r} (quote it in YAML)")
            continue
        problem = label_value_problem(value)
        if problem:
            item.error(problem)
            continue
        out[key] = value
    return out


def parse_label_selector(f: Field) -> LabelSelector:
    """Parse and validate a LabelSelector as the API server does (ValidateLabelSelector)."""
    if not f.expect_mapping(_SELECTOR_FIELDS):
        return LabelSelector.everything()
    match_labels: dict[str, str] = {}
    ml = f.get("matchLabels")
    if ml is not None:
        match_labels = parse_label_map(ml)
    reqs: list[Requirement] = []
    me = f.get("matchExpressions")
    if me is not None and me.expect_list():
        for item in me.items():
            req = _parse_requirement(item)
            if req is not None:
                reqs.append(req)
    return LabelSelector(frozen_labels(match_labels), tuple(reqs))


def _parse_requirement(f: Field) -> Requirement | None:
    if not f.expect_mapping(_REQUIREMENT_FIELDS):
        return None
    key_f, op_f = f.get("key"), f.get("operator")
    if key_f is None:
        f.error("matchExpressions entry needs a 'key'")
        return None
    if op_f is None:
        f.error("matchExpressions entry needs an 'operator' (In, NotIn, Exists, DoesNotExist)")
        return None
    if not key_f.expect_str() or not op_f.expect_str():
        return None
    problem = label_key_problem(key_f.value)
    if problem:
        key_f.error(problem)
        return None
    try:
        op = Operator(op_f.value)
    except ValueError:
        op_f.error(
            f"{op_f.value!r} is not a valid operator; accepted: In, NotIn, Exists, DoesNotExist"
        )
        return None
    values: list[str] = []
    vf = f.get("values")
    if vf is not None and vf.expect_list():
        for v in vf.items():
            if not isinstance(v.value, str):
                v.error(f"expected a string, got {v.value!r} (quote it in YAML)")
                continue
            problem = label_value_problem(v.value)
            if problem:
                v.error(problem)
                continue
            values.append(v.value)
    # ValidateLabelSelectorRequirement: In/NotIn need values; Exists/DoesNotExist forbid them.
    if op in (Operator.IN, Operator.NOT_IN) and not values and not (vf and vf.value):
        (vf or f).error(f"operator {op} needs a non-empty 'values' list")
        return None
    if op in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and vf is not None and vf.value:
        vf.error(f"operator {op} must not have 'values'")
        return None
    return Requirement(key_f.value, op, tuple(values))
