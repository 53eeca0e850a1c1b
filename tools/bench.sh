#!/usr/bin/env bash
# snapship benchmarks (doc/BENCHMARKS.md), on the same btrfs snapshot of the
# same data, cold cache for every measured command, alternating order,
# medians + ratios.  Three suites:
#
#   dir  snapship with a directory store against `tar -cf - . | zstd -T0 -3`
#        (and back with `zstd -dc | tar -x`), plus a 4x dataset for peak RSS;
#   s3   snapship with an S3 store (a private Ceph RGW, tools/rgw.sh) against
#        `tar | zstd -T0 -3 | rclone rcat` and `restic backup` to the same RGW,
#        restores into new subvolumes, and the RGW's own throughput ceiling;
#   geo  a backup to two regions (replication = agent) against one region,
#        and the time from commit to geo-protected with RGW multisite.
#
#   bash tools/bench.sh [BUILD_DIR]             (make bench does this; needs root)
#   BENCH=all RUNS=5 bash tools/bench.sh build  (both suites, one report)
#
# Environment:
#   BENCH=dir      which suite: dir, s3, geo or all
#   RUNS=5         measured rounds on the standard dataset (1 GiB JSON + 20,000 small files)
#   S3_RUNS=RUNS   measured rounds of the s3 suite
#   GEO_RUNS=RUNS  measured rounds of the geo suite
#   SCALE_RUNS=1   snapship backups of the 4x dataset (peak RSS, wall; dir suite)
#   QUICK=1        tiny smoke run (small datasets; RUNS and SCALE_RUNS default to 1)
#   BENCH_DIR=/var/tmp   where the sparse loop image (and the RGW's directory) live
#   BENCH_RGW_EAST_PORT=37480 BENCH_RGW_WEST_PORT=37481 BENCH_RGW_MON_PORT=36789
#   BENCH_RGW_EAST_TLS_PORT=37482 BENCH_RGW_WEST_TLS_PORT=37483
#   BENCH_RGW_MEMSTORE=14G   the private RGW (s3 suite): loopback ports, memstore size
#
# Everything (the peers' output, snapship's store, the reference tar, restored
# subvolumes) lives on the one loop btrfs filesystem, so all sides read and
# write the same disk; the s3 suite's objects live in the RGW's memory.  The
# report goes to stdout (plain text, ready to paste); progress goes to stderr.
# Exit status: 0 when the benchmark ran (whether the targets pass or not),
# non-zero on errors.  Cleans up after itself (RGW, mount, loop device, files).
set -euo pipefail

B=${1:-build}
SRC_DIR=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${BENCH:-dir}
case $BENCH in
dir) DO_DIR=1 DO_S3=0 DO_GEO=0 ;;
s3) DO_DIR=0 DO_S3=1 DO_GEO=0 ;;
geo) DO_DIR=0 DO_S3=0 DO_GEO=1 ;;
all) DO_DIR=1 DO_S3=1 DO_GEO=1 ;;
*) echo "bench: BENCH must be dir, s3, geo or all (got '$BENCH')" >&2; exit 1 ;;
esac
# the RGW (and rclone, to size and purge objects) serve the s3 and geo suites
NEED_RGW=$((DO_S3 || DO_GEO))
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
	RUNS=${RUNS:-1}
	SCALE_RUNS=${SCALE_RUNS:-1}
	IMG_SIZE=8G
	STD_ARGS=(--json-bytes 64M --json-file-size 16M --small-files 1000)
	BIG_ARGS=(--json-bytes 256M --json-file-size 16M --small-files 4000)
	MIN_FREE_GIB=1
else
	RUNS=${RUNS:-5}
	SCALE_RUNS=${SCALE_RUNS:-1}
	IMG_SIZE=48G
	STD_ARGS=()                                  # gendata defaults: the standard dataset
	BIG_ARGS=(--json-bytes 4G --small-files 80000)
	MIN_FREE_GIB=8
fi
S3_RUNS=${S3_RUNS:-$RUNS}
GEO_RUNS=${GEO_RUNS:-$RUNS}
BENCH_DIR=${BENCH_DIR:-/var/tmp}
RGW_PORTS=("${BENCH_RGW_EAST_PORT:-37480}" "${BENCH_RGW_WEST_PORT:-37481}" "${BENCH_RGW_MON_PORT:-36789}"
	"${BENCH_RGW_EAST_TLS_PORT:-37482}" "${BENCH_RGW_WEST_TLS_PORT:-37483}")
RGW_MEM=${BENCH_RGW_MEMSTORE:-14G}

# targets (the issues')
T_BACKUP_WALL=0.7      # snapship backup wall / peer tar|zstd wall
T_SIZE=1.01            # snapship stored bytes / peer .tar.zst bytes
T_CPU=1.5              # snapship backup CPU (user+sys) / zstd -T1 -3 CPU
T_RSS_MIB=64           # snapship peak RSS, standard and 4x dataset, and backing up to S3
T_RESTORE_WALL=0.6     # snapship restore wall / zstd -dc | tar -x wall
T_S3_RCLONE_BACKUP=0.7   # snapship -> S3 wall / tar | zstd | rclone rcat wall
T_S3_RESTIC_BACKUP=0.4   # snapship -> S3 wall / restic backup wall (first backup, fresh repo)
T_S3_RCLONE_RESTORE=0.7  # snapship restore from S3 wall / rclone cat | zstd -dc | tar -x wall
T_S3_RESTIC_RESTORE=0.5  # snapship restore from S3 wall / restic restore wall
T_GEO_WALL=1.15          # backup to two regions (agent replication) / one region, wall
T_GEO_CPU=1.1            # the same, client CPU

die() { echo "bench: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer (got '$RUNS')"
[[ "$S3_RUNS" =~ ^[1-9][0-9]*$ ]] || die "S3_RUNS must be a positive integer (got '$S3_RUNS')"
[[ "$SCALE_RUNS" =~ ^[0-9]+$ ]] || die "SCALE_RUNS must be a non-negative integer (got '$SCALE_RUNS')"
[ "$(id -u)" -eq 0 ] ||
	die "needs root (loop btrfs, snapshots, drop_caches): sudo make bench"

# The s3 suite's peers come from Debian (not tools/deps.sh: only the benchmark needs them).
ensure_peers() {
	local c missing=()
	for c in rclone restic; do
		command -v "$c" >/dev/null 2>&1 || missing+=("$c")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing ${missing[*]} (apt-get)"
	local apt=(apt-get -q -o DPkg::Lock::Timeout=300)
	export DEBIAN_FRONTEND=noninteractive
	if ! "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >&2; then
		{ "${apt[@]}" update >&2 && "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >&2; } ||
			die "apt-get install ${missing[*]} failed"
	fi
}
[ "$NEED_RGW" = 1 ] && ensure_peers

for c in btrfs mkfs.btrfs losetup zstd tar awk; do
	command -v "$c" >/dev/null 2>&1 || die "needs $c (make deps)"
done
[ -x /usr/bin/time ] || die "needs GNU time at /usr/bin/time (apt-get install time)"
if [ ! -x "$SRC_DIR/$B/snapship" ] || [ ! -x "$SRC_DIR/$B/gendata" ]; then
	die "no $SRC_DIR/$B/snapship or gendata: run make first"
fi
if [ "$NEED_RGW" = 1 ]; then
	[ -r "$SRC_DIR/tools/rgw.sh" ] || die "no $SRC_DIR/tools/rgw.sh"
	for p in "${RGW_PORTS[@]}"; do
		! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null ||
			die "port $p is in use (set BENCH_RGW_EAST_PORT, BENCH_RGW_WEST_PORT, BENCH_RGW_MON_PORT, BENCH_RGW_EAST_TLS_PORT, BENCH_RGW_WEST_TLS_PORT)"
	done
fi

# Heavy processes that are not ours (noise): not this script, nothing whose
# command line names our work directory (our RGW's daemons), no zombies (pid 1
# here may be slow to reap the daemons rgw.sh stopped).
others() {
	ps -eo pid=,stat=,comm=,args= | awk -v me=$$ -v work="${WORK:-/nonexistent}" '
		$1 != me && $2 !~ /^Z/ && index($0, work) == 0 &&
		$3 ~ /^(ceph-osd|ceph-mon|radosgw|snapship|gendata|make|cc1|gcc|cc|ld|restic|rclone|zstd|tar|fio|stress.*)$/ {
			n[$3]++ }
		END { s = ""; for (c in n) s = s (s ? ", " : "") n[c] " " c; print (s ? s : "none") }'
}
# note_others WHEN: remember what else ran, sampled at the start of every round.
OTHERS_SEEN=
note_others() {
	local o
	o=$(others)
	[ "$o" = none ] || OTHERS_SEEN+="${OTHERS_SEEN:+; }$1: $o"
}
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
OTHERS_START=$(others)
WORK=$(mktemp -d "$BENCH_DIR/snapship-bench.XXXXXX")
MNT=$WORK/mnt
RES=$WORK/results
RGWDIR=$WORK/rgw
LOOP=
RGW_STARTED=0
cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	if [ "$RGW_STARTED" = 1 ]; then
		log "stopping the RGW harness"
		bash "$WORK/bin/rgw.sh" stop "$RGWDIR" >/dev/null 2>&1 ||
			bash "$WORK/bin/rgw.sh" stop "$RGWDIR"
	fi
	if mountpoint -q "$MNT" 2>/dev/null; then
		umount "$MNT" 2>/dev/null || { sleep 2; umount "$MNT"; } || umount -l "$MNT"
	fi
	[ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The commit being measured, taken when the binaries are copied.
REV=$(git -C "$SRC_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=
if [ "$REV" != unknown ] && [ -n "$(git -C "$SRC_DIR" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	DIRTY=" + uncommitted changes"
fi

# Private copies of the binaries (and of the RGW harness): the build directory
# and tools/ may change while we run.
mkdir -p "$WORK/bin" "$RES"
cp "$SRC_DIR/$B/snapship" "$SRC_DIR/$B/gendata" "$WORK/bin/"
[ "$NEED_RGW" = 1 ] && cp "$SRC_DIR/tools/rgw.sh" "$WORK/bin/"
SNAPSHIP=$WORK/bin/snapship
GENDATA=$WORK/bin/gendata

# ---- machine facts ------------------------------------------------------------
facts() {
	echo "snapship benchmark report"
	echo "========================="
	echo "date        $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "commit      $REV$DIRTY (at start)"
	echo "binary      $(sha256sum "$SNAPSHIP" | cut -c1-12) (sha256 of $B/snapship)"
	echo "nproc       $(nproc)"
	echo "cpu         $(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
	echo "memory      $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "kernel      $(uname -sr)"
	echo "zstd        $(zstd --version | sed -n 's/.*\(v[0-9][0-9.]*\).*/\1/p')"
	echo "tar         $(tar --version | head -n1)"
	echo "btrfs-progs $(btrfs --version | awk '{print $2}')"
	if [ "$NEED_RGW" = 1 ]; then
		echo "rclone      $(rclone version 2>/dev/null | head -n1)"
		echo "restic      $(restic version 2>/dev/null | awk '{print $1, $2}')"
		echo "ceph        $(radosgw --version 2>/dev/null | awk '{print $3, $5}')"
	fi
	echo "disk        loop btrfs on a sparse $IMG_SIZE image in $BENCH_DIR ($(stat -f -c %T "$BENCH_DIR") on $(findmnt -n -o SOURCE --target "$BENCH_DIR")), loop direct-io=$LOOP_DIO"
	echo "load        $LOAD_START (1/5/15 min, at start), $(cut -d' ' -f1-3 /proc/loadavg) (at end)"
	echo "others      heavy processes not ours at the start: $OTHERS_START; at round starts and the end: ${OTHERS_SEEN:-none}"
	echo "other loops $(($(losetup -a | wc -l) - 1)) other loop device(s) in use at the end (other workloads = noise)"
	echo "runs        BENCH=$BENCH RUNS=$RUNS S3_RUNS=$S3_RUNS GEO_RUNS=$GEO_RUNS SCALE_RUNS=$SCALE_RUNS QUICK=$QUICK"
}

# ---- the scratch filesystem ---------------------------------------------------
log "loop btrfs: $IMG_SIZE sparse image in $WORK"
truncate -s "$IMG_SIZE" "$WORK/btrfs.img"
mkfs.btrfs -q "$WORK/btrfs.img" >/dev/null 2>&1 || die "mkfs.btrfs failed"
mkdir -p "$MNT"
if LOOP=$(losetup --find --show --direct-io=on "$WORK/btrfs.img" 2>/dev/null); then
	LOOP_DIO=on
else
	LOOP=$(losetup --find --show "$WORK/btrfs.img")
	LOOP_DIO=off
fi
mount "$LOOP" "$MNT"
STD=$MNT/std
SNAP=$MNT/std-snap
OUT=$MNT/out                 # all sides' outputs: same filesystem, same disk
STATE=$MNT/state
mkdir -p "$OUT" "$STATE"

log "standard dataset: gendata ${STD_ARGS[*]:-(defaults)}"
btrfs subvolume create "$STD" >/dev/null
"$GENDATA" "$STD" "${STD_ARGS[@]}" >/dev/null
btrfs subvolume snapshot -r "$STD" "$SNAP" >/dev/null
sync
DATA_BYTES=$(du -sb --apparent-size "$SNAP" | cut -f1)
DATA_FILES=$(find "$SNAP" -type f | wc -l)

# ---- measuring ----------------------------------------------------------------
# quiesce: let the btrfs cleaner finish dropping deleted subvolumes/snapshots,
# write everything back, drop the page cache (cold for every measured command).
# (A transaction commit wakes the cleaner; without it `subvolume sync` can wait
# for the 30 s commit interval.)  While the RGW runs, first wait until it is
# idle and west has replicated everything (s3_quiesce).
quiesce() {
	[ -n "$SRV_PIDS" ] && s3_quiesce
	btrfs filesystem sync "$MNT" >/dev/null
	btrfs subvolume sync "$MNT" >/dev/null 2>&1 || true
	sync
	if [ -n "${WARM:-}" ]; then
		cat "$WARM" > /dev/null           # the RGW ceiling: source in the page cache
	else
		echo 3 > /proc/sys/vm/drop_caches
	fi
}

# srv_ticks: CPU ticks (user+sys) used so far by the RGW's daemons (mon, osd, both radosgw).
SRV_PIDS=
OSD_RSS_MAX=0 MEMSTORE_MAX=0 LOAD_S3=
TCK=$(getconf CLK_TCK)
srv_ticks() {
	local p s=0 t
	for p in $SRV_PIDS; do
		t=$(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null) ||
			die "RGW daemon $p is gone (logs: $RGWDIR/log)"
		s=$((s + t))
	done
	echo "$s"
}

# measure LABEL CMD...: cold cache, run CMD under GNU time (stdout discarded),
# append "wall user sys maxrss_kib" to $RES/LABEL (and, while the RGW runs, the
# CPU seconds its daemons used meanwhile to $RES/LABEL.srv).  A failing
# command is an error.
measure() {
	local label=$1 t0=0 t1
	shift
	quiesce
	[ -n "$SRV_PIDS" ] && t0=$(srv_ticks)
	if ! /usr/bin/time -f '%e %U %S %M' -o "$RES/.time" "$@" >/dev/null 2>"$RES/.err"; then
		cat "$RES/.err" >&2
		die "$label failed: $*"
	fi
	if [ -n "$SRV_PIDS" ]; then
		t1=$(srv_ticks)
		awk -v a="$t0" -v b="$t1" -v h="$TCK" 'BEGIN {printf "%.2f\n", (b - a) / h}' >> "$RES/$label.srv"
	fi
	tail -n1 "$RES/.time" >> "$RES/$label"
}

check_space() {
	local avail
	avail=$(df -B1G --output=avail "$MNT" | tail -n1 | tr -d ' ')
	[ "$avail" -ge "$MIN_FREE_GIB" ] ||
		die "scratch filesystem low on space (${avail} GiB free): $(df -h "$MNT" | tail -n1)"
}

del_subvol() {
	[ -e "$1" ] || return 0
	btrfs subvolume delete "$1" >/dev/null
}

# check_restore DIR WHO: DIR holds every file and byte of the source (unmeasured).
check_restore() {
	local got
	got="$(find "$1" -type f | wc -l) $(du -sb --apparent-size "$1" | cut -f1)"
	[ "$got" = "$DATA_FILES $DATA_BYTES" ] ||
		die "$2 restore is incomplete: files/bytes $got, source $DATA_FILES $DATA_BYTES"
}

# ==== suite dir: directory store against tar | zstd ===============================
# shellcheck disable=SC2016  # $1/$2 are bash -c's positional parameters
peer_backup()   { measure peer_backup bash -c 'set -o pipefail; cd "$1" && tar -cf - . | zstd -q -T0 -3 > "$2"' _ "$SNAP" "$OUT/peer.tar.zst"; }
snap_backup()   { measure snap_backup "$SNAPSHIP" -q --host bench --state-dir "$STATE" backup "$STD" --to "$OUT/store"; }
# shellcheck disable=SC2016
peer_restore()  { measure peer_restore bash -c 'set -o pipefail; btrfs subvolume create "$1" >/dev/null && zstd -dc "$2" | tar -x -C "$1"' _ "$MNT/restore-peer" "$OUT/peer.tar.zst"; }
snap_restore()  { measure snap_restore "$SNAPSHIP" -q --host bench restore std --from "$OUT/store" --to "$MNT/restore-snap"; }

stored_bytes() {
	local d i
	d=$(find "$OUT/store" -name data.tar.zst -printf '%s\n' | awk '{s+=$1} END {print s+0}')
	i=$(find "$OUT/store" -name index.jsonl.zst -printf '%s\n' | awk '{s+=$1} END {print s+0}')
	[ "$d" -gt 0 ] || die "no data.tar.zst in the store"
	echo "$d $i"
}

dir_suite() {
	local r s sz dbytes ibytes order
	log "dir suite: reference tar of std-snap for the compression bound"
	tar -cf "$OUT/std.tar" -C "$SNAP" .
	sync
	TAR_BYTES=$(stat -c %s "$OUT/std.tar")
	for ((r = 1; r <= RUNS; r++)); do
		if ((r % 2)); then order=(peer snap); else order=(snap peer); fi
		log "dir round $r/$RUNS: order ${order[*]}"
		note_others "dir round $r"
		rm -rf "$OUT/store" "$OUT/peer.tar.zst"
		mkdir "$OUT/store"
		for s in "${order[@]}"; do
			log "  $s backup"
			"${s}_backup"
		done
		sz=$(stored_bytes)
		read -r dbytes ibytes <<< "$sz"
		echo "$dbytes $ibytes $((dbytes + ibytes)) $(stat -c %s "$OUT/peer.tar.zst")" >> "$RES/sizes"
		log "  zstd -T1 -3 bound"
		# shellcheck disable=SC2016
		measure zstd_t1 bash -c 'zstd -q -T1 -3 -c "$1" > /dev/null' _ "$OUT/std.tar"
		for s in "${order[@]}"; do
			log "  $s restore"
			"${s}_restore"
		done
		# sanity (unmeasured): both restores hold every file and byte of the source
		check_restore "$MNT/restore-peer" peer
		check_restore "$MNT/restore-snap" snap
		del_subvol "$MNT/restore-peer"
		del_subvol "$MNT/restore-snap"
		quiesce
		check_space
	done
	rm -rf "$OUT/store" "$OUT/peer.tar.zst" "$OUT/std.tar"

	if ((SCALE_RUNS > 0)); then
		log "4x dataset: gendata ${BIG_ARGS[*]}"
		btrfs subvolume create "$MNT/big" >/dev/null
		"$GENDATA" "$MNT/big" "${BIG_ARGS[@]}" >/dev/null
		sync
		BIG_BYTES=$(du -sb --apparent-size "$MNT/big" | cut -f1)
		BIG_FILES=$(find "$MNT/big" -type f | wc -l)
		for ((r = 1; r <= SCALE_RUNS; r++)); do
			log "4x round $r/$SCALE_RUNS: snapship backup"
			rm -rf "$OUT/store-big"
			mkdir "$OUT/store-big"
			measure big_backup "$SNAPSHIP" -q --host bench --state-dir "$STATE" backup "$MNT/big" --to "$OUT/store-big"
		done
		rm -rf "$OUT/store-big"
		del_subvol "$MNT/big"
	fi
}

# ==== suite s3: a private Ceph RGW against rclone and restic ========================
# radosgw-admin and ceph against the private cluster
rgwadmin() { timeout 60 radosgw-admin -c "$CEPH_CONF" -n client.admin "$@" 2>/dev/null; }

west_caught_up() {
	local out
	out=$(rgwadmin sync status --rgw-zone=west) || return 1
	grep -q 'metadata is caught up' <<< "$out" && grep -q 'data is caught up' <<< "$out"
}

# s3_quiesce: wait until the RGW's daemons are idle (two 1 s windows under 5 %
# of a core) and zone west has replicated everything (data and metadata) from
# east, so no replication or GC overlaps the next measurement.  Gives up after
# 180 s with a warning (counted in the report).
S3_QUIESCE_TIMEOUTS=0
s3_quiesce() {
	local a b quiet=0 limit=$((SECONDS + 180)) idle=$((TCK / 20))
	a=$(srv_ticks)
	while ((SECONDS < limit)); do
		sleep 1
		b=$(srv_ticks)
		if ((b - a <= idle)); then quiet=$((quiet + 1)); else quiet=0; fi
		a=$b
		if ((quiet >= 2)) && west_caught_up; then
			return 0
		fi
	done
	S3_QUIESCE_TIMEOUTS=$((S3_QUIESCE_TIMEOUTS + 1))
	log "  warning: the RGW is still busy or west is behind after 180 s; measuring anyway"
}

osd_rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$OSD_PID/status"; }
memstore_used() {
	timeout 30 ceph -c "$CEPH_CONF" daemon osd.0 perf dump 2>/dev/null |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["osd"]["stat_bytes_used"])' 2>/dev/null || echo 0
}

# s3bytes REMOTE: the bytes of every object under REMOTE (rclone size).
s3bytes() {
	rclone size --json "$1" | sed -n 's/.*"bytes":\([0-9]*\).*/\1/p'
}

# The three sides.  snapship: its S3 store, prefix snapship-rN/.  rclone: the
# tar | zstd stream as one object rclone-rN.tar.zst.  restic: a fresh
# repository restic-rN (made by `restic init` before the round) in bucket B.
s3_snap_backup() { measure s3_snap_backup "$SNAPSHIP" -q --host bench --state-dir "$STATE" backup "$STD" --to "s3://$RGW_BUCKET/snapship-r$1/"; }
# shellcheck disable=SC2016
s3_rclone_backup() { measure s3_rclone_backup bash -c 'set -o pipefail; cd "$1" && tar -cf - . | zstd -q -T0 -3 | rclone rcat "$2"' _ "$SNAP" ":s3:$RGW_BUCKET/rclone-r$1.tar.zst"; }
# shellcheck disable=SC2016
s3_restic_backup() { RESTIC_REPOSITORY=$RESTIC_BASE-r$1 measure s3_restic_backup bash -c 'cd "$1" && exec restic backup .' _ "$SNAP"; }
s3_snap_restore() { measure s3_snap_restore "$SNAPSHIP" -q --host bench restore std --from "s3://$RGW_BUCKET/snapship-r$1/" --to "$MNT/restore-snap"; }
# shellcheck disable=SC2016
s3_rclone_restore() { measure s3_rclone_restore bash -c 'set -o pipefail; btrfs subvolume create "$1" >/dev/null && rclone cat "$2" | zstd -dc | tar -x -C "$1"' _ "$MNT/restore-rclone" ":s3:$RGW_BUCKET/rclone-r$1.tar.zst"; }
# shellcheck disable=SC2016
s3_restic_restore() { RESTIC_REPOSITORY=$RESTIC_BASE-r$1 measure s3_restic_restore bash -c 'btrfs subvolume create "$1" >/dev/null && exec restic restore latest --target "$1"' _ "$MNT/restore-restic"; }

s3_start() {
	local p
	log "s3 suite: starting a private RGW in $RGWDIR (ports ${RGW_PORTS[*]}, memstore $RGW_MEM)"
	RGW_STARTED=1
	RGW_EAST_PORT=${RGW_PORTS[0]} RGW_WEST_PORT=${RGW_PORTS[1]} RGW_MON_PORT=${RGW_PORTS[2]} \
		RGW_EAST_TLS_PORT=${RGW_PORTS[3]} RGW_WEST_TLS_PORT=${RGW_PORTS[4]} \
		RGW_MEMSTORE_BYTES=$RGW_MEM RGW_BUCKET=snapship-bench RGW_BUCKET_B=snapship-bench-b \
		bash "$WORK/bin/rgw.sh" start "$RGWDIR" >/dev/null
	# Only what the harness gives, and no inherited AWS/proxy settings (an
	# AWS_CA_BUNDLE, for one, makes rclone refuse a plain-http endpoint).
	unset AWS_CA_BUNDLE AWS_PROFILE AWS_DEFAULT_PROFILE AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE \
		AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 http_proxy https_proxy HTTP_PROXY \
		HTTPS_PROXY all_proxy ALL_PROXY RESTIC_REPOSITORY RESTIC_PASSWORD_FILE RCLONE_CONFIG_PASS
	# shellcheck disable=SC1091
	. "$RGWDIR/env"
	# snapship and restic: the usual AWS environment
	export SNAPSHIP_S3_ENDPOINT=$RGW_EAST_ENDPOINT AWS_ACCESS_KEY_ID=$RGW_ACCESS_KEY_ID \
		AWS_SECRET_ACCESS_KEY=$RGW_SECRET_ACCESS_KEY AWS_REGION=$RGW_REGION AWS_DEFAULT_REGION=$RGW_REGION
	# rclone: an empty config file, the on-the-fly remote ":s3:" configured by environment
	: > "$WORK/rclone.conf"
	export RCLONE_CONFIG=$WORK/rclone.conf RCLONE_S3_PROVIDER=Ceph RCLONE_S3_ENV_AUTH=false \
		RCLONE_S3_ACCESS_KEY_ID=$RGW_ACCESS_KEY_ID RCLONE_S3_SECRET_ACCESS_KEY=$RGW_SECRET_ACCESS_KEY \
		RCLONE_S3_ENDPOINT=$RGW_EAST_ENDPOINT RCLONE_S3_REGION=$RGW_REGION
	# restic: fixed password, cache on the benchmark filesystem (emptied every round)
	export RESTIC_PASSWORD=snapship-bench RESTIC_CACHE_DIR=$MNT/restic-cache
	RESTIC_BASE=s3:$RGW_EAST_ENDPOINT/$RGW_BUCKET_B/restic
	SRV_PIDS=
	for p in mon.a osd.0 client.rgw.east client.rgw.west; do
		SRV_PIDS+=" $(tr -dc 0-9 < "$RGWDIR/run/$p.pid")"
	done
	OSD_PID=$(tr -dc 0-9 < "$RGWDIR/run/osd.0.pid")
	# the s3 suite's maxima survive the restart for the geo suite
	local r
	r=$(osd_rss_kib)
	((r > OSD_RSS_MAX)) && OSD_RSS_MAX=$r
	[ -n "$LOAD_S3" ] || LOAD_S3=$(cut -d' ' -f1-3 /proc/loadavg)
}

s3_stop() {
	SRV_PIDS=
	log "stopping the RGW harness"
	bash "$WORK/bin/rgw.sh" stop "$RGWDIR" >/dev/null 2>&1 || bash "$WORK/bin/rgw.sh" stop "$RGWDIR"
	RGW_STARTED=0
}

# s3_note_memory: the largest memstore use and OSD RSS seen (checked at the fullest moments).
s3_note_memory() {
	local m r
	m=$(memstore_used)
	r=$(osd_rss_kib)
	((m > MEMSTORE_MAX)) && MEMSTORE_MAX=$m
	((r > OSD_RSS_MAX)) && OSD_RSS_MAX=$r
	return 0
}

# s3_purge REMOTE...: delete the objects (unmeasured), let west replicate the
# deletes, then run both zones' garbage collection now instead of a minute later.
s3_purge() {
	local x
	for x in "$@"; do
		rclone purge "$x" 2>/dev/null || rclone deletefile "$x" 2>/dev/null || true
	done
	s3_quiesce
	rgwadmin gc process --include-all --rgw-zone=east >/dev/null || true
	rgwadmin gc process --include-all --rgw-zone=west >/dev/null || true
}

s3_suite() {
	local r i s sides order n sb rb cb
	s3_start
	# The RGW ceiling's source: a real ~330 MB .tar.zst of the dataset, in a
	# subvolume of its own (snapship can back it up too).
	btrfs subvolume create "$MNT/ceil" >/dev/null
	tar -cf - -C "$SNAP" . | zstd -q -T0 -3 > "$MNT/ceil/std.tar.zst"
	sync
	CEIL=$MNT/ceil/std.tar.zst
	CEIL_BYTES=$(stat -c %s "$CEIL")
	# Warm-up, unmeasured: the first writes create the zones' data and
	# multipart pools and make the OSD fault in its memory (seen: the first
	# round slower on every side, with 30-80 % more RGW CPU).  About one
	# round's worth of objects, in both buckets, then deleted.
	log "  warming the RGW up (unmeasured): 3 uploads of the ${CEIL_BYTES}-byte file, deleted"
	rclone copyto "$CEIL" ":s3:$RGW_BUCKET/warmup-1"
	rclone copyto --s3-upload-cutoff 5G "$CEIL" ":s3:$RGW_BUCKET/warmup-2"
	rclone copyto "$CEIL" ":s3:$RGW_BUCKET_B/warmup-3"
	s3_purge ":s3:$RGW_BUCKET/warmup-1" ":s3:$RGW_BUCKET/warmup-2" ":s3:$RGW_BUCKET_B/warmup-3"
	sides=(snap rclone restic)
	for ((r = 1; r <= S3_RUNS; r++)); do
		# rotate the order: every side goes first, second and third in turn
		order=()
		for ((i = 0; i < 3; i++)); do order+=("${sides[$(((r - 1 + i) % 3))]}"); done
		echo "${order[*]}" >> "$RES/s3_order"
		log "s3 round $r/$S3_RUNS: order ${order[*]}"
		note_others "s3 round $r"
		rm -rf "$RESTIC_CACHE_DIR"
		RESTIC_REPOSITORY=$RESTIC_BASE-r$r restic init >/dev/null 2>"$RES/.err" ||
			{ cat "$RES/.err" >&2; die "restic init failed"; }
		for s in "${order[@]}"; do
			log "  $s backup -> S3"
			"s3_${s}_backup" "$r"
		done
		sb=$(s3bytes ":s3:$RGW_BUCKET/snapship-r$r")
		cb=$(s3bytes ":s3:$RGW_BUCKET/rclone-r$r.tar.zst")
		rb=$(s3bytes ":s3:$RGW_BUCKET_B/restic-r$r")
		echo "$sb $cb $rb" >> "$RES/s3_sizes"
		for s in "${order[@]}"; do
			log "  $s restore <- S3"
			"s3_${s}_restore" "$r"
		done
		s3_note_memory
		for s in "${order[@]}"; do
			check_restore "$MNT/restore-$s" "$s (S3)"
			del_subvol "$MNT/restore-$s"
		done
		log "  deleting the round's objects"
		s3_purge ":s3:$RGW_BUCKET/snapship-r$r" ":s3:$RGW_BUCKET/rclone-r$r.tar.zst" ":s3:$RGW_BUCKET_B/restic-r$r"

		# The RGW ceiling: the same pre-made file, source in the page cache.
		log "  RGW ceiling: PUT (one request), PUT (multipart), GET, snapship of the file"
		WARM=$CEIL measure ceil_put1 rclone copyto --s3-upload-cutoff 5G "$CEIL" ":s3:$RGW_BUCKET/ceiling-put1-r$r"
		WARM=$CEIL measure ceil_putmp rclone copyto "$CEIL" ":s3:$RGW_BUCKET/ceiling-putmp-r$r"
		WARM=$CEIL measure ceil_get rclone cat ":s3:$RGW_BUCKET/ceiling-put1-r$r"
		WARM=$CEIL measure ceil_snap "$SNAPSHIP" -q --host bench --state-dir "$STATE" backup "$MNT/ceil" --to "s3://$RGW_BUCKET/ceiling-snap-r$r/"
		s3bytes ":s3:$RGW_BUCKET/ceiling-snap-r$r" >> "$RES/ceil_snap_bytes"
		s3_note_memory
		s3_purge ":s3:$RGW_BUCKET/ceiling-put1-r$r" ":s3:$RGW_BUCKET/ceiling-putmp-r$r" ":s3:$RGW_BUCKET/ceiling-snap-r$r"
		quiesce
		check_space
	done
	n=$(rclone size --json ":s3:$RGW_BUCKET" | sed -n 's/.*"count":\([0-9]*\).*/\1/p')
	[ "${n:-0}" -eq 0 ] || log "warning: $n object(s) left in $RGW_BUCKET"
	del_subvol "$MNT/ceil"
	s3_stop
}

# ==== suite geo: agent replication's cost, server replication's delay =============
# geo_conf FILE PREFIX [SECOND_REGION_LINES]: a config with east (bucket A) as
# the primary and optionally a second region; credentials from the AWS env.
geo_conf_head() {
	printf '[agent]\nstate_dir = %s\nhost = bench\n\n[partition std]\npath = %s\n\n' "$STATE" "$STD"
}

geo_conf() {
	geo_conf_head > "$1"
	cat >> "$1" <<EOF
[region east]
store = s3
endpoint = $RGW_EAST_ENDPOINT
bucket = ${GEO_PRIMARY:-$GEO_A}
prefix = $2
sigv4_region = $RGW_REGION
primary = yes
${3:-}
EOF
}

# geo_dir_conf FILE [SECOND_REGION_LINES]: the same with directory stores.
geo_dir_conf() {
	geo_conf_head > "$1"
	cat >> "$1" <<EOF
[region a]
store = file
path = $OUT/geo-a
primary = yes
${2:-}
EOF
}

geo_suite() {
	local r s order b
	[ "$RGW_STARTED" = 1 ] || s3_start
	# Two buckets of their own that the zonegroup does not replicate to
	# west: two independent stores, each doing only what snapship sends it
	# (with sync on, west would fetch every byte of both during the timing).
	GEO_A=$RGW_BUCKET-geo-a GEO_B=$RGW_BUCKET-geo-b
	for b in "$GEO_A" "$GEO_B"; do
		python3 "$RGW_S3" mkbucket "$RGW_EAST_ENDPOINT/$b" >/dev/null
		rgwadmin bucket sync disable --bucket="$b" >/dev/null || die "cannot turn off replication of bucket $b"
	done
	s3_quiesce
	log "  geo warm-up (unmeasured): one backup to both buckets, deleted"
	geo_conf "$WORK/geo2.conf" "warm/" "[region b]
store = s3
endpoint = $RGW_EAST_ENDPOINT
bucket = $GEO_B
prefix = warm/
sigv4_region = $RGW_REGION
replication = agent"
	"$SNAPSHIP" -q --config "$WORK/geo2.conf" backup >/dev/null || die "geo warm-up backup failed"
	s3_purge ":s3:$GEO_A/warm" ":s3:$GEO_B/warm"
	rm -rf "$STATE/geo"
	for ((r = 1; r <= GEO_RUNS; r++)); do
		geo_conf "$WORK/geo1.conf" "geo1-r$r/"
		geo_conf "$WORK/geo2.conf" "geo2-r$r/" "[region b]
store = s3
endpoint = $RGW_EAST_ENDPOINT
bucket = $GEO_B
prefix = geo2-r$r/
sigv4_region = $RGW_REGION
replication = agent"
		GEO_PRIMARY=$RGW_BUCKET geo_conf "$WORK/geos.conf" "geos-r$r/" "[region west]
store = s3
endpoint = $RGW_WEST_ENDPOINT
bucket = $RGW_BUCKET
prefix = geos-r$r/
sigv4_region = $RGW_REGION
replication = server
replication_deadline = 10m"
		# the same with two directory stores on the scratch filesystem
		rm -rf "$OUT/geo-a" "$OUT/geo-b"
		mkdir -p "$OUT/geo-a" "$OUT/geo-b"
		geo_dir_conf "$WORK/gd1.conf" ""
		geo_dir_conf "$WORK/gd2.conf" "[region b]
store = file
path = $OUT/geo-b
replication = agent"
		if ((r % 2)); then order=(one two); else order=(two one); fi
		log "geo round $r/$GEO_RUNS: order ${order[*]}"
		note_others "geo round $r"
		for s in "${order[@]}"; do
			log "  backup to $s region(s)"
			if [ "$s" = one ]; then
				measure geo_one "$SNAPSHIP" -q --config "$WORK/geo1.conf" backup
			else
				measure geo_two "$SNAPSHIP" -q --config "$WORK/geo2.conf" backup
			fi
		done
		for s in "${order[@]}"; do
			log "  backup to $s directory region(s)"
			if [ "$s" = one ]; then
				measure geo_done "$SNAPSHIP" -q --config "$WORK/gd1.conf" backup
			else
				measure geo_dtwo "$SNAPSHIP" -q --config "$WORK/gd2.conf" backup
			fi
		done
		rm -rf "$OUT/geo-a" "$OUT/geo-b"
		echo "$(s3bytes ":s3:$GEO_A/geo2-r$r") $(s3bytes ":s3:$GEO_B/geo2-r$r")" >> "$RES/geo_bytes"
		# server replication: commit on east -> verified on west, as snapship
		# reports it (its poll: 0.1 s, growing to 2 s)
		log "  backup to east, replicated by the RGW to west"
		quiesce
		"$SNAPSHIP" -q --config "$WORK/geos.conf" backup --json > "$RES/geos-r$r.json" ||
			die "server-replicated backup failed"
		python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))[0]; print(d["seconds"], d.get("geo_seconds", "nan"), d["geo"], d["stored_bytes"])' \
			"$RES/geos-r$r.json" >> "$RES/geo_server"
		s3_purge ":s3:$GEO_A/geo1-r$r" ":s3:$GEO_A/geo2-r$r" ":s3:$GEO_B/geo2-r$r" ":s3:$RGW_BUCKET/geos-r$r"
		rm -rf "$STATE/geo"
		check_space
	done
	s3_stop
}

((DO_DIR)) && dir_suite
((DO_S3)) && s3_suite
((DO_GEO)) && geo_suite
note_others end
log "done measuring; report follows"

# ---- report -------------------------------------------------------------------
# col FILE N: column N of FILE, one value a line.  cpu FILE: user+sys a line.
col() { awk -v n="$2" '{print $n}' "$1"; }
cpu() { awk '{printf "%.2f\n", $2 + $3}' "$1"; }
mib() { awk '{printf "%.1f\n", $4 / 1024}' "$1"; }
median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) {print "nan"; exit} if (NR % 2) print v[(NR + 1) / 2]; else printf "%.10g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
med() { printf '%s\n' "$1" | median; }
maxof() { sort -g | tail -n1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 == 0) print "nan"; else printf "%.3f\n", a / b}'; }
# per-run ratios of two equally long value lists, then their median
ratio_median() { paste <(printf '%s\n' "$1") <(printf '%s\n' "$2") | awk '$2 > 0 {printf "%.4f\n", $1 / $2}' | median | awk '{printf "%.3f\n", $1}'; }
# rep VALUE N: VALUE, N lines
rep() { local i; for ((i = 0; i < $2; i++)); do echo "$1"; done; }
# rate BYTES WALLS: MB/s (10^6) a line
rate() { paste <(printf '%s\n' "$1") <(printf '%s\n' "$2") | awk '$2 > 0 {printf "%.1f\n", $1 / $2 / 1e6}'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a + 0 <= b + 0)}'; }
verdict() { if le "$1" "$2"; then echo PASS; else echo FAIL; fi; }

row() {   # row METRIC SNAP_VALUES PEER_VALUES [PRINTF_FORMAT]
	local ms mp fmt=${4:-%.2f}
	ms=$(med "$2")
	mp=$(med "$3")
	# shellcheck disable=SC2059
	printf "%-30s %12s %12s %9s %11s\n" "$1" "$(printf "$fmt" "$ms")" "$(printf "$fmt" "$mp")" \
		"$(ratio "$ms" "$mp")" "$(ratio_median "$2" "$3")"
}

# row3 METRIC SNAP RCLONE RESTIC [FORMAT]: medians, and snapship's ratios as
# "ratio of medians (median of per-run ratios)"
row3() {
	local ms mc mr fmt=${5:-%.2f}
	ms=$(med "$2"); mc=$(med "$3"); mr=$(med "$4")
	# shellcheck disable=SC2059
	printf "%-28s %11s %11s %11s %15s %15s\n" "$1" "$(printf "$fmt" "$ms")" "$(printf "$fmt" "$mc")" \
		"$(printf "$fmt" "$mr")" "$(ratio "$ms" "$mc") ($(ratio_median "$2" "$3"))" \
		"$(ratio "$ms" "$mr") ($(ratio_median "$2" "$4"))"
}

dir_report() {
	local SB_WALL PB_WALL SB_CPU PB_CPU SB_RSS PB_RSS SR_WALL PR_WALL SR_CPU PR_CPU SR_RSS PR_RSS
	local Z_CPU Z_WALL S_BYTES P_BYTES Z_REP BIG_RSS n r o d i t p w u s m mb ms mc mr rss_std rss_big
	SB_WALL=$(col "$RES/snap_backup" 1);  PB_WALL=$(col "$RES/peer_backup" 1)
	SB_CPU=$(cpu "$RES/snap_backup");     PB_CPU=$(cpu "$RES/peer_backup")
	SB_RSS=$(mib "$RES/snap_backup");     PB_RSS=$(mib "$RES/peer_backup")
	SR_WALL=$(col "$RES/snap_restore" 1); PR_WALL=$(col "$RES/peer_restore" 1)
	SR_CPU=$(cpu "$RES/snap_restore");    PR_CPU=$(cpu "$RES/peer_restore")
	SR_RSS=$(mib "$RES/snap_restore");    PR_RSS=$(mib "$RES/peer_restore")
	Z_CPU=$(cpu "$RES/zstd_t1");          Z_WALL=$(col "$RES/zstd_t1" 1)
	S_BYTES=$(col "$RES/sizes" 3);        P_BYTES=$(col "$RES/sizes" 4)

	echo
	echo "Suite dir: directory store on the same loop btrfs"
	echo "-------------------------------------------------"
	echo "Standard dataset, $RUNS round(s), cold cache before every command, order alternating"
	echo "(snapship = snapship; peer = tar -cf - . | zstd -q -T0 -3, restore peer = zstd -dc | tar -x)"
	echo "reference tar $TAR_BYTES bytes"
	echo
	printf '%-30s %12s %12s %9s %11s\n' "metric (median over runs)" snapship peer "ratio" "med(ratio)"
	printf '%-30s %12s %12s %9s %11s\n' "------------------------------" ------------ ------------ --------- -----------
	row "backup wall s"                "$SB_WALL" "$PB_WALL"
	row "backup CPU s (user+sys)"      "$SB_CPU"  "$PB_CPU"
	row "backup peak RSS MiB"          "$SB_RSS"  "$PB_RSS" %.1f
	row "stored bytes"                 "$S_BYTES" "$P_BYTES" %.0f
	row "restore wall s"               "$SR_WALL" "$PR_WALL"
	row "restore CPU s (user+sys)"     "$SR_CPU"  "$PR_CPU"
	row "restore peak RSS MiB"         "$SR_RSS"  "$PR_RSS" %.1f
	n=$(printf '%s\n' "$SB_CPU" | wc -l)
	Z_REP=$(printf '%s\n' "$Z_CPU" | head -n "$n")
	row "backup CPU s vs zstd -T1 -3"  "$SB_CPU"  "$Z_REP"
	echo
	echo "ratio = median(snapship) / median(peer); med(ratio) = median of the per-run ratios."
	echo "peer RSS is the largest single process of the pipeline (GNU time reports the max over children)."
	echo "stored bytes: snapship = data.tar.zst + index.jsonl.zst; peer = peer.tar.zst."
	echo "zstd -T1 -3 on the reference tar: CPU s median $(med "$Z_CPU"), wall s median $(med "$Z_WALL")"
	echo
	echo "Per run (wall user sys maxrss_KiB):"
	for ((r = 1; r <= RUNS; r++)); do
		if ((r % 2)); then o="peer first"; else o="snapship first"; fi
		printf '  run %d (%s)\n' "$r" "$o"
		printf '    backup   snapship %-28s peer %s\n' "$(sed -n "${r}p" "$RES/snap_backup")" "$(sed -n "${r}p" "$RES/peer_backup")"
		printf '    restore  snapship %-28s peer %s\n' "$(sed -n "${r}p" "$RES/snap_restore")" "$(sed -n "${r}p" "$RES/peer_restore")"
		printf '    zstd -T1 %s\n' "$(sed -n "${r}p" "$RES/zstd_t1")"
		read -r d i t p < <(sed -n "${r}p" "$RES/sizes")
		printf '    bytes    snapship data %s + index %s = %s, peer %s\n' "$d" "$i" "$t" "$p"
	done

	if ((SCALE_RUNS > 0)); then
		BIG_RSS=$(mib "$RES/big_backup")
		echo
		echo "4x dataset ($BIG_FILES files, $BIG_BYTES bytes; gendata ${BIG_ARGS[*]}), $SCALE_RUNS snapship backup(s):"
		while read -r w u s m; do
			printf '    wall %s s, CPU %.2f s, peak RSS %.1f MiB\n' "$w" "$(awk -v u="$u" -v s="$s" 'BEGIN {print u + s}')" "$(awk -v m="$m" 'BEGIN {print m / 1024}')"
		done < "$RES/big_backup"
	fi

	echo
	echo "Checks, suite dir (ratio of medians against the target; RSS: the largest over all runs)"
	mb=$(ratio "$(med "$SB_WALL")" "$(med "$PB_WALL")")
	ms=$(ratio "$(med "$S_BYTES")" "$(med "$P_BYTES")")
	mc=$(ratio "$(med "$SB_CPU")" "$(med "$Z_REP")")
	mr=$(ratio "$(med "$SR_WALL")" "$(med "$PR_WALL")")
	rss_std=$(printf '%s\n' "$SB_RSS" | maxof)
	printf '  %-4s backup wall <= %s x peer tar|zstd wall            %s x\n' "$(verdict "$mb" $T_BACKUP_WALL)" $T_BACKUP_WALL "$mb"
	printf '  %-4s stored size <= %s x peer .tar.zst                 %s x\n' "$(verdict "$ms" $T_SIZE)" $T_SIZE "$ms"
	printf '  %-4s backup CPU <= %s x zstd -T1 -3 CPU                 %s x\n' "$(verdict "$mc" $T_CPU)" $T_CPU "$mc"
	printf '  %-4s peak RSS <= %s MiB, standard dataset               %s MiB\n' "$(verdict "$rss_std" $T_RSS_MIB)" $T_RSS_MIB "$rss_std"
	if ((SCALE_RUNS > 0)); then
		rss_big=$(printf '%s\n' "$BIG_RSS" | maxof)
		printf '  %-4s peak RSS <= %s MiB, 4x dataset                     %s MiB\n' "$(verdict "$rss_big" $T_RSS_MIB)" $T_RSS_MIB "$rss_big"
	else
		printf '  %-4s peak RSS <= %s MiB, 4x dataset                     (SCALE_RUNS=0)\n' SKIP $T_RSS_MIB
	fi
	printf '  %-4s restore wall <= %s x zstd -dc | tar -x wall         %s x\n' "$(verdict "$mr" $T_RESTORE_WALL)" $T_RESTORE_WALL "$mr"
}

s3_report() {
	local x side v r o rss_b mb1 mb2 mr1 mr2 SZ_S SZ_C SZ_R sb cb rb
	declare -A W C M S
	for x in backup restore; do
		for side in snap rclone restic; do
			v=$RES/s3_${side}_$x
			W[$side$x]=$(col "$v" 1); C[$side$x]=$(cpu "$v"); M[$side$x]=$(mib "$v"); S[$side$x]=$(cat "$v.srv")
		done
	done
	SZ_S=$(col "$RES/s3_sizes" 1); SZ_C=$(col "$RES/s3_sizes" 2); SZ_R=$(col "$RES/s3_sizes" 3)

	echo
	echo "Suite s3: Ceph RGW on this machine (single node, memstore, loopback, zones east + west)"
	echo "--------------------------------------------------------------------------------------"
	echo "Standard dataset, $S3_RUNS round(s), cold page cache and an idle, fully replicated RGW before"
	echo "every command, order rotating (each side first, second and third in turn). All sides write to"
	echo "east ($RGW_EAST_ENDPOINT); west replicates asynchronously, outside the timing."
	echo "  snapship  snapship -q backup std --to s3://$RGW_BUCKET/snapship-rN/   (8 MiB parts, 3 in flight)"
	echo "            snapship -q restore std --from s3://$RGW_BUCKET/snapship-rN/ --to NEW"
	echo "  rclone    cd std-snap && tar -cf - . | zstd -q -T0 -3 | rclone rcat :s3:$RGW_BUCKET/rclone-rN.tar.zst"
	echo "            btrfs subvolume create NEW && rclone cat :s3:... | zstd -dc | tar -x -C NEW"
	echo "  restic    cd std-snap && restic backup .   (FIRST backup into a fresh repository: restic init"
	echo "            s3:.../$RGW_BUCKET_B/restic-rN before the round, untimed; repository v2, compression auto)"
	echo "            btrfs subvolume create NEW && restic restore latest --target NEW"
	echo
	printf '%-28s %11s %11s %11s %15s %15s\n' "metric (median over runs)" snapship rclone restic "snap/rclone" "snap/restic"
	printf '%-28s %11s %11s %11s %15s %15s\n' "----------------------------" ----------- ----------- ----------- --------------- ---------------
	row3 "backup wall s"            "${W[snapbackup]}" "${W[rclonebackup]}" "${W[resticbackup]}"
	row3 "backup CPU s (user+sys)"  "${C[snapbackup]}" "${C[rclonebackup]}" "${C[resticbackup]}"
	row3 "backup peak RSS MiB"      "${M[snapbackup]}" "${M[rclonebackup]}" "${M[resticbackup]}" %.1f
	row3 "backup RGW CPU s"         "${S[snapbackup]}" "${S[rclonebackup]}" "${S[resticbackup]}"
	row3 "stored bytes"             "$SZ_S" "$SZ_C" "$SZ_R" %.0f
	row3 "backup MB/s stored"       "$(rate "$SZ_S" "${W[snapbackup]}")" "$(rate "$SZ_C" "${W[rclonebackup]}")" "$(rate "$SZ_R" "${W[resticbackup]}")" %.1f
	row3 "backup MB/s of dataset"   "$(rate "$(rep "$DATA_BYTES" "$S3_RUNS")" "${W[snapbackup]}")" "$(rate "$(rep "$DATA_BYTES" "$S3_RUNS")" "${W[rclonebackup]}")" "$(rate "$(rep "$DATA_BYTES" "$S3_RUNS")" "${W[resticbackup]}")" %.1f
	row3 "restore wall s"           "${W[snaprestore]}" "${W[rclonerestore]}" "${W[resticrestore]}"
	row3 "restore CPU s (user+sys)" "${C[snaprestore]}" "${C[rclonerestore]}" "${C[resticrestore]}"
	row3 "restore peak RSS MiB"     "${M[snaprestore]}" "${M[rclonerestore]}" "${M[resticrestore]}" %.1f
	row3 "restore RGW CPU s"        "${S[snaprestore]}" "${S[rclonerestore]}" "${S[resticrestore]}"
	row3 "restore MB/s stored"      "$(rate "$SZ_S" "${W[snaprestore]}")" "$(rate "$SZ_C" "${W[rclonerestore]}")" "$(rate "$SZ_R" "${W[resticrestore]}")" %.1f
	echo
	echo "ratios: median(snapship) / median(peer), in brackets the median of the per-run ratios."
	echo "CPU s: the client's user+sys (the whole pipeline for rclone). RSS: the client's largest process."
	echo "RGW CPU s: user+sys of the cluster's daemons (mon, osd, radosgw east and west) during the command."
	echo "stored bytes: every object the side left in the bucket (snapship: data + index + manifest;"
	echo "restic: the whole repository after the backup). MB/s = 10^6 bytes / client wall s."
	echo
	echo "RGW ceiling: one pre-made file, $CEIL_BYTES bytes (tar | zstd -3 of the dataset), source in the"
	echo "page cache (warm, unlike the rows above), idle RGW, median over $S3_RUNS run(s) (RSS: the largest):"
	printf '  %-62s %7s %7s %8s %8s %8s\n' "" "wall s" "MB/s" "cli CPU" "RGW CPU" "RSS MiB"
	ceil_row() {   # ceil_row LABEL FILE BYTES...
		local wl
		wl=$(col "$RES/$2" 1)
		printf '  %-62s %7.2f %7.1f %8.2f %8.2f %8.1f\n' "$1" "$(med "$wl")" "$(med "$(rate "$3" "$wl")")" \
			"$(med "$(cpu "$RES/$2")")" "$(med "$(cat "$RES/$2.srv")")" "$(mib "$RES/$2" | maxof)"
	}
	ceil_row "PUT, one request (rclone copyto --s3-upload-cutoff 5G)" ceil_put1 "$(rep "$CEIL_BYTES" "$S3_RUNS")"
	ceil_row "PUT, multipart (rclone copyto: 5 MiB parts, 4 at a time)" ceil_putmp "$(rep "$CEIL_BYTES" "$S3_RUNS")"
	ceil_row "GET (rclone cat > /dev/null)" ceil_get "$(rep "$CEIL_BYTES" "$S3_RUNS")"
	ceil_row "snapship backup of a subvolume holding only that file (*)" ceil_snap "$(cat "$RES/ceil_snap_bytes")"
	echo "  (*) snapship has no raw upload: this reads the file cold from its new snapshot and"
	echo "      compresses it again (incompressible); MB/s counts the bytes it stored."
	echo
	echo "RGW memory: memstore held at most $(awk -v b="$MEMSTORE_MAX" 'BEGIN {printf "%.2f GB", b / 1e9}') (both zones' copies, sampled at the"
	echo "fullest moments); the OSD's RSS reached $(awk -v k="$OSD_RSS_MAX" 'BEGIN {printf "%.1f GiB", k / 1048576}'). Objects deleted and garbage-collected every round."
	echo "Load when the RGW started: $LOAD_S3. Waits for an idle RGW that timed out (180 s): $S3_QUIESCE_TIMEOUTS."
	echo
	echo "Per run (wall user sys maxrss_KiB, then RGW CPU s):"
	for ((r = 1; r <= S3_RUNS; r++)); do
		o=$(sed -n "${r}p" "$RES/s3_order")
		printf '  run %d (order %s)\n' "$r" "$o"
		for x in backup restore; do
			for side in snap rclone restic; do
				printf '    %-8s %-7s %-28s %s\n' "$x" "$side" "$(sed -n "${r}p" "$RES/s3_${side}_$x")" "$(sed -n "${r}p" "$RES/s3_${side}_$x.srv")"
			done
		done
		for x in put1 putmp get snap; do
			printf '    ceiling  %-7s %-28s %s\n' "$x" "$(sed -n "${r}p" "$RES/ceil_$x")" "$(sed -n "${r}p" "$RES/ceil_$x.srv")"
		done
		read -r sb cb rb < <(sed -n "${r}p" "$RES/s3_sizes")
		printf '    bytes    snapship %s, rclone %s, restic %s; ceiling snapship %s\n' \
			"$sb" "$cb" "$rb" "$(sed -n "${r}p" "$RES/ceil_snap_bytes")"
	done

	echo
	echo "Checks, suite s3 (ratio of medians against the target; RSS: the largest over all runs)"
	mb1=$(ratio "$(med "${W[snapbackup]}")" "$(med "${W[rclonebackup]}")")
	mb2=$(ratio "$(med "${W[snapbackup]}")" "$(med "${W[resticbackup]}")")
	mr1=$(ratio "$(med "${W[snaprestore]}")" "$(med "${W[rclonerestore]}")")
	mr2=$(ratio "$(med "${W[snaprestore]}")" "$(med "${W[resticrestore]}")")
	rss_b=$(printf '%s\n' "${M[snapbackup]}" | maxof)
	printf '  %-4s backup wall <= %s x tar|zstd|rclone rcat wall       %s x\n' "$(verdict "$mb1" $T_S3_RCLONE_BACKUP)" $T_S3_RCLONE_BACKUP "$mb1"
	printf '  %-4s backup wall <= %s x restic backup wall (first)      %s x\n' "$(verdict "$mb2" $T_S3_RESTIC_BACKUP)" $T_S3_RESTIC_BACKUP "$mb2"
	printf '  %-4s client peak RSS <= %s MiB, backup to S3              %s MiB\n' "$(verdict "$rss_b" $T_RSS_MIB)" $T_RSS_MIB "$rss_b"
	printf '  %-4s restore wall <= %s x rclone cat|zstd -dc|tar -x wall  %s x\n' "$(verdict "$mr1" $T_S3_RCLONE_RESTORE)" $T_S3_RCLONE_RESTORE "$mr1"
	printf '  %-4s restore wall <= %s x restic restore wall              %s x\n' "$(verdict "$mr2" $T_S3_RESTIC_RESTORE)" $T_S3_RESTIC_RESTORE "$mr2"
}

geo_report() {
	local W1 W2 C1 C2 M1 M2 mw mc r a b c d
	W1=$(col "$RES/geo_one" 1); W2=$(col "$RES/geo_two" 1)
	C1=$(cpu "$RES/geo_one");   C2=$(cpu "$RES/geo_two")
	M1=$(mib "$RES/geo_one");   M2=$(mib "$RES/geo_two")
	echo
	echo "Suite geo: replication (the same RGW; standard dataset; $GEO_RUNS round(s), order alternating)"
	echo "------------------------------------------------------------------------------------------"
	echo "  one region   snapship backup, config: [region east] bucket $GEO_A only"
	echo "  two regions  snapship backup, config: east + [region b] bucket $GEO_B, replication = agent"
	echo "               (one read of the snapshot, one compression, two uploads to the same RGW;"
	echo "               both buckets with multisite sync turned off: two independent stores)"
	echo
	printf '%-30s %12s %12s %9s %11s\n' "metric (median over runs)" "two regions" "one region" "ratio" "med(ratio)"
	printf '%-30s %12s %12s %9s %11s\n' "------------------------------" ------------ ------------ --------- -----------
	row "backup wall s"                "$W2" "$W1"
	row "backup CPU s (user+sys)"      "$C2" "$C1"
	row "backup peak RSS MiB"          "$M2" "$M1" %.1f
	row "RGW CPU s"                    "$(cat "$RES/geo_two.srv")" "$(cat "$RES/geo_one.srv")"
	echo
	echo "The same with directory stores (two directories on the scratch btrfs, no RGW work):"
	printf '%-30s %12s %12s %9s %11s\n' "metric (median over runs)" "two dirs" "one dir" "ratio" "med(ratio)"
	row "backup wall s"                "$(col "$RES/geo_dtwo" 1)" "$(col "$RES/geo_done" 1)"
	row "backup CPU s (user+sys)"      "$(cpu "$RES/geo_dtwo")" "$(cpu "$RES/geo_done")"
	row "backup peak RSS MiB"          "$(mib "$RES/geo_dtwo")" "$(mib "$RES/geo_done")" %.1f
	echo
	echo "Server replication (east -> west by RGW multisite; snapship polls west with HEADs,"
	echo "every 0.1 s growing to 2 s; commit = the manifest is on east):"
	echo "  run  backup s (to commit)  commit -> geo-protected s  state          stored bytes"
	r=0
	while read -r a b c d; do
		r=$((r + 1))
		printf '  %3d  %19s  %25s  %-13s  %s\n' "$r" "$a" "$b" "$c" "$d"
	done < "$RES/geo_server"
	echo "  median commit -> geo-protected: $(col "$RES/geo_server" 2 | median) s"
	echo
	echo "Per run (wall user sys maxrss_KiB, then RGW CPU s):"
	for ((r = 1; r <= GEO_RUNS; r++)); do
		printf '  run %d  two %-28s %-6s one %-28s %s   bytes in a, b: %s\n' "$r" \
			"$(sed -n "${r}p" "$RES/geo_two")" "$(sed -n "${r}p" "$RES/geo_two.srv")" \
			"$(sed -n "${r}p" "$RES/geo_one")" "$(sed -n "${r}p" "$RES/geo_one.srv")" \
			"$(sed -n "${r}p" "$RES/geo_bytes")"
	done
	echo
	echo "Checks, suite geo (ratio of medians against the target)"
	mw=$(ratio "$(med "$W2")" "$(med "$W1")")
	mc=$(ratio "$(med "$C2")" "$(med "$C1")")
	printf '  %-4s backup wall, two regions <= %s x one region         %s x\n' "$(verdict "$mw" $T_GEO_WALL)" $T_GEO_WALL "$mw"
	printf '  %-4s backup CPU, two regions <= %s x one region           %s x\n' "$(verdict "$mc" $T_GEO_CPU)" $T_GEO_CPU "$mc"
	mw=$(ratio "$(med "$(col "$RES/geo_dtwo" 1)")" "$(med "$(col "$RES/geo_done" 1)")")
	mc=$(ratio "$(med "$(cpu "$RES/geo_dtwo")")" "$(med "$(cpu "$RES/geo_done")")")
	printf '  %-4s backup wall, two dirs <= %s x one dir                %s x\n' "$(verdict "$mw" $T_GEO_WALL)" $T_GEO_WALL "$mw"
	printf '  %-4s backup CPU, two dirs <= %s x one dir                  %s x\n' "$(verdict "$mc" $T_GEO_CPU)" $T_GEO_CPU "$mc"
}

facts
echo
echo "dataset     $DATA_FILES files, $DATA_BYTES bytes (gendata ${STD_ARGS[*]:-defaults})"
((DO_DIR)) && dir_report
((DO_S3)) && s3_report
((DO_GEO)) && geo_report
if [ "$QUICK" = 1 ]; then
	echo
	echo "QUICK=1: tiny smoke datasets; these numbers say nothing about the targets."
fi
