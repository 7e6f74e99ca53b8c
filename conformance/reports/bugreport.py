"""A Markdown bug report draft for a shrunk scenario: what the API says, what the cluster did,
and how to reproduce it."""

from __future__ import annotations

from conformance.live.results import CellResult, ScenarioResult


def bug_report(
    result: ScenarioResult, scenario_file: str, scenario_yaml: str, context: str, cni: str
) -> str:
    """The draft: one table row per mismatching cell, the scenario, and the commands."""
    cells = [c for st in result.steps for c in st.cells if c.status == "mismatch"]
    lines = [
        f"# NetworkPolicy enforcement differs from the API: {len(cells)} connection(s)",
        "",
        f"Cluster: `{context}`" + (f" ({cni})" if cni else ""),
        "",
        "| from | to | port | expected (per the API) | observed | why it is expected |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [_row(c) for c in cells]
    lines += [
        "",
        "## Reproduce",
        "",
        "The smallest scenario found that still shows it (`netpol-conformance shrink`):",
        "",
        "```yaml",
        scenario_yaml.rstrip(),
        "```",
        "",
        "```sh",
        f"netpol-conformance run {scenario_file} --context {context} --keep",
        "```",
        "",
        "then, for each connection (namespace names are those of the kept run):",
        "",
        "```sh",
        *[c.command for c in cells if c.command],
        "```",
        "",
    ]
    return "\n".join(lines)


def _row(c: CellResult) -> str:
    observed = f"{c.observed_verdict} ({c.observed})" if c.observed else "?"
    reason = c.reason.replace("|", "\\|").replace("\n", " ")
    return f"| {c.source} | {c.target} | {c.port}/{c.protocol} | {c.expected} | {observed} | {reason} |"
