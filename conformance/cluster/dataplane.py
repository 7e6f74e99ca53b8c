"""The embedded cluster's network: a node namespace routing between pod and external-host namespaces.

Why: real packets must cross a point the policy compiler controls. Each pod gets its own
namespace and a routed veth to the node (like Calico: /32 address, gateway 169.254.1.1); external
hosts sit on a node bridge on TEST-NET. The node has no link to the host, so nothing leaves.
Every namespace is named ``npc-<instance>-...`` so cleanup finds exactly this instance's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass

from conformance.cluster import netns
from conformance.errors import ClusterError

POD_CIDR = ipaddress.IPv4Network("10.244.0.0/16")
EXTERNAL_NETS = (ipaddress.IPv4Network("203.0.113.0/24"), ipaddress.IPv4Network("198.51.100.0/24"))
GATEWAY = "169.254.1.1"
GATEWAY_MAC = "ee:ee:ee:ee:ee:ee"
NFT_TABLE = "npc"


def prefix_for(instance: str) -> str:
    """Namespace-name prefix owned by one instance."""
    return f"npc-{instance}-"


def cleanup_namespaces(instance: str) -> list[str]:
    """Delete every namespace of ``instance`` (also after a crash); returns the names removed."""
    names = [n for n in netns.list_netns() if n.startswith(prefix_for(instance))]
    if names:
        # One ip process for all of them; -force goes on past any that vanished meanwhile.
        with contextlib.suppress(ClusterError):
            netns.run(
                ["ip", "-force", "-batch", "-"], "".join(f"netns delete {n}\n" for n in names)
            )
    left = set(netns.list_netns())
    return [n for n in names if n not in left]


def external_ip_problem(ip: str) -> str:
    """Why ``ip`` cannot be an external host (empty when it can): TEST-NET hosts only."""
    try:
        addr = ipaddress.IPv4Address(ip)
    except ValueError:
        addr = None
    net = next((n for n in EXTERNAL_NETS if addr is not None and addr in n), None)
    if addr is None or net is None or addr in (net[0], net[1], net[-1]):
        return (
            f"external host address {ip} must be a host address in 203.0.113.0/24 or "
            "198.51.100.0/24 other than .0, .1 and .255"
        )
    return ""


@dataclass(frozen=True)
class Endpoint:
    """A namespace the cluster created for a pod or an external host, with its address."""

    key: str
    netns: str
    ip: str

    @property
    def path(self) -> str:
        return netns.netns_path(self.netns)


class Dataplane:
    """Creates and removes this instance's namespaces and installs the node's nftables ruleset."""

    def __init__(self, instance: str, reuse_addresses: bool = False) -> None:
        self.instance = instance
        # Deviation stale-address-rules: a removed pod's address goes to the next new pod, once
        # the old namespace (holding its route) is gone. Insertion order: oldest freed first.
        self.reuse_addresses = reuse_addresses
        self._freed: list[str] = []
        self._released: dict[str, asyncio.Event] = {}
        self.prefix = prefix_for(instance)
        self.node = self.prefix + "node"
        self._next_ip = int(POD_CIDR.network_address) + 2
        self._next_if = 0
        self._fds: dict[str, int] = {}
        self._ifnames: dict[str, str] = {}
        self.node_fd = -1

    async def setup(self) -> None:
        """Create the node namespace with forwarding on and no route anywhere but its own links."""
        cleanup_namespaces(self.instance)
        await netns.arun(["ip", "netns", "add", self.node])
        self.node_fd = os.open(netns.netns_path(self.node), os.O_RDONLY)
        lines = [
            "link set lo up",
            f"addr add {GATEWAY}/32 dev lo",
            "link add ext0 type bridge",
            "link set ext0 up",
        ]
        lines += [f"addr add {net[1]}/{net.prefixlen} dev ext0" for net in EXTERNAL_NETS]
        await netns.arun(["ip", "-n", self.node, "-batch", "-"], "\n".join(lines) + "\n")

        def enable_forwarding() -> None:
            with open("/proc/sys/net/ipv4/ip_forward", "w") as fh:
                fh.write("1")

        netns.call_in(self.node_fd, enable_forwarding)

    def _allocate_ip(self) -> str:
        while True:
            addr = ipaddress.IPv4Address(self._next_ip)
            self._next_ip += 1
            if addr not in POD_CIDR:
                raise ClusterError(f"pod CIDR {POD_CIDR} is exhausted")
            if int(addr) & 0xFF not in (0, 255):
                return str(addr)

    def fd(self, key: str) -> int:
        """Open descriptor of an endpoint's namespace (for sockets made inside it)."""
        return self._fds[key]

    def retire(self, ep: Endpoint) -> None:
        """Note that a pod's endpoint is being removed (its address is reused only if asked to)."""
        if self.reuse_addresses and ep.ip not in self._released:
            self._released[ep.ip] = asyncio.Event()
            self._freed.append(ep.ip)

    async def add_pod(self, key: str) -> Endpoint:
        """Create a pod namespace with a routed veth and a fresh address from the pod CIDR."""
        if self._freed:
            ip = self._freed.pop(0)
            # Wait until the old holder's route is gone (remove() sets the event).
            await self._released[ip].wait()
            del self._released[ip]
        else:
            ip = self._allocate_ip()
        pod_cmds = (
            "link set lo up\n"
            "link set eth0 up\n"
            f"addr add {ip}/32 dev eth0\n"
            f"route add {GATEWAY} dev eth0 scope link\n"
            f"route add default via {GATEWAY} dev eth0\n"
            f"neigh add {GATEWAY} lladdr {GATEWAY_MAC} dev eth0 nud permanent\n"
        )
        return await self._plumb(
            key,
            "p",
            ip,
            lambda ifname, ns: (
                f"link add {ifname} address {GATEWAY_MAC} type veth peer name eth0 netns {ns}\n"
                f"link set {ifname} up\n"
                f"route add {ip}/32 dev {ifname}\n"
            ),
            pod_cmds,
        )

    async def add_external(self, key: str, ip: str) -> Endpoint:
        """Create an external host on TEST-NET, attached to the node bridge."""
        problem = external_ip_problem(ip)
        if problem:
            raise ClusterError(problem)
        addr = ipaddress.IPv4Address(ip)
        net = next(n for n in EXTERNAL_NETS if addr in n)
        host_cmds = (
            "link set lo up\n"
            "link set eth0 up\n"
            f"addr add {ip}/{net.prefixlen} dev eth0\n"
            f"route add default via {net[1]} dev eth0\n"
        )
        return await self._plumb(
            key,
            "x",
            ip,
            lambda ifname, ns: (
                f"link add {ifname} type veth peer name eth0 netns {ns}\n"
                f"link set {ifname} master ext0\n"
                f"link set {ifname} up\n"
            ),
            host_cmds,
        )

    async def _plumb(
        self, key: str, letter: str, ip: str, node_cmds: Callable[[str, str], str], inner_cmds: str
    ) -> Endpoint:
        """A new namespace joined to the node by a veth; undone completely if any step fails."""
        self._next_if += 1
        ifname = f"{letter}{self._next_if}"
        ep = Endpoint(key, f"{self.prefix}{letter}{self._next_if}", ip)
        await netns.arun(["ip", "netns", "add", ep.netns])
        try:
            await netns.arun(["ip", "-n", self.node, "-batch", "-"], node_cmds(ifname, ep.netns))
            await netns.arun(["ip", "-n", ep.netns, "-batch", "-"], inner_cmds)
            self._fds[key] = os.open(ep.path, os.O_RDONLY)
        except BaseException:
            await self._drop(ep.netns, ifname)
            raise
        self._ifnames[key] = ifname
        return ep

    async def _drop(self, name: str, ifname: str) -> None:
        for argv in (
            ["ip", "-n", self.node, "link", "del", ifname],
            ["ip", "netns", "delete", name],
        ):
            with contextlib.suppress(ClusterError):
                await netns.arun(argv)

    async def remove(self, ep: Endpoint) -> None:
        """Remove an endpoint's namespace and its veth."""
        fd = self._fds.pop(ep.key, -1)
        if fd >= 0:
            os.close(fd)
        await self._drop(ep.netns, self._ifnames.pop(ep.key, "none"))
        released = self._released.get(ep.ip)
        if released is not None:
            released.set()

    async def apply_ruleset(self, text: str) -> None:
        """Install an nftables script in the node namespace as one transaction."""
        await netns.arun(
            ["nsenter", f"--net={netns.netns_path(self.node)}", "nft", "-f", "-"], text
        )

    def teardown(self) -> None:
        """Remove every namespace of this instance; safe to call more than once."""
        for fd in [*self._fds.values(), self.node_fd]:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fds.clear()
        self.node_fd = -1
        cleanup_namespaces(self.instance)
