#!/usr/bin/env bash
# S3 against a real object store (Ceph RGW, zone east): backup and restore
# round trips, byte for byte and metadata for metadata, with keys and
# prefixes holding spaces, '+', '=', '%' and non-ASCII characters; a
# partition larger than one multipart part and one smaller; an empty
# partition; a single file fetched by ranged GETs; deep verify.
set -euo pipefail
. "$SRC_DIR/tests/lib.sh"
need_btrfs
need_rgw

export SNAPSHIP_S3_ENDPOINT=$RGW_EAST_ENDPOINT
export AWS_ACCESS_KEY_ID=$RGW_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$RGW_SECRET_ACCESS_KEY
export AWS_REGION=$RGW_REGION
state=$TEST_TMP/state
S=("$SNAPSHIP" --state-dir "$state")
prefix="rt $$/sp ace+plus=eq%pct/ünï/"
store="s3://$RGW_BUCKET/$prefix"

# ---- a partition bigger than one part (8 MiB parts): multipart ------------
big=$(mk_subvol big)
"$GENDATA" "$big" --json-bytes 64M --json-file-size 16M --small-files 200 >/dev/null
printf 'odd name\n' >"$big/a file with spaces+plus=eq%pct ü.json"
setfattr -n user.k -v v "$big/a file with spaces+plus=eq%pct ü.json"
ln "$big/segments/seg-000000.json" "$big/hardlink"

out=$("${S[@]}" backup "$big" --to "$store" --json) || fail "backup to S3 failed: $out"
python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[0]["stored_bytes"] > 8<<20, d' <<<"$out" ||
	fail "expected a backup larger than one part: $out"
id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup_id"])' <<<"$out")
no_snapship_snapshots "$TEST_BTRFS"

# the objects are where design §4 says, under the odd prefix
keys=$(python3 "$RGW_S3" ls "$RGW_EAST_ENDPOINT/$RGW_BUCKET")
for obj in data.tar.zst index.jsonl.zst manifest.json; do
	grep -qxF "${prefix}$(hostname)/big/$id/$obj" <<<"$keys" ||
		fail "object $obj not found under the prefix; keys: $(head -5 <<<"$keys")"
done

"${S[@]}" list --from "$store" | grep -q "$id" || fail "list does not show $id"
"${S[@]}" restore big --from "$store" --to "$TEST_BTRFS/big-restored" >/dev/null ||
	fail "restore from S3 failed"
assert_trees_equal "$big" "$TEST_BTRFS/big-restored"
btrfs subvolume show "$TEST_BTRFS/big-restored" >/dev/null || fail "restore target is not a subvolume"

# one file, by ranged GETs of only the frames it needs
out=$("${S[@]}" restore big --from "$store" --to "$TEST_BTRFS/one" \
	--path segments/seg-000002.json --json) || fail "single-file restore failed: $out"
cmp "$big/segments/seg-000002.json" "$TEST_BTRFS/one/segments/seg-000002.json" ||
	fail "single file differs"
python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["frames_read"] < d["frames_total"], d' <<<"$out" ||
	fail "single-file restore read every frame: $out"

"${S[@]}" verify --from "$store" --deep | grep -Eq "^big +$id +default +ok" || fail "verify --deep does not pass"

# the data object's SHA-256 in the manifest matches what the store holds
python3 "$RGW_S3" get "$RGW_EAST_ENDPOINT/$RGW_BUCKET/${prefix}$(hostname)/big/$id/manifest.json" "$TEST_TMP/m.json"
python3 "$RGW_S3" get "$RGW_EAST_ENDPOINT/$RGW_BUCKET/${prefix}$(hostname)/big/$id/data.tar.zst" "$TEST_TMP/d"
want=$(python3 -c 'import json; print(json.load(open("'"$TEST_TMP/m.json"'"))["data"]["sha256"])')
have=$(sha256sum "$TEST_TMP/d" | cut -d' ' -f1)
[ "$want" = "$have" ] || fail "stored data differs from the manifest's SHA-256"

# ---- a partition smaller than one part: single PUTs ------------------------
small=$(mk_subvol small)
"$GENDATA" "$small" --json-bytes 64K --json-file-size 64K --small-files 5 >/dev/null
"${S[@]}" backup "$small" --to "$store" >/dev/null || fail "small backup failed"
"${S[@]}" restore small --from "$store" --to "$TEST_BTRFS/small-restored" >/dev/null ||
	fail "small restore failed"
assert_trees_equal "$small" "$TEST_BTRFS/small-restored"

# ---- an empty partition -----------------------------------------------------
empty=$(mk_subvol empty)
"${S[@]}" backup "$empty" --to "$store" >/dev/null || fail "empty backup failed"
"${S[@]}" restore empty --from "$store" --to "$TEST_BTRFS/empty-restored" >/dev/null ||
	fail "empty restore failed"
assert_trees_equal "$empty" "$TEST_BTRFS/empty-restored"
[ -z "$(ls -A "$TEST_BTRFS/empty-restored")" ] || fail "the empty restore is not empty"

# nothing half-done is left in the bucket
left=$(python3 "$SRC_DIR/tests/tools/s3uploads.py" "$RGW_EAST_ENDPOINT" "$RGW_BUCKET" "$prefix")
[ -z "$left" ] || fail "incomplete multipart uploads left: $left"
no_snapship_snapshots "$TEST_BTRFS"
echo "s3 round trip ok"
