#!/usr/bin/env bash
# The walk order (doc/design.md "Objects"): depth first, a directory before
# its contents, the entries of each directory in byte order of their names
# — whatever order they were created in (btrfs readdir returns creation
# order).
#   - a tree made in a shuffled order (names that sort differently by byte
#     and by path: "a" with "a/x" before "a-b"; upper before lower case;
#     non-UTF-8 and high bytes; a hard link; a deep chain) packs with its
#     index paths and its tar entries in exactly that order;
#   - the creation order really differs (readdir order is not sorted), so
#     the check can fail;
#   - the index's version 2 fields (doc/incremental.md) are there for every
#     entry: ino and ctime_ns as stat says, igen (FS_IOC_GETVERSION) on
#     files and directories, xattr_map with user xattrs and the raw POSIX
#     ACL (base64), no ref;
#   - the backup restores to an identical tree.
# shellcheck disable=SC2015 # "A && B || fail ...": fail unless both hold
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_btrfs
need_cmd python3 zstd tar setfattr setfacl
[ -x "${SNAPSHIP:-}" ] || fail "SNAPSHIP='${SNAPSHIP:-}' is not an executable (run make)"

state=$TEST_TMP/state
store=$TEST_TMP/store
mkdir -p "$store"
part=$(mk_subvol wo-part)
dst=$TEST_BTRFS/wo-restore
cleanup() {
	local sv
	for sv in "$dst" "$part"; do
		[ -d "$sv" ] && btrfs subvolume delete "$sv" >/dev/null 2>&1
	done
	return 0
}
trap cleanup EXIT

# ---- a tree made in a shuffled order ---------------------------------------
python3 - "$part" <<-'EOF'
	import os, random, sys
	root = os.fsencode(sys.argv[1])
	rnd = random.Random(14)
	names = [b"a", b"a-b", b"a.c", b"B", b"b", b"Z", b"_", b"~", b"0", b"10", b"9",
	         b"lat\xe9n", b"\xff\xfe", b"caf\xc3\xa9", b"a b", b"a\tb", b"zz", b"aa"]
	dirs = [b"a", b"B", b"zz", b"lat\xe9n"]
	order = names[:]
	rnd.shuffle(order)
	for n in order:
	    p = os.path.join(root, n)
	    if n in dirs:
	        os.mkdir(p)
	        kids = [b"y", b"x", b"X", b"x-1", b"x.1", b"\x01ctl"]
	        rnd.shuffle(kids)
	        for k in kids:
	            with open(os.path.join(p, k), "wb") as f:
	                f.write(n + b"/" + k)
	    else:
	        with open(p, "wb") as f:
	            f.write(n * 100)
	# a deep chain, made from the bottom name up, and a hard link
	d = os.path.join(root, b"zz", b"deep")
	os.makedirs(os.path.join(d, b"q", b"p", b"o"))
	for k in (b"m", b"c", b"t"):
	    open(os.path.join(d, b"q", k), "wb").write(k)
	os.link(os.path.join(root, b"a-b"), os.path.join(root, b"zz", b"link-to-a-b"))
EOF

setfattr -n user.colour -v blue "$part/a-b"
setfattr -n user.bin -v 0x00ff01 "$part/zz"
setfacl -m u:1234:r "$part/B/x"

# expected: depth first, a directory's names sorted bytewise
expected=$TEST_TMP/expected
python3 - "$part" >"$expected" <<-'EOF'
	import os, sys
	root = os.fsencode(sys.argv[1])
	out = sys.stdout.buffer
	def walk(rel):
	    full = os.path.join(root, rel) if rel else root
	    for n in sorted(os.listdir(full)):
	        r = os.path.join(rel, n) if rel else n
	        out.write(r.hex().encode() + b"\n")
	        if os.path.isdir(os.path.join(root, r)) and not os.path.islink(os.path.join(root, r)):
	            walk(r)
	out.write(b".".hex().encode() + b"\n")
	walk(b"")
EOF

# the creation order is not sorted (else this test proves nothing)
readdir=$(python3 -c 'import os,sys; print(" ".join(n.hex() for n in os.listdir(os.fsencode(sys.argv[1]))))' "$part")
sorted=$(python3 -c 'import os,sys; print(" ".join(n.hex() for n in sorted(os.listdir(os.fsencode(sys.argv[1])))))' "$part")
[ "$readdir" != "$sorted" ] || skip "readdir returned the names sorted: cannot tell the walk orders apart"

"$SNAPSHIP" --host wo --state-dir "$state" backup "$part" --to "$store" >/dev/null || fail "backup failed"
bdir=$(dirname "$(find "$store" -name manifest.json | head -n1)")
[ -d "$bdir" ] || fail "no backup in $store"

# the index, in order (path or path_hex, as hex)
zstd -dc "$bdir/index.jsonl.zst" | python3 -c '
import json, sys
for line in sys.stdin:
    o = json.loads(line)
    p = o["path"].encode() if "path" in o else bytes.fromhex(o["path_hex"])
    print(p.hex())
' >"$TEST_TMP/index-order"
diff -u "$expected" "$TEST_TMP/index-order" ||
	fail "the index is not in the sorted walk order (diff above, paths as hex)"

# the version 2 fields
zstd -dc "$bdir/index.jsonl.zst" | python3 -c '
import base64, json, os, subprocess, sys
root = sys.argv[1]
n = 0
for line in sys.stdin:
    o = json.loads(line)
    p = o["path"].encode() if "path" in o else bytes.fromhex(o["path_hex"])
    st = os.lstat(os.path.join(os.fsencode(root), p))
    for k in ("ino", "igen", "ctime_ns"):
        assert k in o, (p, k)
    assert o["ino"] == st.st_ino, (p, o["ino"], st.st_ino)
    assert o["ctime_ns"] == st.st_ctime_ns, (p, o["ctime_ns"], st.st_ctime_ns)
    if o["type"] in "fdh":
        assert o["igen"] > 0, (p, "igen", o["igen"])
    assert "ref" not in o, (p, "ref")
    n += 1
    xm = {k: base64.b64decode(v, validate=True) for k, v in o.get("xattr_map", {}).items()}
    if p == b"a-b":
        assert xm == {"user.colour": b"blue"}, xm
    if p == b"zz":
        assert xm == {"user.bin": b"\x00\xff\x01"}, xm
    if p == b"B/x":
        acl = os.getxattr(os.path.join(root, "B/x"), "system.posix_acl_access")
        assert xm == {"system.posix_acl_access": acl}, xm
        assert o.get("xattrs") is True
    if not xm:
        assert "xattr_map" not in o
print("version 2 fields checked on %d entries" % n)
' "$part" || fail "the index's version 2 fields are wrong (above)"

# the tar stream, in order
zstd -dc "$bdir/data.tar.zst" | python3 -c '
import sys, tarfile
with tarfile.open(fileobj=sys.stdin.buffer, mode="r|", encoding="utf-8", errors="surrogateescape") as t:
    for m in t:
        n = m.name.encode("utf-8", "surrogateescape")
        print((n.rstrip(b"/") or b".").hex())
' >"$TEST_TMP/tar-order"
diff -u "$expected" "$TEST_TMP/tar-order" ||
	fail "the tar stream is not in the sorted walk order (diff above, paths as hex)"
echo "index and tar: $(wc -l <"$expected") entries in sorted walk order"

# ---- and it restores as before ---------------------------------------------
"$SNAPSHIP" --host wo restore wo-part --from "$store" --to "$dst" >/dev/null || fail "restore failed"
assert_trees_equal "$part" "$dst"
echo "ok"
