"""The embedded enforcer installs generations in order: a late, older ruleset never overwrites a
newer one (with an enforcement delay, installs of successive changes overlap)."""

from __future__ import annotations

import asyncio

import pytest

from conformance.cluster.enforcer import Enforcer, Inputs
from conformance.cluster.knobs import Knobs


def _enforcer(applied: list[str], slow: str) -> Enforcer:
    async def apply(script: str) -> None:
        await asyncio.sleep(0.2 if script == slow else 0)  # `nft -f` of one script takes longer
        applied.append(script)

    return Enforcer(lambda: Inputs((), (), ()), apply, Knobs.parse(0, []))


def test_overlapping_installs_leave_the_newest_generation_live() -> None:
    applied: list[str] = []
    enforcer = _enforcer(applied, slow="gen1")

    async def both() -> None:
        await asyncio.gather(enforcer._install(1, "gen1", 0), enforcer._install(2, "gen2", 0))

    asyncio.run(both())
    assert applied[-1] == "gen2" and enforcer.last_script == "gen2"
    assert enforcer.stats.applied_generation == 2


def test_an_older_generation_arriving_late_is_dropped() -> None:
    applied: list[str] = []
    enforcer = _enforcer(applied, slow="")

    async def newest_first() -> None:
        await enforcer._install(2, "gen2", 0)
        await enforcer._install(1, "gen1", 0)

    asyncio.run(newest_first())
    assert applied == ["gen2"] and enforcer.last_script == "gen2"


def test_only_nodes_whose_rules_changed_are_installed_again() -> None:
    """A change that compiles to the rules already live (e.g. a label no policy selects on)
    costs no ``nft -f``; a node whose script changed gets it, the others keep theirs."""
    applied: list[object] = []

    async def apply(scripts: object) -> None:
        applied.append(dict(scripts))  # type: ignore[call-overload]

    enforcer = Enforcer(lambda: Inputs((), (), ()), apply, Knobs.parse(0, []))

    async def installs() -> None:
        await enforcer._install(1, {"n1": "a", "n2": "b"}, 0)
        await enforcer._install(2, {"n1": "a", "n2": "b"}, 0)
        await enforcer._install(3, {"n1": "a", "n2": "c"}, 0)

    asyncio.run(installs())
    assert applied == [{"n1": "a", "n2": "b"}, {"n2": "c"}]
    assert enforcer.last_script == {"n1": "a", "n2": "c"}
    assert enforcer.stats.applied_generation == 3


def test_after_a_failed_install_every_node_is_installed_again() -> None:
    """A failed ``nft -f`` may have left some nodes with the new rules and some without."""
    applied: list[object] = []
    fail = [True]

    async def apply(scripts: object) -> None:
        if fail[0]:
            fail[0] = False
            raise RuntimeError("nft rejected the script")
        applied.append(dict(scripts))  # type: ignore[call-overload]

    enforcer = Enforcer(lambda: Inputs((), (), ()), apply, Knobs.parse(0, []))
    enforcer.last_script = {"n1": "a", "n2": "b"}

    async def installs() -> None:
        with pytest.raises(RuntimeError):
            await enforcer._install(1, {"n1": "a", "n2": "c"}, 0)
        await enforcer._install(2, {"n1": "a", "n2": "b"}, 0)

    asyncio.run(installs())
    assert applied == [{"n1": "a", "n2": "b"}]
