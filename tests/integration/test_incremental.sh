#!/usr/bin/env bash
# Incremental backups written (issue 14, parts 1, 2, 4; doc/incremental.md):
# a chain of backups of a btrfs subvolume with churn of every kind between
# them, each checked with stock tools only (tests/tools/v2check.py rebuilds
# the tree from the index and the referenced data objects with zstd and
# Python's tarfile — no snapship restore):
#   - the first backup is a full (version 1), the next ones version 2
#     incrementals whose parent is the previous backup;
#   - each rebuilt tree equals a read-only snapshot of the source taken
#     right after the backup (content, modes, owners, times, xattrs, hard
#     links, symlinks, fifos, holes);
#   - an incremental's data object holds exactly the new and changed files
#     (tar -t); unchanged and metadata-only-changed files are referenced;
#     an incremental with no change has an empty tar;
#   - its manifest names its parent, the references its entries use, chain
#     and full_id; the summary line and --json say what changed;
#   - renamed files and directories, chmod/chown/xattr-only changes and a
#     file whose link count changed upload no content (pass 1's rename map,
#     the metadata-only hash);
#   - backup --full, and max_chain and full_every in the config, force a full;
#   - a parent whose data object is not the copy its manifest recorded
#     (size, ETag) gives a full;
#   - kill -9 in the middle of an incremental leaves no backup visible, and
#     the next backup succeeds as an incremental of the last committed one.
# shellcheck disable=SC2015 # "A && B || fail ...": fail unless both hold
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_btrfs
need_cmd python3 zstd setfattr mkfifo
[ -x "${SNAPSHIP:-}" ] || fail "SNAPSHIP='${SNAPSHIP:-}' is not an executable (run make)"

V2=$SRC_DIR/tests/tools/v2check.py
src=$(mk_subvol incr_src)
store=$TEST_TMP/store
mkdir -p "$store"
refs=$(mk_subvol incr_refs)
cleanup() {
	for s in "$refs"/*; do
		[ -d "$s" ] && btrfs subvolume delete "$s" >/dev/null 2>&1 || true
	done
	btrfs subvolume delete "$refs" "$src" >/dev/null 2>&1 || true
}
trap cleanup EXIT
# conf [KEY = VALUE]...: the config, with extra [agent] lines (max_chain
# is set: the default may differ while the restore of incrementals lands)
conf() {
	{
		printf '[agent]\nhost = h\nstate_dir = %s\nmax_chain = 180\n' "$TEST_TMP/state"
		printf '%s\n' "$@"
		printf '[region a]\nstore = file\npath = %s\nprimary = yes\n' "$store"
		printf '[partition p]\npath = %s\n' "$src"
	} >"$TEST_TMP/snapship.conf"
}
conf
S=("$SNAPSHIP" --config "$TEST_TMP/snapship.conf")

# jq-less field reading: field FILE KEY (of the first object of the array)
field() {
	python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[0][sys.argv[2]]; print("null" if v is None else v)' "$1" "$2"
}
mfield() {	# mfield ID KEY: a top-level manifest field
	python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print("null" if v is None else v)' \
		"$store/h/p/$1/manifest.json" "$2"
}

# backup [ARGS...]: one backup of src; its id in $id,
# its --json in $TEST_TMP/b.json, its text line in $TEST_TMP/b.txt; then
# a read-only snapshot of the source (what the backup must hold) and the
# rebuilt tree compared with it.
n=0
backup() {
	local line
	n=$((n + 1))
	"${S[@]}" backup p "$@" >"$TEST_TMP/b.txt" 2>"$TEST_TMP/b.err" ||
		{ cat "$TEST_TMP/b.txt" "$TEST_TMP/b.err"; fail "backup $n failed"; }
	line=$(cat "$TEST_TMP/b.txt")
	id=$(awk '{print $2}' "$TEST_TMP/b.txt" | head -n1)
	id=${id%:}
	[ -f "$store/h/p/$id/manifest.json" ] || fail "backup $n: no manifest for '$id' ($line)"
	echo "backup $n: $line"
	check_rebuild "$id"
}

check_rebuild() {	# check_rebuild ID: rebuilt tree == source now
	btrfs subvolume snapshot -r "$src" "$refs/$1" >/dev/null
	python3 "$V2" rebuild "$store" h p "$1" "$TEST_TMP/rb_$1" ||
		fail "v2check cannot rebuild $1"
	assert_trees_equal "$refs/$1" "$TEST_TMP/rb_$1"
	rm -rf "$TEST_TMP/rb_$1"
}

# tarlist_is ID FILE...: the data object of ID holds exactly these files
tarlist_is() {
	local bid=$1 want got
	shift
	want=$(printf '%s\n' "$@" | sed '/^$/d' | LC_ALL=C sort)
	got=$(python3 "$V2" tarlist "$store" h p "$bid" | LC_ALL=C sort)
	[ "$want" = "$got" ] || fail "data object of $bid holds [$(echo "$got" | tr '\n' ' ')], expected [$(echo "$want" | tr '\n' ' ')]"
}

expect_incr() {	# expect_incr ID PARENT: a version 2 incremental of PARENT
	[ "$(mfield "$1" format_version)" = 2 ] || fail "$1 is not format version 2"
	[ "$(mfield "$1" parent)" = "$2" ] || fail "$1's parent is $(mfield "$1" parent), expected $2"
	grep -q "incremental from $2:" "$TEST_TMP/b.txt" || fail "$1: no 'incremental from $2' in the summary line"
}
expect_full() {
	[ "$(mfield "$1" format_version)" = 1 ] || fail "$1 is not a full (format version 1)"
	! grep -q "incremental from" "$TEST_TMP/b.txt" || fail "$1: a full's line says incremental"
}

# ---- backup 1: a full -------------------------------------------------------
mkdir -p "$src/d1/sub" "$src/d2" "$src/gone"
head -c 300000 /dev/urandom >"$src/append.bin"
head -c 200000 /dev/urandom >"$src/rewrite.bin"
head -c 500000 /dev/urandom >"$src/truncate.bin"
head -c 100000 /dev/urandom >"$src/d1/sub/keep.bin"
head -c 120000 /dev/urandom >"$src/d1/rename_me.bin"
head -c 130000 /dev/urandom >"$src/d2/moved_with_dir.bin"
head -c 140000 /dev/urandom >"$src/chmod.bin"
head -c 150000 /dev/urandom >"$src/xattr.bin"
head -c 160000 /dev/urandom >"$src/to_symlink.bin"
head -c 170000 /dev/urandom >"$src/gone/x.bin"
head -c 180000 /dev/urandom >"$src/delete.bin"
head -c 90000 /dev/urandom >"$src/linked.bin"
ln "$src/linked.bin" "$src/linked2.bin"
head -c 91000 /dev/urandom >"$src/solo.bin"
echo small >"$src/small.txt"
: >"$src/empty"
ln -s append.bin "$src/sym"
mkfifo "$src/fifo"
truncate -s 8M "$src/sparse.img"
printf 'head' | dd of="$src/sparse.img" conv=notrunc status=none
backup
F1=$id
expect_full "$F1"

# ---- backup 2: no change at all: an empty tar ------------------------------
backup
B2=$id
expect_incr "$B2" "$F1"
tarlist_is "$B2"
[ "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["references"]))' \
	"$store/h/p/$B2/manifest.json")" = 1 ] || fail "$B2 should reference its parent only"
[ "$(mfield "$B2" full_id)" = "$F1" ] && [ "$(mfield "$B2" chain)" = 1 ] ||
	fail "$B2: full_id/chain $(mfield "$B2" full_id)/$(mfield "$B2" chain), expected $F1/1"

# ---- backup 3: content churn ------------------------------------------------
head -c 5000 /dev/urandom >>"$src/append.bin"
head -c 200000 /dev/urandom >"$src/rewrite.bin.tmp"
touch -r "$src/rewrite.bin" "$src/rewrite.bin.tmp"   # same size and mtime: ctime tells
mv "$src/rewrite.bin.tmp" "$src/rewrite.bin"
truncate -s 1000 "$src/truncate.bin"
rm "$src/delete.bin"
rm -r "$src/gone"
mkdir -p "$src/newdir/deeper"
head -c 7000 /dev/urandom >"$src/newdir/deeper/new.bin"
head -c 7100 /dev/urandom >"$src/new.bin"
"${S[@]}" --json backup p >"$TEST_TMP/j.json" ||
	fail "backup 3 (--json) failed"
id=$(field "$TEST_TMP/j.json" backup_id)
B3=$id
check_rebuild "$B3"
[ "$(field "$TEST_TMP/j.json" parent)" = "$B2" ] || fail "$B3 --json: parent is not $B2"
[ "$(field "$TEST_TMP/j.json" deleted)" = 3 ] ||
	fail "$B3 --json: deleted $(field "$TEST_TMP/j.json" deleted), expected 3 (delete.bin, gone, gone/x.bin)"
tarlist_is "$B3" append.bin new.bin newdir/deeper/new.bin rewrite.bin truncate.bin


# ---- backup 4: metadata only, links, a symlink, a hole written -------------
chmod 600 "$src/chmod.bin"
chown 1234:5678 "$src/d1/sub/keep.bin"
setfattr -n user.k -v value "$src/xattr.bin"
rm "$src/to_symlink.bin"
ln -s small.txt "$src/to_symlink.bin"
ln "$src/solo.bin" "$src/solo_link.bin"             # a hard link made
cp "$src/linked2.bin" "$src/linked2.tmp"            # and one broken
mv "$src/linked2.tmp" "$src/linked2.bin"
printf 'in the hole' | dd of="$src/sparse.img" bs=1 seek=4194304 conv=notrunc status=none
backup
B4=$id
expect_incr "$B4" "$B3"
tarlist_is "$B4" linked2.bin sparse.img
grep -Eq ', [5-9][0-9]* metadata-only' "$TEST_TMP/b.txt" ||
	fail "$B4: expected at least 5 metadata-only entries"
# snapship itself reads the incremental's manifest and index
"${S[@]}" --json ls p --id "$B4" >"$TEST_TMP/ls.json" || fail "ls --json of $B4 failed"
python3 - "$TEST_TMP/ls.json" <<'PY' || fail "ls --json of $B4 does not list the tree"
import json, sys
d = json.load(open(sys.argv[1]))
types = {e["name"]: e["type"] for e in d["entries"]}
want = {"sparse.img": "file", "to_symlink.bin": "symlink", "solo_link.bin": "hardlink", "d1": "dir"}
assert all(types.get(k) == v for k, v in want.items()), types
PY

echo "incremental chain: ok"

# ---- renames: no content uploaded -------------------------------------------
mv "$src/d1/rename_me.bin" "$src/d1/renamed.bin"
mv "$src/d2" "$src/d2_moved"
backup
B5=$id
expect_incr "$B5" "$B4"
grep -q ', 1 new, 1 deleted, .* 2 renamed,' "$TEST_TMP/b.txt" ||
	fail "$B5: expected 1 new and 1 deleted directory, 2 renamed files"
tarlist_is "$B5"
echo "renames: ok"

# ---- backup --full, and max_chain -------------------------------------------
backup --full
F6=$id
expect_full "$F6"
echo more >>"$src/small.txt"
mv "$src/d1/renamed.bin" "$src/d1/renamed_again.bin"   # against a version 1 parent
backup
B7=$id
grep -q '1 changed, 0 new, 0 deleted, 1 metadata-only, 1 renamed,' "$TEST_TMP/b.txt" ||
	fail "$B7: expected 1 changed and 1 renamed (against a version 1 parent)"
expect_incr "$B7" "$F6"
tarlist_is "$B7" small.txt
[ "$(mfield "$B7" full_id)" = "$F6" ] || fail "$B7: full_id is not $F6"
conf "max_chain = 1"
backup
F8=$id
expect_full "$F8"
grep -q "; full: max_chain (1) reached" "$TEST_TMP/b.txt" || fail "$F8: the line does not say max_chain made it a full"
conf "max_chain = 0"
backup
expect_full "$id"
conf "full_every = 2s"
sleep 3   # the chain's full (the last backup) is older than 2 s now
backup
expect_full "$id"
grep -q "; full: full_every (2 s) reached" "$TEST_TMP/b.txt" || fail "$id: the line does not say full_every made it a full"
conf
echo "--full, max_chain and full_every: ok"

# ---- kill -9 in the middle of an incremental ---------------------------------
backup
B9=$id
head -c $((40 << 20)) /dev/urandom >"$src/big.bin"
conf "max_read_rate = 2M"
manifests() { find "$store" -name manifest.json | wc -l; }
before=$(manifests)
"${S[@]}" backup p >"$TEST_TMP/k.out" 2>&1 &
kpid=$!
sleep 3
kill -9 "$kpid"
wait "$kpid" 2>/dev/null || true
[ "$(manifests)" = "$before" ] || fail "a killed incremental left a manifest"
"${S[@]}" list p | grep -q "$B9" || fail "list lost $B9 after the kill"
conf
backup
expect_incr "$id" "$B9"
tarlist_is "$id" big.bin
no_snapship_snapshots "$TEST_BTRFS"
echo "kill -9: ok"

# ---- a parent whose data object is not the one its manifest recorded ---------
printf 'x' >>"$store/h/p/$id/data.tar.zst"
last=$id
backup
expect_full "$id"
grep -q "; full: the data object of $last is not the copy its manifest recorded" "$TEST_TMP/b.txt" ||
	fail "$id: the line does not say why the changed parent object made it a full"
echo "changed parent object: ok"
