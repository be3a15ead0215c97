#!/bin/bash
# configstreamd supervising a group of stand-in roles (daemon_fake_role):
# start order, credentials, the process table, respawn of each role after
# kill -9 within 2 s, SIGHUP forwarded to the resolver, /metrics accepted
# by promtool, readiness sent to systemd, the ordered stop on SIGTERM, a
# fatal-config child that stops the group with status 78 instead of being
# respawned, the back-off of a child that keeps crashing, SIGKILL for a
# child that ignores SIGTERM (at once on a second signal), and a second
# configstreamd on the same run_path refused.
#
# Last, the example deploy/datadog.yaml is accepted as it is shipped.
#
# usage: test_daemon_supervise.sh CONFIGSTREAMD FAKE_ROLE DEPLOY_DIR
set -u

DAEMON=$1
FAKE=$2
DEPLOY=$3
. "$(dirname "$0")/lib.sh"

TMP=$(mktemp -d /tmp/cs-daemon-test-XXXXXX)
DPID=
NPID=
trap 'cleanup' EXIT

fail() {
    echo "FAIL: $*" >&2
    echo "--- configstreamd log" >&2
    tail -n 40 "$TMP/log" >&2 2>/dev/null
    echo "--- events" >&2
    cat "$TMP/events" >&2 2>/dev/null
    exit 1
}

cleanup() {
    [ -n "$NPID" ] && kill "$NPID" 2>/dev/null
    if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
        kill -KILL "$DPID" 2>/dev/null
    fi
    # Children die with their supervisor (parent-death signal).
    sleep 0.2
    rm -rf "$TMP"
}


mkdir -p "$TMP/libexec"
for role in broker resolver frontend; do
    ln -s "$FAKE" "$TMP/libexec/configstream-$role"
done

read -r PORT TPORT <<< "$(free_port 2)"
cat > "$TMP/datadog.yaml" <<EOF
run_path: $TMP/run
cmd_host: 127.0.0.1
cmd_port: $PORT
config_stream:
  workers: 2
  telemetry_address: 127.0.0.1:$TPORT
EOF

# A stand-in for systemd's notification socket, when configstreamd was
# built with libsystemd: it records every datagram, one per line.
NOTIFY=
if ldd "$DAEMON" | grep -q libsystemd; then
    NOTIFY=$TMP/notify.sock
    python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(30)
with open(sys.argv[2], "a") as out:
    try:
        while True:
            out.write(s.recv(4096).decode() + "\n")
            out.flush()
    except socket.timeout:
        pass
' "$NOTIFY" "$TMP/notified" &
    NPID=$!
    wait_for 5 test -S "$NOTIFY" || fail "notify socket stand-in"
fi

start_daemon() {
    : > "$TMP/log"
    CS_FAKE_EVENTS="$TMP/events" NOTIFY_SOCKET=$NOTIFY "$DAEMON" \
        -c "$TMP/datadog.yaml" --libexec "$TMP/libexec" 2>>"$TMP/log" &
    DPID=$!
}

# --- start -----------------------------------------------------------------
start_daemon
wait_for 10 grep -q "ready: 2 frontends" "$TMP/log" ||
    fail "configstreamd never reported ready"

if [ -n "$NOTIFY" ]; then
    wait_for 2 grep -q '^READY=1$' "$TMP/notified" ||
        fail "no READY=1 sent to systemd"
    grep -q '^STATUS=serving 2 frontends on 127.0.0.1:' "$TMP/notified" ||
        fail "no STATUS sent to systemd"
fi

order=$(awk '$1 == "start" { print $2 }' "$TMP/events" | uniq | tr '\n' ' ')
expected="configstream-broker configstream-resolver configstream-frontend "
[ "$order" = "$expected" ] ||
    fail "start order was: $order"

token=$(cat "$TMP/run/auth_token")
[[ "$token" =~ ^[0-9a-f]{64}$ ]] || fail "token is not 64 hex characters"
[ "$(stat -c %a "$TMP/run/auth_token")" = 600 ] || fail "token mode"
[ "$(stat -c %a "$TMP/run/ipc_cert.pem")" = 600 ] || fail "cert mode"
grep -q "BEGIN CERTIFICATE" "$TMP/run/ipc_cert.pem" || fail "no certificate"

[ "$(procs | grep -c ' running ')" = 4 ] || fail "table: $(procs)"
for role in broker resolver frontend; do
    pid=$(pid_of "configstream-$role" 0)
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "^configstream-$role -c " ||
        fail "argv[0] of $role is $(tr '\0' ' ' < /proc/$pid/cmdline)"
done

# --- telemetry -------------------------------------------------------------
metrics=$(curl -sf "http://127.0.0.1:$TPORT/metrics") ||
    fail "GET /metrics failed"
echo "$metrics" | promtool check metrics || fail "promtool rejects /metrics"
echo "$metrics" | grep -q '^configstream_head_sequence_id 1$' ||
    fail "head sequence id not exported: $metrics"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$TPORT/x")
[ "$code" = 404 ] || fail "/x answered $code"

# --- kill -9 of each role: back within 2 s ---------------------------------
for target in "configstream-broker 0" "configstream-resolver 0" \
              "configstream-frontend 0" "configstream-frontend 1"; do
    set -- $target
    old=$(pid_of "$1" "$2")
    kill -KILL "$old"
    back() {
        local p
        p=$(pid_of "$1" "$2")
        [ -n "$p" ] && [ "$p" != "$old" ] && [ "$p" != 0 ] &&
            [ "$(state_of "$1" "$2")" = running ] && kill -0 "$p"
    }
    wait_for 2 back "$1" "$2" || fail "$1 $2 not back within 2 s"
    grep -q "$1 pid $old killed by signal 9" "$TMP/log" ||
        fail "no exit line for $1 pid $old"
done
procs | awk '$1 != "#" && $5 != 1 { exit 1 }' ||
    fail "restart counts: $(procs)"

# --- a second configstreamd on the same run_path refuses to start ------------
"$DAEMON" -c "$TMP/datadog.yaml" --libexec "$TMP/libexec" 2>"$TMP/log2"
rc=$?
[ "$rc" = 1 ] || fail "a second configstreamd exited $rc"
grep -q "another configstreamd is running" "$TMP/log2" ||
    fail "second configstreamd: $(cat "$TMP/log2")"
[ "$(procs | grep -c ' running ')" = 4 ] || fail "table after: $(procs)"

# --- nor does one on another run_path whose address is taken ----------------
sed "s|^run_path: .*|run_path: $TMP/run2|" "$TMP/datadog.yaml" \
    > "$TMP/other.yaml"
"$DAEMON" -c "$TMP/other.yaml" --libexec "$TMP/libexec" 2>"$TMP/log2"
rc=$?
[ "$rc" = 78 ] || fail "a configstreamd on a taken address exited $rc"
grep -q "127.0.0.1:$PORT already accepts connections" "$TMP/log2" ||
    fail "taken address: $(cat "$TMP/log2")"
[ ! -e "$TMP/run2/configstream/configstreamd.procs" ] ||
    fail "a configstreamd on a taken address started children"

# --- SIGHUP reaches the resolver ---------------------------------------------
kill -HUP "$DPID"
wait_for 2 grep -q "^hup configstream-resolver" "$TMP/events" ||
    fail "SIGHUP not forwarded to the resolver"

# --- SIGTERM: frontends, then resolver, then broker --------------------------
children=$(procs | awk '$1 != "#" { print $3 }')
stop_daemon configstreamd 10
for p in $children; do
    kill -0 "$p" 2>/dev/null && fail "child $p survived the stop"
done
if [ -n "$NOTIFY" ]; then
    grep -q '^STOPPING=1$' "$TMP/notified" ||
        fail "no STOPPING=1 sent to systemd"
fi
stops=$(awk '$1 == "stop" { print $2 }' "$TMP/events" | uniq | tr '\n' ' ')
expected="configstream-frontend configstream-resolver configstream-broker "
[ "$stops" = "$expected" ] ||
    fail "stop order was: $stops"

# --- a fatal configuration is not respawned ---------------------------------
: > "$TMP/events"
: > "$TMP/log"
CS_FAKE_EVENTS="$TMP/events" CS_FAKE_FATAL=configstream-resolver \
    "$DAEMON" -c "$TMP/datadog.yaml" --libexec "$TMP/libexec" 2>"$TMP/log" &
DPID=$!
wait_for 10 bash -c "! kill -0 $DPID" || fail "fatal config: still running"
wait "$DPID"
rc=$?
DPID=
[ "$rc" = 78 ] || fail "fatal config: exit code $rc, expected 78"
[ "$(grep -c '^start configstream-resolver' "$TMP/events")" = 1 ] ||
    fail "fatal resolver was respawned"
grep -q "not respawning" "$TMP/log" || fail "no fatal message in the log"
# The broker may be stopped before it even set up its signal handling.
grep -Eq "configstream-broker pid [0-9]+ (exited|killed)" "$TMP/log" ||
    fail "broker not stopped after the fatal exit"
[ "$(grep -c '^start configstream-broker' "$TMP/events")" = 1 ] ||
    fail "broker respawned after the fatal exit"

# --- a crash loop backs off: 100 ms, doubling -------------------------------
: > "$TMP/events"
: > "$TMP/log"
CS_FAKE_EVENTS="$TMP/events" CS_FAKE_CRASH=configstream-resolver \
    "$DAEMON" -c "$TMP/datadog.yaml" --libexec "$TMP/libexec" 2>"$TMP/log" &
DPID=$!
wait_for 10 grep -q "respawning configstream-resolver in 800 ms" "$TMP/log" ||
    fail "no back-off up to 800 ms"
delays=$(sed -n 's/.*respawning configstream-resolver in \([0-9]*\) ms/\1/p' \
    "$TMP/log" | head -n 4 | tr '\n' ' ')
[ "$delays" = "100 200 400 800 " ] || fail "back-off delays: $delays"
grep -q "configstream-resolver pid [0-9]* exited with code 1" "$TMP/log" ||
    fail "no exit line with the exit code"
stop_daemon "crash loop" 10

# --- a child that ignores SIGTERM gets SIGKILL after 5 s ---------------------
start_stubborn() {
    : > "$TMP/log"
    CS_FAKE_STUBBORN=configstream-resolver CS_FAKE_EVENTS="$TMP/events" \
        "$DAEMON" -c "$TMP/datadog.yaml" --libexec "$TMP/libexec" \
        2>>"$TMP/log" &
    DPID=$!
    wait_for 10 grep -q "ready: 2 frontends" "$TMP/log" ||
        fail "stubborn: never ready"
}
start_stubborn
stop_started=$(date +%s%N)
stop_daemon stubborn 15
elapsed_ms=$(( ($(date +%s%N) - stop_started) / 1000000 ))
grep -q "configstream-resolver still running after 5000 ms, sending SIGKILL" \
    "$TMP/log" || fail "stubborn: no SIGKILL line"
grep -q "configstream-resolver pid [0-9]* killed by signal 9" "$TMP/log" ||
    fail "stubborn: resolver not killed"
[ "$elapsed_ms" -ge 4500 ] || fail "stubborn: killed after $elapsed_ms ms"

# A second signal does not wait for the timeout.
start_stubborn
kill -TERM "$DPID"
sleep 0.3
kill -INT "$DPID"
wait_for 2 bash -c "! kill -0 $DPID" ||
    fail "a second signal did not stop the group at once"
wait "$DPID"
DPID=
grep -q "killing every process now" "$TMP/log" || fail "no second-signal line"

# --- the example configuration -----------------------------------------------
# Paths and ports come from the environment, which outranks the file.
: > "$TMP/log"
DD_RUN_PATH=$TMP/example DD_CMD_HOST=127.0.0.1 DD_CMD_PORT=$PORT \
DD_AUTH_TOKEN_FILE_PATH=$TMP/example/auth_token \
DD_IPC_CERT_FILE_PATH=$TMP/example/ipc_cert.pem \
DD_CONFIG_STREAM_WORKERS=1 \
DD_CONFIG_STREAM_TELEMETRY_ADDRESS=127.0.0.1:$TPORT \
    "$DAEMON" -c "$DEPLOY/datadog.yaml" --libexec "$TMP/libexec" \
    2>>"$TMP/log" &
DPID=$!
wait_for 10 grep -q "ready: 1 frontends" "$TMP/log" ||
    fail "deploy/datadog.yaml was not accepted"
stop_daemon example

echo "ok"
