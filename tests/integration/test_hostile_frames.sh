#!/usr/bin/env bash
# Hostile data objects, seek tables and index claims (issue 9, items 3, 4,
# 5, 7, 10): whatever a store claims, restore (whole and --path) and
# verify --deep fail cleanly with exit 1 and a message naming the backup
# and what is wrong, within 60 s and 256 MiB of RSS, and touch nothing
# outside the restore target and the state directory (a canary directory,
# the stores and the scratch directory's listing are compared).
#   four1g       four frames each claiming 1 GiB of zeros (a 135 KB object):
#                frames larger than the manifest's frame_size are refused
#   four1g_fs    the same with the manifest claiming 1 GiB frames: refused
#   one1g        one frame of 1 GiB (header and table agree)
#   nofcs64m     64 MiB frames (allowed) whose zstd frames hold 1 GiB and
#                do not say so in their header: decompression stops at the
#                table's size, in a buffer of that size
#   fcs64m       the same with the header claiming 1 GiB: refused unread
#   cbound       a frame more compressed bytes than compressing frame_size
#                bytes can give
#   many         a real seek table of 16.7M one-byte frames (151 MB):
#                refused before the table is allocated
#   manytiny     a footer alone claiming 16.7M frames (64 bytes)
#   oob          --path to an index entry whose offset lies past the end of
#                the stream (read past the seek table before)
#   bigsize      an index size of 2^62 for a 3-byte file (hashed zeros for
#                hours before)
#   sumsize      file sizes that fit one by one but not together
#   typesize     a 3-byte file the index calls a directory of 2^62 bytes
#   empty        an empty data object: exit 1, not the usage code 2
#   pathmiss     --path P in the index whose entries are not at the claimed
#                offsets: exit 1 naming P (reported success before)
#   badsha       --path that reads every frame of an object whose SHA-256
#                differs from the manifest: exit 1 (never checked before)
# A benign forged backup restores whole and by --path, so the forging is
# right and the checks do not refuse good backups; so does one whose frame
# (9 MiB compressed) is larger than a read-ahead block.
# shellcheck disable=SC2015 # "A && B || fail ...": fail unless both hold
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_root
need_cmd python3 zstd xxhsum timeout

H=forged
P=hp
stores=$TEST_TMP/stores
targets=$TEST_TMP/targets
logs=$TEST_TMP/logs
state=$TEST_TMP/state
canary=$TEST_TMP/canary
mkdir -p "$stores" "$targets" "$logs" "$state" "$canary/sub"
printf 'do not touch\n' >"$canary/a"
printf 'nor this\n' >"$canary/sub/b"
ln -s ../a "$canary/sub/link"

# ---- forge every case: one store each --------------------------------------
python3 - "$SRC_DIR" "$stores" "$TEST_TMP" <<'EOF'
import hashlib, os, struct, subprocess, sys
src, stores, tmp = sys.argv[1:4]
sys.path.insert(0, os.path.join(src, "tests", "tools"))
import forge as F

H, P = "forged", "hp"
GiB = 1 << 30
n = [0]


def bid():
    n[0] += 1
    return "20300101T0000%02dZ-%06x" % (n[0], n[0])


def store(name):
    return os.path.join(stores, name)


SPEC = [{"name": "d", "type": "dir"},
        {"name": "d/f", "type": "file", "data": "hello\n" * 10},
        {"name": "e", "type": "file", "data": "x" * 100}]
raw, ENTS = F.tar_and_index(SPEC)
IB = F.index_bytes(ENTS)


def frames_backup(name, frames, frame_size, tar_bytes, nframes=None):
    """A backup whose data object is the given frames (index: SPEC's)."""
    data = F.seekable(frames)
    nf = len(frames) if nframes is None else nframes
    m = F.manifest(H, P, bid(), data, IB, nf, frame_size, tar_bytes,
                   len(ENTS), 2, 160)
    F.write_backup(store(name), H, P, m["backup_id"], data, IB, m)


def zeros_frame(size, header):
    """A zstd frame of size zeros; header: the content size is in it."""
    if header:
        f = os.path.join(tmp, "zeros")
        with open(f, "wb") as z:
            z.truncate(size)
        out = subprocess.run(["zstd", "-q", "-c", "-1", f], stdout=subprocess.PIPE,
                             check=True).stdout
        os.unlink(f)
    else:
        out = subprocess.run("head -c %d /dev/zero | zstd -q -c -1" % size, shell=True,
                             stdout=subprocess.PIPE, check=True).stdout
    return out


z1g = zeros_frame(GiB, True)
z1g_nofcs = zeros_frame(GiB, False)

# benign: the control
F.forge_backup(store("benign"), H, P, bid(), SPEC)

# item 5: frames claiming more than the frame size
frames_backup("four1g", [(z1g, GiB, 0)] * 4, 65536, 4 * GiB)
frames_backup("four1g_fs", [(z1g, GiB, 0)] * 4, GiB, 4 * GiB)
frames_backup("one1g", [(z1g, GiB, 0)], 65536, GiB)
frames_backup("nofcs64m", [(z1g_nofcs, 64 << 20, 0)] * 4, 64 << 20, 256 << 20)
frames_backup("fcs64m", [(z1g, 64 << 20, 0)] * 4, 64 << 20, 256 << 20)
bound = 65536 + (65536 >> 8) + (((128 << 10) - 65536) >> 11)  # ZSTD_compressBound
frames_backup("cbound", [(F.zstd_frame(raw) + b"\0" * (bound + 1 - len(F.zstd_frame(raw))),
                          len(raw), F.xxh64(raw))], 65536, len(raw))

# 16.7M frames: a real table of one-byte frames, and a footer alone
N = 1 << 24
data = (b"\0" * N + struct.pack("<II", F.SKIPPABLE_MAGIC, 8 * N + 9)
        + struct.pack("<II", 1, 1) * N + struct.pack("<IBI", N, 0, F.SEEKABLE_MAGIC))
m = F.manifest(H, P, bid(), data, IB, N, 65536, N, len(ENTS), 2, 160)
F.write_backup(store("many"), H, P, m["backup_id"], data, IB, m)
del data
data = b"\0" * 55 + struct.pack("<IBI", N, 0x80, F.SEEKABLE_MAGIC)
m = F.manifest(H, P, bid(), data, IB, N, 65536, N, len(ENTS), 2, 160)
F.write_backup(store("manytiny"), H, P, m["backup_id"], data, IB, m)

# item 3: an index offset past the end of the stream
ents = [dict(e) for e in ENTS]
ents[-1]["offset"] = len(raw) + 4096
F.forge_backup(store("oob"), H, P, bid(), SPEC, index=ents)

# item 4: index sizes the stream cannot hold
spec = [{"name": "big", "type": "file", "data": "abc"}]
r2, ents = F.tar_and_index(spec)
ents[-1]["size"] = 1 << 62
F.forge_backup(store("bigsize"), H, P, bid(), spec, index=ents)
spec = [{"name": "a", "type": "file", "data": "abc"}, {"name": "b", "type": "file", "data": "def"}]
r2, ents = F.tar_and_index(spec)
for e in ents[1:]:
    e["size"] = len(r2) - e["offset"] - 512
F.forge_backup(store("sumsize"), H, P, bid(), spec, index=ents)

r2, ents = F.tar_and_index(spec)
ents[1]["type"] = "d"          # "a", a 3-byte file in the tar
ents[1]["size"] = 1 << 62
F.forge_backup(store("typesize"), H, P, bid(), spec, index=ents)

# control: a 9 MiB frame of random bytes (16 MiB frames): too large to be
# read ahead (8 MiB blocks), its worker fetches it
F.forge_backup(store("bigframe"), H, P, bid(),
               [{"name": "r", "type": "file", "data": os.urandom(9 << 20)}],
               frame_size=16 << 20)

# item 10: an empty data object
m = F.manifest(H, P, bid(), b"", IB, 0, 65536, 0, len(ENTS), 2, 160)
F.write_backup(store("empty"), H, P, m["backup_id"], b"", IB, m)

# item 7: b's index entry points at c, c's at d
spec = [{"name": x, "type": "file", "data": x * 3} for x in "abcd"]
r2, ents = F.tar_and_index(spec)
off = {e["path"]: e["offset"] for e in ents}
for e in ents:
    if e["path"] == "b":
        e["offset"] = off["c"]
    elif e["path"] == "c":
        e["offset"] = off["d"]
    elif e["path"] == "d":
        e["offset"] = off["d"] + 512
F.forge_backup(store("pathmiss"), H, P, bid(), spec, index=ents)

# item 7: one frame (every --path reads it all), SHA-256 not the object's
d, m, _ = F.forge_backup(store("badsha"), H, P, bid(), SPEC)
m["data"]["sha256"] = hashlib.sha256(b"something else").hexdigest()
F.write_backup(store("badsha"), H, P, m["backup_id"],
               open(os.path.join(d, "data.tar.zst"), "rb").read(),
               open(os.path.join(d, "index.jsonl.zst"), "rb").read(), m)
EOF

# ---- run and measure --------------------------------------------------------
measure=$TEST_TMP/measure.py
cat >"$measure" <<'EOF'
import resource, subprocess, sys
out, err = sys.argv[1:3]
with open(out, "wb") as o, open(err, "wb") as e:
    rc = subprocess.call(["timeout", "60"] + sys.argv[3:], stdout=o, stderr=e)
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
EOF

# snapshot: what must not change (canary, stores), and the scratch listing
snapshot() {
	(
		cd "$TEST_TMP"
		find canary stores -printf '%y %p %m %s %l\n' | LC_ALL=C sort
		find canary stores -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
		ls -A
	)
}
snapshot >"$logs/before"

tn=0
# run_hostile CASE CODE REGEX WHAT ARGS...: snapship --host forged ARGS on
# store CASE: exit CODE, output matches REGEX (-iE), <= 256 MiB, <= 60 s
run_hostile() {
	local c=$1 code=$2 re=$3 what=$4 rc kb
	shift 4
	tn=$((tn + 1))
	read -r rc kb < <(python3 "$measure" "$logs/out$tn" "$logs/err$tn" \
		"$SNAPSHIP" --host "$H" --state-dir "$state" "$@")
	echo "-- $c: $what: exit $rc, $((kb / 1024)) MiB: $(cat "$logs/out$tn" "$logs/err$tn" | head -c 400)"
	[ "$rc" != 124 ] || fail "$c: $what: still running after 60 s"
	[ "$rc" = "$code" ] || fail "$c: $what: exit $rc, expected $code"
	[ "$kb" -le $((256 * 1024)) ] || fail "$c: $what: $((kb / 1024)) MiB of RSS (at most 256)"
	cat "$logs/out$tn" "$logs/err$tn" | grep -qiE -- "$re" ||
		fail "$c: $what: output does not match /$re/"
}

# restore CASE: the words of a restore into a new target ($targets/t$tn
# once run_hostile has run it)
restore() {
	echo restore "$P" --from "$stores/$1" --to "$targets/t$((tn + 1))"
}

# every way to read a hostile store: whole, --path, verify --deep
all_three() {
	local c=$1 re=$2 path=$3
	# shellcheck disable=SC2046 # restore's words
	run_hostile "$c" 1 "$re" "restore" $(restore "$c")
	# shellcheck disable=SC2046
	run_hostile "$c" 1 "$re" "restore --path $path" $(restore "$c") --path "$path"
	run_hostile "$c" 1 "$re" "verify --deep" verify "$P" --from "$stores/$c" --deep
}

# the control: restores whole and by path, verifies
# shellcheck disable=SC2046
run_hostile benign 0 "verified" "restore" $(restore benign)
[ "$(cat "$targets/t$tn/d/f")" = "$(printf 'hello\n%.0s' 1 2 3 4 5 6 7 8 9 10)" ] ||
	fail "benign: d/f restored wrong"
# shellcheck disable=SC2046
run_hostile benign 0 "verified" "restore --path d" $(restore benign) --path d
[ -f "$targets/t$tn/d/f" ] && [ ! -e "$targets/t$tn/e" ] || fail "benign: --path d restored the wrong entries"
run_hostile benign 0 "ok" "verify --deep" verify "$P" --from "$stores/benign" --deep

# the control: a frame larger than a read-ahead block
# shellcheck disable=SC2046
run_hostile bigframe 0 "verified" "restore" $(restore bigframe)
cmp -s "$targets/t$tn/r" <(python3 - "$stores/bigframe" <<'EOF2'
import glob, subprocess, sys, tarfile, io
d = glob.glob(sys.argv[1] + "/*/*/*/data.tar.zst")[0]
raw = subprocess.run(["zstd", "-dqc", d], stdout=subprocess.PIPE, check=True).stdout
sys.stdout.buffer.write(tarfile.open(fileobj=io.BytesIO(raw)).extractfile("r").read())
EOF2
) || fail "bigframe: r restored wrong"

gib_re="seek table entry 0 is corrupt: 1073741824 bytes compressed to [0-9]+ \(frames hold 1 to 65536 bytes"
all_three four1g "backup 20300101T000002Z-000002: .*$gib_re" d/f
all_three four1g_fs "frame size of 1073741824 bytes|frames of 1073741824 bytes" d/f
all_three one1g "$gib_re" d/f
all_three nofcs64m "frame [0-9]+ .*is corrupt.*(too small|instead of)" d/f
all_three fcs64m "frame [0-9]+ .*is corrupt: its header claims 1073741824 bytes, the seek table 67108864" d/f
all_three cbound "seek table entry 0 is corrupt: [0-9]+ bytes compressed to 65825 \(frames hold 1 to 65536 bytes, compressed 9 to 65824\)" d/f
all_three many "claims 16777216 frames, more than an object of" d/f
all_three manytiny "claims 16777216 frames, more than an object of 64 bytes" d/f
all_three oob "index entry e \(offset [0-9]+, size 100\) is corrupt: its offset lies past the end" e
all_three bigsize "index entry big .*size 4611686018427387904.*more than the data after it" big
all_three sumsize "index entry b .*files before it hold more than the data" b
all_three typesize "index entry a .*size 4611686018427387904.*only a file has a size" a
all_three empty "data.tar.zst is empty \(0 bytes\)" d/f
# shellcheck disable=SC2046
run_hostile pathmiss 1 "--path b: the data holds 0 of the 1 entries" "restore --path b" \
	$(restore pathmiss) --path b
# shellcheck disable=SC2046
run_hostile badsha 1 "data.tar.zst differs from the SHA-256 in its manifest" \
	"restore --path d/f (one frame: every frame read)" $(restore badsha) --path d/f

# ---- nothing outside the targets and the state dir --------------------------
snapshot >"$logs/after"
diff "$logs/before" "$logs/after" ||
	fail "the canary, a store or the scratch directory's listing changed"
echo "all hostile stores refused cleanly; nothing outside the targets touched"
