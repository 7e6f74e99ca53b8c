"""hack/kind and the CNI workflow: these cannot create kind clusters here (no container engine), so
they are checked for what can be checked without one: lint, structure, pinned versions, the
commands the scripts would run (with stub tools on PATH), and run.sh end to end against the
embedded cluster under a kind-* context name."""

from __future__ import annotations

import fnmatch
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
KIND = ROOT / "hack" / "kind"
WORKFLOW = ROOT / ".github" / "workflows" / "cni-matrix.yml"
DEVIATIONS = KIND / "known-deviations"
SHA_PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")


def cnis() -> list[str]:
    match = re.search(r'^CNIS="([^"]+)"', (KIND / "lib.sh").read_text(), re.M)
    assert match, "lib.sh declares CNIS"
    return match.group(1).split()


def versions() -> dict[str, str]:
    out = {}
    for line in (KIND / "versions.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, eq, value = line.partition("=")
            assert eq and re.fullmatch(r"[A-Z_]+", key), f"not KEY=value: {line!r}"
            out[key] = value
    return out


def scenario_names() -> set[str]:
    names = set()
    for path in (ROOT / "scenarios").rglob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        if isinstance(doc, dict) and "name" in doc:
            names.add(str(doc["name"]))
    return names


# -- lint --------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_scripts_are_shellcheck_clean() -> None:
    scripts = sorted(str(p) for p in KIND.glob("*.sh"))
    proc = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_scripts_are_strict_and_executable() -> None:
    for script in KIND.glob("*.sh"):
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash\n"), script.name
        if script.name != "lib.sh":  # sourced only
            assert "set -euo pipefail" in text, script.name
            assert script.stat().st_mode & stat.S_IXUSR, f"{script.name} is not executable"


# -- versions and per-CNI files ------------------------------------------------------------------


def test_versions_are_pinned_in_one_place() -> None:
    v = versions()
    assert {"KIND_VERSION", "KIND_NODE_IMAGE", "CALICO_VERSION", "CILIUM_VERSION"} <= set(v)
    assert {"ANTREA_VERSION", "AGNHOST_IMAGE"} <= set(v)
    assert re.fullmatch(r"kindest/node:v[\d.]+@sha256:[0-9a-f]{64}", v["KIND_NODE_IMAGE"]), (
        "kind supports a node image only with the release that built it: pin the digest"
    )
    assert all(re.fullmatch(r"v?\d+\.\d+\.\d+", v[k]) for k in v if k.endswith("_VERSION"))
    from conformance.live.probing import AGNHOST_IMAGE, AGNHOST_TAG

    assert v["AGNHOST_IMAGE"] == f"{AGNHOST_IMAGE}:{AGNHOST_TAG}", "preload what the tool runs"
    # No script hard-codes a version: every *_VERSION they use comes from versions.env.
    for script in KIND.glob("*.sh"):
        for name in re.findall(r"\$\{?([A-Z_]+_(?:VERSION|IMAGE))\}?", script.read_text()):
            assert name in v or name == "MIN_KIND_VERSION", f"{script.name} uses undefined {name}"


@pytest.mark.parametrize("cni", cnis())
def test_each_cni_has_config_installer_and_deviation_file(cni: str) -> None:
    config = yaml.safe_load((KIND / f"kind-{cni}.yaml").read_text())
    assert config["kind"] == "Cluster" and config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert [n["role"] for n in config["nodes"]].count("worker") >= 2, "probes should cross nodes"
    disabled = (config.get("networking") or {}).get("disableDefaultCNI", False)
    assert disabled is (cni != "kindnet"), "only kindnet keeps kind's default CNI"
    if cni == "calico":
        assert config["networking"]["podSubnet"] == "192.168.0.0/16"
    installer = KIND / f"install-{cni}.sh"
    assert installer.exists() and "wait_rollout" in installer.read_text()
    assert (DEVIATIONS / f"{cni}.yaml").exists()


def load_deviations(path: Path) -> list[dict[str, Any]]:
    """Entries of a known-deviations file (docs/reports.md); validated by the tool when present."""
    try:
        from conformance.reports.deviations import KnownDeviations
    except ImportError:  # pragma: no cover - before the reports module lands
        pass
    else:
        KnownDeviations.load(path)
    doc = yaml.safe_load(path.read_text())
    entries: list[dict[str, Any]] = doc["deviations"]
    return entries


@pytest.mark.parametrize("path", sorted(DEVIATIONS.glob("*.yaml")), ids=lambda p: p.name)
def test_known_deviations_are_documented_and_match_real_scenarios(path: Path) -> None:
    names = scenario_names()
    for entry in load_deviations(path):
        assert entry["reason"].strip() and entry["link"].startswith("https://"), entry
        assert any(fnmatch.fnmatchcase(n, entry["scenario"]) for n in names), (
            f"{path.name}: {entry['scenario']!r} matches no scenario"
        )


def test_cilium_deviations_are_the_documented_ones() -> None:
    pod = load_deviations(DEVIATIONS / "cilium.yaml")
    service = load_deviations(DEVIATIONS / "cilium-via-service.yaml")
    assert {e["link"] for e in pod} == {"https://github.com/cilium/cilium/issues/9209"}
    assert all(e.get("kind") == "unexpectedly-denied" for e in pod), (
        "a CNI that ignores an allow only ever denies: an unexpected allow stays a failure"
    )
    assert all(e in service for e in pod), "the via-service file repeats the pod entries"
    (sctp,) = [e for e in service if e not in pod]
    assert sctp["cell"].endswith("/SCTP")
    for cni in ("calico", "antrea", "kindnet"):
        assert load_deviations(DEVIATIONS / f"{cni}.yaml") == [], f"nothing documented for {cni}"


# -- the workflow --------------------------------------------------------------------------------


def workflow() -> dict[Any, Any]:
    doc: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    return doc


def test_workflow_matrix_covers_every_cni_and_gates_on_run_sh() -> None:
    wf = workflow()
    triggers = wf[True]  # YAML 1.1 reads the key `on` as a boolean
    assert "workflow_dispatch" in triggers and "pull_request" in triggers
    assert wf["permissions"] == {"contents": "read"}
    assert set(wf["jobs"]) == {"conformance", "compare"}
    job = wf["jobs"]["conformance"]
    assert job["strategy"]["fail-fast"] is False
    assert sorted(job["strategy"]["matrix"]["cni"]) == sorted(cnis())
    runs = "\n".join(s.get("run", "") for s in job["steps"])
    assert 'hack/kind/create-cluster.sh "$CNI"' in runs
    assert 'hack/kind/run.sh "$CNI"' in runs
    assert "GITHUB_STEP_SUMMARY" in runs and "summary.md" in runs
    uploads = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload")]
    names = {s["with"]["name"] for s in uploads}
    assert names == {"reports-${{ matrix.cni }}", "allure-results-${{ matrix.cni }}"}
    assert all(s["if"] == "always()" for s in uploads), "reports matter most when a job fails"
    for step in job["steps"]:
        if "uses" in step and step["uses"] != "./":  # ./: this repository's own action.yml
            assert SHA_PINNED.match(step["uses"]), f"pin {step['uses']} to a commit"
        assert "${{" not in step.get("run", ""), "pass expressions through env, not into scripts"


def test_workflow_compares_every_cni_after_the_matrix(tmp_path: Path) -> None:
    """The last job downloads every CNI's reports and publishes `report --compare` (artifact and
    job summary); its script runs here on two results files standing in for two CNIs."""
    job = workflow()["jobs"]["compare"]
    assert job["needs"] == "conformance" and job["if"] == "always()"
    for step in job["steps"]:
        if "uses" in step:
            assert SHA_PINNED.match(step["uses"]), f"pin {step['uses']} to a commit"
        assert "${{" not in step.get("run", ""), "pass expressions through env, not into scripts"
    (download,) = [s for s in job["steps"] if "download-artifact" in str(s.get("uses", ""))]
    assert download["with"] == {"pattern": "reports-*", "path": "reports/cni"}
    (upload,) = [s for s in job["steps"] if "upload-artifact" in str(s.get("uses", ""))]
    assert (
        upload["with"]["name"] == "cni-comparison" and upload["with"]["path"] == "reports/compare/"
    )
    (script,) = [s["run"] for s in job["steps"] if "report --compare" in s.get("run", "")]

    bindir = tmp_path / "bin"
    bindir.mkdir()
    cli = bindir / "netpol-conformance"
    cli.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m conformance "$@"\n')
    cli.chmod(0o755)
    summary = tmp_path / "summary.md"
    env = {
        **os.environ,
        "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_STEP_SUMMARY": str(summary),
        "PYTHONPATH": str(ROOT),
    }

    def run_script() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    one = tmp_path / "reports" / "cni" / "reports-kindnet"
    one.mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "data" / "results-pass.json", one / "results.json")
    alone = run_script()
    assert alone.returncode == 0, alone.stderr
    assert "nothing to compare" in summary.read_text()
    two = tmp_path / "reports" / "cni" / "reports-calico"
    two.mkdir()
    shutil.copy(ROOT / "tests" / "data" / "results-broken.json", two / "results.json")
    both = run_script()
    assert both.returncode == 0, both.stderr
    assert (tmp_path / "reports" / "compare" / "compare.html").read_text().startswith("<!")
    assert "2 runs compared" in summary.read_text()


def test_workflow_runs_on_every_change_that_reaches_the_cluster() -> None:
    paths = workflow()[True]["pull_request"]["paths"]
    for changed in (
        "hack/kind/install-calico.sh",
        "conformance/probes/batch.sh",
        "conformance/pytest_plugin.py",
        "scenarios/upstream/x.yaml",
        "pyproject.toml",
        ".github/workflows/cni-matrix.yml",
    ):
        # GitHub's ** matches across directories, as fnmatch's * does.
        assert any(fnmatch.fnmatchcase(changed, p.replace("**", "*")) for p in paths), changed
    assert (ROOT / "conformance/probes/batch.sh").exists(), "the probes moved: update the filter"


def test_docs_name_the_contexts_the_recipes_create() -> None:
    for doc in (ROOT / "README.md", ROOT / "docs" / "reports.md", ROOT / "docs" / "kind.md"):
        for context in re.findall(r"--netpol-context (kind-[\w-]+)", doc.read_text()):
            assert context.removeprefix("kind-netpol-") in cnis(), f"{doc.name}: {context}"


@pytest.mark.skipif(shutil.which("check-jsonschema") is None, reason="check-jsonschema missing")
def test_workflow_validates_against_the_github_workflow_schema() -> None:
    proc = subprocess.run(
        ["check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- what the scripts would run, with stub tools ----------------------------------------------

STUB = """#!/usr/bin/env bash
# Records its argv (and stdin when a manifest is piped in) for the test.
{ printf '%s' "$(basename "$0")"; printf ' %s' "$@"; printf '\\n'; } >> "$STUB_LOG"
case "$(basename "$0") $*" in
  "kind version") echo "kind v0.33.0 go1.25.3 linux/amd64" ;;
  "kind get clusters") ;;
  *" -f -"*) sed 's/^/  stdin: /' >> "$STUB_LOG" ;;
  "curl "*/antrea.yml) cat "$FAKE_ANTREA_YML" ;;
esac
exit 0
"""


# The shape of antrea.yml's antrea-config ConfigMap (release v2.7.0): every feature gate listed
# commented out at its default, under featureGates of antrea-agent.conf and antrea-controller.conf.
FAKE_ANTREA_YML = """apiVersion: v1
kind: ConfigMap
metadata:
  name: antrea-config
  namespace: kube-system
data:
  antrea-agent.conf: |
    featureGates:
    #  ClusterNetworkPolicy: false
  antrea-controller.conf: |
    # FeatureGates is a map of feature names to bools that enable or disable experimental features.
    featureGates:
    #  AdminNetworkPolicy: false

    #  ClusterNetworkPolicy: false

    # The port for the antrea-controller APIServer to serve on.
    apiPort: 10349
---
kind: Deployment
"""


@pytest.fixture
def stubs(tmp_path: Path) -> tuple[dict[str, str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("kind", "kubectl", "docker", "helm", "modprobe", "sudo", "curl"):
        path = bin_dir / tool
        path.write_text(STUB)
        path.chmod(0o755)
    log = tmp_path / "calls.log"
    log.touch()
    antrea_yml = tmp_path / "antrea.yml"
    antrea_yml.write_text(FAKE_ANTREA_YML)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "STUB_LOG": str(log),
        "FAKE_ANTREA_YML": str(antrea_yml),
    }
    env.pop("CLUSTER_NAME", None)
    return env, log


def create(cni: str, env: dict[str, str], log: Path) -> str:
    proc = subprocess.run(
        [str(KIND / "create-cluster.sh"), cni],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return log.read_text()


@pytest.mark.parametrize("cni", cnis())
def test_create_cluster_commands(cni: str, stubs: tuple[dict[str, str], Path]) -> None:
    env, log = stubs
    calls = create(cni, env, log)
    v = versions()
    assert (
        f"kind create cluster --name netpol-{cni} --image {v['KIND_NODE_IMAGE']} "
        f"--config {KIND}/kind-{cni}.yaml" in calls
    )
    assert f"kind load docker-image {v['AGNHOST_IMAGE']} --name netpol-{cni}" in calls
    assert f"kubectl --context kind-netpol-{cni} wait --for=condition=Ready nodes --all" in calls
    if not Path("/sys/module/sctp").exists():
        assert "modprobe sctp" in calls, "kind nodes share the host kernel"
    if cni == "calico":
        assert f"calico/{v['CALICO_VERSION']}/manifests/operator-crds.yaml" in calls
        assert f"calico/{v['CALICO_VERSION']}/manifests/tigera-operator.yaml" in calls
        assert "stdin:     linuxPolicySetupTimeoutSeconds: 5" in calls
        assert "stdin:         cidr: 192.168.0.0/16" in calls
        assert "rollout status daemonset/calico-node" in calls
    elif cni == "cilium":
        helm = next(line for line in calls.splitlines() if line.startswith("helm "))
        for flag in (
            f"--version {v['CILIUM_VERSION']}",
            "--set sctp.enabled=true",
            "--set identityChangeGracePeriod=0s",
            f"--kube-context kind-netpol-{cni}",
        ):
            assert flag in helm
        # kube-proxy stays, unlike Cilium's own CI: docs/kind.md must say so and why.
        assert "kubeProxyReplacement" not in helm
        assert "kubeProxyReplacement=true" in (ROOT / "docs" / "kind.md").read_text()
        assert "rollout status daemonset/cilium" in calls
    elif cni == "antrea":
        assert f"download/{v['ANTREA_VERSION']}/antrea.yml" in calls
        if not Path("/sys/module/openvswitch").exists():
            assert "modprobe openvswitch" in calls
        assert "rollout status daemonset/antrea-agent" in calls
        assert "rollout status deployment/antrea-controller" in calls
    else:
        assert "rollout status daemonset/kindnet" in calls


def first_line(calls: str, *fragments: str) -> int:
    """Index of the first recorded command containing every fragment (fails when none does)."""
    lines = calls.splitlines()
    for i, line in enumerate(lines):
        if all(f in line for f in fragments):
            return i
    raise AssertionError(f"no command with {fragments}:\n{calls}")


def test_calico_crds_exist_before_anything_waits_on_them(
    stubs: tuple[dict[str, str], Path],
) -> None:
    env, log = stubs
    calls = create("calico", env, log)
    version = versions()["CALICO_VERSION"]
    crds = first_line(calls, "apply --server-side", f"{version}/manifests/operator-crds.yaml")
    operator = first_line(calls, "apply", f"{version}/manifests/tigera-operator.yaml")
    poll = first_line(calls, "get crd/installations.operator.tigera.io")
    wait = first_line(calls, "wait --for=condition=Established", "installations.operator")
    installation = first_line(calls, "apply -f -")
    assert crds < poll < wait < operator < installation, calls


def test_wait_crd_polls_until_the_crd_exists(stubs: tuple[dict[str, str], Path]) -> None:
    env, log = stubs
    kubectl = Path(env["PATH"].split(":")[0]) / "kubectl"
    # NotFound twice, as right after an apply, then found: `kubectl wait` must not run before.
    kubectl.write_text(
        STUB.replace(
            "exit 0",
            'if [[ "$*" == *"get crd/"* ]]; then\n'
            '  n=$(grep -c "get crd/" "$STUB_LOG"); ((n > 2)) || exit 1\n'
            "fi\nexit 0",
        )
    )
    script = f'source "{KIND}/lib.sh"; sleep() {{ :; }}; KUBE_CONTEXT=k wait_crd x.example.org'
    proc = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    assert [c.split()[3] for c in calls] == ["get", "get", "get", "wait"], calls


def test_antrea_gets_the_cluster_network_policy_gate_and_crd(
    stubs: tuple[dict[str, str], Path],
) -> None:
    env, log = stubs
    calls = create("antrea", env, log)
    v = versions()
    crd = first_line(
        calls,
        "apply --server-side",
        f"network-policy-api/{v['NETWORK_POLICY_API_VERSION']}/config/crd/experimental/"
        "policy.networking.k8s.io_clusternetworkpolicies.yaml",
    )
    established = first_line(calls, "wait --for=condition=Established", "clusternetworkpolicies")
    download = first_line(calls, "curl", f"download/{v['ANTREA_VERSION']}/antrea.yml")
    apply = first_line(calls, "apply -f -")
    restart = first_line(calls, "rollout restart deployment/antrea-controller")
    ready = first_line(calls, "rollout status deployment/antrea-controller")
    assert crd < established < apply < restart < ready and download < apply, calls
    # The gate is on in the controller's config only; the rest of the manifest is unchanged.
    applied = [line.removeprefix("  stdin: ") for line in calls.splitlines()[apply + 1 :]]
    applied = applied[: applied.index("kind: Deployment") + 1]
    expected = FAKE_ANTREA_YML.replace(
        "    #  ClusterNetworkPolicy: false\n\n", "      ClusterNetworkPolicy: true\n\n"
    )
    assert expected != FAKE_ANTREA_YML
    assert "\n".join(applied) + "\n" == expected
    config = next(yaml.safe_load_all(expected))["data"]
    assert yaml.safe_load(config["antrea-controller.conf"])["featureGates"] == {
        "ClusterNetworkPolicy": True
    }
    assert yaml.safe_load(config["antrea-agent.conf"])["featureGates"] is None


def test_antrea_stops_when_the_manifest_lists_no_gate(stubs: tuple[dict[str, str], Path]) -> None:
    env, log = stubs
    Path(env["FAKE_ANTREA_YML"]).write_text(FAKE_ANTREA_YML.replace("ClusterNetworkPolicy", "X"))
    proc = subprocess.run(
        [str(KIND / "install-antrea.sh")],
        env={**env, "NETPOL_SKIP_MODPROBE": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1 and "lists no ClusterNetworkPolicy gate" in proc.stderr
    assert "apply -f -" not in log.read_text(), "never install Antrea without the gate"


# curl for install-tools.sh: every download is a fake tool (helm's inside a tarball, as
# get.helm.sh ships it), and each checksum URL answers in its project's format (kind's .sha256sum
# "digest  name", dl.k8s.io's and get.helm.sh's .sha256 the digest alone), unless TAMPER names it.
FAKE_DOWNLOADS = r"""#!/usr/bin/env bash
{ printf 'curl'; printf ' %s' "$@"; printf '\n'; } >> "$STUB_LOG"
while (($#)); do case "$1" in -o) out="$2"; shift 2 ;; -*) shift ;; *) url="$1"; shift ;; esac; done
make() {  # make URL FILE: the fake artefact behind URL
    local tool="${1##*/}"; tool="${tool%%-*}"; tool="${tool%.tar.gz}"
    local script="#!/bin/sh
echo fake $tool \"\$@\""
    if [[ "$1" == *.tar.gz ]]; then
        local dir; dir="$(mktemp -d)"; mkdir -p "$dir/linux-amd64" "$dir/linux-arm64"
        printf '%s\n' "$script" > "$dir/linux-amd64/helm"; cp "$dir/linux-amd64/helm" "$dir/linux-arm64/"
        tar --mtime=@0 -czf "$2" -C "$dir" linux-amd64 linux-arm64
    else
        printf '%s\n' "$script" > "$2"
    fi
}
case "$url" in
*.sha256sum) base="${url%.sha256sum}"; make "$base" "$out.src"
    printf '%s  %s\n' "$(sha256sum < "$out.src" | cut -d' ' -f1)" "${base##*/}" > "$out" ;;
*.sha256) make "${url%.sha256}" "$out.src"; sha256sum < "$out.src" | cut -d' ' -f1 > "$out" ;;
*) make "$url" "$out" ;;
esac
rm -f "$out.src"
if [[ -n "${TAMPER:-}" && "$url" == *"$TAMPER" ]]; then sed -i "s/^[0-9a-f]*/$(printf '%064d' 0)/" "$out"; fi
exit 0
"""


def install_tools(
    stubs: tuple[dict[str, str], Path], tmp_path: Path, **extra: str
) -> subprocess.CompletedProcess[str]:
    env, _ = stubs
    (Path(env["PATH"].split(":")[0]) / "curl").write_text(FAKE_DOWNLOADS)
    return subprocess.run(
        [str(KIND / "install-tools.sh")],
        env={**env, "BIN_DIR": str(tmp_path / "tools"), **extra},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


LINUX_TOOLS = pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"),
    reason="the fake downloads are Linux amd64/arm64 ones",
)


@LINUX_TOOLS
def test_install_tools_pins_and_verifies_kind_kubectl_helm(
    stubs: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    proc = install_tools(stubs, tmp_path)
    assert proc.returncode == 0, proc.stderr
    v = versions()
    node = v["KIND_NODE_IMAGE"].split(":")[1].split("@")[0]
    arch = "amd64" if platform.machine() == "x86_64" else "arm64"
    calls = stubs[1].read_text()
    urls = [line.split()[-1] for line in calls.splitlines() if line.startswith("curl ")]
    kind = f"https://github.com/kubernetes-sigs/kind/releases/download/{v['KIND_VERSION']}/kind-linux-{arch}"
    kubectl = f"https://dl.k8s.io/release/{node}/bin/linux/{arch}/kubectl"
    helm = f"https://get.helm.sh/helm-{v['HELM_VERSION']}-linux-{arch}.tar.gz"
    assert urls == [kind, f"{kind}.sha256sum", kubectl, f"{kubectl}.sha256", helm, f"{helm}.sha256"]
    for tool in ("kind", "kubectl", "helm"):
        out = subprocess.run(
            [str(tmp_path / "tools" / tool), "version"], capture_output=True, text=True, check=True
        )
        assert out.stdout == f"fake {tool} version\n"


@LINUX_TOOLS
@pytest.mark.parametrize("tampered", ["sha256sum", "kubectl.sha256", "tar.gz.sha256"])
def test_install_tools_refuses_a_checksum_mismatch(
    stubs: tuple[dict[str, str], Path], tmp_path: Path, tampered: str
) -> None:
    proc = install_tools(stubs, tmp_path, TAMPER=tampered)
    assert proc.returncode == 1, proc.stderr
    assert "does not match its published sha256" in proc.stderr
    assert not (tmp_path / "tools").exists(), "nothing is installed unless all three verify"


def fail_modprobe(env: dict[str, str], module: str) -> None:
    """modprobe (run directly as root, or through sudo) fails for MODULE, as without the module."""
    bin_dir = Path(env["PATH"].split(":")[0])
    for tool in ("modprobe", "sudo"):
        fails = f'[[ " $* " == *" {module} "* ]] && exit 1\nexit 0'
        (bin_dir / tool).write_text(STUB.replace("exit 0", fails))


@pytest.mark.skipif(Path("/sys/module/sctp").exists(), reason="sctp is loaded: no modprobe")
def test_sctp_module_failure_only_warns(stubs: tuple[dict[str, str], Path]) -> None:
    env, log = stubs
    fail_modprobe(env, "sctp")
    proc = subprocess.run(
        [str(KIND / "create-cluster.sh"), "kindnet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "warning: could not load the sctp kernel module" in proc.stderr
    calls = log.read_text()
    assert first_line(calls, "modprobe sctp") < first_line(calls, "kind create cluster")
    assert "rollout status daemonset/kindnet" in calls, "the run goes on without SCTP"


@pytest.mark.skipif(
    Path("/sys/module/openvswitch").exists(), reason="openvswitch is loaded: no modprobe"
)
def test_openvswitch_module_failure_stops_antrea(stubs: tuple[dict[str, str], Path]) -> None:
    env, log = stubs
    fail_modprobe(env, "openvswitch")
    proc = subprocess.run(
        [str(KIND / "install-antrea.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "error: could not load the openvswitch kernel module" in proc.stderr
    assert "kubectl" not in log.read_text(), "nothing is installed without Open vSwitch"


def test_outside_clients_start_route_and_print_run_options(
    stubs: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    """One agnhost container per external endpoint on kind's network, serving its ports and
    routing each node's pod CIDR via the node; the run options name each container's address."""
    env, log = stubs
    bin_dir = Path(env["PATH"].split(":")[0])
    (bin_dir / "docker").write_text(
        STUB.replace(
            "exit 0",
            'case "$*" in\n'
            '  "ps --filter"*) printf "netpol-kindnet-outside-blocked\\nnetpol-kindnet-outside-client\\n" ;;\n'
            "  inspect*blocked) echo 172.18.0.8 ;;\n"
            "  inspect*client) echo 172.18.0.9 ;;\n"
            "esac\nexit 0",
        )
    )
    (bin_dir / "kubectl").write_text(
        STUB.replace(
            "exit 0",
            'if [[ "$*" == *"get nodes"* ]]; then\n'
            '  printf "10.244.0.0/24 172.18.0.2\\n10.244.1.0/24 172.18.0.3\\n"\nfi\nexit 0',
        )
    )
    scenario = ROOT / "scenarios/examples/nodes-and-outside-clients.yaml"
    proc = subprocess.run(
        [str(KIND / "outside-clients.sh"), "up", "kindnet", str(scenario)],
        env={**env, "PYTHON": sys.executable, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [
        "--outside-exec",
        "docker exec -i netpol-kindnet-outside-{name}",
        "--external",
        "blocked=172.18.0.8",
        "--external",
        "client=172.18.0.9",
    ]
    calls = log.read_text()
    image = versions()["AGNHOST_IMAGE"]
    for endpoint in ("client", "blocked"):
        assert (
            f"docker run -d --name netpol-kindnet-outside-{endpoint} --network kind --cap-add "
            f"NET_ADMIN --label netpol-conformance.io/outside-of=netpol-kindnet --entrypoint "
            f"/bin/sh {image} -c /agnhost serve-hostname --tcp --http=false --port 80 & " in calls
        )
        container = f"netpol-kindnet-outside-{endpoint}"
        assert f"docker exec {container} ip route replace 10.244.1.0/24 via 172.18.0.3" in calls
        assert f"docker exec {container} ip route replace 10.244.0.0/16 via 172.18.0.2" in calls
    # Earlier clients of this cluster are removed first; `down` removes them too.
    assert calls.index(
        "docker ps -aq --filter label=netpol-conformance.io/outside-of=netpol-kindnet"
    ) < calls.index("docker run")
    down = subprocess.run(
        [str(KIND / "outside-clients.sh"), "down", "kindnet"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert down.returncode == 0, down.stderr


def test_outside_clients_on_calico_route_only_the_pod_subnet(
    stubs: tuple[dict[str, str], Path],
) -> None:
    """Calico's IPAM blocks are not node pod CIDRs: one route for its pod subnet, none per node."""
    env, log = stubs
    (Path(env["PATH"].split(":")[0]) / "kubectl").write_text(
        STUB.replace(
            "exit 0",
            'if [[ "$*" == *"get nodes"* ]]; then printf "192.168.1.0/24 172.18.0.3\\n"; fi\nexit 0',
        )
    )
    scenario = ROOT / "scenarios/examples/dual-stack-ip-block.yaml"
    proc = subprocess.run(
        [str(KIND / "outside-clients.sh"), "up", "calico", str(scenario)],
        env={**env, "PYTHON": sys.executable, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    routes = [line for line in log.read_text().splitlines() if " ip route " in line]
    assert routes == [
        "docker exec netpol-calico-outside-web ip route replace 192.168.0.0/16 via 172.18.0.3"
    ]


def test_run_sh_passes_outside_clients_to_run_when_the_tool_has_outside_exec(
    stubs: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, log = stubs
    bin_dir = Path(env["PATH"].split(":")[0])
    netpol = bin_dir / "netpol-conformance"
    netpol.write_text(
        STUB.replace(
            "exit 0",
            'if [[ "$*" == "run --help" ]]; then echo "--known-deviations --outside-exec"; fi\nexit 0',
        )
    )
    netpol.chmod(0o755)
    outside = tmp_path / "hack"
    shutil.copytree(KIND, outside)
    (outside / "outside-clients.sh").write_text(
        "#!/usr/bin/env bash\nprintf '%s\\n' --outside-exec 'docker exec -i c-{name}' --external client=172.18.0.9\n"
    )
    proc = subprocess.run(
        [str(outside / "run.sh"), "kindnet", str(ROOT / "scenarios/examples")],
        env={
            **env,
            "SKIP_CREATE": "1",
            "PYTEST": "0",
            "NETPOL_SCTP": "0",
            "REPORT_DIR": str(tmp_path / "r"),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = next(
        line for line in log.read_text().splitlines() if line.startswith("netpol-conformance run /")
    )
    assert run.endswith("--outside-exec docker exec -i c-{name} --external client=172.18.0.9"), run
    off = subprocess.run(
        [str(outside / "run.sh"), "kindnet", str(ROOT / "scenarios/examples")],
        env={
            **env,
            "SKIP_CREATE": "1",
            "PYTEST": "0",
            "NETPOL_SCTP": "0",
            "NETPOL_OUTSIDE": "0",
            "REPORT_DIR": str(tmp_path / "r"),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    runs = [
        line for line in log.read_text().splitlines() if line.startswith("netpol-conformance run /")
    ]
    assert off.returncode == 0 and len(runs) == 2 and "--outside-exec" not in runs[1]


def test_unknown_cni_and_old_kind_are_refused(stubs: tuple[dict[str, str], Path]) -> None:
    env, _ = stubs
    proc = subprocess.run(
        [str(KIND / "run.sh"), "weave"], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1 and "accepted: kindnet calico cilium antrea" in proc.stderr
    old = Path(env["PATH"].split(":")[0]) / "kind"
    old.write_text(STUB.replace("v0.33.0", "v0.23.0"))
    proc = subprocess.run(
        [str(KIND / "create-cluster.sh"), "kindnet"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1 and "v0.24.0 or later is needed" in proc.stderr


# -- run.sh end to end on the embedded cluster, under a kind-* context name -------------------

DENY_INGRESS = ROOT / "scenarios/upstream/should-support-a-default-deny-ingress-policy.yaml"
EXCEPT = (
    ROOT
    / "scenarios/upstream/should-enforce-except-clause-while-egress-access-to-server-in-cidr-block.yaml"
)


def has_known_deviations() -> bool:
    proc = subprocess.run(
        [sys.executable, "-m", "conformance", "run", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    return "--known-deviations" in proc.stdout


@pytest.mark.cluster
@pytest.mark.slow
def test_run_sh_on_the_embedded_cluster(tmp_path: Path) -> None:
    from conformance.cluster.config import ClusterOptions
    from conformance.cluster.embedded import EmbeddedCluster
    from conformance.cluster.knobs import Knobs

    netpol = tmp_path / "netpol-conformance"
    netpol.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m conformance "$@"\n')
    netpol.chmod(0o755)
    instance = f"hk{os.getpid() % 100000}"
    knobs = Knobs.parse(0, ["ignore-except"])  # one known mismatch: x/a -> x/b allowed
    with EmbeddedCluster(ClusterOptions(instance=instance, knobs=knobs)) as ec:
        config = yaml.safe_load(Path(ec.kubeconfig).read_text())
        config["contexts"][0]["name"] = "kind-netpol-kindnet"
        config["current-context"] = "kind-netpol-kindnet"
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(config))
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "NETPOL": str(netpol),
            "SKIP_CREATE": "1",
            "PYTEST_WORKERS": "1",
        }

        def run_sh(*paths: Path, **extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(KIND / "run.sh"), "kindnet", *map(str, paths)],
                env={**env, **extra},
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )

        # A host kernel without SCTP: the run goes on (SCTP cells are "not supported") and says
        # how to test SCTP, instead of the doctor stopping it. With SCTP, the doctor would check
        # it on this embedded cluster, which serves none: NETPOL_SCTP=0 skips that.
        no_sctp = not (Path("/proc/net/sctp").exists() or Path("/sys/module/sctp").exists())
        sctp = {} if no_sctp else {"NETPOL_SCTP": "0"}
        good = run_sh(DENY_INGRESS, REPORT_DIR=str(tmp_path / "r1"), **sctp)
        assert good.returncode == 0, good.stdout + good.stderr
        if no_sctp:
            assert "no sctp kernel module" in good.stderr
            assert "sudo modprobe sctp" in good.stderr
        assert (tmp_path / "r1" / "results.json").exists()
        assert (tmp_path / "r1" / "pytest-junit.xml").exists(), "the pytest form ran too"
        assert any((tmp_path / "r1" / "allure-results").iterdir())

        if has_known_deviations():
            bad = run_sh(EXCEPT, REPORT_DIR=str(tmp_path / "r2"), NETPOL_SCTP="0", PYTEST="0")
            assert bad.returncode == 1, "an unlisted mismatch is a regression"
            known = tmp_path / "known.yaml"
            known.write_text(
                "deviations:\n"
                "  - scenario: should-enforce-except-clause-*\n"
                '    cell: "x/a -> x/b *"\n'
                "    reason: the embedded cluster runs with --deviation ignore-except\n"
                "    link: https://example.org/knob\n"
            )
            ok = run_sh(
                EXCEPT,
                REPORT_DIR=str(tmp_path / "r3"),
                NETPOL_SCTP="0",
                PYTEST="0",
                KNOWN_DEVIATIONS=str(known),
            )
            assert ok.returncode == 0, ok.stdout + ok.stderr
