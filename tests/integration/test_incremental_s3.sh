#!/usr/bin/env bash
# Incrementals on S3 (Ceph RGW, issue 14): the parent is found by listing the
# bucket, its objects checked with HEAD (size, ETag as the multipart commit
# recorded it) and its index read back; the second backup is a version 2
# incremental whose data object holds only the changed file, and snapship
# ls reads it.  (The content is checked with stock tools in
# test_incremental.sh, on a directory store.)
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"
need_btrfs
need_rgw
need_cmd python3

src=$(mk_subvol incr_s3)
"$GENDATA" "$src" --json-bytes 16M --json-file-size 4M --small-files 100 >/dev/null
C=$TEST_TMP/snapship.conf
cat >"$C" <<EOF
[agent]
state_dir = $TEST_TMP/state
host = hs3
max_chain = 180
[partition p]
path = $src
[region east]
store = s3
endpoint = $RGW_EAST_ENDPOINT
bucket = $RGW_BUCKET
prefix = incr-$$/
sigv4_region = $RGW_REGION
access_key_id = $RGW_ACCESS_KEY_ID
secret_access_key_file = $RGW_SECRET_ACCESS_KEY_FILE
part_size = 5M
primary = yes
EOF
S=("$SNAPSHIP" --config "$C")
field() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[0][sys.argv[2]]; print("null" if v is None else v)' "$1" "$2"; }

"${S[@]}" --json backup p >"$TEST_TMP/1.json" || fail "first backup failed"
first=$(field "$TEST_TMP/1.json" backup_id)
[ "$(field "$TEST_TMP/1.json" parent)" = null ] || fail "the first backup is not a full"
echo appended >>"$src/segments/seg-000001.json"
"${S[@]}" --json backup p >"$TEST_TMP/2.json" || { cat "$TEST_TMP/2.json"; fail "second backup failed"; }
cat "$TEST_TMP/2.json"
[ "$(field "$TEST_TMP/2.json" parent)" = "$first" ] ||
	fail "the second backup is not an incremental of $first (full_reason: $(field "$TEST_TMP/2.json" full_reason))"
[ "$(field "$TEST_TMP/2.json" changed)" = 1 ] || fail "expected 1 changed file"
new=$(field "$TEST_TMP/2.json" new_bytes)
size=$(stat -c %s "$src/segments/seg-000001.json")
# the segment was 4 MiB: a file in blocks (doc/incremental.md "Large files
# in blocks"), of which only the appended block is stored
[ "$new" = $((size - 4194304)) ] || fail "new_bytes $new, expected the appended block's $((size - 4194304))"
id=$(field "$TEST_TMP/2.json" backup_id)
"${S[@]}" --json ls p --id "$id" segments >"$TEST_TMP/ls.json" || fail "ls of the incremental failed"
grep -q 'seg-000001.json' "$TEST_TMP/ls.json" || fail "ls of the incremental does not list the segment"
echo "incremental on S3: ok"
