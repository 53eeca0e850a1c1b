#!/usr/bin/env bash
# restic as the peer of an incremental (issue 14, doc/BENCHMARKS.md
# "Incremental backups"): the dataset and the churn of tools/bench_incr.sh
# (gendata defaults; tools/churn.py with the same seed: about 1 % of the
# bytes), in a loop btrfs, both tools to a local directory store on that
# btrfs (snapship's store = file; restic's local repository):
#
#   1. first backup:  snapship (a full), then restic (a new repository);
#   2. the churn;
#   3. second backup: snapship (an incremental), then restic (its parent
#      found by path: same host, same path).
#
# Cold page cache before every backup.  Prints per tool and backup: wall,
# CPU (user+sys), peak RSS, bytes read from the disk (read_bytes), and the
# store's growth (du -sb); then snapship / restic for the second backup
# (issue 14's goal: snapship's incremental wall <= 0.5 x restic's).  Asserts
# nothing.  restic (Debian's, installed when missing) encrypts and chunks by
# content (deduplication, compression auto with repository version 2); it
# keeps its cache in the work directory (on the same btrfs, kept between
# the two backups, as a host would), and backs up the live subvolume (it
# takes no snapshot: nothing changes it during the backups), while snapship
# snapshots it first.
#
#   bash tools/bench_restic.sh [BUILD_DIR]     (needs root)
#   QUICK=1: a small dataset (64 MiB of 16 MiB segments, 1,000 small files)
#   SEED=14: the churn's seed (the same as bench_incr.sh's)
#   BENCH_DIR=/var/tmp: where the sparse loop image lives
set -euo pipefail

B=${1:-build}
SRC_DIR=$(cd "$(dirname "$0")/.." && pwd)
NAME=bench_restic
# shellcheck source=tools/bench_lib.sh
. "$SRC_DIR/tools/bench_lib.sh"
QUICK=${QUICK:-0}
SEED=${SEED:-14}
if [ "$QUICK" = 1 ]; then
	ARGS=(--json-bytes 64M --json-file-size 16M --small-files 1000)
	IMG=4G
else
	ARGS=()
	IMG=12G
fi
bench_setup "$IMG"
need_pkg restic restic
SRC=$MNT/std
STORE=$MNT/store
REPO=$MNT/restic
export RESTIC_PASSWORD=snapship-bench RESTIC_REPOSITORY=$REPO RESTIC_CACHE_DIR=$MNT/restic-cache
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
restic init >/dev/null

# run TOOL N: backup N (1 or 2) by TOOL, cold cache; $WORK/TOOL.N holds
# "wall user sys rss read growth"
run() {
	local tool=$1 n=$2 out=$WORK/$1.$2 dir before
	if [ "$tool" = snapship ]; then dir=$STORE; else dir=$REPO; fi
	before=$(du_bytes "$dir")
	if [ "$tool" = snapship ]; then
		timed_io "$out" "$SRC_DIR/$B/snapship" --config "$WORK/conf" --json backup std
	else
		timed_io "$out" restic backup --json --host bench "$SRC"
	fi
	echo "$(cat "$out") $(($(du_bytes "$dir") - before))" >"$out"
	log "$tool backup $n: wall user sys rss read growth = $(cat "$out")"
}

run snapship 1
run restic 1
log "churn (tools/churn.py --seed $SEED)"
python3 "$SRC_DIR/tools/churn.py" "$SRC" --seed "$SEED" --zstd >"$WORK/churn.json"
run snapship 2
run restic 2

C=$WORK/churn.json
# the restic summary line of the second backup
grep '"message_type":"summary"' "$WORK/restic.2.out" | tail -n1 >"$WORK/restic.2.sum" || true
row() {   # row LABEL FILE
	local w u s m r g
	read -r w u s m r g <"$2"
	printf '%-24s %9.2f %9.2f %9.1f %14s %14s\n' "$1" "$w" "$(awk -v u="$u" -v s="$s" 'BEGIN {print u + s}')" \
		"$(awk -v m="$m" 'BEGIN {print m / 1024}')" "$r" "$g"
}
col() { awk -v c="$2" '{print $c}' "$1"; }
c2() { awk '{print $2 + $3}' "$1"; }

echo "snapship against restic, an incremental (issue 14): $(git -C "$SRC_DIR" rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg), QUICK=$QUICK"
echo "$(restic version | head -n1): encrypts (AES-256 + Poly1305) and chunks by content (deduplication;"
echo "its chunker polynomial is random per repository, so its bytes differ a little from run to run),"
echo "compression auto (repository version 2); its cache in the work directory, kept between the backups;"
echo "it backs up the live subvolume ($SRC: nothing changes it meanwhile), snapship a snapshot of it."
echo "Both store into a local directory on the same loop btrfs (snapship store = file; restic local repository)."
echo "dataset: gendata ${ARGS[*]:-(defaults)}: $(jget "$C" 'd["tree_bytes"]') bytes in regular files"
echo "churn (tools/churn.py --seed $SEED, as bench_incr.sh): $(jget "$C" 'd["written_bytes"]') bytes written ($(jget "$C" '"%.2f %%" % (100.0 * d["written_bytes"] / d["tree_bytes"])') of the tree), zstd -3 of them $(jget "$C" 'd.get("written_zstd3_bytes", 0)'); whole size of the $(jget "$C" 'd["touched_files"]') files it changed $(jget "$C" 'd["touched_whole_bytes"]')"
echo "snapship's second backup: $(jget "$WORK/snapship.2.out" '"%s, parent %s, new_bytes %s" % (d[0]["backup_id"], d[0].get("parent"), d[0].get("new_bytes"))')"
if [ -s "$WORK/restic.2.sum" ]; then
	echo "restic's second backup: $(jget "$WORK/restic.2.sum" '"files new %s changed %s unmodified %s, data_added %s, total_bytes_processed %s bytes" % (d.get("files_new"), d.get("files_changed"), d.get("files_unmodified"), d.get("data_added"), d.get("total_bytes_processed"))')"
fi
echo
echo "cold page cache before each backup"
printf '%-24s %9s %9s %9s %14s %14s\n' "" "wall s" "cpu s" "RSS MiB" "read bytes" "store growth"
row "snapship 1st (full)" "$WORK/snapship.1"
row "restic 1st" "$WORK/restic.1"
row "snapship 2nd (incr.)" "$WORK/snapship.2"
row "restic 2nd" "$WORK/restic.2"
echo
echo "snapship / restic, second backup (after the churn):"
echo "  wall          $(ratio "$(col "$WORK/snapship.2" 1)" "$(col "$WORK/restic.2" 1)")   [issue: <= 0.5 x]"
echo "  cpu           $(ratio "$(c2 "$WORK/snapship.2")" "$(c2 "$WORK/restic.2")")"
echo "  read bytes    $(ratio "$(col "$WORK/snapship.2" 5)" "$(col "$WORK/restic.2" 5)")"
echo "  store growth  $(ratio "$(col "$WORK/snapship.2" 6)" "$(col "$WORK/restic.2" 6)")"
echo "snapship / restic, first backup: wall $(ratio "$(col "$WORK/snapship.1" 1)" "$(col "$WORK/restic.1" 1)"), cpu $(ratio "$(c2 "$WORK/snapship.1")" "$(c2 "$WORK/restic.1")"), store $(ratio "$(col "$WORK/snapship.1" 6)" "$(col "$WORK/restic.1" 6)")"
if [ "$QUICK" = 1 ]; then
	echo
	echo "QUICK=1: a small dataset; these numbers say nothing about the targets."
fi
