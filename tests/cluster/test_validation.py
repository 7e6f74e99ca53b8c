"""Validation and defaulting as kube-apiserver does it (messages, fields, accepted edge cases)."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.cluster import patch, selectors, services, validation


def np(spec: dict[str, Any], name: str = "p") -> dict[str, Any]:
    obj = {"metadata": {"name": name, "namespace": "x"}, "spec": spec}
    validation.default_network_policy(obj)
    return obj


def fields(spec: dict[str, Any]) -> dict[str, str]:
    return {c.field: c.message for c in validation.network_policy_errors(np(spec))}


def test_defaults() -> None:
    obj = np({"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]})
    assert obj["spec"]["policyTypes"] == ["Ingress"]
    assert obj["spec"]["ingress"][0]["ports"][0]["protocol"] == "TCP"
    assert np({"podSelector": {}, "egress": [{}]})["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert np({"podSelector": {}, "egress": []})["spec"]["policyTypes"] == ["Ingress"]
    assert np({"podSelector": {}, "policyTypes": ["Egress"]})["spec"]["policyTypes"] == ["Egress"]


def test_cidr_with_host_bits_is_accepted() -> None:
    assert (
        fields(
            {
                "podSelector": {},
                "ingress": [
                    {"from": [{"ipBlock": {"cidr": "10.1.2.3/16", "except": ["10.1.5.5/24"]}}]}
                ],
            }
        )
        == {}
    )


@pytest.mark.parametrize(
    ("spec", "field", "text"),
    [
        (
            {"ingress": [{"ports": [{"port": 0}]}]},
            "spec.ingress[0].ports[0].port",
            "Invalid value: 0: must be between 1 and 65535, inclusive",
        ),
        (
            {"ingress": [{"ports": [{"port": 90, "endPort": 80}]}]},
            "spec.ingress[0].ports[0].endPort",
            "Invalid value: 90: must be greater than or equal to `port`",
        ),
        (
            {"ingress": [{"ports": [{"endPort": 80}]}]},
            "spec.ingress[0].ports[0].endPort",
            "Invalid value: 80: may not be specified when `port` is not specified",
        ),
        (
            {"ingress": [{"ports": [{"port": "web", "endPort": 80}]}]},
            "spec.ingress[0].ports[0].endPort",
            "Invalid value: 80: may not be specified when `port` is non-numeric",
        ),
        (
            {"ingress": [{"ports": [{"port": "a--b"}]}]},
            "spec.ingress[0].ports[0].port",
            'Invalid value: "a--b": must not contain consecutive hyphens',
        ),
        (
            {"ingress": [{"ports": [{"protocol": "ICMP"}]}]},
            "spec.ingress[0].ports[0].protocol",
            'Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"',
        ),
        ({"egress": [{"to": [{}]}]}, "spec.egress[0].to[0]", "Required value: must specify a peer"),
        (
            {"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "namespaceSelector": {}}]}]},
            "spec.ingress[0].from[0]",
            "Forbidden: may not specify both ipBlock and another peer",
        ),
        (
            {"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0"}}]}]},
            "spec.ingress[0].from[0].ipBlock.cidr",
            'Invalid value: "10.0.0.0": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)',
        ),
        (
            {
                "ingress": [
                    {"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}}]}
                ]
            },
            "spec.ingress[0].from[0].ipBlock.except[0]",
            'Invalid value: "10.0.0.0/8": must be a strict subset of `cidr`',
        ),
        (
            {"ingress": [{"from": [{"ipBlock": {}}]}]},
            "spec.ingress[0].from[0].ipBlock.cidr",
            "Required value",
        ),
        (
            {
                "podSelector": {
                    "matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]
                }
            },
            "spec.podSelector.matchExpressions[0].values",
            "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        ),
        (
            {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Has"}]}},
            "spec.podSelector.matchExpressions[0].operator",
            'Invalid value: "Has": not a valid selector operator',
        ),
        (
            {"policyTypes": ["Ingress", "Egress", "Ingress"]},
            "spec.policyTypes",
            "may not specify more than two policyTypes",
        ),
    ],
)
def test_invalid_network_policies(spec: dict[str, Any], field: str, text: str) -> None:
    got = fields({"podSelector": {}, **spec})
    assert field in got and text in got[field], got


def test_duplicate_policy_types_are_allowed() -> None:
    assert fields({"podSelector": {}, "policyTypes": ["Ingress", "Ingress"]}) == {}


def test_decode_rejects_wrong_types_and_collects_unknown_fields() -> None:
    unknown: list[str] = []
    with pytest.raises(validation.BadRequest, match="cannot unmarshal bool"):
        validation.decode(
            {"ingress": [{"ports": [{"port": True}]}]},
            validation.NETWORK_POLICY_SCHEMA,
            "spec",
            unknown,
        )
    out = validation.decode(
        {"podSelector": {}, "bogus": 1}, validation.NETWORK_POLICY_SCHEMA, "spec", unknown
    )
    assert out == {"podSelector": {}} and unknown == ["spec.bogus"]


def test_metadata_names() -> None:
    assert validation.metadata_errors({"name": "Bad_Name"})[0].field == "metadata.name"
    assert validation.namespace_errors({"metadata": {"name": "a.b"}})[0].field == "metadata.name"
    assert (
        validation.metadata_errors({"name": "ok", "labels": {"k": "v" * 64}})[0].field
        == "metadata.labels"
    )


def test_name_messages_are_the_api_servers() -> None:
    # Built from the shared rules' regexps (conformance.api.names); the text must stay apimachinery's.
    assert validation.metadata_errors({"name": "a" * 254})[0].message == (
        'Invalid value: "' + "a" * 254 + '": must be no more than 253 characters'
    )
    assert [c.message for c in validation.namespace_errors({"metadata": {"name": "A"}})] == [
        'Invalid value: "A": a lowercase RFC 1123 label must consist of lower case alphanumeric '
        "characters or '-', and must start and end with an alphanumeric character (e.g. "
        "'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    ]
    assert validation.qualified_name_errors("Bad.Prefix/_x") == [
        "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
        "characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
        "'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
        "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
        "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
    ]
    assert validation.qualified_name_errors("a/b/c") == [
        "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start "
        "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
        "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an "
        "optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
    ]
    assert validation.label_value_errors("x" * 64 + "_") == [
        "must be no more than 63 characters",
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
        "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
        "'my_value',  or '12345', regex used for validation is "
        "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
    ]
    assert validation.port_name_errors("-") == [
        "must contain at least one letter (a-z)",
        "must not begin or end with a hyphen",
    ]
    assert services.DNS1035_MSG == (
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
        "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
        "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
    )


def test_patches() -> None:
    doc = {
        "metadata": {"labels": {"a": "1", "b": "2"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }
    assert patch.merge_patch(doc, {"metadata": {"labels": {"a": None, "c": "3"}}})["metadata"][
        "labels"
    ] == {"b": "2", "c": "3"}
    smp = patch.strategic_merge_patch(
        doc, {"spec": {"containers": [{"name": "c", "image": "j"}]}, "$setElementOrder/x": []}
    )
    assert smp["spec"]["containers"] == [{"name": "c", "image": "j"}]
    jp = patch.json_patch(
        doc,
        [
            {"op": "add", "path": "/metadata/labels/d", "value": "4"},
            {"op": "remove", "path": "/metadata/labels/a"},
        ],
    )
    assert jp["metadata"]["labels"] == {"b": "2", "d": "4"}
    with pytest.raises(patch.PatchError):
        patch.json_patch(doc, {"metadata": {}})
    with pytest.raises(patch.PatchError):
        patch.json_patch(doc, [{"op": "replace", "path": "/metadata/nope", "value": 1}])


def test_selectors() -> None:
    sel = {
        "matchLabels": {"a": "1"},
        "matchExpressions": [{"key": "b", "operator": "NotIn", "values": ["x"]}],
    }
    assert selectors.matches(sel, {"a": "1"}) and selectors.matches(sel, {"a": "1", "b": "y"})
    assert not selectors.matches(sel, {"a": "1", "b": "x"}) and not selectors.matches(sel, {})
    assert selectors.matches({}, {})
    q = selectors.parse_query("a=1,b notin (x,y),!c")
    assert q({"a": "1"}) and not q({"a": "1", "c": ""}) and not q({"a": "1", "b": "x"})
    with pytest.raises(selectors.SelectorSyntaxError):
        selectors.parse_query("a===")
