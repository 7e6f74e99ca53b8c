"""The one registry of policy kinds (conformance.api.kinds) and what it must agree with."""

from __future__ import annotations

import subprocess
import sys

from conformance.api.kinds import (
    ADMIN_KINDS,
    NETWORK_POLICY,
    POLICY_KINDS,
    api_kinds,
    is_admin_kind,
)
from conformance.scenario.schema import Feature


def test_admin_kinds_name_their_apis() -> None:
    assert {k: (v.group, v.version, v.plural) for k, v in ADMIN_KINDS.items()} == {
        "AdminNetworkPolicy": ("policy.networking.k8s.io", "v1alpha1", "adminnetworkpolicies"),
        "BaselineAdminNetworkPolicy": (
            "policy.networking.k8s.io",
            "v1alpha1",
            "baselineadminnetworkpolicies",
        ),
        "ClusterNetworkPolicy": ("policy.networking.k8s.io", "v1alpha2", "clusternetworkpolicies"),
    }
    assert not any(k.namespaced for k in ADMIN_KINDS.values())
    assert all(name == k.kind for name, k in POLICY_KINDS.items())


def test_policy_kinds_are_network_policy_then_admin_kinds() -> None:
    assert list(POLICY_KINDS) == [
        "NetworkPolicy",
        "AdminNetworkPolicy",
        "BaselineAdminNetworkPolicy",
        "ClusterNetworkPolicy",
    ]
    assert POLICY_KINDS["NetworkPolicy"] is NETWORK_POLICY
    assert NETWORK_POLICY.api_version == "networking.k8s.io/v1"
    assert NETWORK_POLICY.namespaced
    assert ADMIN_KINDS["ClusterNetworkPolicy"].api_version == "policy.networking.k8s.io/v1alpha2"


def test_api_kinds_lists_admin_kinds_once_in_order() -> None:
    objs = [
        {"kind": "NetworkPolicy"},
        {"kind": "ClusterNetworkPolicy"},
        {"kind": "AdminNetworkPolicy"},
        {"kind": "ClusterNetworkPolicy"},
    ]
    assert [k.kind for k in api_kinds(objs)] == ["ClusterNetworkPolicy", "AdminNetworkPolicy"]
    assert [k.feature for k in api_kinds(objs)] == ["ClusterNetworkPolicy", "AdminNetworkPolicy"]
    assert [is_admin_kind(o) for o in objs] == [False, True, True, True]


def test_kind_features_are_scenario_features() -> None:
    # Only the admin kinds are gated by a `requires:` feature; NetworkPolicy is always served.
    assert NETWORK_POLICY.feature is None
    assert {Feature(k.feature or "") for k in ADMIN_KINDS.values()} == {
        Feature.ADMIN_NETWORK_POLICY,
        Feature.BASELINE_ADMIN_NETWORK_POLICY,
        Feature.CLUSTER_NETWORK_POLICY,
    }


def test_embedded_cluster_serves_the_registered_kinds() -> None:
    # The embedded API server keeps its own resource table; it must serve what the harness expects.
    from conformance.cluster.store import RESOURCES

    served = {r.kind: (r.group, r.version, r.plural, r.namespaced) for r in RESOURCES}
    for name, k in POLICY_KINDS.items():
        assert served[name] == (k.group, k.version, k.plural, k.namespaced)


def test_kinds_module_is_pure() -> None:
    code = "import sys, conformance.api.kinds; print('kubernetes' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
