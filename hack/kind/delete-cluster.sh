#!/usr/bin/env bash
# Delete the kind cluster of one CNI and its outside clients (outside-clients.sh).
# Usage: delete-cluster.sh CNI
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cni="${1:-}"
check_cni "${cni}"
need kind
kind delete cluster --name "$(cluster_name "${cni}")"
if command -v docker >/dev/null 2>&1; then
    "${HACK_KIND_DIR}/outside-clients.sh" down "${cni}"
fi
