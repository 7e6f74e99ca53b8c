"""``analyze`` on manifest folders: loading, matrix outputs, explain, to-scenario (offline)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.api.types import L4Protocol
from conformance.cli import main
from conformance.errors import ScenarioError
from conformance.reference.evaluator import Evaluator
from conformance.reference.inventory import build_inventory, load_manifest_dir, parse_port
from conformance.reference.matrix import compute_matrix
from conformance.scenario.load import load_scenario


def _pod_spec(ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {"containers": [{"name": "c", "image": "agnhost", "ports": ports}]}


def _template(app: str, ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": app}}, "spec": _pod_spec(ports)}


HTTP = [{"containerPort": 8080, "name": "http", "protocol": "TCP"}]
DNS = [{"containerPort": 53, "name": "dns", "protocol": "UDP"}]

OBJECTS: dict[str, list[dict[str, Any]]] = {
    "namespaces.yaml": [
        {
            "apiVersion": "v1",
            "kind": "NamespaceList",
            "items": [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": "infra", "labels": {"team": "infra"}},
                },
            ],
        }
    ],
    "workloads/web.yaml": [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"replicas": 3, "template": _template("web", HTTP)},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {
                "replicas": 1,
                "template": _template("db", [{"containerPort": 5432, "name": "pg"}]),
            },
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "shop"}},
    ],
    "workloads/infra.yml": [
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "dns", "namespace": "infra"},
            "spec": {"template": _template("dns", DNS)},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "backup", "namespace": "infra"},
            "spec": {"jobTemplate": {"spec": {"template": _template("backup", [])}}},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "probe", "namespace": "infra", "labels": {"app": "probe"}},
            "spec": _pod_spec(HTTP),
            "status": {"podIP": "10.240.0.10"},
        },
    ],
    "policies.yaml": [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "db", "namespace": "shop", "resourceVersion": "7"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "db"}},
                "ingress": [
                    {
                        "from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                        "ports": [{"port": "pg"}],
                    }
                ],
            },
            "status": {},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "web-egress", "namespace": "shop"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "web"}},
                "policyTypes": ["Egress"],
                "egress": [
                    {"to": [{"podSelector": {"matchLabels": {"app": "db"}}}]},
                    {
                        "to": [{"namespaceSelector": {"matchLabels": {"team": "infra"}}}],
                        "ports": [{"port": 53, "protocol": "UDP"}],
                    },
                    {"to": [{"ipBlock": {"cidr": "10.240.0.10/32"}}], "ports": [{"port": 8080}]},
                ],
            },
        },
    ],
}


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    root = tmp_path / "manifests"
    for name, docs in OBJECTS.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump_all(docs))
    return root


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(["analyze", *argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_manifest_folder_expands_workloads_and_keeps_policies(manifests: Path) -> None:
    inv = build_inventory(load_manifest_dir(manifests))
    keys = [p.key for p in inv.state.pods]
    assert keys == ["infra/dns-0", "infra/backup-0", "infra/probe", "shop/web-0", "shop/db-0"]
    assert {n.name for n in inv.state.namespaces} == {"shop", "infra"}
    assert dict(inv.state.namespace("infra").labels) == {"team": "infra"}
    probe = inv.state.pod("infra/probe")
    assert str(probe.ip) == "10.240.0.10"
    assert probe.named_port("http", L4Protocol.TCP) == 8080
    # Synthetic addresses avoid the real pod's.
    assert len({p.ip for p in inv.state.pods}) == 5
    assert [p.key for p in inv.policies] == ["shop/db", "shop/web-egress"]
    assert "resourceVersion" not in inv.policy_objects[0]["metadata"]
    assert "status" not in inv.policy_objects[0]
    assert any("ConfigMap (1)" in n for n in inv.notes)
    assert any("1 workloads expanded to 1" in n for n in inv.notes)


def test_replicas_option_expands_more_pods(manifests: Path) -> None:
    inv = build_inventory(load_manifest_dir(manifests), replicas=5)
    assert [p.key for p in inv.state.pods if p.key.startswith("shop/web")] == [
        f"shop/web-{i}" for i in range(3)
    ]


def test_summary_groups_by_namespace(manifests: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(["--manifests", str(manifests)], capsys)
    assert rc == 0
    assert out.startswith("2 namespaces, 5 pods, 2 NetworkPolicies, 0 admin policies;")
    assert "to shop (2 pods, 2 ports):" in out
    assert "to infra (3 pods, 2 ports):" in out
    assert "  all allowed from 1 namespace: shop\n" in out
    assert "note: ignored objects of kinds: ConfigMap (1)" in out


def test_json_and_csv_agree_with_the_reference(
    manifests: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inv = build_inventory(load_manifest_dir(manifests))
    ev = Evaluator(inv.state, inv.policies)
    rc, out, _ = run(["--manifests", str(manifests), "--output", "csv"], capsys)
    assert rc == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 5 * 4  # 5 sources x one port on every target but backup
    for row in rows:
        expected = ev.decide(row["from"], row["to"], int(row["port"]), L4Protocol(row["protocol"]))
        assert row["verdict"] == expected.verdict
    got = {(r["from"], r["to"], r["port"]): r["verdict"] for r in rows}
    assert got[("shop/web-0", "shop/db-0", "5432")] == "allow"
    assert got[("infra/probe", "shop/db-0", "5432")] == "deny"
    assert got[("shop/web-0", "infra/dns-0", "53")] == "allow"
    assert got[("shop/web-0", "infra/probe", "8080")] == "allow"  # ipBlock on the real IP
    out_file = tmp_path / "m.json"
    rc, _, _ = run(
        ["--manifests", str(manifests), "--output", "json", "--out", str(out_file)], capsys
    )
    assert rc == 0
    doc = json.loads(out_file.read_text())
    assert doc["version"] == 1 and len(doc["sources"]) == 5
    db = next(c for c in doc["cells"] if c["target"] == "shop/db-0")
    assert db["allow"] == ["shop/web-0"] and db["port"] == 5432 and db["protocol"] == "TCP"
    assert db["implementation-defined"] == ["shop/db-0"]
    assert sum(doc["counts"].values()) == len(rows)


def test_explain_prints_the_reference_reason(
    manifests: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--manifests", str(manifests), "--explain", "infra/probe", "shop/db-0", "pg/TCP"]
    rc, _, err = run(argv, capsys)
    assert rc == 2 and err.startswith("error: 'pg/TCP' is not a port")
    argv[-1] = "5432/TCP"
    rc, out, _ = run(argv, capsys)
    assert rc == 0
    assert out.splitlines()[0] == "infra/probe -> shop/db-0 5432/TCP: deny"
    assert "isolated by shop/db; no rule allows it" in out
    rc, _, err = run([*argv[:3], "shop/nope", "shop/db-0", "80"], capsys)
    assert rc == 2 and "FROM pod 'shop/nope' not found" in err


def test_to_scenario_writes_a_scenario_that_evaluates_clean(
    manifests: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out" / "shop-regression.yaml"
    argv = ["--manifests", str(manifests), "--to-scenario", str(target), "--sample", "4"]
    rc, out, _ = run([*argv, "--seed", "3"], capsys)
    assert rc == 0 and "wrote" in out
    scenario = load_scenario(target)
    doc = yaml.safe_load(target.read_text())
    assert "regression baseline" in doc["description"]
    assert set(doc["requires"]) >= {"UDP", "NamedPorts", "IPBlock", "Egress"}
    assert len(doc["topology"]["pods"]) == 4
    assert "table" in doc["steps"][0]["expect"]
    assert len(scenario.bind()) == 1
    assert main(["evaluate", str(target)]) == 0
    first = target.read_text()
    rc, _, _ = run([*argv, "--seed", "3"], capsys)
    assert target.read_text() == first  # reproducible from the seed


def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = run(["--manifests", str(tmp_path / "missing")], capsys)
    assert rc == 2 and err.count("\n") == 1 and "no such file" in err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "p.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: p, namespace: x}\nspec: {podSelector: {matchLabels: {a: '-x'}}}\n"
    )
    rc, _, err = run(["--manifests", str(bad)], capsys)
    assert rc == 2 and err.count("\n") == 1
    assert "NetworkPolicy x/p" in err and str(bad / "p.yaml") in err
    (bad / "p.yaml").write_text("kind: [unclosed\n")
    rc, _, err = run(["--manifests", str(bad)], capsys)
    assert rc == 2 and "not valid YAML" in err


def test_parse_port() -> None:
    assert parse_port("53/udp") == (53, L4Protocol.UDP)
    assert parse_port("80") == (80, L4Protocol.TCP)
    with pytest.raises(ScenarioError):
        parse_port("0/TCP")


def test_matrix_of_inventory_matches_reference_cell_by_cell(manifests: Path) -> None:
    inv = build_inventory(load_manifest_dir(manifests), replicas=3)
    matrix = compute_matrix(inv.state, inv.policies)
    ev = Evaluator(inv.state, inv.policies)
    for s, t, port, proto, verdict in matrix.cells():
        assert verdict == ev.decide(s, t, port, proto).verdict


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal_for_large_inputs(
    manifests: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conformance.cli import build_parser
    from conformance.commands import analyze as analyze_cmd

    args = build_parser().parse_args(["analyze", "--manifests", str(manifests)])
    out, err = io.StringIO(), _Terminal()
    assert analyze_cmd.run(args, out, err) == 0
    assert err.getvalue() == ""  # 5 pods: below the threshold
    monkeypatch.setattr(analyze_cmd, "PROGRESS_MIN_PODS", 1)
    out, err = io.StringIO(), _Terminal()
    assert analyze_cmd.run(args, out, err) == 0
    assert "evaluating" in err.getvalue()
    assert out.getvalue().startswith("2 namespaces, 5 pods")


NODE_OBJECTS: list[dict[str, Any]] = [
    {
        "kind": "Node",
        "metadata": {"name": "w1", "labels": {"kubernetes.io/hostname": "w1", "zone": "a"}},
        "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]},
    },
    {
        "kind": "Node",
        "metadata": {"name": "w2", "labels": {"kubernetes.io/hostname": "w2", "zone": "b"}},
        "status": {
            "addresses": [
                {"type": "Hostname", "address": "w2"},
                {"type": "InternalIP", "address": "172.18.0.3"},
            ]
        },
    },
    {"kind": "Namespace", "metadata": {"name": "app"}},
    {
        "kind": "Pod",
        "metadata": {"name": "client", "namespace": "app", "labels": {"app": "client"}},
        "spec": {"nodeName": "w1", **_pod_spec(HTTP)},
        "status": {
            "phase": "Running",
            "podIP": "10.244.1.5",
            "podIPs": [{"ip": "10.244.1.5"}, {"ip": "fd00::5"}],
        },
    },
    {
        "kind": "Pod",
        "metadata": {"name": "agent", "namespace": "app", "labels": {"app": "agent"}},
        "spec": {"nodeName": "w2", "hostNetwork": True, **_pod_spec(HTTP)},
        "status": {"phase": "Running", "podIP": "172.18.0.3"},
    },
    {
        "apiVersion": "policy.networking.k8s.io/v1alpha2",
        "kind": "ClusterNetworkPolicy",
        "metadata": {"name": "no-zone-b-nodes"},
        "spec": {
            "tier": "Admin",
            "priority": 1,
            "subject": {"namespaces": {}},
            "egress": [{"action": "Deny", "to": [{"nodes": {"matchLabels": {"zone": "b"}}}]}],
        },
    },
]


class _Cluster:
    """A read-only cluster that serves NODE_OBJECTS (Lister protocol)."""

    def served_kinds(self) -> set[str]:
        return {"ClusterNetworkPolicy"}

    def list_items(
        self, kind: str, namespace: str | None = None, label_selector: str = ""
    ) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in o.items() if k != "kind"} for o in NODE_OBJECTS if o["kind"] == kind
        ]


def test_nodes_placement_and_dual_stack_addresses_come_from_the_cluster() -> None:
    from conformance.reference.inventory import list_cluster

    inv = build_inventory(list_cluster(_Cluster()))
    state = inv.state
    assert {n.name: str(n.ip) for n in state.nodes} == {"w1": "172.18.0.2", "w2": "172.18.0.3"}
    client, agent = state.pod("app/client"), state.pod("app/agent")
    assert (client.node, agent.node, agent.host_network) == ("w1", "w2", True)
    assert [str(a) for a in client.extra_ips] == ["fd00::5"]
    # The nodes peer is decided from w2's labels (it was implementation-defined without nodes).
    matrix = compute_matrix(state, inv.policies)
    assert str(matrix.verdict("app/client", "app/agent", 8080, L4Protocol.TCP)) == "deny"
    assert "no-zone-b-nodes" in matrix.reason("app/client", "app/agent", 8080, L4Protocol.TCP)


def test_to_scenario_keeps_the_cluster_nodes_and_placement(tmp_path: Path) -> None:
    from conformance.reference.inventory import list_cluster, scenario_document

    inv = build_inventory(list_cluster(_Cluster()))
    doc = scenario_document(inv, sample=10, seed=1)
    assert set(doc["topology"]["nodes"]) == {"w1", "w2"}
    assert doc["topology"]["nodes"]["w2"]["labels"]["zone"] == "b"
    assert [p["node"] for p in doc["topology"]["pods"]] == ["w1"]  # host-network pods not sampled
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc))
    state = load_scenario(path).offline_steps[0].state
    assert state.pod("app/client").node == "w1"
