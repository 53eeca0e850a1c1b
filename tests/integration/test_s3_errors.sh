#!/usr/bin/env bash
# S3 configuration errors against a real object store: wrong secret, unknown
# key id, missing bucket, endpoint down, a clock 20 minutes off.  Each gives
# one clear message naming the region and what to fix, exit 1 (or 2 for a
# usage/config error), no snapshot left, no backup visible.  Also: a secret
# key file readable by others is refused; secrets never reach the output.
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
need_btrfs
need_rgw

state=$TEST_TMP/state
part=$(mk_subvol part)
"$GENDATA" "$part" --json-bytes 1M --json-file-size 1M --small-files 10 >/dev/null
umask 077
printf '%s\n' "$RGW_SECRET_ACCESS_KEY" >"$TEST_TMP/secret"
printf '%s\n' "wrong$RGW_SECRET_ACCESS_KEY" >"$TEST_TMP/wrong-secret"

conf() {   # conf FILE ENDPOINT BUCKET KEYID SECRETFILE
	cat >"$1" <<EOF2
[agent]
state_dir = $state

[partition part]
path = $part

[region east]
store = s3
endpoint = $2
bucket = $3
prefix = errors-$$/
sigv4_region = $RGW_REGION
access_key_id = $4
secret_access_key_file = $5
EOF2
}

# expect WHAT RC WORD... -- CMD...: the command fails with RC and says every WORD
expect() {
	local what=$1 want=$2 rc w
	shift 2
	local words=()
	while [ "$1" != "--" ]; do words+=("$1"); shift; done
	shift
	set +e
	"$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err"
	rc=$?
	set -e
	echo "--- $what (exit $rc):"; cat "$TEST_TMP/err"
	[ "$rc" = "$want" ] || fail "$what: exit $rc, expected $want"
	for w in "${words[@]}"; do
		grep -qi -- "$w" "$TEST_TMP/err" || fail "$what: the message does not say \"$w\""
	done
	! grep -qF "$RGW_SECRET_ACCESS_KEY" "$TEST_TMP/out" "$TEST_TMP/err" ||
		fail "$what: the secret key appears in the output"
	no_snapship_snapshots "$TEST_BTRFS"
	[ -z "$(ls -A "$state/journal" 2>/dev/null)" ] || fail "$what: journal entries left"
}

c=$TEST_TMP/c.conf

conf "$c" "$RGW_EAST_ENDPOINT" "$RGW_BUCKET" "$RGW_ACCESS_KEY_ID" "$TEST_TMP/wrong-secret"
expect "wrong secret" 1 "region east" "SignatureDoesNotMatch" "secret" -- \
	"$SNAPSHIP" --config "$c" backup

conf "$c" "$RGW_EAST_ENDPOINT" "$RGW_BUCKET" "AKIANOSUCHKEY0000000" "$TEST_TMP/secret"
expect "unknown key id" 1 "region east" "InvalidAccessKeyId" "access_key_id" -- \
	"$SNAPSHIP" --config "$c" backup

conf "$c" "$RGW_EAST_ENDPOINT" "no-such-bucket-$$" "$RGW_ACCESS_KEY_ID" "$TEST_TMP/secret"
expect "missing bucket" 1 "region east" "NoSuchBucket" "bucket" -- \
	"$SNAPSHIP" --config "$c" backup

conf "$c" "http://127.0.0.1:1" "$RGW_BUCKET" "$RGW_ACCESS_KEY_ID" "$TEST_TMP/secret"
expect "endpoint down" 1 "region east" "127.0.0.1:1" "connect" -- \
	"$SNAPSHIP" --config "$c" backup

conf "$c" "$RGW_EAST_ENDPOINT" "$RGW_BUCKET" "$RGW_ACCESS_KEY_ID" "$TEST_TMP/secret"
if ldd "$SNAPSHIP" 2>/dev/null | grep -q libasan; then
	echo "note: an ASan build cannot run under faketime (LD_PRELOAD order); the clock-skew case is not run"
elif command -v faketime >/dev/null 2>&1; then
	expect "clock 20 minutes off" 1 "region east" "RequestTimeTooSkewed" "clock" -- \
		faketime -f "+20m" "$SNAPSHIP" --config "$c" backup
else
	echo "note: faketime is not installed; the clock-skew case is not run"
fi

chmod 0644 "$TEST_TMP/secret"
expect "world-readable secret file" 2 "secret" "chmod" -- \
	"$SNAPSHIP" --config "$c" backup
chmod 0600 "$TEST_TMP/secret"

# config check reports every problem in one table, with exit 1
conf "$c" "$RGW_EAST_ENDPOINT" "no-such-bucket-$$" "$RGW_ACCESS_KEY_ID" "$TEST_TMP/secret"
set +e
"$SNAPSHIP" --config "$c" config check >"$TEST_TMP/out" 2>&1
rc=$?
set -e
cat "$TEST_TMP/out"
[ "$rc" != 0 ] || fail "config check passed with a missing bucket"
grep -q "east" "$TEST_TMP/out" && grep -qi "NoSuchBucket\|does not exist" "$TEST_TMP/out" ||
	fail "config check does not name the region and the missing bucket"

# and the good configuration works
conf "$c" "$RGW_EAST_ENDPOINT" "$RGW_BUCKET" "$RGW_ACCESS_KEY_ID" "$TEST_TMP/secret"
"$SNAPSHIP" --config "$c" config check >"$TEST_TMP/out" 2>&1 || { cat "$TEST_TMP/out"; fail "config check fails on a good config"; }
"$SNAPSHIP" --config "$c" backup >/dev/null || fail "backup with the good config failed"
[ "$("$SNAPSHIP" --config "$c" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 1 ] ||
	fail "expected exactly one backup (the failed ones must not be visible)"
echo "s3 errors ok"
