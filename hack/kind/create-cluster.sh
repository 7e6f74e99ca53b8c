#!/usr/bin/env bash
# Create a kind cluster for one CNI, install the CNI, wait until it is ready and preload the probe
# image. Reuses an existing cluster of the same name.
# Usage: create-cluster.sh CNI          CNI: kindnet, calico, cilium or antrea
# Environment: CLUSTER_NAME (default netpol-CNI), NETPOL_SCTP=0 (do not load the sctp module),
#              NETPOL_SKIP_MODPROBE=1 (never run modprobe).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cni="${1:-}"
check_cni "${cni}"
need kind kubectl docker
check_kind_version
name="$(cluster_name "${cni}")"
export KUBE_CONTEXT="kind-${name}"

# Before the CNI starts: its agents look for kernel features when they start.
if [[ "${NETPOL_SCTP:-1}" != 0 ]]; then
    # Not fatal: without the module SCTP scenarios are reported as not supported. run.sh's doctor
    # still flags it (it checks SCTP unless NETPOL_SCTP=0), so the report never hides it.
    load_optional_module sctp "SCTP scenarios; without it they are reported as not supported (set NETPOL_SCTP=0 for run.sh to accept that)"
fi

if kind get clusters 2>/dev/null | grep -qx "${name}"; then
    log "kind cluster ${name} exists: reusing it"
else
    log "creating kind cluster ${name} (${KIND_NODE_IMAGE%@*})"
    kind create cluster \
        --name "${name}" \
        --image "${KIND_NODE_IMAGE}" \
        --config "${HACK_KIND_DIR}/kind-${cni}.yaml" \
        --wait 0s
fi

"${HACK_KIND_DIR}/install-${cni}.sh" "${KUBE_CONTEXT}"
wait_nodes_ready 300s
preload_image "${AGNHOST_IMAGE}" "${name}"
log "cluster ready: --context ${KUBE_CONTEXT}"
