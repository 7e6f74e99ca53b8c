#!/usr/bin/env bash
# Delete the kind cluster of one CNI.
# Usage: delete-cluster.sh CNI
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cni="${1:-}"
check_cni "${cni}"
need kind
kind delete cluster --name "$(cluster_name "${cni}")"
