#!/bin/bash
# configstreamd on each real-world datadog.yaml of the fixtures (real/ and
# real/upstream/, with the daemon's own settings appended):
#   - a valid file: a client's snapshot equals configstream-dump's settings;
#   - an invalid file: configstreamd refuses it with exit status 78 and a
#     file:line:column message, and starts nothing.
#
# usage: test_daemon_real.sh BUILD_DIR FIXTURES_DIR
set -u

BUILD=$1
FIXTURES=$2
DAEMON=$BUILD/src/supervisor/configstreamd
CLIENT=$BUILD/src/tools/config-stream-client
DUMP=$BUILD/src/tools/configstream-dump

for f in "$DAEMON" "$CLIENT" "$DUMP" \
         "$BUILD/src/broker/configstream-broker" \
         "$BUILD/src/resolver/configstream-resolver" \
         "$BUILD/src/frontend/configstream-frontend"; do
    [ -x "$f" ] || { echo "SKIP: $f is not built"; exit 77; }
done
[ -d "$FIXTURES/real" ] || { echo "SKIP: no $FIXTURES/real"; exit 77; }

# Invalid YAML on purpose (fixtures README).
INVALID="ordnance-docker.yaml invalid-shell-lines.yaml"

. "$(dirname "$0")/lib.sh"

TMP=$(mktemp -d /tmp/cs-daemon-real-XXXXXX)
DPID=
trap 'cleanup' EXIT

cleanup() {
    if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
        kill -KILL "$DPID" 2>/dev/null
        sleep 0.3
    fi
    rm -rf "$TMP"
}

fail() {
    echo "FAIL: $*" >&2
    tail -n 30 "$TMP/log" >&2
    exit 1
}

compare() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
def load(path, kind_field, kind):
    out = {}
    for line in open(path):
        o = json.loads(line)
        if o.get(kind_field) == kind:
            out[o["key"]] = (o.get("source"), o.get("value"))
    return out
snap = load(sys.argv[1], "event", "setting")
dump = load(sys.argv[2], "kind", "setting")
if not snap or snap != dump:
    only = sorted(set(dump) ^ set(snap))[:5]
    diff = [k for k in set(dump) & set(snap) if dump[k] != snap[k]][:5]
    print("snapshot %d keys, store %d; not in both: %s; differing: %s"
          % (len(snap), len(dump), only, diff))
    sys.exit(1)
EOF
}

checked=0
for src in "$FIXTURES"/real/*.yaml "$FIXTURES"/real/upstream/*.yaml; do
    name=$(basename "$src")
    run=$TMP/run-$checked
    PORT=$(free_port)
    cp "$src" "$TMP/datadog.yaml"
    printf '\nrun_path: %s\ncmd_host: 127.0.0.1\ncmd_port: %s\n' \
        "$run" "$PORT" >> "$TMP/datadog.yaml"
    printf 'config_stream:\n  workers: 1\n  telemetry_address: ""\n' \
        >> "$TMP/datadog.yaml"

    # Emptied here, not by the redirection below, which runs only once the
    # background job starts: the last run's "ready" line must be gone.
    : > "$TMP/log"
    # Some files name their own token path; keep every run inside $TMP.
    DD_AUTH_TOKEN_FILE_PATH=$run/auth_token \
    DD_IPC_CERT_FILE_PATH=$run/ipc_cert.pem \
        "$DAEMON" -c "$TMP/datadog.yaml" 2>>"$TMP/log" &
    DPID=$!

    if [[ " $INVALID " == *" $name "* ]]; then
        wait_for 10 bash -c "! kill -0 $DPID" ||
            fail "$name: configstreamd accepted an invalid file"
        wait "$DPID"
        rc=$?
        DPID=
        [ "$rc" = 78 ] || fail "$name: exit status $rc, expected 78"
        grep -Eq 'datadog\.yaml:[0-9]+:[0-9]+' "$TMP/log" ||
            fail "$name: no file:line:column in the error"
        grep -q "started configstream-" "$TMP/log" &&
            fail "$name: processes were started"
        echo "ok $name (refused)"
        checked=$((checked + 1))
        continue
    fi

    wait_for 20 grep -q "ready: 1 frontends" "$TMP/log" ||
        fail "$name: configstreamd never reported ready"
    timeout 20 "$CLIENT" --ipc-address "127.0.0.1:$PORT" \
        --auth-token-file "$run/auth_token" \
        --cert-file "$run/ipc_cert.pem" --name real --max-samples 1 \
        --dump-snapshot --show-secrets --json \
        > "$TMP/snap.json" 2>"$TMP/snap.err" ||
        fail "$name: client failed: $(cat "$TMP/snap.err")"
    DD_AUTH_TOKEN_FILE_PATH=$run/auth_token \
    DD_IPC_CERT_FILE_PATH=$run/ipc_cert.pem \
        "$DUMP" -c "$TMP/datadog.yaml" --settings --json --show-secrets \
        > "$TMP/dump.json" || fail "$name: configstream-dump failed"
    compare "$TMP/snap.json" "$TMP/dump.json" ||
        fail "$name: the snapshot differs from the store"

    stop_daemon "$name"
    echo "ok $name"
    checked=$((checked + 1))
done

[ "$checked" -ge 8 ] || fail "only $checked fixture files checked"
