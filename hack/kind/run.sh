#!/usr/bin/env bash
# One command per CNI: create the kind cluster (or reuse it), install the CNI, check it with
# `netpol-conformance doctor`, run the suite with `netpol-conformance run` (judged against
# known-deviations/CNI.yaml) and then in its pytest form with xdist workers.
#
# Usage: run.sh CNI [SCENARIO PATH...]       CNI: kindnet, calico, cilium or antrea
# Environment:
#   REPORT_DIR      where reports go (default: reports/kind-CNI)
#   VIA             pod (default) or service: probe pod IPs or per-pod Services
#   PYTEST_WORKERS  xdist workers of the pytest form (default 2); PYTEST=0 skips that form
#   NETPOL_SCTP=0   do not load sctp nor check it (SCTP scenarios then report not-supported;
#                   so do they when the host has no sctp module, with a warning)
#   SKIP_CREATE=1   use an existing cluster as is (CLUSTER_NAME, default netpol-CNI)
#   NETPOL          the CLI to call (default: netpol-conformance); PYTHON the interpreter
#                   that has it installed, for the pytest form (default: python3)
#   KNOWN_DEVIATIONS  deviations file (default: known-deviations/CNI.yaml, or
#                   known-deviations/CNI-via-service.yaml with VIA=service when it exists)
#   NETPOL_OUTSIDE=0  do not start outside clients (outside-clients.sh); cells from outside the
#                   cluster are then skipped with a reason, and egress to external endpoints
#                   has no address to go to
#
# Exit code: that of `netpol-conformance run`: 0 no mismatch beyond the known deviations,
# 1 mismatches that are not known deviations (regressions), 2 usage, 3 infrastructure (the doctor
# failing counts as 3). The pytest form's result is reported but does not decide the exit code:
# it has no notion of known deviations.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cni="${1:-}"
check_cni "${cni}"
shift
if (($#)); then
    scenarios=("$@")
else
    scenarios=("${REPO_ROOT}/scenarios")
fi
netpol="${NETPOL:-netpol-conformance}"
need "${netpol}" kubectl
context="$(kube_context "${cni}")"
report_dir="${REPORT_DIR:-${REPO_ROOT}/reports/kind-${cni}}"
via="${VIA:-pod}"
deviations="${HACK_KIND_DIR}/known-deviations/${cni}.yaml"
if [[ "${via}" == service && -f "${HACK_KIND_DIR}/known-deviations/${cni}-via-service.yaml" ]]; then
    deviations="${HACK_KIND_DIR}/known-deviations/${cni}-via-service.yaml"
fi
deviations="${KNOWN_DEVIATIONS:-${deviations}}"
mkdir -p "${report_dir}"

if [[ "${SKIP_CREATE:-0}" != 1 ]]; then
    "${HACK_KIND_DIR}/create-cluster.sh" "${cni}"
fi

doctor_args=(--context "${context}")
if [[ "${NETPOL_SCTP:-1}" != 0 ]]; then
    # kind nodes share this host's kernel: without its sctp module the SCTP scenarios report
    # "not supported" (as documented) instead of the doctor stopping the whole run.
    if [[ "$(uname -s)" == Linux && ! -d /sys/module/sctp && ! -d /proc/net/sctp ]]; then
        warn "this host has no sctp kernel module: SCTP cells will be reported as not supported (load it with 'sudo modprobe sctp' to test SCTP; NETPOL_SCTP=0 silences this)"
    else
        doctor_args+=(--sctp)
    fi
fi
log "checking the cluster: ${netpol} doctor ${doctor_args[*]}"
if ! "${netpol}" doctor "${doctor_args[@]}"; then
    printf 'error: the doctor found problems on %s (above); not running the suite\n' "${context}" >&2
    exit 3
fi

run_args=(--context "${context}" --via "${via}" --output-dir "${report_dir}")
if "${netpol}" run --help 2>/dev/null | grep -q -- '--known-deviations'; then
    run_args+=(--known-deviations "${deviations}")
else
    warn "this netpol-conformance has no --known-deviations: every mismatch fails the run"
fi
if [[ "${NETPOL_OUTSIDE:-1}" != 0 ]]; then
    if ! "${netpol}" run --help 2>/dev/null | grep -q -- '--outside-exec'; then
        warn "this netpol-conformance has no --outside-exec: cells from outside clients are skipped"
    elif outside="$("${HACK_KIND_DIR}/outside-clients.sh" up "${cni}" "${scenarios[@]}")"; then
        # One argument per line: --outside-exec TEMPLATE, then --external NAME=IP per client.
        mapfile -t outside_args <<<"${outside}"
        run_args+=("${outside_args[@]}")
    else
        warn "outside clients could not be started: cells from outside the cluster are skipped"
    fi
fi
log "running the suite: ${netpol} run ${scenarios[*]} ${run_args[*]}"
set +e
"${netpol}" run "${scenarios[@]}" "${run_args[@]}"
run_rc=$?
set -e

pytest_rc=skipped
if [[ "${PYTEST:-1}" != 0 ]]; then
    log "running the pytest form with ${PYTEST_WORKERS:-2} workers"
    set +e
    "${PYTHON:-python3}" -m pytest "${scenarios[@]}" \
        -n "${PYTEST_WORKERS:-2}" \
        -p no:cacheprovider \
        --netpol-context "${context}" \
        --netpol-via "${via}" \
        --junitxml "${report_dir}/pytest-junit.xml" \
        --alluredir "${report_dir}/allure-results" \
        -q
    pytest_rc=$?
    set -e
fi

log "netpol-conformance run exit ${run_rc}; pytest form exit ${pytest_rc}; reports in ${report_dir}"
exit "${run_rc}"
