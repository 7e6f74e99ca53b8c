"""Kubernetes name and label rules (conformance.api.names) and the two wordings built on them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.api import fields, names
from conformance.api.names import Broken
from conformance.cluster import validation

# Characters that exercise every rule: both cases, digits and each separator the rules mention.
_TEXT = st.text(alphabet="aZ09-_./", max_size=70)


@pytest.mark.parametrize(
    ("value", "broken"),
    [
        ("web", []),
        ("", [Broken.FORM]),
        ("a" * 63, []),
        ("a" * 64, [Broken.TOO_LONG]),
        ("-a", [Broken.FORM]),
        ("a.b", [Broken.FORM]),
        ("A", [Broken.FORM]),
    ],
)
def test_dns1123_label(value: str, broken: list[Broken]) -> None:
    assert names.dns1123_label_violations(value) == broken


@pytest.mark.parametrize(
    ("value", "broken"),
    [
        ("app", []),
        ("example.com/app", []),
        ("/app", [Broken.PREFIX_EMPTY]),
        ("Example.com/app", [Broken.PREFIX_FORM]),
        ("a/b/c", [Broken.PARTS]),
        ("", [Broken.NAME_EMPTY]),
        ("example.com/", [Broken.NAME_EMPTY]),
        ("a" * 64, [Broken.NAME_TOO_LONG]),
        ("-" * 64, [Broken.NAME_TOO_LONG, Broken.NAME_FORM]),
        ("_x", [Broken.NAME_FORM]),
    ],
)
def test_qualified_name(value: str, broken: list[Broken]) -> None:
    assert names.qualified_name_violations(value) == broken


@pytest.mark.parametrize(
    ("value", "broken"),
    [
        ("http", []),
        ("h-2", []),
        ("", [Broken.TOO_LONG, Broken.CHARSET, Broken.NO_LETTER]),
        ("a" * 16, [Broken.TOO_LONG]),
        ("Http", [Broken.CHARSET]),
        ("8080", [Broken.NO_LETTER]),
        ("a--b", [Broken.CONSECUTIVE_HYPHENS]),
        ("-a", [Broken.EDGE_HYPHEN]),
    ],
)
def test_port_name(value: str, broken: list[Broken]) -> None:
    assert names.port_name_violations(value) == broken


def test_label_values_may_be_empty() -> None:
    assert names.label_value_violations("") == []
    assert names.label_value_violations("a" * 64) == [Broken.TOO_LONG]
    assert names.label_value_violations("a b") == [Broken.FORM]


@pytest.mark.parametrize(
    "check",
    [
        names.dns1123_label_violations,
        names.dns1123_subdomain_violations,
        names.dns1035_label_violations,
        names.qualified_name_violations,
        names.label_value_violations,
        names.port_name_violations,
    ],
)
def test_a_trailing_newline_is_rejected_as_by_go_anchored_regexps(
    check: Callable[[str], list[Broken]],
) -> None:
    assert check("abc") == []
    assert check("abc\n") != []


@given(_TEXT)
def test_scenario_and_api_server_wordings_agree_on_validity(value: str) -> None:
    # One set of rules: a scenario is rejected exactly where the embedded API server would be.
    assert (fields.dns1123_label_problem(value) is None) == (
        validation.namespace_errors({"metadata": {"name": value}}) == []
    )
    assert (fields.dns1123_subdomain_problem(value) is None) == (
        validation.metadata_errors({"name": value}) == []
    )
    assert (fields.label_key_problem(value) is None) == (
        validation.qualified_name_errors(value) == []
    )
    assert (fields.label_value_problem(value) is None) == (
        validation.label_value_errors(value) == []
    )
    assert (fields.port_name_problem(value) is None) == (validation.port_name_errors(value) == [])


def test_label_key_problems_name_the_broken_part() -> None:
    assert fields.label_key_problem("/app") == "label key '/app' has an empty prefix"
    assert (
        fields.label_key_problem("a/b/c") == "label key prefix 'a/b' must be a DNS-1123 subdomain"
    )
    assert fields.label_key_problem("A.com/x") == (
        "label key prefix 'A.com' must be a DNS-1123 subdomain"
    )
    assert fields.label_key_problem("x/_") == (
        "label key 'x/_' is invalid: the name part must be 1-63 characters of alphanumerics, "
        "'-', '_' or '.', starting and ending with an alphanumeric"
    )


def test_cluster_shares_only_the_api_layer() -> None:
    # The embedded cluster reuses the API rules but must stay independent of what it is compared
    # against: the reference evaluator, scenarios and the live runner.
    import ast
    from pathlib import Path

    import conformance.cluster

    forbidden = ("conformance.reference", "conformance.scenario", "conformance.live")
    for path in Path(conformance.cluster.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            else:
                continue
            for module in modules:
                assert not module.startswith(forbidden), f"{path.name} imports {module}"
