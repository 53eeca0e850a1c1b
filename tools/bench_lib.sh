# shellcheck shell=bash
# What tools/bench_incr.sh, bench_sim30.sh and bench_restic.sh share (issue
# 14's figures): a loop btrfs under BENCH_DIR that cleanup removes, a cold
# page cache, timed commands, medians and ratios.  Sourced; the caller sets
# NAME (for messages), SRC_DIR and B (the build directory) first, and calls
# bench_setup IMG_SIZE, which makes WORK (a new directory under BENCH_DIR),
# MNT (the mounted btrfs) and sets the EXIT trap.

BENCH_DIR=${BENCH_DIR:-/var/tmp}
LOOP=
WORK=
MNT=

log() { printf '[%s] %s: %s\n' "$(date +%T)" "$NAME" "$*" >&2; }
die() { log "$*"; exit 1; }

bench_cleanup() {
	set +e
	if [ -n "$MNT" ] && mountpoint -q "$MNT"; then
		umount "$MNT" || { sleep 2; umount "$MNT"; }
	fi
	[ -n "$LOOP" ] && losetup -d "$LOOP"
	[ -n "$WORK" ] && rm -rf "$WORK"
}

# bench_setup IMG_SIZE: checks, then WORK, a loop btrfs of IMG_SIZE on MNT
bench_setup() {
	local c
	[ "$(id -u)" = 0 ] || die "needs root (loop btrfs, snapshots, drop_caches)"
	for c in btrfs mkfs.btrfs losetup python3 awk; do
		command -v "$c" >/dev/null 2>&1 || die "needs $c (make deps)"
	done
	[ -x /usr/bin/time ] || die "needs GNU time at /usr/bin/time (apt-get install time)"
	if [ ! -x "$SRC_DIR/$B/snapship" ] || [ ! -x "$SRC_DIR/$B/gendata" ]; then
		die "no $SRC_DIR/$B/snapship or gendata: run make first"
	fi
	WORK=$(mktemp -d -p "$BENCH_DIR" "snapship-$NAME.XXXXXX")
	MNT=$WORK/mnt
	trap bench_cleanup EXIT
	truncate -s "$1" "$WORK/img"
	mkfs.btrfs -q "$WORK/img" >/dev/null 2>&1 || die "mkfs.btrfs failed"
	LOOP=$(losetup --find --show "$WORK/img")
	mkdir -p "$MNT"
	mount "$LOOP" "$MNT"
}

# install Debian package $2 when command $1 is missing (only the benchmarks
# need it: not in tools/deps.sh)
need_pkg() {
	command -v "$1" >/dev/null 2>&1 && return 0
	log "installing $2 (apt-get)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >&2 ||
		die "cannot install $2: apt-get install $2"
	command -v "$1" >/dev/null 2>&1 || die "$2 installed but no $1 found"
}

cold() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# timed OUT CMD...: run CMD (stdout kept in OUT.out) after a cold cache;
# OUT gets "wall user sys maxrss_KiB" (GNU time)
timed() {
	local out=$1
	shift
	cold
	/usr/bin/time -f '%e %U %S %M' -o "$out" "$@" >"$out.out"
}

# timed_io OUT CMD...: as timed, and OUT gets a 5th column, the read_bytes
# of CMD's process (its /proc/PID/io, sampled until it ends): the bytes it
# read from the disk
timed_io() {
	local out=$1 bg pid="" rd=0
	shift
	rm -f "$out.pid"
	cold
	# shellcheck disable=SC2016 # expanded by the inner bash
	/usr/bin/time -f '%e %U %S %M' -o "$out" \
		bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$out.pid" "$@" >"$out.out" &
	bg=$!
	while kill -0 "$bg" 2>/dev/null; do
		[ -z "$pid" ] && [ -s "$out.pid" ] && pid=$(cat "$out.pid")
		if [ -n "$pid" ] && [ -r "/proc/$pid/io" ]; then
			rd=$(awk '/^read_bytes/ {print $2}' "/proc/$pid/io" 2>/dev/null || echo "$rd")
		fi
		sleep 0.05
	done
	wait "$bg"
	echo "$(cat "$out") $rd" >"$out"
}

wall() { awk '{print $1}' "$1"; }
cpu() { awk '{printf "%.2f\n", $2 + $3}' "$1"; }
median() { sort -g | awk '{v[NR] = $1} END {if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2); else print "nan"}'; }
# ratio A B: A / B as a percentage and a factor, or - when B is 0
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 == 0) print "-"; else printf "%.1f %% (%.3f x)\n", a / b * 100, a / b}'; }
# jget FILE EXPR: a field of a JSON document, EXPR in Python on d
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
du_bytes() { du -sb "$1" | awk '{print $1}'; }
