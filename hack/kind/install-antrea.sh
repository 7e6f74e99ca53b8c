#!/usr/bin/env bash
# Antrea from its release manifest (the same antrea.yml as on any cluster; Antrea documents it
# for kind too), with the alpha ClusterNetworkPolicy feature gate of the antrea-controller turned
# on and the network-policy-api ClusterNetworkPolicy CRD installed, as Antrea's own network-policy
# v2 conformance job on kind does: without both, every admin-tier scenario is only skipped.
# The agents need the host's openvswitch kernel module.
# Usage: install-antrea.sh [CONTEXT]   (default: kind-netpol-antrea)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need kubectl curl awk
export KUBE_CONTEXT="${1:-$(kube_context antrea)}"
why="the Antrea agent programs Open vSwitch in the host kernel"
load_module openvswitch "${why}" || die "could not load the openvswitch kernel module: ${why}"

# enable_controller_gate GATE: reads antrea.yml, writes it back with `GATE: true` in the
# antrea-controller's featureGates (ConfigMap antrea-config, key antrea-controller.conf), where the
# release manifest lists every gate commented out at its default. Fails when GATE is not listed
# there, so a changed manifest layout stops the install instead of silently skipping scenarios.
enable_controller_gate() {
    awk -v gate="$1" '
        /^  antrea-controller\.conf: \|/ { conf = 1; print; next }
        conf && /^(  )?[^ ]/ { conf = 0 }
        conf && $0 ~ "^    #  " gate ": (true|false)$" {
            print "      " gate ": true"; found = 1; next
        }
        { print }
        END { exit !found }
    '
}

cnp_crd="https://raw.githubusercontent.com/kubernetes-sigs/network-policy-api/${NETWORK_POLICY_API_VERSION}/config/crd/experimental/policy.networking.k8s.io_clusternetworkpolicies.yaml"
log "installing the ClusterNetworkPolicy CRD of network-policy-api ${NETWORK_POLICY_API_VERSION}"
kctl apply --server-side --force-conflicts -f "${cnp_crd}"
wait_crd clusternetworkpolicies.policy.networking.k8s.io

log "installing Antrea ${ANTREA_VERSION} with the ClusterNetworkPolicy feature gate"
manifest="$(curl -fsSL --retry 3 "https://github.com/antrea-io/antrea/releases/download/${ANTREA_VERSION}/antrea.yml")"
manifest="$(enable_controller_gate ClusterNetworkPolicy <<<"${manifest}")" ||
    die "antrea.yml ${ANTREA_VERSION} lists no ClusterNetworkPolicy gate in antrea-controller.conf"
kctl apply -f - <<<"${manifest}"
# The controller reads its config only at start and its pod template does not change with the
# ConfigMap: restart it so a reused cluster installed without the gate picks it up too.
kctl -n kube-system rollout restart deployment/antrea-controller
wait_rollout kube-system daemonset/antrea-agent 600s
wait_rollout kube-system deployment/antrea-controller
