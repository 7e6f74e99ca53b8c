#!/usr/bin/env bash
# Shared helpers for the hack/kind scripts. Sourced, never run on its own.
# shellcheck shell=bash

HACK_KIND_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${HACK_KIND_DIR}/../.." && pwd)"
# shellcheck source=versions.env
source "${HACK_KIND_DIR}/versions.env"
export HACK_KIND_DIR REPO_ROOT

# The CNIs these recipes know; each has kind-<cni>.yaml, install-<cni>.sh and
# known-deviations/<cni>.yaml.
CNIS="kindnet calico cilium antrea"
MIN_KIND_VERSION=v0.24.0

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# need TOOL...: fail early, naming every missing tool at once.
need() {
    local missing=() tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    if ((${#missing[@]})); then
        die "not found in PATH: ${missing[*]} (docs/kind.md lists what to install)"
    fi
}

check_cni() {
    case " ${CNIS} " in
    *" ${1:-} "*) ;;
    *) die "unknown CNI '${1:-}'; accepted: ${CNIS}" ;;
    esac
}

# cluster_name CNI: CLUSTER_NAME from the environment wins.
cluster_name() { printf '%s' "${CLUSTER_NAME:-netpol-$1}"; }
kube_context() { printf 'kind-%s' "$(cluster_name "$1")"; }

# kctl ARGS...: kubectl on the cluster named by KUBE_CONTEXT.
kctl() { kubectl --context "${KUBE_CONTEXT:?KUBE_CONTEXT must be set}" "$@"; }

# version_ge A B: true when version A >= version B (both vX.Y.Z).
version_ge() { [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]; }

check_kind_version() {
    local have
    have="$(kind version | awk '{print $2}')"
    version_ge "${have}" "${MIN_KIND_VERSION}" ||
        die "kind ${have} is too old: ${MIN_KIND_VERSION} or later is needed (kindnet enforces NetworkPolicy from there on)"
    if [[ "${have}" != "${KIND_VERSION}" ]]; then
        warn "kind ${have}; these recipes pin ${KIND_VERSION} (hack/kind/versions.env) and its node image"
    fi
}

# load_module NAME WHY: kind nodes are containers sharing the host's kernel, so kernel modules
# must be loaded on the host. Set NETPOL_SKIP_MODPROBE=1 to skip (e.g. already handled).
# Returns modprobe's status: the caller decides whether a missing module is fatal, so call it as
# `load_module ... || die ...` or `|| warn ...` (set -e does not apply inside it then).
load_module() {
    local mod="$1" why="$2"
    if [[ -d "/sys/module/${mod}" ]]; then
        return 0
    fi
    if [[ "$(uname -s)" != Linux ]]; then
        warn "cannot load the ${mod} kernel module from $(uname -s): the container engine's VM must have it (${why})"
        return 0
    fi
    if [[ "${NETPOL_SKIP_MODPROBE:-0}" == 1 ]]; then
        warn "not loading ${mod} (NETPOL_SKIP_MODPROBE=1): ${why}"
        return 0
    fi
    log "loading kernel module ${mod} on the host (${why})"
    if [[ "$(id -u)" == 0 ]]; then
        modprobe "${mod}"
    else
        sudo modprobe "${mod}"
    fi
}

# load_optional_module NAME WHY: as load_module, but a failure only warns.
load_optional_module() {
    load_module "$@" || warn "could not load the $1 kernel module: $2"
}

# wait_rollout NAMESPACE KIND/NAME [TIMEOUT]
wait_rollout() {
    log "waiting for $2 in namespace $1"
    kctl -n "$1" rollout status "$2" --timeout="${3:-300s}"
}

# wait_exists NAMESPACE KIND/NAME [SECONDS]: for objects an operator creates later.
wait_exists() {
    local deadline=$((SECONDS + ${3:-300}))
    log "waiting for $2 to appear in namespace $1"
    until kctl -n "$1" get "$2" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "timed out waiting for $2 in namespace $1"
        sleep 5
    done
}

# wait_crd NAME [SECONDS]: `kubectl wait` fails at once with NotFound on a CRD that does not exist
# yet, so poll until it does, then wait until it is Established.
wait_crd() {
    local deadline=$((SECONDS + ${2:-120}))
    log "waiting for CRD $1"
    until kctl get "crd/$1" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "timed out waiting for CRD $1 to appear"
        sleep 2
    done
    kctl wait --for=condition=Established --timeout="${2:-120}s" "crd/$1"
}

wait_nodes_ready() {
    log "waiting for every node to be Ready"
    kctl wait --for=condition=Ready nodes --all --timeout="${1:-300s}"
}

# preload_image IMAGE CLUSTER: optional (nodes can pull it themselves), so failures only warn.
preload_image() {
    local image="$1" name="$2"
    log "preloading ${image} into kind cluster ${name}"
    if ! docker image inspect "${image}" >/dev/null 2>&1 && ! docker pull "${image}"; then
        warn "could not pull ${image}; the nodes will pull it themselves"
        return 0
    fi
    kind load docker-image "${image}" --name "${name}" ||
        warn "kind load docker-image failed; the nodes will pull ${image} themselves"
}
