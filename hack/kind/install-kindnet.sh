#!/usr/bin/env bash
# kind's default CNI: nothing to install. kindnet (kind >= 0.24) enforces standard NetworkPolicy
# with kube-network-policies; this waits until its DaemonSet is ready.
# Usage: install-kindnet.sh [CONTEXT]   (default: kind-netpol-kindnet)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need kubectl
export KUBE_CONTEXT="${1:-$(kube_context kindnet)}"
wait_rollout kube-system daemonset/kindnet
