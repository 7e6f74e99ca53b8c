#!/usr/bin/env bash
# Install the pinned kind, kubectl and helm binaries into BIN_DIR (default ~/.local/bin), each
# checked against the sha256 checksum its project publishes next to it. kubectl is the node
# image's Kubernetes version (KIND_NODE_IMAGE), so client and cluster share a minor; helm is
# HELM_VERSION (versions.env), a release whose supported Kubernetes minors include the cluster's.
# Docker is expected from the system (GitHub's Ubuntu runners have it).
# Usage: install-tools.sh
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need curl sha256sum tar
bin_dir="${BIN_DIR:-${HOME}/.local/bin}"
case "$(uname -m)" in
x86_64) arch=amd64 ;;
aarch64 | arm64) arch=arm64 ;;
*) die "no kind, kubectl and helm binaries for $(uname -m)" ;;
esac
os="$(uname -s | tr '[:upper:]' '[:lower:]')"
k8s_version="${KIND_NODE_IMAGE#*:}"
k8s_version="${k8s_version%@*}"

tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT

# download URL FILE: FILE in the scratch directory.
download() { curl -fsSL --retry 3 -o "${tmp}/$2" "$1"; }

# check_sha256 FILE: FILE.sha256 next to it holds only the hex digest (dl.k8s.io, get.helm.sh).
check_sha256() {
    local want
    want="$(tr -d '[:space:]' <"${tmp}/$1.sha256")"
    [[ "${want}" =~ ^[0-9a-f]{64}$ ]] || die "$1.sha256 holds no sha256 digest"
    (cd "${tmp}" && printf '%s  %s\n' "${want}" "$1" | sha256sum --check --strict -) ||
        die "$1 does not match its published sha256"
}

kind_asset="kind-${os}-${arch}"
kind_url="https://github.com/kubernetes-sigs/kind/releases/download/${KIND_VERSION}/${kind_asset}"
log "downloading kind ${KIND_VERSION} (${kind_asset})"
download "${kind_url}" "${kind_asset}"
download "${kind_url}.sha256sum" "${kind_asset}.sha256sum"
(cd "${tmp}" && sha256sum --check --strict "${kind_asset}.sha256sum") ||
    die "${kind_asset} does not match its published sha256"

kubectl_url="https://dl.k8s.io/release/${k8s_version}/bin/${os}/${arch}/kubectl"
log "downloading kubectl ${k8s_version} (the node image's version)"
download "${kubectl_url}" kubectl
download "${kubectl_url}.sha256" kubectl.sha256
check_sha256 kubectl

helm_asset="helm-${HELM_VERSION}-${os}-${arch}.tar.gz"
log "downloading helm ${HELM_VERSION} (${helm_asset})"
download "https://get.helm.sh/${helm_asset}" "${helm_asset}"
download "https://get.helm.sh/${helm_asset}.sha256" "${helm_asset}.sha256"
check_sha256 "${helm_asset}"
tar -xzf "${tmp}/${helm_asset}" -C "${tmp}" "${os}-${arch}/helm"

mkdir -p "${bin_dir}"
install -m 0755 "${tmp}/${kind_asset}" "${bin_dir}/kind"
install -m 0755 "${tmp}/kubectl" "${bin_dir}/kubectl"
install -m 0755 "${tmp}/${os}-${arch}/helm" "${bin_dir}/helm"
log "installed ${bin_dir}/kind: $("${bin_dir}/kind" version)"
log "installed ${bin_dir}/kubectl: $("${bin_dir}/kubectl" version --client 2>&1 | head -n1)"
log "installed ${bin_dir}/helm: $("${bin_dir}/helm" version --short 2>&1)"
case ":${PATH}:" in
*":${bin_dir}:"*) ;;
*) warn "${bin_dir} is not in PATH" ;;
esac
