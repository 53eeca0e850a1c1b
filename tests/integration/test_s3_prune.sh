#!/usr/bin/env bash
# Issue 12, item 2 (retention) against a real S3 store (Ceph RGW, zone
# east): prune deletes what the policy does not keep, manifest first (a
# fault injected after the manifest's DELETE leaves the data and index, the
# backup out of list, and a pending record), and the next prune finishes;
# objects no manifest names stay.
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
need_btrfs
need_rgw

sv=$(mk_subvol s3p-part)
"$GENDATA" "$sv" --json-bytes 2M --json-file-size 1M --small-files 20 --dirs 2 >/dev/null
prefix="prune-$$/"
cat >"$TEST_TMP/snapship.conf" <<EOF
[agent]
state_dir = $TEST_TMP/state
host = s3phost
# fulls: this test is about prune's mechanics (references: test_prune_refs)
max_chain = 0
[retention]
keep_last = 1
[partition s3p-part]
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
EOF
S=("$SNAPSHIP" --config "$TEST_TMP/snapship.conf")
ids=()
for _ in 1 2 3; do
	out=$("${S[@]}" --json backup) || fail "backup to S3 failed: $out"
	ids+=("$(python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup_id"])' <<<"$out")")
	sleep 1	# distinct backup ids (second resolution)
done
base="${prefix}s3phost/s3p-part"
keys() { python3 "$RGW_S3" ls "$RGW_EAST_ENDPOINT/$RGW_BUCKET" | grep -F "$base/" || true; }
# a planted object inside a backup to be deleted: no manifest names it
printf planted >"$TEST_TMP/planted"
python3 "$RGW_S3" put "$RGW_EAST_ENDPOINT/$RGW_BUCKET/$base/${ids[0]}/planted.bin" "$TEST_TMP/planted" ||
	fail "could not plant an object"

out=$("${S[@]}" prune --dry-run) || fail "prune --dry-run: exit $?: $out"
[ "$(keys | grep -c manifest.json)" = 3 ] || fail "--dry-run deleted something: $(keys)"

# oldest first: DELETE of ${ids[0]}'s manifest (1), then its objects (2) fail
rc=0
out=$(SNAPSHIP_FAULT=store.delete@2 "${S[@]}" prune 2>&1) || rc=$?
echo "$out"
[ "$rc" = 1 ] || fail "prune with a failed object deletion: exit $rc: $out"
k=$(keys)
grep -qF "$base/${ids[0]}/manifest.json" <<<"$k" && fail "the manifest of ${ids[0]} is still there"
grep -qF "$base/${ids[0]}/data.tar.zst" <<<"$k" || fail "the data of ${ids[0]} went before the fault (test broken): $k"
"${S[@]}" list | grep -q "${ids[0]}" && fail "list shows the half-deleted ${ids[0]}"
grep -qF "$base/${ids[1]}/" <<<"$k" && fail "${ids[1]} was not deleted: $k"

out=$("${S[@]}" prune) || fail "the rerun: exit $?: $out"
echo "$out"
k=$(keys)
for id in "${ids[0]}" "${ids[1]}"; do
	for obj in manifest.json data.tar.zst index.jsonl.zst; do
		grep -qF "$base/$id/$obj" <<<"$k" && fail "$id/$obj left after the rerun: $k"
	done
done
for obj in manifest.json data.tar.zst index.jsonl.zst; do
	grep -qF "$base/${ids[2]}/$obj" <<<"$k" || fail "the newest backup lost $obj: $k"
done
grep -qF "$base/${ids[0]}/planted.bin" <<<"$k" || fail "prune deleted an object no manifest names"
[ -z "$(ls -A "$TEST_TMP/state/prune/s3phost/s3p-part" 2>/dev/null)" ] || fail "pending records left"
"${S[@]}" list | grep -q "${ids[2]}" || fail "list lost the newest backup"
no_snapship_snapshots "$TEST_BTRFS"
echo ok
