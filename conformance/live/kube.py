"""The only module that talks to a Kubernetes API: the official client, behind ``ClusterOps``.

Objects travel as plain dicts (``_preload_content=False`` and JSON), so the rest of the package
never sees generated client models. Errors are translated into the errors-module tree: transient
ones (429, 5xx, connection resets, dropped exec streams) are retried here with tenacity, honouring
``Retry-After``; permanent ones (403, 404 on create, 409, 422) fail at once with the object named.

Exec needs care: ``kubernetes.stream.stream`` swaps the ApiClient's request method while it runs,
so every thread that execs gets its own ApiClient (a thread-local), and CRUD uses another.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import tenacity
import urllib3
import websocket
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from conformance.api.kinds import POLICY_KINDS
from conformance.errors import (
    ClusterError,
    Conflict,
    NotFound,
    PermanentClusterError,
    TransientClusterError,
    permanent_for_status,
)
from conformance.live.deploy import carries_labels
from conformance.live.ops import ExecResult

T = TypeVar("T")

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def _describe(kind: str, namespace: str | None, name: str) -> str:
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def translate(exc: Exception, what: str) -> ClusterError:
    """Map a client exception onto Transient/PermanentClusterError with a one-line message."""
    if isinstance(exc, ApiException):
        reason = exc.reason or ""
        message = ""
        try:
            body = json.loads(exc.body or "{}")
            message = body.get("message", "")
        except (ValueError, TypeError, AttributeError):
            message = str(exc.body or "")[:200]
        text = f"{what}: HTTP {exc.status} {reason}{': ' + message if message else ''}"
        if exc.status in TRANSIENT_STATUS:
            after = str((exc.headers or {}).get("Retry-After") or "")
            return TransientClusterError(
                text, float(after) if after.isdigit() else None, status=exc.status
            )
        return permanent_for_status(text, exc.status)
    if isinstance(
        exc, urllib3.exceptions.HTTPError | ConnectionError | OSError | websocket.WebSocketException
    ):
        # A WebSocketException is an exec stream that dropped (the connection was lost or closed
        # before the exit status): running the command again can help.
        return TransientClusterError(f"{what}: {type(exc).__name__}: {exc}")
    return PermanentClusterError(f"{what}: {type(exc).__name__}: {exc}")


def _wait(state: tenacity.RetryCallState) -> float:
    """Exponential backoff capped at 5 s; a server's Retry-After wins when it says more."""
    base = min(5.0, 0.2 * 2.0 ** (state.attempt_number - 1))
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, TransientClusterError) and exc.retry_after is not None:
        return max(base, exc.retry_after)
    return base


def retrying(
    func: Callable[[], T], attempts: int = 8, on_retry: Callable[[], None] | None = None
) -> T:
    """Run ``func`` retrying only TransientClusterError (bounded attempts with backoff);
    ``on_retry`` is called before each retry (so retries can be counted)."""
    retryer = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(TransientClusterError),
        stop=tenacity.stop_after_attempt(attempts),
        wait=_wait,
        reraise=True,
        before_sleep=(lambda _state: on_retry()) if on_retry is not None else None,
    )
    return retryer(func)


# Where a pod finds its ServiceAccount's credentials; the variable overrides it (tests, odd mounts).
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SERVICE_ACCOUNT_DIR_ENV = "NETPOL_CONFORMANCE_SERVICEACCOUNT_DIR"
IN_CLUSTER_CONTEXT = "in-cluster"  # the context name a run inside the cluster reports


class KubeCluster:
    """A live cluster through the official ``kubernetes`` client (kind, the embedded one, ...)."""

    def __init__(
        self,
        kubeconfig: str | None = None,
        context: str | None = None,
        *,
        in_cluster: k8s.Configuration | None = None,
    ) -> None:
        if in_cluster is not None:  # see KubeCluster.in_cluster
            self._setup(in_cluster, IN_CLUSTER_CONTEXT, None)
            return
        try:
            contexts, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)
        except (k8s_config.ConfigException, OSError) as exc:
            raise PermanentClusterError(
                f"cannot read kubeconfig {kubeconfig or '~/.kube/config'}: {exc}"
            ) from None
        names = [c["name"] for c in contexts]
        self.context = context or active["name"]
        if self.context not in names:
            raise PermanentClusterError(
                f"context {self.context!r} not in kubeconfig; contexts: {', '.join(names)}"
            )
        config = k8s.Configuration()
        k8s_config.load_kube_config(
            config_file=kubeconfig, context=self.context, client_configuration=config
        )
        self._setup(config, self.context, kubeconfig)

    @classmethod
    def in_cluster(cls, account_dir: str | None = None) -> KubeCluster:
        """Inside a pod: the API server from ``KUBERNETES_SERVICE_HOST``/``_PORT``, the
        ServiceAccount's ``token`` and ``ca.crt`` from ``account_dir`` (default
        ``$NETPOL_CONFORMANCE_SERVICEACCOUNT_DIR``, else the standard mount)."""
        directory = Path(
            account_dir or os.environ.get(SERVICE_ACCOUNT_DIR_ENV) or SERVICE_ACCOUNT_DIR
        )
        config = k8s.Configuration()
        try:
            k8s_config.incluster_config.InClusterConfigLoader(
                token_filename=str(directory / "token"), cert_filename=str(directory / "ca.crt")
            ).load_and_set(config)
        except k8s_config.ConfigException as exc:
            raise PermanentClusterError(
                f"cannot use in-cluster credentials ({exc}): run inside a pod with a "
                "ServiceAccount, or give --kubeconfig/--context instead of --in-cluster"
            ) from None
        return cls(in_cluster=config)

    def _setup(self, config: k8s.Configuration, context: str, kubeconfig: str | None) -> None:
        self.context = context
        self._kubeconfig = kubeconfig
        self.kubeconfig = kubeconfig or ""  # "" = the default (KUBECONFIG or ~/.kube/config)
        self._config = config
        self._api = k8s.ApiClient(self._config)
        self._local = threading.local()
        self.server = self._config.host
        self._retries = {"api": 0, "exec": 0}
        self._retries_lock = threading.Lock()

    def _count_retry(self, what: str) -> None:
        with self._retries_lock:
            self._retries[what] += 1

    def retry_counts(self) -> dict[str, int]:
        """Transient failures retried so far: ``api`` requests and ``exec`` streams."""
        with self._retries_lock:
            return dict(self._retries)

    def close(self) -> None:
        self._api.close()

    # -- helpers -------------------------------------------------------------------------------
    def _call(self, what: str, func: Callable[[], Any]) -> Any:
        def once() -> Any:
            try:
                resp = func()
            except Exception as exc:
                raise translate(exc, what) from None
            return json.loads(resp or b"{}")

        return retrying(once, on_retry=lambda: self._count_retry("api"))

    def _path(self, kind: str, namespace: str | None, name: str | None = None) -> str:
        if kind in ("Namespace", "Node"):
            base = f"/api/v1/{kind.lower()}s"
        elif kind in ("Pod", "Service", "Event"):
            scope = f"/namespaces/{namespace}" if namespace else ""  # no namespace: all of them
            base = f"/api/v1{scope}/{kind.lower()}s"
        elif kind in ("DaemonSet", "Deployment"):  # read-only: `doctor` detects the CNI
            scope = f"/namespaces/{namespace}" if namespace else ""
            base = f"/apis/apps/v1{scope}/{kind.lower()}s"
        elif kind in POLICY_KINDS:
            k = POLICY_KINDS[kind]
            scope = f"/namespaces/{namespace}" if k.namespaced and namespace else ""
            base = f"/apis/{k.group}/{k.version}{scope}/{k.plural}"
        else:
            raise PermanentClusterError(f"kind {kind} is not managed by netpol-conformance")
        return f"{base}/{name}" if name else base

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Sequence[tuple[str, str]] = (),
        content_type: str = "application/json",
    ) -> bytes:
        """One raw API call; returns the body, raises ApiException on an error status."""
        resp = self._api.call_api(
            *self._api.param_serialize(
                method=method,
                resource_path=path,
                query_params=list(query),
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
            ),
            _request_timeout=30,
        )
        data: bytes = resp.read()
        if not 200 <= resp.status < 300:
            raise ApiException(http_resp=resp)
        return data

    # -- ClusterOps ----------------------------------------------------------------------------
    def server_version(self) -> str:
        info = self._call("GET /version", lambda: self._request("GET", "/version"))
        return str(info.get("gitVersion", "unknown"))

    def served_kinds(self) -> set[str]:
        """Policy kinds this cluster serves (discovery of networking and policy groups)."""
        served: set[str] = set()
        for kind, k in POLICY_KINDS.items():
            path = f"/apis/{k.group}/{k.version}"
            try:
                doc = self._call(f"discovery {path}", lambda path=path: self._request("GET", path))  # type: ignore[misc]
            except PermanentClusterError:
                continue
            if any(r.get("name") == k.plural for r in doc.get("resources", [])):
                served.add(kind)
        return served

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        kind, ns, name = _ident(obj)
        result: dict[str, Any] = self._call(
            f"create {_describe(kind, ns, name)}",
            lambda: self._request("POST", self._path(kind, ns), dict(obj)),
        )
        return result

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create, or replace the existing object of that name (keeping its resourceVersion)."""
        kind, ns, name = _ident(obj)
        try:
            return self.create(obj)
        except Conflict:
            pass
        current = self.get(kind, ns, name)
        body = {
            **obj,
            "metadata": {
                **obj.get("metadata", {}),
                "resourceVersion": current["metadata"]["resourceVersion"],
            },
        }
        result: dict[str, Any] = self._call(
            f"replace {_describe(kind, ns, name)}",
            lambda: self._request("PUT", self._path(kind, ns, name), body),
        )
        return result

    def delete(self, kind: str, namespace: str | None, name: str) -> None:
        what = f"delete {_describe(kind, namespace, name)}"
        with contextlib.suppress(NotFound):  # already gone is fine for a delete
            self._call(
                what,
                lambda: self._request(
                    "DELETE", self._path(kind, namespace, name), {"gracePeriodSeconds": 0}
                ),
            )

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            f"get {_describe(kind, namespace, name)}",
            lambda: self._request("GET", self._path(kind, namespace, name)),
        )
        return result

    def list_items(
        self, kind: str, namespace: str | None = None, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        query = [("labelSelector", label_selector)] if label_selector else []
        doc = self._call(
            f"list {kind} in {namespace or 'cluster'}",
            lambda: self._request("GET", self._path(kind, namespace), query=query),
        )
        items: list[dict[str, Any]] = doc.get("items", [])
        return items

    def patch_labels(
        self, kind: str, namespace: str | None, name: str, labels: Mapping[str, str | None]
    ) -> None:
        # JSON merge patch: a null value removes the label, as `kubectl label key-` does.
        self._call(
            f"label {_describe(kind, namespace, name)}",
            lambda: self._request(
                "PATCH",
                self._path(kind, namespace, name),
                {"metadata": {"labels": dict(labels)}},
                content_type="application/merge-patch+json",
            ),
        )

    def delete_collection(self, kind: str, label_selector: str) -> list[str]:
        """Delete every object of ``kind`` carrying the labels; returns their names."""
        names = []
        for item in self.list_items(kind, None, label_selector):
            if not carries_labels(item, label_selector):
                continue  # the server ignored the selector: never delete what it did not match
            meta = item["metadata"]
            self.delete(kind, meta.get("namespace"), meta["name"])
            names.append(meta["name"])
        return names

    def events_for(self, namespace: str, name: str) -> list[str]:
        try:
            items = self.list_items("Event", namespace)
        except ClusterError:
            return []
        return [
            f"{e.get('reason', '')}: {e.get('message', '')}".strip()
            for e in items
            if (e.get("involvedObject") or {}).get("name") == name
        ]

    def _exec_api(self) -> k8s.CoreV1Api:
        api = getattr(self._local, "core", None)
        if api is None:
            api = k8s.CoreV1Api(k8s.ApiClient(self._config))
            self._local.core = api
        return api

    def exec(
        self, namespace: str, pod: str, container: str, argv: Sequence[str], timeout_s: float
    ) -> ExecResult:
        """Run ``argv`` in a container; the exit code comes from the error channel's Status."""
        what = f"exec in pod {namespace}/{pod}"

        def once() -> ExecResult:
            try:
                ws = stream(
                    self._exec_api().connect_get_namespaced_pod_exec,
                    pod,
                    namespace,
                    command=list(argv),
                    container=container,
                    stderr=True,
                    stdin=False,
                    stdout=True,
                    tty=False,
                    _preload_content=False,
                )
            except Exception as exc:
                raise translate(exc, what) from None
            try:
                ws.run_forever(timeout=timeout_s)
                if ws.is_open():
                    ws.close()
                    raise TransientClusterError(f"{what}: no exit status after {timeout_s:.0f} s")
                stdout, stderr = ws.read_stdout() or "", ws.read_stderr() or ""
                try:
                    code = ws.returncode
                except (ValueError, KeyError, IndexError, TypeError) as exc:
                    raise TransientClusterError(
                        f"{what}: exec ended without a usable status ({exc})"
                    ) from None
                if code is None:
                    raise TransientClusterError(
                        f"{what}: the exec stream dropped before an exit status"
                    )
                return ExecResult(int(code), stdout, stderr)
            except ClusterError:
                raise
            except Exception as exc:
                raise translate(exc, what) from None
            finally:
                if ws.is_open():
                    ws.close()

        return retrying(once, attempts=4, on_retry=lambda: self._count_retry("exec"))


def _ident(obj: Mapping[str, Any]) -> tuple[str, str | None, str]:
    meta = obj.get("metadata") or {}
    return str(obj.get("kind")), meta.get("namespace"), str(meta.get("name"))
