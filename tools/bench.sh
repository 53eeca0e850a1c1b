#!/usr/bin/env bash
# snapship benchmarks (doc/BENCHMARKS.md): snapship against the obvious peer,
# `tar -cf - . | zstd -T0 -3`, on the same btrfs snapshot of the same data,
# cold cache for every measured command, alternating order, medians + ratios.
#
#   bash tools/bench.sh [BUILD_DIR]       (make bench does this; needs root)
#
# Environment:
#   RUNS=5         measured rounds on the standard dataset (1 GiB JSON + 20,000 small files)
#   SCALE_RUNS=1   snapship backups of the 4x dataset (peak RSS, wall)
#   QUICK=1        tiny smoke run (small datasets; RUNS and SCALE_RUNS default to 1)
#   BENCH_DIR=/var/tmp   where the sparse loop image lives
#
# Everything (the peer's output, snapship's store, the reference tar, restored
# subvolumes) lives on the one loop btrfs filesystem, so both sides read and
# write the same disk.  The report goes to stdout (plain text, ready to paste);
# progress goes to stderr.  Exit status: 0 when the benchmark ran (whether the
# targets pass or not), non-zero on errors.  Cleans up after itself.
set -euo pipefail

B=${1:-build}
SRC_DIR=$(cd "$(dirname "$0")/.." && pwd)
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
BENCH_DIR=${BENCH_DIR:-/var/tmp}

# targets (the issue's)
T_BACKUP_WALL=0.7      # snapship backup wall / peer tar|zstd wall
T_SIZE=1.01            # snapship stored bytes / peer .tar.zst bytes
T_CPU=1.5              # snapship backup CPU (user+sys) / zstd -T1 -3 CPU
T_RSS_MIB=64           # snapship peak RSS, standard and 4x dataset
T_RESTORE_WALL=0.6     # snapship restore wall / zstd -dc | tar -x wall

die() { echo "bench: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer (got '$RUNS')"
[[ "$SCALE_RUNS" =~ ^[0-9]+$ ]] || die "SCALE_RUNS must be a non-negative integer (got '$SCALE_RUNS')"
[ "$(id -u)" -eq 0 ] ||
	die "needs root (loop btrfs, snapshots, drop_caches): sudo make bench"
for c in btrfs mkfs.btrfs losetup zstd tar awk; do
	command -v "$c" >/dev/null 2>&1 || die "needs $c (make deps)"
done
[ -x /usr/bin/time ] || die "needs GNU time at /usr/bin/time (apt-get install time)"
if [ ! -x "$SRC_DIR/$B/snapship" ] || [ ! -x "$SRC_DIR/$B/gendata" ]; then
	die "no $SRC_DIR/$B/snapship or gendata: run make first"
fi

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
WORK=$(mktemp -d "$BENCH_DIR/snapship-bench.XXXXXX")
MNT=$WORK/mnt
RES=$WORK/results
LOOP=
cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
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

# Private copies of the binaries: the build directory may be rebuilt while we run.
mkdir -p "$WORK/bin" "$RES"
cp "$SRC_DIR/$B/snapship" "$SRC_DIR/$B/gendata" "$WORK/bin/"
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
	echo "disk        loop btrfs on a sparse $IMG_SIZE image in $BENCH_DIR ($(stat -f -c %T "$BENCH_DIR") on $(findmnt -n -o SOURCE --target "$BENCH_DIR")), loop direct-io=$LOOP_DIO"
	echo "load        $LOAD_START (1/5/15 min, at start), $(cut -d' ' -f1-3 /proc/loadavg) (at end)"
	echo "other loops $(($(losetup -a | wc -l) - 1)) other loop device(s) in use at the end (other workloads = noise)"
	echo "runs        RUNS=$RUNS SCALE_RUNS=$SCALE_RUNS QUICK=$QUICK"
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
OUT=$MNT/out                 # both sides' outputs: same filesystem, same disk
STATE=$MNT/state
mkdir -p "$OUT" "$STATE"

log "standard dataset: gendata ${STD_ARGS[*]:-(defaults)}"
btrfs subvolume create "$STD" >/dev/null
"$GENDATA" "$STD" "${STD_ARGS[@]}" >/dev/null
btrfs subvolume snapshot -r "$STD" "$SNAP" >/dev/null
log "reference tar of std-snap for the compression bound"
tar -cf "$OUT/std.tar" -C "$SNAP" .
sync
DATA_BYTES=$(du -sb --apparent-size "$SNAP" | cut -f1)
DATA_FILES=$(find "$SNAP" -type f | wc -l)
TAR_BYTES=$(stat -c %s "$OUT/std.tar")

# ---- measuring ----------------------------------------------------------------
# quiesce: let the btrfs cleaner finish dropping deleted subvolumes/snapshots,
# write everything back, drop the page cache (cold for every measured command).
# (A transaction commit wakes the cleaner; without it `subvolume sync` can wait
# for the 30 s commit interval.)
quiesce() {
	btrfs filesystem sync "$MNT" >/dev/null
	btrfs subvolume sync "$MNT" >/dev/null 2>&1 || true
	sync
	echo 3 > /proc/sys/vm/drop_caches
}

# measure LABEL CMD...: cold cache, run CMD under GNU time (stdout discarded),
# append "wall user sys maxrss_kib" to $RES/LABEL.  A failing command is an error.
measure() {
	local label=$1
	shift
	quiesce
	if ! /usr/bin/time -f '%e %U %S %M' -o "$RES/.time" "$@" >/dev/null 2>"$RES/.err"; then
		cat "$RES/.err" >&2
		die "$label failed: $*"
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

for ((r = 1; r <= RUNS; r++)); do
	if ((r % 2)); then order=(peer snap); else order=(snap peer); fi
	log "round $r/$RUNS: order ${order[*]}"
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
	for s in peer snap; do
		got="$(find "$MNT/restore-$s" -type f | wc -l) $(du -sb --apparent-size "$MNT/restore-$s" | cut -f1)"
		[ "$got" = "$DATA_FILES $DATA_BYTES" ] ||
			die "$s restore is incomplete: files/bytes $got, source $DATA_FILES $DATA_BYTES"
	done
	del_subvol "$MNT/restore-peer"
	del_subvol "$MNT/restore-snap"
	quiesce
	check_space
done
rm -rf "$OUT/store" "$OUT/peer.tar.zst"

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
log "done measuring; report follows"

# ---- report -------------------------------------------------------------------
# col FILE N: column N of FILE, one value a line.  cpu FILE: user+sys a line.
col() { awk -v n="$2" '{print $n}' "$1"; }
cpu() { awk '{printf "%.2f\n", $2 + $3}' "$1"; }
mib() { awk '{printf "%.1f\n", $4 / 1024}' "$1"; }
median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) {print "nan"; exit} if (NR % 2) print v[(NR + 1) / 2]; else printf "%.10g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
maxof() { sort -g | tail -n1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 == 0) print "nan"; else printf "%.3f\n", a / b}'; }
# per-run ratios of two equally long value lists, then their median
ratio_median() { paste <(printf '%s\n' "$1") <(printf '%s\n' "$2") | awk '$2 > 0 {printf "%.4f\n", $1 / $2}' | median | awk '{printf "%.3f\n", $1}'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a + 0 <= b + 0)}'; }
verdict() { if le "$1" "$2"; then echo PASS; else echo FAIL; fi; }

row() {   # row METRIC SNAP_VALUES PEER_VALUES [PRINTF_FORMAT]
	local ms mp fmt=${4:-%.2f}
	ms=$(printf '%s\n' "$2" | median)
	mp=$(printf '%s\n' "$3" | median)
	# shellcheck disable=SC2059
	printf "%-30s %12s %12s %9s %11s\n" "$1" "$(printf "$fmt" "$ms")" "$(printf "$fmt" "$mp")" \
		"$(ratio "$ms" "$mp")" "$(ratio_median "$2" "$3")"
}

SB_WALL=$(col "$RES/snap_backup" 1);  PB_WALL=$(col "$RES/peer_backup" 1)
SB_CPU=$(cpu "$RES/snap_backup");     PB_CPU=$(cpu "$RES/peer_backup")
SB_RSS=$(mib "$RES/snap_backup");     PB_RSS=$(mib "$RES/peer_backup")
SR_WALL=$(col "$RES/snap_restore" 1); PR_WALL=$(col "$RES/peer_restore" 1)
SR_CPU=$(cpu "$RES/snap_restore");    PR_CPU=$(cpu "$RES/peer_restore")
SR_RSS=$(mib "$RES/snap_restore");    PR_RSS=$(mib "$RES/peer_restore")
Z_CPU=$(cpu "$RES/zstd_t1");          Z_WALL=$(col "$RES/zstd_t1" 1)
S_BYTES=$(col "$RES/sizes" 3);        P_BYTES=$(col "$RES/sizes" 4)

facts
echo
echo "dataset     $DATA_FILES files, $DATA_BYTES bytes (gendata ${STD_ARGS[*]:-defaults}); reference tar $TAR_BYTES bytes"
echo
echo "Standard dataset, $RUNS round(s), cold cache before every command, order alternating"
echo "(snapship = snapship; peer = tar -cf - . | zstd -q -T0 -3, restore peer = zstd -dc | tar -x)"
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
echo "zstd -T1 -3 on the reference tar: CPU s median $(printf '%s\n' "$Z_CPU" | median), wall s median $(printf '%s\n' "$Z_WALL" | median)"
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
echo "Checks (ratio of medians against the target; RSS: the largest over all runs)"
mb=$(ratio "$(printf '%s\n' "$SB_WALL" | median)" "$(printf '%s\n' "$PB_WALL" | median)")
ms=$(ratio "$(printf '%s\n' "$S_BYTES" | median)" "$(printf '%s\n' "$P_BYTES" | median)")
mc=$(ratio "$(printf '%s\n' "$SB_CPU" | median)" "$(printf '%s\n' "$Z_REP" | median)")
mr=$(ratio "$(printf '%s\n' "$SR_WALL" | median)" "$(printf '%s\n' "$PR_WALL" | median)")
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
if [ "$QUICK" = 1 ]; then
	echo
	echo "QUICK=1: tiny smoke datasets; these numbers say nothing about the targets."
fi
