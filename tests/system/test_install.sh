#!/usr/bin/env bash
# cmake --install puts every program where configstreamd and deploy/ look
# for them: side by side in <prefix>/bin. The installed configstreamd then
# starts the whole group from there.
#
# usage: test_install.sh BUILD_DIR
set -u

. "$(dirname "$0")/lib.sh"

BUILD=$1
TMP=$(mktemp -d /tmp/cs-install-XXXXXX)
DPID=
trap '[ -n "$DPID" ] && kill -KILL "$DPID" 2>/dev/null; rm -rf "$TMP"' EXIT

fail() {
    echo "FAIL: $*" >&2
    tail -n 20 "$TMP/log" >&2 2>/dev/null
    exit 1
}

cmake --install "$BUILD" --prefix "$TMP/prefix" >/dev/null ||
    fail "cmake --install"

for p in configstreamd configstream-broker configstream-resolver \
         configstream-frontend configstream-ctl configstream-dump \
         config-stream-client; do
    [ -x "$TMP/prefix/bin/$p" ] || fail "$p is not installed"
done
[ -f "$TMP/prefix/share/doc/configstream/README.md" ] ||
    fail "the README the units point to is not installed"

PORT=$(free_port)
cat > "$TMP/datadog.yaml" <<EOF
run_path: $TMP/run
cmd_host: 127.0.0.1
cmd_port: $PORT
config_stream:
  workers: 1
  telemetry_address: ""
EOF

# Run from a directory that is not the build tree, with no PATH to it.
(cd / && PATH=/usr/bin:/bin exec "$TMP/prefix/bin/configstreamd" \
    -c "$TMP/datadog.yaml") 2>"$TMP/log" &
DPID=$!
wait_for 20 grep -q "ready: 1 frontends" "$TMP/log" ||
    fail "the installed configstreamd did not start the group"

stop_daemon "the installed configstreamd"

# A program missing from the installation is fatal, not worth a respawn.
rm "$TMP/prefix/bin/configstream-broker"
(cd / && PATH=/usr/bin:/bin exec "$TMP/prefix/bin/configstreamd" \
    -c "$TMP/datadog.yaml") 2>"$TMP/log"
rc=$?
[ "$rc" = 78 ] || fail "configstreamd without its broker exited $rc"
grep -q "cannot find configstream-broker" "$TMP/log" ||
    fail "no message for the missing broker"
echo "ok"
