#!/usr/bin/env bash
# Issue 15, item 2 (immutability) on Ceph RGW, zone east: a bucket created
# with Object Lock enabled and [region] object_lock = governance.
#  - config check refuses object_lock on a bucket without Object Lock, and
#    warns about a locked bucket without object_lock;
#  - every object of a backup carries the lock (HEAD: mode GOVERNANCE,
#    retain-until = snapshot time + max_age + lock_margin); the data an
#    incremental references has its lock extended to the incremental's;
#  - a DELETE of a locked version with the backup credentials is refused;
#  - prune (max_age 5 s, lock_margin 40 s) keeps the expired backup quietly
#    while it is locked (exit 0, "locked", still listed, nothing deleted)
#    and deletes every version of its objects once the lock has ended;
#  - a backup hidden behind a delete marker (a plain DELETE) fails verify,
#    which names the marker; deleting the marker brings the backup back.
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
need_btrfs
need_rgw

ADM=(python3 "$SRC_DIR/tests/tools/s3admin.py")
bucket="lock-$$"
"${ADM[@]}" mkbucket-lock "$RGW_EAST_ENDPOINT" "$bucket" || fail "could not create a bucket with Object Lock"
"${ADM[@]}" lock-config "$RGW_EAST_ENDPOINT" "$bucket" | grep "<ObjectLockEnabled>Enabled<" >/dev/null ||
	fail "the bucket has no Object Lock (RGW too old?)"

sv=$(mk_subvol lock-part)
"$GENDATA" "$sv" --json-bytes 2M --json-file-size 1M --small-files 20 --dirs 2 >/dev/null
conf() {	# conf BUCKET OBJECT_LOCK_LINE
	cat <<EOF
[agent]
state_dir = $TEST_TMP/state
host = lockhost
[retention]
max_age = 5s
[partition lock-part]
path = $sv
[region east]
store = s3
endpoint = $RGW_EAST_ENDPOINT
bucket = $1
sigv4_region = $RGW_REGION
access_key_id = $RGW_ACCESS_KEY_ID
secret_access_key_file = $RGW_SECRET_ACCESS_KEY_FILE
lock_margin = 40s
$2
EOF
}
S=("$SNAPSHIP" --config "$TEST_TMP/snapship.conf")

# ---- config check ----
conf "$RGW_BUCKET" "object_lock = governance" >"$TEST_TMP/snapship.conf"
rc=0
out=$("${S[@]}" config check 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "config check of object_lock on a bucket without Object Lock: exit $rc: $out"
grep -q "bucket $RGW_BUCKET does not have Object Lock enabled" <<<"$out" ||
	fail "config check does not say the bucket lacks Object Lock: $out"
conf "$bucket" "" >"$TEST_TMP/snapship.conf"
out=$("${S[@]}" config check 2>&1) || fail "config check of a locked bucket without object_lock: exit $?: $out"
grep -q "warning: bucket $bucket of \[region east\] has Object Lock" <<<"$out" ||
	fail "no warning for a locked bucket without object_lock: $out"
conf "$bucket" "object_lock = governance" >"$TEST_TMP/snapship.conf"
out=$("${S[@]}" config check 2>&1) || fail "config check with object_lock on a locked bucket: exit $?: $out"
echo "-- config check: ok"

# ---- backups: every object locked ----
ids=()
for _ in 1 2; do
	out=$("${S[@]}" --json backup) || fail "backup with object_lock failed: $out"
	ids+=("$(python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup_id"])' <<<"$out")")
	sleep 1
done
base="lockhost/lock-part"
until_of() {	# until_of KEY: the retain-until date as unix seconds
	"${ADM[@]}" head "$RGW_EAST_ENDPOINT" "$bucket" "$1" >"$TEST_TMP/head" ||
		fail "HEAD $1: $(cat "$TEST_TMP/head")"
	grep -q "^x-amz-object-lock-mode: GOVERNANCE" "$TEST_TMP/head" ||
		fail "$1 is not locked in governance mode: $(cat "$TEST_TMP/head")"
	python3 -c 'import sys,datetime
for l in open(sys.argv[1]):
    if l.startswith("x-amz-object-lock-retain-until-date: "):
        v = l.split(": ", 1)[1].strip().rstrip("Z").split(".")[0]
        print(int(datetime.datetime.strptime(v, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp()))' "$TEST_TMP/head"
}
snap_of() {	# snap_of ID: the snapshot time, unix seconds (rounded down)
	python3 "$RGW_S3" get "$RGW_EAST_ENDPOINT/$bucket/$base/$1/manifest.json" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshot"]["time_ns"] // 10**9)'
}
for id in "${ids[@]}"; do
	snap=$(snap_of "$id")
	for obj in manifest.json index.jsonl.zst; do
		u=$(until_of "$base/$id/$obj")
		d=$((u - snap))
		[ "$d" -ge 45 ] && [ "$d" -le 46 ] ||
			fail "$id/$obj locked until $u, $d s after the snapshot, not max_age + lock_margin = 45"
	done
done
u2=$(until_of "$base/${ids[1]}/data.tar.zst")
u1=$(until_of "$base/${ids[0]}/data.tar.zst")
if python3 "$RGW_S3" get "$RGW_EAST_ENDPOINT/$bucket/$base/${ids[1]}/manifest.json" |
	python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin).get("references") else 1)'; then
	[ "$u1" -ge "$u2" ] || fail "${ids[0]}'s data (referenced by ${ids[1]}) locked until $u1, before ${ids[1]}'s $u2"
	echo "-- the referenced data's lock was extended to $u1 (${ids[1]}: $u2)"
fi
echo "-- backups: every object locked (governance)"

# ---- a DELETE of a locked version with the backup credentials ----
key="$base/${ids[0]}/manifest.json"
vid=$("${ADM[@]}" versions "$RGW_EAST_ENDPOINT" "$bucket" "$key" | awk -F'\t' '$3 == "version" { print $2; exit }')
[ -n "$vid" ] || fail "no version of $key"
"${ADM[@]}" delete "$RGW_EAST_ENDPOINT" "$bucket" "$key" "$vid" >"$TEST_TMP/del" 2>/dev/null &&
	fail "a DELETE of the locked version of $key succeeded"
grep -q "^403 AccessDenied" "$TEST_TMP/del" || fail "DELETE of a locked version answered: $(cat "$TEST_TMP/del")"
echo "-- DELETE of a locked version: refused"

# ---- prune while locked: quiet, nothing deleted ----
snap0=$(snap_of "${ids[0]}")
while [ "$(date +%s)" -le $((snap0 + 6)) ]; do sleep 1; done
[ "$(date +%s)" -lt $((snap0 + 40)) ] ||
	fail "the machine is too slow for this test: the lock (until $((snap0 + 45))) ends before prune can run"
out=$("${S[@]}" --json prune 2>"$TEST_TMP/err") || fail "prune of locked backups: exit $?: $out $(cat "$TEST_TMP/err")"
check='import json, sys
p = json.load(sys.stdin)[0]
assert p["status"] == "ok" and p["locked"] == 1 and p["deleted"] == 0, p
b = [b for b in p["backups"] if b["backup_id"] == sys.argv[1]][0]
assert not b["keep"] and b["regions"][0]["action"] == "locked", b
assert "Object Lock until" in b["regions"][0]["detail"], b'
python3 -c "$check" "${ids[0]}" <<<"$out" || fail "prune while locked: $out"
grep -qi "error" "$TEST_TMP/err" && fail "prune of a locked backup logged an error: $(cat "$TEST_TMP/err")"
"${S[@]}" list lock-part | grep "${ids[0]}" >/dev/null || fail "the locked backup left list"
for obj in manifest.json index.jsonl.zst data.tar.zst; do
	"${ADM[@]}" head "$RGW_EAST_ENDPOINT" "$bucket" "$base/${ids[0]}/$obj" | grep "^200" >/dev/null ||
		fail "$obj of the locked backup went"
done
[ -z "$(ls -A "$TEST_TMP/state/prune/lockhost/lock-part" 2>/dev/null)" ] ||
	fail "a pending record was left for a locked backup"
echo "-- prune while locked: skipped quietly"

# ---- prune after the lock ----
u=$(until_of "$base/${ids[0]}/manifest.json")
while [ "$(date +%s)" -le $((u + 1)) ]; do sleep 1; done
out=$("${S[@]}" --json prune 2>&1) || fail "prune after the lock: exit $?: $out"
"${S[@]}" list lock-part >"$TEST_TMP/list"
grep -q "${ids[0]}" "$TEST_TMP/list" && fail "${ids[0]} still listed after its lock: $(cat "$TEST_TMP/list")"
grep -q "${ids[1]}" "$TEST_TMP/list" || fail "prune lost the newest backup"
for obj in manifest.json index.jsonl.zst; do
	v=$("${ADM[@]}" versions "$RGW_EAST_ENDPOINT" "$bucket" "$base/${ids[0]}/$obj")
	[ -z "$v" ] || fail "versions of ${ids[0]}/$obj left (a delete marker only?): $v"
done
"${S[@]}" restore lock-part --to "$TEST_BTRFS/restored" >/dev/null 2>"$TEST_TMP/err" ||
	fail "restore of the newest backup: $(cat "$TEST_TMP/err")"
assert_trees_equal "$sv" "$TEST_BTRFS/restored"
echo "-- prune after the lock: every version deleted"

# ---- a delete marker (a key allowed s3:DeleteObject) hides a backup ----
key="$base/${ids[1]}/manifest.json"
"${ADM[@]}" delete "$RGW_EAST_ENDPOINT" "$bucket" "$key" >"$TEST_TMP/del" || fail "plain DELETE: $(cat "$TEST_TMP/del")"
"${S[@]}" list lock-part >"$TEST_TMP/list" 2>&1 || true
grep -q "${ids[1]}" "$TEST_TMP/list" && fail "list still shows ${ids[1]} behind a delete marker (test broken)"
rc=0
"${S[@]}" verify >"$TEST_TMP/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "verify of a backup hidden behind a delete marker: exit $rc: $(cat "$TEST_TMP/out")"
grep -q "$key is hidden behind a delete marker" "$TEST_TMP/out" ||
	fail "verify does not name the hidden backup: $(cat "$TEST_TMP/out")"
marker=$("${ADM[@]}" versions "$RGW_EAST_ENDPOINT" "$bucket" "$key" | awk -F'\t' '$3 == "marker" { print $2; exit }')
[ -n "$marker" ] || fail "no delete marker on $key"
grep -q "$marker" "$TEST_TMP/out" || fail "verify does not name the marker's version"
"${ADM[@]}" delete "$RGW_EAST_ENDPOINT" "$bucket" "$key" "$marker" >/dev/null || fail "could not delete the marker"
"${S[@]}" list lock-part | grep "${ids[1]}" >/dev/null || fail "${ids[1]} is not back after its marker went"
"${S[@]}" verify >"$TEST_TMP/out" 2>&1 || fail "verify after the marker went: $(cat "$TEST_TMP/out")"
echo "-- a backup hidden behind a delete marker: verify names it; back once the marker goes"
no_snapship_snapshots "$TEST_BTRFS"
echo ok
