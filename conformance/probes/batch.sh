# Probe batch, run inside an agnhost pod as: sh -c "$(cat batch.sh)" probe PARALLEL ID HOST PORT PROTO TIMEOUT ...
# For every (ID, HOST, PORT, PROTO, TIMEOUT) group it runs `/agnhost connect` ($AGNHOST overrides the path) with
# --timeout=TIMEOUTs in the background, at most PARALLEL at a time, and prints one line per target (a single write,
# so lines never interleave):
#   <ID> ok
#   <ID> fail <exit code> <first line of agnhost's stderr>
# The runner parses these lines; a target without a line is "check-failed" (the exec was cut short).
parallel=$1
shift 1
probe() {
    out=$("${AGNHOST:-/agnhost}" connect "$2:$3" --protocol="$4" --timeout="$5s" 2>&1)
    rc=$?
    if [ "$rc" -eq 0 ]; then
        echo "$1 ok"
    else
        first=$(printf '%s\n' "$out" | head -n 1)
        echo "$1 fail $rc $first"
    fi
}
running=0
while [ "$#" -ge 5 ]; do
    probe "$1" "$2" "$3" "$4" "$5" &
    shift 5
    running=$((running + 1))
    if [ "$running" -ge "$parallel" ]; then
        wait
        running=0
    fi
done
wait
