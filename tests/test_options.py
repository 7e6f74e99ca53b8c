"""Run options are defined once (``conformance.live.options``): the ``run`` command's flags take
their defaults from ``RunOptions`` and set the fields the table names."""

from __future__ import annotations

import argparse

import pytest

from conformance.cli import build_parser
from conformance.commands.options import positive_int
from conformance.commands.run import options_from_args
from conformance.live.options import RUN_OPTIONS, RunOption, RunOptions, Via


def run_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def test_cli_defaults_are_the_run_options_defaults() -> None:
    assert options_from_args(run_args(), {}) == RunOptions()


def test_cli_flags_set_the_fields_the_table_names() -> None:
    args = run_args(
        "--via=service", "--probe-timeout=5", "--parallel=2", "--deadline=1.5", "--include-self"
    )
    options = options_from_args(args, {})
    assert options.via is Via.SERVICE
    assert (options.probe_timeout_s, options.parallel) == (5, 2)
    assert (options.convergence_deadline_s, options.include_self) == (1.5, True)


def test_cli_rejects_a_via_outside_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        run_args("--via", "servcie")
    assert exc.value.code == 2
    assert "invalid choice: 'servcie'" in capsys.readouterr().err


def test_table_entries_name_fields_with_defaults() -> None:
    assert {o.name for o in RUN_OPTIONS} >= {"via", "probe-timeout", "parallel", "deadline"}
    assert next(o for o in RUN_OPTIONS if o.name == "via").choices == ("pod", "service")
    with pytest.raises(ValueError, match="no field"):
        RunOption("nope", "no_such_field", int, "")
    with pytest.raises(ValueError, match="no field"):
        RunOption("deploy", "deploy", str, "")  # a default_factory is not a plain default


@pytest.mark.parametrize(
    ("name", "raw", "value"),
    [
        ("via", "service", Via.SERVICE),
        ("parallel", "8", 8),
        ("deadline", "2.5", 2.5),
        ("include-self", "on", True),
        ("include-self", "false", False),
        ("include-self", True, True),
    ],
)
def test_convert(name: str, raw: object, value: object) -> None:
    assert next(o for o in RUN_OPTIONS if o.name == name).convert(raw) == value


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("via", "servcie", "expected one of: pod, service"),
        ("parallel", "many", "expected a whole number"),
        ("deadline", "soon", "expected a number"),
    ],
)
def test_convert_says_what_is_accepted(name: str, raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        next(o for o in RUN_OPTIONS if o.name == name).convert(raw)


def test_positive_int() -> None:
    assert positive_int("3") == 3
    for bad in ("0", "-1", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match="at least 1"):
            positive_int(bad)
