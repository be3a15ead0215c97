#!/bin/bash
# /metrics of configstreamd moves as the streams do: the subscribers gauge
# follows connected clients, and a consumer that stops reading (SIGSTOP)
# while large updates flow raises dropped_updates, then discontinuities
# and snapshots_sent once it reads again, without an order violation.
#
# usage: test_daemon_telemetry.sh BUILD_DIR
set -u

BUILD=$1
DAEMON=$BUILD/src/supervisor/configstreamd
CLIENT=$BUILD/src/tools/config-stream-client
CTL=$BUILD/src/tools/configstream-ctl

for f in "$DAEMON" "$CLIENT" "$CTL" \
         "$BUILD/src/broker/configstream-broker" \
         "$BUILD/src/resolver/configstream-resolver" \
         "$BUILD/src/frontend/configstream-frontend"; do
    [ -x "$f" ] || { echo "SKIP: $f is not built"; exit 77; }
done

. "$(dirname "$0")/lib.sh"

TMP=$(mktemp -d /tmp/cs-daemon-telemetry-XXXXXX)
DPID=
CLIENTS=
trap 'cleanup' EXIT

cleanup() {
    for p in $CLIENTS; do
        kill -CONT "$p" 2>/dev/null
        kill -KILL "$p" 2>/dev/null
    done
    if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
        kill -KILL "$DPID" 2>/dev/null
        sleep 0.3
    fi
    rm -rf "$TMP"
}

fail() {
    echo "FAIL: $*" >&2
    curl -s "http://127.0.0.1:$TPORT/metrics" | grep -v '^#' >&2
    tail -n 20 "$TMP/log" >&2
    exit 1
}

metric() {
    curl -sf "http://127.0.0.1:$TPORT/metrics" |
        awk -v m="$1" '$1 == m { print $2 }'
}
metric_is() { [ "$(metric "$1")" = "$2" ]; }
metric_above() { [ "$(metric "$1")" -gt "$2" ]; }

read -r PORT TPORT <<< "$(free_port 2)"
cat > "$TMP/datadog.yaml" <<EOF
run_path: $TMP/run
cmd_host: 127.0.0.1
cmd_port: $PORT
config_stream:
  workers: 1
  queue_size: 4
  telemetry_address: 127.0.0.1:$TPORT
EOF

"$DAEMON" -c "$TMP/datadog.yaml" 2>"$TMP/log" &
DPID=$!
wait_for 20 grep -q "ready: 1 frontends" "$TMP/log" ||
    fail "configstreamd never reported ready"

metric_is configstream_subscribers 0 || fail "subscribers before any client"

start_client() {
    "$CLIENT" --ipc-address "127.0.0.1:$PORT" \
        --auth-token-file "$TMP/run/auth_token" \
        --cert-file "$TMP/run/ipc_cert.pem" --name "$1" --duration 60 \
        --json > "$TMP/$1.out" 2>"$TMP/$1.err" &
    CLIENTS="$CLIENTS $!"
}

start_client fast
FAST=$!
wait_for 10 metric_is configstream_subscribers 1 ||
    fail "one client: subscribers is not 1"
start_client slow
SLOW=$!
wait_for 10 metric_is configstream_subscribers 2 ||
    fail "two clients: subscribers is not 2"
wait_for 10 grep -q '"event":"snapshot"' "$TMP/slow.out" ||
    fail "the slow client got no snapshot"
snapshots=$(metric configstream_snapshots_sent)

# Large values fill the transport's buffers quickly once nobody reads.
kill -STOP "$SLOW"
big=$(head -c 30000 /dev/zero | tr '\0' x)
for i in $(seq 1 400); do
    "$CTL" --socket "$TMP/run/configstream/resolver.sock" \
        set hostname "$i$big" >/dev/null || fail "configstream-ctl set $i"
    if [ $((i % 50)) = 0 ] &&
       metric_above configstream_dropped_updates 0; then
        break
    fi
done
wait_for 5 metric_above configstream_dropped_updates 0 ||
    fail "a stalled consumer dropped no update"
grep -q "Dropping config update for subscriber 'slow'" "$TMP/log" ||
    fail "no drop line in the log"

kill -CONT "$SLOW"
wait_for 10 metric_above configstream_discontinuities 0 ||
    fail "no discontinuity counted after the consumer resumed"
wait_for 10 metric_above configstream_snapshots_sent "$snapshots" ||
    fail "the resumed consumer got no fresh snapshot"

promtool_out=$(curl -sf "http://127.0.0.1:$TPORT/metrics" |
    promtool check metrics 2>&1) || fail "promtool: $promtool_out"

kill -TERM $CLIENTS
wait $CLIENTS 2>/dev/null
CLIENTS=
wait_for 10 metric_is configstream_subscribers 0 ||
    fail "subscribers did not fall back to 0"
for c in fast slow; do
    if grep -q '"violations":[1-9]' "$TMP/$c.out"; then
        fail "client $c saw order violations"
    fi
done

kill -TERM "$DPID"
wait "$DPID"
DPID=
echo "ok"
