"""Plain-text truth tables of a live step: expected, observed and where they differ.

Used by the pytest plugin's failure output, by text reports and by ``run``'s console summary;
the grid layout is the one ``evaluate`` prints (rows = from, columns = to, one grid per
port/protocol).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from conformance.api.types import Grid
from conformance.live.probing import Outcome
from conformance.live.results import (
    CellResult,
    CellStatus,
    RunResult,
    StepResult,
    latency_phrase,
    latency_summary,
    percentile,
)
from conformance.reference.evaluator import Verdict
from conformance.reference.truthtable import mark_for, render_grid
from conformance.reports.judgement import (
    Judgement,
    one_sentence,
    path_line,
    run_notes,
    step_title,
    totals,
)

OBSERVED_MARKS = {
    Outcome.CONNECTED: ".",
    Outcome.TIMEOUT: "X",
    Outcome.REFUSED: "r",
    Outcome.UNSUPPORTED: "n",
    Outcome.CHECK_FAILED: "!",
}
OBSERVED_LEGEND = (
    "observed: . connected   X timeout (dropped)   r refused   n not supported here   "
    "! probe could not run   ? not probed (self)"
)
DIFF_LEGEND = (
    "diff: A allowed but should be denied (security hole)   D denied but should be allowed (outage)"
)


def _grids(cells: Iterable[CellResult], mark: str) -> str:
    cells = list(cells)
    grids = sorted(
        {Grid(c.port, c.protocol, c.family) for c in cells},
        key=lambda g: (str(g.family), g.port, str(g.protocol)),
    )
    sources = list(dict.fromkeys(c.source for c in cells))
    targets = list(dict.fromkeys(c.target for c in cells))
    blocks = []
    for g in grids:
        marks = {(s, t): " " for s in sources for t in targets}
        for c in cells:
            if Grid(c.port, c.protocol, c.family) == g:
                marks[(c.source, c.target)] = _mark(c, mark)
        blocks.append(render_grid(str(g), sources, targets, marks))
    return "\n\n".join(blocks)


def _mark(c: CellResult, which: str) -> str:
    if which == "expected":
        return mark_for(c.expected, c.served)
    if which == "observed":
        return OBSERVED_MARKS.get(c.observed, "?") if c.observed else "?"
    if c.status is CellStatus.MISMATCH:
        return "A" if c.observed_verdict is Verdict.ALLOW else "D"
    return {
        CellStatus.CHECK_FAILED: "!",
        CellStatus.NOT_SUPPORTED: "n",
        CellStatus.IGNORED: "?",
    }.get(c.status, ".")


def step_tables(step: StepResult) -> str:
    """Expected, observed and diff grids of one step, with legends."""
    return "\n".join(
        [
            "expected:",
            _grids(step.cells, "expected"),
            "",
            "observed:",
            _grids(step.cells, "observed"),
            OBSERVED_LEGEND,
            "",
            "diff:",
            _grids(step.cells, "diff"),
            DIFF_LEGEND,
        ]
    )


def mismatch_lines(step: StepResult, limit: int = 20) -> list[str]:
    """One line per mismatching cell: what differs, the evaluator's reason, how to reproduce."""
    lines = []
    bad = [c for c in step.cells if c.status in (CellStatus.MISMATCH, CellStatus.CHECK_FAILED)]
    for c in bad[:limit]:
        what = (
            f"expected {c.expected}, observed {c.observed}"
            if c.status is CellStatus.MISMATCH
            else f"probe could not run ({c.detail})"
        )
        lines.append(
            f"{c.source} -> {c.target} {c.port}/{c.protocol}: {what} after {c.attempts} attempts"
            f"{' (flaky)' if c.flaky else ''}"
            f"{f' ({c.propagation_note})' if c.propagation_note else ''}\n    why expected: {c.reason}\n    reproduce: {c.command}"
        )
    if len(bad) > limit:
        lines.append(f"... and {len(bad) - limit} more (see the results JSON)")
    return lines


OUTCOME_WORDS = {
    "fail": "FAIL",
    "error": "ERROR",
    "skipped": "SKIPPED",
    "known": "KNOWN",
    "pass": "PASS",
}


def run_lines(j: Judgement, cells_per_step: int = 20) -> list[str]:
    """Plain lines for a log: one per scenario or step that did not pass, each followed by its
    unexpected mismatches (from, to, port/protocol, expected, observed). Passing scenarios are
    only counted in the summary; steps whose mismatches are all known deviations say so."""
    lines: list[str] = []
    for sc in j.run.scenarios:
        outcome = j.scenario_outcome(sc)
        if outcome == "pass":
            continue
        word = OUTCOME_WORDS.get(outcome, outcome.upper())
        steps = [st for st in sc.steps if j.step_outcome(sc, st) != "pass"]
        if outcome == "skipped" or not steps:
            lines.append(f"{word} {sc.name}: {sc.message or 'no step ran'}")
            continue
        for st in steps:
            st_word = OUTCOME_WORDS.get(j.step_outcome(sc, st), "")
            lines.append(f"{st_word} {sc.name} / {step_title(st)}: {st.message}".rstrip(": "))
            bad = j.unexpected_mismatches(sc, st) + [
                c for c in st.cells if c.status is CellStatus.CHECK_FAILED
            ]
            for c in bad[:cells_per_step]:
                lines.append(f"    {_cell_line(c)}")
            if len(bad) > cells_per_step:
                lines.append(f"    ... and {len(bad) - cells_per_step} more cells")
    return lines


def _cell_line(c: CellResult) -> str:
    where = f"{c.source} -> {c.target} {c.port}/{c.protocol}"
    if c.status is CellStatus.CHECK_FAILED:
        return f"{where}: probe could not run ({c.detail})"
    late = f" ({c.propagation_note})" if c.propagation_note else ""
    flaky = " (flaky)" if c.flaky else ""
    return f"{where}: expected {c.expected}, observed {c.observed}{flaky}{late}"


def counts_phrase(counts: Mapping[str, int], order: Iterable[str]) -> str:
    """``90 pass, 11 skipped``: the non-zero counts in a fixed order, then any others."""
    keys = [k for k in order if counts.get(k)] + sorted(set(counts) - set(order))
    return ", ".join(f"{counts[k]} {k}" for k in keys if counts.get(k)) or "none"


def summary_lines(j: Judgement) -> list[str]:
    """The run's totals in words (no Python structures) and the report's one sentence."""
    t = totals(j)
    scenarios = counts_phrase(t.scenarios, ("pass", "known", "fail", "error", "skipped"))
    cells = t.cells
    lines = [
        f"{len(j.run.scenarios)} scenarios: {scenarios}; cells: {cells['match']} match, "
        f"{cells['mismatch']} mismatch, {cells['check-failed']} check-failed, "
        f"{cells['not-supported']} not supported, {t.flaky} flaky.",
    ]
    by_path = path_line(j)
    if by_path:
        lines.append(f"{by_path}.")
    if j.run.retries:
        lines.append(f"retried after transient errors: {retries_phrase(j.run.retries)}.")
    latency = latency_phrase(
        latency_summary(c for sc in j.run.scenarios for st in sc.steps for c in st.cells)
    )
    if latency:
        lines.append(f"enforcement latency: {latency}.")
    pods = sum(sc.pods_created for sc in j.run.scenarios)
    if pods:
        waited = sum(sc.ready_wait_s for sc in j.run.scenarios)
        reused = sum(sc.pods_reused for sc in j.run.scenarios)
        lines.append(
            f"pods created: {pods}"
            + (f", reused {reused} times" if reused else "")
            + f"; {waited:.1f} s waiting for readiness (summed over scenarios)."
        )
    sampled = [st.sample for sc in j.run.scenarios for st in sc.steps if st.sample]
    if sampled:
        probed = sum(s["cells"] for s in sampled)
        population = sum(s["population"] for s in sampled)
        seeds = ", ".join(str(x) for x in sorted({s["seed"] for s in sampled}))
        lines.append(
            f"sampled probing: {probed} of {population} cells in {len(sampled)} steps "
            f"(seed {seeds}; results JSON `sample` per step)."
        )
    steps = step_time_phrase(j.run)
    if steps:
        lines.append(f"step wall time: {steps}.")
    return [*lines, one_sentence(j)]


def note_lines(j: Judgement, names: int = 3) -> list[str]:
    """One line per distinct scenario note (placement, pods that ran elsewhere than asked),
    naming the first scenarios it is about."""
    lines = []
    for note, scenarios in run_notes(j.run):
        prefix = "" if note.startswith("warning") else "note: "
        who = ", ".join(scenarios[:names])
        if len(scenarios) > names:
            who += f" and {len(scenarios) - names} more"
        lines.append(f"{prefix}{note} [{who}]")
    return lines


def step_time_phrase(run: RunResult) -> str:
    """``median 1.2 s, max 4.1 s over 201 steps (probe timeout 3 s, 1 s where the reference denies)``: how
    long steps took against the probe timeout a denied cell costs ("" without steps)."""
    durations = sorted(st.duration_s for sc in run.scenarios for st in sc.steps)
    if not durations:
        return ""
    timeout = run.options.get("probe_timeout_s")
    short = run.options.get("deny_timeout_s")
    if not isinstance(timeout, int | float):
        return f"median {percentile(durations, 0.5):.1f} s, max {durations[-1]:.1f} s"
    against = f"probe timeout {timeout:g} s"
    if isinstance(short, int | float) and 0 < short < timeout:
        against += f", {short:g} s where the reference denies"
    return (
        f"median {percentile(durations, 0.5):.1f} s, max {durations[-1]:.1f} s over "
        f"{len(durations)} steps ({against})"
    )


def retries_phrase(retries: Mapping[str, int]) -> str:
    """``2 API requests, 1 exec stream`` (what was retried after transient errors)."""
    api, execs = retries.get("api", 0), retries.get("exec", 0)
    return (
        f"{api} API request{'' if api == 1 else 's'}, "
        f"{execs} exec stream{'' if execs == 1 else 's'}"
    )
