"""netpol-conformance: check that a CNI enforces Kubernetes network policy exactly as the API defines it.

The public, pytest-free library API lives in the submodules:
``conformance.scenario.load`` (load scenario files), ``conformance.reference.evaluator`` (reference verdicts),
``conformance.reference.truthtable`` (print and parse grids). The CLI is ``conformance.cli``.
"""

from __future__ import annotations

__version__ = "0.1.0"
