"""Hostile scenario files: every limit, placeholder misuse and file trick is one clear error line.

Each case is an input that once gave a traceback, a hang or a memory blow-up (or was accepted
although wrong); now ``evaluate`` answers exit 2 with ``file:line: field: problem``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from conformance.cli import main
from conformance.scenario import limits
from conformance.scenario.load import load_scenario

ROOT = Path(__file__).resolve().parents[1]

POLICY = """\
steps:
  - name: s
    apply:
      - apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: p, namespace: x}
        spec:
          podSelector: {}
"""


def with_cidr(value: str) -> str:
    """A scenario whose ipBlock cidr (line 9) is ``value``."""
    return POLICY + f"          ingress: [{{from: [{{ipBlock: {{cidr: {json.dumps(value)}}}}}]}}]\n"


def alias_bomb(levels: int) -> str:
    """The "billion laughs": each anchor lists the previous one nine times."""
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\nsteps:\n  - name: s\n"


CASES = [
    ("recursive alias", "steps: &a [*a]\n", 1, "recursive alias"),
    ("recursive merge key", "x: &a {<<: *a}\nsteps:\n  - name: s\n", 1, "recursive alias"),
    (
        "deep nesting",
        "steps:\n  - name: s\n    apply: " + "[" * 500 + "]" * 500 + "\n",
        3,
        f"nested more than {limits.MAX_DEPTH} levels deep (limit MAX_DEPTH)",
    ),
    ("billion laughs", alias_bomb(8), 0, "(limit MAX_VALUES)"),
    (
        "deep through aliases",
        "a: &a "
        + "[" * 40
        + "]" * 40
        + "\nb: &b "
        + "[" * 40
        + "*a"
        + "]" * 40
        + "\nsteps: [*b]\n",
        0,
        "levels deep once aliases are expanded (limit MAX_DEPTH)",
    ),
    ("invalid timestamp", "steps:\n  - name: 2001-13-45\n", 2, "invalid timestamp value"),
    ("tagged non-timestamp", "steps:\n  - name: !!timestamp x\n", 2, "invalid timestamp value"),
    (
        "huge integer",
        "steps:\n  - name: s\n    probe: {ports: [" + "9" * 5000 + "]}\n",
        3,
        "invalid int value",
    ),
    ("non-scalar key", "steps:\n  - name: s\n    ? [a]\n    : 1\n", 3, "keys must be plain"),
    ("template multiplication", with_cidr("{{ 'a' * 1000000000 }}"), 9, "mul expressions"),
    ("template power", with_cidr("{{ 9**9**9 }}"), 9, "pow expressions"),
    (
        "template loop",
        with_cidr("{% for i in range(99999999999999999999) %}x{% endfor %}"),
        9,
        "statements ({% ... %}) are not supported",
    ),
    ("template attribute", with_cidr("{{ ip.__class__ }}"), 9, "getattr expressions"),
    ("template filter", with_cidr("{{ pod_cidr | upper }}"), 9, "filter expressions"),
    ("unknown name", with_cidr("{{ cycler }}"), 9, "'cycler' is not a placeholder"),
    ("ip without key", with_cidr("{{ ip() }}"), 9, "ip() takes a quoted key"),
    ("ip of a number", with_cidr("{{ ip(1) }}"), 9, "ip() takes quoted strings"),
    ("unknown function", with_cidr("{{ lipsum(9) }}"), 9, "only ip() and ns() can be called"),
    ("template syntax", with_cidr("{{ ip('x/a' }}"), 9, "is not valid"),
    (
        "template nesting",
        with_cidr("{{ " + "(" * 30 + "'a'" + ")" * 30 + " }}"),
        9,
        "(limit MAX_PLACEHOLDER_NESTING)",
    ),
    (
        "template output",
        with_cidr("{{ pod_cidr }}" * 6000),
        9,
        "(limit MAX_PLACEHOLDER_OUTPUT)",
    ),
    (
        "undersized pod CIDR",
        "topology:\n  pod_cidr: 10.0.0.0/30\nsteps:\n  - name: s\n",
        2,
        "topology.pod_cidr: pod CIDR 10.0.0.0/30 is too small",
    ),
    (
        "invalid pod CIDR",
        "topology:\n  pod_cidr: 10.0.0.0/33\nsteps:\n  - name: s\n",
        2,
        "topology.pod_cidr: '10.0.0.0/33' is not a CIDR",
    ),
    (
        "metadata a list",
        POLICY.replace("{name: p, namespace: x}", "[a, b]"),
        6,
        "metadata: expected a mapping, got a list",
    ),
    (
        "metadata a string",
        POLICY.replace("{name: p, namespace: x}", "hello"),
        6,
        "metadata: expected a mapping, got a string",
    ),
    ("probe port 0", "steps:\n  - name: s\n    probe: {ports: [0]}\n", 3, "ports[0]: Input"),
    ("probe port -5", "steps:\n  - name: s\n    probe: {ports: [-5]}\n", 3, "greater than"),
    ("probe port 70000", "steps:\n  - name: s\n    probe: {ports: [70000]}\n", 3, "less than"),
    (
        "expect port true",
        "steps:\n  - name: s\n    expect: {default: allow, rules: [{ports: [true], verdict: deny}]}\n",
        3,
        "valid integer (got True)",
    ),
    *[
        (
            f"topology port {text}",
            f"topology:\n  ports: [{{port: {text}}}]\nsteps:\n  - name: s\n",
            2,
            f"topology.ports[0].port: Input should be a valid integer (got {shown})",
        )
        for text, shown in (('"80"', "'80'"), ("80.0", "80.0"), ("true", "True"))
    ],
    (
        "host_network a string",
        "topology:\n  namespaces: {x: {}}\n  pods: [{name: x/a, host_network: 'yes'}]\n"
        "steps:\n  - name: s\n",
        3,
        "host_network: Input should be a valid boolean",
    ),
    ("ipBlock with a zone", with_cidr("fe80::1%eth0/64"), 9, "a CIDR has no IPv6 zone"),
    (
        "external address with a zone",
        "external: [{name: e, ip: 'fe80::1%eth0'}]\nsteps:\n  - name: s\n",
        1,
        "external[0].ip: fe80::1%eth0 has an IPv6 zone",
    ),
    (
        "policy file absolute",
        "steps:\n  - name: s\n    apply: [{file: /dev/zero}]\n",
        3,
        "must be a relative path under the scenario's folder",
    ),
    (
        "policy file outside",
        "steps:\n  - name: s\n    apply: [{file: ../../../../etc/shadow}]\n",
        3,
        "is outside the scenario's folder",
    ),
]


@pytest.mark.parametrize(("body", "line", "text"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_hostile_scenario_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, line: int, text: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    started = time.monotonic()
    assert main(["evaluate", str(path)]) == 2
    assert time.monotonic() - started < 10
    err = capsys.readouterr().err
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, err
    where = f"error: {path}:{line}: " if line else f"error: {path}:"
    assert errors[0].startswith(where), errors[0]
    assert text in errors[0], errors[0]
    assert "Traceback" not in err and "internal error" not in err


def one_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], file: Path) -> str:
    assert main(["evaluate", str(file)]) == 2
    err = capsys.readouterr().err
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, err
    return errors[0]


def test_file_size_limit_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("steps:\n  - name: s\n" + "#" * limits.MAX_FILE_BYTES)
    assert "(limit MAX_FILE_BYTES)" in one_error(tmp_path, capsys, path)


def test_policy_file_must_be_a_regular_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.mkfifo(tmp_path / "fifo.yaml")
    path = tmp_path / "s.yaml"
    path.write_text("steps:\n  - name: s\n    apply: [{file: fifo.yaml}]\n")
    line = one_error(tmp_path, capsys, path)
    assert line.startswith(f"error: {path}:3: steps[0].apply[0].file: policy file 'fifo.yaml': ")
    assert "not a regular file" in line


def test_policy_file_symlink_out_of_the_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "outside.yaml").write_text("kind: NetworkPolicy\n")
    (tmp_path / "sub" / "link.yaml").symlink_to(tmp_path / "outside.yaml")
    path = tmp_path / "sub" / "s.yaml"
    path.write_text("steps:\n  - name: s\n    apply: [{file: link.yaml}]\n")
    assert "is outside the scenario's folder" in one_error(tmp_path, capsys, path)


def test_policy_file_below_the_folder_is_read(tmp_path: Path) -> None:
    (tmp_path / "pol").mkdir()
    (tmp_path / "pol" / "p.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: p, namespace: x}\nspec: {podSelector: {}}\n"
    )
    path = tmp_path / "s.yaml"
    path.write_text("steps:\n  - name: s\n    apply: [{file: pol/p.yaml}]\n")
    assert [p.name for p in load_scenario(path).offline_steps[0].policies] == ["p"]


def test_policy_file_size_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.yaml").write_text("#" * (limits.MAX_FILE_BYTES + 1))
    path = tmp_path / "s.yaml"
    path.write_text("steps:\n  - name: s\n    apply: [{file: p.yaml}]\n")
    line = one_error(tmp_path, capsys, path)
    assert line.startswith(f"error: {path}:3: ") and "(limit MAX_FILE_BYTES)" in line


@pytest.mark.parametrize(
    ("data", "line", "text"),
    [
        (b"steps:\n  - name: s\xff\n", 2, "column 12: byte 0xff is not valid UTF-8"),
        (b"steps:\n  - name: \xc3\n", 2, "column 11: byte 0xc3 is not valid UTF-8"),
        (b"steps:\n  - name: s\n  \x00\n", 3, "column 3: character U+0000 is not allowed"),
        (b"steps:\n  - name: s\x07\n", 2, "character U+0007 is not allowed"),
    ],
)
def test_bytes_that_are_not_text_name_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes, line: int, text: str
) -> None:
    path = tmp_path / "bytes.yaml"
    path.write_bytes(data)
    error = one_error(tmp_path, capsys, path)
    assert error.startswith(f"error: {path}:{line}: ") and text in error


def test_each_file_is_reported_and_the_others_still_evaluated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: &a [*a]\n")
    examples = ROOT / "scenarios" / "examples"
    assert main(["evaluate", str(bad), str(examples), "--output", "json"]) == 2
    out, err = capsys.readouterr()
    names = [s["name"] for s in json.loads(out)["scenarios"]]
    assert len(names) == len(list(examples.glob("*.yaml"))) and names
    assert f"error: {bad}:1: " in err and "1 scenario file(s) have errors" in err


def pods(n: int) -> str:
    return "".join(f"    - {{name: x/p{i}}}\n" for i in range(n))


def test_pod_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "topology:\n  namespaces: {x: {}}\n  pods:\n"
        + pods(limits.MAX_PODS + 1)
        + "steps:\n  - name: s\n"
    )
    assert "(limit MAX_PODS)" in one_error(tmp_path, capsys, path)


def test_cell_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 200 pods probed on 3 ports: 120,000 cells in one step.
    path = tmp_path / "s.yaml"
    path.write_text(
        "topology:\n  namespaces: {x: {}}\n  ports: [{port: 1}, {port: 2}, {port: 3}]\n  pods:\n"
        + pods(200)
        + "steps:\n  - name: s\n"
    )
    started = time.monotonic()
    assert "(limit MAX_CELLS)" in one_error(tmp_path, capsys, path)
    assert time.monotonic() - started < 10


def test_step_and_policy_limits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("steps:\n" + "  - {name: s}\n" * (limits.MAX_STEPS + 1))
    assert "(limit MAX_STEPS)" in one_error(tmp_path, capsys, path)
    policy = "{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p%d, namespace: x}, spec: {podSelector: {}}}"
    step = "  - name: s%d\n    apply: [" + ", ".join([policy] * 20) + "]\n"
    path.write_text(
        "steps:\n" + "".join(step % (i, *range(i * 20, i * 20 + 20)) for i in range(50))
    )
    assert "(limit MAX_BOUND_POLICIES)" in one_error(tmp_path, capsys, path)


def test_documented_placeholders_still_render(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        with_cidr("{{ ip('x/b') }}/{{ '128' if ':' in ip('x/b') else '32' }}").replace(
            "name: p,", "name: \"{{ ns('x') ~ '-p' }}\","
        )
    )
    step = load_scenario(path).offline_steps[0]
    (obj,) = step.objects
    ip = next(p.ip for p in step.state.pods if p.key == "x/b")
    assert obj["metadata"]["name"] == "x-p"
    assert obj["spec"]["ingress"][0]["from"][0]["ipBlock"]["cidr"] == f"{ip}/32"
