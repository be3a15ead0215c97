#!/bin/bash
# systemd-analyze verify accepts every unit file of deploy/systemd, with
# no warning either (it exits 0 on unknown keys, so its output is checked
# too). Program paths are pointed at stand-in executables of the same
# names, since verify checks that ExecStart= is executable.
#
# usage: test_deploy_systemd.sh DEPLOY_DIR
set -u

DEPLOY=$1
if ! command -v systemd-analyze >/dev/null; then
    echo "SKIP: systemd-analyze not installed (Debian package systemd)"
    exit 77
fi

TMP=$(mktemp -d /tmp/cs-deploy-systemd-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP/bin" "$TMP/units"

for prog in configstreamd configstream-broker configstream-resolver \
            configstream-frontend; do
    printf '#!/bin/sh\nexit 0\n' > "$TMP/bin/$prog"
    chmod +x "$TMP/bin/$prog"
done

cp "$DEPLOY"/systemd/* "$TMP/units/"
sed -i "s#/usr/local/bin/#$TMP/bin/#g" "$TMP/units/"*
# A template is verified through one of its instances.
cp "$TMP/units/configstream-frontend@.service" \
    "$TMP/units/configstream-frontend@0.service"

units=$(ls "$TMP/units" | grep -v '@\.service$' | sed "s#^#$TMP/units/#")
[ "$(echo "$units" | wc -l)" = 5 ] || { echo "FAIL: units: $units"; exit 1; }

out=$(cd "$TMP" && SYSTEMD_UNIT_PATH="$TMP/units:" \
    systemd-analyze verify $units 2>&1)
rc=$?
if [ "$rc" != 0 ] || [ -n "$out" ]; then
    echo "FAIL: systemd-analyze verify (exit $rc):"
    echo "$out"
    exit 1
fi

grep -q '^Type=notify$' "$DEPLOY/systemd/configstreamd.service" ||
    { echo "FAIL: configstreamd.service is not Type=notify"; exit 1; }
grep -q -- '--telemetry' "$DEPLOY/systemd/configstream-broker.service" ||
    { echo "FAIL: the broker unit does not serve telemetry"; exit 1; }
echo "ok"
