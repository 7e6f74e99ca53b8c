"""Rootless mode: the daemon in its own user, network and mount namespaces (forced as root here)."""

from __future__ import annotations

import pytest

from conformance.cluster.config import ClusterOptions, ExternalHost
from conformance.cluster.embedded import EmbeddedCluster, find
from conformance.cluster.netns import list_netns
from tests.cluster.conftest import Kube, agnhost_pod, unique_instance

pytestmark = pytest.mark.cluster


def test_rootless_cluster_works_and_hides_its_namespaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETPOL_CONFORMANCE_ROOTLESS", "1")
    name = unique_instance("rl")
    options = ClusterOptions(instance=name, externals=(ExternalHost("web", "203.0.113.10"),))
    with EmbeddedCluster(options) as cluster:
        kube = Kube(cluster)
        ips = kube.pods("default", [agnhost_pod("a"), agnhost_pod("b")])
        # Its namespaces live in the daemon's private mount namespace, not the host's /run/netns.
        assert not [n for n in list_netns() if n.startswith(f"npc-{name}-")]
        assert kube.connect("default", "a", f"{ips['b']}:80") == (0, "")
        kube.policy("default", "deny", {"podSelector": {"matchLabels": {"pod": "b"}}})
        assert kube.connect("default", "a", f"{ips['b']}:80") == (1, "TIMEOUT\n")
        code, out, _ = kube.exec(
            "default", "a", ["sh", "-c", "/agnhost connect 203.0.113.10:80 --timeout=1s; echo $?"]
        )
        assert (code, out) == (0, "0\n")
        pid = cluster.info.pid
    assert find(name) is None
    with pytest.raises(OSError):
        open(f"/proc/{pid}/cmdline").close()
