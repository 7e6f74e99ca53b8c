#!/usr/bin/env bash
# Outside clients for a kind cluster: one agnhost container per external endpoint the scenarios
# name (`external:` in a scenario), on kind's docker network, so probes really come from outside
# the cluster (a path CNIs treat apart from pod traffic) and egress really leaves it.
#
# Usage: outside-clients.sh up CNI [SCENARIO PATH...]    start (or restart) them, print run options
#        outside-clients.sh options CNI                    print the run options of running ones
#        outside-clients.sh down CNI                       remove them
# `up` and `options` print the arguments for `netpol-conformance run`, one per line:
#   --outside-exec 'docker exec -i CLUSTER-outside-{name}'   (the runner fills in {name})
#   --external NAME=IP ...                                    (each container's kind address)
# Each container serves the ports its endpoint declares (agnhost serve-hostname, TCP and UDP) and
# routes every node's pod CIDR via that node, so it reaches pods as a host next to the cluster.
# Environment: CLUSTER_NAME (default netpol-CNI), KIND_NETWORK (default: kind's network, "kind"),
#              POD_SUBNET (route for CNIs whose IPAM ignores node podCIDRs; default from the
#              kind config's networking.podSubnet, else 10.244.0.0/16), PYTHON (has the tool).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OUTSIDE_LABEL=netpol-conformance.io/outside-of

usage() { die "usage: outside-clients.sh up|options|down CNI [SCENARIO PATH...]"; }

action="${1:-}"
cni="${2:-}"
[[ -n "${action}" ]] || usage
check_cni "${cni}"
shift 2
need docker
name="$(cluster_name "${cni}")"
network="${KIND_NETWORK:-${KIND_EXPERIMENTAL_DOCKER_NETWORK:-kind}}"
export KUBE_CONTEXT="kind-${name}"

# endpoints PATH...: "NAME PORT/PROTO ..." per external endpoint of the scenarios (ports merged
# when several scenarios name one endpoint), read with the tool's own scenario loader.
endpoints() {
    "${PYTHON:-python3}" - "$@" <<'PY'
import sys
from conformance.scenario.load import load_scenarios

ports: dict[str, set[str]] = {}
for scenario in load_scenarios(sys.argv[1:]):
    for e in scenario.spec.external:
        ports.setdefault(e.name, set()).update(f"{p.port}/{p.protocol}" for p in e.ports)
for name in sorted(ports):
    print(name, *sorted(ports[name]))
PY
}

# server_script PORT/PROTO...: the container's command: one serve-hostname per port, then wait.
server_script() {
    local spec port proto script=""
    for spec in "$@"; do
        port="${spec%/*}"
        proto="$(printf '%s' "${spec#*/}" | tr '[:upper:]' '[:lower:]')"
        case "${proto}" in
        tcp | udp) script+="/agnhost serve-hostname --${proto} --http=false --port ${port} & " ;;
        *) warn "outside clients serve TCP and UDP only: ${spec} is not served" ;;
        esac
    done
    printf '%swhile :; do sleep 3600; done' "${script}"
}

# route_pods CONTAINER: the whole pod subnet via the first node, and every node's pod CIDR via
# that node (the longer prefix wins), so traffic to a pod enters the cluster at the pod's node.
# Calico's IPAM hands out blocks of its own, unrelated to node pod CIDRs: there only the subnet
# route is set, and the first node forwards to the pod's node.
route_pods() {
    local container="$1" cidr ip first="" subnet
    while read -r cidr ip; do
        [[ -n "${ip}" ]] || continue
        first="${first:-${ip}}"
        [[ -n "${cidr}" && "${cni}" != calico ]] || continue
        docker exec "${container}" ip route replace "${cidr}" via "${ip}" ||
            warn "${container}: no route to ${cidr} via ${ip}"
    done < <(kctl get nodes -o jsonpath='{range .items[*]}{.spec.podCIDR}{" "}{.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}')
    [[ -n "${first}" ]] || die "cluster ${name} lists no node with an InternalIP"
    subnet="${POD_SUBNET:-$(sed -n 's/^ *podSubnet: *"\{0,1\}\([^" ]*\)"\{0,1\}.*/\1/p' "${HACK_KIND_DIR}/kind-${cni}.yaml")}"
    subnet="${subnet:-10.244.0.0/16}"
    docker exec "${container}" ip route replace "${subnet}" via "${first}" ||
        warn "${container}: no route to ${subnet} via ${first}"
}

# options: the run arguments for the running containers of this cluster, one per line.
options() {
    local container endpoint ip
    printf '%s\n' --outside-exec "docker exec -i ${name}-outside-{name}"
    while read -r container; do
        [[ -n "${container}" ]] || continue
        endpoint="${container#"${name}"-outside-}"
        ip="$(docker inspect -f "{{with index .NetworkSettings.Networks \"${network}\"}}{{.IPAddress}}{{end}}" "${container}")"
        [[ -n "${ip}" ]] || die "${container} has no address on docker network ${network}"
        printf '%s\n' --external "${endpoint}=${ip}"
    done < <(docker ps --filter "label=${OUTSIDE_LABEL}=${name}" --format '{{.Names}}' | sort)
}

down() {
    local ids
    ids="$(docker ps -aq --filter "label=${OUTSIDE_LABEL}=${name}")"
    if [[ -n "${ids}" ]]; then
        log "removing the outside clients of ${name}"
        # shellcheck disable=SC2086 # one id per word
        docker rm -f ${ids} >/dev/null
    fi
}

up() {
    local paths=("$@") line endpoint container specs
    ((${#paths[@]})) || paths=("${REPO_ROOT}/scenarios")
    need kubectl "${PYTHON:-python3}"
    down
    while read -r line; do
        [[ -n "${line}" ]] || continue
        read -r endpoint specs <<<"${line}"
        container="${name}-outside-${endpoint}"
        log "starting outside client ${container} on docker network ${network} (serves ${specs:-nothing})"
        # shellcheck disable=SC2086 # one PORT/PROTO per word
        docker run -d --name "${container}" --network "${network}" --cap-add NET_ADMIN \
            --label "${OUTSIDE_LABEL}=${name}" --entrypoint /bin/sh "${AGNHOST_IMAGE}" \
            -c "$(server_script ${specs})" >/dev/null
        route_pods "${container}"
    done < <(endpoints "${paths[@]}")
    options
}

case "${action}" in
up) up "$@" ;;
options) options ;;
down) down ;;
*) usage ;;
esac
