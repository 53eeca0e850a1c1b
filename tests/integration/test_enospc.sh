#!/usr/bin/env bash
# Running out of space (design §1, §8):
#   - restore into a target on a filesystem too small for the backup (an
#     8 MiB tmpfs; the backup holds ~20 MiB): exit 1, the message says the
#     space ran out and that the partial restore is kept (and where), the
#     target still exists with the partial content, no snapshot leaks;
#     after freeing space, restore --force over the partial target works;
#   - a backup into a store on a filesystem too small for it (a 1 MiB
#     tmpfs): exit 1, the message mentions space, no temporary or final
#     object is left in the store, nothing is listed, no snapshot leaks.
# shellcheck disable=SC2015 # "A && B || fail ...": fail unless both hold
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_btrfs
need_cmd python3 mount umount
[ -x "${GENDATA:-}" ] || fail "GENDATA='${GENDATA:-}' is not an executable (run make)"

state=$TEST_TMP/state
store=$TEST_TMP/store
small=$TEST_TMP/small
tiny=$TEST_TMP/tiny-store
mkdir -p "$store" "$small" "$tiny"
part=$(mk_subvol nospc-part)

cleanup() {
	local mp
	for mp in "$small" "$tiny"; do
		mountpoint -q "$mp" && { umount "$mp" 2>/dev/null || umount -l "$mp"; }
	done
	btrfs subvolume delete "$part" >/dev/null 2>&1
	return 0
}
trap cleanup EXIT

no_leaks() {
	no_snapship_snapshots "$TEST_BTRFS"
	if [ -d "$state/journal" ] && [ -n "$(ls -A "$state/journal")" ]; then
		fail "journal not empty after $1: $(ls -A "$state/journal")"
	fi
}

"$GENDATA" "$part" --json-bytes 16M --json-file-size 2M --small-files 300 --seed 9 >/dev/null
"$SNAPSHIP" --state-dir "$state" backup "$part" --to "$store" >/dev/null || fail "backup failed"
no_leaks "the backup"

# ---- restore into a too-small filesystem ------------------------------------------

mount -t tmpfs -o size=8m,mode=0755 tmpfs "$small" || skip "cannot mount a tmpfs"
tgt=$small/target
rc=0
"$SNAPSHIP" restore nospc-part --from "$store" --to "$tgt" >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
cat "$TEST_TMP/out" "$TEST_TMP/err"
[ "$rc" = 1 ] || fail "restore into a full filesystem: exit $rc, expected 1"
grep -qi 'space' "$TEST_TMP/err" || fail "the message does not say the space ran out"
grep -qi 'partial' "$TEST_TMP/err" && grep -qF "$tgt" "$TEST_TMP/err" ||
	fail "the message does not say the partial restore is kept in $tgt"
[ -d "$tgt" ] || fail "the partial restore target $tgt is gone"
nfiles=$(find "$tgt" -type f | wc -l)
[ "$nfiles" -gt 0 ] || fail "the partial restore target holds no files"
used=$(du -sk "$tgt" | cut -f1)
echo "partial restore: $nfiles files, ${used} KiB"
[ "$used" -gt 1024 ] || fail "the partial restore holds only ${used} KiB; it did not fill the filesystem"
# the partial content is real data: files written before the space ran out
# are intact (the files in flight when it ran out may be incomplete)
intact=0
while IFS= read -r f; do
	cmp -s "$tgt/$f" "$part/$f" && intact=$((intact + 1))
done < <(cd "$tgt" && find . -type f -size +0 -printf '%P\n')
echo "intact files in the partial restore: $intact"
[ "$intact" -gt 0 ] || fail "no file of the partial restore has its original content"
no_leaks "the failed restore"

# without --force the partial target is refused; after more space, --force finishes it
rc=0
"$SNAPSHIP" restore nospc-part --from "$store" --to "$tgt" >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
[ "$rc" != 0 ] && grep -qiE 'not empty|--force' "$TEST_TMP/err" ||
	fail "restore into the non-empty partial target without --force: exit $rc: $(cat "$TEST_TMP/err")"
mount -o remount,size=64m "$small" || fail "cannot grow the tmpfs"
"$SNAPSHIP" restore nospc-part --from "$store" --to "$tgt" --force >/dev/null 2>"$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "restore --force over the partial target fails after space was freed"; }
assert_trees_equal "$part" "$tgt"
umount "$small"
no_leaks "the forced restore"

# ---- backup into a too-small store --------------------------------------------------

mount -t tmpfs -o size=1m,mode=0755 tmpfs "$tiny" || skip "cannot mount a tmpfs"
rc=0
"$SNAPSHIP" --state-dir "$state" backup "$part" --to "$tiny" >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
cat "$TEST_TMP/out" "$TEST_TMP/err"
[ "$rc" = 1 ] || fail "backup into a full store: exit $rc, expected 1"
grep -qi 'space' "$TEST_TMP/err" || fail "the backup's message does not say the store ran out of space"
left=$(find "$tiny" -type f)
[ -z "$left" ] || fail "the failed backup left files in the store: $left"
out=$("$SNAPSHIP" list --from "$tiny" nospc-part --json) || fail "list of the full store fails"
[ "$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' <<<"$out")" = 0 ] ||
	fail "a backup that ran out of space is listed"
umount "$tiny"
no_leaks "the backup into a full store"

echo "enospc ok"
