#!/usr/bin/env bash
# Restore of a version 2 (incremental) backup from S3 with region failover
# per referenced object (issue 14, item 3): a real version 1 full B1 in two
# S3 regions (two buckets of the harness's RGW), a version 2 backup B2
# forged on it (tests/tools/forge.py --format 2: files pointing at B1, one
# of its own) uploaded to both; B1's data object corrupted in the primary
# (frames flipped, same size): the restore of B2 takes those frames from
# region b, says so, and restores every file whole.
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"
need_btrfs
need_rgw
need_cmd python3 zstd xxhsum

export SNAPSHIP_S3_MAX_ATTEMPTS=3
FORGE=$SRC_DIR/tests/tools/forge.py
prefix="rv2-$$/"
src=$(mk_subvol rv2src)
head -c 300000 /dev/urandom >"$src/a"
head -c 200000 /dev/urandom >"$src/b"
printf small >"$src/c"

cat >"$TEST_TMP/snapship.conf" <<EOF
[agent]
state_dir = $TEST_TMP/state
host = h
frame_size = 64K

[partition p]
path = $src

EOF
{
	rgw_region a prefix="$prefix" primary=yes
	echo
	rgw_region b bucket="$RGW_BUCKET_B" prefix="$prefix" replication=agent
} >>"$TEST_TMP/snapship.conf"
S=("$SNAPSHIP" --config "$TEST_TMP/snapship.conf")
# a proxy in the environment is not used for this host's own endpoint (plain
# http would leave the host through it): one that refuses every connection
out=$(http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 ALL_PROXY=http://127.0.0.1:9 \
	"${S[@]}" backup p --json) || fail "backup B1 with http_proxy set (used for a loopback endpoint?): $out"
B1=$(python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup_id"])' <<<"$out")
B2=$(python3 -c '
import datetime, sys
t = datetime.datetime.strptime(sys.argv[1][:16], "%Y%m%dT%H%M%SZ")
print((t + datetime.timedelta(minutes=1)).strftime("%Y%m%dT%H%M%SZ") + "-000002")' "$B1")
url() { echo "$RGW_EAST_ENDPOINT/$1/${prefix}h/p/$2/$3"; }

# B1 fetched into a local directory store, B2 forged on it with the
# region's prefix in its keys, then uploaded to both regions (manifest last)
L=$TEST_TMP/local
mkdir -p "$L/h/p/$B1"
for o in manifest.json index.jsonl.zst data.tar.zst; do
	python3 "$RGW_S3" get "$(url "$RGW_BUCKET" "$B1" $o)" "$L/h/p/$B1/$o" || fail "get B1's $o"
done
python3 "$FORGE" backup "$L" h p "$B2" '[
	{"name": "a", "type": "file", "ref_path": "a"},
	{"name": "b-renamed", "type": "file", "ref_path": "b", "mode": 384},
	{"name": "c", "type": "file", "data": "changed in B2"}]' --format 2 --parent "$B1" \
	--manifest-set "data.key=\"${prefix}h/p/$B2/data.tar.zst\"" \
	--manifest-set "index.key=\"${prefix}h/p/$B2/index.jsonl.zst\"" >/dev/null || fail "forge B2"
for bucket in "$RGW_BUCKET" "$RGW_BUCKET_B"; do
	for o in data.tar.zst index.jsonl.zst manifest.json; do
		python3 "$RGW_S3" put "$(url "$bucket" "$B2" $o)" "$L/h/p/$B2/$o" >/dev/null ||
			fail "put B2's $o into $bucket"
	done
done

# B1's data corrupted in region a: frames flipped, the size kept
corrupt_frames "$L/h/p/$B1/data.tar.zst" "$TEST_TMP/evil"
python3 "$RGW_S3" put "$(url "$RGW_BUCKET" "$B1" data.tar.zst)" "$TEST_TMP/evil" >/dev/null ||
	fail "put the corrupt copy"

rc=0
"${S[@]}" restore p --id "$B2" --to "$TEST_TMP/r" >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
cat "$TEST_TMP/out" "$TEST_TMP/err"
[ "$rc" = 0 ] || fail "restore of B2 with B1 corrupt in region a: exit $rc"
cmp "$src/a" "$TEST_TMP/r/a" && cmp "$src/b" "$TEST_TMP/r/b-renamed" ||
	fail "restore of B2: a referenced file's content differs"
[ "$(cat "$TEST_TMP/r/c")" = "changed in B2" ] || fail "restore of B2: c"
[ "$(stat -c %a "$TEST_TMP/r/b-renamed")" = 600 ] || fail "restore of B2: b-renamed's mode from the index"
[ "$(find "$TEST_TMP/r" -mindepth 1 | wc -l)" = 3 ] || { find "$TEST_TMP/r"; fail "restore of B2: other entries"; }
grep -q "region a: .*$B1/data.tar.zst: the frame at byte [0-9]* is corrupt; taking it from region b" "$TEST_TMP/err" ||
	fail "restore of B2 does not say it took B1's frames from region b"
echo "ok: B2's content in B1, corrupt in region a, read from region b"
