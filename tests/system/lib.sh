# Helpers shared by the shell system tests. Source it; it defines
# functions only.

# TCP ports on the loopback that nothing listens on right now: one, or
# with a count that many, all different (the config stream's port and the
# telemetry port must differ).
free_port() {
    python3 -c 'import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "${1:-1}"
}

# stop_daemon WHAT [SECONDS]: send SIGTERM to configstreamd ($DPID), wait
# for it (failing after SECONDS, when given) and fail unless it exited 0.
# Leaves its exit status in rc. Uses the sourcing test's fail().
stop_daemon() {
    kill -TERM "$DPID"
    if [ -n "${2:-}" ]; then
        wait_for "$2" bash -c "! kill -0 $DPID" || fail "$1: did not stop"
    fi
    wait "$DPID"
    rc=$?
    DPID=
    [ "$rc" = 0 ] || fail "$1: exit code $rc after SIGTERM"
}

# wait_for SECONDS COMMAND...: run COMMAND every 50 ms until it succeeds;
# fail (status 1) when SECONDS pass first.
wait_for() {
    local limit=$(( $1 * 20 )) i=0
    shift
    while ! "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -ge "$limit" ] && return 1
        sleep 0.05
    done
    return 0
}

# configstreamd's process table under $TMP/run, and one row's pid or state
# by role and index: pid_of configstream-frontend 1.
procs() { cat "$TMP/run/configstream/configstreamd.procs"; }
pid_of() {
    procs | awk -v r="$1" -v i="$2" '$1 == r && $2 == i { print $3 }'
}
state_of() {
    procs | awk -v r="$1" -v i="$2" '$1 == r && $2 == i { print $4 }'
}

# seen VALUE ID: the client's JSON output in $TMP/client.out holds an
# update to VALUE, or a snapshot at or past ID (after a reconnect the
# change may arrive inside a fresh snapshot instead).
seen() {
    python3 - "$TMP/client.out" "$1" "$2" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    try:
        o = json.loads(line)
    except ValueError:
        continue
    if o.get("event") == "update" and o.get("value") == sys.argv[2]:
        sys.exit(0)
    if o.get("event") == "snapshot" and o.get("seq", 0) >= int(sys.argv[3]):
        sys.exit(0)
sys.exit(1)
EOF
}

# set_and_see WHAT: set hostname to a new value with $CTL through the
# resolver's socket under $TMP/run (not -c: tests break the file on
# purpose) and wait until the streaming client has it; fail naming WHAT.
set_and_see_n=0
set_and_see() {
    local sock=$TMP/run/configstream/resolver.sock out id
    set_and_see_n=$((set_and_see_n + 1))
    # A resolver just respawned takes a moment to open its socket.
    wait_for 5 "$CTL" --socket "$sock" set hostname \
        "test-$set_and_see_n" || fail "configstream-ctl set failed ($1)"
    out=$("$CTL" --socket "$sock" --json get hostname) ||
        fail "configstream-ctl get failed ($1)"
    id=$(echo "$out" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["seq"])') ||
        fail "no id in: $out"
    wait_for 10 seen "test-$set_and_see_n" "$id" ||
        fail "update $set_and_see_n did not reach the client ($1)"
}
