#!/usr/bin/env bash
# The harness itself: gendata is deterministic, a cp -a copy of a tree with
# every kind of entry compares equal under tree_manifest, and each kind of
# difference tree_manifest promises to see makes the comparison fail.
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_btrfs
need_cmd setfattr setfacl mkfifo mknod
[ -x "${GENDATA:-}" ] || fail "GENDATA='${GENDATA:-}' is not an executable (run make)"

small=(--json-bytes 4M --json-file-size 1M --small-files 50)

# content_hash DIR: one sha256 over every regular file's path and content.
content_hash() {
	(cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) |
		sha256sum | cut -d' ' -f1
}

# ---- gendata is deterministic ----------------------------------------------

"$GENDATA" "$TEST_TMP/g1" "${small[@]}" --seed 7 >/dev/null
"$GENDATA" "$TEST_TMP/g2" "${small[@]}" --seed 7 >/dev/null
"$GENDATA" "$TEST_TMP/g3" "${small[@]}" --seed 8 >/dev/null
h1=$(content_hash "$TEST_TMP/g1")
h2=$(content_hash "$TEST_TMP/g2")
h3=$(content_hash "$TEST_TMP/g3")
[ "$h1" = "$h2" ] || fail "gendata: same seed, different content ($h1 vs $h2)"
[ "$h1" != "$h3" ] || fail "gendata: seeds 7 and 8 gave the same content"
n=$(find "$TEST_TMP/g1" -type f | wc -l)
[ "$n" -eq 54 ] || fail "gendata: expected 4 segments + 50 small files, found $n files"
bytes=$(find "$TEST_TMP/g1/segments" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
[ "$bytes" -eq $((4 << 20)) ] || fail "gendata: segments hold $bytes bytes, expected 4 MiB"
echo "gendata deterministic: $h1"

# ---- a source tree with every kind of entry ----------------------------------

src=$(mk_subvol harness-src)
"$GENDATA" "$src/data" "${small[@]}" --seed 7 >/dev/null
[ "$(content_hash "$src/data")" = "$h1" ] || fail "gendata on btrfs differs from gendata in TEST_TMP"

m=$src/misc
mkdir "$m" "$m/acl-dir"
ln -s ../data/segments/seg-000000.json "$m/symlink"
ln "$src/data/segments/seg-000001.json" "$m/hardlink"
mkfifo "$m/fifo"
mknod "$m/null" c 1 3
truncate -s 16M "$m/sparse"
printf 'an island in a hole' | dd of="$m/sparse" bs=4096 seek=1024 conv=notrunc status=none
printf 'owned\n' >"$m/owned"
chown 1234:5678 "$m/owned"
setfacl -m u:1234:rw,g:5678:r "$m/owned"
chmod 4750 "$m/owned"	# after setfacl, which sets the group bits to the mask
printf 'name with spaces\n' >"$m/a file with spaces"
setfattr -n user.color -v blue "$m/owned"
setfattr -n user.blob -v 0x00ff10 "$m/a file with spaces"
setfacl -d -m g:5678:rx "$m/acl-dir"
touch -h -d '2001-02-03 04:05:06.123456789 UTC' "$m/symlink"
touch -d '1999-12-31 23:59:59.5 UTC' "$m/fifo"
touch -d '2010-01-01 00:00:00 UTC' "$m/acl-dir" "$m"

# The manifest has to describe all of that, or equality proves little.
man=$(tree_manifest "$src")
expect_in_manifest() {
	grep -qE -- "$1" <<<"$man" || fail "tree_manifest has no line matching '$1'"
}
expect_in_manifest '^E misc/sparse type=f .* sparse=1'
expect_in_manifest '^E data/segments/seg-000000.json type=f .*size=1048576 sha256=[0-9a-f]{64} sparse=0'
expect_in_manifest '^E data/segments/seg-000001.json .* link=data/segments/seg-000001.json$'
expect_in_manifest '^E misc/hardlink .* link=data/segments/seg-000001.json$'
expect_in_manifest '^E misc/symlink type=l .*mtime=981173106.123456789 target=../data/segments/seg-000000.json$'
expect_in_manifest '^E misc/null type=c .* rdev=1:3$'
expect_in_manifest '^E misc/fifo type=p mode=0644 uid=0 gid=0 mtime=946684799.500000000$'
expect_in_manifest '^E misc/owned type=f mode=4750 uid=1234 gid=5678 '
expect_in_manifest '^E misc/a\\ file\\ with\\ spaces type=f'
expect_in_manifest '^E misc type=d .*mtime=1262304000.000000000$'
expect_in_manifest '^X misc/owned user.color="blue"$'
expect_in_manifest '^X misc/a file with spaces user.blob=0sAP8Q$'
expect_in_manifest '^A misc/owned user:1234:rw-$'
expect_in_manifest '^A misc/acl-dir default:group:5678:r-x$'
if grep -q '^E \. ' <<<"$man"; then fail "tree_manifest lists the root directory"; fi
echo "manifest of the source: $(wc -l <<<"$man") lines"

# ---- a copy compares equal ----------------------------------------------------

dst=$(mk_subvol harness-dst)
cp -a "$src/." "$dst/"
assert_trees_equal "$src" "$dst"
diff <(tree_manifest "$src") <(tree_manifest "$dst") >/dev/null ||
	fail "diff <(tree_manifest) disagrees with assert_trees_equal"
echo "cp -a copy: manifests equal"

# ---- every kind of change is seen --------------------------------------------

# expect_differ WHAT PATH FN: on a fresh snapshot T of dst, run FN T and
# require the manifests to differ, in lines about PATH (a regex) only.
expect_differ() {
	local t0=$SECONDS
	local what=$1 path=$2 fn=$3 t=$TEST_BTRFS/harness-mut d
	btrfs subvolume snapshot "$dst" "$t" >/dev/null
	assert_trees_equal "$dst" "$t"
	"$fn" "$t" || fail "mutation '$what' did not run"
	d=$(diff <(tree_manifest "$dst") <(tree_manifest "$t") | grep '^[<>]' || true)
	[ -n "$d" ] || fail "tree_manifest missed: $what"
	if grep -vqE "^[<>] [EXA] $path( |$)" <<<"$d"; then
		echo "$d"
		fail "$what: manifest lines about other paths than $path changed"
	fi
	if (assert_trees_equal "$dst" "$t") >/dev/null; then
		fail "assert_trees_equal passed despite: $what"
	fi
	btrfs subvolume delete "$t" >/dev/null
	echo "seen: $what ($((SECONDS - t0)) s)"
}

seg=data/segments/seg-000002.json
# Each mutation changes one thing and puts back the mtimes it disturbs.
mut_mode() { chmod 0600 "$1/$seg"; }
mut_owner() { chown 1:1 "$1/$seg"; }
mut_content() {
	printf X | dd of="$1/$seg" bs=1 seek=1000 conv=notrunc status=none &&
		touch -r "$dst/$seg" "$1/$seg"
}
mut_mtime_ns() { touch -d "@$(stat -c %Y "$dst/$seg").000000001" "$1/$seg"; }
mut_dir_mtime() { touch -d '2000-01-01 UTC' "$1/data/segments"; }
mut_xattr_value() { setfattr -n user.color -v red "$1/misc/owned"; }
mut_xattr_added() { setfattr -n user.new -v 1 "$1/$seg"; }
mut_acl() { setfacl -m u:1234:r "$1/misc/owned"; }
mut_symlink() {
	ln -sfn ../data/segments/seg-000003.json "$1/misc/symlink" &&
		touch -h -r "$dst/misc/symlink" "$1/misc/symlink" && touch -r "$dst/misc" "$1/misc"
}
mut_unlink() {
	cp -p "$1/misc/hardlink" "$1/misc/h.tmp" && mv "$1/misc/h.tmp" "$1/misc/hardlink" &&
		touch -r "$dst/misc" "$1/misc"
}
mut_fill_hole() {
	cp --reflink=never --sparse=never -p "$1/misc/sparse" "$1/misc/s.tmp" &&
		mv "$1/misc/s.tmp" "$1/misc/sparse" && touch -r "$dst/misc" "$1/misc"
}
mut_rdev() {
	rm "$1/misc/null" && mknod "$1/misc/null" c 1 5 &&
		touch -r "$dst/misc/null" "$1/misc/null" && touch -r "$dst/misc" "$1/misc"
}
mut_added() { touch "$1/misc/new" && touch -r "$dst/misc" "$1/misc"; }

expect_differ "mode" "$seg" mut_mode
expect_differ "owner" "$seg" mut_owner
expect_differ "content, same size and mtime" "$seg" mut_content
expect_differ "file mtime (ns)" "$seg" mut_mtime_ns
expect_differ "directory mtime" "data/segments" mut_dir_mtime
expect_differ "xattr value" "misc/owned" mut_xattr_value
expect_differ "xattr added" "$seg" mut_xattr_added
expect_differ "ACL entry" "misc/owned" mut_acl
expect_differ "symlink target" "misc/symlink" mut_symlink
expect_differ "hard link broken" "(data/segments/seg-000001.json|misc/hardlink)" mut_unlink
expect_differ "hole filled" "misc/sparse" mut_fill_hole
expect_differ "device number" "misc/null" mut_rdev
expect_differ "file added" "misc/new" mut_added

# ---- no_snapship_snapshots -----------------------------------------------------

no_snapship_snapshots "$TEST_BTRFS"
btrfs subvolume create "$TEST_BTRFS/snapship-leftover" >/dev/null
if (no_snapship_snapshots "$TEST_BTRFS") >/dev/null; then
	fail "no_snapship_snapshots missed $TEST_BTRFS/snapship-leftover"
fi
btrfs subvolume delete "$TEST_BTRFS/snapship-leftover" >/dev/null
no_snapship_snapshots "$TEST_BTRFS"

btrfs subvolume delete "$dst" "$src" >/dev/null
echo "harness ok"
