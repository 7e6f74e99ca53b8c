"""Split scenarios into N shards for N CI machines: deterministic, balanced by step count.

Why: a CI matrix of N jobs runs one suite when each job runs ``--shard K/N``; every job must
compute the same split with no coordination, so the split depends only on the scenarios' names,
files and step counts. ``report --merge`` joins the shards' results afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Protocol, TypeVar

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``K/N`` with 1 <= K <= N; ValueError saying what is accepted otherwise."""
        m = _SHARD.match(text)
        if not m:
            raise ValueError(f"expected K/N such as 1/3, got {text!r}")
        index, count = int(m[1]), int(m[2])
        if count < 1 or not 1 <= index <= count:
            raise ValueError(f"expected K/N with 1 <= K <= N, got {text!r}")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


class Weighted(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def file(self) -> str: ...

    @property
    def step_count(self) -> int: ...


T = TypeVar("T", bound=Weighted)


def assign(items: Sequence[T], count: int) -> list[list[T]]:
    """``count`` shards covering ``items`` once each, in their input order within a shard.

    Greedy longest-first: scenarios in order of decreasing step count (ties by name, then file)
    each go to the shard with the fewest steps so far (ties to the lowest shard). The result
    depends only on the names, files and step counts, never on the input order."""
    order = sorted(items, key=lambda s: (-s.step_count, s.name, PurePath(s.file).name, s.file))
    loads = [0] * count
    chosen: dict[tuple[str, str], int] = {}
    for s in order:
        k = min(range(count), key=lambda i: (loads[i], i))
        chosen[(s.name, s.file)] = k
        loads[k] += max(s.step_count, 1)
    shards: list[list[T]] = [[] for _ in range(count)]
    for s in items:
        shards[chosen[(s.name, s.file)]].append(s)
    return shards


def select(items: Sequence[T], shard: Shard) -> list[T]:
    """The items of ``shard`` (in input order)."""
    return assign(items, shard.count)[shard.index - 1]
