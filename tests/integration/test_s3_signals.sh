#!/usr/bin/env bash
# SIGTERM in the middle of a multipart upload to S3 (Ceph RGW behind the
# fault proxy, issue 11 item 1): a part whose answer the proxy holds back
# for 60 s is cancelled at once (not waited for), the multipart upload is
# aborted (AbortMultipartUpload), no object of the backup stays, the
# snapshot is released, one line says so, and the exit status is 143 well
# before the held answer would come; the same for ^C on a pseudo-terminal
# (exit 130).
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"
need_btrfs
need_rgw
need_cmd python3

rules=$TEST_TMP/rules.json
plog=$TEST_TMP/proxy.log
echo '[]' >"$rules"
python3 "$SRC_DIR/tests/tools/s3proxy.py" --listen 127.0.0.1:0 --upstream "$RGW_EAST_ENDPOINT" \
	--rules "$rules" --log "$plog" --pidfile "$TEST_TMP/proxy.pid" --portfile "$TEST_TMP/proxy.port" 2>"$TEST_TMP/proxy.err" &
proxy=$!
cleanup() {
	local sv
	kill "$proxy" 2>/dev/null
	wait "$proxy" 2>/dev/null || true
	for sv in "$TEST_BTRFS"/ss-*; do
		[ -d "$sv" ] && btrfs subvolume delete "$sv" >/dev/null 2>&1
	done
	return 0
}
trap cleanup EXIT
for _ in $(seq 50); do [ -s "$TEST_TMP/proxy.port" ] && break; sleep 0.1; done
[ -s "$TEST_TMP/proxy.port" ] || fail "the fault proxy did not start"

export SNAPSHIP_S3_ENDPOINT=http://127.0.0.1:$(cat "$TEST_TMP/proxy.port")
export AWS_ACCESS_KEY_ID=$RGW_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$RGW_SECRET_ACCESS_KEY
export AWS_REGION=$RGW_REGION
# 5 MiB parts, one in flight: while part 2 is held the writer waits for a
# free slot (the stream itself is blocked), the hardest place to stop; or,
# if the stream ended first, the data object's commit waits for it (then
# both, data and index, are still the unfinished uploads it aborts)
export SNAPSHIP_S3_PART_SIZE=5M SNAPSHIP_S3_PARTS_IN_FLIGHT=1
state=$TEST_TMP/state
S=("$SNAPSHIP" --state-dir "$state")
# sigrun HOW [OPTIONS] -- ARGS...: run ARGS, signal them once the proxy
# holds a request (tests/tools/sigrun.py); prints "rc seconds held"
sigrun() {
	local how=$1
	shift
	python3 "$SRC_DIR/tests/tools/sigrun.py" --when-log "$plog" '"action": "stall"' "$how" "$@"
}
prefix="signals-$$/"
store="s3://$RGW_BUCKET/$prefix"

part=$(mk_subvol ss-part)
"$GENDATA" "$part" --json-bytes 160M --json-file-size 8M --small-files 50 --seed 3 >/dev/null

# part 2 of the data: read, then no answer for 60 s
cat >"$rules" <<'JSON'
[{"method": "PUT", "regex": "[?&]partNumber=2(&|$)", "action": "stall", "seconds": 60}]
JSON
read -r rc secs held < <(sigrun term --delay 0.5 --out "$TEST_TMP/out" --err "$TEST_TMP/err" \
	-- "${S[@]}" backup "$part" --to "$store")
[ "$held" = 1 ] || fail "the upload never reached part 2 (rules did not match?)"
echo '[]' >"$rules"
echo "-- SIGTERM mid multipart upload: exit $rc after ${secs}s: $(cat "$TEST_TMP/err")"
[ "$rc" = 143 ] || fail "exit $rc, expected 143"
python3 -c "import sys; sys.exit(float(sys.argv[1]) > 30)" "$secs" ||
	fail "took ${secs}s to stop: the held part was waited for"
[ "$(grep -c . "$TEST_TMP/err")" = 1 ] || fail "expected one line on stderr"
grep -qE "interrupted \(SIGTERM\): backup of ss-part cancelled in its upload phase: 2 unfinished uploads aborted.*snapshot released; nothing committed" "$TEST_TMP/err" ||
	fail "the line does not say what was undone"
grep -q '"method": "DELETE".*uploadId' "$plog" || fail "no AbortMultipartUpload was sent"

# s3_nothing_left WHAT: no multipart upload, no object of the backup, no
# snapshot, no journal entry, and list shows no backup
s3_nothing_left() {
	local what=$1 left objects
	left=$(RGW_S3=$RGW_S3 python3 "$SRC_DIR/tests/tools/s3uploads.py" "$RGW_EAST_ENDPOINT" "$RGW_BUCKET" "$prefix")
	[ -z "$left" ] || fail "$what: multipart uploads left in the bucket: $left"
	objects=$(RGW_S3=$RGW_S3 python3 - "$RGW_EAST_ENDPOINT" "$RGW_BUCKET" "$prefix" <<-'EOF'
		import importlib.util, os, sys, urllib.parse
		import xml.etree.ElementTree as ET
		spec = importlib.util.spec_from_file_location("s3", os.environ["RGW_S3"])
		s3 = importlib.util.module_from_spec(spec)
		spec.loader.exec_module(s3)
		endpoint, bucket, prefix = sys.argv[1:4]
		r = s3.request("GET", f"{endpoint.rstrip('/')}/{bucket}/?list-type=2&prefix=" +
		               urllib.parse.quote(prefix, safe=""))
		body = r.read()
		if r.status // 100 != 2:
		    sys.exit(f"list: HTTP {r.status}: {body[:300]!r}")
		ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
		for c in ET.fromstring(body).iter(ns + "Contents"):
		    print(c.findtext(ns + "Key"))
	EOF
	)
	[ -z "$objects" ] || fail "$what: objects of the cancelled backup stay: $objects"
	no_snapship_snapshots "$TEST_BTRFS"
	[ -z "$(ls -A "$state/journal" 2>/dev/null)" ] || fail "$what: journal entries left"
	"${S[@]}" list --from "$store" 2>&1 | grep -q "no backups of" || fail "$what: list shows a backup"
}
s3_nothing_left "SIGTERM"

# ---- ^C on a terminal (the tty driver sends SIGINT) mid multipart upload ----

cat >"$rules" <<'JSON'
[{"method": "PUT", "regex": "[?&]partNumber=2(&|$)", "action": "stall", "seconds": 60}]
JSON
: >"$plog"
read -r rc secs held < <(sigrun tty-int --delay 0.5 --out /dev/null --err "$TEST_TMP/tty.out" \
	-- "${S[@]}" backup "$part" --to "$store")
echo '[]' >"$rules"
echo "-- ^C on a pty mid multipart upload: exit $rc after ${secs}s: $(tr -d '\r' <"$TEST_TMP/tty.out")"
[ "$held" = 1 ] || fail "^C: the upload never reached part 2 (rules did not match?)"
[ "$rc" = 130 ] || fail "^C: exit $rc, expected 130"
python3 -c "import sys; sys.exit(float(sys.argv[1]) > 30)" "$secs" ||
	fail "^C: took ${secs}s to stop: the held part was waited for"
grep -qE "interrupted \(SIGINT\): backup of ss-part cancelled in its upload phase: .*snapshot released; nothing committed" "$TEST_TMP/tty.out" ||
	fail "^C: the line does not say what was undone"
s3_nothing_left "^C"

# ---- restore and verify --deep with a data read held back: stop at once -----

"${S[@]}" backup "$part" --to "$store" >/dev/null 2>"$TEST_TMP/err" ||
	fail "the backup after the interrupted one failed: $(cat "$TEST_TMP/err")"
cat >"$rules" <<'JSON'
[{"method": "GET", "contains": "data.tar.zst", "range_min": 1048576, "action": "stall", "seconds": 60}]
JSON
# held_run WHAT ARGS...: run snapship ARGS, SIGTERM it once the proxy holds a
# read; sets rc and secs
held_run() {
	local what=$1 held
	shift
	: >"$plog"
	read -r rc secs held < <(sigrun term --out "$TEST_TMP/out" --err "$TEST_TMP/err" -- "${S[@]}" "$@")
	[ "$held" = 1 ] || fail "$what: no read was held (rules did not match?)"
	echo "-- $what, SIGTERM during a held read: exit $rc after ${secs}s: $(cat "$TEST_TMP/err")"
	[ "$rc" = 143 ] || fail "$what: exit $rc, expected 143"
	python3 -c "import sys; sys.exit(float(sys.argv[1]) > 30)" "$secs" ||
		fail "$what: took ${secs}s to stop: the held read was waited for"
	[ "$(grep -c . "$TEST_TMP/err")" = 1 ] || fail "$what: expected one line on stderr"
}
t=$TEST_BTRFS/ss-restore
held_run restore restore ss-part --from "$store" --to "$t"
grep -qE "interrupted \(SIGTERM\): restore of backup .* of ss-part cancelled after [0-9]+ entries.*$t" "$TEST_TMP/err" ||
	fail "restore: the message does not name the target and what it leaves"
held_run "verify --deep" verify --from "$store" --deep
grep -qE "interrupted \(SIGTERM\): verify cancelled after 0 of 1 backups; the others were not checked" "$TEST_TMP/err" ||
	fail "verify: the message does not say what was not checked"
echo '[]' >"$rules"
echo "s3 signals ok"
