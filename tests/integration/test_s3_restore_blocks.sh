#!/usr/bin/env bash
# Restore of a file in blocks from S3 (doc/incremental.md "Large files in
# blocks"), with region failover per referenced object: a chain forged
# locally (tests/tools/forge.py: B1 a full with a 6 MiB file, B2 with block
# 1 changed and 1 MiB appended, its other blocks runs into B1) is uploaded
# to two regions (two buckets of the harness's RGW); B1's data object is
# corrupted in the primary (frames flipped, same size): the restore of B2
# takes those frames from region b, says so, and the file is whole; with
# B1 corrupt in both regions it fails naming B1.  Export likewise.
# shellcheck disable=SC2015 # "A && B || fail ...": fail unless both hold
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"
need_rgw
need_cmd python3 zstd xxhsum

export SNAPSHIP_S3_MAX_ATTEMPTS=3
FORGE=$SRC_DIR/tests/tools/forge.py
prefix="rbl-$$/"
B1=20261101T000000Z-000001 B2=20261102T000000Z-000002
M=1048576
L=$TEST_TMP/local C=$TEST_TMP/content
mkdir -p "$L" "$C" "$TEST_TMP/src"
head -c $((6 * M)) /dev/urandom >"$C/big1"
cp "$C/big1" "$C/big2"
printf 'changed in B2' | dd of="$C/big2" bs=1 seek=$((M + 10)) conv=notrunc status=none
head -c "$M" /dev/urandom >>"$C/big2"

keys() { echo --manifest-set "data.key=\"${prefix}h/p/$1/data.tar.zst\"" \
	--manifest-set "index.key=\"${prefix}h/p/$1/index.jsonl.zst\""; }
# shellcheck disable=SC2046 # keys: two options, each one word
python3 "$FORGE" backup "$L" h p "$B1" '[{"name": "big", "type": "file", "data_file": "'"$C/big1"'"}]' \
	$(keys "$B1") >/dev/null || fail "forge B1"
# shellcheck disable=SC2046
python3 "$FORGE" backup "$L" h p "$B2" '[{"name": "big", "type": "file", "data_file": "'"$C/big2"'",
	"blocks_from": {"ref_path": "big"}}]' --format 2 --parent "$B1" $(keys "$B2") >/dev/null ||
	fail "forge B2"

cat >"$TEST_TMP/snapship.conf" <<EOF
[agent]
state_dir = $TEST_TMP/state
host = h
rpo_max = 36500d

[partition p]
path = $TEST_TMP/src

EOF
{
	rgw_region a prefix="$prefix" primary=yes
	echo
	rgw_region b bucket="$RGW_BUCKET_B" prefix="$prefix" replication=agent
} >>"$TEST_TMP/snapship.conf"
S=("$SNAPSHIP" --config "$TEST_TMP/snapship.conf")
url() { echo "$RGW_EAST_ENDPOINT/$1/${prefix}h/p/$2/$3"; }
for bucket in "$RGW_BUCKET" "$RGW_BUCKET_B"; do
	for id in "$B1" "$B2"; do
		for o in data.tar.zst index.jsonl.zst manifest.json; do
			python3 "$RGW_S3" put "$(url "$bucket" "$id" $o)" "$L/h/p/$id/$o" >/dev/null ||
				fail "put $id's $o into $bucket"
		done
	done
done

# B1's data corrupted: frames flipped, the size kept
corrupt_frames "$L/h/p/$B1/data.tar.zst" "$TEST_TMP/evil"
python3 "$RGW_S3" put "$(url "$RGW_BUCKET" "$B1" data.tar.zst)" "$TEST_TMP/evil" >/dev/null ||
	fail "put the corrupt copy"

rc=0
"${S[@]}" restore p --id "$B2" --to "$TEST_TMP/r" >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
cat "$TEST_TMP/out" "$TEST_TMP/err"
[ "$rc" = 0 ] || fail "restore of B2 with B1 corrupt in region a: exit $rc"
cmp "$C/big2" "$TEST_TMP/r/big" || fail "restore of B2: big differs"
grep -q "region a: .*$B1/data.tar.zst: the frame at byte [0-9]* is corrupt; taking it from region b" "$TEST_TMP/err" ||
	fail "restore of B2 does not say it took B1's frames from region b"
echo "ok: big's runs in B1, corrupt in region a, read from region b"

# export reads each run on its own, through the same read-ahead and failover
mkdir -p "$TEST_TMP/x"
rc=0
"${S[@]}" export p --id "$B2" >"$TEST_TMP/b2.tar" 2>"$TEST_TMP/err" || rc=$?
[ "$rc" = 0 ] || { cat "$TEST_TMP/err"; fail "export of B2 with B1 corrupt in region a: exit $rc"; }
tar -x -C "$TEST_TMP/x" -f "$TEST_TMP/b2.tar" || fail "tar -x of B2's export"
cmp "$C/big2" "$TEST_TMP/x/big" || fail "export of B2: big differs"
grep -q "region a: .*$B1/data.tar.zst: the frame at byte [0-9]* is corrupt; taking it from region b" "$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "export of B2 does not say it took B1's frames from region b"; }
echo "ok: export of B2 takes B1's frames from region b too"

python3 "$RGW_S3" put "$(url "$RGW_BUCKET_B" "$B1" data.tar.zst)" "$TEST_TMP/evil" >/dev/null ||
	fail "put the corrupt copy into region b"
rc=0
"${S[@]}" restore p --id "$B2" --to "$TEST_TMP/r2" >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
[ "$rc" = 1 ] && grep -q "$B1" "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "B1 corrupt everywhere: exit $rc, or B1 not named"; }
echo "ok: B1 corrupt in both regions fails naming it: $(head -c 300 "$TEST_TMP/err")"
rc=0
"${S[@]}" export p --id "$B2" >/dev/null 2>"$TEST_TMP/err" || rc=$?
[ "$rc" = 1 ] && grep -q "$B1" "$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "export, B1 corrupt everywhere: exit $rc, or B1 not named"; }
echo "ok: so does its export: $(head -c 300 "$TEST_TMP/err")"
