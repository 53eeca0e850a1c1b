#!/usr/bin/env bash
# S3 faults, injected by a proxy in front of a real object store (Ceph RGW):
# transient ones (503 SlowDown, 500, a connection reset mid-part, a stalled
# connection) are retried per part and the backup commits with identical
# bytes; a permanent one (403 on every part) fails at once with a clear
# error, the multipart upload aborted, no manifest, the snapshot released.
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
need_btrfs
need_rgw
need_cmd python3

rules=$TEST_TMP/rules.json
plog=$TEST_TMP/proxy.log
echo '[]' >"$rules"
python3 "$SRC_DIR/tests/tools/s3proxy.py" --listen 127.0.0.1:0 --upstream "$RGW_EAST_ENDPOINT" \
	--rules "$rules" --log "$plog" --pidfile "$TEST_TMP/proxy.pid" --portfile "$TEST_TMP/proxy.port" &
proxy=$!
trap 'kill "$proxy" 2>/dev/null; wait "$proxy" 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$TEST_TMP/proxy.port" ] && break; sleep 0.1; done
[ -s "$TEST_TMP/proxy.port" ] || fail "the fault proxy did not start"

export SNAPSHIP_S3_ENDPOINT=http://127.0.0.1:$(cat "$TEST_TMP/proxy.port")
export AWS_ACCESS_KEY_ID=$RGW_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$RGW_SECRET_ACCESS_KEY
export AWS_REGION=$RGW_REGION
export SNAPSHIP_S3_STALL_TIMEOUT=3      # a stalled request gives up after 3 s
state=$TEST_TMP/state
S=("$SNAPSHIP" --state-dir "$state")
prefix="faults-$$/"
store="s3://$RGW_BUCKET/$prefix"

part=$(mk_subvol part)
"$GENDATA" "$part" --json-bytes 120M --json-file-size 16M --small-files 100 >/dev/null

# ---- transient faults: the backup still commits ------------------------------
cat >"$rules" <<'JSON'
[{"method": "PUT", "regex": "[?&]partNumber=1(&|$)", "nth": [1], "action": "status", "status": 503, "code": "SlowDown"},
 {"method": "PUT", "regex": "[?&]partNumber=2(&|$)", "nth": [1], "action": "status", "status": 500, "code": "InternalError"},
 {"method": "PUT", "regex": "[?&]partNumber=2(&|$)", "nth": [2], "action": "reset"},
 {"method": "PUT", "regex": "[?&]partNumber=3(&|$)", "nth": [1], "action": "stall", "seconds": 8}]
JSON
t0=$(date +%s)
# --full: the faults hit a data stream of many parts, which an incremental would not have
out=$("${S[@]}" backup --full "$part" --to "$store" --json 2>"$TEST_TMP/err") ||
	{ cat "$TEST_TMP/err"; fail "backup did not survive transient faults"; }
cat "$TEST_TMP/err"
echo "backup with faults took $(( $(date +%s) - t0 )) s"
grep -q '"action": "status"' "$plog" || fail "the proxy injected no status fault (rules did not match?)"
grep -q '"action": "reset"' "$plog" || fail "the proxy injected no reset"
grep -q '"action": "stall"' "$plog" || fail "the proxy injected no stall"
# ---- restore through transient faults on the data reads -----------------------
# A 503 on the first ranged read of the data and a reset of the second: the
# store retries them and the restore comes out identical.  The data is read
# ahead in ranges of several whole frames, not one request per frame.
cat >"$rules" <<'JSON'
[{"method": "GET", "contains": "data.tar.zst", "nth": [1], "action": "status", "status": 503, "code": "SlowDown"},
 {"method": "GET", "contains": "data.tar.zst", "nth": [3], "action": "reset"}]
JSON
: >"$plog"
"${S[@]}" restore part --from "$store" --to "$TEST_BTRFS/restored" >/dev/null || fail "restore failed"
assert_trees_equal "$part" "$TEST_BTRFS/restored"
grep -q '"action": "status"' "$plog" || fail "the proxy injected no fault into the restore's reads"
grep -q '"action": "reset"' "$plog" || fail "the proxy reset no read of the restore"
echo '[]' >"$rules"
# 120 MiB of data is about 30 frames of 4 MiB; whole-frame ranges of up to
# 8 MiB compressed need a handful of reads (plus the seek table and retries)
reads=$(grep '"method": "GET"' "$plog" | grep 'data.tar.zst' | grep -c '"status": 206' || true)
frames=$(( $(du -sb --apparent-size "$part" | cut -f1) / (4 << 20) ))
echo "restore: $reads ranged reads of the data for about $frames frames"
[ "$reads" -ge 1 ] || fail "no ranged read of the data was logged"
[ "$reads" -le $((frames / 3)) ] || fail "the restore read the data in $reads requests for about $frames frames (no read-ahead?)"
# a permanent refusal of the data's second block (no other copy): the restore
# fails with the store's own reason, whichever frame reports it first
cat >"$rules" <<'JSON'
[{"method": "GET", "contains": "data.tar.zst", "range_regex": "^bytes=[1-9]", "range_min": 1048576, "action": "status", "status": 403, "code": "AccessDenied"}]
JSON
rc=0
"${S[@]}" restore part --from "$store" --to "$TEST_BTRFS/refused" >"$TEST_TMP/out" 2>&1 || rc=$?
echo '[]' >"$rules"
cat "$TEST_TMP/out"
[ "$rc" = 1 ] || fail "a restore whose data read is refused exited $rc"
grep -q '"status": 403' "$plog" || fail "the proxy refused no read of the data (rules did not match?)"
grep -q 'AccessDenied' "$TEST_TMP/out" || fail "the error does not give the store's reason: $(cat "$TEST_TMP/out")"
grep -q 'data.tar.zst' "$TEST_TMP/out" || fail "the error does not name the object: $(cat "$TEST_TMP/out")"
"${S[@]}" verify --from "$store" --deep >/dev/null || fail "verify --deep fails after faults"

# ---- a permanent fault: clear error, upload aborted, nothing visible ---------
echo '[{"method": "PUT", "contains": "partNumber=", "action": "status", "status": 403, "code": "AccessDenied"}]' >"$rules"
before=$("${S[@]}" list --from "$store" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
set +e
"${S[@]}" backup --full "$part" --to "$store" >"$TEST_TMP/out" 2>"$TEST_TMP/err"
rc=$?
set -e
cat "$TEST_TMP/err"
[ "$rc" = 1 ] || fail "a permanent fault: exit $rc, expected 1"
grep -q 'AccessDenied' "$TEST_TMP/err" || fail "the error does not name the S3 error code"
grep -qi '403' "$TEST_TMP/err" || fail "the error does not give the HTTP status"
attempts=$(grep -c '"status": 403' "$plog" || true)
[ "$attempts" -le 6 ] || fail "a permanent 403 was retried $attempts times"
echo '[]' >"$rules"
after=$("${S[@]}" list --from "$store" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$before" = "$after" ] || fail "a failed backup became visible ($before -> $after backups)"
left=$(RGW_S3=$RGW_S3 python3 "$SRC_DIR/tests/tools/s3uploads.py" "$RGW_EAST_ENDPOINT" "$RGW_BUCKET" "$prefix")
[ -z "$left" ] || fail "the failed multipart upload was not aborted: $left"
no_snapship_snapshots "$TEST_BTRFS"
[ -z "$(ls -A "$state/journal" 2>/dev/null)" ] || fail "journal entries left"
echo "s3 faults ok"
