#!/usr/bin/env bash
# Issue 15, item 2 (immutability) on Ceph RGW, zone east: a bucket created
# with Object Lock enabled and [region] object_lock = governance, used as
# doc/protection.md says: a restricted backup user (the documented backup
# policy) and prune_access_key_id = the bucket's owner.
#  - config check refuses object_lock on a bucket without Object Lock, and
#    warns about a locked bucket without object_lock;
#  - every object of a backup carries the lock (HEAD: mode GOVERNANCE,
#    retain-until = snapshot time + max_age + lock_margin); the data an
#    incremental references has its lock extended to the incremental's;
#  - a DELETE of a locked version with the backup credentials is refused;
#  - prune (max_age 5 s, lock_margin 40 s) keeps the expired backup quietly
#    while it is locked (exit 0, "locked", still listed, nothing deleted)
#    and deletes every version of its objects once the lock has ended;
#    (the version listing and the lock's HEAD ?versionId= of a deletion are
#    signed with the prune key: the backup policy grants no
#    s3:GetObjectVersion);
#  - a backup hidden behind delete markers (two plain DELETEs with the
#    owner's key) fails verify, which names both markers; deleting them
#    brings the backup back;
#  - a new version PUT over a locked manifest with the backup key fails
#    verify, which names the versions; deleting the newer one fixes it;
#  - repair of a base's data missing in the locked region (a second,
#    directory region holds it) locks the copy as long as the incremental
#    that reads it.
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
need_btrfs
need_rgw

ADM=(python3 "$SRC_DIR/tests/tools/s3admin.py")
bucket="lock-$$"
"${ADM[@]}" mkbucket-lock "$RGW_EAST_ENDPOINT" "$bucket" || fail "could not create a bucket with Object Lock"
"${ADM[@]}" lock-config "$RGW_EAST_ENDPOINT" "$bucket" | grep "<ObjectLockEnabled>Enabled<" >/dev/null ||
	fail "the bucket has no Object Lock (RGW too old?)"

# the restricted backup user: doc/protection.md's backup policy on $bucket;
# the owner (the harness's user "snapship", the prune key) gets the prune
# policy: the objects belong to the user who wrote them, so without it the
# owner could delete them but not read them (nor their versions' locks)
uid="snapship-lk-$$"
bk_ak=$(python3 -c 'import secrets,string; print("LK" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16)))')
bk_sk=$(python3 -c 'import secrets,string; print("".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40)))')
radosgw-admin -c "$CEPH_CONF" -n client.admin user create --rgw-zone=east --uid="$uid" \
	--display-name="$uid" --access-key="$bk_ak" --secret="$bk_sk" >/dev/null 2>"$TEST_TMP/admin.err" ||
	fail "radosgw-admin user create: $(cat "$TEST_TMP/admin.err")"
(umask 077 && printf '%s\n' "$bk_sk" >"$TEST_TMP/bk.secret")
"${ADM[@]}" policy "$RGW_EAST_ENDPOINT" "$bucket" "$uid" prune-user=snapship || fail "could not set the bucket policy"
AK=$RGW_ACCESS_KEY_ID SKF=$RGW_SECRET_ACCESS_KEY_FILE     # config check: the owner first

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
access_key_id = $AK
secret_access_key_file = $SKF
prune_access_key_id = $RGW_ACCESS_KEY_ID
prune_secret_access_key_file = $RGW_SECRET_ACCESS_KEY_FILE
lock_margin = 40s
$2
${3:-}
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
AK=$bk_ak SKF=$TEST_TMP/bk.secret       # from here on: the restricted user
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

# ---- delete markers (a key allowed s3:DeleteObject: the owner's) hide a backup ----
key="$base/${ids[1]}/manifest.json"
for _ in 1 2; do	# two DELETEs: where RGW stacks two markers, both must be named
	"${ADM[@]}" delete "$RGW_EAST_ENDPOINT" "$bucket" "$key" >"$TEST_TMP/del" ||
		fail "plain DELETE: $(cat "$TEST_TMP/del")"
done
"${S[@]}" list lock-part >"$TEST_TMP/list" 2>&1 || true
grep -q "${ids[1]}" "$TEST_TMP/list" && fail "list still shows ${ids[1]} behind a delete marker (test broken)"
rc=0
"${S[@]}" verify >"$TEST_TMP/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "verify of a backup hidden behind a delete marker: exit $rc: $(cat "$TEST_TMP/out")"
grep -q "$key is hidden behind" "$TEST_TMP/out" ||
	fail "verify does not name the hidden backup: $(cat "$TEST_TMP/out")"
grep -q "could not check" "$TEST_TMP/out" && fail "verify could not list the versions: $(cat "$TEST_TMP/out")"
mapfile -t markers < <("${ADM[@]}" versions "$RGW_EAST_ENDPOINT" "$bucket" "$key" | awk -F'\t' '$3 == "marker" { print $2 }')
[ "${#markers[@]}" -ge 1 ] || fail "no delete marker on $key"
echo "-- ${#markers[@]} delete marker(s) on $key"
for m in "${markers[@]}"; do
	grep -qF -- "$m" "$TEST_TMP/out" || fail "verify does not name the marker $m: $(cat "$TEST_TMP/out")"
	"${ADM[@]}" delete "$RGW_EAST_ENDPOINT" "$bucket" "$key" "$m" >/dev/null || fail "could not delete the marker $m"
done
"${S[@]}" list lock-part | grep "${ids[1]}" >/dev/null || fail "${ids[1]} is not back after its markers went"
"${S[@]}" verify >"$TEST_TMP/out" 2>&1 || fail "verify after the markers went: $(cat "$TEST_TMP/out")"
echo "-- a backup hidden behind delete markers: verify names them all; back once they go"

# ---- verify whose version listing is refused: a problem, not a pass ----
"${ADM[@]}" policy "$RGW_EAST_ENDPOINT" "$bucket" "$uid" nolist prune-user=snapship || fail "could not set the bucket policy"
rc=0
"${S[@]}" verify >"$TEST_TMP/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "verify that could not list versions: exit $rc: $(cat "$TEST_TMP/out")"
grep -q "could not check for backups hidden behind delete markers" "$TEST_TMP/out" ||
	fail "verify does not say it could not check: $(cat "$TEST_TMP/out")"
"${ADM[@]}" policy "$RGW_EAST_ENDPOINT" "$bucket" "$uid" prune-user=snapship || fail "could not set the bucket policy"
echo "-- verify without s3:ListBucketVersions: could not check (exit 1)"

# ---- a stolen backup key PUTs a new version over a locked manifest ----
key="$base/${ids[1]}/manifest.json"
python3 "$RGW_S3" get "$RGW_EAST_ENDPOINT/$bucket/$key" >"$TEST_TMP/forged"
printf ' ' >>"$TEST_TMP/forged"        # other bytes, still the same JSON
RGW_ACCESS_KEY_ID=$bk_ak RGW_SECRET_ACCESS_KEY=$bk_sk \
	python3 "$RGW_S3" put "$RGW_EAST_ENDPOINT/$bucket/$key" "$TEST_TMP/forged" ||
	fail "the backup user could not put over $key"
mapfile -t vers < <("${ADM[@]}" versions "$RGW_EAST_ENDPOINT" "$bucket" "$key" | awk -F'\t' '$3 == "version" { print $2 }')
[ "${#vers[@]}" = 2 ] || fail "not two versions of $key: ${vers[*]}"
rc=0
"${S[@]}" verify >"$TEST_TMP/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "verify of an overwritten manifest: exit $rc: $(cat "$TEST_TMP/out")"
grep -q "$key has more than one version" "$TEST_TMP/out" ||
	fail "verify does not name the overwritten manifest: $(cat "$TEST_TMP/out")"
for v in "${vers[@]}"; do
	grep -qF -- "$v" "$TEST_TMP/out" || fail "verify does not name version $v: $(cat "$TEST_TMP/out")"
done
newest=$("${ADM[@]}" versions "$RGW_EAST_ENDPOINT" "$bucket" "$key" | awk -F'\t' '$3 == "version" { print $2; exit }')
"${ADM[@]}" delete "$RGW_EAST_ENDPOINT" "$bucket" "$key" "$newest" >"$TEST_TMP/del" ||
	fail "could not delete the newer version: $(cat "$TEST_TMP/del")"
"${S[@]}" verify >"$TEST_TMP/out" 2>&1 || fail "verify after the newer version went: $(cat "$TEST_TMP/out")"
echo "-- a manifest overwritten with the backup key: verify names its versions; fine once the newer goes"
# ---- repair: a base's data copied back into the locked region is locked
# as long as the incremental that reads it ----
mkdir -p "$TEST_TMP/local"
cat >"$TEST_TMP/rep.conf" <<EOF
[agent]
state_dir = $TEST_TMP/state2
host = lockrep
[retention]
max_age = 1h
[partition lock-part]
path = $sv
[region local]
store = file
path = $TEST_TMP/local
primary = yes
[region east]
store = s3
endpoint = $RGW_EAST_ENDPOINT
bucket = $bucket
sigv4_region = $RGW_REGION
access_key_id = $bk_ak
secret_access_key_file = $TEST_TMP/bk.secret
prune_access_key_id = $RGW_ACCESS_KEY_ID
prune_secret_access_key_file = $RGW_SECRET_ACCESS_KEY_FILE
object_lock = governance
lock_margin = 40s
replication = agent
EOF
R=("$SNAPSHIP" --config "$TEST_TMP/rep.conf")
rids=()
for _ in 1 2; do
	out=$("${R[@]}" --json backup) || fail "backup to the local and the locked region: $out"
	rids+=("$(python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup_id"])' <<<"$out")")
	sleep 2
done
rbase="lockrep/lock-part"
python3 "$RGW_S3" get "$RGW_EAST_ENDPOINT/$bucket/$rbase/${rids[1]}/manifest.json" >"$TEST_TMP/inc.json" ||
	fail "no manifest of ${rids[1]} in east"
grep -q "${rids[0]}" "$TEST_TMP/inc.json" ||
	fail "${rids[1]} does not reference ${rids[0]}'s data (test broken): $(cat "$TEST_TMP/inc.json")"
dkey="$rbase/${rids[0]}/data.tar.zst"
for v in $("${ADM[@]}" versions "$RGW_EAST_ENDPOINT" "$bucket" "$dkey" | awk -F'\t' '{ print $2 }'); do
	"${ADM[@]}" delete "$RGW_EAST_ENDPOINT" "$bucket" "$dkey" "$v" bypass >"$TEST_TMP/del" ||
		fail "could not remove $dkey (owner, bypassing governance): $(cat "$TEST_TMP/del")"
done
"${ADM[@]}" head "$RGW_EAST_ENDPOINT" "$bucket" "$dkey" >"$TEST_TMP/head" 2>/dev/null || true
grep -q '^404' "$TEST_TMP/head" || fail "$dkey is still there: $(cat "$TEST_TMP/head")"
rc=0
"${R[@]}" verify >"$TEST_TMP/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "verify with ${rids[0]}'s data missing in east: exit $rc: $(cat "$TEST_TMP/out")"
"${R[@]}" repair >"$TEST_TMP/out" 2>&1 || fail "repair: $(cat "$TEST_TMP/out")"
u_inc=$(until_of "$rbase/${rids[1]}/manifest.json")
u_rep=$(until_of "$dkey")
[ "$u_rep" -ge "$u_inc" ] ||
	fail "the repaired $dkey is locked until $u_rep, before ${rids[1]} (which reads it): $u_inc"
"${R[@]}" verify >"$TEST_TMP/out" 2>&1 || fail "verify after the repair: $(cat "$TEST_TMP/out")"
echo "-- repair: the base's data locked until $u_rep (the incremental: $u_inc)"
no_snapship_snapshots "$TEST_BTRFS"
echo ok
