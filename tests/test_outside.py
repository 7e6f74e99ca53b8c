"""The outside-client probe template (``--outside-exec``): how a user's command is filled and run."""

from __future__ import annotations

import sys

import pytest

from conformance.errors import ClusterError, ConformanceError
from conformance.live.outside import OutsideExec, embedded_instance, embedded_template


def test_the_name_is_filled_in_and_the_probe_argv_appended() -> None:
    ex = OutsideExec("docker exec -i 'netpol-outside-{name}'")
    assert ex.argv("web", ["sh", "-c", "echo hi"]) == [
        "docker",
        "exec",
        "-i",
        "netpol-outside-web",
        "sh",
        "-c",
        "echo hi",
    ]


def test_the_command_really_runs_and_its_exit_code_and_output_come_back() -> None:
    ex = OutsideExec(f"{sys.executable} -c 'import sys; print(sys.argv[1:]); sys.exit(3)' {{name}}")
    res = ex.run("db", ["--flag"], timeout_s=30)
    assert (res.exit_code, res.stdout.strip()) == (3, "['db', '--flag']")


def test_a_missing_program_or_a_hanging_one_is_a_cluster_error() -> None:
    with pytest.raises(ClusterError, match="not found"):
        OutsideExec("no-such-program-xyz {name}").run("web", ["true"], 5)
    with pytest.raises(ClusterError, match="ran over 1 s"):
        OutsideExec(f"{sys.executable} -c 'import time; time.sleep(5)'").run("web", [], 1)


@pytest.mark.parametrize("bad", ["", "   ", "docker exec 'unclosed"])
def test_unusable_templates_are_one_line_errors(bad: str) -> None:
    with pytest.raises(ConformanceError, match="--outside-exec"):
        OutsideExec(bad)


def test_embedded_contexts_name_their_instance() -> None:
    assert embedded_instance("netpol-embedded") == "default"
    assert embedded_instance("netpol-embedded-run42") == "run42"
    assert embedded_instance("kind-kind") is None
    assert "cluster outside-exec --name run42 {name} --" in embedded_template("run42")
