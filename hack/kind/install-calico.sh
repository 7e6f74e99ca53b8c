#!/usr/bin/env bash
# Calico through the tigera-operator, configured as Calico's own CI does for policy tests:
# IP pool 192.168.0.0/16 (kind-calico.yaml's podSubnet) and linuxPolicySetupTimeoutSeconds, so a
# new pod only starts once its policy is programmed.
# Usage: install-calico.sh [CONTEXT]   (default: kind-netpol-calico)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need kubectl
export KUBE_CONTEXT="${1:-$(kube_context calico)}"
manifests="https://raw.githubusercontent.com/projectcalico/calico/${CALICO_VERSION}/manifests"

log "installing the tigera-operator for Calico ${CALICO_VERSION}"
# Server-side apply: the CRDs are too large for the last-applied annotation of a client-side apply.
kctl apply --server-side --force-conflicts -f "${manifests}/tigera-operator.yaml"
wait_rollout tigera-operator deployment/tigera-operator
kctl wait --for=condition=Established --timeout=120s crd/installations.operator.tigera.io

log "declaring the Calico installation"
kctl apply -f - <<'YAML'
apiVersion: operator.tigera.io/v1
kind: Installation
metadata:
  name: default
spec:
  calicoNetwork:
    # The policy setup timeout requires the dataplane to be named explicitly.
    linuxDataplane: Iptables
    linuxPolicySetupTimeoutSeconds: 5
    ipPools:
      - name: default-ipv4-ippool
        cidr: 192.168.0.0/16
        blockSize: 26
        encapsulation: VXLANCrossSubnet
        natOutgoing: Enabled
        nodeSelector: all()
YAML

wait_exists calico-system daemonset/calico-node
wait_rollout calico-system daemonset/calico-node 600s
wait_exists calico-system deployment/calico-kube-controllers
wait_rollout calico-system deployment/calico-kube-controllers
wait_exists default tigerastatus/calico  # cluster-scoped: the namespace is ignored
kctl wait --for=condition=Available --timeout=300s tigerastatus/calico
