"""kube.translate: API failures become typed errors that callers branch on (never message text)."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException

from conformance.errors import (
    Conflict,
    NotFound,
    PermanentClusterError,
    TransientClusterError,
)
from conformance.live.kube import translate


def _api_error(
    status: int, message: str = "", headers: dict[str, str] | None = None
) -> ApiException:
    exc = ApiException(status=status, reason="Reason")
    exc.body = json.dumps({"message": message})
    exc.headers = headers or {}
    return exc


@pytest.mark.parametrize(
    ("status", "kind"),
    [(404, NotFound), (409, Conflict), (403, PermanentClusterError), (422, PermanentClusterError)],
)
def test_permanent_statuses_are_typed(status: int, kind: type[PermanentClusterError]) -> None:
    err = translate(_api_error(status, "nope"), "get Pod x/a")
    assert type(err) is kind
    assert err.status == status
    assert str(err) == f"get Pod x/a: HTTP {status} Reason: nope"


def test_404_and_409_are_distinct() -> None:
    assert not isinstance(translate(_api_error(404), "w"), Conflict)
    assert not isinstance(translate(_api_error(409), "w"), NotFound)


def test_transient_status_keeps_retry_after() -> None:
    err = translate(_api_error(429, "slow down", {"Retry-After": "7"}), "list Pod")
    assert isinstance(err, TransientClusterError)
    assert err.status == 429 and err.retry_after == 7.0


def test_connection_errors_are_transient_without_status() -> None:
    err = translate(ConnectionResetError("reset"), "exec in pod x/a")
    assert isinstance(err, TransientClusterError) and err.status is None


def test_a_dropped_exec_stream_is_transient() -> None:
    """The WebSocket of an exec lost before the exit status: running the command again can help."""
    import websocket

    err = translate(
        websocket.WebSocketConnectionClosedException("Connection to remote host was lost."),
        "exec in pod x/a",
    )
    assert isinstance(err, TransientClusterError) and err.status is None
    assert str(err).startswith("exec in pod x/a: WebSocketConnectionClosedException")
