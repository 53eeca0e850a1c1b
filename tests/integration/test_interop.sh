#!/usr/bin/env bash
# Interoperability of the stored format (design §1 step 4, §4):
#   - data.tar.zst restores with stock tools alone:
#       zstd -d | tar -x --xattrs --xattrs-include='*' --acls --numeric-owner
#     into the same tree as the source (assert_trees_equal);
#   - index.jsonl.zst is plain zstd-compressed JSON lines, one per entry;
#   - the seek table follows the zstd seekable format and its sizes and
#     checksums match the frames (tools/seektable_check.py, written from the
#     spec without snapship's code); and the checker itself catches a
#     corrupted table, a corrupted frame and a bad footer.
# shellcheck disable=SC2015 # "A && B || fail ...": fail unless both hold
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_btrfs
need_cmd zstd tar python3 setfattr setfacl mkfifo mknod
[ -x "${GENDATA:-}" ] || fail "GENDATA='${GENDATA:-}' is not an executable (run make)"

check=$SRC_DIR/tools/seektable_check.py
[ -f "$check" ] || fail "$check is missing"

state=$TEST_TMP/state
store=$TEST_TMP/store
mkdir -p "$store"
part=$(mk_subvol io-part)

cleanup() {
	local sv
	for sv in "$TEST_BTRFS/io-tar" "$part"; do
		[ -d "$sv" ] && btrfs subvolume delete "$sv" >/dev/null 2>&1
	done
	return 0
}
trap cleanup EXIT

# ---- a tree with every kind of entry, data in several frames ---------------

# frame size is 4 MiB: 12 MiB of segments give >= 3 frames
"$GENDATA" "$part/data" --json-bytes 12M --json-file-size 3M --small-files 100 --seed 5 >/dev/null
m=$part/misc
mkdir -p "$m/empty-dir" "$m/acl-dir" "$m/private"
: >"$m/empty"
chmod 0700 "$m/private"
chown 1234:5678 "$m/private"
ln -s ../data/segments/seg-000000.json "$m/rel-link"
ln -s /nonexistent/target "$m/abs-dangling"
printf 'hard\n' >"$m/hl-a"
ln "$m/hl-a" "$m/hl-b"
ln "$m/hl-a" "$m/private/hl-c"
truncate -s 32M "$m/sparse"
printf 'island' | dd of="$m/sparse" bs=4096 seek=3000 conv=notrunc status=none
mkfifo "$m/fifo"
mknod "$m/null" c 1 3
mknod "$m/loop200" b 7 200
printf 'x\n' >"$m/xattr"
setfattr -n user.color -v blue "$m/xattr"
setfattr -n user.bin -v 0x00ff10 "$m/xattr"
printf 'a\n' >"$m/acl"
setfacl -m u:1234:rw,g:5678:r "$m/acl"
setfacl -d -m u:1234:rwx "$m/acl-dir"
printf 's\n' >"$m/a name with spaces"
printf 'u\n' >"$m/ünïcødé-🙂"
printf 'b\n' >"$m/bad-"$'\xff\xfe'
deep=$m/$(printf 'directory-level-%02d/' $(seq 1 8))
mkdir -p "$deep"
printf 'deep\n' >"$deep/$(printf 'n%.0s' $(seq 1 200))"
touch -d '2001-02-03 04:05:06.123456789 UTC' "$m/xattr" "$m/sparse" "$m/fifo"
touch -h -d '2002-03-04 05:06:07.987654321 UTC' "$m/rel-link"
touch -d '2011-11-11 11:11:11.111111111 UTC' "$m" "$m/private" "$deep"

"$SNAPSHIP" --state-dir "$state" backup "$part" --to "$store" >/dev/null || fail "backup failed"
no_snapship_snapshots "$TEST_BTRFS"
dir=$(find "$store" -name manifest.json -printf '%h\n')
[ "$(wc -l <<<"$dir")" = 1 ] || fail "expected one backup in the store, found: $dir"
data=$dir/data.tar.zst
frames=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["compression"]["frames"])' "$dir/manifest.json")
[ "$frames" -ge 3 ] || fail "the backup has $frames frames, expected at least 3 (test data too small?)"

# ---- stock zstd | tar restores the same tree ----------------------------------

tgt=$(mk_subvol io-tar)
zstd -d -q -c "$data" |
	tar -x --xattrs --xattrs-include='*' --acls --numeric-owner -C "$tgt" ||
	fail "stock zstd -d | tar -x cannot extract $data"
# Every GNU tar 1.34 feature used here round-trips (pax mtimes with
# nanoseconds, SCHILY.xattr.*, SCHILY.acl.*, GNU.sparse 1.0, long names,
# hard links, devices): no exclusions are needed.
assert_trees_equal "$part" "$tgt"
echo "stock zstd | tar: identical tree"

# zstd -t: the whole object (frames + skippable seek table) is valid zstd
zstd -t -q "$data" || fail "zstd -t rejects $data"

# the index is plain zstd + JSON lines, one per entry, all with a path
zstd -d -q -c "$dir/index.jsonl.zst" | python3 -c '
import json, sys
n = 0
for line in sys.stdin:
    o = json.loads(line)
    assert "path" in o or "path_hex" in o, o
    assert o["type"] in "fdlhcbp", o
    assert isinstance(o["offset"], int), o
    n += 1
m = json.load(open(sys.argv[1]))
assert n == m["counts"]["entries"], (n, m["counts"]["entries"])
print("index: %d entries" % n)
' "$dir/manifest.json" || fail "index.jsonl.zst is not one JSON object per entry"

# ---- the seek table, checked from the spec --------------------------------------

python3 "$check" "$data" || fail "seektable_check rejects snapship's $data"
python3 "$check" "$data" | grep -q "ok: $frames frames" ||
	fail "seektable_check counts other than the manifest's $frames frames"

# The checker must catch damage, or its "ok" proves nothing.
size=$(stat -c %s "$data")
corrupt() {	# corrupt NAME OFFSET: copy with one byte inverted at OFFSET
	local out=$TEST_TMP/$1.zst
	cp "$data" "$out"
	python3 - "$out" "$2" <<-'EOF'
		import sys
		p, off = sys.argv[1], int(sys.argv[2])
		with open(p, "r+b") as f:
		    f.seek(off)
		    b = f.read(1)
		    f.seek(off)
		    f.write(bytes([b[0] ^ 0xFF]))
	EOF
	echo "$out"
}
# table layout from the end: footer 9, entries 12 each, skippable header 8
table=$((8 + 12 * frames + 9))
cases=(
	"entry-csize $((size - table + 8))"		# first entry's c_size
	"entry-checksum $((size - table + 8 + 8))"	# first entry's checksum
	"entry-dsize-last $((size - 9 - 12 + 4))"	# last entry's d_size
	"footer-count $((size - 9))"			# number of frames
	"footer-desc $((size - 5))"			# descriptor: reserved bits
	"footer-magic $((size - 1))"			# seekable magic
	"skippable-magic $((size - table))"		# skippable frame magic
	"frame-middle $(((size - table) / 2))"		# compressed data
)
for c in "${cases[@]}"; do
	read -r name off <<<"$c"
	bad=$(corrupt "$name" "$off")
	if out=$(python3 "$check" "$bad" 2>&1); then
		echo "$out"
		fail "seektable_check accepted a copy with byte $off flipped ($name)"
	fi
	grep -qE 'MISMATCH|failed|error' <<<"$out" || fail "seektable_check failed on $name without saying why: $out"
	echo "checker catches $name: $(grep -m1 MISMATCH <<<"$out" || true)"
done
# truncation by one byte, and a frame appended without a table entry
head -c $((size - 1)) "$data" >"$TEST_TMP/short.zst"
if python3 "$check" "$TEST_TMP/short.zst" >/dev/null 2>&1; then
	fail "seektable_check accepted a truncated copy"
fi

# ---- the checker's writer is a valid seekable producer (used by test_corrupt) ----

zstd -d -q -c "$data" >"$TEST_TMP/raw.tar"
python3 "$check" make "$TEST_TMP/raw.tar" "$TEST_TMP/remade.zst" --frame-size 1048576 ||
	fail "seektable_check make failed"
python3 "$check" -q "$TEST_TMP/remade.zst" >/dev/null || fail "seektable_check rejects its own output"
zstd -d -q -c "$TEST_TMP/remade.zst" | cmp -s - "$TEST_TMP/raw.tar" ||
	fail "seektable_check make does not round-trip"

no_snapship_snapshots "$TEST_BTRFS"
echo "interop ok"
