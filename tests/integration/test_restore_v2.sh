#!/usr/bin/env bash
# Restore of version 2 (incremental) backups (issue 14, item 3;
# doc/incremental.md "Restore of a version 2 backup").  A real version 1
# full (B1, two directory regions a and b) is the base of a chain forged
# with tests/tools/forge.py --format 2:
#   B2: unchanged files pointing at B1, a renamed file (ref_path its old
#       path), metadata-only changes (mode, owner, mtime; an xattr value that
#       differs from B1's tar header), hard links whose content is in B1, a
#       sparse file in B1, a directory and a symlink only in the index, a
#       deleted file absent, a new file in its own data;
#   B3: content from B1 through B2 and from B2, a changed hard-linked file,
#       a file moved to another directory, a directory deleted;
#   B4: nothing changed (an empty data object, every file in B1, B2, B3).
# Each whole restore equals a tree built from the source with the same
# changes (assert_trees_equal: content, mode, owner, mtime, xattrs, hard
# links, sparseness), and so does `snapship export` of B3 | tar -x; --at
# picks and restores B3; --path of a referenced
# file reads only its frames; verify
# --deep and a drill pass.  Hostile: a ref to an id not in references, an
# offset outside the referenced stream, two entries claiming one offset, a
# referenced object missing: each fails before the target is made, naming
# the backup; a wrong SHA-256 in references fails the restore reading that
# object whole; a symlink with a file through it writes nothing outside the
# target.  Failover: B1's data corrupted (then missing) in region a is
# read from region b; missing in both fails naming B1.
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"
need_btrfs
need_cmd python3 zstd xxhsum setfattr getfattr setfacl getfacl

FORGE=$SRC_DIR/tests/tools/forge.py
A=$TEST_TMP/a B=$TEST_TMP/b
mkdir -p "$A" "$B" "$TEST_TMP/src0"
T=1700000000

# ---- the source and B1, a real version 1 full ---------------------------------
src=$(mk_subvol v2src)
head -c 200000 /dev/urandom >"$src/a"
printf bravo >"$src/b"
head -c 300000 /dev/urandom >"$src/big"
mkdir "$src/d"
printf x-content >"$src/d/x"
printf linked >"$src/hl1"
ln "$src/hl1" "$src/hl2"
truncate -s 4M "$src/sp"
printf 'tail of a sparse file' | dd of="$src/sp" bs=1 seek=3000000 conv=notrunc status=none
printf 'has an xattr' >"$src/xa"
setfattr -n user.k -v v1 "$src/xa"
printf 'to delete' >"$src/del"
printf 'with an ACL' >"$src/acl"     # only in B1: deleted in B2
setfacl -m u:1234:r-- "$src/acl"
ln -s a "$src/s"
: >"$src/e"
chmod 0644 "$src"/a "$src"/b "$src"/big "$src"/d/x "$src"/hl1 "$src"/sp "$src"/xa "$src"/del "$src"/e
setfacl -m u:1234:r-- "$src/acl"
chmod 0755 "$src/d"
find "$src" -mindepth 1 -exec touch -h -d "@$T" {} +

cat >"$TEST_TMP/snapship.conf" <<EOF
[agent]
state_dir = $TEST_TMP/state
host = h
frame_size = 64K
rpo_max = 36500d
[partition p]
path = $src
[region a]
store = file
path = $A
primary = yes
[region b]
store = file
path = $B
replication = agent
EOF
S=("$SNAPSHIP" --config "$TEST_TMP/snapship.conf")
out=$("${S[@]}" backup p --json) || fail "backup B1: $out"
B1=$(python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup_id"])' <<<"$out")
# later ids: B1's time plus N minutes
later() { python3 -c '
import datetime, sys
t = datetime.datetime.strptime(sys.argv[1][:16], "%Y%m%dT%H%M%SZ")
print((t + datetime.timedelta(minutes=int(sys.argv[2]))).strftime("%Y%m%dT%H%M%SZ") + "-00000" + sys.argv[2])
' "$B1" "$1"; }
B2=$(later 1) B3=$(later 2) B4=$(later 3)
x2=$(printf v2 | base64)

# run CODE WHAT ARGS...: snapship ARGS exits CODE; output in $TEST_TMP/out, err
run() {
	local code=$1 what=$2 rc=0
	shift 2
	"${S[@]}" "$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
	[ "$rc" = "$code" ] || { cat "$TEST_TMP/out" "$TEST_TMP/err"; fail "$what: exit $rc, expected $code"; }
}
# B1's snapshot time (ns); forged backup N was taken N seconds after it
T1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["snapshot"]["time_ns"])' \
	"$A/h/p/$B1/manifest.json")
forge() {	# forge STORE ID PARENT SPEC [ARGS...]
	local store=$1 id=$2 parent=$3 spec=$4
	shift 4
	python3 "$FORGE" backup "$store" h p "$id" "$spec" --format 2 --parent "$parent" \
		--manifest-set "snapshot.time_ns=$((T1 + ${id: -1} * 1000000000))" "$@" \
		>/dev/null || fail "forge $id"
}

# ---- the chain -----------------------------------------------------------------
SPEC2='[
	{"name": "a", "type": "file", "ref_path": "a"},
	{"name": "big", "type": "file", "ref_path": "big", "mode": 384, "uid": 1000, "gid": 1001,
	 "mtime": 1700001111},
	{"name": "bravo", "type": "file", "ref_path": "b"},
	{"name": "d", "type": "dir"},
	{"name": "d/x", "type": "file", "ref_path": "d/x"},
	{"name": "d2", "type": "dir", "mode": 448},
	{"name": "e", "type": "file"},
	{"name": "hl1", "type": "file", "ref_path": "hl1"},
	{"name": "hl2", "type": "hardlink", "target": "hl1"},
	{"name": "n", "type": "file", "data": "new in B2"},
	{"name": "s", "type": "symlink", "target": "a"},
	{"name": "s2", "type": "symlink", "target": "n"},
	{"name": "sp", "type": "file", "ref_path": "sp"},
	{"name": "xa", "type": "file", "ref_path": "xa",
	 "index": {"xattrs": true, "xattr_map": {"user.k": "'"$x2"'"}}}]'
forge "$A" "$B2" "$B1" "$SPEC2"
SPEC3='[
	{"name": "a", "type": "file", "ref_path": "a"},
	{"name": "big", "type": "file", "ref_path": "big", "mode": 384, "uid": 1000, "gid": 1001,
	 "mtime": 1700001111},
	{"name": "bravo", "type": "file", "ref_path": "bravo"},
	{"name": "d2", "type": "dir", "mode": 448},
	{"name": "d2/x", "type": "file", "ref_path": "d/x"},
	{"name": "e", "type": "file"},
	{"name": "hl1", "type": "file", "data": "linked, changed in B3"},
	{"name": "hl2", "type": "hardlink", "target": "hl1"},
	{"name": "n", "type": "file", "ref_path": "n"},
	{"name": "s", "type": "symlink", "target": "a"},
	{"name": "s2", "type": "symlink", "target": "n"},
	{"name": "sp", "type": "file", "ref_path": "sp"},
	{"name": "xa", "type": "file", "ref_path": "xa",
	 "index": {"xattrs": true, "xattr_map": {"user.k": "'"$x2"'"}}}]'
forge "$A" "$B3" "$B2" "$SPEC3"
# B4: nothing changed; every file elsewhere (hl1 in B3, n in B2, a in B1)
SPEC4=$(python3 -c '
import json, sys
spec = json.loads(sys.argv[1])
for e in spec:
    if e["type"] == "file" and e["name"] != "e":
        e.pop("data", None)
        e["ref_path"] = e["name"]
print(json.dumps(spec))' "$SPEC3")
forge "$A" "$B4" "$B3" "$SPEC4"
cp -r "$A/h/p/$B2" "$A/h/p/$B3" "$A/h/p/$B4" "$B/h/p/"
python3 - "$A" "$B1" "$B2" "$B3" "$B4" <<-'EOF' || fail "the forged chain is not what the test means (above)"
	import os, sys
	sys.path.insert(0, os.path.join(os.environ["SRC_DIR"], "tests", "tools"))
	import forge
	store, b1, b2, b3, b4 = sys.argv[1:]
	ents = {b: {e["path"]: e for e in forge.read_backup(store, "h", "p", b)[1]} for b in (b2, b3, b4)}
	assert ents[b2]["bravo"]["ref"] == b1 and ents[b2]["sp"]["sparse"], ents[b2]
	assert ents[b3]["a"]["ref"] == b1 and ents[b3]["n"]["ref"] == b2, ents[b3]
	assert "ref" not in ents[b3]["hl1"] and ents[b4]["hl1"]["ref"] == b3, ents[b4]
	assert forge.read_backup(store, "h", "p", b4)[0]["counts"]["new_bytes"] == 0
	print("chain: B2 -> B1, B3 -> B1 and B2, B4 -> B1, B2 and B3")
EOF

# ---- the expected trees: the source with each backup's changes ----------------
exp2=$TEST_TMP/exp2 exp3=$TEST_TMP/exp3 exp4=$TEST_TMP/exp4
cp -a --sparse=always "$src" "$exp2"
mv "$exp2/b" "$exp2/bravo"
rm "$exp2/del" "$exp2/acl"
chmod 0600 "$exp2/big"
chown 1000:1001 "$exp2/big"
setfattr -n user.k -v v2 "$exp2/xa"
mkdir -m 0700 "$exp2/d2"
printf 'new in B2' >"$exp2/n"
chmod 0644 "$exp2/n"
ln -s n "$exp2/s2"
touch -h -d "@$T" "$exp2"/* "$exp2/d"
touch -d @1700001111 "$exp2/big"
cp -a --sparse=always "$exp2" "$exp3"
mv "$exp3/d/x" "$exp3/d2/x"
rmdir "$exp3/d"
printf 'linked, changed in B3' >"$exp3/hl1"
touch -h -d "@$T" "$exp3/hl1" "$exp3/d2"
cp -a --sparse=always "$exp3" "$exp4"

# ---- whole restores -------------------------------------------------------------
for b in 2 3 4; do
	id=B$b exp=exp$b
	run 0 "restore of ${!id}" restore p --id "${!id}" --to "$TEST_TMP/r$b"
	assert_trees_equal "${!exp}" "$TEST_TMP/r$b"
	grep -q "entries" "$TEST_TMP/out" || fail "restore output: $(cat "$TEST_TMP/out")"
done
[ "$(stat -c %i "$TEST_TMP/r2/hl1")" = "$(stat -c %i "$TEST_TMP/r2/hl2")" ] || fail "B2: hl1, hl2 not one inode"
[ ! -e "$TEST_TMP/r2/del" ] && [ ! -e "$TEST_TMP/r2/b" ] || fail "B2: a deleted or renamed-away path restored"
# the newest by default, read frames in four objects
run 0 "restore of the newest" restore p --to "$TEST_TMP/r4n"
assert_trees_equal "$exp4" "$TEST_TMP/r4n"
echo "whole restores of B2, B3, B4 equal the expected trees"
# --at between B3's snapshot and B4's picks B3
at=$(python3 -c '
import datetime, sys
ns = int(sys.argv[1]) + 2500000000
print(datetime.datetime.fromtimestamp(ns // 10**9, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + "%09d" % (ns % 10**9) + "Z")' "$T1")
run 0 "restore --at" restore p --at "$at" --to "$TEST_TMP/rat"
grep -q "$B3" "$TEST_TMP/out" || { cat "$TEST_TMP/out"; fail "--at $at did not pick B3"; }
assert_trees_equal "$exp3" "$TEST_TMP/rat"

# export | GNU tar -x: the same tree (sparse file, xattr, hard and symbolic links)
mkdir -p "$TEST_TMP/x3"
"${S[@]}" export p --id "$B3" >"$TEST_TMP/b3.tar" 2>"$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "export of B3"; }
tar --xattrs --xattrs-include='*' --acls -x -C "$TEST_TMP/x3" -f "$TEST_TMP/b3.tar" || fail "tar -x of B3's export"
assert_trees_equal "$exp3" "$TEST_TMP/x3"
echo "export of B3 | tar -x equals the expected tree"

# ---- --path of a referenced file: only its frames ----------------------------
run 0 "restore --path big" restore p --id "$B3" --path big --to "$TEST_TMP/rp"
[ "$(find "$TEST_TMP/rp" -mindepth 1 | wc -l)" = 1 ] || { find "$TEST_TMP/rp"; fail "--path big restored more"; }
cmp "$src/big" "$TEST_TMP/rp/big" || fail "--path big: content"
[ "$(stat -c '%a %u %g %Y' "$TEST_TMP/rp/big")" = "600 1000 1001 1700001111" ] ||
	fail "--path big: metadata from the index: $(stat -c '%a %u %g %Y' "$TEST_TMP/rp/big")"
read -r got total < <(sed -n 's/.*read \([0-9]*\) of \([0-9]*\) frames.*/\1 \2/p' "$TEST_TMP/out")
echo "--path big read $got of $total frames"
[ -n "$got" ] && [ "$got" -lt "$total" ] || fail "--path big read every frame: $(cat "$TEST_TMP/out")"
run 0 "restore --path d2" restore p --id "$B3" --path d2 --to "$TEST_TMP/rd"
[ "$(cat "$TEST_TMP/rd/d2/x")" = x-content ] && [ "$(find "$TEST_TMP/rd" -mindepth 1 | wc -l)" = 2 ] ||
	fail "--path d2 (a renamed directory's file in B1)"

# ---- verify --deep and a drill --------------------------------------------------
run 0 "verify --deep" verify p --deep --region a
for id in "$B1" "$B2" "$B3" "$B4"; do
	grep -q "$id .*ok (deep) *\$" "$TEST_TMP/out" || { cat "$TEST_TMP/out"; fail "verify --deep of $id"; }
done
run 0 "drill" drill --partition p --region a --scratch "$TEST_TMP/scratch"
grep -q "$B4 .* passed" "$TEST_TMP/out" || { cat "$TEST_TMP/out"; fail "drill of B4"; }

# ---- hostile: clear errors, no target made ---------------------------------------
H=$TEST_TMP/hostile
hostile() {	# hostile NAME SPEC EXPECTED_ERROR [FORGE ARGS...]: restore of it fails so
	local name=$1 spec=$2 want=$3 rc=0
	shift 3
	rm -rf "$H"
	mkdir -p "$H"
	cp -r "$A/h" "$H/"
	python3 "$FORGE" backup "$H" h p "$(later 9)" "$spec" --format 2 --parent "$B3" "$@" \
		>/dev/null || fail "forge $name"
	"$SNAPSHIP" --host h --state-dir "$TEST_TMP/hstate" restore p --from "$H" \
		--to "$TEST_TMP/rh" >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
	[ "$rc" = 1 ] || { cat "$TEST_TMP/err"; fail "$name: exit $rc, expected 1"; }
	grep -qE "$want" "$TEST_TMP/err" || { cat "$TEST_TMP/err"; fail "$name: not the expected error ($want)"; }
	[ ! -e "$TEST_TMP/rh" ] || fail "$name: the restore made its target"
	echo "$name: $(head -c 300 "$TEST_TMP/err")"
}
hostile "a ref not in references" '[{"name": "a", "type": "file", "ref_path": "a",
	"index": {"ref": "20200101T000000Z-000009"}}]' \
	"file a's content is in backup 20200101T000000Z-000009, which the manifest's references do not name"
hostile "an offset past the stream" '[{"name": "a", "type": "file", "ref_path": "a",
	"index": {"offset": 99999999}}]' "file a's content is at offset 99999999 of backup $B1's data, which holds"
hostile "two entries at one offset" '[{"name": "a", "type": "file", "ref_path": "a"},
	{"name": "a2", "type": "file", "ref_path": "a"}]' "files a and a2 both claim the content at offset"
hostile "an offset not at an entry" '[{"name": "d-x", "type": "file", "ref_path": "d2/x",
	"index": {"offset": 1024}}]' "file d-x's content is at offset 1024 of backup $B1's data, where no entry starts|holds no file's content"
# B1's SHA-256 in B2's references wrong: B1 read whole for B2, the hash differs
rm -rf "$H" && mkdir -p "$H" && cp -r "$A/h" "$H/"
python3 - "$H/h/p/$B2/manifest.json" <<-'EOF'
	import json, sys
	m = json.load(open(sys.argv[1]))
	m["references"][0]["sha256"] = "0" * 64
	json.dump(m, open(sys.argv[1], "w"))
EOF
rc=0
"$SNAPSHIP" --host h --state-dir "$TEST_TMP/hstate" restore p --from "$H" --id "$B2" \
	--to "$TEST_TMP/rsha" >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
[ "$rc" = 1 ] && grep -q "backup $B1: data object .*$B1/data.tar.zst differs from the SHA-256 recorded in the references" "$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "a referenced object's SHA-256: exit $rc"; }
echo "reference's SHA-256: $(head -c 200 "$TEST_TMP/err")"

# a symlink in the index, a file through it: nothing written outside the target
mkdir -p "$TEST_TMP/outside"
rm -rf "$H" && mkdir -p "$H" && cp -r "$A/h" "$H/"
python3 "$FORGE" backup "$H" h p "$(later 9)" '[
	{"name": "esc", "type": "symlink", "target": "'"$TEST_TMP/outside"'"},
	{"name": "esc/pwn", "type": "file", "ref_path": "a"},
	{"name": "esc2", "type": "symlink", "target": "../../outside"},
	{"name": "esc2/pwn2", "type": "file", "data": "own"}]' --format 2 --parent "$B3" >/dev/null ||
	fail "forge the symlink escape"
rc=0
"$SNAPSHIP" --host h --state-dir "$TEST_TMP/hstate" restore p --from "$H" --to "$TEST_TMP/resc" \
	>"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
[ -z "$(ls -A "$TEST_TMP/outside")" ] || { ls -la "$TEST_TMP/outside"; fail "a restore wrote outside its target"; }
[ "$rc" = 1 ] || { cat "$TEST_TMP/err"; fail "symlink escape: exit $rc, expected 1 (the link cannot replace the directory)"; }
[ ! -L "$TEST_TMP/resc/esc" ] || [ ! -e "$TEST_TMP/resc/esc/pwn" ] || fail "esc/pwn written through the link"
echo "symlink escape (exit $rc): $(head -c 300 "$TEST_TMP/err")"

# the referenced object missing (single region)
rm -rf "$H" && mkdir -p "$H" && cp -r "$A/h" "$H/"
rm "$H/h/p/$B1/data.tar.zst"
rc=0
"$SNAPSHIP" --host h --state-dir "$TEST_TMP/hstate" restore p --from "$H" --to "$TEST_TMP/rh" \
	>"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
[ "$rc" = 1 ] && grep -q "content is in backup $B1 (data object .*$B1/data.tar.zst), which region .* cannot read" "$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "a missing referenced object: exit $rc"; }
[ ! -e "$TEST_TMP/rh" ] || fail "a missing referenced object: the target was made"
echo "missing: $(cat "$TEST_TMP/err")"

# ---- privileges and devices from the index: stripped and skipped ----------------
rm -rf "$H" && mkdir -p "$H" && cp -r "$A/h" "$H/"
cap=$(printf '\001\000\000\002\040\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000' | base64)
acl_map=$(python3 -c '
import json, os, sys
sys.path.insert(0, os.path.join(os.environ["SRC_DIR"], "tests", "tools"))
import forge
print(json.dumps([e for e in forge.read_backup(sys.argv[1], "h", "p", sys.argv[2])[1]
                  if e["path"] == "acl"][0]["xattr_map"]))' "$A" "$B1")
python3 "$FORGE" backup "$H" h p "$(later 8)" '[
	{"name": "acl", "type": "file", "ref": "'"$B1"'", "ref_path": "acl",
	 "index": {"xattrs": true, "xattr_map": '"$acl_map"'}},
	{"name": "suid", "type": "file", "ref_path": "a", "mode": 2541,
	 "index": {"xattrs": true, "xattr_map": {"security.capability": "'"$cap"'"}}},
	{"name": "sgid-empty", "type": "file", "mode": 1517},
	{"name": "fifo", "type": "fifo"},
	{"name": "null", "type": "char"}]' --format 2 --parent "$B3" >/dev/null || fail "forge privileges"
rc=0
"$SNAPSHIP" --host h --state-dir "$TEST_TMP/hstate" restore p --from "$H" --to "$TEST_TMP/rpriv" \
	>"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
[ "$rc" = 0 ] || { cat "$TEST_TMP/err"; fail "privileges: exit $rc"; }
[ "$(stat -c %a "$TEST_TMP/rpriv/suid")" = 755 ] && [ "$(stat -c %a "$TEST_TMP/rpriv/sgid-empty")" = 755 ] ||
	fail "privileges: setuid/setgid kept: $(stat -c '%n %a' "$TEST_TMP/rpriv"/*)"
! getfattr -n security.capability "$TEST_TMP/rpriv/suid" >/dev/null 2>&1 || fail "privileges: the capability was restored"
cmp "$src/a" "$TEST_TMP/rpriv/suid" || fail "privileges: suid's content"
[ -p "$TEST_TMP/rpriv/fifo" ] && [ ! -e "$TEST_TMP/rpriv/null" ] || fail "a fifo made, a device skipped without --devices"
getfacl -n "$TEST_TMP/rpriv/acl" 2>/dev/null | grep -q '^user:1234:r--' ||
	{ getfacl -n "$TEST_TMP/rpriv/acl"; fail "the ACL from xattr_map was not restored"; }
cat "$TEST_TMP/out"
echo "privileges stripped, device skipped, an ACL from xattr_map restored"

# ---- failover: B1's data corrupt, then missing, in region a ----------------------
cp "$A/h/p/$B1/data.tar.zst" "$TEST_TMP/b1.data"
corrupt_frames "$A/h/p/$B1/data.tar.zst"
run 0 "restore with B1 corrupt in region a" restore p --id "$B3" --to "$TEST_TMP/rf1"
assert_trees_equal "$exp3" "$TEST_TMP/rf1"
grep -q "region a: .*$B1/data.tar.zst: the frame at byte [0-9]* is corrupt; taking it from region b" "$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "no failover warning for the corrupt frames"; }
rm "$A/h/p/$B1/data.tar.zst"
run 0 "restore with B1 missing in region a" restore p --id "$B3" --to "$TEST_TMP/rf2"
assert_trees_equal "$exp3" "$TEST_TMP/rf2"
grep -q "backup $B1's data object .*reading it from region b" "$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "no failover warning for the missing object"; }
mv "$B/h/p/$B1/data.tar.zst" "$TEST_TMP/b1.data.b"
run 1 "restore with B1 missing everywhere" restore p --id "$B3" --to "$TEST_TMP/rf3"
grep -q "content is in backup $B1 (data object .*), which region a cannot read, nor any other region" "$TEST_TMP/err" ||
	{ cat "$TEST_TMP/err"; fail "B1 missing everywhere: the error does not name it"; }
[ ! -e "$TEST_TMP/rf3" ] || fail "B1 missing everywhere: the target was made"
echo "ok: v2 restores, --path, verify --deep, drill, hostile references, failover"
