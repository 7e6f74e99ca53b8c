"""The embedded cluster's Kubernetes REST API over HTTP on loopback (aiohttp).

Why: the runner and ``kubectl`` must talk to the embedded cluster exactly as to a real one: same
URLs, object shapes, status codes and ``Status`` bodies, and ``pods/exec`` over WebSocket with
the ``v4``/``v5.channel.k8s.io`` subprotocols.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hmac
import ipaddress
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import WSMsgType, web

from conformance.cluster import (
    discovery,
    openapi,
    patch,
    protobuf,
    scheduler,
    services,
    tables,
    validation,
)
from conformance.cluster.controller import Controller
from conformance.cluster.dataplane import Endpoint
from conformance.cluster.execution import Executor
from conformance.cluster.faults import FaultPlan
from conformance.cluster.selectors import SelectorSyntaxError, parse_field_query, parse_query
from conformance.cluster.store import (
    ADMIN_NETWORK_POLICIES,
    BASELINE_ADMIN_NETWORK_POLICIES,
    CLUSTER_NETWORK_POLICIES,
    NAMESPACES,
    NETWORK_POLICIES,
    NODES,
    PODS,
    RESOURCES,
    SERVICES,
    AlreadyExists,
    Conflict,
    NotFound,
    Resource,
    Store,
    now_rfc3339,
)

log = logging.getLogger(__name__)
EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
JSON = "application/json"
MAX_BODY_BYTES = 3 * 1024 * 1024
"""Request bodies above this get 413, like kube-apiserver's limit of about 3 MiB."""
MAX_HEADER_BYTES = 1024 * 1024
"""Request line and each header up to this, like Go's ``http.DefaultMaxHeaderBytes`` (1 MiB) that
kube-apiserver keeps: an exec's command travels in the URL, so a probe batch of hundreds of
targets needs more than aiohttp's default of 8 KiB."""
MAX_JSON_DEPTH = 100
"""Nesting of a request body; deeper is 400 (no real object comes close)."""
PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
"""Namespaces kube-apiserver refuses to delete (403 Forbidden)."""


class ApiError(Exception):
    """Answered as a ``Status`` body with ``code``."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details


def _undecodable(res: Resource, detail: str) -> ApiError:
    """400 for a body that does not decode as the kind, in kube-apiserver's words."""
    return ApiError(
        400,
        "BadRequest",
        f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: {detail}',
    )


def _not_found(res: Resource, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{res.qualified} "{name}" not found',
        {"name": name, "group": res.group, "kind": res.plural},
    )


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type=JSON, headers=headers)


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether decoded JSON nests more than ``limit`` levels (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def _flag(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


class ApiServer:
    """Routes every request through one dispatcher that mirrors kube-apiserver's URL layout."""

    def __init__(
        self,
        store: Store,
        controller: Controller,
        executor: Executor,
        faults: FaultPlan,
        token: str,
        status_extra: Callable[[], dict[str, Any]] | None = None,
        outside: Mapping[str, Endpoint] | None = None,
    ) -> None:
        self.outside: Mapping[str, Endpoint] = outside if outside is not None else {}
        self.store = store
        self.controller = controller
        self.executor = executor
        self.faults = faults
        self.token = token
        self.status_extra = status_extra
        self.address = "127.0.0.1:0"
        self._watchers: set[asyncio.Queue[tuple[str, Resource, dict[str, Any]] | None]] = set()
        store.listeners.append(self._fanout)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    def close_watches(self) -> None:
        for queue in list(self._watchers):
            queue.put_nowait(None)

    def _fanout(self, event: str, res: Resource, obj: dict[str, Any]) -> None:
        for queue in list(self._watchers):
            queue.put_nowait((event, res, obj))

    # --- entry ------------------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        try:
            if self.token and not _bearer_matches(
                request.headers.get("Authorization", ""), self.token
            ):
                raise ApiError(401, "Unauthorized", "Unauthorized")
            return await self._route(request)
        except ApiError as exc:
            return _json(discovery.status(exc.code, exc.reason, exc.message, exc.details), exc.code)
        except ConnectionResetError:
            raise
        except Exception as exc:
            log.exception("internal error on %s %s", request.method, request.path)
            return _json(
                discovery.status(500, "InternalError", f"Internal error occurred: {exc}"), 500
            )

    async def _route(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        parts = [p for p in path.split("/") if p]
        if path in ("/healthz", "/readyz", "/livez"):
            return web.Response(text="ok")
        if path == "/version":
            return _json(discovery.SERVER_VERSION)
        if path == "/embedded/v1/status":
            return _json(self._status())
        if parts[:3] == ["embedded", "v1", "outside"] and len(parts) == 5 and parts[4] == "exec":
            return await self._outside_exec(request, parts[3])
        if path == "/api":
            return _json(discovery.api_versions(self.address))
        if path == "/openapi/v3":
            return _json(openapi.root())
        if parts[:2] == ["openapi", "v3"]:
            gv = parts[2:]
            doc = None
            if gv[:1] == ["api"] and len(gv) == 2:
                doc = openapi.gv_document("", gv[1])
            elif gv[:1] == ["apis"] and len(gv) == 3:
                doc = openapi.gv_document(gv[1], gv[2])
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json(doc)
        if path == "/apis":
            return _json(discovery.api_groups())
        if path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews":
            # `kubectl auth can-i`: the embedded cluster has no authorization, everything is allowed.
            if request.method != "POST":
                raise ApiError(405, "MethodNotAllowed", "selfsubjectaccessreviews accept POST")
            raw = await request.read()  # kubectl sends protobuf; the answer does not depend on it
            spec: Any = {}
            if request.content_type == JSON:
                with contextlib.suppress(ValueError):
                    spec = (json.loads(raw or b"{}") or {}).get("spec") or {}
            return _json(
                {
                    "kind": "SelfSubjectAccessReview",
                    "apiVersion": "authorization.k8s.io/v1",
                    "metadata": {"creationTimestamp": None},
                    "spec": spec,
                    "status": {
                        "allowed": True,
                        "reason": "the embedded cluster does not authorize: everything is allowed",
                    },
                },
                201,
            )
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            listing = discovery.resource_list(group, version)
            if listing is None or request.method != "GET":
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json(listing)
        return await self._resource(request, group, version, rest)

    def _status(self) -> dict[str, Any]:
        stats = self.controller.enforcer.stats
        out: dict[str, Any] = {
            "generation": stats.generation,
            "appliedGeneration": stats.applied_generation,
            "applies": stats.applies,
            "lastCompileSeconds": stats.last_compile_seconds,
            "lastApplySeconds": stats.last_apply_seconds,
            "lastRules": stats.last_rules,
            "lastError": stats.last_error,
            "pods": len(self.controller.pods),
            "faultsInjected": dict(self.faults.injected),
        }
        if self.status_extra is not None:
            out.update(self.status_extra())
        return out

    async def _resource(
        self, request: web.Request, group: str, version: str, rest: list[str]
    ) -> web.StreamResponse:
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            candidate = discovery.find(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        res = discovery.find(group, version, rest[0])
        if res is None and not (group == "" and rest[0] == "namespaces"):
            wanted = rest[2] if rest[0] == "namespaces" and len(rest) >= 3 else rest[0]
            served = ", ".join(r.qualified for r in RESOURCES)
            raise ApiError(
                404,
                "NotFound",
                f"the embedded cluster does not serve {wanted} ({group or 'core'}/{version}); "
                f"it serves only {served}",
            )
        if res is None or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if res.namespaced and not namespace and len(rest) > 1:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if sub == "exec" and res is PODS:
            return await self._exec(request, namespace, name)
        if sub == "log" and res is PODS:
            return self._log(request, namespace, name)
        if sub not in ("", "status"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub == "status" and request.method != "GET":
            raise ApiError(405, "MethodNotAllowed", "the embedded cluster sets status itself")
        if res is NODES and request.method in ("POST", "DELETE"):
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the embedded cluster's nodes are fixed when it starts (cluster up --nodes N)",
            )
        await self._maybe_fault()
        method = request.method
        for value in request.query.getall("dryRun", []):
            if value != "All":
                raise ApiError(
                    400,
                    "BadRequest",
                    f'dryRun: Unsupported value: "{value}": supported values: "All"',
                )
        if not name:
            if method == "GET":
                return await self._list(request, res, namespace)
            if method == "POST":
                return await self._create(request, res, namespace)
            if method == "DELETE":
                return await self._delete_collection(request, res, namespace)
        else:
            if method == "GET":
                obj = self.store.get(res, namespace, name)
                if obj is None:
                    raise _not_found(res, name)
                if tables.wants_table(request.headers.get("Accept", "")):
                    return _json(tables.table(res, [obj], obj["metadata"]["resourceVersion"]))
                return _json(obj)
            if method == "PUT":
                return await self._replace(request, res, namespace, name)
            if method == "PATCH":
                return await self._patch(request, res, namespace, name)
            if method == "DELETE":
                return await self._delete(request, res, namespace, name)
        raise ApiError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )

    async def _maybe_fault(self) -> None:
        wait = self.faults.delay()
        if wait:
            await asyncio.sleep(wait)
        code = self.faults.error()
        if code == 429:
            raise ApiError(
                429,
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later",
                {"retryAfterSeconds": 1},
            )
        if code == 500:
            raise ApiError(500, "InternalError", "Internal error occurred: injected fault")
        if code == 503:
            raise ApiError(
                503, "ServiceUnavailable", "the server is currently unable to handle the request"
            )

    # --- read ---------------------------------------------------------------------------------

    async def _list(
        self, request: web.Request, res: Resource, namespace: str
    ) -> web.StreamResponse:
        try:
            label_match = parse_query(request.query.get("labelSelector", ""))
            field_match = parse_field_query(request.query.get("fieldSelector", ""))
        except SelectorSyntaxError as exc:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {exc}") from None

        def wanted(obj: dict[str, Any]) -> bool:
            return label_match(obj["metadata"].get("labels") or {}) and field_match(obj)

        if _flag(request.query.get("watch")):
            return await self._watch(request, res, namespace, wanted)
        items = [o for o in self.store.list(res, namespace or None) if wanted(o)]
        rv = self.store.resource_version
        if tables.wants_table(request.headers.get("Accept", "")):
            return _json(tables.table(res, items, rv))
        if res.builtin:
            for item in items:
                item.pop("kind", None)
                item.pop("apiVersion", None)
        return _json(
            {
                "kind": f"{res.kind}List",
                "apiVersion": res.api_version,
                "metadata": {"resourceVersion": rv},
                "items": items,
            }
        )

    async def _watch(
        self,
        request: web.Request,
        res: Resource,
        namespace: str,
        wanted: Callable[[dict[str, Any]], bool],
    ) -> web.StreamResponse:
        queue: asyncio.Queue[tuple[str, Resource, dict[str, Any]] | None] = asyncio.Queue()
        self._watchers.add(queue)
        resp = web.StreamResponse(headers={"Content-Type": JSON, "Transfer-Encoding": "chunked"})
        await resp.prepare(request)
        timeout = float(request.query.get("timeoutSeconds", "1800") or 1800)
        try:
            if request.query.get("resourceVersion", "0") in ("", "0"):
                for obj in self.store.list(res, namespace or None):
                    if wanted(obj):
                        await resp.write(
                            (json.dumps({"type": "ADDED", "object": obj}) + "\n").encode()
                        )
            deadline = asyncio.get_running_loop().time() + timeout
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(queue.get(), left)
                except TimeoutError:
                    break
                if item is None:
                    break
                event, kind, obj = item
                if (
                    kind is not res
                    or (namespace and obj["metadata"].get("namespace") != namespace)
                    or not wanted(obj)
                ):
                    continue
                await resp.write((json.dumps({"type": event, "object": obj}) + "\n").encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._watchers.discard(queue)
        with contextlib.suppress(ConnectionResetError):
            await resp.write_eof()
        return resp

    # --- write --------------------------------------------------------------------------------

    async def _read(self, request: web.Request) -> bytes:
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise ApiError(
                413,
                "RequestEntityTooLarge",
                f"Request entity too large: limit is {MAX_BODY_BYTES}",
            ) from None

    async def _body(self, request: web.Request) -> Any:
        if request.content_type == protobuf.PROTOBUF and request.method in ("POST", "PUT"):
            try:
                return protobuf.decode(await self._read(request))
            except protobuf.ProtobufError as exc:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format: {exc}",
                ) from None
        if request.content_type not in (
            "application/json",
            "",
            "application/octet-stream",
        ) and not (request.method == "PATCH" and request.content_type.endswith("+json")):
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml",
            )
        raw = await self._read(request)
        try:
            body = json.loads(raw or b"null")
        except ValueError as exc:
            raise ApiError(
                400, "BadRequest", f"couldn't get version/kind; json parse error: {exc}"
            ) from None
        except RecursionError:
            body = None
            deep = True
        else:
            deep = _deeper_than(body, MAX_JSON_DEPTH)
        if deep:
            raise ApiError(
                400,
                "BadRequest",
                f"couldn't get version/kind; json parse error: exceeded max depth {MAX_JSON_DEPTH}",
            )
        return body

    @staticmethod
    def _check_shape(res: Resource, obj: Any) -> None:
        """400 for a body that Go's json decoder could not decode into the kind's struct."""
        if not isinstance(obj, dict):
            raise _undecodable(res, f"json: cannot unmarshal into Go value of type {res.kind}")
        try:
            validation.check_object_shape(res.kind, obj)
        except validation.BadRequest as exc:
            raise _undecodable(res, str(exc)) from None

    def _prepare(
        self, request: web.Request, res: Resource, obj: Any, namespace: str
    ) -> tuple[dict[str, Any], list[str]]:
        """Decode, default and validate a full object; returns it and any warnings."""
        self._check_shape(res, obj)
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if api_version and api_version != res.api_version:
            raise ApiError(
                400,
                "BadRequest",
                f"the API version in the data ({api_version}) does not match the expected API version ({res.api_version})",
            )
        if kind and kind != res.kind:
            raise ApiError(
                400,
                "BadRequest",
                f"the kind in the data ({kind}) does not match the expected kind ({res.kind})",
            )
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(
                400,
                "BadRequest",
                "json: cannot unmarshal into Go struct field .metadata of type v1.ObjectMeta",
            )
        if res.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        warnings: list[str] = []
        try:
            if res is NETWORK_POLICIES:
                unknown: list[str] = []
                spec = validation.decode(
                    obj.get("spec") or {}, validation.NETWORK_POLICY_SCHEMA, "spec", unknown
                )
                if unknown:
                    mode = request.query.get("fieldValidation", "Warn")
                    if mode == "Strict":
                        detail = ", ".join(f'unknown field "{u}"' for u in unknown)
                        raise ApiError(400, "BadRequest", f"strict decoding error: {detail}")
                    if mode != "Ignore":
                        warnings += [f'unknown field "{u}"' for u in unknown]
                obj["spec"] = spec
                obj.pop("status", None)
                validation.default_network_policy(obj)
                causes = validation.network_policy_errors(obj)
            elif res is PODS:
                validation.default_pod(obj)
                causes = validation.pod_errors(obj)
            elif res is NAMESPACES:
                causes = validation.namespace_errors(obj)
            elif res is SERVICES:
                obj.pop("status", None)
                services.default_service(obj)
                causes = services.service_errors(obj)
            elif res in (
                ADMIN_NETWORK_POLICIES,
                BASELINE_ADMIN_NETWORK_POLICIES,
                CLUSTER_NETWORK_POLICIES,
            ):
                causes = validation.admin_policy_errors(res.kind, obj)
            else:
                causes = validation.metadata_errors(meta)
        except validation.BadRequest as exc:
            raise _undecodable(res, str(exc)) from None
        if causes:
            name = meta.get("name") or ""
            text = (
                str(causes[0])
                if len(causes) == 1
                else "[" + ", ".join(str(c) for c in causes) + "]"
            )
            group_kind = f"{res.kind}.{res.group}" if res.group else res.kind
            raise ApiError(
                422,
                "Invalid",
                f'{group_kind} "{name}" is invalid: {text}',
                {
                    "name": name,
                    "group": res.group,
                    "kind": res.kind,
                    "causes": [
                        {"reason": c.reason, "message": c.message, "field": c.field} for c in causes
                    ],
                },
            )
        return obj, warnings

    def _check_namespace(self, res: Resource, namespace: str) -> None:
        if res.namespaced and not self.store.exists(NAMESPACES, "", namespace):
            raise ApiError(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                {"name": namespace, "kind": "namespaces"},
            )

    @staticmethod
    def _warn_headers(warnings: list[str]) -> dict[str, str] | None:
        if not warnings:
            return None
        return {
            "Warning": ", ".join(
                f'299 - "{w.replace(chr(34), chr(92) + chr(34))}"' for w in warnings
            )
        }

    def _assign_cluster_ip(self, obj: dict[str, Any], dry_run: bool) -> None:
        spec = obj["spec"]
        alloc = self.controller.services
        wanted = spec.get("clusterIP")
        if wanted == "None":
            spec["clusterIPs"] = ["None"]
            return
        if wanted:
            try:
                ok = (
                    ipaddress.ip_address(wanted) in services.SERVICE_CIDR
                    and wanted not in alloc.used
                )
            except ValueError:
                ok = False
            if not ok:
                name = obj["metadata"]["name"]
                raise ApiError(
                    422,
                    "Invalid",
                    f'Service "{name}" is invalid: spec.clusterIPs: Invalid value: ["{wanted}"]: failed to '
                    f"allocate IP {wanted}: provided IP is not in the valid range or is already allocated",
                )
            if not dry_run:
                alloc.used.add(wanted)
        elif not dry_run:
            wanted = alloc.allocate()
        spec["clusterIP"], spec["clusterIPs"] = wanted, [wanted]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        obj["status"] = {"loadBalancer": {}}

    async def _create(
        self, request: web.Request, res: Resource, namespace: str
    ) -> web.StreamResponse:
        body = await self._body(request)
        self._check_namespace(res, namespace)
        self._check_shape(res, body)
        if isinstance(body, dict):
            for field in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp"):
                (body.get("metadata") or {}).pop(field, None)
        obj, warnings = self._prepare(request, res, body, namespace)
        meta = obj["metadata"]
        if res is NAMESPACES:
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
        elif res is PODS:
            node, why = scheduler.schedule(
                obj["spec"], self.store.peek(NODES), self.store.peek(PODS)
            )
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
            if node is not None:
                obj["spec"]["nodeName"] = node
            else:
                obj["status"]["conditions"] = [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": why,
                        "lastProbeTime": None,
                        "lastTransitionTime": now_rfc3339(),
                    }
                ]
        elif res is SERVICES:
            self._assign_cluster_ip(obj, dry_run=request.query.get("dryRun") == "All")
        if request.query.get("dryRun") == "All":
            return _json(obj, 201, self._warn_headers(warnings))
        try:
            created = self.store.create(res, obj)
        except AlreadyExists:
            name = meta.get("name", "")
            raise ApiError(
                409,
                "AlreadyExists",
                f'{res.qualified} "{name}" already exists',
                {"name": name, "group": res.group, "kind": res.plural},
            ) from None
        if res is PODS and not created["spec"].get("nodeName"):
            self.controller.unschedulable(created)
        await self._settle()
        return _json(created, 201, self._warn_headers(warnings))

    async def _store_update(
        self,
        request: web.Request,
        res: Resource,
        obj: dict[str, Any],
        current: dict[str, Any],
        warnings: list[str],
    ) -> web.StreamResponse:
        name = obj["metadata"]["name"]
        if res is PODS:
            if obj.get("spec") != current.get("spec"):
                raise ApiError(
                    422,
                    "Invalid",
                    f'Pod "{name}" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)',
                    {
                        "name": name,
                        "group": "",
                        "kind": "Pod",
                        "causes": [
                            {
                                "reason": "FieldValueForbidden",
                                "message": "Forbidden: pod updates may not change fields other than ...",
                                "field": "spec",
                            }
                        ],
                    },
                )
            obj["status"] = current.get("status", {})
        if res is SERVICES:
            for key in (
                "clusterIP",
                "clusterIPs",
                "ipFamilies",
                "ipFamilyPolicy",
                "internalTrafficPolicy",
            ):
                if key in (current.get("spec") or {}):
                    obj["spec"][key] = current["spec"][key]
            obj["status"] = current.get("status", {})
        if res is NODES:
            obj["spec"], obj["status"] = current.get("spec"), current.get("status")
        if res is NAMESPACES:
            obj.setdefault("metadata", {}).setdefault("labels", {})[
                "kubernetes.io/metadata.name"
            ] = name
            obj["spec"], obj["status"] = current.get("spec"), current.get("status")
        if request.query.get("dryRun") == "All":
            return _json(obj, 200, self._warn_headers(warnings))
        try:
            updated = self.store.update(res, obj)
        except NotFound:
            raise _not_found(res, name) from None
        except Conflict:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {res.qualified} "{name}": the object has been modified; please apply your changes to the latest version and try again',
                {"name": name, "group": res.group, "kind": res.plural},
            ) from None
        await self._settle()
        return _json(updated, 200, self._warn_headers(warnings))

    async def _replace(
        self, request: web.Request, res: Resource, namespace: str, name: str
    ) -> web.StreamResponse:
        body = await self._body(request)
        current = self.store.get(res, namespace, name)
        if current is None:
            raise _not_found(res, name)
        self._check_shape(res, body)
        if isinstance(body, dict) and (body.get("metadata") or {}).get("name") not in (None, name):
            raise ApiError(
                400,
                "BadRequest",
                f"the name of the object ({body['metadata']['name']}) does not match the name on the URL ({name})",
            )
        if isinstance(body, dict):
            body.setdefault("metadata", {})["name"] = name
        obj, warnings = self._prepare(request, res, body, namespace)
        return await self._store_update(request, res, obj, current, warnings)

    async def _patch(
        self, request: web.Request, res: Resource, namespace: str, name: str
    ) -> web.StreamResponse:
        if request.content_type == "application/apply-patch+yaml":
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "server-side apply is not supported by the embedded cluster: use kubectl apply "
                "without --server-side (client-side apply), or kubectl create/replace",
            )
        body = await self._body(request)
        current = self.store.get(res, namespace, name)
        if current is None:
            raise _not_found(res, name)
        ctype = request.content_type
        try:
            if ctype == "application/json-patch+json":
                patched = patch.json_patch(current, body)
            elif ctype == "application/merge-patch+json":
                patched = patch.merge_patch(current, body)
            elif ctype == "application/strategic-merge-patch+json":
                if not res.builtin:
                    raise ApiError(
                        415,
                        "UnsupportedMediaType",
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json",
                    )
                patched = patch.strategic_merge_patch(current, body)
            else:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json",
                )
        except patch.PatchError as exc:
            raise ApiError(
                400
                if ctype == "application/json-patch+json" and not isinstance(body, list)
                else 422,
                "BadRequest"
                if not isinstance(body, list) and ctype == "application/json-patch+json"
                else "Invalid",
                str(exc),
            ) from None
        if not isinstance(patched, dict):
            raise ApiError(400, "BadRequest", "the patch does not produce an object")
        self._check_shape(res, patched)
        meta = patched.setdefault("metadata", {})
        if meta.get("name") != name:
            raise ApiError(
                400,
                "BadRequest",
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})",
            )
        obj, warnings = self._prepare(request, res, patched, namespace)
        return await self._store_update(request, res, obj, current, warnings)

    def _deleted_body(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        if res in (PODS, NAMESPACES):
            out = copy.deepcopy(obj)
            out["metadata"]["deletionTimestamp"] = now_rfc3339()
            if res is NAMESPACES:
                out["status"] = {"phase": "Terminating"}
            return out
        meta = obj["metadata"]
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": meta["name"],
                "group": res.group,
                "kind": res.plural,
                "uid": meta.get("uid"),
            },
        }

    async def _delete(
        self, request: web.Request, res: Resource, namespace: str, name: str
    ) -> web.StreamResponse:
        obj = self.store.get(res, namespace, name)
        if obj is None:
            raise _not_found(res, name)
        if res is NAMESPACES and name in PROTECTED_NAMESPACES:
            raise ApiError(
                403,
                "Forbidden",
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                {"name": name, "kind": "namespaces"},
            )
        if request.query.get("dryRun") != "All":
            with contextlib.suppress(NotFound):
                self.store.delete(res, namespace, name)
            await self._settle()
        return _json(self._deleted_body(res, obj))

    async def _settle(self) -> None:
        """Without an enforcement delay, answer writes only once their rules are installed.

        Real CNIs enforce asynchronously; the ``--enforcement-delay`` knob models that. At delay 0
        the embedded cluster is deterministic: a policy is enforced when its create returns.
        """
        enforcer = self.controller.enforcer
        if enforcer.knobs.enforcement_delay > 0:
            return
        if enforcer.stats.applied_generation < enforcer.stats.generation:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(enforcer.wait(enforcer.stats.generation), 5)

    async def _delete_collection(
        self, request: web.Request, res: Resource, namespace: str
    ) -> web.StreamResponse:
        if res is NAMESPACES:  # as kube-apiserver: namespaces have no deletecollection
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        try:
            label_match = parse_query(request.query.get("labelSelector", ""))
        except SelectorSyntaxError as exc:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {exc}") from None
        items = [
            o
            for o in self.store.list(res, namespace or None)
            if label_match(o["metadata"].get("labels") or {})
        ]
        if request.query.get("dryRun") != "All":
            for obj in items:
                with contextlib.suppress(NotFound):
                    self.store.delete(
                        res, obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
                    )
            await self._settle()
        return _json(
            {
                "kind": f"{res.kind}List",
                "apiVersion": res.api_version,
                "metadata": {"resourceVersion": self.store.resource_version},
                "items": items,
            }
        )

    # --- exec ----------------------------------------------------------------------------------

    async def _outside_exec(self, request: web.Request, name: str) -> web.StreamResponse:
        """Run a command on a simulated host outside the cluster (the runner's outside-client
        probes): JSON ``{"command": [...], "stdin": "..."}`` in, exit code and output out."""
        if request.method != "POST":
            raise ApiError(405, "MethodNotAllowed", "outside exec accepts POST")
        ep = self.outside.get(name)
        if ep is None:
            known = ", ".join(sorted(self.outside)) or "none"
            raise ApiError(404, "NotFound", f"no outside host {name!r} (this cluster has: {known})")
        body = await self._body(request)
        argv = body.get("command") if isinstance(body, dict) else None
        if (
            not isinstance(argv, list)
            or not argv
            or not all(isinstance(a, str) and "\x00" not in a for a in argv)
        ):
            raise ApiError(400, "BadRequest", "command must be a non-empty list of strings")
        text = body.get("stdin")
        stdin: asyncio.Queue[bytes | None] | None = None
        if isinstance(text, str):
            stdin = asyncio.Queue()
            stdin.put_nowait(text.encode())
            stdin.put_nowait(None)
        out: list[bytes] = []
        err: list[bytes] = []

        async def keep(buf: list[bytes], data: bytes) -> None:
            buf.append(data)

        code = await self.executor.run(
            ep.path,
            argv,
            {"HOSTNAME": name},
            lambda d: keep(out, d),
            lambda d: keep(err, d),
            stdin,
        )
        return _json(
            {
                "exitCode": code,
                "stdout": b"".join(out).decode(errors="replace"),
                "stderr": b"".join(err).decode(errors="replace"),
            }
        )

    def _log(self, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
        """``kubectl logs``: what the container's emulated agnhost printed (text/plain)."""
        if request.method != "GET":
            raise ApiError(405, "MethodNotAllowed", "logs are read with GET")
        pod = self.store.get(PODS, namespace, name)
        if pod is None:
            raise _not_found(PODS, name)
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        container = request.query.get("container")
        if container is None:
            if len(containers) != 1:
                # kube-apiserver's wording for a multi-container pod without -c.
                raise ApiError(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {name}, choose one of: "
                    f"[{' '.join(map(str, containers))}]",
                )
            container = containers[0]
        if container not in containers:
            raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
        rt = self.controller.runtime(namespace, name)
        lines = rt.logs.get(str(container), []) if rt is not None else []
        if request.query.get("timestamps") not in ("true", "1"):
            lines = [line.partition(" ")[2] for line in lines]
        text = "".join(line + "\n" for line in lines)
        return web.Response(text=text, content_type="text/plain")

    async def _exec(self, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
        if request.method not in ("GET", "POST"):
            raise ApiError(405, "MethodNotAllowed", "exec accepts GET and POST")
        pod = self.store.get(PODS, namespace, name)
        if pod is None:
            raise _not_found(PODS, name)
        argv = request.query.getall("command", [])
        if not argv:
            raise ApiError(400, "BadRequest", "you must specify at least 1 command")
        if any("\x00" in arg for arg in argv):
            raise ApiError(400, "BadRequest", "a command argument may not contain a NUL byte")
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        container = request.query.get("container") or (containers[0] if containers else "")
        if container not in containers:
            raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
        rt = self.controller.runtime(namespace, name)
        phase = (pod.get("status") or {}).get("phase")
        if rt is None or rt.endpoint is None or phase != "Running":
            raise ApiError(
                400, "BadRequest", f"pod {name} is not running (phase {phase}): cannot exec into it"
            )
        ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS, autoping=True, max_msg_size=0)
        if not ws.can_prepare(request).ok:
            raise ApiError(
                400,
                "BadRequest",
                "Upgrade request required: exec is served over WebSocket (v4/v5.channel.k8s.io)",
            )
        await ws.prepare(request)
        want_stdin = _flag(request.query.get("stdin"))
        want_out = request.query.get("stdout") is None or _flag(request.query.get("stdout"))
        want_err = request.query.get("stderr") is None or _flag(request.query.get("stderr"))
        stdin: asyncio.Queue[bytes | None] | None = asyncio.Queue() if want_stdin else None
        drop = self.faults.drop_exec()

        async def reader() -> None:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY and msg.data:
                    channel, data = msg.data[0], msg.data[1:]
                    if stdin is not None and channel == 0:
                        stdin.put_nowait(bytes(data))
                    elif stdin is not None and channel == 255 and data[:1] == b"\x00":
                        stdin.put_nowait(None)
                elif msg.type == WSMsgType.TEXT and stdin is not None and msg.data[:1] == "0":
                    stdin.put_nowait(msg.data[1:].encode())
            if stdin is not None:
                stdin.put_nowait(None)

        async def send(channel: int, data: bytes) -> None:
            if not ws.closed:
                with contextlib.suppress(ConnectionResetError):
                    await ws.send_bytes(bytes([channel]) + data)

        async def out(data: bytes) -> None:
            if want_out:
                await send(1, data)

        async def err(data: bytes) -> None:
            if want_err:
                await send(2, data)

        read_task = asyncio.get_running_loop().create_task(reader())
        env = {"HOSTNAME": name}
        for c in (pod.get("spec") or {}).get("containers") or []:
            if c.get("name") == container:
                env.update(
                    {
                        str(e.get("name")): str(e.get("value", ""))
                        for e in c.get("env") or []
                        if "value" in e
                    }
                )
        try:
            run_task = asyncio.get_running_loop().create_task(
                self.executor.run(
                    rt.endpoint.path,
                    argv,
                    env,
                    out,
                    err,
                    stdin,
                )
            )
            try:
                await asyncio.wait({run_task, read_task}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not run_task.done():
                    # The client went away (or this handler is being cancelled): stop the
                    # command; its process group is killed.
                    run_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await run_task
            if run_task.cancelled():
                return ws
            code = run_task.result()
            if drop:
                if request.transport is not None:
                    request.transport.abort()
                return ws
            if code == 0:
                result: dict[str, Any] = {"metadata": {}, "status": "Success"}
            else:
                result = {
                    "metadata": {},
                    "status": "Failure",
                    "message": f"command terminated with non-zero exit code: error executing command {argv}, exit code {code}",
                    "reason": "NonZeroExitCode",
                    "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
                }
            await send(3, json.dumps(result).encode())
            with contextlib.suppress(Exception):
                await ws.close()
        except KeyError:
            await send(
                3,
                json.dumps(
                    {
                        "metadata": {},
                        "status": "Failure",
                        "message": f"pod {name} went away",
                        "reason": "InternalError",
                    }
                ).encode(),
            )
            await ws.close()
        finally:
            read_task.cancel()
        return ws


def _bearer_matches(header: str, token: str) -> bool:
    """Whether an Authorization header carries ``token``. The scheme is case-insensitive
    (RFC 6750; kube-apiserver too), and the Python client's in-cluster loader sends "bearer"."""
    scheme, _, given = header.strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )
