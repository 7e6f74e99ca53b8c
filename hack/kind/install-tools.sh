#!/usr/bin/env bash
# Install the pinned kind binary (versions.env) into BIN_DIR (default ~/.local/bin), checking it
# against the checksum file published with the release. kubectl, helm and docker are expected
# from the system (GitHub's Ubuntu runners have them).
# Usage: install-tools.sh
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need curl sha256sum
bin_dir="${BIN_DIR:-${HOME}/.local/bin}"
case "$(uname -m)" in
x86_64) arch=amd64 ;;
aarch64 | arm64) arch=arm64 ;;
*) die "no kind binary for $(uname -m)" ;;
esac
os="$(uname -s | tr '[:upper:]' '[:lower:]')"
asset="kind-${os}-${arch}"
url="https://github.com/kubernetes-sigs/kind/releases/download/${KIND_VERSION}/${asset}"

tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
log "downloading kind ${KIND_VERSION} (${asset})"
curl -fsSLo "${tmp}/${asset}" "${url}"
curl -fsSLo "${tmp}/${asset}.sha256sum" "${url}.sha256sum"
(cd "${tmp}" && sha256sum --check --strict "${asset}.sha256sum")
mkdir -p "${bin_dir}"
install -m 0755 "${tmp}/${asset}" "${bin_dir}/kind"
log "installed ${bin_dir}/kind: $("${bin_dir}/kind" version)"
case ":${PATH}:" in
*":${bin_dir}:"*) ;;
*) warn "${bin_dir} is not in PATH" ;;
esac
