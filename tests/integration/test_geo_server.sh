#!/usr/bin/env bash
# Geo-redundancy with the store replicating (replication = server), on the
# Ceph RGW multisite pair of the harness: east (primary) replicates to west.
#  - a backup is verified on west and reported geo-protected, with a lag
#    that is measured: west stopped for a while during the backup shows in it
#  - west down for longer than the deadline: the backup commits on east and
#    is at risk; west back, repair + verify make it geo-protected
#  - require_geo = yes with west down: the backup fails cleanly
#  - east down: list and restore work from west with no flag, and say so
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
need_btrfs
need_rgw

RGW_SH=$SRC_DIR/tools/rgw.sh
# whatever happens, both zones run again for the tests after this one
trap 'bash "$RGW_SH" zone-start "$RGW_DIR" east >/dev/null 2>&1 || true
      bash "$RGW_SH" zone-start "$RGW_DIR" west >/dev/null 2>&1 || true' EXIT
# a stopped zone refuses connections: give up on it after 3 attempts, not 8
export SNAPSHIP_S3_MAX_ATTEMPTS=3

state=$TEST_TMP/state
prefix="geo-$$/"
sv=$(mk_subvol geo-part)
"$GENDATA" "$sv" --json-bytes 24M --json-file-size 8M --small-files 300 >/dev/null

# conf DEADLINE [REQUIRE_GEO]
conf() {
	cat >"$TEST_TMP/snapship.conf" <<EOF
[agent]
state_dir = $state
host = geohost
require_geo = ${2:-no}

[partition geo-part]
path = $sv

[region east]
store = s3
endpoint = $RGW_EAST_ENDPOINT
bucket = $RGW_BUCKET
prefix = $prefix
sigv4_region = $RGW_REGION
access_key_id = $RGW_ACCESS_KEY_ID
secret_access_key_file = $RGW_SECRET_ACCESS_KEY_FILE
primary = yes

[region west]
store = s3
endpoint = $RGW_WEST_ENDPOINT
bucket = $RGW_BUCKET
prefix = $prefix
sigv4_region = $RGW_REGION
access_key_id = $RGW_ACCESS_KEY_ID
secret_access_key_file = $RGW_SECRET_ACCESS_KEY_FILE
replication = server
replication_deadline = $1
EOF
}
S=("$SNAPSHIP" --config "$TEST_TMP/snapship.conf")
jget() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

conf 120s
"${S[@]}" config check >"$TEST_TMP/out" || fail "config check: $(cat "$TEST_TMP/out")"
grep -q 'region west.*replication = server' "$TEST_TMP/out" || fail "config check: $(cat "$TEST_TMP/out")"

# ---- 1. server replication: verified on west, geo-protected ----------------
out=$("${S[@]}" backup --json) || fail "backup failed: $out"
id1=$(jget 'd[0]["backup_id"]' <<<"$out")
[ "$(jget 'd[0]["geo"]' <<<"$out")" = geo-protected ] || fail "backup not geo-protected: $out"
lag=$(jget '[r for r in d[0]["regions"] if r["region"]=="west"][0]["lag_s"]' <<<"$out")
awk -v l="$lag" 'BEGIN { exit !(l > 0 && l < 120) }' || fail "west lag $lag s is not plausible: $out"
echo "-- 1: $id1 geo-protected, west lag $lag s"
# the copy on west is really there: same bytes as on east
for obj in data.tar.zst index.jsonl.zst manifest.json; do
	k="${prefix}geohost/geo-part/$id1/$obj"
	python3 "$RGW_S3" get "$RGW_EAST_ENDPOINT/$RGW_BUCKET/$k" "$TEST_TMP/e"
	python3 "$RGW_S3" get "$RGW_WEST_ENDPOINT/$RGW_BUCKET/$k" "$TEST_TMP/w"
	cmp -s "$TEST_TMP/e" "$TEST_TMP/w" || fail "$obj differs between east and west"
done
"${S[@]}" list | grep "$id1" | grep -q geo-protected || fail "list does not say geo-protected: $("${S[@]}" list)"
"${S[@]}" status --json | jget 'd["partitions"][0]["geo"]' | grep -qx geo-protected ||
	fail "status does not say geo-protected: $("${S[@]}" status)"
no_snapship_snapshots "$TEST_BTRFS"

# ---- 2. the lag is measured: west away for 8 s of the replication ----------
bash "$RGW_SH" zone-stop "$RGW_DIR" west >/dev/null
"${S[@]}" backup --json >"$TEST_TMP/b2" 2>"$TEST_TMP/b2.err" &
bpid=$!
sleep 8
bash "$RGW_SH" zone-start "$RGW_DIR" west >/dev/null
wait "$bpid" || fail "backup with west briefly away failed: $(cat "$TEST_TMP/b2.err")"
lag2=$(jget '[r for r in d[0]["regions"] if r["region"]=="west"][0]["lag_s"]' <"$TEST_TMP/b2")
[ "$(jget 'd[0]["geo"]' <"$TEST_TMP/b2")" = geo-protected ] || fail "not geo-protected after west came back: $(cat "$TEST_TMP/b2")"
awk -v l="$lag2" 'BEGIN { exit !(l >= 7) }' || fail "west was away 8 s but the reported lag is $lag2 s"
echo "-- 2: west away 8 s: reported lag $lag2 s"

# ---- 3. west down past the deadline: committed on east, at risk ------------
conf 5s
bash "$RGW_SH" zone-stop "$RGW_DIR" west >/dev/null
out=$("${S[@]}" backup --json 2>"$TEST_TMP/err") || fail "backup with west down failed: $(cat "$TEST_TMP/err")"
id3=$(jget 'd[0]["backup_id"]' <<<"$out")
[ "$(jget 'd[0]["geo"]' <<<"$out")" = "at risk" ] || fail "backup with west down is not at risk: $out"
grep -q "west" "$TEST_TMP/err" || fail "no warning names west: $(cat "$TEST_TMP/err")"
python3 "$RGW_S3" head "$RGW_EAST_ENDPOINT/$RGW_BUCKET/${prefix}geohost/geo-part/$id3/manifest.json" >/dev/null ||
	fail "the backup is not committed on east"
"${S[@]}" list 2>/dev/null | grep "$id3" | grep -q "at risk" || fail "list does not say at risk: $("${S[@]}" list 2>&1)"
[ "$("${S[@]}" status --json 2>/dev/null | jget 'd["partitions"][0]["geo"]')" = "at risk" ] ||
	fail "status does not say at risk"
no_snapship_snapshots "$TEST_BTRFS"
echo "-- 3: $id3 committed on east, at risk"

# ---- 3b. require_geo = yes with west down: fails cleanly -------------------
conf 5s yes
before=$(python3 "$RGW_S3" ls "$RGW_EAST_ENDPOINT/$RGW_BUCKET" | grep -c "^${prefix}" || true)
rc=0
"${S[@]}" backup >"$TEST_TMP/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "require_geo backup with west down exited $rc: $(cat "$TEST_TMP/out")"
grep -q "require_geo.*west" "$TEST_TMP/out" || fail "the error does not say why: $(cat "$TEST_TMP/out")"
after=$(python3 "$RGW_S3" ls "$RGW_EAST_ENDPOINT/$RGW_BUCKET" | grep -c "^${prefix}" || true)
[ "$before" = "$after" ] || fail "require_geo failure left objects on east ($before -> $after)"
no_snapship_snapshots "$TEST_BTRFS"
echo "-- 3b: require_geo failed cleanly: $(tail -1 "$TEST_TMP/out")"

# ---- 3c. west back: repair and verify make it geo-protected ----------------
conf 60s
bash "$RGW_SH" zone-start "$RGW_DIR" west >/dev/null
"${S[@]}" repair >"$TEST_TMP/out" 2>&1 || fail "repair failed: $(cat "$TEST_TMP/out")"
"${S[@]}" verify >"$TEST_TMP/out" 2>&1 || fail "verify after repair failed: $(cat "$TEST_TMP/out")"
grep -E "$id3 +west +ok" "$TEST_TMP/out" >/dev/null || fail "verify does not show $id3 ok on west: $(cat "$TEST_TMP/out")"
"${S[@]}" list | grep "$id3" | grep -q geo-protected || fail "$id3 not geo-protected after repair: $("${S[@]}" list)"
echo "-- 3c: repaired and verified"

# ---- 3d. west up but not replicating (bucket sync off) ----------------------
# the data never arrives: require_geo fails after the deadline and removes
# what it wrote, in both zones; without it the backup is at risk, and repair
# copies it to west itself
nb="$RGW_BUCKET-nosync"
python3 "$RGW_S3" mkbucket "$RGW_EAST_ENDPOINT/$nb" >/dev/null
radosgw-admin -c "$CEPH_CONF" -n client.admin bucket sync disable --bucket="$nb" >/dev/null 2>&1 ||
	fail "cannot turn off replication of bucket $nb"
sleep 2	# the bucket's metadata reaches west
conf_nosync() { conf "$@"; sed -i "s|^bucket = $RGW_BUCKET\$|bucket = $nb|" "$TEST_TMP/snapship.conf"; }
conf_nosync 5s yes
rc=0
"${S[@]}" backup >"$TEST_TMP/out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "require_geo with replication off exited $rc: $(cat "$TEST_TMP/out")"
grep -q "require_geo.*in time" "$TEST_TMP/out" || fail "require_geo error: $(cat "$TEST_TMP/out")"
n=$(python3 "$RGW_S3" ls "$RGW_EAST_ENDPOINT/$nb" | grep -c "^${prefix}" || true)
[ "$n" = 0 ] || fail "require_geo failure left $n object(s) on east"
n=$(python3 "$RGW_S3" ls "$RGW_WEST_ENDPOINT/$nb" | grep -c "^${prefix}" || true)
[ "$n" = 0 ] || fail "require_geo failure left $n object(s) on west"
no_snapship_snapshots "$TEST_BTRFS"
conf_nosync 5s
out=$("${S[@]}" backup --json 2>"$TEST_TMP/err") || fail "backup with replication off: $(cat "$TEST_TMP/err")"
id5=$(jget 'd[0]["backup_id"]' <<<"$out")
[ "$(jget 'd[0]["geo"]' <<<"$out")" = "at risk" ] || fail "not at risk: $out"
"${S[@]}" repair >"$TEST_TMP/out" 2>&1 || fail "repair to west: $(cat "$TEST_TMP/out")"
grep -Eq "$id5 +west +repaired +copied from east" "$TEST_TMP/out" || fail "repair: $(cat "$TEST_TMP/out")"
"${S[@]}" verify "geo-part" >"$TEST_TMP/out" 2>&1 || fail "verify after repair: $(cat "$TEST_TMP/out")"
"${S[@]}" list | grep "$id5" | grep -q geo-protected || fail "$id5 not geo-protected after repair"
echo "-- 3d: replication off: require_geo rolled back in both zones; repair copied to west"
conf 60s

# ---- 4. east down: list and restore from west, with no flag ----------------
bash "$RGW_SH" zone-stop "$RGW_DIR" east >/dev/null
"${S[@]}" list >"$TEST_TMP/out" 2>"$TEST_TMP/err" || fail "list with east down failed: $(cat "$TEST_TMP/err")"
grep -q "$id3" "$TEST_TMP/out" || fail "list with east down misses $id3"
grep -qi "failed over.*west" "$TEST_TMP/err" || fail "list does not say it failed over: $(cat "$TEST_TMP/err")"
"${S[@]}" restore geo-part --to "$TEST_BTRFS/from-west" >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
	fail "restore with east down failed: $(cat "$TEST_TMP/err")"
grep -qi "west" "$TEST_TMP/out" || fail "restore does not say where from: $(cat "$TEST_TMP/out")"
grep -qi "failed over" "$TEST_TMP/err" || fail "restore does not say it failed over: $(cat "$TEST_TMP/err")"
assert_trees_equal "$sv" "$TEST_BTRFS/from-west"
# --region forces one: east is down, so that fails
rc=0
"${S[@]}" list --region east >/dev/null 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "list --region east with east down exited $rc"
bash "$RGW_SH" zone-start "$RGW_DIR" east >/dev/null
echo "-- 4: list and restore failed over to west"
echo "PASS"
