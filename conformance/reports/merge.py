"""``report --merge``: join the results of the shards of one run into one results document.

Why: a CI matrix runs ``run --shard K/N`` on N machines; people want one report. The shards must
come from the same cluster, tool version and options, or the joined document would claim a run
that never happened, so a difference is an error naming the field and the two files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from conformance.live.results import RunResult

# What every shard of one run shares (RunResult attribute names).
SHARED = ("context", "server", "server_version", "tool_version", "options", "cni")


class MergeError(ValueError):
    """The given results are not shards of one run."""


def merge(runs: Sequence[RunResult], files: Sequence[str | Path] = ()) -> RunResult:
    """One ``RunResult`` holding every shard's scenarios, ordered by file then name.

    ``run_id`` is the first shard's (in order of start) with ``-merged``; ``started`` is the
    earliest start and ``finished`` the latest finish."""
    if not runs:
        raise MergeError("--merge needs at least one results file")
    names = [str(f) for f in files] or [r.run_id for r in runs]
    first = runs[0]
    for run, name in zip(runs[1:], names[1:], strict=True):
        for attr in SHARED:
            if getattr(run, attr) != getattr(first, attr):
                raise MergeError(
                    f"{name} and {names[0]} differ in {attr} ({getattr(run, attr)!r} vs "
                    f"{getattr(first, attr)!r}): merge only the shards of one run"
                )
    seen: dict[tuple[str, str], str] = {}
    for run, name in zip(runs, names, strict=True):
        for sc in run.scenarios:
            key = (sc.file, sc.name)
            if key in seen:
                raise MergeError(
                    f"scenario {sc.name!r} ({sc.file}) is in both {seen[key]} and {name}: "
                    "give each shard's results once"
                )
            seen[key] = name
    earliest = min(runs, key=lambda r: r.started)
    return RunResult(
        run_id=f"{earliest.run_id}-merged",
        context=first.context,
        server=first.server,
        server_version=first.server_version,
        tool_version=first.tool_version,
        options=dict(first.options),
        started=earliest.started,
        finished=max(r.finished for r in runs),
        scenarios=sorted(
            (sc for r in runs for sc in r.scenarios), key=lambda sc: (sc.file, sc.name)
        ),
        cni=first.cni,
        retries=_summed(r.retries for r in runs),
    )


def _summed(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Retry counters of every shard added up (each shard counted its own)."""
    total: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
    return total
