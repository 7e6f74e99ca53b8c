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


def _help_texts() -> dict[str, str]:
    """``--help`` of every command and subcommand, rendered as argparse prints it."""
    import argparse

    from conformance.cli import build_parser

    out: dict[str, str] = {}

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        out[name] = parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(sub, f"{name} {sub_name}".strip())

    walk(build_parser(), "")
    return out


def test_help_texts_have_no_markup_and_show_defaults() -> None:
    texts = _help_texts()
    assert {"run", "clean", "report", "diff", "doctor", "cluster up"} <= set(texts)
    for name, text in texts.items():
        assert "`" not in text, f"{name} --help shows code markup"
    blocks: dict[str, str] = {}  # flag -> its help, from the rendered text
    for line in texts["run"].splitlines():
        if line.startswith("  -"):
            flag = line.split()[0].rstrip(",")
            blocks[flag] = line
        elif line.startswith("   ") and blocks:
            blocks[flag] += line
    run = " ".join(texts["run"].split())
    for flag, default in (
        ("--probe-timeout", "3"),
        ("--parallel", "16"),
        ("--deadline", "10.0"),
        ("--via", "pod"),
        ("--image-pull-policy", "IfNotPresent"),
        ("--output-dir", "reports"),
    ):
        assert f"(default: {default})" in " ".join(blocks[flag].split()), flag
    assert "image of the probe pods" in run and "agnhost:" in run
    assert "HTML, JUnit and Markdown reports" in run


@pytest.mark.parametrize(
    ("first", "full", "attempt"), [(1.0, 3, 1.0), (0.0, 3, 3.0), (5.0, 3, 3.0), (3.0, 3, 3.0)]
)
def test_deny_timeout_is_used_only_when_shorter_than_the_probe_timeout(
    first: float, full: int, attempt: float
) -> None:
    options = RunOptions(probe_timeout_s=full, deny_timeout_s=first)
    assert options.deny_probe_s == attempt
