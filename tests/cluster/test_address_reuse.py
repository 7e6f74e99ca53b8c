"""Deviation stale-address-rules: who gets a freed pod address (docs/cluster.md, IPAM).

A new pod takes what its own namespace freed on its node first, then what deleted namespaces
left, oldest first, so a scenario's replacement pod gets the deleted pod's address however many
other scenarios' pods are created in between (the reason: FreedAddresses).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from conformance.cluster.dataplane import Dataplane, FreedAddresses
from conformance.scenario.bind import placement
from conformance.scenario.load import load_scenario
from tests.cluster.conftest import unique_instance

ADDRESS_REUSED = (
    Path(__file__).resolve().parents[2] / "scenarios" / "detection" / "pod-address-reused.yaml"
)


def test_a_freed_address_waits_for_its_own_namespace() -> None:
    freed = FreedAddresses()
    freed.free("n1", "10.244.16.2", "ns1")
    assert freed.take("n1", "ns2") is None  # another namespace's pod gets a fresh address
    assert freed.take("n1", "ns1") == "10.244.16.2"
    assert freed.take("n1", "ns1") is None


def test_own_namespace_first_then_deleted_namespaces_oldest_first() -> None:
    freed = FreedAddresses()
    freed.free("n1", "10.244.16.2", "gone")
    freed.free("n1", "10.244.16.3", "ns1")
    freed.free("n1", "10.244.16.4", "")  # freed after its namespace was deleted
    freed.free("n1", "10.244.16.5", "ns1")
    assert freed.take("n1", "ns2") == "10.244.16.4"  # "gone" still exists: not yet
    freed.forget("gone")
    assert freed.take("n1", "ns1") == "10.244.16.3"
    assert freed.take("n1", "ns2") == "10.244.16.2"
    assert freed.take("n1", "ns1") == "10.244.16.5"
    assert freed.take("n1", "ns1") is None


def test_a_freed_address_stays_on_its_node() -> None:
    freed = FreedAddresses()
    freed.free("n1", "10.244.16.2", "ns1")
    assert freed.take("n2", "ns1") is None
    assert freed.take("n1", "ns1") == "10.244.16.2"


def test_the_reuse_scenario_puts_each_newcomer_on_the_node_of_the_pod_it_replaces() -> None:
    # pod-address-reused pins nothing (so it also runs on a one-node cluster); the spreading rule
    # must keep each replacement on the deleted pod's node, or it gets a fresh address.
    nodes = placement(load_scenario(ADDRESS_REUSED).spec)
    assert nodes["x/newcomer"] == nodes["x/client"]
    assert nodes["x/open"] == nodes["x/locked"]


@pytest.mark.cluster  # network namespaces need root
def test_the_dataplane_gives_the_address_back_to_its_namespace() -> None:
    async def scenario(dp: Dataplane) -> tuple[str, str, str]:
        await dp.setup()
        old = await dp.add_pod("a", namespace="ns1")
        dp.retire(old, "ns1")
        await dp.remove(old)
        other = await dp.add_pod("b", namespace="ns2")  # another scenario's pod, in between
        newcomer = await dp.add_pod("c", namespace="ns1")
        return old.ip, other.ip, newcomer.ip

    dp = Dataplane(unique_instance("ar"), reuse_addresses=True, nodes=1)
    try:
        old, other, newcomer = asyncio.run(scenario(dp))
    finally:
        dp.teardown()
    assert newcomer == old and other != old
