"""The embedded cluster's network: node namespaces on an underlay, each routing for its own pods.

Why: real packets must cross points the policy compiler controls, on the paths real CNIs have.
Each node is a namespace with its own pod CIDR slice and nftables ruleset; nodes meet on an
underlay bridge in a "wire" namespace (like kind's docker network, 172.18.0.0/24), which also
routes to the external hosts on TEST-NET. Each pod gets its own namespace and a routed veth to its
node (like Calico: /32 address, gateway 169.254.1.1); a host-network pod is its node's namespace.
Nothing links to the host, so nothing leaves. Every namespace is named ``npc-<instance>-...`` so
cleanup finds exactly this instance's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from conformance.cluster import netns
from conformance.errors import ClusterError

POD_CIDR = ipaddress.IPv4Network("10.244.0.0/16")
POD_CIDR_V6 = ipaddress.IPv6Network("fd00:10:244::/64")
NODE_CIDR = ipaddress.IPv4Network("172.18.0.0/24")
NODE_CIDR_V6 = ipaddress.IPv6Network("fd00:172:18::/64")
EXTERNAL_NETS = (ipaddress.IPv4Network("203.0.113.0/24"), ipaddress.IPv4Network("198.51.100.0/24"))
EXTERNAL_NET_V6 = ipaddress.IPv6Network("2001:db8::/96")
GATEWAY = "169.254.1.1"
GATEWAY_V6 = "fe80::1"
GATEWAY_MAC = "ee:ee:ee:ee:ee:ee"
NFT_TABLE = "npc"
UPLINK = "eth0"
"""A node's link to the underlay: packets arriving on it came from another node or outside."""
MAX_NODES = 8
"""Each node's pod slice is a /20 of 10.244.0.0/16 (after one unused /20): at most 15 fit."""
NODE_PREFIX = "embedded-worker"


def node_name(index: int) -> str:
    """Names like kind's workers: embedded-worker, embedded-worker2, ..."""
    return NODE_PREFIX if index == 0 else f"{NODE_PREFIX}{index + 1}"


@dataclass(frozen=True)
class NodeNet:
    """One node: its namespace, underlay addresses and pod CIDR slices (node ``index`` from 0)."""

    name: str
    index: int
    netns: str

    @property
    def ip(self) -> str:
        return str(NODE_CIDR[2 + self.index])

    @property
    def ip6(self) -> str:
        return str(NODE_CIDR_V6[2 + self.index])

    @property
    def pod_cidr(self) -> ipaddress.IPv4Network:
        """The node's slice of the pod CIDR: 4094 pod addresses (10.244.16.0/20 for the first)."""
        return ipaddress.IPv4Network((int(POD_CIDR.network_address) + ((self.index + 1) << 12), 20))

    @property
    def pod_cidr6(self) -> ipaddress.IPv6Network:
        return ipaddress.IPv6Network(f"{POD_CIDR_V6[(self.index + 1) << 16]}/112")

    def pod_ip6(self, ip: str) -> str:
        """The pod's IPv6 address: the same host number as its IPv4 one, in the node's slice."""
        offset = int(ipaddress.IPv4Address(ip)) - int(self.pod_cidr.network_address)
        return str(self.pod_cidr6[offset])


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


def external_ip6_problem(ip: str) -> str:
    """Why ``ip`` cannot be an external host's IPv6 address (empty when it can)."""
    try:
        addr = ipaddress.IPv6Address(ip)
    except ValueError:
        addr = None
    if (
        addr is None
        or addr not in EXTERNAL_NET_V6
        or addr
        in (
            EXTERNAL_NET_V6[0],
            EXTERNAL_NET_V6[1],
        )
    ):
        return (
            f"external host IPv6 address {ip} must be a host address in {EXTERNAL_NET_V6} "
            "other than ::0 and ::1"
        )
    return ""


class FreedAddresses:
    """Deviation stale-address-rules: which freed pod address each new pod on a node is given.

    The rule: a new pod takes the oldest address its own namespace freed on that node; when there
    is none, the oldest freed address on that node whose namespace is gone (``forget``); when
    there is none either, a fresh one. An address freed by a namespace that still exists is never
    handed to another namespace's pod.

    Why: the deviation exists to show what happens when a new pod is given an address a deleted
    pod had; a scenario shows it by deleting a pod and adding one in its place, on that node. With
    many scenarios running at once on one cluster (``--jobs``), a first-come rule lets another
    scenario's pod, created in between, take the address, and the scenario then shows less or
    nothing (with ``--jobs 6``, pod-address-reused's second replacement lost its address in every
    run measured, and test_the_detection_suite_alone_catches_every_knob missed the knob in about
    one CI run in six, when both did).
    Each scenario has namespaces of its own, so keying by namespace makes the scenario's own
    deletion decide what its newcomer gets, whatever else runs. Addresses still change namespace
    once their namespace is deleted, which is how a whole-suite run shows the deviation nearly
    everywhere (a scenario's pods get the addresses an earlier scenario's namespaces left).

    Real IPAMs reuse later, not sooner: the CNI host-local plugin hands addresses out round-robin
    from its range, so a released address comes back only after the range wraps around (what
    ``Dataplane`` does without the deviation); none prefers a namespace. This is a deterministic
    stand-in for "the address was reused", not a model of any one IPAM.
    """

    def __init__(self) -> None:
        # node -> [(address, namespace that freed it, "" once that namespace is gone)], oldest
        # freed first.
        self._freed: dict[str, list[tuple[str, str]]] = {}

    def free(self, node: str, address: str, namespace: str) -> None:
        """``address`` on ``node`` was freed by a pod of ``namespace`` ("": the namespace is gone)."""
        self._freed.setdefault(node, []).append((address, namespace))

    def forget(self, namespace: str) -> None:
        """``namespace`` was deleted: the addresses its pods freed go to any namespace now."""
        for entries in self._freed.values():
            entries[:] = [(a, "" if ns == namespace else ns) for a, ns in entries]

    def take(self, node: str, namespace: str) -> str | None:
        """The freed address a new pod of ``namespace`` on ``node`` gets, or None (a fresh one)."""
        entries = self._freed.get(node, [])
        for wanted in (namespace, ""):
            for i, (address, ns) in enumerate(entries):
                if ns == wanted:
                    del entries[i]
                    return address
        return None


@dataclass(frozen=True)
class Endpoint:
    """A namespace the cluster created for a pod or an external host, with its addresses.

    ``node`` is the node a pod runs on; ``host`` marks a host-network pod, whose namespace is its
    node's (nothing of its own to remove). ``ip6`` is empty on an IPv4-only cluster.
    """

    key: str
    netns: str
    ip: str
    node: str = ""
    ip6: str = ""
    host: bool = False

    @property
    def path(self) -> str:
        return netns.netns_path(self.netns)

    @property
    def ips(self) -> tuple[str, ...]:
        return (self.ip, self.ip6) if self.ip6 else (self.ip,)


class Dataplane:
    """Creates and removes this instance's namespaces and installs each node's nftables ruleset."""

    def __init__(
        self,
        instance: str,
        reuse_addresses: bool = False,
        nodes: int = 2,
        dual_stack: bool = False,
    ) -> None:
        if not 1 <= nodes <= MAX_NODES:
            raise ClusterError(f"an embedded cluster has 1 to {MAX_NODES} nodes, not {nodes}")
        self.instance = instance
        self.dual_stack = dual_stack
        # Deviation stale-address-rules: a removed pod's address goes to a new pod on that node
        # (which one: FreedAddresses), once the old namespace (holding its route) is gone.
        self.reuse_addresses = reuse_addresses
        self._freed = FreedAddresses()
        self._released: dict[str, asyncio.Event] = {}
        self.prefix = prefix_for(instance)
        self.wire = self.prefix + "wire"
        self.nodes = tuple(NodeNet(node_name(i), i, f"{self.prefix}n{i + 1}") for i in range(nodes))
        self._by_name = {n.name: n for n in self.nodes}
        self._next_ip = {n.name: int(n.pod_cidr.network_address) + 2 for n in self.nodes}
        self._next_if = 0
        self._fds: dict[str, int] = {}
        self._ifnames: dict[str, str] = {}
        self._node_fds: dict[str, int] = {}
        self._in_use: set[str] = set()

    def node(self, name: str) -> NodeNet:
        found = self._by_name.get(name)
        if found is None:
            raise ClusterError(f"no node named {name!r} in this cluster")
        return found

    async def setup(self) -> None:
        """The underlay and every node, forwarding on, routes between them; nothing else."""
        cleanup_namespaces(self.instance)
        names = [self.wire, *(n.netns for n in self.nodes)]
        await netns.arun(["ip", "-batch", "-"], "".join(f"netns add {n}\n" for n in names))
        for name in names:
            fd = os.open(netns.netns_path(name), os.O_RDONLY)
            self._node_fds[name] = fd
            # Before any link exists: links made afterwards take these defaults.
            netns.call_in(fd, _enable_forwarding)
        v6 = self.dual_stack
        wire = ["link set lo up", "link add br0 type bridge", "link set br0 up"]
        wire.append(f"addr add {NODE_CIDR[1]}/{NODE_CIDR.prefixlen} dev br0")
        wire += ["link add ext0 type bridge", "link set ext0 up"]
        wire += [f"addr add {net[1]}/{net.prefixlen} dev ext0" for net in EXTERNAL_NETS]
        if v6:
            wire.append(f"addr add {NODE_CIDR_V6[1]}/{NODE_CIDR_V6.prefixlen} dev br0 nodad")
            wire.append(f"addr add {EXTERNAL_NET_V6[1]}/{EXTERNAL_NET_V6.prefixlen} dev ext0 nodad")
        for n in self.nodes:
            wire += [
                f"link add u{n.index + 1} type veth peer name {UPLINK} netns {n.netns}",
                f"link set u{n.index + 1} master br0",
                f"link set u{n.index + 1} up",
                f"route add {n.pod_cidr} via {n.ip}",
            ]
            if v6:
                wire.append(f"route add {n.pod_cidr6} via {n.ip6}")
        await netns.arun(["ip", "-n", self.wire, "-batch", "-"], "\n".join(wire) + "\n")
        for n in self.nodes:
            lines = [
                "link set lo up",
                f"addr add {GATEWAY}/32 dev lo",
                f"addr add {n.ip}/{NODE_CIDR.prefixlen} dev {UPLINK}",
                f"link set {UPLINK} up",
                f"route add default via {NODE_CIDR[1]}",
            ]
            lines += [f"route add {o.pod_cidr} via {o.ip}" for o in self.nodes if o is not n]
            if v6:
                lines.append(f"addr add {n.ip6}/{NODE_CIDR_V6.prefixlen} dev {UPLINK} nodad")
                lines.append(f"route add ::/0 via {NODE_CIDR_V6[1]}")
                lines += [f"route add {o.pod_cidr6} via {o.ip6}" for o in self.nodes if o is not n]
            await netns.arun(["ip", "-n", n.netns, "-batch", "-"], "\n".join(lines) + "\n")

    def node_fd(self, node: str) -> int:
        """Open descriptor of a node's namespace."""
        return self._node_fds[self.node(node).netns]

    def _allocate_ip(self, node: NodeNet) -> str:
        """The next free address of the node's slice, wrapping around like a real IPAM (an
        address is handed out again only after every other one was)."""
        cidr = node.pod_cidr
        first, last = int(cidr.network_address) + 2, int(cidr.broadcast_address) - 1
        for _ in range(last - first + 1):
            value = self._next_ip[node.name]
            self._next_ip[node.name] = value + 1 if value < last else first
            addr = str(ipaddress.IPv4Address(value))
            if addr not in self._in_use and addr not in self._released:
                return addr
        raise ClusterError(f"pod CIDR {cidr} of node {node.name} is exhausted")

    def fd(self, key: str) -> int:
        """Open descriptor of an endpoint's namespace (for sockets made inside it)."""
        return self._fds[key]

    def retire(self, ep: Endpoint, namespace: str = "") -> None:
        """Note that a pod of ``namespace`` ("": one that is gone) is being removed (its address
        is reused only if asked to)."""
        if self.reuse_addresses and not ep.host and ep.ip not in self._released:
            self._released[ep.ip] = asyncio.Event()
            self._freed.free(ep.node, ep.ip, namespace)

    def forget_namespace(self, namespace: str) -> None:
        """A namespace was deleted: addresses its pods freed may go to any namespace's pods."""
        self._freed.forget(namespace)

    def add_host_pod(self, key: str, node: str) -> Endpoint:
        """A host-network pod: its node's namespace and addresses (nothing is created)."""
        n = self.node(node)
        self._fds[key] = os.dup(self._node_fds[n.netns])
        return Endpoint(key, n.netns, n.ip, n.name, n.ip6 if self.dual_stack else "", host=True)

    async def add_pod(self, key: str, node: str | None = None, namespace: str = "") -> Endpoint:
        """Create a pod namespace on ``node`` (default: the first) with a routed veth and fresh
        addresses from the node's pod CIDR slices (or, with reuse, a freed one: the pod's
        ``namespace`` decides which, see FreedAddresses)."""
        n = self.node(node) if node else self.nodes[0]
        ip = self._freed.take(n.name, namespace) if self.reuse_addresses else None
        if ip is not None:
            # Wait until the old holder's route is gone (remove() sets the event).
            await self._released[ip].wait()
            del self._released[ip]
        else:
            ip = self._allocate_ip(n)
        ip6 = n.pod_ip6(ip) if self.dual_stack else ""
        pod_cmds = (
            "link set lo up\n"
            "link set eth0 up\n"
            f"addr add {ip}/32 dev eth0\n"
            f"route add {GATEWAY} dev eth0 scope link\n"
            f"route add default via {GATEWAY} dev eth0\n"
            f"neigh add {GATEWAY} lladdr {GATEWAY_MAC} dev eth0 nud permanent\n"
        )
        if ip6:
            pod_cmds += (
                f"addr add {ip6}/128 dev eth0 nodad\n"
                f"neigh add {GATEWAY_V6} lladdr {GATEWAY_MAC} dev eth0 nud permanent\n"
                f"route add ::/0 via {GATEWAY_V6} dev eth0\n"
            )

        def node_cmds(ifname: str, ns: str) -> str:
            # src: what the node (and its host-network pods) connect to the pod from.
            out = (
                f"link add {ifname} address {GATEWAY_MAC} type veth peer name eth0 netns {ns}\n"
                f"link set {ifname} up\n"
                f"route add {ip}/32 dev {ifname} src {n.ip}\n"
            )
            if ip6:
                out += f"route add {ip6}/128 dev {ifname} src {n.ip6}\n"
            return out

        return await self._plumb(key, "p", ip, n, node_cmds, pod_cmds, ip6)

    async def add_external(self, key: str, ip: str, ip6: str = "") -> Endpoint:
        """Create an external host on TEST-NET, on the underlay's external bridge."""
        problem = external_ip_problem(ip) or (external_ip6_problem(ip6) if ip6 else "")
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
        if ip6 and self.dual_stack:
            host_cmds += (
                f"addr add {ip6}/{EXTERNAL_NET_V6.prefixlen} dev eth0 nodad\n"
                f"route add ::/0 via {EXTERNAL_NET_V6[1]} dev eth0\n"
            )
        else:
            ip6 = ""
        return await self._plumb(
            key,
            "x",
            ip,
            None,
            lambda ifname, ns: (
                f"link add {ifname} type veth peer name eth0 netns {ns}\n"
                f"link set {ifname} master ext0\n"
                f"link set {ifname} up\n"
            ),
            host_cmds,
            ip6,
        )

    async def _plumb(
        self,
        key: str,
        letter: str,
        ip: str,
        node: NodeNet | None,
        node_cmds: Callable[[str, str], str],
        inner_cmds: str,
        ip6: str = "",
    ) -> Endpoint:
        """A new namespace joined to its node (or the wire) by a veth; undone if any step fails."""
        self._next_if += 1
        ifname = f"{letter}{self._next_if}"
        outer = node.netns if node is not None else self.wire
        ep = Endpoint(
            key, f"{self.prefix}{letter}{self._next_if}", ip, node.name if node else "", ip6
        )
        await netns.arun(["ip", "netns", "add", ep.netns])
        try:
            await netns.arun(["ip", "-n", outer, "-batch", "-"], node_cmds(ifname, ep.netns))
            await netns.arun(["ip", "-n", ep.netns, "-batch", "-"], inner_cmds)
            self._fds[key] = os.open(ep.path, os.O_RDONLY)
        except BaseException:
            await self._drop(ep.netns, outer, ifname)
            raise
        self._ifnames[key] = ifname
        self._in_use.add(ip)
        return ep

    async def _drop(self, name: str, outer: str, ifname: str) -> None:
        for argv in (
            ["ip", "-n", outer, "link", "del", ifname],
            ["ip", "netns", "delete", name],
        ):
            with contextlib.suppress(ClusterError):
                await netns.arun(argv)

    async def remove(self, ep: Endpoint) -> None:
        """Remove an endpoint's namespace and its veth (a host-network pod's: nothing)."""
        fd = self._fds.pop(ep.key, -1)
        if fd >= 0:
            os.close(fd)
        if not ep.host:
            outer = self.node(ep.node).netns if ep.node else self.wire
            await self._drop(ep.netns, outer, self._ifnames.pop(ep.key, "none"))
            self._in_use.discard(ep.ip)
        released = self._released.get(ep.ip)
        if released is not None:
            released.set()

    async def apply_rulesets(self, scripts: Mapping[str, str]) -> None:
        """Install each node's nftables script (node name -> script), each one transaction."""
        await asyncio.gather(
            *(
                netns.arun(
                    [
                        "nsenter",
                        f"--net={netns.netns_path(self.node(node).netns)}",
                        "nft",
                        "-f",
                        "-",
                    ],
                    text,
                )
                for node, text in scripts.items()
            )
        )

    def teardown(self) -> None:
        """Remove every namespace of this instance; safe to call more than once."""
        for fd in [*self._fds.values(), *self._node_fds.values()]:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fds.clear()
        self._node_fds.clear()
        cleanup_namespaces(self.instance)


def _enable_forwarding() -> None:
    """IP forwarding on; IPv6 duplicate address detection off (a new link's addresses would
    otherwise stay unusable for about a second)."""
    with open("/proc/sys/net/ipv4/ip_forward", "w") as fh:
        fh.write("1")
    for path, value in (
        ("/proc/sys/net/ipv6/conf/all/forwarding", "1"),
        ("/proc/sys/net/ipv6/conf/all/accept_dad", "0"),
        ("/proc/sys/net/ipv6/conf/default/accept_dad", "0"),
    ):
        with contextlib.suppress(OSError), open(path, "w") as fh:
            fh.write(value)
