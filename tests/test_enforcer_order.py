"""The embedded enforcer installs generations in order: a late, older ruleset never overwrites a
newer one (with an enforcement delay, installs of successive changes overlap)."""

from __future__ import annotations

import asyncio

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
