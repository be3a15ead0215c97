#!/bin/sh
# configstream-dump against a seeded store: JSON lines, human output,
# section selection, secret redaction, a writer killed mid-transaction,
# and the exit status and single error line of each failure.
#
# usage: test_dump.sh DUMP_BINARY SEED_BINARY
set -u

dump=$1
seed=$2
tmp=$(mktemp -d /tmp/cs-test-dump-XXXXXX)
holder=

cleanup() {
    if [ -n "$holder" ]; then
        kill -9 "$holder" 2>/dev/null
        wait "$holder" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# expect STATUS ERRLINES CMD...: run CMD, check its exit status and the
# number of lines it wrote to stderr
expect() {
    want=$1
    lines=$2
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    got=$?
    [ "$got" -eq "$want" ] || fail "$* exited $got, expected $want"
    n=$(wc -l <"$tmp/err")
    [ "$n" -eq "$lines" ] ||
        fail "$* wrote $n lines to stderr, expected $lines: $(cat "$tmp/err")"
}

store=$tmp/store
"$seed" "$store" || fail "seeding the store"

# JSON: every line parses; kinds, values, unsets and redaction
expect 0 0 "$dump" --store "$store" --json
python3 - "$tmp/out" <<'PY' || fail "json output"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
kinds = [r["kind"] for r in rows]
assert kinds[0] == "meta", kinds
meta = rows[0]
assert meta["layout"] == 1 and meta["head"] == 10 and meta["oldest"] == 1
assert meta["origin"] == "datadog.yaml" and meta["setting_count"] == 8
assert len(meta["epoch"]) == 32
int(meta["epoch"], 16)
settings = {r["key"]: r for r in rows if r["kind"] == "setting"}
assert list(settings) == sorted(settings), "settings in key order"
assert len(settings) == 8 and "env" not in settings
assert settings["api_key"]["value"] == "********", settings["api_key"]
assert settings["additional_endpoints"]["value"] == \
    {"https://app.example.com": "********"}
assert settings["site"] == {"kind": "setting", "key": "site",
    "source": "file", "value": "datadoghq.eu", "seq": 2}
assert settings["proxy.https"]["value"] is None
assert settings["custom.ratio"]["value"] == "NaN"
assert settings["tags"]["value"] == ["team:core", 'env:"prod"']
layers = [r for r in rows if r["kind"] == "layer"]
assert len(layers) == 8
assert {"kind": "layer", "source": "file", "key": "api_key",
    "value": "********"} in layers
changes = [r for r in rows if r["kind"] == "change"]
assert [c["seq"] for c in changes] == list(range(1, 11))
last = changes[-1]
assert last == {"kind": "change", "seq": 10, "key": "env", "source": "",
    "unset_source": "agent-runtime"}, last
assert "value" not in last
assert not any("abcdef0123456789" in line or "endpointkey" in line
    for line in open(sys.argv[1]))
PY

expect 0 0 "$dump" --store "$store" --json --show-secrets
key=abcdef0123456789abcdef0123456789
grep -q "\"key\":\"api_key\",\"source\":\"file\",\"value\":\"$key\"" \
    "$tmp/out" || fail "--show-secrets prints the api key"
grep -q 'endpointkey0123456789' "$tmp/out" ||
    fail "--show-secrets prints endpoint keys"

# sections
expect 0 0 "$dump" --store "$store" --json --meta
[ "$(wc -l <"$tmp/out")" -eq 1 ] || fail "--meta prints one line"
grep -q '^{"kind":"meta"' "$tmp/out" || fail "--meta prints meta"
expect 0 0 "$dump" --store "$store" --json --changelog --layers
[ "$(grep -c '"kind":"change"' "$tmp/out")" -eq 10 ] || fail "changes"
[ "$(grep -c '"kind":"layer"' "$tmp/out")" -eq 8 ] || fail "layers"
[ "$(wc -l <"$tmp/out")" -eq 18 ] || fail "only the chosen sections"

# human-readable
expect 0 0 "$dump" --store "$store"
for section in meta settings layers changelog; do
    grep -q "^$section\$" "$tmp/out" || fail "human output lacks $section"
done
grep -q 'api_key = "\*\*\*\*\*\*\*\*"' "$tmp/out" ||
    fail "human output redacts api_key"
grep -q abcdef0123456789 "$tmp/out" && fail "human output shows api_key"
grep -q 'env = (none)  (no source, unset from agent-runtime)' "$tmp/out" ||
    fail "human output shows the unset"

# the dump writes nothing to the store
sum=$(cksum <"$store/data.mdb")
expect 0 0 "$dump" --store "$store" --json
[ "$(cksum <"$store/data.mdb")" = "$sum" ] || fail "data.mdb changed"

# a writer holding an open transaction, then killed: nothing of it shows
"$seed" --hold "$store" >"$tmp/hold" 2>&1 &
holder=$!
i=0
while ! grep -q holding "$tmp/hold" 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 100 ] || fail "the holding writer did not start"
    sleep 0.1
done
expect 0 0 "$dump" --store "$store" --json --settings
grep -q uncommitted "$tmp/out" && fail "an open transaction is visible"
kill -9 "$holder"
wait "$holder" 2>/dev/null
holder=
expect 0 0 "$dump" --store "$store" --json
grep -q uncommitted "$tmp/out" && fail "a killed transaction is visible"
grep -q '"head":10' "$tmp/out" || fail "head after the killed writer"

# -c FILE: the store found through the config file's run_path
mkdir -p "$tmp/run/configstream"
cp -r "$store" "$tmp/run/configstream/store"
printf 'run_path: %s\n' "$tmp/run" >"$tmp/datadog.yaml"
expect 0 0 "$dump" -c "$tmp/datadog.yaml" --json --meta
grep -q '"head":10' "$tmp/out" || fail "-c finds the store"
expect 1 1 "$dump" -c "$tmp/nonexistent.yaml"

# no -c: the embedded defaults' store, moved by the environment
DD_RUN_PATH="$tmp/run" expect 0 0 "$dump" --json --meta
grep -q '"head":10' "$tmp/out" || fail "no -c finds the defaults' store"

# usage errors: status 2, one line
expect 2 1 "$dump" --store "$store" --bogus
expect 2 1 "$dump" --store
expect 2 1 "$dump" --store "$store" -c "$tmp/datadog.yaml"
expect 2 1 "$dump" --store "$store" extra
expect 0 0 "$dump" --help
grep -q '^usage: configstream-dump' "$tmp/out" || fail "--help"

# runtime errors: status 1, one line naming the call, nothing on stdout
expect 1 1 "$dump" --store "$tmp/missing"
grep -q '^configstream-dump: cs_store_open: .*missing' "$tmp/err" ||
    fail "missing store message: $(cat "$tmp/err")"
[ ! -s "$tmp/out" ] || fail "output for a missing store"
[ ! -e "$tmp/missing" ] || fail "a read-only open created the directory"
mkdir "$tmp/empty"
expect 1 1 "$dump" --store "$tmp/empty" --json
[ -z "$(ls "$tmp/empty")" ] || fail "a read-only open created files"

echo "ok"
