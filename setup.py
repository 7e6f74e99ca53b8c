"""Build hook: the wheel carries the shipped scenario suites as ``conformance/suites``.

Why: the suites live at the repository root (``scenarios/``), where users and pytest find them in a
checkout; an installed package finds them inside itself (``conformance.scenario.suites``). All other
metadata is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SUITES = Path(__file__).resolve().parent / "scenarios"


class BuildWithSuites(build_py):
    def run(self) -> None:
        super().run()
        if not SUITES.is_dir():
            raise SystemExit(
                f"error: {SUITES} is missing: the wheel must carry the scenario suites"
            )
        target = Path(self.build_lib) / "conformance" / "suites"
        shutil.rmtree(target, ignore_errors=True)
        for src in sorted(SUITES.rglob("*")):
            if src.is_file() and src.suffix in (".yaml", ".yml"):
                dest = target / src.relative_to(SUITES)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)


setup(cmdclass={"build_py": BuildWithSuites})
