#!/usr/bin/env bash
# Cilium through its Helm chart, with the settings Cilium's own conformance jobs use for
# NetworkPolicy tests: SCTP enabled (beta) and no identity-change grace period, so a label change
# takes effect at once instead of after the default grace period.
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
