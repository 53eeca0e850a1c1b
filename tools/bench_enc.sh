#!/usr/bin/env bash
# The cost of client-side encryption (issue 15's figure): on the standard
# dataset (gendata defaults, or GENDATA_ARGS), RUNS (3) rounds of, in turn,
# a plain and an encrypted backup (CPU: user + sys) and a plain and an
# encrypted restore into a new subvolume (wall), each after a cold page
# cache, into one directory store on the same loop btrfs; medians and
# ratios (encrypted / plain; the goal is <= 1.05 x).
#   bash tools/bench_enc.sh [BUILD_DIR]     (root)
# ENCRYPT=1 is implied: both sides are measured in one run.
set -euo pipefail
NAME=bench_enc
SRC_DIR=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-build}
RUNS=${RUNS:-3}
IMG=${IMG:-8G}
# shellcheck source=tools/bench_lib.sh
. "$SRC_DIR/tools/bench_lib.sh"
read -r -a ARGS <<<"${GENDATA_ARGS:-}"

bench_setup "$IMG"
S=$SRC_DIR/$B/snapship
SRC=$MNT/src
btrfs subvolume create "$SRC" >/dev/null
log "gendata ${ARGS[*]:-(defaults)}"
"$SRC_DIR/$B/gendata" "$SRC" "${ARGS[@]}" >/dev/null
mkdir -p "$WORK/keys" "$WORK/out"
"$S" key generate "$WORK/keys/k" >/dev/null
for mode in plain enc; do
	cat >"$WORK/$mode.conf" <<EOF
[agent]
state_dir = $WORK/state-$mode
host = bench
low_impact = off
cpu_priority = normal
$([ "$mode" = enc ] && printf 'encryption = aes-256-gcm\nkey_file = %s\n' "$WORK/keys/k")
[partition std]
path = $SRC
[region r]
store = file
path = $MNT/store-$mode
EOF
	mkdir -p "$MNT/store-$mode"
done

for i in $(seq 1 "$RUNS"); do
	for mode in plain enc; do
		log "round $i: $mode backup"
		timed "$WORK/out/backup-$mode-$i" "$S" -q --config "$WORK/$mode.conf" backup std --full
	done
	for mode in plain enc; do
		log "round $i: $mode restore"
		timed "$WORK/out/restore-$mode-$i" "$S" -q --config "$WORK/$mode.conf" restore std \
			--to "$MNT/restore-$mode-$i"
		btrfs subvolume delete "$MNT/restore-$mode-$i" >/dev/null
	done
	# the next round's backups are fulls too: keep one per store
	[ "$i" = "$RUNS" ] || rm -rf "${MNT:?}/store-plain/bench" "${MNT:?}/store-enc/bench"
done

med() {	# med KIND MODE FIELD(cpu|wall)
	for i in $(seq 1 "$RUNS"); do "$3" "$WORK/out/$1-$2-$i"; done | median
}
bp=$(med backup plain cpu)
be=$(med backup enc cpu)
bwp=$(med backup plain wall)
bwe=$(med backup enc wall)
rp=$(med restore plain wall)
re=$(med restore enc wall)
echo "dataset: gendata ${ARGS[*]:-(defaults)}: $(du_bytes "$SRC") bytes; $RUNS rounds, medians"
echo "| figure | plain | encrypted | encrypted / plain | goal |"
echo "|---|---|---|---|---|"
echo "| backup CPU (user + sys, s) | $bp | $be | $(ratio "$be" "$bp") | <= 1.05 x |"
echo "| backup wall (s) | $bwp | $bwe | $(ratio "$bwe" "$bwp") | - |"
echo "| restore wall (s) | $rp | $re | $(ratio "$re" "$rp") | <= 1.05 x |"
for i in $(seq 1 "$RUNS"); do
	echo "round $i: backup CPU plain $(cpu "$WORK/out/backup-plain-$i") enc $(cpu "$WORK/out/backup-enc-$i"); restore wall plain $(wall "$WORK/out/restore-plain-$i") enc $(wall "$WORK/out/restore-enc-$i")"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "stored: plain $(du_bytes "$MNT/store-plain"), encrypted $(du_bytes "$MNT/store-enc") bytes"
