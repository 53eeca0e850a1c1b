#!/usr/bin/env bash
# Large files in blocks, the writer (issue 14; doc/incremental.md "Large
# files in blocks"): checked on the stored objects themselves (index and
# data object read with zstd and Python's tarfile, block checksums with
# xxh128sum), not by restoring (the restore of blocked incrementals lands
# with the read side):
#   - a full describes each file of >= 4 MiB in blocks: bsize 16 KiB, one
#     XXH3-128 per block, the extent fingerprint (bext) on btrfs, none for a
#     NOCOW file;
#   - after an 8 KiB in-place write, a 3 MiB append (the old last block was
#     partial), a 1 MiB reflink into a second file (FICLONERANGE) and a 4 KiB
#     rewrite of a NOCOW file, the incremental's data object holds parts
#     (pax SNAPSHIP.part) of exactly the changed blocks; the index's runs
#     cover every block, the unchanged ones pointing at the full; every
#     block's content, wherever its run points, equals the snapshot's and
#     its bxxh3; the bytes read from the partition stay far below the files'
#     sizes (/proc/PID/io read_bytes, printed);
#   - a failing extent search (SNAPSHIP_FAULT=extents.search) fails the
#     backup with an error naming the file;
#   - an incremental with no change references everything (no entry in its
#     data object), and a chmod of the 64 MiB file reads nothing of it;
#   - a renamed blocked file keeps its runs; a truncated one stores only its
#     new (shorter) last block;
#   - another subvolume backed up under the same name: fingerprints are not
#     compared across subvolumes — its large files are read and hashed, and
#     only the changed block stored;
#   - the planner's own reads (a NOCOW file compared by reading it) obey
#     max_read_rate: 8 MiB at 2 MiB/s cannot take less than ~3.7 s (a
#     lower bound a rate limit guarantees, not a speed).
# shellcheck disable=SC2015 # "A && B || fail ...": fail unless both hold
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_btrfs
need_cmd python3 zstd xxh128sum chattr bc
[ -x "${SNAPSHIP:-}" ] || fail "SNAPSHIP='${SNAPSHIP:-}' is not an executable (run make)"

src=$(mk_subvol blk_src)
snaps=$(mk_subvol blk_snaps)
store=$TEST_TMP/store
mkdir -p "$store"
cleanup() {
	for s in "$snaps"/*; do
		[ -d "$s" ] && btrfs subvolume delete "$s" >/dev/null 2>&1 || true
	done
	btrfs subvolume delete "$snaps" "$src" >/dev/null 2>&1 || true
}
trap cleanup EXIT
MIB=1048576
BS=16384   # pack_block_size of these files (4 MiB .. 256 MiB)

# backup [ARGS...]: one backup of src, run under a watcher that samples
# /proc/PID/io until it exits; its id in $id, its read_bytes in $rb; then a
# read-only snapshot of the source ($snaps/$id) for the checks.
n=0
backup() {
	n=$((n + 1))
	python3 - "$TEST_TMP/rb" "$SNAPSHIP" --host h --state-dir "$TEST_TMP/state" \
		backup "$src" --name p --to "$store" "$@" >"$TEST_TMP/b.txt" 2>"$TEST_TMP/b.err" <<'PY' ||
import subprocess, sys, time
p = subprocess.Popen(sys.argv[2:])
rb = 0
while p.poll() is None:
    try:
        for line in open("/proc/%d/io" % p.pid):
            if line.startswith("read_bytes:"):
                rb = max(rb, int(line.split()[1]))
    except OSError:
        pass
    time.sleep(0.02)
open(sys.argv[1], "w").write("%d\n" % rb)
sys.exit(p.returncode)
PY
		{ cat "$TEST_TMP/b.txt" "$TEST_TMP/b.err"; fail "backup $n failed"; }
	id=$(awk '{print $2}' "$TEST_TMP/b.txt" | head -n1)
	id=${id%:}
	rb=$(cat "$TEST_TMP/rb")
	[ -f "$store/h/p/$id/manifest.json" ] || fail "backup $n: no manifest for '$id'"
	echo "backup $n: $(cat "$TEST_TMP/b.txt") (read_bytes $rb)"
	btrfs subvolume snapshot -r "$src" "$snaps/$id" >/dev/null
}

# check ID: every blocked file of ID against its snapshot (tests/tools-free:
# the index, the data objects and xxh128sum); prints "PATH PARTS" lines for
# the parts (runs stored by ID itself): "big1 10+1 64+4".
check() {
	python3 - "$store/h/p" "$1" "$snaps/$1" "$TEST_TMP" <<'PY'
import json, os, subprocess, sys, tarfile
base, bid, snap, tmp = sys.argv[1:5]
man = json.load(open(os.path.join(base, bid, "manifest.json")))
refs = {r["id"] for r in man.get("references", [])}
def index(b):
    out = subprocess.run(["zstd", "-dc", os.path.join(base, b, "index.jsonl.zst")],
                         check=True, capture_output=True).stdout
    return [json.loads(l) for l in out.splitlines() if l]
tars = {}
def tar(b):
    if b not in tars:
        path = os.path.join(tmp, "data-%s.tar" % b)
        if not os.path.exists(path):
            subprocess.run(["zstd", "-qdf", os.path.join(base, b, "data.tar.zst"), "-o", path], check=True)
        tars[b] = (open(path, "rb"), {m.offset: m for m in tarfile.open(path)})
    return tars[b]
def xxh128(data):
    return subprocess.run(["xxh128sum", "-"], input=data, check=True,
                          capture_output=True).stdout.split()[0].decode()
fails = []
for e in index(bid):
    if "bsize" not in e:
        continue
    path, bs, size = e["path"], e["bsize"], e["size"]
    nb = (size + bs - 1) // bs
    runs = e.get("runs") or [{"b": 0, "n": nb, "offset": e["offset"], "skip": 0,
                              **({"ref": e["ref"]} if "ref" in e else {})}]
    assert sum(r["n"] for r in runs) == nb and runs[0]["b"] == 0, (path, runs)
    parts = []
    data = open(os.path.join(snap, path), "rb")
    for r in runs:
        owner = r.get("ref", bid)
        if owner != bid and owner not in refs:
            fails.append("%s: a run points at %s, not in references %s" % (path, owner, refs))
        f, members = tar(owner)
        m = members.get(r["offset"])
        if m is None:
            fails.append("%s: no tar entry at %d in %s" % (path, r["offset"], owner))
            continue
        if owner == bid and "runs" in e:
            part = m.pax_headers.get("SNAPSHIP.part")
            want = "%d %d" % (r["b"] * bs, size)
            if part != want or m.size != min(size - r["b"] * bs, r["n"] * bs):
                fails.append("%s: part at %d says %r size %d, expected %r" % (path, r["offset"], part, m.size, want))
            parts.append("%d+%d" % (r["b"], r["n"]))
        for i in range(r["b"], r["b"] + r["n"]):
            blen = min(bs, size - i * bs)
            f.seek(m.offset_data + (r["skip"] + i - r["b"]) * bs)
            got = f.read(blen)
            data.seek(i * bs)
            if got != data.read(blen):
                fails.append("%s: block %d in %s differs from the snapshot" % (path, i, owner))
            if xxh128(got) != e["bxxh3"][32 * i:32 * i + 32]:
                fails.append("%s: block %d: bxxh3 is not its XXH3-128" % (path, i))
    print(path, " ".join(parts))
if fails:
    print("\n".join(fails[:20]), file=sys.stderr)
    sys.exit(1)
PY
}

# field ID PATH KEY: KEY of PATH's index entry ("-" when absent)
field() {
	zstd -dc "$store/h/p/$1/index.jsonl.zst" | python3 -c '
import json, sys
for l in sys.stdin:
    e = json.loads(l)
    if e["path"] == sys.argv[1]:
        v = e.get(sys.argv[2], "-")
        print(len(v) if sys.argv[2] in ("bxxh3", "bext") and v != "-" else v)' "$2" "$3"
}
tarlist() {	# tarlist ID: "path part" per entry of its data object
	zstd -dc "$store/h/p/$1/data.tar.zst" | python3 -c '
import sys, tarfile
for m in tarfile.open(fileobj=sys.stdin.buffer, mode="r|"):
    print(m.name, m.pax_headers.get("SNAPSHIP.part", "whole"))'
}

# ---- a full ----------------------------------------------------------------
head -c $((64 * MIB + 300 * 1024)) /dev/urandom >"$src/big1"
head -c $((64 * MIB)) /dev/urandom >"$src/big2"
touch "$src/nocow"
chattr +C "$src/nocow"
head -c $((8 * MIB)) /dev/urandom >>"$src/nocow"
head -c 2000 /dev/urandom >"$src/small1"
echo hello >"$src/small2"
# a tree search that fails (not refused) fails the backup, naming the file
out=$(SNAPSHIP_FAULT=extents.search@1:5 "$SNAPSHIP" --host h --state-dir "$TEST_TMP/state" \
	backup "$src" --name p --to "$store" 2>&1) && fail "a failed extent search should fail the backup: $out"
grep -q "big1: cannot list the file's extents" <<<"$out" || fail "the failed extent search's error does not name big1: $out"
echo "failed as it should: $(grep -m1 big1 <<<"$out")"
backup --full
F=$id
[ "$(field "$F" big1 bsize)" = $BS ] || fail "$F: big1 has bsize $(field "$F" big1 bsize), expected $BS"
nb=$(((64 * MIB + 300 * 1024 + BS - 1) / BS))
[ "$(field "$F" big1 bxxh3)" = $((nb * 32)) ] || fail "$F: big1 should have $nb block checksums"
[ "$(field "$F" big1 bext)" = $((nb * 16)) ] || fail "$F: big1 should have $nb extent fingerprints"
[ "$(field "$F" nocow bext)" = - ] && [ "$(field "$F" nocow bsize)" = $BS ] ||
	fail "$F: the NOCOW file should be in blocks without a fingerprint"
[ "$(field "$F" small1 bsize)" = - ] || fail "$F: a small file is not in blocks"
[ "$(field "$F" big1 runs)" = - ] && [ "$(field "$F" big1 xxh3)" != - ] ||
	fail "$F: a full's blocked file is one whole entry with its xxh3"
check "$F" >/dev/null || fail "$F: the full's blocks do not check"

# ---- changes: an in-place write, an append, a reflink, a NOCOW rewrite -----
head -c 8192 /dev/urandom | dd of="$src/big1" bs=4096 seek=$((10 * 256 + 3)) conv=notrunc status=none
head -c $((3 * MIB)) /dev/urandom >>"$src/big1"
head -c $((2 * MIB)) /dev/urandom >"$src/donor"
python3 - "$src/donor" "$src/big2" <<'PY'
import fcntl, os, struct, sys
FICLONERANGE = 0x4020940d
src = os.open(sys.argv[1], os.O_RDONLY)
dst = os.open(sys.argv[2], os.O_RDWR)
fcntl.ioctl(dst, FICLONERANGE, struct.pack("qQQQ", src, 0, 1 << 20, 40 << 20))
PY
head -c 4096 /dev/urandom | dd of="$src/nocow" bs=4096 seek=$((5 * 256 + 7)) conv=notrunc status=none
sync
backup
B1=$id
echo "parts of $B1:"
check "$B1" | tee "$TEST_TMP/parts" || fail "$B1: the blocks do not check"
# the blocks of the 8 KiB write, of the old partial last block through the
# new end, of the 1 MiB reflink, of the 4 KiB NOCOW write
w=$(((10 * MIB + 12288) / BS)) wn=$(((10 * MIB + 12288 + 8191) / BS - (10 * MIB + 12288) / BS + 1)) a0=$(((64 * MIB + 300 * 1024) / BS)) a1=$(((67 * MIB + 300 * 1024 - 1) / BS))
want1="big1 $w+$wn $a0+$((a1 - a0 + 1))" want2="big2 $((40 * MIB / BS))+$((MIB / BS))"
want3="nocow $(((5 * MIB + 28672) / BS))+1"
grep -qx "$want1" "$TEST_TMP/parts" || fail "$B1: big1's parts should be '$want1'"
grep -qx "$want2" "$TEST_TMP/parts" || fail "$B1: big2's parts should be '$want2'"
grep -qx "$want3" "$TEST_TMP/parts" || fail "$B1: nocow's parts should be '$want3'"
tarlist "$B1" >"$TEST_TMP/tl"
cat "$TEST_TMP/tl"
[ "$(grep -c '^big1 ' "$TEST_TMP/tl")" = 2 ] && [ "$(grep -c '^big2 ' "$TEST_TMP/tl")" = 1 ] &&
	[ "$(grep -c '^nocow ' "$TEST_TMP/tl")" = 1 ] && grep -qx 'donor whole' "$TEST_TMP/tl" &&
	[ "$(wc -l <"$TEST_TMP/tl")" = 5 ] || fail "$B1: the data object should hold the 4 parts and donor"
# GNU tar reads the parts as plain entries (the unknown pax record ignored)
zstd -dc "$store/h/p/$B1/data.tar.zst" | tar -tf - >"$TEST_TMP/gnu" 2>"$TEST_TMP/gnu.err" ||
	fail "GNU tar cannot list $B1's data object: $(cat "$TEST_TMP/gnu.err")"
[ "$(sort "$TEST_TMP/gnu" | tr '\n' ' ')" = "big1 big1 big2 donor nocow " ] ||
	fail "GNU tar lists $(cat "$TEST_TMP/gnu") in $B1's data object"
[ "$(field "$B1" big1 xxh3)" = - ] || fail "$B1: a file with older runs has no whole xxh3"
grep -q "incremental from $F" "$TEST_TMP/b.txt" || fail "$B1 is not an incremental of $F"
# changed blocks ~6 MiB, the NOCOW file read whole by the planner (8 MiB), donor 2 MiB
[ "$rb" -lt $((24 * MIB)) ] || fail "$B1 read $rb bytes from the partition (files: 138 MiB)"

# ---- no change: everything referenced --------------------------------------
backup
B2=$id
check "$B2" >"$TEST_TMP/parts2" || fail "$B2: the blocks do not check"
[ -z "$(tarlist "$B2")" ] || fail "$B2: no change, yet its data object holds $(tarlist "$B2")"
[ "$(field "$B2" big1 runs)" != - ] || fail "$B2: big1 should keep its runs"
python3 -c 'import json,sys; r=[x["id"] for x in json.load(open(sys.argv[1]))["references"]]; sys.exit(sorted(r) != sorted(sys.argv[2:]))' \
	"$store/h/p/$B2/manifest.json" "$F" "$B1" || fail "$B2 should reference $F and $B1"

# ---- chmod of the 64 MiB file: nothing of it read --------------------------
chmod 600 "$src/big2"
backup
B3=$id
check "$B3" >/dev/null || fail "$B3: the blocks do not check"
[ -z "$(tarlist "$B3")" ] || fail "$B3: a chmod stored $(tarlist "$B3")"
[ "$rb" -lt $((2 * MIB)) ] || fail "$B3: a chmod read $rb bytes"
[ "$(field "$B3" big2 mode)" = 384 ] || fail "$B3: big2's mode is $(field "$B3" big2 mode)"

# ---- a rename (nothing stored) and a truncation (the new last block) ---------
mv "$src/big2" "$src/big2.moved"
truncate -s $((20 * MIB + 5)) "$src/big1"
backup
B4=$id
check "$B4" >"$TEST_TMP/parts4" || fail "$B4: the blocks do not check"
cat "$TEST_TMP/parts4"
grep -qx "big1 $((20 * MIB / BS))+1" "$TEST_TMP/parts4" ||
	fail "$B4: big1's only part should be its new last block $((20 * MIB / BS))"
grep -qx 'big2.moved ' "$TEST_TMP/parts4" || fail "$B4: the renamed file should store nothing"
[ "$(tarlist "$B4")" = "big1 $((20 * MIB)) $((20 * MIB + 5))" ] ||
	fail "$B4: the data object holds $(tarlist "$B4"), expected big1's last block only"
grep -q ', 1 renamed' "$TEST_TMP/b.txt" || fail "$B4: the rename was not found"

# ---- another subvolume under the same name: extent fingerprints are not
# compared across subvolumes (a tree restored elsewhere can repeat a
# layout); the blocks are read and hashed, and only the changed one stored
other=$snaps/other-subvol
btrfs subvolume snapshot "$src" "$other" >/dev/null
head -c 4096 /dev/urandom | dd of="$other/big2.moved" bs=4096 seek=$((3 * 16 + 1)) conv=notrunc status=none
sync
src_saved=$src
src=$other
backup
B5=$id
src=$src_saved
check "$B5" >"$TEST_TMP/parts5" || fail "$B5: the blocks do not check"
grep -qx "big2.moved $(((3 * 16 + 1) * 4096 / BS))+1" "$TEST_TMP/parts5" ||
	fail "$B5: big2.moved's only part should be block $(((3 * 16 + 1) * 4096 / BS)): $(cat "$TEST_TMP/parts5")"
[ "$rb" -ge $((64 * MIB)) ] ||
	fail "$B5: another subvolume's files were not read to compare them (read_bytes $rb): fingerprints compared across subvolumes?"

# ---- the planner's reads obey the rate limit -----------------------------------
backup   # back on src (its parent, B5, is another subvolume's: read whole)
head -c 4096 /dev/urandom | dd of="$src/nocow" bs=4096 seek=9 conv=notrunc status=none
sync
{
	printf '[agent]\nhost = h\nstate_dir = %s\nmax_read_rate = 2M\n' "$TEST_TMP/state"
	printf '[region a]\nstore = file\npath = %s\nprimary = yes\n' "$store"
	printf '[partition p]\npath = %s\n' "$src"
} >"$TEST_TMP/rate.conf"
t0=$(date +%s.%N)
"$SNAPSHIP" --config "$TEST_TMP/rate.conf" backup p >"$TEST_TMP/rate.out" 2>&1 ||
	fail "the rate-limited backup failed: $(cat "$TEST_TMP/rate.out")"
took=$(echo "$(date +%s.%N) - $t0" | bc)
grep -q "incremental from" "$TEST_TMP/rate.out" || fail "the rate-limited backup is not an incremental: $(cat "$TEST_TMP/rate.out")"
echo "an incremental comparing the 8 MiB NOCOW file by reading it, max_read_rate = 2M: ${took}s"
[ "$(echo "$took >= 3" | bc)" = 1 ] ||
	fail "the planner read the 8 MiB NOCOW file in ${took}s: its reads ignore max_read_rate (2 MiB/s)"
echo "large files in blocks: ok"
