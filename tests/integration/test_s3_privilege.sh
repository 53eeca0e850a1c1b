#!/usr/bin/env bash
# Issue 15, item 3 (least privilege) on Ceph RGW: a second RGW user that a
# bucket policy lets put, get, list and abort in a bucket of the first, but
# not delete (doc/protection.md's backup policy).  With it as the region's
# credentials, backup, list, restore and verify work; prune fails with one
# clear message (the object, the keys to set) and deletes nothing (every
# backup still lists and restores); with prune_access_key_id = the bucket's
# owner, prune works; clean of a backup without a manifest likewise.
# Tested on zone east; the user and the bucket policy
# are metadata and reach west by metadata sync: checked there too (the
# restricted user reads on west, its DELETE is refused).
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
need_btrfs
need_rgw

ADMIN=(radosgw-admin -c "$CEPH_CONF" -n client.admin)
uid="snapship-bk-$$"
bk_ak=$(python3 -c 'import secrets,string; print("BK" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16)))')
bk_sk=$(python3 -c 'import secrets,string; print("".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40)))')
[ ${#bk_ak} = 18 ] && [ ${#bk_sk} = 40 ] || fail "could not make keys"
"${ADMIN[@]}" user create --rgw-zone=east --uid="$uid" --display-name="$uid" \
	--access-key="$bk_ak" --secret="$bk_sk" >/dev/null 2>"$TEST_TMP/admin.err" ||
	fail "radosgw-admin user create: $(cat "$TEST_TMP/admin.err")"
(umask 077 && printf '%s\n' "$bk_sk" >"$TEST_TMP/bk.secret")

bucket="priv-$$"
python3 "$RGW_S3" mkbucket "$RGW_EAST_ENDPOINT/$bucket" || fail "mkbucket $bucket"
ADM=(python3 "$SRC_DIR/tests/tools/s3admin.py")
"${ADM[@]}" policy "$RGW_EAST_ENDPOINT" "$bucket" "$uid" || fail "could not set the bucket policy"

sv=$(mk_subvol priv-part)
"$GENDATA" "$sv" --json-bytes 2M --json-file-size 1M --small-files 30 --dirs 4 >/dev/null
conf() {	# conf [PRUNE_KEY_LINES]
	cat <<EOF
[agent]
state_dir = $TEST_TMP/state
host = privhost
max_chain = 0
[retention]
keep_last = 1
[partition priv-part]
path = $sv
[region east]
store = s3
endpoint = $RGW_EAST_ENDPOINT
bucket = $bucket
sigv4_region = $RGW_REGION
access_key_id = $bk_ak
secret_access_key_file = $TEST_TMP/bk.secret
primary = yes
${1:-}
EOF
}
conf >"$TEST_TMP/snapship.conf"
S=("$SNAPSHIP" --config "$TEST_TMP/snapship.conf")

# ---- backups and a restore with the restricted user ----
ids=()
for _ in 1 2 3; do
	out=$("${S[@]}" --json backup 2>"$TEST_TMP/backup.err") ||
		fail "backup with the restricted user failed: $(cat "$TEST_TMP/backup.err") $out"
	ids+=("$(python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup_id"])' <<<"$out")")
	sleep 1
done
grep -qi "may not delete\|AccessDenied" "$TEST_TMP/backup.err" &&
	fail "a backup tried to delete: $(cat "$TEST_TMP/backup.err")"
"${S[@]}" restore priv-part --id "${ids[0]}" --to "$TEST_BTRFS/r0" >/dev/null 2>"$TEST_TMP/err" ||
	fail "restore with the restricted user: $(cat "$TEST_TMP/err")"
assert_trees_equal "$sv" "$TEST_BTRFS/r0"
"${S[@]}" verify >"$TEST_TMP/out" 2>&1 || fail "verify with the restricted user: $(cat "$TEST_TMP/out")"
echo "-- backup, restore, verify with the restricted user: ok"

# ---- a DELETE by hand with its keys is refused ----
key="privhost/priv-part/${ids[0]}/manifest.json"
RGW_ACCESS_KEY_ID=$bk_ak RGW_SECRET_ACCESS_KEY=$bk_sk \
	"${ADM[@]}" delete "$RGW_EAST_ENDPOINT" "$bucket" "$key" >"$TEST_TMP/del" 2>/dev/null &&
	fail "the restricted user could delete $key"
grep -q "^403 AccessDenied" "$TEST_TMP/del" || fail "DELETE answered: $(cat "$TEST_TMP/del")"

# ---- prune with it: one clear error, nothing half-deleted ----
rc=0
"${S[@]}" prune >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
cat "$TEST_TMP/out" "$TEST_TMP/err"
[ "$rc" = 1 ] || fail "prune with the backup credentials: exit $rc"
grep -q "the backup credentials may not delete \"[^\"]*${ids[0]}/manifest.json\" (AccessDenied)" \
	"$TEST_TMP/out" "$TEST_TMP/err" || fail "prune does not say which object it may not delete"
grep -q "prune_access_key_id and prune_secret_access_key_file in \[region east\]" \
	"$TEST_TMP/out" "$TEST_TMP/err" || fail "prune does not name the keys to set"
n=$(python3 "$RGW_S3" ls "$RGW_EAST_ENDPOINT/$bucket" | grep -c "^privhost/priv-part/.*/\(manifest.json\|data.tar.zst\|index.jsonl.zst\)$" || true)
[ "$n" = 9 ] || fail "objects went: $n of 9 left"
listed=$("${S[@]}" list priv-part)
for id in "${ids[@]}"; do
	grep -q "$id" <<<"$listed" || fail "list lost $id: $listed"
done
"${S[@]}" restore priv-part --id "${ids[0]}" --to "$TEST_BTRFS/r1" >/dev/null 2>"$TEST_TMP/err" ||
	fail "restore after the refused prune: $(cat "$TEST_TMP/err")"
assert_trees_equal "$sv" "$TEST_BTRFS/r1"
echo "-- prune with the backup credentials: refused clearly, nothing deleted"

# ---- clean (objects of a backup without a manifest) with it: refused too ----
orphan="privhost/priv-part/20200101T000000Z-0abcde/data.tar.zst"
printf orphan >"$TEST_TMP/orphan"
python3 "$RGW_S3" put "$RGW_EAST_ENDPOINT/$bucket/$orphan" "$TEST_TMP/orphan" || fail "could not plant $orphan"
rc=0
out=$("${S[@]}" clean 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "clean with the backup credentials: exit $rc: $out"
grep "the backup credentials may not delete \"$orphan\" (AccessDenied); deletions need prune_access_key_id" \
	<<<"$out" >/dev/null || fail "clean does not say what it may not delete: $out"
echo "-- clean with the backup credentials: refused clearly"

# ---- prune with the owner's keys as prune credentials ----
conf "prune_access_key_id = $RGW_ACCESS_KEY_ID
prune_secret_access_key_file = $RGW_SECRET_ACCESS_KEY_FILE" >"$TEST_TMP/snapship.conf"
out=$("${S[@]}" prune 2>&1) || fail "prune with prune_access_key_id: exit $?: $out"
listed=$("${S[@]}" list priv-part)
grep -q "${ids[2]}" <<<"$listed" || fail "prune lost the newest backup: $listed"
grep -q "${ids[0]}\|${ids[1]}" <<<"$listed" && fail "prune kept old backups: $listed"
left=$(python3 "$RGW_S3" ls "$RGW_EAST_ENDPOINT/$bucket")
grep -q "${ids[0]}\|${ids[1]}" <<<"$left" && fail "objects of pruned backups left: $left"
echo "-- prune with prune_access_key_id: ok"
out=$("${S[@]}" clean 2>&1) || fail "clean with prune_access_key_id: exit $?: $out"
python3 "$RGW_S3" ls "$RGW_EAST_ENDPOINT/$bucket" | grep -F "$orphan" >/dev/null &&
	fail "clean with prune_access_key_id left $orphan: $out"
echo "-- clean with prune_access_key_id: ok"

# ---- west: the user and the policy arrive by metadata sync ----
ok=""
for _ in $(seq 60); do
	if RGW_ACCESS_KEY_ID=$bk_ak RGW_SECRET_ACCESS_KEY=$bk_sk python3 "$RGW_S3" ls \
		"$RGW_WEST_ENDPOINT/$bucket" >/dev/null 2>&1; then
		ok=1
		break
	fi
	sleep 1
done
[ -n "$ok" ] || fail "the restricted user cannot list $bucket on west after 60 s"
key="privhost/priv-part/${ids[2]}/manifest.json"
for _ in $(seq 60); do
	RGW_ACCESS_KEY_ID=$bk_ak RGW_SECRET_ACCESS_KEY=$bk_sk \
		"${ADM[@]}" head "$RGW_WEST_ENDPOINT" "$bucket" "$key" 2>/dev/null | grep '^200' >/dev/null && break
	sleep 1
done
RGW_ACCESS_KEY_ID=$bk_ak RGW_SECRET_ACCESS_KEY=$bk_sk \
	"${ADM[@]}" delete "$RGW_WEST_ENDPOINT" "$bucket" "$key" >"$TEST_TMP/del" 2>/dev/null &&
	fail "the restricted user could delete $key on west"
grep -q "^403 AccessDenied" "$TEST_TMP/del" || fail "DELETE on west answered: $(cat "$TEST_TMP/del")"
echo "-- west: the policy holds there too"
no_snapship_snapshots "$TEST_BTRFS"
echo ok
