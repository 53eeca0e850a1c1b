#!/usr/bin/env bash
# Log lines for journald and log shippers (issue 12 item 1, systemd):
#  - when JOURNAL_STREAM names stderr's device:inode (as systemd sets it
#    for a unit whose stderr is the journal), each line starts with its
#    syslog priority, <3> for an error; not when it names another file;
#  - --log-format json: one JSON object per line with time, level and msg,
#    and partition for a line about one; with the journal too;
#  - a bad --log-format is a usage error (exit 2);
#  - no secret in any line, even at debug level (-v -v) with an S3 store
#    that cannot be reached.
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
need_cmd python3 stat

L=$TEST_TMP/log
# run_logged FILE CMD...: CMD with stderr to FILE, JOURNAL_STREAM naming FILE
run_logged() {
	local f=$1 rc=0 js
	shift
	: >"$f"
	js=$(stat -c %d:%i "$f")
	JOURNAL_STREAM=$js "$@" 2>>"$f" >/dev/null || rc=$?
	return "$rc"
}

# the journal: an error line with priority 3
if run_logged "$L" "$SNAPSHIP" --state-dir "$TEST_TMP/st" list --from "$TEST_TMP/no-store"; then
	fail "list from a missing store succeeded"
fi
grep -q '^<3>snapship: error: ' "$L" || fail "no <3> error line with JOURNAL_STREAM set: $(cat "$L")"
if grep -qv '^<[0-7]>' "$L"; then fail "a line without a priority: $(cat "$L")"; fi
# another file's dev:ino: plain lines
: >"$L"
JOURNAL_STREAM=$(stat -c %d:%i "$SNAPSHIP") "$SNAPSHIP" --state-dir "$TEST_TMP/st" \
	list --from "$TEST_TMP/no-store" 2>"$L" >/dev/null || true
grep -q '^snapship: error: ' "$L" || fail "JOURNAL_STREAM of another file: no plain error line: $(cat "$L")"
if grep -q '^<' "$L"; then fail "JOURNAL_STREAM of another file: a priority prefix: $(cat "$L")"; fi

# json, about a partition
mkdir -p "$TEST_TMP/a"
cat >"$TEST_TMP/snapship.conf" <<CONF
[agent]
state_dir = $TEST_TMP/st
host = lhost
[partition gone]
path = $TEST_TMP/nowhere/gone
[region a]
store = file
path = $TEST_TMP/a
CONF
if "$SNAPSHIP" --config "$TEST_TMP/snapship.conf" --log-format json backup 2>"$L" >/dev/null; then
	fail "the backup of a missing partition succeeded"
fi
python3 - "$L" <<'PY' || fail "--log-format json: $(cat "$L")"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert lines, "no log lines"
about = []
for line in lines:
    o = json.loads(line)
    assert {"time", "level", "msg"} <= set(o), "missing keys in %r" % o
    assert o["level"] in ("error", "warning", "info", "debug"), o
    assert o["time"].endswith("Z") and "T" in o["time"], o
    about += [o] if o.get("partition") == "gone" and o["level"] == "error" else []
assert about, "no error line with partition gone"
print("json lines: %d, about gone: %d" % (len(lines), len(about)))
PY
# json into the journal: the prefix, then the object
if run_logged "$L" "$SNAPSHIP" --log-format=json --state-dir "$TEST_TMP/st" list --from "$TEST_TMP/no-store"; then
	fail "list from a missing store succeeded"
fi
python3 - "$L" <<'PY' || fail "json with JOURNAL_STREAM: $(cat "$L")"
import json, sys
for line in open(sys.argv[1]).read().splitlines():
    assert line.startswith("<3>"), line
    assert json.loads(line[3:])["level"] == "error", line
PY

rc=0
"$SNAPSHIP" --log-format yaml list --from "$TEST_TMP/a" >/dev/null 2>"$L" || rc=$?
[ "$rc" = 2 ] || fail "--log-format yaml: exit $rc, expected 2"
# a usage error is a JSON line too
rc=0
"$SNAPSHIP" --log-format json list a b c >/dev/null 2>"$L" || rc=$?
[ "$rc" = 2 ] || fail "list a b c: exit $rc, expected 2"
python3 -c 'import json,sys; o = json.loads(open(sys.argv[1]).read()); assert o["level"] == "error" and "PARTITION" in o["msg"], o' "$L" ||
	fail "--log-format json: a usage error is not one JSON line: $(cat "$L")"

# no secret, at debug level, in either format
SECRET=wJalrXUtnFEMIsecretK7MDENGbPxRfiCYEXAMPLEKEY
for fmt in text json; do
	AWS_ACCESS_KEY_ID=AKIALOGTEST AWS_SECRET_ACCESS_KEY=$SECRET AWS_SESSION_TOKEN=tok$SECRET \
		SNAPSHIP_S3_ENDPOINT=http://127.0.0.1:9 SNAPSHIP_S3_MAX_ATTEMPTS=1 \
		"$SNAPSHIP" -v -v --log-format "$fmt" --state-dir "$TEST_TMP/st" list \
		--from s3://bucket/prefix/ >/dev/null 2>"$L" || true
	[ -s "$L" ] || fail "$fmt: nothing logged by a list that cannot connect"
	if grep -q "$SECRET" "$L"; then fail "$fmt: the secret key is in the log: $(cat "$L")"; fi
done
echo "ok"
