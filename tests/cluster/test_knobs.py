"""Knobs change behaviour exactly as documented in docs/cluster.md (real packets, real HTTP)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from websocket import WebSocketConnectionClosedException

from conformance.cluster.config import ClusterOptions, ExternalHost
from conformance.cluster.embedded import EmbeddedCluster
from conformance.cluster.faults import Faults
from conformance.cluster.knobs import Deviation, Knobs
from tests.cluster.conftest import Kube, agnhost_pod, unique_instance
from tests.test_run_e2e import ROOT, cli
from tests.test_selftest import left_behind

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
NO_KNOBS = Knobs()
NO_FAULTS = Faults()


@contextlib.contextmanager
def _cluster(knobs: Knobs = NO_KNOBS, faults: Faults = NO_FAULTS) -> Iterator[Kube]:
    options = ClusterOptions(
        instance=unique_instance("k"),
        knobs=knobs,
        faults=faults,
        externals=(ExternalHost("web", "203.0.113.10"),),
    )
    with EmbeddedCluster(options) as cluster:
        yield Kube(cluster)


def deviating(deviation: Deviation) -> contextlib.AbstractContextManager[Kube]:
    return _cluster(Knobs(deviations=frozenset({deviation})))


def test_ignore_except() -> None:
    with deviating(Deviation.IGNORE_EXCEPT) as kube:
        ips = kube.pods("default", [agnhost_pod("srv"), agnhost_pod("c")])
        kube.policy(
            "default",
            "p",
            {
                "podSelector": {"matchLabels": {"pod": "srv"}},
                "ingress": [
                    {"from": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": [f"{ips['c']}/32"]}}]}
                ],
            },
        )
        assert kube.connect("default", "c", f"{ips['srv']}:80") == (0, "")  # correct: TIMEOUT


def test_ignore_endport() -> None:
    with deviating(Deviation.IGNORE_ENDPORT) as kube:
        kube.pods("default", [agnhost_pod("c")])
        kube.policy(
            "default",
            "p",
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{"ports": [{"port": 80, "endPort": 81}]}],
            },
        )
        assert kube.connect("default", "c", "203.0.113.10:80") == (0, "")
        assert kube.connect("default", "c", "203.0.113.10:81") == (
            1,
            "TIMEOUT\n",
        )  # correct: allowed


def _named_pod(name: str, web_port: int) -> dict[str, Any]:
    pod = agnhost_pod(name)
    for container in pod["spec"]["containers"]:
        for port in container["ports"]:
            if port["containerPort"] == web_port and port["protocol"] == "TCP":
                port["name"] = "web"
    return pod


def test_named_port_wrong_pod() -> None:
    with deviating(Deviation.NAMED_PORT_WRONG_POD) as kube:
        ips = kube.pods("default", [_named_pod("srv", 80), _named_pod("c", 81)])
        kube.policy(
            "default",
            "p",
            {
                "podSelector": {"matchLabels": {"pod": "c"}},
                "policyTypes": ["Egress"],
                "egress": [{"ports": [{"port": "web"}]}],
            },
        )
        # Correct: "web" resolves on the destination (srv: 80). The deviation uses the sender's (81).
        assert kube.connect("default", "c", f"{ips['srv']}:81") == (0, "")
        assert kube.connect("default", "c", f"{ips['srv']}:80") == (1, "TIMEOUT\n")


def test_udp_unfiltered() -> None:
    with deviating(Deviation.UDP_UNFILTERED) as kube:
        ips = kube.pods("default", [agnhost_pod("srv"), agnhost_pod("c")])
        kube.policy("default", "deny", {"podSelector": {"matchLabels": {"pod": "srv"}}})
        assert kube.connect("default", "c", f"{ips['srv']}:80") == (1, "TIMEOUT\n")
        assert kube.connect("default", "c", f"{ips['srv']}:80", "udp") == (
            0,
            "",
        )  # correct: TIMEOUT


def test_first_pod_only() -> None:
    with deviating(Deviation.FIRST_POD_ONLY) as kube:
        ips = kube.pods("default", [agnhost_pod("a", {"app": "x"})])
        ips |= kube.pods("default", [agnhost_pod("b", {"app": "x"}), agnhost_pod("c")])
        kube.policy("default", "deny", {"podSelector": {"matchLabels": {"app": "x"}}})
        assert kube.connect("default", "c", f"{ips['a']}:80") == (1, "TIMEOUT\n")
        assert kube.connect("default", "c", f"{ips['b']}:80") == (0, "")  # correct: TIMEOUT


def test_ignore_label_changes() -> None:
    with deviating(Deviation.IGNORE_LABEL_CHANGES) as kube:
        ips = kube.pods("default", [agnhost_pod("srv"), agnhost_pod("c")])
        kube.policy(
            "default",
            "p",
            {
                "podSelector": {"matchLabels": {"pod": "srv"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}],
            },
        )
        kube.core.patch_namespaced_pod("c", "default", {"metadata": {"labels": {"role": "client"}}})
        assert kube.connect("default", "c", f"{ips['srv']}:80") == (
            1,
            "TIMEOUT\n",
        )  # correct: allowed


def test_ignore_namespace_label_changes() -> None:
    with deviating(Deviation.IGNORE_NAMESPACE_LABEL_CHANGES) as kube:
        kube.namespace("client", {"team": "red"})
        ips = kube.pods("default", [agnhost_pod("srv")])
        kube.pods("client", [agnhost_pod("c")])
        kube.policy(
            "default",
            "p",
            {
                "podSelector": {},
                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "blue"}}}]}],
            },
        )
        assert kube.connect("client", "c", f"{ips['srv']}:80") == (1, "TIMEOUT\n")
        kube.core.patch_namespace("client", {"metadata": {"labels": {"team": "blue"}}})
        assert kube.connect("client", "c", f"{ips['srv']}:80") == (
            1,
            "TIMEOUT\n",
        )  # correct: allowed


def test_deleted_policy_enforced() -> None:
    with deviating(Deviation.DELETED_POLICY_ENFORCED) as kube:
        ips = kube.pods("default", [agnhost_pod("srv"), agnhost_pod("c")])
        kube.policy("default", "deny", {"podSelector": {"matchLabels": {"pod": "srv"}}})
        assert kube.connect("default", "c", f"{ips['srv']}:80") == (1, "TIMEOUT\n")
        kube.net.delete_namespaced_network_policy("deny", "default")
        assert kube.connect("default", "c", f"{ips['srv']}:80") == (
            1,
            "TIMEOUT\n",
        )  # correct: allowed
        # A policy of the same name replaces the ghost: an allow-all now decides.
        kube.policy(
            "default", "deny", {"podSelector": {"matchLabels": {"pod": "srv"}}, "ingress": [{}]}
        )
        assert kube.connect("default", "c", f"{ips['srv']}:80") == (0, "")


def test_stale_address_rules() -> None:
    with deviating(Deviation.STALE_ADDRESS_RULES) as kube:
        ips = kube.pods("default", [agnhost_pod("srv"), agnhost_pod("c"), agnhost_pod("o")])
        kube.policy(
            "default",
            "from-c",
            {
                "podSelector": {"matchLabels": {"pod": "srv"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "c"}}}]}],
            },
        )
        assert kube.connect("default", "o", f"{ips['srv']}:80") == (1, "TIMEOUT\n")
        kube.core.delete_namespaced_pod("c", "default")
        new = kube.pods("default", [agnhost_pod("n")])
        assert new["n"] == ips["c"]  # the freed address is handed out first
        assert kube.connect("default", "n", f"{ips['srv']}:80") == (0, "")  # correct: TIMEOUT
        # Only addresses are stale: a pod with a fresh address gets its own (lack of) rules.
        fresh = kube.pods("default", [agnhost_pod("f")])
        assert fresh["f"] not in ips.values()
        assert kube.connect("default", "f", f"{ips['srv']}:80") == (1, "TIMEOUT\n")


def test_stale_address_rules_hands_a_freed_address_to_its_namespace_first() -> None:
    # Two scenarios at once on one cluster: b's pod, created between a's delete and a's
    # replacement, must not take a's address; once a namespace is deleted, anyone may.
    def pod(name: str) -> dict[str, Any]:
        body = agnhost_pod(name, ports=((80, "TCP"),))
        body["spec"]["nodeName"] = "embedded-worker"
        return body

    with deviating(Deviation.STALE_ADDRESS_RULES) as kube:
        kube.namespace("a")
        kube.namespace("b")
        old = kube.pods("a", [pod("old")])["old"]
        kube.core.delete_namespaced_pod("old", "a")
        between = kube.pods("b", [pod("between")])["between"]
        assert between != old
        assert kube.pods("a", [pod("newcomer")])["newcomer"] == old
        kube.core.delete_namespace("b")
        assert kube.pods("a", [pod("later")])["later"] == between


def test_stale_address_rules_caught_by_its_scenario_and_clean_run_matches(
    tmp_path: Path,
) -> None:
    res = cli(
        "selftest",
        str(ROOT / "scenarios" / "detection" / "pod-address-reused.yaml"),
        "--deviation",
        "stale-address-rules",
        "--output-dir",
        str(tmp_path),
    )
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads((tmp_path / "selftest.json").read_text())
    assert doc["clean"]["mismatchingCells"] == 0 and doc["ok"]
    (dev,) = doc["deviations"]
    assert dev["deviation"] == "stale-address-rules" and dev["caught"]
    # Step 2: x/newcomer, on x/client's address, is let into x/server (1 cell). Step 3: still
    # so, and x/open, on x/locked's address, is isolated: x/server, x/other, x/newcomer -> x/open.
    assert [(s["step"], s["cells"]) for s in dev["steps"]] == [(2, 1), (3, 4)]
    assert [s["unexpectedlyAllowed"] for s in dev["steps"]] == [1, 1]
    assert left_behind(doc) == set()


def test_stateless_drops_replies_at_the_servers_egress() -> None:
    with deviating(Deviation.STATELESS) as kube:
        ips = kube.pods("default", [agnhost_pod("srv"), agnhost_pod("c")])
        kube.policy(
            "default",
            "no-egress",
            {"podSelector": {"matchLabels": {"pod": "srv"}}, "policyTypes": ["Egress"]},
        )
        assert kube.connect("default", "c", f"{ips['srv']}:80") == (
            1,
            "TIMEOUT\n",
        )  # correct: allowed (replies pass by conntrack)
        code, err = kube.connect("default", "c", f"{ips['srv']}:80", "udp")
        assert code == 1 and err.startswith("TIMEOUT"), err  # correct: the reply arrives


def test_enforcement_delay() -> None:
    with _cluster(Knobs(enforcement_delay=1.5)) as kube:
        ips = kube.pods("default", [agnhost_pod("srv"), agnhost_pod("c")])
        kube.policy("default", "deny", {"podSelector": {"matchLabels": {"pod": "srv"}}})
        created = time.monotonic()
        assert kube.connect("default", "c", f"{ips['srv']}:80", timeout="200ms") == (0, "")
        while kube.connect("default", "c", f"{ips['srv']}:80", timeout="200ms") == (0, ""):
            assert time.monotonic() - created < 10, "the delayed rules never took effect"
        assert time.monotonic() - created >= 1.5


def test_api_errors_are_injected_as_real_status_responses() -> None:
    with _cluster(faults=Faults(error_rate=0.5, error_codes=(429, 503), seed=7)) as kube:
        codes = []
        for _ in range(60):
            try:
                kube.core.list_namespace()
                codes.append(200)
            except kubernetes.client.ApiException as exc:
                codes.append(exc.status)
                assert exc.reason in ("Too Many Requests", "Service Unavailable")
        assert set(codes) == {200, 429, 503}
        assert 10 < codes.count(200) < 50
        assert kube.cluster.status()["faultsInjected"]["errors"] == 60 - codes.count(200)


def test_api_delay_injection() -> None:
    with _cluster(faults=Faults(delay_rate=1.0, delay_seconds=0.3)) as kube:
        start = time.monotonic()
        kube.core.list_namespace()
        assert time.monotonic() - start >= 0.3


def test_exec_streams_dropped_midway() -> None:
    with _cluster(faults=Faults(exec_drop_rate=1.0)) as kube:
        kube.pods("default", [agnhost_pod("c")])
        from kubernetes.stream import stream

        resp = stream(
            kube.core.connect_get_namespaced_pod_exec,
            "c",
            "default",
            command=["sh", "-c", "echo partial"],
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
            _preload_content=False,
        )
        # The connection is cut after the output and before the exit status, as when a proxy or
        # the API server drops the stream: the client sees the connection lost.
        with pytest.raises(WebSocketConnectionClosedException):
            resp.run_forever(timeout=10)
        assert resp.read_channel(3) == ""
