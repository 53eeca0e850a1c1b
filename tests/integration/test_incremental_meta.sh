#!/usr/bin/env bash
# An incremental takes an unchanged entry's metadata from its parent's index
# (agent/planner.c plan_meta: the same inode, ctime, type, mode, owner and
# mtime) instead of reading it again from the file: symlink targets (one not
# UTF-8), xattrs, POSIX ACLs (access and default) and the inode generation.
# What it records must be what reading the files gives:
#   - a chain full -> incremental -> incremental (the second one's parent a
#     version 2 index) and then a --full of the same tree: for every path,
#     the incremental's index entry and the --full's carry the same type,
#     mode, owner, size, times, link, xattrs flag, xattr_map, ino and igen;
#   - an entry whose metadata changed between the backups (chmod, a new
#     xattr, an ACL removed, a symlink replaced) has its new metadata;
#   - the incremental restores to the source tree (xattrs and ACLs checked
#     with getfattr).
# shellcheck disable=SC2015 # "A && B || fail ...": fail unless both hold
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_btrfs
need_cmd python3 zstd setfattr getfattr setfacl
[ -x "${SNAPSHIP:-}" ] || fail "SNAPSHIP='${SNAPSHIP:-}' is not an executable (run make)"

src=$(mk_subvol meta_src)
store=$TEST_TMP/store
mkdir -p "$store" "$TEST_TMP/state"
cleanup() {
	[ -d "$TEST_TMP/restored" ] && btrfs subvolume delete "$TEST_TMP/restored" >/dev/null 2>&1 || true
	btrfs subvolume delete "$src" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cat >"$TEST_TMP/snapship.conf" <<EOF
[agent]
host = h
state_dir = $TEST_TMP/state
[region a]
store = file
path = $store
primary = yes
[partition p]
path = $src
EOF
S=("$SNAPSHIP" --config "$TEST_TMP/snapship.conf")

# backup [ARGS]: one backup of p; its id in $id
backup() {
	"${S[@]}" backup p "$@" >"$TEST_TMP/b.txt" 2>"$TEST_TMP/b.err" ||
		{ cat "$TEST_TMP/b.txt" "$TEST_TMP/b.err"; fail "backup $* failed"; }
	id=$(awk '{print $2}' "$TEST_TMP/b.txt" | head -n1)
	id=${id%:}
	[ -f "$store/h/p/$id/manifest.json" ] || fail "no manifest for '$id' ($(cat "$TEST_TMP/b.txt"))"
	echo "backup: $(cat "$TEST_TMP/b.txt")"
}

# ---- the tree: metadata of every kind the planner may carry over
mkdir -p "$src/d/sub" "$src/acl_dir"
head -c 100000 /dev/urandom >"$src/plain.bin"
head -c 100000 /dev/urandom >"$src/xa.bin"
setfattr -n user.one -v first "$src/xa.bin"
setfattr -n user.two -v 0xdeadbeef00ff "$src/xa.bin"
: >"$src/empty_xa"
setfattr -n user.e -v e "$src/empty_xa"
head -c 50000 /dev/urandom >"$src/acl.bin"
setfacl -m u:1234:r,g:2345:rw "$src/acl.bin"
setfacl -d -m u:1234:rx "$src/acl_dir"
echo in >"$src/acl_dir/inherits.txt"
setfattr -n user.dir -v d "$src/d"
ln -s plain.bin "$src/link"
ln -s "$(printf 'target-\xff\xfe')" "$src/link_bin"
ln -s xa.bin "$src/d/sub/link_xa"
head -c 70000 /dev/urandom >"$src/chmod.bin"
head -c 70000 /dev/urandom >"$src/addxa.bin"
head -c 70000 /dev/urandom >"$src/unacl.bin"
setfacl -m u:1234:rw "$src/unacl.bin"
ln -s plain.bin "$src/relink"
chown 4321:5432 "$src/d/sub"

backup --full
full1=$id
echo new >"$src/new.txt"
backup
incr1=$id
grep -q "incremental from $full1" "$TEST_TMP/b.txt" || fail "$incr1 is not an incremental of $full1"

# ---- metadata changes before the second incremental (ctime moves: read)
chmod 0600 "$src/chmod.bin"
setfattr -n user.added -v yes "$src/addxa.bin"
setfacl -b "$src/unacl.bin"
rm "$src/relink"
ln -s xa.bin "$src/relink"
backup
incr2=$id
grep -q "incremental from $incr1" "$TEST_TMP/b.txt" || fail "$incr2 is not an incremental of $incr1"
backup --full
full2=$id

# ---- the incremental's entries == the --full's (read from the files)
python3 - "$store/h/p" "$incr1" "$incr2" "$full2" <<'EOF' || fail "an incremental's index differs from a full's of the same tree (above)"
import json, subprocess, sys

base, incr1, incr2, full = sys.argv[1:5]
KEYS = ("type", "mode", "uid", "gid", "size", "mtime_ns", "ctime_ns", "link", "link_hex",
        "xattrs", "xattr_map", "ino", "igen")

def index(bid):
    raw = subprocess.run(["zstd", "-dc", "%s/%s/index.jsonl.zst" % (base, bid)],
                         check=True, capture_output=True).stdout
    out = {}
    for line in raw.decode().splitlines():
        e = json.loads(line)
        out[e.get("path", e.get("path_hex"))] = e
    return out

f = index(full)
bad = 0
for bid in (incr2,):
    i = index(bid)
    if sorted(i) != sorted(f):
        print("paths differ:", sorted(set(i) ^ set(f)))
        bad += 1
    for p in sorted(f):
        a = {k: i[p].get(k) for k in KEYS if p in i}
        b = {k: f[p].get(k) for k in KEYS}
        if a != b:
            print("%s: %s\n  incremental %s\n  full        %s" % (bid, p, a, b))
            bad += 1
# the entries whose metadata stayed as in incr1 came from the parent: the
# xattr-carrying ones really carry it
i2 = index(incr2)
want = {
    "xa.bin": {"user.one", "user.two"}, "empty_xa": {"user.e"}, "d": {"user.dir"},
    "acl.bin": {"system.posix_acl_access"}, "acl_dir": {"system.posix_acl_default"},
    "addxa.bin": {"user.added"},
}
for p, names in want.items():
    got = set((i2[p].get("xattr_map") or {}).keys())
    if not names <= got or not i2[p].get("xattrs"):
        print("%s: xattr_map %s, xattrs %s; expected %s" % (p, got, i2[p].get("xattrs"), names))
        bad += 1
if "system.posix_acl_access" in (i2["unacl.bin"].get("xattr_map") or {}) or i2["unacl.bin"].get("xattrs"):
    print("unacl.bin: its ACL was removed, the index still has it")
    bad += 1
if i2["chmod.bin"]["mode"] != 0o600:
    print("chmod.bin: mode %o, expected 600" % i2["chmod.bin"]["mode"])
    bad += 1
if i2["relink"]["link"] != "xa.bin" or i2["link"]["link"] != "plain.bin" or "link_hex" not in i2["link_bin"]:
    print("links: relink %s, link %s, link_bin %s" % (i2["relink"].get("link"), i2["link"].get("link"),
                                                   i2["link_bin"].get("link_hex")))
    bad += 1
if i2["d/sub"]["uid"] != 4321 or i2["d/sub"]["gid"] != 5432:
    print("d/sub: owner %s:%s" % (i2["d/sub"]["uid"], i2["d/sub"]["gid"]))
    bad += 1
print("compared %d entries of %s with %s: %d differences" % (len(f), incr2, full, bad))
sys.exit(1 if bad else 0)
EOF

# ---- and it restores to the source, xattrs and ACLs included
"${S[@]}" -q restore p --id "$incr2" --to "$TEST_TMP/restored" ||
	fail "restore of $incr2 failed"
assert_trees_equal "$src" "$TEST_TMP/restored"
for t in "$src" "$TEST_TMP/restored"; do
	(cd "$t" && getfattr -R -h -d -m - --absolute-names . 2>/dev/null | grep -v '^$' | LC_ALL=C sort) >"$TEST_TMP/xa.$(basename "$t")"
done
diff "$TEST_TMP/xa.$(basename "$src")" "$TEST_TMP/xa.restored" ||
	fail "the restored tree's xattrs and ACLs differ from the source's (diff above)"
grep -q 'system.posix_acl_access' "$TEST_TMP/xa.restored" || fail "no ACL restored at all"
grep -q 'user.one' "$TEST_TMP/xa.restored" || fail "no user xattr restored at all"
echo "ok: $incr2's metadata equals a --full's of the same tree, and it restores with its xattrs and ACLs"
