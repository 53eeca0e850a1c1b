#!/usr/bin/env bash
# The test runner:  bash tests/run.sh BUILD_DIR [PATTERN...]
#
# 1. Runs every unit test program BUILD_DIR/tests/test_* (no root needed;
#    cwd = repo root; as root with TEST_BTRFS set to the loop btrfs below,
#    so that their btrfs cases run too).
# 2. As root: makes one sparse loop btrfs filesystem (in a mktemp -d under
#    /var/tmp) and runs every tests/integration/*.sh with
#       SNAPSHIP=BUILD_DIR/snapship GENDATA=BUILD_DIR/gendata
#       TEST_BTRFS=<btrfs mount> TEST_TMP=<fresh scratch dir, also the cwd>
#       SRC_DIR=<repo root>
#    and, when a selected test has a line starting "need_rgw", starts one
#    S3 object store (tools/rgw.sh: Ceph RGW zones east and west, ports
#    TEST_RGW_EAST_PORT/TEST_RGW_WEST_PORT/TEST_RGW_MON_PORT, default
#    17480/17481/16789; their HTTPS ports TEST_RGW_EAST_TLS_PORT/
#    TEST_RGW_WEST_TLS_PORT, default 17482/17483) and passes
#    RGW_ENV=<its sourceable env file>.
#    Not root: integration tests are counted as skipped ("needs root").
#
# A test passes with exit 0 (its "SKIP: ..." lines, if any, are cases it
# skipped: counted in its "ok" line), is skipped with exit 77 (the reason is
# its last "SKIP: ..." line; a cmocka program whose cases all skip exits 77), and fails otherwise, or when it runs longer than
# UNIT_TIMEOUT (300 s) / TEST_TIMEOUT (600 s); the image is TEST_BTRFS_SIZE
# (8G, sparse). PATTERNs select tests whose
# name (unit/test_x, integration/test_y) contains one of them.
# Logs: BUILD_DIR/test-logs/<name>.log. The loop filesystem, loop device,
# image and scratch dirs are removed on every exit, also on failure and ^C.
# 3. Every libFuzzer target of tests/fuzz/ (built by make fuzz-build into
#    FUZZ_BUILD_DIR, default build-fuzz) through tests/fuzz/run.sh: its
#    regression inputs, then FUZZ_SECONDS (60) of fuzzing each; named
#    fuzz/fuzz_x; skipped when not built (no clang).  Crashing inputs are
#    kept in BUILD_DIR/test-logs/fuzz-artifacts/.
# The last line is "N passed, N failed, N skipped"; exit 1 if any failed.

set -u
set -o pipefail

usage() {
	echo "usage: bash tests/run.sh BUILD_DIR [PATTERN...]" >&2
	exit 2
}
[ $# -ge 1 ] || usage
case $1 in -h | --help) usage ;; esac

SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
if [ ! -d "$1" ]; then
	echo "run.sh: build directory '$1' does not exist (run make first)" >&2
	exit 2
fi
BUILD_DIR=$(cd "$1" && pwd -P)
shift
PATTERNS=("$@")

UNIT_TIMEOUT=${UNIT_TIMEOUT:-300}
TEST_TIMEOUT=${TEST_TIMEOUT:-600}
TEST_BTRFS_SIZE=${TEST_BTRFS_SIZE:-8G}
LOG_DIR=$BUILD_DIR/test-logs

passed=0
failed=0
skipped=0

WORK=""	    # mktemp -d: image, mount point, scratch dirs
LOOP_DEV=""	    # our loop device, once attached
MNT=""	    # our btrfs mount point, once mounted
CUR_PID=""	    # the running test (its timeout process)
CLEANED=0

# ---- cleanup --------------------------------------------------------------

# Mount points at or below $1, deepest first (from /proc/self/mountinfo).
mounts_under() {
	local dir=$1
	awk -v d="$dir" '
		{ mp = $5; gsub(/\\040/, " ", mp)
		  if (mp == d || index(mp, d "/") == 1) print length(mp) "\t" mp }
	' /proc/self/mountinfo | sort -rn | cut -f2-
}

unmount_under() {
	local mp
	while IFS= read -r mp; do
		[ -n "$mp" ] || continue
		umount "$mp" 2>/dev/null ||
			{ sleep 1; umount "$mp" 2>/dev/null; } ||
			{ echo "run.sh: $mp is busy; detaching it lazily" >&2; umount -l "$mp"; }
	done < <(mounts_under "$1")
}

stop_current_test() {
	if [ -n "$CUR_PID" ]; then
		# timeout(1) passes the signal on to the test's whole process group
		# and sends SIGKILL 10 s later if the group is still there.
		kill -TERM "$CUR_PID" 2>/dev/null
		wait "$CUR_PID" 2>/dev/null
		reap_group "$CUR_PID" /dev/null
		CUR_PID=""
	fi
}

cleanup() {
	[ "$CLEANED" = 1 ] && return 0
	CLEANED=1
	stop_current_test
	[ -n "$WORK" ] || return 0
	stop_rgw
	unmount_under "$WORK"
	if [ -n "$LOOP_DEV" ]; then
		losetup -d "$LOOP_DEV" 2>/dev/null ||
			{ sleep 1; losetup -d "$LOOP_DEV"; } ||
			echo "run.sh: could not detach $LOOP_DEV" >&2
	fi
	rm -rf --one-file-system "$WORK"
	WORK=""
}

on_signal() {
	trap '' INT TERM HUP PIPE
	echo "run.sh: interrupted by SIG$1; cleaning up" >&2
	cleanup
	case $1 in INT) exit 130 ;; HUP) exit 129 ;; PIPE) exit 141 ;; *) exit 143 ;; esac
}

trap cleanup EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP
# Also when our output goes away (| head): SIGPIPE would kill us uncleaned.
trap 'on_signal PIPE' PIPE

# ---- helpers --------------------------------------------------------------

selected() {
	local name=$1 p
	[ ${#PATTERNS[@]} -eq 0 ] && return 0
	for p in "${PATTERNS[@]}"; do
		[[ $name == *"$p"* ]] && return 0
	done
	return 1
}

report_ok() {
	if [ -n "${2:-}" ]; then
		printf 'ok   %s (%s)\n' "$1" "$2"
	else
		printf 'ok   %s\n' "$1"
	fi
	passed=$((passed + 1))
}

report_skip() {
	printf 'skip %s (%s)\n' "$1" "$2"
	skipped=$((skipped + 1))
}

report_fail() {
	local name=$1 why=$2 log=$3
	printf 'FAIL %s\n' "$name"
	printf '     %s; log: %s\n' "$why" "$log"
	if [ -s "$log" ]; then
		tail -n 40 "$log" | sed 's/^/     | /'
	fi
	failed=$((failed + 1))
}

# The reason a test gave for skipping: its last "SKIP: ..." line.
skip_reason() {
	local log=$1 reason
	reason=$(grep -E '^SKIP:? ' "$log" 2>/dev/null | tail -n 1 | sed -E 's/^SKIP:? *//')
	[ -n "$reason" ] || reason=$(grep -v '^[[:space:]]*$' "$log" 2>/dev/null | tail -n 1)
	[ -n "$reason" ] || reason="no reason given"
	printf '%s' "$reason"
}

# reap_group PGID LOG: end what a finished test left running in its process
# group (timeout(1) made one for the test, with its own pid as the id).
reap_group() {
	local pgid=$1 log=$2 tries=10
	kill -0 -- "-$pgid" 2>/dev/null || return 0
	echo "runner: the test left processes running; terminating them" >>"$log"
	kill -TERM -- "-$pgid" 2>/dev/null
	while ((tries-- > 0)); do
		sleep 0.5
		kill -0 -- "-$pgid" 2>/dev/null || return 0
	done
	kill -KILL -- "-$pgid" 2>/dev/null
}

# run_test NAME TIMEOUT CWD CMD...: run one test with TEST_TMP set, report it.
run_test() {
	local name=$1 tmo=$2 cwd=$3
	shift 3
	local log="$LOG_DIR/$name.log" scratch="$WORK/tmp/${name//\//_}" rc start
	mkdir -p "$(dirname "$log")" "$scratch"
	[ "$cwd" = scratch ] && cwd=$scratch
	start=$SECONDS
	: >"$log"
	(
		cd "$cwd" &&
			exec env TEST_TMP="$scratch" timeout -k 10 "$tmo" "$@"
	) >>"$log" 2>&1 </dev/null &
	CUR_PID=$!
	wait "$CUR_PID"
	rc=$?
	reap_group "$CUR_PID" "$log"
	CUR_PID=""
	echo "runner: exit $rc after $((SECONDS - start)) s" >>"$log"
	rm -rf --one-file-system "$scratch" 2>>"$log"

	case $rc in
	0)
		# a program that passed with some cases skipped says so
		local ns
		ns=$(grep -cE '^SKIP:? ' "$log")
		if [ "$ns" -gt 0 ]; then
			report_ok "$name" "$ns case(s) skipped: $(skip_reason "$log")"
		else
			report_ok "$name"
		fi
		;;
	77) report_skip "$name" "$(skip_reason "$log")" ;;
	124 | 137) report_fail "$name" "timed out after $tmo s" "$log" ;;
	*) report_fail "$name" "exit $rc" "$log" ;;
	esac
}

# ---- the btrfs test filesystem --------------------------------------------

BTRFS_NOTE=""

setup_btrfs() {
	local c out
	for c in truncate mkfs.btrfs losetup mount umount btrfs; do
		command -v "$c" >/dev/null 2>&1 || { BTRFS_NOTE="$c is not installed"; return 1; }
	done
	local img=$WORK/btrfs.img mnt=$WORK/btrfs
	out=$(truncate -s "$TEST_BTRFS_SIZE" "$img" 2>&1) ||
		{ BTRFS_NOTE="truncate: $out"; return 1; }
	out=$(mkfs.btrfs -q -f "$img" 2>&1) ||
		{ BTRFS_NOTE="mkfs.btrfs: $out"; return 1; }
	LOOP_DEV=$(losetup --find --show "$img" 2>&1) ||
		{ BTRFS_NOTE="losetup: $LOOP_DEV"; LOOP_DEV=""; return 1; }
	mkdir -p "$mnt"
	out=$(mount -t btrfs "$LOOP_DEV" "$mnt" 2>&1) ||
		{ BTRFS_NOTE="mount: $out"; return 1; }
	MNT=$mnt
}

# Delete what a test left on the btrfs filesystem: subvolumes (children
# before parents), then plain files. Mounts left under it stay.
clean_btrfs() {
	local log=$1 path left sv=()
	[ -n "$MNT" ] || return 0
	left=$(mounts_under "$MNT" | grep -vxF "$MNT")
	[ -z "$left" ] || printf 'runner: mounts left under %s:\n%s\n' "$MNT" "$left" >>"$log"
	while IFS= read -r path; do
		sv+=("$path")
	done < <(btrfs subvolume list "$MNT" 2>/dev/null | sed -n 's/^ID .* path //p' | LC_ALL=C sort -r)
	if [ ${#sv[@]} -gt 0 ]; then
		echo "runner: deleting ${#sv[@]} leftover subvolume(s)" >>"$log"
		for path in "${sv[@]}"; do
			btrfs subvolume delete "$MNT/$path" >>"$log" 2>&1
		done
		# Commit now, so that the cleaner frees the space before the next test.
		btrfs filesystem sync "$MNT" >/dev/null 2>&1
		timeout 120 btrfs subvolume sync "$MNT" >/dev/null 2>&1
	fi
	find "$MNT" -mindepth 1 -maxdepth 1 -exec rm -rf --one-file-system {} + 2>>"$log"
}

# ---- the S3 object store (Ceph RGW multisite), for tests that need_rgw -----

RGW_DIR=""
RGW_NOTE=""

# Started once, only when a selected test needs it, on ports that do not
# clash with a developer's own instance.
setup_rgw() {
	local out
	RGW_DIR=$WORK/rgw
	out=$(RGW_EAST_PORT=${TEST_RGW_EAST_PORT:-17480} RGW_WEST_PORT=${TEST_RGW_WEST_PORT:-17481} \
		RGW_MON_PORT=${TEST_RGW_MON_PORT:-16789} \
		RGW_EAST_TLS_PORT=${TEST_RGW_EAST_TLS_PORT:-17482} \
		RGW_WEST_TLS_PORT=${TEST_RGW_WEST_TLS_PORT:-17483} \
		timeout 300 bash "$SRC_DIR/tools/rgw.sh" start "$RGW_DIR" 2>&1) || {
		RGW_NOTE=$(printf '%s' "$out" | tail -3 | tr '\n' ' ')
		RGW_DIR=""
		return 1
	}
	[ -f "$RGW_DIR/env" ]
}

stop_rgw() {
	[ -n "$RGW_DIR" ] || return 0
	bash "$SRC_DIR/tools/rgw.sh" stop "$RGW_DIR" >/dev/null 2>&1 ||
		echo "run.sh: could not stop the RGW harness in $RGW_DIR" >&2
	RGW_DIR=""
}

# ---- main -----------------------------------------------------------------

rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR" || exit 2
WORK=$(mktemp -d /var/tmp/snapship-test.XXXXXX 2>/dev/null ||
	mktemp -d "${TMPDIR:-/tmp}/snapship-test.XXXXXX") || {
	echo "run.sh: cannot create a scratch directory" >&2
	exit 2
}
WORK=$(cd "$WORK" && pwd -P)	# as /proc/self/mountinfo spells it
mkdir -p "$WORK/tmp"

units=()
for bin in "$BUILD_DIR"/tests/test_*; do
	{ [ -f "$bin" ] && [ -x "$bin" ]; } || continue
	selected "unit/$(basename "$bin")" && units+=("$bin")
done
itests=()
for t in "$SRC_DIR"/tests/integration/*.sh; do
	[ -f "$t" ] || continue
	name=integration/$(basename "$t" .sh)
	selected "$name" && itests+=("$t")
done

# The btrfs filesystem first: unit cases that need btrfs (test_cow) run in it.
if [ "$(id -u)" -eq 0 ] && [ $((${#units[@]} + ${#itests[@]})) -gt 0 ]; then
	if ! setup_btrfs; then
		echo "note: no btrfs test filesystem (${BTRFS_NOTE//$'\n'/ }); tests that need it skip"
	fi
fi

# Unit tests.
for bin in "${units[@]}"; do
	name=unit/$(basename "$bin")
	if [ -n "$MNT" ]; then
		run_test "$name" "$UNIT_TIMEOUT" "$SRC_DIR" env SRC_DIR="$SRC_DIR" TEST_BTRFS="$MNT" "$bin"
		clean_btrfs "$LOG_DIR/$name.log"
	else
		run_test "$name" "$UNIT_TIMEOUT" "$SRC_DIR" env -u TEST_BTRFS SRC_DIR="$SRC_DIR" "$bin"
	fi
done

# Integration tests.
if [ ${#itests[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		for t in "${itests[@]}"; do
			report_skip "integration/$(basename "$t" .sh)" "needs root"
		done
	else
		for b in snapship gendata; do
			[ -x "$BUILD_DIR/$b" ] || echo "note: $BUILD_DIR/$b is missing (run make)"
		done
		if grep -lq '^need_rgw' "${itests[@]}" 2>/dev/null; then
			if setup_rgw; then
				echo "note: S3 object store (Ceph RGW, zones east and west) started for the tests"
			else
				echo "note: the S3 object store did not start (${RGW_NOTE}); tests that need it skip"
			fi
		fi
		for t in "${itests[@]}"; do
			name=integration/$(basename "$t" .sh)
			envs=(SNAPSHIP="$BUILD_DIR/snapship" GENDATA="$BUILD_DIR/gendata"
				SRC_DIR="$SRC_DIR" BUILD_DIR="$BUILD_DIR")
			if [ -n "$MNT" ]; then
				envs+=(TEST_BTRFS="$MNT")
			else
				envs=(-u TEST_BTRFS "${envs[@]}")
			fi
			if [ -n "$RGW_DIR" ]; then
				envs+=(RGW_ENV="$RGW_DIR/env")
			else
				envs=(-u RGW_ENV "${envs[@]}")
			fi
			run_test "$name" "$TEST_TIMEOUT" scratch env "${envs[@]}" bash "$t"
			clean_btrfs "$LOG_DIR/$name.log"
		done
	fi
fi

# Fuzz targets (tests/fuzz/run.sh): each one's regression inputs replayed,
# then FUZZ_SECONDS (60) of fuzzing under ASan+UBSan; skipped when the
# targets are not built (make fuzz-build; needs clang).
FUZZ_BUILD_DIR=${FUZZ_BUILD_DIR:-$SRC_DIR/build-fuzz}
for f in "$SRC_DIR"/tests/fuzz/fuzz_*.c; do
	[ -f "$f" ] || continue
	t=$(basename "$f" .c)
	name=fuzz/$t
	selected "$name" || continue
	run_test "$name" "$((${FUZZ_SECONDS:-60} + 240))" scratch env SRC_DIR="$SRC_DIR" \
		FUZZ_ARTIFACTS="$LOG_DIR/fuzz-artifacts" FUZZ_CORPUS="$WORK/tmp/fuzz-corpus" \
		bash "$SRC_DIR/tests/fuzz/run.sh" "$FUZZ_BUILD_DIR" "$t"
done

# Tear down before the summary so that it stays the last line.
trap '' INT TERM HUP PIPE
trap - EXIT
cleanup
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
