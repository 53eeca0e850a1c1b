#!/usr/bin/env bash
# The planner reads a version 2 parent's index in constant memory (issue 14,
# item 1; doc/incremental.md "Change detection"): each pass streams the
# index object from the store and checks its size and SHA-256 at the end.
#   - an incremental of a parent of ~120,000 entries (a version 2 parent)
#     peaks (GNU time's maximum RSS) below the peak of the same incremental
#     of a tiny tree plus half the parent's compressed index — what holding
#     the index alone would add (the parsed index is several times more);
#     both figures are printed, no timing is asserted;
#   - a parent index object replaced in the store by one of another size:
#     a full, the line saying why;
#   - replaced by one of the same size and another SHA-256 (the same
#     entries recompressed, padded with a zstd skippable frame: it reads
#     fine): pass 1 finds it at its end, a full, the reason logged;
#   - the parent's index object changed while pass 2 reads it (appended
#     to while the walk is held back by max_read_rate on a large changed
#     file, pass 2 having read only the first 256 KiB range): the backup
#     fails naming the object and saying to run it again, no manifest is
#     added, and the next backup (a full: the index is of another size)
#     succeeds.
# MEM_FILES overrides the file count (default 120000).
# shellcheck disable=SC2015 # "A && B || fail ...": fail unless both hold
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_btrfs
need_cmd python3 zstd
# peak RSS is the program's only without a sanitizer (ASan's quarantine
# keeps freed memory mapped)
if ldd "${SNAPSHIP:?}" 2>/dev/null | grep -q 'libasan\|libubsan'; then
	skip "a sanitizer build: its peak RSS is the sanitizer's, not snapship's"
fi
[ -x /usr/bin/time ] || skip "needs GNU time (/usr/bin/time) for the peak RSS"
[ -x "${SNAPSHIP:-}" ] || fail "SNAPSHIP='${SNAPSHIP:-}' is not an executable (run make)"
[ -x "${GENDATA:-}" ] || fail "GENDATA='${GENDATA:-}' is not an executable (run make)"

N=${MEM_FILES:-120000}
big=$(mk_subvol mem_big)
tiny=$(mk_subvol mem_tiny)
race=$(mk_subvol mem_race)
store=$TEST_TMP/store
mkdir -p "$store"
cleanup() { btrfs subvolume delete "$big" "$tiny" "$race" >/dev/null 2>&1 || true; }
trap cleanup EXIT
conf() {	# conf FILE [AGENT LINE]...
	local f=$1
	shift
	{
		printf '[agent]\nhost = h\nstate_dir = %s\nmax_chain = 180\n' "$TEST_TMP/state"
		printf '%s\n' "$@"
		printf '[region a]\nstore = file\npath = %s\nprimary = yes\n' "$store"
		printf '[partition big]\npath = %s\n' "$big"
		printf '[partition tiny]\npath = %s\n' "$tiny"
		printf '[partition race]\npath = %s\n' "$race"
	} >"$f"
}
conf "$TEST_TMP/snapship.conf"
conf "$TEST_TMP/slow.conf" "max_read_rate = 2M"
S=("$SNAPSHIP" --config "$TEST_TMP/snapship.conf")

t0=$SECONDS
# gendata makes at most 100000 small files a run: two halves
for half in 1 2; do
	"$GENDATA" "$big/h$half" --seed "$half" --json-bytes 512K --json-file-size 256K \
		--small-files $((N / 2)) --small-min 16 --small-max 64 --dirs 256 >/dev/null
done
# a random xattr on each: ~90 incompressible bytes per index entry, so the
# index held would stand well clear of the reader's fixed buffers
python3 - "$big" <<'EOF' || fail "cannot set the xattrs"
import os, sys
for d, _, files in os.walk(sys.argv[1]):
    for f in files:
        os.setxattr(os.path.join(d, f), 'user.r', os.urandom(64))
EOF
"$GENDATA" "$tiny" --json-bytes 1M --json-file-size 256K --small-files 200 \
	--small-min 16 --small-max 64 --dirs 4 >/dev/null
echo "datasets: $(find "$big" | wc -l) + $(find "$tiny" | wc -l) entries in $((SECONDS - t0)) s"

# backup PART: one backup under GNU time; its id in $id, its peak RSS
# (KiB) in $rss, its line in $TEST_TMP/b.txt, its stderr in $TEST_TMP/b.err
backup() {
	local t1=$SECONDS
	/usr/bin/time -f %M -o "$TEST_TMP/rss" "${S[@]}" backup "$1" \
		>"$TEST_TMP/b.txt" 2>"$TEST_TMP/b.err" ||
		{ cat "$TEST_TMP/b.txt" "$TEST_TMP/b.err"; fail "backup of $1 failed"; }
	rss=$(tail -n1 "$TEST_TMP/rss")
	id=$(awk '{print $2}' "$TEST_TMP/b.txt" | head -n1)
	id=${id%:}
	[ -f "$store/h/$1/$id/manifest.json" ] || fail "$1: no manifest for '$id'"
	echo "$1: $(cat "$TEST_TMP/b.txt") [peak RSS $rss KiB, $((SECONDS - t1)) s]"
}
mfield() {	# mfield PART ID KEY
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
		"$store/h/$1/$2/manifest.json" "$3"
}
expect_incr() {	# expect_incr PART ID PARENT
	[ "$(mfield "$1" "$2" format_version)" = 2 ] && [ "$(mfield "$1" "$2" parent)" = "$3" ] ||
		fail "$1: $2 is not an incremental of $3"
}

# each chain: a full (version 1), an incremental of it (a version 1 parent:
# loaded whole), then the one measured, of a version 2 parent
for part in tiny big; do
	backup "$part"
	p1=$id
	backup "$part"
	expect_incr "$part" "$id" "$p1"
	p2=$id
	eval "rss1_$part=$rss"
	backup "$part"
	expect_incr "$part" "$id" "$p2"
	grep -q " 0 changed, 0 new, 0 deleted" "$TEST_TMP/b.txt" ||
		fail "$part: the unchanged tree's incremental found changes"
	eval "rss_$part=$rss par_$part=$p2 last_$part=$id"
done

# ---- memory: the big parent's index is not held -----------------------------
# shellcheck disable=SC2154 # set by the eval above
{ rss_t=$rss_tiny; rss_b=$rss_big; rss_v1=$rss1_big; pb=$par_big; lt=$last_tiny; }
zidx=$(stat -c %s "$store/h/big/$pb/index.jsonl.zst")
raw=$(zstd -dc "$store/h/big/$pb/index.jsonl.zst" | wc -c)
hold=$((zidx / 1024))
bound=$((rss_t + hold / 2))
echo "parent index of big: $N+ entries, $hold KiB compressed, $((raw / 1024)) KiB as JSON"
echo "peak RSS: tiny tree's incremental $rss_t KiB, big tree's $rss_b KiB;" \
	"bound $bound KiB (tiny + half the compressed index; holding it: tiny + $hold KiB)"
echo "(the big tree's incremental of its version 1 parent, loaded whole: $rss_v1 KiB)"
[ "$hold" -ge 8192 ] || fail "the big parent's index is only $hold KiB: too small to show the bound (raise MEM_FILES)"
[ "$rss_b" -lt "$bound" ] ||
	fail "the incremental of a $N-entry parent peaked at $rss_b KiB, not below $bound KiB: the parent's index is held in memory"
echo "memory bound: ok"

# ---- pass 1: a parent index object replaced ----------------------------------
idx=$store/h/tiny/$lt/index.jsonl.zst
cp "$idx" "$TEST_TMP/idx.orig"
printf 'x' >>"$idx"
backup tiny
[ "$(mfield tiny "$id" format_version)" = 1 ] || fail "$id: not a full after its parent's index grew"
grep -q "; full: the parent $lt's index does not match its manifest (size" "$TEST_TMP/b.txt" ||
	fail "$id: the line does not say the parent's index is of another size"
echo "parent index of another size: ok"
full=$id
backup tiny
expect_incr tiny "$id" "$full"

# same size, other bytes: the same lines recompressed, padded to the size
# with a skippable frame (magic 0x184D2A50, 4-byte length)
lt=$id
idx=$store/h/tiny/$lt/index.jsonl.zst
python3 - "$idx" <<'EOF' || fail "cannot forge a same-size index"
import struct, subprocess, sys
p = sys.argv[1]
orig = open(p, 'rb').read()
raw = subprocess.run(['zstd', '-dc', p], check=True, capture_output=True).stdout
z = subprocess.run(['zstd', '-19', '--no-check', '-c'], input=raw, check=True,
                   capture_output=True).stdout
pad = len(orig) - len(z) - 8
if pad < 0:
    sys.exit('recompressed index is not smaller (%d vs %d)' % (len(z), len(orig)))
new = z + struct.pack('<II', 0x184D2A50, pad) + b'\0' * pad
assert len(new) == len(orig) and new != orig
open(p, 'wb').write(new)
EOF
zstd -dc "$idx" >/dev/null || fail "the forged index does not decompress"
backup tiny
[ "$(mfield tiny "$id" format_version)" = 1 ] || fail "$id: not a full after its parent's index was replaced"
grep -q "; full: the parent $lt's index cannot be read or does not match its manifest" "$TEST_TMP/b.txt" ||
	fail "$id: the line does not say the parent's index does not match"
grep -q "index.jsonl.zst of the parent backup $lt does not have the SHA-256 its manifest records" \
	"$TEST_TMP/b.err" || { cat "$TEST_TMP/b.err"; fail "$id: the log does not say the SHA-256 differs"; }
full2=$id
backup tiny
expect_incr tiny "$id" "$full2"
echo "parent index of another SHA-256 (pass 1): ok"

# ---- pass 2: the parent's index object changes during the walk ---------------
# 0big.bin first in walk order, then 6000 files whose index entries (random
# xattrs) fill more than the reader's first 256 KiB range; the walk runs at
# most 1024 entries ahead of the reads
mk_race_tree "$race"
backup race
rfull=$id
backup race
expect_incr race "$id" "$rfull"
rpar=$id
ridx=$store/h/race/$rpar/index.jsonl.zst
[ "$(stat -c %s "$ridx")" -gt $((512 << 10)) ] || fail "the race tree's index is under 512 KiB"
head -c $((12 << 20)) /dev/urandom >"$race/0big.bin"
nman=$(find "$store" -name manifest.json | wc -l)
"$SNAPSHIP" --config "$TEST_TMP/slow.conf" backup race >"$TEST_TMP/r.txt" 2>"$TEST_TMP/r.err" &
rpid=$!
sleep 3
kill -0 "$rpid" 2>/dev/null || { cat "$TEST_TMP/r.txt" "$TEST_TMP/r.err"; fail "the throttled backup ended within 3 s"; }
printf 'x' >>"$ridx"
rc=0
wait "$rpid" || rc=$?
cat "$TEST_TMP/r.txt" "$TEST_TMP/r.err"
[ "$rc" -ne 0 ] || fail "a backup whose parent's index changed during its walk succeeded"
grep -q "index.jsonl.zst of the parent backup $rpar" "$TEST_TMP/r.err" &&
	grep -q "run the backup again" "$TEST_TMP/r.err" ||
	fail "the error does not name the parent's index object and say to run the backup again"
[ "$(find "$store" -name manifest.json | wc -l)" = "$nman" ] ||
	fail "the failed backup left a manifest"
backup race
[ "$(mfield race "$id" format_version)" = 1 ] || fail "$id: not a full after its parent's index grew"
echo "parent index changed during pass 2: ok"
no_snapship_snapshots "$TEST_BTRFS"
