#!/bin/bash
# The group run by Debian's supervisord from deploy/supervisord.conf (paths
# pointed at the build tree and a temp directory): every program comes up,
# a client streams a snapshot and sees a configstream-ctl update, a frontend
# killed with SIGKILL is back within 2 s and updates flow again, the broker
# serves /metrics (accepted by promtool), and stopping the group stops
# every process.
#
# usage: test_deploy_supervisord.sh BUILD_DIR DEPLOY_DIR
set -u

BUILD=$1
DEPLOY=$2
CLIENT=$BUILD/src/tools/config-stream-client
CTL=$BUILD/src/tools/configstream-ctl

command -v supervisord >/dev/null ||
    { echo "SKIP: supervisord not installed"; exit 77; }
for f in "$CLIENT" "$CTL" "$BUILD/src/broker/configstream-broker" \
         "$BUILD/src/resolver/configstream-resolver" \
         "$BUILD/src/frontend/configstream-frontend"; do
    [ -x "$f" ] || { echo "SKIP: $f is not built"; exit 77; }
done

. "$(dirname "$0")/lib.sh"

TMP=$(mktemp -d /tmp/cs-deploy-supervisord-XXXXXX)
SPID=
trap 'cleanup' EXIT

cleanup() {
    if [ -n "$SPID" ] && kill -0 "$SPID" 2>/dev/null; then
        kill -TERM "$SPID"
        for _ in $(seq 100); do
            kill -0 "$SPID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SPID" 2>/dev/null
    fi
    rm -rf "$TMP"
}

fail() {
    echo "FAIL: $*" >&2
    ctl_sv status >&2
    tail -n 20 "$TMP"/logs/*.log "$TMP/supervisord.log" >&2 2>/dev/null
    exit 1
}

ctl_sv() { supervisorctl -c "$TMP/supervisord.conf" "$@"; }

read -r PORT TPORT <<< "$(free_port 2)"
mkdir -p "$TMP/logs"
cat > "$TMP/datadog.yaml" <<EOF
run_path: $TMP/run
cmd_host: 127.0.0.1
cmd_port: $PORT
config_stream:
  telemetry_address: 127.0.0.1:$TPORT
EOF

cat > "$TMP/supervisord.conf" <<EOF
[supervisord]
nodaemon=true
logfile=$TMP/supervisord.log
pidfile=$TMP/supervisord.pid
childlogdir=$TMP/logs

[unix_http_server]
file=$TMP/supervisor.sock

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://$TMP/supervisor.sock

[include]
files=$TMP/configstream.conf
EOF

sed -e "s#/usr/local/bin/\(configstream-\)\([a-z]*\)#$BUILD/src/\2/\1\2#" \
    -e "s#/etc/datadog-agent/datadog.yaml#$TMP/datadog.yaml#" \
    -e "s#/var/log/configstream#$TMP/logs#" \
    "$DEPLOY/supervisord.conf" > "$TMP/configstream.conf"


supervisord -c "$TMP/supervisord.conf" &
SPID=$!

all_running() {
    local out
    out=$(ctl_sv status) || return 1
    [ "$(echo "$out" | grep -c RUNNING)" = 4 ]
}
wait_for 20 all_running || fail "the group did not come up"

client_args=(--ipc-address "127.0.0.1:$PORT"
    --auth-token-file "$TMP/run/auth_token"
    --cert-file "$TMP/run/ipc_cert.pem")
wait_for 10 test -s "$TMP/run/auth_token" || fail "no token created"

"$CLIENT" "${client_args[@]}" --name supervised --duration 30 --json \
    > "$TMP/client.out" 2>"$TMP/client.err" &
CPID=$!
wait_for 15 grep -q '"event":"snapshot"' "$TMP/client.out" ||
    fail "no snapshot: $(cat "$TMP/client.err")"

set_and_see "first"

# No configstreamd here: the broker serves /metrics (--telemetry).
curl -sf "http://127.0.0.1:$TPORT/metrics" > "$TMP/metrics" ||
    fail "the broker does not serve /metrics"
promtool check metrics < "$TMP/metrics" || fail "promtool rejects it"
grep -q '^configstream_subscribers 1$' "$TMP/metrics" ||
    fail "subscribers: $(grep subscribers "$TMP/metrics")"

name=configstream:configstream-frontend-0
old=$(ctl_sv pid "$name")
kill -KILL "$old"
back() {
    local p
    p=$(ctl_sv pid "$name")
    [ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$old" ] && kill -0 "$p"
}
wait_for 2 back || fail "frontend-0 not back within 2 s"
set_and_see "after kill -9 of a frontend"

pids=$(for p in configstream-broker configstream-resolver \
       configstream-frontend-0 configstream-frontend-1; do
           ctl_sv pid "configstream:$p"; done)
ctl_sv stop configstream: >/dev/null || fail "supervisorctl stop failed"
for p in $pids; do
    kill -0 "$p" 2>/dev/null && fail "process $p survived the stop"
done
kill "$CPID" 2>/dev/null
wait "$CPID" 2>/dev/null
if grep -q '"violations":[1-9]' "$TMP/client.out"; then
    fail "the client saw order violations"
fi
echo "ok"
