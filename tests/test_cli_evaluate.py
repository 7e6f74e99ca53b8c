"""The `evaluate` command end to end: tables, explanations, JSON, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conformance.cli import main

DENY_X = textwrap.dedent(
    """\
    name: deny-x
    tags: [ingress]
    steps:
      - name: deny all ingress in x
        apply:
          - apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: deny-all, namespace: x}
            spec: {podSelector: {}}
        probe: {ports: [80], protocols: [TCP]}
        expect:
          default: allow
          rules:
            - {to: "x/*", verdict: %s}
      - name: policy removed
        delete: [x/deny-all]
        probe: {ports: [80], protocols: [TCP]}
        expect: {default: allow}
    """
)


def write(tmp_path: Path, verdict: str = "deny") -> Path:
    path = tmp_path / "deny-x.yaml"
    path.write_text(DENY_X % verdict)
    return path


def test_text_output_and_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(write(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "-- step 1: deny all ingress in x" in out
    assert "y/a    X   X   X   ?   .   .   .   .   ." in out
    assert "-- step 2: policy removed" in out


def test_disagreement_exit_1_lists_cells(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", str(write(tmp_path, "allow"))]) == 1
    captured = capsys.readouterr()
    assert "y/a -> x/b 80/TCP: declared allow, evaluator says deny" in captured.out
    assert "isolated by x/deny-all" in captured.out
    # 6 cross-pod cells into x from x, plus 18 from y and z, minus the 3 self cells: 24 total.
    assert "24 declared cells disagree" in captured.err


def test_explain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--explain", str(write(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "z/c -> x/a 80/TCP: deny: egress of z/c: not isolated" in out
    assert "x/a -> x/a 80/TCP: implementation-defined: self traffic" in out


def test_json_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--output", "json", str(write(tmp_path))]) == 0
    doc = json.loads(capsys.readouterr().out)
    (sc,) = doc["scenarios"]
    assert sc["name"] == "deny-x" and sc["file"].endswith("deny-x.yaml")
    cells = sc["steps"][0]["cells"]
    assert len(cells) == 81
    cell = next(c for c in cells if c["from"] == "y/a" and c["to"] == "x/b")
    assert cell == {
        "from": "y/a",
        "to": "x/b",
        "port": 80,
        "protocol": "TCP",
        "family": "IPv4",
        "verdict": "deny",
        "served": True,
        "path": "same-node",  # y/a and x/b are both the default spread's node-2
        "reason": cell["reason"],
        "declared": "deny",
    }
    paths = {(c["from"], c["to"]): c["path"] for c in cells}
    assert paths[("x/a", "x/b")] == "cross-node" and paths[("x/a", "x/c")] == "same-node"
    assert {c["verdict"] for c in sc["steps"][1]["cells"]} == {"allow", "implementation-defined"}


def test_include_self(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["evaluate", "--include-self", "--output", "json", str(write(tmp_path))])
    cells = json.loads(capsys.readouterr().out)["scenarios"][0]["steps"][0]["cells"]
    assert next(c for c in cells if c["from"] == c["to"] == "x/a")["verdict"] == "deny"


def test_printed_table_pastes_back_as_expectation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write(tmp_path)
    main(["evaluate", str(src)])
    out = capsys.readouterr().out
    grid = out.split("-- step 1: deny all ingress in x\n")[1].split("legend:")[0]
    pasted = tmp_path / "pasted.yaml"
    text = (DENY_X % "deny").replace(
        '      default: allow\n      rules:\n        - {to: "x/*", verdict: deny}\n',
        "      table: |\n" + textwrap.indent(grid, "        "),
    )
    pasted.write_text(text)
    assert main(["evaluate", str(pasted)]) == 0, capsys.readouterr()
    flipped = tmp_path / "flipped.yaml"
    flipped.write_text(text.replace("y/b    X", "y/b    ."))
    assert main(["evaluate", str(flipped)]) == 1


def test_folder_with_policy_files_and_python_m(tmp_path: Path) -> None:
    write(tmp_path)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p.yaml").write_text(
        "kind: NetworkPolicy\n"
    )  # not a scenario: skipped
    proc = subprocess.run(
        [sys.executable, "-m", "conformance", "evaluate", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("== ") == 1


def test_empty_folder_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "no scenario files found" in capsys.readouterr().err


def test_scenario_level_probe_is_the_default_of_each_step(tmp_path: Path) -> None:
    from conformance.scenario.load import load_scenario

    path = tmp_path / "p.yaml"
    path.write_text(
        "probe: {ports: [80], protocols: [UDP], from: ['x/*']}\n"
        "steps:\n  - name: one\n  - name: two\n    probe: {from: ['y/a'], to: ['z/*']}\n"
    )
    one, two = load_scenario(path).bind()
    assert one.sources == ("x/a", "x/b", "x/c") and len(one.targets) == 9
    assert one.grids == ((80, "UDP", "IPv4"),)
    assert two.sources == ("y/a",) and two.targets == ("z/a", "z/b", "z/c")
    assert two.grids == ((80, "UDP", "IPv4"),)
