#!/bin/bash
# configstreamd running the real broker, resolver and frontends on a real
# datadog.yaml (the rendered upstream example, with the daemon's own
# settings appended), with TLS:
#   - a client's snapshot equals configstream-dump's settings;
#   - /metrics passes promtool and counts the streaming client;
#   - configstream-ctl set and a file edit reach the streaming client;
#     a broken edit is reported with file:line:column, streams nothing and
#     the daemon keeps serving;
#   - kill -9 of each role (broker, resolver, each frontend): back within
#     2 s, and updates reach the client again afterwards without an order
#     violation (the client reconnects on its own);
#   - SIGTERM stops everything, exit status 0.
#
# usage: test_daemon_group.sh BUILD_DIR FIXTURES_DIR
set -u

BUILD=$1
FIXTURES=$2
DAEMON=$BUILD/src/supervisor/configstreamd
CLIENT=$BUILD/src/tools/config-stream-client
CTL=$BUILD/src/tools/configstream-ctl
DUMP=$BUILD/src/tools/configstream-dump
CONFIG_SRC=$FIXTURES/rendered/datadog.yaml.example

for f in "$DAEMON" "$CLIENT" "$CTL" "$DUMP" \
         "$BUILD/src/broker/configstream-broker" \
         "$BUILD/src/resolver/configstream-resolver" \
         "$BUILD/src/frontend/configstream-frontend"; do
    if [ ! -x "$f" ]; then
        echo "SKIP: $f is not built"
        exit 77
    fi
done
[ -f "$CONFIG_SRC" ] || { echo "SKIP: no fixture $CONFIG_SRC"; exit 77; }

. "$(dirname "$0")/lib.sh"

TMP=$(mktemp -d /tmp/cs-daemon-group-XXXXXX)
DPID=
CPID=
trap 'cleanup' EXIT

cleanup() {
    [ -n "$CPID" ] && kill -KILL "$CPID" 2>/dev/null
    if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
        kill -KILL "$DPID" 2>/dev/null
        sleep 0.3
    fi
    rm -rf "$TMP"
}

fail() {
    echo "FAIL: $*" >&2
    echo "--- log (last 40 lines)" >&2
    tail -n 40 "$TMP/log" >&2
    echo "--- client" >&2
    tail -n 10 "$TMP/client.out" "$TMP/client.err" >&2 2>/dev/null
    exit 1
}

metric() {
    curl -sf "http://127.0.0.1:$TPORT/metrics" |
        awk -v m="$1" '$1 == m { print $2 }'
}

read -r PORT TPORT <<< "$(free_port 2)"
cp "$CONFIG_SRC" "$TMP/datadog.yaml"
cat >> "$TMP/datadog.yaml" <<EOF

run_path: $TMP/run
cmd_host: 127.0.0.1
cmd_port: $PORT
config_stream:
  workers: 2
  telemetry_address: 127.0.0.1:$TPORT
EOF

"$DAEMON" -c "$TMP/datadog.yaml" 2>"$TMP/log" &
DPID=$!
wait_for 20 grep -q "ready: 2 frontends" "$TMP/log" ||
    fail "configstreamd never reported ready"

client_args=(--ipc-address "127.0.0.1:$PORT"
    --auth-token-file "$TMP/run/auth_token"
    --cert-file "$TMP/run/ipc_cert.pem")

# --- the snapshot is the store -----------------------------------------------
snapshot_is_store() {
    timeout 20 "$CLIENT" "${client_args[@]}" --name snap --max-samples 1 \
        --dump-snapshot --show-secrets --json \
        > "$TMP/snap.json" 2>"$TMP/snap.err" ||
        fail "snapshot client failed ($1): $(cat "$TMP/snap.err")"
    "$DUMP" -c "$TMP/datadog.yaml" --settings --json --show-secrets \
        > "$TMP/dump.json" || fail "configstream-dump failed ($1)"
    python3 - "$TMP/snap.json" "$TMP/dump.json" <<'EOF' ||
import json, sys
snap = {}
for line in open(sys.argv[1]):
    o = json.loads(line)
    if o.get("event") == "setting":
        snap[o["key"]] = (o.get("source"), o.get("value"))
dump = {}
for line in open(sys.argv[2]):
    o = json.loads(line)
    if o.get("kind") == "setting":
        dump[o["key"]] = (o.get("source"), o.get("value"))
if not snap or snap != dump:
    missing = set(dump) ^ set(snap)
    diff = [k for k in set(dump) & set(snap) if dump[k] != snap[k]]
    print("snapshot %d keys, store %d; not in both: %s; differing: %s"
          % (len(snap), len(dump), sorted(missing)[:5], diff[:5]))
    sys.exit(1)
EOF
        fail "snapshot differs from the store ($1)"
}
snapshot_is_store "at start"

# --- a streaming client ------------------------------------------------------
"$CLIENT" "${client_args[@]}" --name streamer --duration 40 --json \
    > "$TMP/client.out" 2>"$TMP/client.err" &
CPID=$!
wait_for 10 grep -q '"event":"snapshot"' "$TMP/client.out" ||
    fail "the client got no snapshot"

curl -sf "http://127.0.0.1:$TPORT/metrics" | promtool check metrics ||
    fail "promtool rejects /metrics"
wait_for 5 test "$(metric configstream_subscribers)" = 1 ||
    fail "configstream_subscribers is $(metric configstream_subscribers)"
[ "$(metric configstream_rar_registered_sessions)" -ge 1 ] ||
    fail "no registered session in /metrics"

set_and_see "before any kill"

# --- edits of the file -------------------------------------------------------
# A valid edit (written aside and renamed, as editors do) is streamed.
cp "$TMP/datadog.yaml" "$TMP/edit.yaml"
echo "dogstatsd_port: 9125" >> "$TMP/edit.yaml"
mv "$TMP/edit.yaml" "$TMP/datadog.yaml"
wait_for 10 grep -q '"key":"dogstatsd_port","source":"file","value":9125' \
    "$TMP/client.out" || fail "the file edit did not reach the client"

# A broken edit: an error with file:line:column, no update, still serving.
updates_before=$(grep -c '"event":"update"' "$TMP/client.out")
cp "$TMP/datadog.yaml" "$TMP/good.yaml"
printf 'dogstatsd_port: [9126\n' >> "$TMP/datadog.yaml"
wait_for 10 grep -Eq 'datadog\.yaml:[0-9]+:[0-9]+' "$TMP/log" ||
    fail "no file:line:column error for the broken edit"
sleep 0.5
[ "$(grep -c '"event":"update"' "$TMP/client.out")" = "$updates_before" ] ||
    fail "the broken edit produced an update"
set_and_see "while the file is broken"
mv "$TMP/good.yaml" "$TMP/datadog.yaml"

# A session lives in the segment: the client never has to register again,
# whichever process dies.
registrations=$(metric configstream_rar_registrations)

# --- kill -9 each role -------------------------------------------------------
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
    set_and_see "after kill -9 of $1 $2"
done

[ "$(metric configstream_rar_registrations)" = "$registrations" ] ||
    fail "the client registered again: a session was lost"
snapshot_is_store "after the kills"

# The killed frontends' streams are gone; only the reconnected one counts.
wait_for 5 test "$(metric configstream_subscribers)" = 1 ||
    fail "subscribers after the kills: $(metric configstream_subscribers)"

# --- stop --------------------------------------------------------------------
children=$(procs | awk '$1 != "#" { print $3 }')
stop_daemon configstreamd 20
for p in $children; do
    kill -0 "$p" 2>/dev/null && fail "child $p survived the stop"
done

# --- a full restart ----------------------------------------------------------
# The client waits for the daemon to come back and carries on, on the
# same session (the segment outlived the group).
sleep 3
"$DAEMON" -c "$TMP/datadog.yaml" 2>>"$TMP/log" &
DPID=$!
set_and_see "after a full restart"
kill -TERM "$DPID"
wait_for 20 bash -c "! kill -0 $DPID" || fail "configstreamd did not stop"
wait "$DPID"
DPID=

kill -TERM "$CPID" 2>/dev/null
wait "$CPID" 2>/dev/null
CPID=
if grep -q '"violations":[1-9]' "$TMP/client.out"; then
    fail "the client saw order violations"
fi
echo "ok"
