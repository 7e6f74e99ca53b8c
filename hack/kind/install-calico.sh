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

log "installing the Calico ${CALICO_VERSION} CRDs"
# Since Calico v3.30 tigera-operator.yaml holds no CRDs: operator-crds.yaml does (operator.tigera.io
# and crd.projectcalico.org). Apply it first, server-side: installations.operator.tigera.io alone is
# over 1 MB, far beyond the 256 KiB last-applied annotation of a client-side apply.
kctl apply --server-side --force-conflicts -f "${manifests}/operator-crds.yaml"
wait_crd installations.operator.tigera.io
wait_crd tigerastatuses.operator.tigera.io

log "installing the tigera-operator"
kctl apply --server-side --force-conflicts -f "${manifests}/tigera-operator.yaml"
wait_rollout tigera-operator deployment/tigera-operator

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
