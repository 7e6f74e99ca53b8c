"""Explicit limits on what a scenario or policy file may ask of the loader (docs/scenarios.md).

Why: a scenario file is input from anyone; without limits a 10 MB file, YAML nested 500 levels
deep, a "billion laughs" alias bomb, a placeholder that builds a gigabyte string or a topology with
a million cells could hang or exhaust memory. Each limit sits far above what a real scenario
needs (the largest shipped scenario is about 30 KB, nests 12 levels, has 8 pods and probes 1,536
cells over all its steps) and every message that enforces one names it. The limits on pods,
steps, policies and cells bound the work of binding and evaluating a scenario (evaluating takes
about 0.1 ms a cell, so MAX_CELLS is about ten seconds).
"""

from __future__ import annotations

MAX_FILE_BYTES = 1024 * 1024
"""Size of one scenario or policy file."""

MAX_DEPTH = 64
"""Nesting of mappings and sequences (counting what aliases expand to)."""

MAX_VALUES = 100_000
"""Values (scalars, mappings, sequences) of one document once every alias is expanded."""

MAX_PLACEHOLDER_OUTPUT = 64 * 1024
"""Characters of one string after its placeholders are resolved."""

MAX_PLACEHOLDER_NESTING = 16
"""Brackets nested inside one ``{{ ... }}`` placeholder."""

MAX_PODS = 500
"""Pods in a scenario (topology plus every ``add_pods``)."""

MAX_STEPS = 1000
"""Steps in a scenario."""

MAX_BOUND_POLICIES = 20_000
"""Policy objects validated over all steps: each step validates every policy applied so far."""

MAX_CELLS = 100_000
"""Probe cells (source x target x port/protocol/family) summed over every step of a scenario; a
step with ``probe.sample`` counts its sample (its full grid is computed as bitsets, bounded by
MAX_PODS: 500 x 500 pods take about a second a port)."""
