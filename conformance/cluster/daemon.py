"""The background process of one embedded cluster: dataplane, controller, exec and API server.

Why: ``cluster up`` returns while the cluster keeps running; this process owns every namespace,
rule and child it creates and removes them on SIGTERM, SIGINT, normal exit or an exception.
Run as ``python -m conformance.cluster.daemon --config FILE --listen-fd N --ready-fd M``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import sys
from typing import Any

from aiohttp import web

from conformance.cluster import agnhost
from conformance.cluster.apiserver import MAX_HEADER_BYTES, ApiServer
from conformance.cluster.config import ClusterOptions
from conformance.cluster.controller import Controller
from conformance.cluster.dataplane import Dataplane, Endpoint
from conformance.cluster.execution import Executor
from conformance.cluster.faults import FaultPlan
from conformance.cluster.knobs import Deviation
from conformance.cluster.scheduler import node_object
from conformance.cluster.store import NAMESPACES, NODES, Store
from conformance.errors import ClusterError

log = logging.getLogger("conformance.cluster.daemon")
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _private_run() -> None:
    """Rootless mode: give ``ip netns`` a writable ``/run`` inside our own mount namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"tmpfs", b"/run", b"tmpfs", 0, b"mode=755") != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount tmpfs on /run: {os.strerror(err)}")


async def serve(
    options: ClusterOptions,
    sock: socket.socket,
    token: str,
    state_dir: str,
    ready: Any,
    lifeline: int = -1,
    tls_context: ssl.SSLContext | None = None,
) -> None:
    """Build the cluster, report readiness, run until signalled (or the owner is gone), then
    remove everything."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    orphaned = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    if lifeline >= 0:
        os.set_blocking(lifeline, False)

        def owner_gone() -> None:
            try:
                if os.read(lifeline, 64):
                    return
            except BlockingIOError:
                return
            except OSError:
                pass
            log.info("the process that started this cluster is gone")
            loop.remove_reader(lifeline)
            orphaned.set()
            stop.set()

        loop.add_reader(lifeline, owner_gone)
    dataplane = Dataplane(
        options.instance,
        reuse_addresses=options.knobs.has(Deviation.STALE_ADDRESS_RULES),
        nodes=options.nodes,
        dual_stack=options.dual_stack,
    )
    executor = Executor(state_dir)
    controller: Controller | None = None
    runner: web.AppRunner | None = None
    api: ApiServer | None = None
    externals: list[agnhost.PodServers] = []
    outside: dict[str, Endpoint] = {}

    async def bring_up() -> None:
        nonlocal controller, runner, api
        await dataplane.setup()
        await executor.start()
        store = Store()
        for name in SYSTEM_NAMESPACES:
            store.create(
                NAMESPACES,
                {
                    "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                },
            )
        for node in dataplane.nodes:
            store.create(NODES, node_object(node, dataplane.dual_stack))
        controller = Controller(store, dataplane, options.knobs)
        try:
            await controller.enforcer.install_now()
        except ClusterError as exc:
            raise ClusterError(f"nftables rules could not be installed: {exc}") from None
        controller.enforcer.start()
        for ext in options.externals:
            ep = await dataplane.add_external(f"ext:{ext.name}", ext.ip, ext.ip6)
            outside[ext.name] = ep
            listeners = [agnhost.Listener(proto, port, ext.name) for proto, port in ext.ports]
            externals.append(await agnhost.serve(dataplane.fd(ep.key), listeners))
        api = ApiServer(
            store,
            controller,
            executor,
            FaultPlan(options.faults),
            token,
            lambda: {
                "instance": options.instance,
                "sctp": agnhost.sctp_available(),
                "agnhost": "native" if executor.native else "python",
                "nodes": [n.name for n in dataplane.nodes],
                "dualStack": dataplane.dual_stack,
            },
            outside,
        )
        host, port = sock.getsockname()[:2]
        api.address = f"{host}:{port}"
        runner = web.AppRunner(
            api.app(),
            handle_signals=False,
            access_log=None,
            max_line_size=MAX_HEADER_BYTES,
            max_field_size=MAX_HEADER_BYTES,
        )
        await runner.setup()
        await web.SockSite(runner, sock, shutdown_timeout=1.0, ssl_context=tls_context).start()

    try:
        # A signal (or the owner's death) during start-up must stop it too, not only later.
        setup = loop.create_task(bring_up())
        stopper = loop.create_task(stop.wait())
        await asyncio.wait({setup, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not setup.done():
            setup.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await setup
            raise ClusterError("stopped before it was ready")
        setup.result()
        ready.write("ready\n")
        ready.flush()
        log.info("serving on %s", api.address if api else "?")
        await stopper
        log.info("stopping")
    finally:
        if api is not None:
            api.close_watches()
        if runner is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(runner.cleanup(), 5)
        for servers in externals:
            servers.close()
        if controller is not None:
            await controller.shutdown()
        await executor.stop()
        dataplane.teardown()
        log.info("removed every namespace of instance %s", options.instance)
        if orphaned.is_set():
            # Nobody is left to call `down`: remove the state (kubeconfig, pid) too.
            shutil.rmtree(state_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="conformance.cluster.daemon")
    parser.add_argument("--config", required=True)
    parser.add_argument("--listen-fd", type=int, required=True)
    parser.add_argument("--ready-fd", type=int, required=True)
    parser.add_argument("--rootless", action="store_true")
    parser.add_argument("--lifeline-fd", type=int, default=-1)
    args = parser.parse_args(argv)
    state_dir = os.path.dirname(os.path.abspath(args.config))
    logging.basicConfig(
        filename=os.path.join(state_dir, "daemon.log"),
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ready = os.fdopen(args.ready_fd, "w")
    sock = socket.socket(fileno=args.listen_fd)
    try:
        with open(args.config, encoding="utf-8") as fh:
            data = json.load(fh)
        options = ClusterOptions.from_json(data["options"])
        tls_context = None
        if data.get("tls"):
            # Loaded before _private_run: in rootless mode the state folder may be under /run.
            tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls_context.load_cert_chain(data["tls"]["cert"], data["tls"]["key"])
        if args.rootless:
            _private_run()
        asyncio.run(
            serve(options, sock, data["token"], state_dir, ready, args.lifeline_fd, tls_context)
        )
    except Exception as exc:
        log.exception("daemon failed")
        with contextlib.suppress(Exception):
            ready.write(f"error: {exc}\n")
            ready.flush()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
