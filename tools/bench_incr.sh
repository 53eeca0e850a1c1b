#!/usr/bin/env bash
# Incremental backups (issue 14, doc/BENCHMARKS.md "Incremental backups"):
# on the standard dataset (gendata defaults: 1 GiB of 64 MiB JSON segments +
# 20,000 small files) in a loop btrfs:
#
#   1. a full backup (--full);
#   2. a database-like churn of about 1 % of the bytes (tools/churn.py, fixed
#      seed): random 8 KiB pages rewritten in place over a few segments
#      (~0.5 %), appends to the 2-3 newest segments (~0.3 %), 200 small files
#      new, 200 deleted, 200 renamed, 200 chmod'ed;
#   3. the incremental backup;
#   4. a --full backup of the same tree (nothing changed since 3);
#   5. restores of the incremental (3) and of that full (4), RUNS rounds,
#      order alternating: wall, CPU, median, ratio.
#
# Cold page cache before every measured command.  Prints (asserts nothing)
# per backup: wall, CPU (user+sys), bytes read from the partition (the
# process's read_bytes), stored bytes; the incremental over the full, over
# the bytes the churn wrote and over the whole files it touched; the
# restores; and the moonshot interval derived from the incremental's CPU.
#
#   bash tools/bench_incr.sh [BUILD_DIR]       (needs root)
#   QUICK=1: a small dataset (64 MiB of 16 MiB segments, 1,000 small files)
#   RUNS=3: restore rounds (each restores both backups)
#   SEED=14: the churn's seed
#   BENCH_DIR=/var/tmp: where the sparse loop image lives
set -euo pipefail

B=${1:-build}
SRC_DIR=$(cd "$(dirname "$0")/.." && pwd)
NAME=bench_incr
# shellcheck source=tools/bench_lib.sh
. "$SRC_DIR/tools/bench_lib.sh"
QUICK=${QUICK:-0}
RUNS=${RUNS:-3}
SEED=${SEED:-14}
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer (got '$RUNS')"
if [ "$QUICK" = 1 ]; then
	ARGS=(--json-bytes 64M --json-file-size 16M --small-files 1000)
	IMG=4G
else
	ARGS=()
	IMG=12G
fi
bench_setup "$IMG"
SRC=$MNT/std
STORE=$MNT/store
mkdir -p "$STORE" "$MNT/state"
btrfs subvolume create "$SRC" >/dev/null
log "gendata ${ARGS[*]:-(defaults)}"
"$SRC_DIR/$B/gendata" "$SRC" "${ARGS[@]}" >/dev/null
cat >"$WORK/conf" <<EOF
[agent]
host = bench
state_dir = $MNT/state
[region a]
store = file
path = $STORE
primary = yes
[partition std]
path = $SRC
EOF
SNAP=("$SRC_DIR/$B/snapship" --config "$WORK/conf")

# backup NAME [ARGS]: one backup, cold cache; $WORK/NAME: wall user sys rss read
backup() {
	local name=$1
	shift
	timed_io "$WORK/$name" "${SNAP[@]}" --json backup std "$@"
	cp "$WORK/$name.out" "$WORK/$name.json"
	log "$name: wall user sys rss read = $(cat "$WORK/$name"), $(jget "$WORK/$name.json" 'd[0]["backup_id"]')"
}

# restore NAME ID: one restore of ID into a new subvolume, cold cache;
# appends "wall user sys rss" to $WORK/NAME.runs
restore() {
	local name=$1 id=$2
	timed "$WORK/r" "${SNAP[@]}" -q restore std --id "$id" --to "$MNT/restored"
	cat "$WORK/r" >>"$WORK/$name.runs"
	log "restore $name ($id): wall user sys rss = $(cat "$WORK/r")"
	btrfs subvolume delete "$MNT/restored" >/dev/null
}

backup full --full
log "churn (tools/churn.py --seed $SEED)"
python3 "$SRC_DIR/tools/churn.py" "$SRC" --seed "$SEED" --zstd >"$WORK/churn.json"
backup incr
backup full2 --full
IID=$(jget "$WORK/incr.json" 'd[0]["backup_id"]')
FID=$(jget "$WORK/full2.json" 'd[0]["backup_id"]')
for ((r = 1; r <= RUNS; r++)); do
	if ((r % 2)); then
		restore incr "$IID"; restore full "$FID"
	else
		restore full "$FID"; restore incr "$IID"
	fi
done

C=$WORK/churn.json
written=$(jget "$C" 'd["written_bytes"]')
whole=$(jget "$C" 'd["touched_whole_bytes"]')
wz=$(jget "$C" 'd.get("written_zstd3_bytes", 0)')
read -r fw fu fs _ fr <"$WORK/full"
read -r iw iu is _ ir <"$WORK/incr"
read -r gw gu gs _ gr <"$WORK/full2"
fc=$(awk -v u="$fu" -v s="$fs" 'BEGIN {print u + s}')
ic=$(awk -v u="$iu" -v s="$is" 'BEGIN {print u + s}')
gc=$(awk -v u="$gu" -v s="$gs" 'BEGIN {print u + s}')
fst=$(jget "$WORK/full.json" 'd[0]["stored_bytes"]')
ist=$(jget "$WORK/incr.json" 'd[0]["stored_bytes"]')
gst=$(jget "$WORK/full2.json" 'd[0]["stored_bytes"]')
rw_i=$(awk '{print $1}' "$WORK/incr.runs" | median)
rw_f=$(awk '{print $1}' "$WORK/full.runs" | median)
rc_i=$(awk '{print $2 + $3}' "$WORK/incr.runs" | median)
rc_f=$(awk '{print $2 + $3}' "$WORK/full.runs" | median)

echo "Incremental backups (issue 14): $(git -C "$SRC_DIR" rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg), QUICK=$QUICK"
echo "dataset: gendata ${ARGS[*]:-(defaults)}: $(jget "$C" 'd["tree_bytes"]') bytes in regular files"
echo "churn (tools/churn.py --seed $SEED): $(jget "$C" '"%d pages of 8 KiB rewritten in place over %d segments (%d bytes), appends to %d segments (%d bytes), %d small files new (%d bytes), %d deleted, %d renamed, %d chmod'"'"'ed" % (d["rewrite_pages"], d["rewrite_segments"], d["rewrite_bytes"], d["append_segments"], d["append_bytes"], d["small_new"], d["small_new_bytes"], d["small_deleted"], d["small_renamed"], d["small_chmod"])')"
echo "changed bytes (written by the churn): $written = $(ratio "$written" "$(jget "$C" 'd["tree_bytes"]')") of the tree; zstd -3 of them: $wz"
echo "whole size of the $(jget "$C" 'd["touched_files"]') files whose content changed: $whole"
echo "incremental says: $(jget "$WORK/incr.json" '"parent %s, %s changed, %s new, %s deleted, %s renamed, %s metadata-only, new_bytes %s, referenced_bytes %s" % (d[0].get("parent"), d[0].get("changed"), d[0].get("new"), d[0].get("deleted"), d[0].get("renamed"), d[0].get("meta_only"), d[0].get("new_bytes"), d[0].get("referenced_bytes"))')"
echo
printf '%-26s %10s %10s %14s %14s\n' "backup (cold cache)" "wall s" "cpu s" "read bytes" "stored bytes"
printf '%-26s %10.2f %10.2f %14s %14s\n' "full (before the churn)" "$fw" "$fc" "$fr" "$fst"
printf '%-26s %10.2f %10.2f %14s %14s\n' incremental "$iw" "$ic" "$ir" "$ist"
printf '%-26s %10.2f %10.2f %14s %14s\n' "full (after the churn)" "$gw" "$gc" "$gr" "$gst"
echo
echo "incremental / full (before):  wall $(ratio "$iw" "$fw")   [issue: <= 10 %]"
echo "                              cpu  $(ratio "$ic" "$fc")   [issue: <= 5 %]"
echo "                              stored $(ratio "$ist" "$fst")"
echo "read / changed bytes:         $(ratio "$ir" "$written")   [issue: <= 2 x]"
echo "read / whole touched files:   $(ratio "$ir" "$whole")"
echo "stored / changed bytes zstd -3: $(ratio "$ist" "$wz")   [issue: <= 1.2 x]"
echo "stored / whole touched files: $(ratio "$ist" "$whole")"
echo
echo "restore (cold cache, into a new subvolume), median of $RUNS round(s), order alternating:"
echo "the incremental $IID against a --full backup of the same tree, $FID"
printf '%-26s %10s %10s\n' "restore" "wall s" "cpu s"
printf '%-26s %10.2f %10.2f\n' "incremental" "$rw_i" "$rc_i"
printf '%-26s %10.2f %10.2f\n' "full of the same tree" "$rw_f" "$rc_f"
echo "incremental / full restore: wall $(ratio "$rw_i" "$rw_f")   [issue: <= 1.1 x], cpu $(ratio "$rc_i" "$rc_f")"
echo "per round (wall user sys maxrss_KiB): incremental: $(paste -sd';' "$WORK/incr.runs"); full: $(paste -sd';' "$WORK/full.runs")"
echo
echo "moonshot (derived, not measured): at $ic CPU s per incremental of this churn, the agent"
echo "uses <= 5 % of one core with an interval of at least $(awk -v c="$ic" 'BEGIN {printf "%.0f s (%.1f min)", c / 0.05, c / 0.05 / 60}')"
echo "(interval = incremental CPU s / 0.05; assumes the same churn per interval and nothing else running)."
if [ "$QUICK" = 1 ]; then
	echo
	echo "QUICK=1: a small dataset; these numbers say nothing about the targets."
fi
