#!/usr/bin/env bash
# Restore of large files in blocks (doc/incremental.md "Large files in
# blocks"), on a chain forged in a directory store (tests/tools/forge.py):
#   B1: a version 1 full: a 12 MiB file "big" (whole entry, bsize, bxxh3)
#       and a small file;
#   B2: big with blocks 2 and 7 changed and 2 MiB appended: SNAPSHIP.part
#       entries for blocks 2, 7, 12-13, the rest runs into B1's entry;
#   B3: big changed in block 2 again and renamed (mode, owner, mtime and an
#       xattr of its own), a hard link to it, a copy of B2's big whose runs
#       share B1's and B2's entries with it.
# Each restore equals the forged tree byte for byte and metadata for
# metadata; --path of the big file alone; --at; verify --deep; ls; a drill;
# v2check rebuilds every backup; `snapship export | tar -x` (GNU tar) too,
# with $TMPDIR on a 1 MiB tmpfs (nothing staged on local disk).  A corrupt block (valid frames, content not
# the index's) fails restore and verify naming the file and the block;
# hostile runs (an entry shorter than the run, a wrong skip, a SNAPSHIP.part
# that does not match, a ref not in references, an offset outside the
# object) are each refused with a clear message (by restore and export), and a symlink planted in
# the target (--force) leads nothing outside it.
# shellcheck disable=SC2015 # "A && B || fail ...": fail unless both hold
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"
need_cmd python3 zstd xxhsum setfattr getfattr tar

FORGE=$SRC_DIR/tests/tools/forge.py
V2CHECK=$SRC_DIR/tests/tools/v2check.py
store=$TEST_TMP/store C=$TEST_TMP/content
mkdir -p "$store" "$C"
S=("$SNAPSHIP" --host h --state-dir "$TEST_TMP/state")
B1=20261101T000000Z-000001 B2=20261102T000000Z-000002 B3=20261103T000000Z-000003
M=1048576 T=1700000000

# run CODE WHAT ARGS...: snapship ARGS exits CODE; output in $TEST_TMP/out, err
run() {
	local code=$1 what=$2 rc=0
	shift 2
	"${S[@]}" "$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
	[ "$rc" = "$code" ] || { cat "$TEST_TMP/out" "$TEST_TMP/err"; fail "$what: exit $rc, expected $code"; }
}
# poke FILE OFFSET TEXT: overwrite bytes in place
poke() { printf '%s' "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }

# ---- the content and the chain -------------------------------------------------
head -c $((12 * M)) /dev/urandom >"$C/big1"
cp "$C/big1" "$C/big2"
poke "$C/big2" $((2 * M + 100)) "changed in B2"
poke "$C/big2" $((7 * M + 5)) "changed in B2"
head -c $((2 * M)) /dev/urandom >>"$C/big2"
cp "$C/big2" "$C/big3"
poke "$C/big3" $((2 * M + 9)) "again in B3"
x3=$(printf three | base64)

forge() {	# forge STORE ID SPEC [ARGS...]: the snapshot N days after 1700000000
	local store=$1 id=$2 spec=$3
	shift 3
	python3 "$FORGE" backup "$store" h p "$id" "$spec" \
		--manifest-set "snapshot.time_ns=$(((T + ${id: -1} * 86400) * 1000000000))" "$@" \
		>/dev/null || fail "forge $id"
}
SPEC1='[{"name": "big", "type": "file", "data_file": "'"$C/big1"'"},
	{"name": "small", "type": "file", "data": "small file"}]'
SPEC2='[{"name": "big", "type": "file", "data_file": "'"$C/big2"'", "blocks_from": {"ref_path": "big"}},
	{"name": "small", "type": "file", "ref_path": "small"}]'
SPEC3='[{"name": "big.renamed", "type": "file", "data_file": "'"$C/big3"'",
	 "blocks_from": {"ref_path": "big"}, "mode": 384, "uid": 1000, "gid": 1001,
	 "mtime": 1700001111, "index": {"xattrs": true, "xattr_map": {"user.k": "'"$x3"'"}}},
	{"name": "copy", "type": "file", "data_file": "'"$C/big2"'", "blocks_from": {"ref_path": "big"}},
	{"name": "hl", "type": "hardlink", "target": "big.renamed"},
	{"name": "small", "type": "file", "ref_path": "small"}]'
forge "$store" "$B1" "$SPEC1"
forge "$store" "$B2" "$SPEC2" --format 2 --parent "$B1"
forge "$store" "$B3" "$SPEC3" --format 2 --parent "$B2"

# the data objects hold what an incremental stores: B2 blocks 2, 7, 12-13
python3 "$V2CHECK" tarlist "$store" h p "$B2" >"$TEST_TMP/list"
[ "$(wc -l <"$TEST_TMP/list")" = 3 ] || { cat "$TEST_TMP/list"; fail "B2's data: not 3 parts"; }
zstd -dcq "$store/h/p/$B2/index.jsonl.zst" | python3 -c '
import json, sys
e = [json.loads(l) for l in sys.stdin if "\"big\"" in l][0]
got = [(r["b"], r["n"], r["skip"], "ref" in r) for r in e["runs"]]
want = [(0, 2, 0, True), (2, 1, 0, False), (3, 4, 3, True), (7, 1, 0, False),
        (8, 4, 8, True), (12, 2, 0, False)]
sys.exit(0 if got == want and "xxh3" not in e and e["bsize"] == 1048576 else 1)' ||
	fail "B2's index: big's runs are not the expected ones"

# the trees the backups were taken of
tree() {	# tree DIR: an empty tree with forge's root metadata
	mkdir -p "$1"
	chmod 0755 "$1"
}
t1=$TEST_TMP/t1 t2=$TEST_TMP/t2 t3=$TEST_TMP/t3
tree "$t1"
cp "$C/big1" "$t1/big"
printf 'small file' >"$t1/small"
tree "$t2"
cp "$C/big2" "$t2/big"
cp "$t1/small" "$t2/small"
tree "$t3"
cp "$C/big3" "$t3/big.renamed"
cp "$C/big2" "$t3/copy"
cp "$t1/small" "$t3/small"
setfattr -n user.k -v three "$t3/big.renamed"
ln "$t3/big.renamed" "$t3/hl"
for t in "$t1" "$t2" "$t3"; do
	find "$t" -type f -exec chmod 0644 {} + -exec chown 0:0 {} +
	find "$t" -exec touch -h -d "@$T" {} +
done
chmod 0600 "$t3/big.renamed"
chown 1000:1001 "$t3/big.renamed"
touch -d @1700001111 "$t3/big.renamed"

# ---- restores ------------------------------------------------------------------
for n in 1 2 3; do
	id=B$n
	run 0 "restore of B$n" restore p --from "$store" --id "${!id}" --to "$TEST_TMP/r$n"
	assert_trees_equal "$TEST_TMP/t$n" "$TEST_TMP/r$n"
	grep -q "verified" "$TEST_TMP/out" || fail "restore of B$n does not say verified"
done
echo "ok: B1, B2 and B3 restore identical to their trees"

run 0 "--path big.renamed" restore p --from "$store" --path big.renamed --to "$TEST_TMP/rp"
cmp "$C/big3" "$TEST_TMP/rp/big.renamed" || fail "--path big.renamed: content differs"
[ "$(find "$TEST_TMP/rp" -mindepth 1 | wc -l)" = 1 ] || { find "$TEST_TMP/rp"; fail "--path: other entries"; }
[ "$(stat -c '%a %u:%g %Y' "$TEST_TMP/rp/big.renamed")" = "600 1000:1001 1700001111" ] ||
	fail "--path big.renamed: metadata not the index's: $(stat -c '%a %u:%g %Y' "$TEST_TMP/rp/big.renamed")"
read -r got total < <(sed -n 's/.*read \([0-9]*\) of \([0-9]*\) frames.*/\1 \2/p' "$TEST_TMP/out")
echo "--path big.renamed read $got of $total frames"
[ -n "$got" ] && [ "$got" -lt "$total" ] || fail "--path big.renamed read every frame: $(cat "$TEST_TMP/out")"

run 0 "--at B2's time" restore p --from "$store" --at "2023-11-17T00:00:00Z" --to "$TEST_TMP/rat"
assert_trees_equal "$t2" "$TEST_TMP/rat"
echo "ok: --path of the big file alone, --at"

run 0 "verify --deep" verify p --from "$store" --deep
for b in "$B1" "$B2" "$B3"; do
	grep -q "$b .*ok (deep) *\$" "$TEST_TMP/out" || { cat "$TEST_TMP/out"; fail "verify --deep of $b"; }
done
run 0 "ls B3" ls p --from "$store"
grep -q "14680064 .* big.renamed\$" "$TEST_TMP/out" || { cat "$TEST_TMP/out"; fail "ls B3: big.renamed"; }
mkdir -p "$TEST_TMP/src"
printf '[agent]\nstate_dir = %s\nhost = h\nrpo_max = 36500d\n[partition p]\npath = %s\n' \
	"$TEST_TMP/state" "$TEST_TMP/src" >"$TEST_TMP/drill.conf"
rc=0
"$SNAPSHIP" --config "$TEST_TMP/drill.conf" drill --from "$store" --scratch "$TEST_TMP/scratch" \
	>"$TEST_TMP/out" 2>&1 || rc=$?
[ "$rc" = 0 ] && grep -q "$B3 .* passed" "$TEST_TMP/out" || { cat "$TEST_TMP/out"; fail "drill of B3: exit $rc"; }
for n in 1 2 3; do
	id=B$n
	python3 "$V2CHECK" rebuild "$store" h p "${!id}" "$TEST_TMP/v$n" || fail "v2check rebuild of B$n"
	assert_trees_equal "$TEST_TMP/t$n" "$TEST_TMP/v$n"
done
echo "ok: verify --deep, ls, drill, v2check"

# ---- export: one plain pax stream that GNU tar extracts --------------------------
# nothing is staged on local disk: $TMPDIR is a 1 MiB tmpfs (the 14 MiB
# files in runs must still export) and stays empty
spool=$TEST_TMP/spool
mkdir -p "$spool"
mount -t tmpfs -o size=1m,mode=0755 tmpfs "$spool" ||
	echo "SKIP: cannot mount a tmpfs: \$TMPDIR is a plain directory (only checked to stay empty)"
trap 'umount "$spool" 2>/dev/null || true' EXIT
for n in 1 3; do
	id=B$n
	mkdir -p "$TEST_TMP/x$n"
	TMPDIR=$spool "${S[@]}" export p --from "$store" --id "${!id}" >"$TEST_TMP/b$n.tar" \
		2>"$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "export of B$n"; }
	tar --xattrs --xattrs-include='*' -x -C "$TEST_TMP/x$n" -f "$TEST_TMP/b$n.tar" ||
		fail "tar -x of B$n's export"
	assert_trees_equal "$TEST_TMP/t$n" "$TEST_TMP/x$n"
done
TMPDIR=$spool "${S[@]}" export p --from "$store" --at "2023-11-17T00:00:00Z" |
	tar -t >"$TEST_TMP/list" || fail "export --at | tar -t"
[ "$(grep -c . "$TEST_TMP/list")" = 3 ] && grep -qx big "$TEST_TMP/list" ||
	{ cat "$TEST_TMP/list"; fail "export --at: not B2's entries"; }
[ -z "$(ls -A "$spool")" ] || { ls -laR "$spool"; fail "export wrote into \$TMPDIR"; }
echo "ok: export of B1 and B3 | tar -x equals their trees (\$TMPDIR a 1 MiB tmpfs, left empty); --at"

# ---- a corrupt block: valid frames, content not the index's ---------------------
bad=$TEST_TMP/bad
mkdir -p "$bad"
cp "$C/big1" "$C/big1.bad"
poke "$C/big1.bad" $((5 * M + 77)) "X"
sums=$(zstd -dcq "$store/h/p/$B1/index.jsonl.zst" | python3 -c '
import json, sys
e = [json.loads(l) for l in sys.stdin if "\"big\"" in l][0]
print(json.dumps({"xxh3": e["xxh3"], "bxxh3": e["bxxh3"]}))')
forge "$bad" "$B1" '[{"name": "big", "type": "file", "data_file": "'"$C/big1.bad"'", "index": '"$sums"'},
	{"name": "small", "type": "file", "data": "small file"}]'
forge "$bad" "$B2" "$SPEC2" --format 2 --parent "$B1"
run 1 "restore of B2 with block 5 of B1 corrupt" restore p --from "$bad" --id "$B2" --to "$TEST_TMP/rbad"
grep -q "file big: block 5 (bytes 5242880..6291455) does not match its checksum; read from backup $B1" "$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "restore of B2: the corrupt block not named"; }
run 1 "verify --deep with block 5 of B1 corrupt" verify p --from "$bad" --deep
grep -q "big: block 5 .*does not match its checksum" "$TEST_TMP/out" "$TEST_TMP/err" ||
	{ cat "$TEST_TMP/out" "$TEST_TMP/err"; fail "verify --deep: the corrupt block not named"; }
rc=0
TMPDIR=$spool "${S[@]}" export p --from "$bad" --id "$B2" >"$TEST_TMP/bad.tar" 2>"$TEST_TMP/err" || rc=$?
[ "$rc" = 1 ] && grep -q "file big: block 5 .*does not match its checksum" "$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "export of B2 with a corrupt block: exit $rc"; }
# the stream is cut short, not closed as a valid archive: tar fails on it too
# (a pipe `export | tar -x` without pipefail must not pass)
tar -tf "$TEST_TMP/bad.tar" >/dev/null 2>&1 &&
	fail "a failed export ended in a valid tar stream (tar -t passes on it)"
[ -z "$(ls -A "$spool")" ] || { ls -laR "$spool"; fail "a failed export wrote into \$TMPDIR"; }
echo "ok: a corrupt block fails restore and verify, naming the file and the block"

# ---- hostile runs ----------------------------------------------------------------
# hostile NAME PYTHON MESSAGE: B2's index with big's runs changed by PYTHON
# (runs: the list; parts: B2's own run offsets), forged in a copy of the
# store; its restore exits 1 saying MESSAGE, writing nothing outside
hostile() {
	local name=$1 code=$2 msg=$3 hs=$TEST_TMP/h-$1
	mkdir -p "$hs"
	cp -r "$store/h" "$hs/"
	zstd -dcq "$store/h/p/$B2/index.jsonl.zst" | python3 -c '
import json, sys
out = []
for line in sys.stdin:
    e = json.loads(line)
    if e["path"] == "big":
        runs = e["runs"]
        parts = [r["offset"] for r in runs if "ref" not in r]
        exec(sys.argv[1])
    out.append(json.dumps(e))
print("\n".join(out))' "$code" >"$TEST_TMP/$name.jsonl"
	forge "$hs" "$B2" "$SPEC2" --format 2 --parent "$B1" --index-jsonl "$TEST_TMP/$name.jsonl"
	mkdir -p "$TEST_TMP/outside"
	run 1 "hostile $name" restore p --from "$hs" --id "$B2" --to "$TEST_TMP/rh-$name"
	grep -q "$msg" "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "hostile $name: not refused with \"$msg\""; }
	[ -z "$(ls -A "$TEST_TMP/outside")" ] || fail "hostile $name: wrote outside the target"
	echo "ok: hostile $name refused: $(head -c 300 "$TEST_TMP/err")"
	# export reads each run on its own (its own header walk): the same refusal
	local rc=0
	TMPDIR=$spool "${S[@]}" export p --from "$hs" --id "$B2" >/dev/null 2>"$TEST_TMP/err" || rc=$?
	[ "$rc" = 1 ] && grep -q "$msg" "$TEST_TMP/err" ||
		{ cat "$TEST_TMP/err"; fail "hostile $name: export not refused with \"$msg\" (exit $rc)"; }
}
# block 7's part holds one block; a run of two from it (the rest adjusted)
hostile short 'runs[3]["n"] = 2; runs[4]["b"] = 9; runs[4]["n"] = 3; runs[4]["skip"] = 9' \
	"file big: the entry at offset [0-9]* of backup $B2's data holds 1048576 bytes, its runs need 2097152"
hostile skip 'runs[2]["skip"] = 4' \
	"file big: blocks 3..6 are to be read 4 blocks into the entry at offset 512 of backup $B1's data, which holds a whole file"
hostile part 'runs[3]["offset"] = parts[0]' \
	"file big: blocks 7..7 are to be read 0 blocks into the entry at offset 0 of backup $B2's data, which holds another part of a file (its SNAPSHIP.part does not match the run)"
hostile ref 'runs[0]["ref"] = "20261001T000000Z-000009"' \
	"file big's blocks 0..1 are in backup 20261001T000000Z-000009, which the manifest's references do not name"
hostile offset 'runs[0]["offset"] = 1 << 40' \
	"file big's content is at offset 1099511627776 of backup $B1's data"
[ ! -e "$TEST_TMP/rh-ref" ] && [ ! -e "$TEST_TMP/rh-offset" ] ||
	fail "hostile ref/offset: the target was made (the plan is checked before)"

# a symlink planted in an existing target (--force) is not followed
hs=$TEST_TMP/h-link
mkdir -p "$hs" "$TEST_TMP/rlink" "$TEST_TMP/outside"
forge "$hs" "$B1" "$SPEC1"
forge "$hs" "$B2" '[{"name": "sub", "type": "dir"},
	{"name": "sub/big", "type": "file", "data_file": "'"$C/big2"'", "blocks_from": {"ref_path": "big"}}]' \
	--format 2 --parent "$B1"
ln -s "$TEST_TMP/outside" "$TEST_TMP/rlink/sub"
rc=0
"${S[@]}" restore p --from "$hs" --id "$B2" --to "$TEST_TMP/rlink" --force >"$TEST_TMP/out" 2>&1 || rc=$?
[ -z "$(ls -A "$TEST_TMP/outside")" ] || { cat "$TEST_TMP/out"; fail "a symlink in the target: wrote outside it"; }
[ "$rc" != 0 ] || cmp "$C/big2" "$TEST_TMP/rlink/sub/big" ||
	fail "a symlink in the target: the restore passed but sub/big differs"
echo "ok: a symlink in the target leads nothing outside it (exit $rc)"
