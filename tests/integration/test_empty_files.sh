#!/usr/bin/env bash
# Empty files where the reader has nothing after them: a partition whose
# last entries (in walk order) are empty files, alone or hard-linked, made
# backup spin forever in the packer (the reader never marks an empty file
# as read, and waited for it when no file with data followed). Each layout
# is backed up under a time limit and restored, trees compared.
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_btrfs
store=$TEST_TMP/store
mkdir -p "$store"

# layout NAME: fill subvolume $sv with the layout NAME
layout() {
	case $1 in
	only-empty) : >"$sv/empty" ;;
	data-then-empty) echo data >"$sv/a" && : >"$sv/z" ;;
	empty-hardlinks) echo data >"$sv/a" && : >"$sv/e1" && ln "$sv/e1" "$sv/e2" ;;
	empty-dir-last) echo data >"$sv/a" && mkdir "$sv/d" && : >"$sv/d/empty" ;;
	esac
}

for l in only-empty data-then-empty empty-hardlinks empty-dir-last; do
	sv=$(mk_subvol "ef-$l")
	layout "$l"
	rc=0
	timeout 60 "$SNAPSHIP" --host efhost --state-dir "$TEST_TMP/state" \
		backup "$sv" --to "$store" >"$TEST_TMP/out" 2>&1 || rc=$?
	[ "$rc" = 0 ] || fail "$l: backup exited $rc (124: it hung): $(cat "$TEST_TMP/out")"
	"$SNAPSHIP" --host efhost --state-dir "$TEST_TMP/state" \
		restore "ef-$l" --from "$store" --to "$TEST_BTRFS/ef-$l-r" >"$TEST_TMP/out" 2>&1 ||
		fail "$l: restore failed: $(cat "$TEST_TMP/out")"
	assert_trees_equal "$sv" "$TEST_BTRFS/ef-$l-r"
	no_snapship_snapshots "$TEST_BTRFS"
done
echo PASS
