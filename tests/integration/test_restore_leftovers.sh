#!/usr/bin/env bash
# A failed restore says what it leaves in its target, and removes a target
# it made and wrote nothing into (issue 11, item 7):
#   (a) --path naming nothing in the backup: fails before any target is
#       made (new path on btrfs: no subvolume left); an existing empty
#       directory stays;
#   (b) a corrupt first frame (nothing written): the new subvolume, and a
#       new plain directory, are removed and the message says so; an
#       existing empty subvolume or directory is never removed ("nothing
#       was written into");
#   (c) a corrupt last frame (part written): the new subvolume is kept and
#       the message says a partial restore is left there, and how to remove
#       it; an existing target restored over with --force keeps what it
#       held, and the message says it is mixed.
# shellcheck disable=SC2015 # "A && B || fail ...": fail unless both hold
set -euo pipefail
# shellcheck source=tests/lib.sh
. "${SRC_DIR:?run me through tests/run.sh}/tests/lib.sh"

need_btrfs
need_cmd python3
[ -x "${GENDATA:-}" ] || fail "GENDATA='${GENDATA:-}' is not an executable (run make)"

state=$TEST_TMP/state
store=$TEST_TMP/store
mkdir -p "$store"
part=$(mk_subvol rl-part)

cleanup() {
	local sv
	for sv in "$TEST_BTRFS"/rl-*; do
		[ -d "$sv" ] && btrfs subvolume delete "$sv" >/dev/null 2>&1
	done
	return 0
}
trap cleanup EXIT

# 48 MiB: 12 frames of 4 MiB, so the last frame is read well after the
# first ones are written (frames are decoded a few at a time)
"$GENDATA" "$part" --json-bytes 48M --json-file-size 2M --small-files 100 --seed 11 >/dev/null
"$SNAPSHIP" --state-dir "$state" backup "$part" --to "$store" >/dev/null || fail "backup failed"
data=$(find "$store" -name data.tar.zst)
[ "$(wc -l <<<"$data")" = 1 ] || fail "expected one backup, found: $data"

# run_restore CODE WHAT ARGS...: restore (from $from) exits CODE; stderr in $TEST_TMP/err
from=$store
run_restore() {
	local code=$1 what=$2 rc=0
	shift 2
	"$SNAPSHIP" restore rl-part --from "$from" "$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
	echo "-- $what: exit $rc: $(cat "$TEST_TMP/err")"
	[ "$rc" = "$code" ] || fail "$what: exit $rc, expected $code"
}
says() {	# says REGEX WHAT: stderr matches REGEX
	grep -qE -- "$1" "$TEST_TMP/err" || fail "$2: the message does not match /$1/"
}
is_subvol() { btrfs subvolume show "$1" >/dev/null 2>&1; }

# ---- (a) --path naming nothing ------------------------------------------------

t=$TEST_BTRFS/rl-a1
run_restore 1 "(a) --path nope into a new path" --to "$t" --path nope/none.json
says 'nope/none.json is not in backup' "(a)"
[ ! -e "$t" ] || fail "(a) the restore of a path not in the backup left $t behind"

t=$TEST_TMP/rl-a2
mkdir "$t"
run_restore 1 "(a) --path nope into an existing empty directory" --to "$t" --path nope
[ -d "$t" ] || fail "(a) the existing directory $t was removed"

# ---- (b) nothing written: a corrupt first frame --------------------------------

# frame offsets and compressed sizes from the seek table at the object's end
frames() {
	python3 - "$1" <<-'EOF'
		import struct, sys
		b = open(sys.argv[1], "rb").read()
		n, desc, magic = struct.unpack_from("<IBI", b, len(b) - 9)
		esz = 12 if desc & 0x80 else 8
		t = len(b) - 9 - n * esz
		off = 0
		for i in range(n):
		    c = struct.unpack_from("<I", b, t + i * esz)[0]
		    print(off, c)
		    off += c
	EOF
}
flip() {	# flip FILE OFFSET COUNT: invert COUNT bytes at OFFSET
	python3 - "$@" <<-'EOF'
		import sys
		p, off, cnt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
		with open(p, "r+b") as f:
		    f.seek(off)
		    b = f.read(cnt)
		    f.seek(off)
		    f.write(bytes(x ^ 0xFF for x in b))
	EOF
}
mapfile -t fr < <(frames "$data")
[ "${#fr[@]}" -ge 10 ] || fail "test bug: the backup has ${#fr[@]} frames"

first=$TEST_TMP/first
cp -a "$store" "$first"
read -r off len <<<"${fr[0]}"
flip "${data/#$store/$first}" $((off + len / 2)) 16
from=$first

t=$TEST_BTRFS/rl-b1
run_restore 1 "(b) corrupt first frame into a new subvolume" --to "$t"
says 'corrupt' "(b)"
says "nothing was restored: the new subvolume $t is removed" "(b) new subvolume"
[ ! -e "$t" ] || fail "(b) the empty new subvolume $t was left behind"

t=$TEST_TMP/rl-b2
run_restore 1 "(b) corrupt first frame into a new directory" --to "$t"
if [ "$(stat -f -c %T "$TEST_TMP")" = btrfs ]; then kind=subvolume; else kind=directory; fi
says "nothing was restored: the new $kind $t is removed" "(b) new directory"
[ ! -e "$t" ] || fail "(b) the empty new directory $t was left behind"

t=$(mk_subvol rl-b3)
run_restore 1 "(b) corrupt first frame into an existing empty subvolume" --to "$t"
says "nothing was written into $t" "(b) existing subvolume"
is_subvol "$t" || fail "(b) the existing subvolume $t was removed"

t=$TEST_TMP/rl-b4
mkdir "$t"
run_restore 1 "(b) corrupt first frame into an existing empty directory" --to "$t"
says "nothing was written into $t" "(b) existing directory"
[ -d "$t" ] || fail "(b) the existing directory $t was removed"

# ---- (c) part written: a corrupt last frame ------------------------------------

last=$TEST_TMP/last
cp -a "$store" "$last"
read -r off len <<<"${fr[-1]}"
flip "${data/#$store/$last}" $((off + len / 2)) 16
from=$last

t=$TEST_BTRFS/rl-c1
run_restore 1 "(c) corrupt last frame into a new subvolume" --to "$t"
says "a partial restore is left in the new subvolume $t \(about [0-9]+ entries\): do not use it; remove it \(btrfs subvolume delete $t\)" "(c)"
is_subvol "$t" || fail "(c) the partial new subvolume $t is gone"
[ -n "$(ls -A "$t")" ] || fail "(c) test bug: nothing was written before the corrupt frame"

t=$(mk_subvol rl-c2)
echo keep >"$t/mine"
run_restore 1 "(c) corrupt last frame over an existing target (--force)" --to "$t" --force
says "$t holds a partial restore \(about [0-9]+ entries\) mixed with what it held before" "(c) --force"
[ "$(cat "$t/mine")" = keep ] || fail "(c) the existing target lost its own file"

t=$TEST_TMP/rl-c3
mkdir "$t"
run_restore 1 "(c) corrupt last frame into an existing empty directory" --to "$t"
says "$t holds a partial restore \(about [0-9]+ entries\): empty it before restoring again" "(c) existing empty"
[ -n "$(ls -A "$t")" ] || fail "(c) the existing directory was emptied"

# the good store still restores into a path a failed restore had made
from=$store
run_restore 0 "a good restore into the path (b) removed" --to "$TEST_BTRFS/rl-b1"
assert_trees_equal "$part" "$TEST_BTRFS/rl-b1"
no_snapship_snapshots "$TEST_BTRFS"
echo "restore leftovers ok"
