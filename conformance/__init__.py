"""netpol-conformance: check that a CNI enforces Kubernetes network policy exactly as the API defines it.

The public, pytest-free library API lives in the submodules:
``conformance.scenario.load`` (load scenario files), ``conformance.reference.evaluator`` (reference verdicts),
``conformance.reference.truthtable`` (print and parse grids). The CLI is ``conformance.cli``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:  # the version comes from git tags at build time (setuptools-scm); CHANGELOG.md says what changed
    __version__ = version("netpol-conformance")
except PackageNotFoundError:  # a source tree on PYTHONPATH that was never installed
    __version__ = "0.0.0.dev0"
