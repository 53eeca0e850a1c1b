#!/usr/bin/env bash
# Hostile entries in a forged backup (issue 9 items 4, 6, 7, 10): restore
# ends in "verified" only when every entry the index names was restored
# with the index's metadata and content, and nothing else was; claims are
# checked before any work proportional to them; privileges come back only
# when asked for.  Each case is forged with tests/tools/forge.py into a
# directory store and restored under `timeout 60`, with its maximum RSS
# (<= 256 MiB) measured and a canary directory outside the target checked
# before and after:
#   - a hard link carrying data after its target: refused, target intact;
#   - a duplicate entry standing in for a missing file: refused ("twice");
#   - an index entry the data lacks: refused, naming it;
#   - type, mode, owner, mtime, symlink and hard-link target, device number
#     differing between the tar and the index: refused, naming the field;
#   - a file entry without its checksum: refused (it could not be verified);
#   - an index size of 2^62 for a tiny file: refused ("size"), at once;
#   - a tar header and index agreeing on 2^62 bytes for 4 bytes of data:
#     refused before the file is made;
#   - GNU sparse 1.0 maps claiming 2^62 bytes and a petabyte, and a map with
#     data past the file's size: refused, at once;
#   - 200k index entries of one path: refused as "listed twice";
#   - 131k distinct paths built to collide in the old (unseeded FNV-1a)
#     index hash: restored in linear time (each is looked up once);
#   - a setuid file, a setgid directory and a file with a security.capability
#     xattr: restored without them, the summary counting 3; with
#     --keep-privileges restored as they were.
# shellcheck disable=SC2015 # "A && B || fail ...": fail unless both hold
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_root
need_cmd python3 zstd xxhsum

store=$TEST_TMP/store
targets=$TEST_TMP/targets
canary=$TEST_TMP/canary
forge_py=$SRC_DIR/tests/tools/forge.py
[ -f "$forge_py" ] || fail "$forge_py is missing"
mkdir -p "$store" "$targets" "$canary/sub"
printf 'canary\n' >"$canary/file"
printf 'deeper\n' >"$canary/sub/file"
chmod 0640 "$canary/file"

canary_state() {
	(cd "$canary" && find . -printf '%p %y %m %U:%G %s %l\n' | sort &&
		find . -type f -print0 | sort -z | xargs -0 sha256sum)
}
canary_before=$(canary_state)

# Forge every case: one backup per case id of host "hostile", partition p.
python3 - "$SRC_DIR/tests/tools" "$store" <<'EOF' || fail "forging the backups failed"
import io, json, os, struct, sys, tarfile
sys.path.insert(0, sys.argv[1])
import forge

store = sys.argv[2]
HOST, PART = "hostile", "p"
n = 0
ids = {}


def put(case, raw, ents, manifest_set=None):
    global n
    n += 1
    bid = "20300101T0000%02dZ-%06x" % (n % 60, n)
    data, nframes = forge.seekable_from(raw)
    ib = forge.index_bytes(ents)
    man = forge.manifest(HOST, PART, bid, data, ib, nframes, 65536, len(raw),
                         len(ents), 1, 0)
    if manifest_set:
        for k, v in manifest_set.items():
            man["counts"][k] = v
    forge.write_backup(store, HOST, PART, bid, data, ib, man)
    ids[case] = bid


def case(name, spec, fix=None):
    """spec's tar; fix(entries) changes the index entries (by path)."""
    raw, ents = forge.tar_and_index(spec)
    if fix:
        by = {e["path"]: e for e in ents}
        fix(by, ents)
    put(name, raw, ents)


base = [{"name": "a", "type": "file", "data": "alpha\n"},
        {"name": "d", "type": "dir"},
        {"name": "d/b", "type": "file", "data": "bravo\n"},
        {"name": "l", "type": "symlink", "target": "a"}]
case("control", base)

# a hard link carrying data, after its (already written) target
case("hardlink-data", [{"name": "t", "type": "file", "data": "target data\n"},
                       {"name": "h", "type": "hardlink", "target": "t",
                        "data": "x" * 100, "pax": {"size": "100"}}])

# the data holds a twice and no b; the index lists a and b: as many entries
raw, _ = forge.tar_and_index([{"name": "a", "type": "file", "data": "alpha\n"},
                              {"name": "a", "type": "file", "data": "alpha\n"}])
_, ents = forge.tar_and_index([{"name": "a", "type": "file", "data": "alpha\n"},
                               {"name": "b", "type": "file", "data": "bravo\n"}])
put("dup-stand-in", raw, ents)

# an entry the index names that the data lacks
raw, _ = forge.tar_and_index([{"name": "a", "type": "file", "data": "alpha\n"}])
_, ents = forge.tar_and_index([{"name": "a", "type": "file", "data": "alpha\n"},
                               {"name": "zmissing", "type": "file", "data": "z\n"}])
put("missing", raw, ents)


def setf(path, **kw):
    return lambda by, ents: by[path].update(kw)


case("mode", base, setf("a", mode=0o600))
case("mode-setuid", base, setf("a", mode=0o4644))
case("owner", base, setf("d/b", uid=1000))
case("group", base, setf("d/b", gid=1000))
case("mtime", base, setf("a", mtime_ns=1700000000 * 10**9 + 1))
case("symlink-target", base, setf("l", link="/etc/shadow"))
case("type-file-as-dir", base, setf("a", type="d"))
case("type-symlink-as-file", base, setf("l", type="f"))
case("no-checksum", base, lambda by, ents: by["a"].pop("xxh3"))
case("hardlink-target", base + [{"name": "h", "type": "hardlink", "target": "a"}],
     setf("h", link="d/b"))
case("rdev", [{"name": "null", "type": "char",
               "index": {"rdev": os.makedev(1, 3) + 1}}])

# an index size of 2^62 for a tiny file (the tar says 6 bytes)
case("index-size", base, setf("a", size=2**62))

# the tar and the index agree on 2^62 bytes; the data holds 4
case("tar-size", [{"name": "a", "type": "file", "data": "abcd",
                   "pax": {"size": str(2**62)}, "index": {"size": 2**62}}])


def sparse10(name, realsize, regions, fill=b"abcd"):
    """A GNU sparse 1.0 pax entry: the map at the start of the data."""
    m = ("%d\n" % len(regions) + "".join("%d\n%d\n" % r for r in regions)).encode()
    m += b"\0" * (-len(m) % 512)
    body = m + b"".join(fill[:r[1]].ljust(r[1], b"z") for r in regions)
    ti = tarfile.TarInfo("GNUSparseFile.0/" + name)
    ti.size, ti.mode, ti.mtime = len(body), 0o644, 1700000000
    ti.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                      "GNU.sparse.name": name, "GNU.sparse.realsize": str(realsize)}
    return ti, body


def sparse_case(name, realsize, regions):
    buf = io.BytesIO()
    t = tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT)
    root = tarfile.TarInfo(".")
    root.type, root.mode, root.mtime = tarfile.DIRTYPE, 0o755, 1700000000
    t.addfile(root)
    off = buf.tell()
    ti, body = sparse10("big", realsize, regions)
    t.addfile(ti, io.BytesIO(body))
    t.close()
    ents = [{"type": "d", "mode": 0o755, "uid": 0, "gid": 0, "size": 0,
             "mtime_ns": 1700000000 * 10**9, "offset": 0, "path": "."},
            {"type": "f", "mode": 0o644, "uid": 0, "gid": 0, "size": realsize,
             "mtime_ns": 1700000000 * 10**9, "offset": off, "path": "big",
             "sparse": True, "xxh3": "0" * 32}]
    # the manifest agrees with the claim: only the data can refute it
    put(name, buf.getvalue(), ents, {"logical_bytes": realsize})


sparse_case("sparse-2^62", 2**62, [(0, 4), (2**62 - 4, 4)])
sparse_case("sparse-petabyte", 10**15, [(0, 4), (10**15 - 4, 4)])
sparse_case("sparse-past-size", 8, [(0, 4), (2**40, 4)])

# 200k index entries of one path
raw, ents = forge.tar_and_index([{"name": "a", "type": "file", "data": "alpha\n"}])
put("dup-index", raw, ents + [dict(ents[1]) for _ in range(200000)])

# 2^17 distinct names whose FNV-1a hashes agree in their low 20 bits (the old
# index hash, unseeded, in a table of 2^19 slots): each name is 17 blocks of
# 4 letters, each block one of two that take the hash state to the same
# low bits, so every choice of blocks collides
MASK, P = (1 << 20) - 1, 1099511628211
letters = b"abcdefghijklmnopqrstuvwxyz"


def fnv(h, s):
    for c in s:
        h = ((h ^ c) * P) & 0xFFFFFFFFFFFFFFFF
    return h


state, pairs = 1469598103934665603, []
for pos in range(17):
    seen = {}
    k = 0
    while True:
        blk = bytes(letters[(k // 26**j) % 26] for j in range(4))
        k += 1
        h = fnv(state, blk)
        prev = seen.get(h & MASK)
        if prev is not None and prev[0] != blk:
            # the full states differ: continue from the first one's state;
            # the low bits, all the old table used, are the same
            pairs.append((prev[0], blk))
            # both lead to the same low 20 bits; the next block's effect on
            # the low bits depends only on these low bits
            state = prev[1]
            break
        seen[h & MASK] = (blk, h)
names = []
for i in range(1 << 17):
    names.append(b"".join(pairs[j][(i >> j) & 1] for j in range(17)).decode())
# the data holds them all (empty files), so every one is looked up
buf = io.BytesIO()
t = tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT)
ents = []
for nm in ["."] + names:
    ti = tarfile.TarInfo(nm)
    ti.type = tarfile.DIRTYPE if nm == "." else tarfile.REGTYPE
    ti.mode, ti.mtime = (0o755 if nm == "." else 0o644), 1700000000
    ent = {"type": "d" if nm == "." else "f", "mode": ti.mode, "uid": 0, "gid": 0,
           "size": 0, "mtime_ns": 1700000000 * 10**9, "offset": buf.tell(), "path": nm}
    if nm != ".":
        ent["xxh3"] = "99aa06d3014798d86001c324468d497f"   # of nothing
    t.addfile(ti)
    ents.append(ent)
t.close()
put("hash-collisions", buf.getvalue(), ents)
# the collisions are real: every name has the same low 20 bits of FNV-1a
low = {fnv(1469598103934665603, nm.encode()) & MASK for nm in names[:1000]}
assert len(low) == 1, "the forged names do not collide"

# privileges: a setuid file, a setgid directory, a file capability
cap = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)   # v2, cap_net_raw+ep
case("privileges", [
    {"name": "suid", "type": "file", "data": "#!/bin/sh\n", "mode": 0o4755},
    {"name": "sgid", "type": "dir", "mode": 0o2775},
    {"name": "capfile", "type": "file", "data": "cap\n", "mode": 0o755,
     "pax": {"SCHILY.xattr.security.capability": cap.decode("utf-8", "surrogateescape")}}])

with open(os.path.join(store, "ids.json"), "w") as f:
    json.dump(ids, f)
EOF

# AddressSanitizer keeps up to 256 MiB of freed memory in quarantine: a
# small one, so that the RSS measured is the program's own
case $(ldd "$SNAPSHIP" 2>/dev/null) in
*libasan*) export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8 ;;
esac

id_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$store/ids.json" "$1"; }

# restore_case CASE [OPTIONS]: restore under timeout 60, measuring the max
# RSS; sets RC, OUT (stdout+stderr), T (the target); checks RSS and canary
hn=0
restore_case() {
	local c=$1 bid rss
	shift
	hn=$((hn + 1))
	bid=$(id_of "$c")
	T=$targets/t$hn
	python3 - "$TEST_TMP/out" "$SNAPSHIP" --host hostile restore p --from "$store" \
		--id "$bid" --to "$T" "$@" >"$TEST_TMP/rc" <<-'EOF'
		import resource, subprocess, sys
		with open(sys.argv[1], "wb") as out:
		    try:
		        rc = subprocess.run(sys.argv[2:], stdout=out, stderr=subprocess.STDOUT,
		                            timeout=60).returncode
		    except subprocess.TimeoutExpired:
		        rc = 124
		print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
	EOF
	read -r RC rss <"$TEST_TMP/rc"
	OUT=$(cat "$TEST_TMP/out")
	echo "-- $c: exit $RC, max RSS $((rss / 1024)) MiB: $(head -c 300 <<<"$OUT")"
	[ "$RC" != 124 ] || fail "$c: the restore did not finish within 60 s"
	[ "$rss" -le $((256 * 1024)) ] || fail "$c: the restore used $((rss / 1024)) MiB (more than 256 MiB)"
	[ "$(canary_state)" = "$canary_before" ] || fail "$c: the canary directory outside the target changed"
}

# expect_refused CASE REGEX: exit 1, the message matches REGEX (-iE)
expect_refused() {
	restore_case "$1"
	[ "$RC" = 1 ] || fail "$1: exit $RC, expected 1 (refused): $OUT"
	grep -qiE "$2" <<<"$OUT" || fail "$1: the message does not match /$2/: $OUT"
}

restore_case control
[ "$RC" = 0 ] || fail "control: a benign forged backup does not restore ($OUT); the forging is wrong"
[ "$(cat "$T/a")" = alpha ] && [ "$(cat "$T/d/b")" = bravo ] && [ "$(readlink "$T/l")" = a ] ||
	fail "control: wrong content restored"

expect_refused hardlink-data 'hard link h carries 100 bytes'
[ ! -e "$T/t" ] || [ "$(cat "$T/t")" = "target data" ] || fail "hardlink-data: the target t was overwritten"
[ ! -e "$T/h" ] || fail "hardlink-data: the hard link was made"

expect_refused dup-stand-in 'a is in the data twice'
expect_refused missing 'zmissing is in the index but not in the data'
expect_refused mode 'a: its mode in the data \(0644\) differs from the index \(0600\)'
expect_refused mode-setuid 'a: its mode in the data \(0644\) differs from the index \(4644\)'
expect_refused owner 'd/b: its owner in the data \(0:0\) differs from the index \(1000:0\)'
expect_refused group 'd/b: its owner in the data \(0:0\) differs from the index \(0:1000\)'
expect_refused mtime 'a: its mtime in the data'
expect_refused symlink-target 'l: its link target in the data \(a\) differs from the index \(/etc/shadow\)'
expect_refused type-file-as-dir 'a: its type in the data \(f\) differs from the index \(d\)|index entry a \(offset [0-9]+, size 6\) is corrupt: only a file has a size'
expect_refused no-checksum 'the index holds no checksum for a'
expect_refused type-symlink-as-file 'l: its type in the data \(l\) differs from the index \(f\)'
expect_refused hardlink-target 'h: its link target in the data \(a\) differs from the index \(d/b\)'
expect_refused rdev 'null: its device number'
# the index's claim is checked against the stream before the data is read
expect_refused index-size 'a: its size in the data \(6 bytes\) differs from the index \(4611686018427387904 bytes\)|index entry a \(offset [0-9]+, size 4611686018427387904\) is corrupt: its size is more than the data after it'
expect_refused tar-size 'a claims 4611686018427387904 bytes of data, more than the whole backup holds|index entry a \(offset [0-9]+, size 4611686018427387904\) is corrupt: its size is more than the data after it'
[ ! -e "$T/a" ] || [ "$(stat -c %s "$T/a")" -le 4 ] || fail "tar-size: a was made $(stat -c %s "$T/a") bytes large"
expect_refused sparse-2^62 'big is a sparse file of 4611686018427387904 bytes'
[ ! -e "$T/big" ] || fail "sparse-2^62: the file was created"
expect_refused sparse-petabyte 'big is a sparse file of 1000000000000000 bytes'
[ ! -e "$T/big" ] || fail "sparse-petabyte: the file was created"
expect_refused sparse-past-size 'big has data at byte 1099511627776 \(4 bytes\), out of order or past its size of 8 bytes'
[ ! -e "$T/big" ] || [ "$(stat -c %s "$T/big")" -le 8 ] || fail "sparse-past-size: big was made larger than 8 bytes"
expect_refused dup-index 'index lists a twice'
restore_case hash-collisions
[ "$RC" = 0 ] || fail "hash-collisions: exit $RC: $OUT"
grep -qF ': 131073 entries' <<<"$OUT" || fail "hash-collisions: not every entry was restored: $OUT"
[ "$(find "$T" -type f | wc -l)" = 131072 ] || fail "hash-collisions: the files were not all restored"
rm -rf "$T"

# privileges: stripped and counted by default ...
restore_case privileges
[ "$RC" = 0 ] || fail "privileges: exit $RC: $OUT"
grep -qF '3 setuid/setgid/capability bits not restored; --keep-privileges restores them' <<<"$OUT" ||
	fail "privileges: the summary does not count the stripped bits: $OUT"
[ "$(stat -c %a "$T/suid")" = 755 ] || fail "privileges: suid restored with mode $(stat -c %a "$T/suid")"
[ "$(stat -c %a "$T/sgid")" = 775 ] || fail "privileges: sgid restored with mode $(stat -c %a "$T/sgid")"
getcap_of() {
	python3 -c 'import os,sys
try: print(os.getxattr(sys.argv[1], "security.capability", follow_symlinks=False).hex())
except OSError: print("none")' "$1"
}
[ "$(getcap_of "$T/capfile")" = none ] || fail "privileges: the capability was restored without --keep-privileges"
[ "$(cat "$T/capfile")" = cap ] || fail "privileges: capfile has the wrong content"
# ... and restored as they were with --keep-privileges
restore_case privileges --keep-privileges
[ "$RC" = 0 ] || fail "privileges --keep-privileges: exit $RC: $OUT"
! grep -q 'not restored' <<<"$OUT" || fail "privileges --keep-privileges: still says bits were not restored: $OUT"
[ "$(stat -c %a "$T/suid")" = 4755 ] || fail "--keep-privileges: suid restored with mode $(stat -c %a "$T/suid")"
[ "$(stat -c %a "$T/sgid")" = 2775 ] || fail "--keep-privileges: sgid restored with mode $(stat -c %a "$T/sgid")"
[ "$(getcap_of "$T/capfile")" = 0100000200200000000000000000000000000000 ] ||
	fail "--keep-privileges: the capability was not restored ($(getcap_of "$T/capfile"))"

echo "hostile entries ok"
