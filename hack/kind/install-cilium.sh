#!/usr/bin/env bash
# Cilium through its Helm chart, with the policy settings of Cilium's own NetworkPolicy e2e job
# (cilium/cilium .github/workflows/k8s-kind-network-policies-e2e.yaml): SCTP enabled (beta) and no
# identity-change grace period, so a label change takes effect at once.
# Unlike that job, which runs kind with kubeProxyMode "none" and kubeProxyReplacement=true, this
# recipe keeps kube-proxy (kind-cilium.yaml): Services are then translated by kube-proxy as on the
# other three recipes, so --via service compares the CNIs' policy on one Service path, SCTP
# Services included (Cilium's own SCTP Service handling is beta and does not cover policy for
# pod-to-VIP SCTP). Results can therefore differ from Cilium's CI where Service handling matters.
# Usage: install-cilium.sh [CONTEXT]   (default: kind-netpol-cilium)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need kubectl helm
export KUBE_CONTEXT="${1:-$(kube_context cilium)}"

log "installing Cilium ${CILIUM_VERSION}"
helm upgrade --install cilium cilium \
    --repo https://helm.cilium.io \
    --version "${CILIUM_VERSION}" \
    --kube-context "${KUBE_CONTEXT}" \
    --namespace kube-system \
    --set ipam.mode=kubernetes \
    --set sctp.enabled=true \
    --set identityChangeGracePeriod=0s \
    --set operator.replicas=1 \
    --set image.pullPolicy=IfNotPresent \
    --set hubble.enabled=false

wait_rollout kube-system daemonset/cilium 600s
wait_rollout kube-system deployment/cilium-operator
