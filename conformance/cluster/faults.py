"""API fault injection: throttling, server errors, slow answers and exec streams that drop.

Why: real control planes misbehave under load; the runner's retry handling must be exercised
against real failed requests, not mocks. Decisions come from a seeded RNG so runs can be replayed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from conformance.errors import ConformanceError

ERROR_CODES = (429, 500, 503)


@dataclass(frozen=True)
class Faults:
    """Fractions in [0, 1]: requests answered with an error, delayed, exec streams dropped."""

    error_rate: float = 0.0
    error_codes: tuple[int, ...] = ERROR_CODES
    delay_rate: float = 0.0
    delay_seconds: float = 0.5
    exec_drop_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("error_rate", "delay_rate", "exec_drop_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConformanceError(
                    f"--{name.replace('_', '-')} must be between 0 and 1, got {value}"
                )
        if self.delay_seconds < 0:
            raise ConformanceError(f"--delay-seconds must be >= 0, got {self.delay_seconds}")
        bad = [c for c in self.error_codes if c not in ERROR_CODES]
        if bad or not self.error_codes:
            raise ConformanceError(
                f"--error-codes must be a subset of 429,500,503, got {self.error_codes}"
            )

    @property
    def active(self) -> bool:
        return bool(self.error_rate or self.delay_rate or self.exec_drop_rate)


class FaultPlan:
    """Draws fault decisions from seeded RNGs, one per kind of fault: the n-th exec stream is
    dropped or not whatever number of API requests came between (one shared stream made the
    exec drops of a run depend on how its requests interleaved)."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._errors = random.Random(f"{faults.seed}:error")
        self._delays = random.Random(f"{faults.seed}:delay")
        self._drops = random.Random(f"{faults.seed}:exec")
        self.injected = {"errors": 0, "delays": 0, "exec_drops": 0}

    def error(self) -> int | None:
        """HTTP status to answer instead of serving, or None."""
        if self.faults.error_rate and self._errors.random() < self.faults.error_rate:
            self.injected["errors"] += 1
            return self._errors.choice(self.faults.error_codes)
        return None

    def delay(self) -> float:
        """Seconds to wait before serving (0 for most requests)."""
        if self.faults.delay_rate and self._delays.random() < self.faults.delay_rate:
            self.injected["delays"] += 1
            return self.faults.delay_seconds
        return 0.0

    def drop_exec(self) -> bool:
        """Whether this exec stream is cut before its exit status is sent."""
        if self.faults.exec_drop_rate and self._drops.random() < self.faults.exec_drop_rate:
            self.injected["exec_drops"] += 1
            return True
        return False
