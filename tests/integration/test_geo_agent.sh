#!/usr/bin/env bash
# Geo-redundancy with snapship uploading to every region itself
# (replication = agent), on two independent buckets of the harness:
#  - one pass: both regions hold identical objects, and the snapshot was
#    read once (the loop device's read counter)
#  - one region's copy overwritten with other bytes: verify names the object
#    and the region; restore takes the good copy (failing over when the bad
#    one is the primary's); repair fixes it
#  - the secondary unreachable: the backup commits on the primary, at risk;
#    require_geo = yes: it fails cleanly
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
need_btrfs
need_rgw

export SNAPSHIP_S3_MAX_ATTEMPTS=3
state=$TEST_TMP/state
prefix="agent-$$/"
sv=$(mk_subvol ag-part)
"$GENDATA" "$sv" --json-bytes 48M --json-file-size 16M --small-files 300 >/dev/null

# conf B_ENDPOINT [REQUIRE_GEO [A_ENDPOINT]]
conf() {
	cat >"$TEST_TMP/snapship.conf" <<EOF
[agent]
state_dir = $state
host = aghost
require_geo = ${2:-no}
# every backup a full: this test faults the data stream's parts
max_chain = 0

[partition ag-part]
path = $sv

[region a]
store = s3
endpoint = ${3:-$RGW_EAST_ENDPOINT}
bucket = $RGW_BUCKET
prefix = $prefix
sigv4_region = $RGW_REGION
access_key_id = $RGW_ACCESS_KEY_ID
secret_access_key_file = $RGW_SECRET_ACCESS_KEY_FILE
primary = yes

[region b]
store = s3
endpoint = $1
bucket = $RGW_BUCKET_B
prefix = $prefix
sigv4_region = $RGW_REGION
access_key_id = $RGW_ACCESS_KEY_ID
secret_access_key_file = $RGW_SECRET_ACCESS_KEY_FILE
replication = agent
EOF
}
S=("$SNAPSHIP" --config "$TEST_TMP/snapship.conf")
jget() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
key() { echo "${prefix}aghost/ag-part/$1/$2"; }
url_a() { echo "$RGW_EAST_ENDPOINT/$RGW_BUCKET/$(key "$1" "$2")"; }
url_b() { echo "$RGW_EAST_ENDPOINT/$RGW_BUCKET_B/$(key "$1" "$2")"; }

# sectors read from the loop device under the test filesystem
dev=$(findmnt -no SOURCE --target "$TEST_BTRFS")
dev=$(basename "$dev")
sectors_read() { awk '{ print $3 }' "/sys/block/$dev/stat"; }

conf "$RGW_EAST_ENDPOINT"
"${S[@]}" config check >/dev/null || fail "config check: $("${S[@]}" config check 2>&1)"

# ---- 1. one pass, two regions, identical objects, one read -----------------
logical=$(du -sb --apparent-size "$sv" | cut -f1)
sync
echo 3 >/proc/sys/vm/drop_caches
r0=$(sectors_read)
out=$("${S[@]}" backup --json) || fail "backup failed: $out"
r1=$(sectors_read)
read_bytes=$(((r1 - r0) * 512))
id=$(jget 'd[0]["backup_id"]' <<<"$out")
[ "$(jget 'd[0]["geo"]' <<<"$out")" = geo-protected ] || fail "not geo-protected: $out"
for obj in data.tar.zst index.jsonl.zst manifest.json; do
	python3 "$RGW_S3" get "$(url_a "$id" $obj)" "$TEST_TMP/a" || fail "$obj missing in a"
	python3 "$RGW_S3" get "$(url_b "$id" $obj)" "$TEST_TMP/b" || fail "$obj missing in b"
	cmp -s "$TEST_TMP/a" "$TEST_TMP/b" || fail "$obj differs between a and b"
done
# read once: the device delivered about the data once (metadata on top),
# not twice
echo "-- 1: $id in a and b, identical; read $read_bytes bytes from the device for $logical bytes of files"
[ "$read_bytes" -gt $((logical / 2)) ] || fail "read only $read_bytes bytes of $logical: the measure is broken"
[ "$read_bytes" -lt $((logical * 3 / 2)) ] || fail "read $read_bytes bytes for $logical: the snapshot was read more than once"
no_snapship_snapshots "$TEST_BTRFS"

# ---- 2. b's copy overwritten with other bytes -----------------------------
python3 "$RGW_S3" get "$(url_a "$id" data.tar.zst)" "$TEST_TMP/good"
size=$(stat -c %s "$TEST_TMP/good")
head -c "$size" /dev/urandom >"$TEST_TMP/evil"
python3 "$RGW_S3" put "$(url_b "$id" data.tar.zst)" "$TEST_TMP/evil"
rc=0
"${S[@]}" verify >"$TEST_TMP/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "verify with a corrupt copy exited $rc: $(cat "$TEST_TMP/out")"
grep -E "$id +b +corrupt .*data.tar.zst" "$TEST_TMP/out" >/dev/null ||
	fail "verify does not name the object and region: $(cat "$TEST_TMP/out")"
grep -E "$id +a +ok" "$TEST_TMP/out" >/dev/null || fail "verify blames a too: $(cat "$TEST_TMP/out")"
"${S[@]}" list | grep "$id" | grep -q "at risk" || fail "list does not say at risk: $("${S[@]}" list)"
"${S[@]}" restore ag-part --to "$TEST_BTRFS/r1" >/dev/null 2>"$TEST_TMP/err" || fail "restore failed: $(cat "$TEST_TMP/err")"
assert_trees_equal "$sv" "$TEST_BTRFS/r1"
"${S[@]}" repair >"$TEST_TMP/out" 2>&1 || fail "repair failed: $(cat "$TEST_TMP/out")"
grep -E "$id +b +repaired" "$TEST_TMP/out" >/dev/null || fail "repair does not say it fixed b: $(cat "$TEST_TMP/out")"
python3 "$RGW_S3" get "$(url_b "$id" data.tar.zst)" "$TEST_TMP/b"
cmp -s "$TEST_TMP/good" "$TEST_TMP/b" || fail "repair did not restore b's bytes"
"${S[@]}" verify --deep >"$TEST_TMP/out" 2>&1 || fail "verify --deep after repair: $(cat "$TEST_TMP/out")"
"${S[@]}" list | grep "$id" | grep -q geo-protected || fail "not geo-protected after repair"
echo "-- 2: corrupt copy in b found, restore from a, repaired"

# ---- 3. the primary's copy corrupted: restore fails over to b --------------
python3 "$RGW_S3" put "$(url_a "$id" data.tar.zst)" "$TEST_TMP/evil"
"${S[@]}" restore ag-part --to "$TEST_BTRFS/r2" >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
	fail "restore with a corrupt primary copy failed: $(cat "$TEST_TMP/err")"
grep -q "region a.*corrupt" "$TEST_TMP/err" || fail "restore does not say a's copy is corrupt: $(cat "$TEST_TMP/err")"
grep -q "failed over.*region b" "$TEST_TMP/err" || fail "restore does not say it failed over: $(cat "$TEST_TMP/err")"
assert_trees_equal "$sv" "$TEST_BTRFS/r2"
# --region a forces the bad copy: a clear failure, nothing silently wrong
rc=0
"${S[@]}" restore ag-part --region a --to "$TEST_BTRFS/r3" >"$TEST_TMP/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "restore --region a of a corrupt copy exited $rc"
grep -q "corrupt" "$TEST_TMP/out" || fail "restore --region a: $(cat "$TEST_TMP/out")"
"${S[@]}" repair >"$TEST_TMP/out" 2>&1 || fail "repair of a failed: $(cat "$TEST_TMP/out")"
grep -E "$id +a +repaired" "$TEST_TMP/out" >/dev/null || fail "repair does not say it fixed a: $(cat "$TEST_TMP/out")"
"${S[@]}" verify >/dev/null 2>&1 || fail "verify after repairing a"
echo "-- 3: corrupt primary copy: restore failed over to b; repaired"

# ---- 4. b unreachable: committed on a, at risk; require_geo fails ----------
conf "http://127.0.0.1:9"          # nothing listens on the discard port
out=$("${S[@]}" backup --json 2>"$TEST_TMP/err") || fail "backup with b down failed: $(cat "$TEST_TMP/err")"
id4=$(jget 'd[0]["backup_id"]' <<<"$out")
[ "$(jget 'd[0]["geo"]' <<<"$out")" = "at risk" ] || fail "not at risk: $out"
grep -q "region b" "$TEST_TMP/err" || fail "no warning names region b: $(cat "$TEST_TMP/err")"
python3 "$RGW_S3" head "$(url_a "$id4" manifest.json)" >/dev/null || fail "not committed on a"
no_snapship_snapshots "$TEST_BTRFS"
conf "http://127.0.0.1:9" yes
before=$(python3 "$RGW_S3" ls "$RGW_EAST_ENDPOINT/$RGW_BUCKET" | grep -c "^${prefix}" || true)
rc=0
"${S[@]}" backup >"$TEST_TMP/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "require_geo backup with b down exited $rc: $(cat "$TEST_TMP/out")"
grep -q "require_geo.*region b" "$TEST_TMP/out" || fail "the error does not say why: $(cat "$TEST_TMP/out")"
after=$(python3 "$RGW_S3" ls "$RGW_EAST_ENDPOINT/$RGW_BUCKET" | grep -c "^${prefix}" || true)
[ "$before" = "$after" ] || fail "require_geo failure left objects in a ($before -> $after)"
no_snapship_snapshots "$TEST_BTRFS"
# b back: repair brings id4 there
conf "$RGW_EAST_ENDPOINT"
"${S[@]}" repair >"$TEST_TMP/out" 2>&1 || fail "repair after b came back: $(cat "$TEST_TMP/out")"
grep -E "$id4 +b +repaired" "$TEST_TMP/out" >/dev/null || fail "repair did not copy $id4 to b: $(cat "$TEST_TMP/out")"
"${S[@]}" list | grep "$id4" | grep -q geo-protected || fail "$id4 not geo-protected after repair"
echo "-- 4: b down: at risk, require_geo fails cleanly, repair brings it back"

# ---- 5. b fails in the middle of the upload (a permanent 403 on part 2) ----
# b is dropped (its multipart upload aborted), a commits, the backup is at
# risk; with require_geo the whole backup fails and nothing stays anywhere
rules=$TEST_TMP/rules.json
echo '[{"method": "PUT", "regex": "[?&]partNumber=2(&|$)", "action": "status", "status": 403, "code": "AccessDenied"}]' >"$rules"
python3 "$SRC_DIR/tests/tools/s3proxy.py" --listen 127.0.0.1:0 --upstream "$RGW_EAST_ENDPOINT" \
	--rules "$rules" --log "$TEST_TMP/proxy.log" --portfile "$TEST_TMP/proxy.port" &
proxy=$!
trap 'kill "$proxy" 2>/dev/null; wait "$proxy" 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$TEST_TMP/proxy.port" ] && break; sleep 0.1; done
[ -s "$TEST_TMP/proxy.port" ] || fail "the fault proxy did not start"
conf "http://127.0.0.1:$(cat "$TEST_TMP/proxy.port")"
out=$("${S[@]}" backup --json 2>"$TEST_TMP/err") || fail "backup with b failing midway: $(cat "$TEST_TMP/err")"
id5=$(jget 'd[0]["backup_id"]' <<<"$out")
[ "$(jget 'd[0]["geo"]' <<<"$out")" = "at risk" ] || fail "not at risk: $out"
grep -q "region b: .*AccessDenied.*the backup goes on without it" "$TEST_TMP/err" ||
	fail "no warning that b was dropped: $(cat "$TEST_TMP/err")"
python3 "$RGW_S3" head "$(url_a "$id5" manifest.json)" >/dev/null || fail "not committed on a"
python3 "$RGW_S3" head "$(url_b "$id5" data.tar.zst)" >/dev/null 2>&1 && fail "a partial object of b is visible"
left=$(RGW_S3=$RGW_S3 python3 "$SRC_DIR/tests/tools/s3uploads.py" "$RGW_EAST_ENDPOINT" "$RGW_BUCKET_B" "$prefix")
[ -z "$left" ] || fail "b's multipart upload was not aborted: $left"
no_snapship_snapshots "$TEST_BTRFS"
conf "http://127.0.0.1:$(cat "$TEST_TMP/proxy.port")" yes
before=$(python3 "$RGW_S3" ls "$RGW_EAST_ENDPOINT/$RGW_BUCKET" | grep -c "^${prefix}" || true)
rc=0
"${S[@]}" backup >"$TEST_TMP/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "require_geo with b failing midway exited $rc: $(cat "$TEST_TMP/out")"
grep -q "region b" "$TEST_TMP/out" || fail "the error does not name b: $(cat "$TEST_TMP/out")"
after=$(python3 "$RGW_S3" ls "$RGW_EAST_ENDPOINT/$RGW_BUCKET" | grep -c "^${prefix}" || true)
[ "$before" = "$after" ] || fail "require_geo failure left objects in a ($before -> $after)"
for bk in "$RGW_BUCKET" "$RGW_BUCKET_B"; do
	left=$(RGW_S3=$RGW_S3 python3 "$SRC_DIR/tests/tools/s3uploads.py" "$RGW_EAST_ENDPOINT" "$bk" "$prefix")
	[ -z "$left" ] || fail "multipart uploads left in $bk: $left"
done
no_snapship_snapshots "$TEST_BTRFS"
# b refuses only the manifest: the backup was committed on a, and is rolled
# back there (manifest first), with its replication state
echo '[{"method": "PUT", "contains": "manifest.json", "action": "status", "status": 403, "code": "AccessDenied"}]' >"$rules"
nstate=$(find "$state/geo" -name '*.json' | wc -l)
rc=0
"${S[@]}" backup >"$TEST_TMP/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "require_geo with b refusing the manifest exited $rc: $(cat "$TEST_TMP/out")"
grep -q "require_geo.*region b could not take the manifest" "$TEST_TMP/out" || fail "error: $(cat "$TEST_TMP/out")"
after=$(python3 "$RGW_S3" ls "$RGW_EAST_ENDPOINT/$RGW_BUCKET" | grep -c "^${prefix}" || true)
[ "$before" = "$after" ] || fail "the rolled-back backup left objects in a ($before -> $after)"
[ "$(find "$state/geo" -name '*.json' | wc -l)" = "$nstate" ] || fail "the rolled-back backup left its replication state"
no_snapship_snapshots "$TEST_BTRFS"
echo "-- 5: b failing midway: dropped and aborted (at risk); require_geo: nothing left, also after a commit"

# ---- 6. a's reads go bad during a restore ----------------------------------
# Through the proxy, a's first data read (the read-ahead's first block) comes
# back with damaged bytes near its end and its second is refused.  The
# second block is read from b from then on, and the damaged frame of the
# first block must be taken from the copy after the one it came from
# (a -> b).  When the refusal comes before the frame is decoded (about half
# the runs here), code that counted from the current copy (b -> none) fails
# this restore; when it comes after, both orders must work anyway.
cat >"$rules" <<'JSON'
[{"method": "GET", "contains": "data.tar.zst", "range_regex": "^bytes=0-", "range_min": 1048576, "action": "corrupt", "at": 0.9},
 {"method": "GET", "contains": "data.tar.zst", "range_regex": "^bytes=[1-9]", "range_min": 1048576, "action": "status", "status": 403, "code": "AccessDenied"}]
JSON
: >"$TEST_TMP/proxy.log"
conf "$RGW_EAST_ENDPOINT" no "http://127.0.0.1:$(cat "$TEST_TMP/proxy.port")"
"${S[@]}" restore ag-part --id "$id" --to "$TEST_BTRFS/r6" >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
	fail "restore with a's reads going bad: $(cat "$TEST_TMP/err")"
cat "$TEST_TMP/err"
grep -q '"action": "corrupt"' "$TEST_TMP/proxy.log" || fail "the proxy damaged no read of a (rules did not match?)"
grep -q '"status": 403' "$TEST_TMP/proxy.log" || fail "the proxy refused no read of a (rules did not match?)"
grep -q "region a: .*the frame at byte [0-9]* is corrupt; taking it from region b" "$TEST_TMP/err" ||
	fail "restore does not say it took the damaged frame from b: $(cat "$TEST_TMP/err")"
grep -q "reading the rest from region b" "$TEST_TMP/err" ||
	fail "restore does not say it went on from b: $(cat "$TEST_TMP/err")"
assert_trees_equal "$sv" "$TEST_BTRFS/r6"
echo '[]' >"$rules"
echo "-- 6: a's reads damaged, then refused, mid-restore: the frame from b, the rest from b"
echo "PASS"
