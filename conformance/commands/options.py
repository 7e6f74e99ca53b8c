"""argparse pieces shared by commands: the run options rendered as flags, and argument types.

The run options themselves (names, types, defaults, help) are the table
``conformance.live.options.RUN_OPTIONS``; the pytest plugin renders the same table as
``--netpol-*`` options.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from conformance.live.options import RUN_OPTIONS, RunOption


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


def help_text(doc: str | None) -> str:
    """A module docstring as ``--help`` prose: the first line's ``command``: label dropped,
    code marks (double and single backquotes) removed, the first letter capitalised."""
    text = re.sub(r"^``[^`]*``:\s*", "", (doc or "").strip())
    text = re.sub(r"``([^`]*)``", r"\1", text)
    text = re.sub(r"`([^`]*)`", r"\1", text)
    return text[:1].upper() + text[1:]


def add_run_options(group: Any) -> None:
    """``--via``, ``--probe-timeout``, ... on an argparse parser or argument group."""
    for o in RUN_OPTIONS:
        if o.is_switch:
            group.add_argument(f"--{o.name}", action="store_true", help=o.help)
        elif o.choices:
            # Plain strings: argparse's own "invalid choice" message lists them.
            group.add_argument(
                f"--{o.name}",
                choices=o.choices,
                default=o.default,
                help=f"{o.help} (default: %(default)s)",
            )
        else:
            group.add_argument(
                f"--{o.name}",
                type=o.kind if o.kind in (int, float) else _checked(o),
                default=o.default,
                metavar=o.metavar,
                help=f"{o.help} (default: %(default)s)" if o.default != "" else o.help,
            )


def _checked(o: RunOption) -> Any:
    """argparse type of an option with its own converter: its message, not "invalid value"."""

    def convert(text: str) -> Any:
        try:
            return o.convert(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def run_option_values(args: argparse.Namespace) -> dict[str, Any]:
    """``RunOptions`` keyword arguments from arguments parsed with ``add_run_options``."""
    return {o.field: o.convert(getattr(args, o.dest)) for o in RUN_OPTIONS}
