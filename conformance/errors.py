"""Every exception the library raises on purpose.

Tree::

    ConformanceError                 base; str(e) is one line meant for a user
    ├── ScenarioError                user input is wrong (scenario/policy file); carries file, line, key path
    │   └── ScenarioErrors           several ScenarioError found in one pass (str = one line each)
    ├── ExpectationMismatch          a declared expectation disagrees with the reference evaluator
    └── ClusterError                 talking to a cluster failed; ``status`` is the HTTP status, if any
        ├── TransientClusterError    a retry can help (429, 5xx, dropped stream); tenacity retries only these
        └── PermanentClusterError    a retry cannot help (403, 404 on create, 422 invalid object)
            ├── NotFound             HTTP 404: the object (or API) does not exist
            └── Conflict             HTTP 409: the object already exists, or changed meanwhile

Callers branch on these types (``except NotFound``), never on message text. User-input errors never
produce a traceback at the CLI; cluster errors say which object failed. ``ExitCode`` is the one
table of process exit codes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of every command (documented in the README)."""

    OK = 0
    FAILED = 1
    """The cluster disagrees with the reference, or declared expectations disagree with it."""
    USAGE = 2
    """Invalid scenario, input file or command line."""
    INFRASTRUCTURE = 3
    """The cluster could not be used (or ``doctor`` found problems)."""
    INTERRUPTED = 130
    """Ctrl-C or SIGTERM, after cleanup."""


class ConformanceError(Exception):
    """Base class; ``str()`` is a single line fit to show a user."""


@dataclass(frozen=True)
class Location:
    """Where in a user's file something is: file, 1-based line (0 if unknown) and key path."""

    file: str
    line: int = 0
    path: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}" if self.path else where


class ScenarioError(ConformanceError):
    """A scenario or policy file is invalid; the message names file, line and field."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        self.message = message
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class ScenarioErrors(ScenarioError):
    """Several independent problems found while validating one file."""

    def __init__(self, errors: Sequence[ScenarioError]) -> None:
        self.errors = tuple(errors)
        Exception.__init__(self, "\n".join(str(e) for e in self.errors))
        self.message = str(self)
        self.location = self.errors[0].location if self.errors else None

    @classmethod
    def collect(cls, errors: Iterable[ScenarioError]) -> ScenarioErrors:
        flat: list[ScenarioError] = []
        for err in errors:
            flat.extend(err.errors if isinstance(err, ScenarioErrors) else (err,))
        return cls(flat)


class ExpectationMismatch(ConformanceError):
    """A scenario's declared expectation disagrees with the reference evaluator."""


class ClusterError(ConformanceError):
    """Talking to a cluster failed; ``status`` is the HTTP status when the API answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransientClusterError(ClusterError):
    """A retry can help: throttling, server errors, dropped connections or exec streams."""

    def __init__(
        self, message: str, retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


class PermanentClusterError(ClusterError):
    """A retry cannot help: forbidden, not found, invalid object."""


class NotFound(PermanentClusterError):
    """HTTP 404: the object, or the API serving it, does not exist."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 404)


class Conflict(PermanentClusterError):
    """HTTP 409: the object already exists (create) or changed meanwhile (update)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 409)


def permanent_for_status(message: str, status: int | None) -> PermanentClusterError:
    """The most specific permanent error for an HTTP status."""
    if status == 404:
        return NotFound(message)
    if status == 409:
        return Conflict(message)
    return PermanentClusterError(message, status)
