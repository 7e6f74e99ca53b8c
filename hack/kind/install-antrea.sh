#!/usr/bin/env bash
# Antrea from its release manifest (the same antrea.yml as on any cluster; Antrea documents it
# for kind too). The agents need the host's openvswitch kernel module.
# Usage: install-antrea.sh [CONTEXT]   (default: kind-netpol-antrea)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need kubectl
export KUBE_CONTEXT="${1:-$(kube_context antrea)}"
why="the Antrea agent programs Open vSwitch in the host kernel"
load_module openvswitch "${why}" || die "could not load the openvswitch kernel module: ${why}"

log "installing Antrea ${ANTREA_VERSION}"
kctl apply -f "https://github.com/antrea-io/antrea/releases/download/${ANTREA_VERSION}/antrea.yml"
wait_rollout kube-system daemonset/antrea-agent 600s
wait_rollout kube-system deployment/antrea-controller
