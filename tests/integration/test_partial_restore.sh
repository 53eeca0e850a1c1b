#!/usr/bin/env bash
# Partial restores (design §8): `restore --path P` restores only P (a file,
# or a directory with everything under it) plus the directories leading to
# it, with the original content and metadata, and fetches only the frames
# it needs (restore --json: frames_read < frames_total, bytes_read less than
# the data object).
#   - one file: --path segments/seg-000001.json
#   - one subtree: --path small/d003
#   - several --path at once, and a "./"-prefixed path
#   - a path not in the backup: exit 1, the message says so, no target made
#   - an unsafe --path (.. or absolute): exit 2
# shellcheck disable=SC2015 # "A && B || fail ...": fail unless both hold
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_btrfs
need_cmd python3
[ -x "${GENDATA:-}" ] || fail "GENDATA='${GENDATA:-}' is not an executable (run make)"

state=$TEST_TMP/state
store=$TEST_TMP/store
mkdir -p "$store"
part=$(mk_subvol pr-part)

cleanup() {
	local sv
	for sv in "$TEST_BTRFS"/pr-r* "$part"; do
		[ -d "$sv" ] && btrfs subvolume delete "$sv" >/dev/null 2>&1
	done
	return 0
}
trap cleanup EXIT

# 24 MiB of segments then the small files: ~7 frames of 4 MiB
"$GENDATA" "$part" --json-bytes 24M --json-file-size 2M --small-files 300 --dirs 16 --seed 6 >/dev/null
chmod 0600 "$part/segments/seg-000001.json"
touch -d '2005-05-05 05:05:05.555555555 UTC' "$part/segments/seg-000001.json"
touch -d '2006-06-06 06:06:06.666666666 UTC' "$part/small/d003"
"$SNAPSHIP" --state-dir "$state" backup "$part" --to "$store" >/dev/null || fail "backup failed"
no_snapship_snapshots "$TEST_BTRFS"

# restore_json TARGET ARGS...: restore --json into TARGET, print its JSON
restore_json() {
	local tgt=$1
	shift
	"$SNAPSHIP" restore pr-part --from "$store" --to "$tgt" --json "$@" 2>"$TEST_TMP/err" ||
		{ cat "$TEST_TMP/err" >&2; fail "restore $* failed"; }
}
jget() { python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }

# only_these DIR PATH...: DIR holds exactly PATHs (relative, with parents)
only_these() {
	local dir=$1 want got
	shift
	want=$(printf '%s\n' "$@" | LC_ALL=C sort)
	got=$(cd "$dir" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort)
	if [ "$want" != "$got" ]; then
		diff <(echo "$want") <(echo "$got") || true
		fail "$dir holds other entries than expected (diff: - expected, + found)"
	fi
}

# frames_check JSON WHAT: if restore --json reports frames, fewer than all were read
frames_check() {
	local json=$1 what=$2 read total
	read=$(jget frames_read <<<"$json")
	total=$(jget frames_total <<<"$json")
	if [ -z "$read" ] || [ -z "$total" ]; then
		echo "note: restore --json has no frames_read/frames_total; frame count not checked"
		return 0
	fi
	echo "$what: read $read of $total frames"
	[ "$total" -ge 5 ] || fail "test bug: the backup has only $total frames"
	[ "$read" -ge 1 ] || fail "$what: frames_read is $read"
	[ "$read" -lt "$total" ] || fail "$what: read all $total frames for a partial restore"
	# the bytes downloaded: more than nothing, less than the data object
	local got size
	got=$(jget bytes_read <<<"$json")
	size=$(find "$store" -name data.tar.zst -printf '%s\n' | head -n 1)
	echo "$what: downloaded $got of the data object's $size bytes (and the index)"
	[ "$got" -gt 0 ] && [ "$got" -lt "$size" ] ||
		fail "$what: bytes_read $got, the data object has $size bytes"
}

# ---- one file ----------------------------------------------------------------------

r1=$TEST_BTRFS/pr-r1
j=$(restore_json "$r1" --path segments/seg-000001.json)
echo "$j"
only_these "$r1" segments segments/seg-000001.json
cmp "$part/segments/seg-000001.json" "$r1/segments/seg-000001.json" || fail "the restored file differs"
[ "$(stat -c '%a %u %g %y' "$r1/segments/seg-000001.json")" = \
	"$(stat -c '%a %u %g %y' "$part/segments/seg-000001.json")" ] ||
	fail "the restored file's metadata differs: $(stat -c '%a %u %g %y' "$r1/segments/seg-000001.json")"
[ "$(jget files <<<"$j")" = 1 ] || fail "restore --json reports $(jget files <<<"$j") files for one file"
frames_check "$j" "one file"
read1=$(jget frames_read <<<"$j")
[ -z "$read1" ] || [ "$read1" -le 2 ] || fail "one 2 MiB file needed $read1 frames (at most 2 of 4 MiB)"

# ---- one subtree ---------------------------------------------------------------------

r2=$TEST_BTRFS/pr-r2
j=$(restore_json "$r2" --path small/d003)
echo "$j"
expected=(small small/d003)
while IFS= read -r p; do expected+=("small/d003/$p"); done < <(cd "$part/small/d003" && find . -mindepth 1 -printf '%P\n')
[ ${#expected[@]} -gt 5 ] || fail "test bug: small/d003 has too few files"
only_these "$r2" "${expected[@]}"
assert_trees_equal "$part/small/d003" "$r2/small/d003"
[ "$(stat -c %y "$r2/small/d003")" = "$(stat -c %y "$part/small/d003")" ] ||
	fail "the restored subtree root small/d003 has the wrong mtime"
frames_check "$j" "one subtree"

# ---- several paths, ./ prefix ------------------------------------------------------------

r3=$TEST_BTRFS/pr-r3
j=$(restore_json "$r3" --path ./segments/seg-000004.json --path small/d010 --path segments/seg-000000.json)
expected=(segments segments/seg-000000.json segments/seg-000004.json small small/d010)
while IFS= read -r p; do expected+=("small/d010/$p"); done < <(cd "$part/small/d010" && find . -mindepth 1 -printf '%P\n')
only_these "$r3" "${expected[@]}"
cmp "$part/segments/seg-000004.json" "$r3/segments/seg-000004.json" || fail "seg-000004 differs"
cmp "$part/segments/seg-000000.json" "$r3/segments/seg-000000.json" || fail "seg-000000 differs"
assert_trees_equal "$part/small/d010" "$r3/small/d010"
frames_check "$j" "three paths"

# ---- errors ----------------------------------------------------------------------------------

rc=0
"$SNAPSHIP" restore pr-part --from "$store" --to "$TEST_BTRFS/pr-r4" --path segments/nope.json \
	>"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
cat "$TEST_TMP/err"
[ "$rc" = 1 ] || fail "restore of a path not in the backup: exit $rc, expected 1"
grep -q 'segments/nope.json' "$TEST_TMP/err" && grep -qiE 'not in|no such|not found' "$TEST_TMP/err" ||
	fail "the message does not say segments/nope.json is not in the backup"
[ ! -e "$TEST_BTRFS/pr-r4" ] || [ -z "$(ls -A "$TEST_BTRFS/pr-r4")" ] ||
	fail "restore of a missing path wrote files"

for bad in ../etc/passwd /etc/passwd segments/../../x; do
	rc=0
	"$SNAPSHIP" restore pr-part --from "$store" --to "$TEST_BTRFS/pr-r5" --path "$bad" \
		>"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
	[ "$rc" = 2 ] || fail "--path $bad: exit $rc, expected 2 (usage): $(cat "$TEST_TMP/err")"
	grep -q -- '--path' "$TEST_TMP/err" || fail "--path $bad: the message does not name --path"
	[ ! -e "$TEST_BTRFS/pr-r5" ] || fail "--path $bad: the restore made its target anyway"
done

no_snapship_snapshots "$TEST_BTRFS"
[ -z "$(ls -A "$state/journal" 2>/dev/null)" ] || fail "journal not empty"
echo "partial restore ok"
