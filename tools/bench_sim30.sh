#!/usr/bin/env bash
# 30 simulated days (issue 14, doc/BENCHMARKS.md "Incremental backups"):
# BACKUPS (180) backups at a 4 h interval, each after a 1 % churn
# (tools/churn.py, the churn of tools/bench_incr.sh scaled to the dataset:
# 8 KiB pages rewritten in place ~0.5 %, appends ~0.3 %, 1 % of the small
# files new, deleted, renamed and chmod'ed), on a smaller dataset in a loop
# btrfs, into a directory store, with the default retention (keep_last 2,
# max_age 90d) plus keep_daily 30 and the default chain bounds (full_every
# 30d, max_chain 180).  After each backup, `snapship prune std`, as the agent
# applies the retention after each backup.
#
# The clock is simulated with libfaketime (Debian package faketime,
# installed when missing): backup k runs at START + k x 4 h, its prune too.
# libfaketime cannot fake the kernel's clock, and the snapshot time snapship
# records is the btrfs snapshot's otime (kernel): a small LD_PRELOAD shim
# built here replaces the otime that btrfs_util_subvolume_info() returns
# with the (faked) clock, so snapshot times, ids, the chain's age and the
# retention all see 4 h steps.  File timestamps are not faked
# (NO_FAKE_STAT=1: the quick check compares real ones), the monotonic clock
# neither.  The script checks from each backup's JSON that ids and snapshot
# times advance 4 h each and says so.
#
# Prints (asserts nothing): backups made, fulls made (and why), backups
# kept, stored bytes (the directory store's files), one full's stored bytes
# (the first backup; and a --full of the final tree into another store) and
# the ratios; the backups' CPU.
#
#   bash tools/bench_sim30.sh [BUILD_DIR]       (needs root)
#   BACKUPS=180 STEP=14400 START='2026-01-01 00:00:00' (UTC) SEED=30
#   SIM_ARGS='--json-bytes 128M --json-file-size 16M --small-files 2000' (gendata)
#   CHURN_ARGS='' more options for tools/churn.py (e.g. '--append-pct 0.1': the
#     default appends 0.3 % per backup, so the tree grows ~1.7x in 180 backups)
#   QUICK=1: BACKUPS=24 and a 32 MiB dataset, to check that it works
#   BENCH_DIR=/var/tmp: where the sparse loop image lives
set -euo pipefail

B=${1:-build}
SRC_DIR=$(cd "$(dirname "$0")/.." && pwd)
NAME=bench_sim30
# shellcheck source=tools/bench_lib.sh
. "$SRC_DIR/tools/bench_lib.sh"
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
	BACKUPS=${BACKUPS:-24}
	SIM_ARGS=${SIM_ARGS:---json-bytes 32M --json-file-size 8M --small-files 500}
else
	BACKUPS=${BACKUPS:-180}
	SIM_ARGS=${SIM_ARGS:---json-bytes 128M --json-file-size 16M --small-files 2000}
fi
STEP=${STEP:-14400}
START=${START:-2026-01-01 00:00:00}
SEED=${SEED:-30}
[[ "$BACKUPS" =~ ^[1-9][0-9]*$ ]] || die "BACKUPS must be a positive integer (got '$BACKUPS')"
[[ "$STEP" =~ ^[1-9][0-9]*$ ]] || die "STEP must be a positive number of seconds (got '$STEP')"
T0=$(date -u -d "$START" +%s) || die "START: not a date ('$START')"
read -ra GARGS <<<"$SIM_ARGS"
read -ra CARGS <<<"${CHURN_ARGS:-}"

bench_setup 16G
need_pkg faketime faketime
FTLIB=$(dpkg -L libfaketime 2>/dev/null | grep -E '/libfaketimeMT\.so\.1$' | head -n1)
[ -n "$FTLIB" ] || FTLIB=$(dpkg -L libfaketime 2>/dev/null | grep -E '/libfaketime\.so\.1$' | head -n1)
[ -n "$FTLIB" ] || die "no libfaketime.so.1 (apt-get install libfaketime)"
command -v cc >/dev/null 2>&1 || die "needs cc (make deps)"
cat >"$WORK/otime.c" <<'EOF'
/* bench_sim30: the snapshot's otime from the (faked) clock */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <time.h>
#include <btrfsutil.h>

enum btrfs_util_error btrfs_util_subvolume_info(const char *path, uint64_t id,
						struct btrfs_util_subvolume_info *s)
{
	static enum btrfs_util_error (*real)(const char *, uint64_t,
					     struct btrfs_util_subvolume_info *);
	enum btrfs_util_error e;

	if (!real)
		real = (enum btrfs_util_error (*)(const char *, uint64_t,
			struct btrfs_util_subvolume_info *))dlsym(RTLD_NEXT,
			"btrfs_util_subvolume_info");
	if (!real)
		return BTRFS_UTIL_ERROR_NO_MEMORY;
	e = real(path, id, s);
	if (e == BTRFS_UTIL_OK && s)
		clock_gettime(CLOCK_REALTIME, &s->otime);
	return e;
}
EOF
cc -shared -fPIC -O2 -o "$WORK/otime.so" "$WORK/otime.c" -ldl || die "cannot build the otime shim"

SRC=$MNT/sim
STORE=$MNT/store
mkdir -p "$STORE" "$MNT/state"
btrfs subvolume create "$SRC" >/dev/null
log "gendata ${GARGS[*]}"
"$SRC_DIR/$B/gendata" "$SRC" "${GARGS[@]}" >/dev/null
cat >"$WORK/conf" <<EOF
[agent]
host = bench
state_dir = $MNT/state
[retention]
keep_daily = 30
[region a]
store = file
path = $STORE
primary = yes
[partition std]
path = $SRC
EOF
SNAP=("$SRC_DIR/$B/snapship" --config "$WORK/conf")

# at K CMD...: CMD with the clock at START + K x STEP
at() {
	local k=$1
	shift
	LD_PRELOAD="$FTLIB:$WORK/otime.so" FAKETIME="@$(date -u -d "@$((T0 + k * STEP))" '+%Y-%m-%d %H:%M:%S')" \
		TZ=UTC FAKETIME_DONT_FAKE_MONOTONIC=1 NO_FAKE_STAT=1 "$@"
}

t_start=$(date +%s)
: >"$WORK/backups"
for ((k = 0; k < BACKUPS; k++)); do
	if ((k > 0)); then
		python3 "$SRC_DIR/tools/churn.py" "$SRC" --seed $((SEED * 1000 + k)) "${CARGS[@]}" >>"$WORK/churn.jsonl"
	fi
	at "$k" /usr/bin/time -f '%e %U %S %M' -o "$WORK/t" "${SNAP[@]}" --json backup std >"$WORK/b.json" ||
		die "backup $k failed: $(cat "$WORK/b.json")"
	at "$k" "${SNAP[@]}" --json prune std >"$WORK/p.json" || die "prune $k failed"
	python3 - "$WORK/b.json" "$WORK/t" "$WORK/p.json" >>"$WORK/backups" <<'EOF'
import json, sys
b = json.load(open(sys.argv[1]))[0]
w, u, s, _ = open(sys.argv[2]).read().split()
p = json.load(open(sys.argv[3]))
dels = sum(part["deleted"] if isinstance(part.get("deleted"), int) else
           sum(1 for x in part.get("backups", []) if not x.get("keep"))
           for part in (p if isinstance(p, list) else [p]))
print(json.dumps({"id": b["backup_id"], "time": b["time"], "full": b.get("parent") is None,
                  "why": b.get("full_reason"), "stored": b["stored_bytes"],
                  "new_bytes": b.get("new_bytes"), "wall": float(w), "cpu": round(float(u) + float(s), 2),
                  "pruned": dels}))
EOF
	if ((k % 10 == 0)); then
		log "backup $((k + 1))/$BACKUPS: $(tail -n1 "$WORK/backups"), store $(du_bytes "$STORE") bytes, $(($(date +%s) - t_start)) s so far"
	fi
done
elapsed=$(($(date +%s) - t_start))
at "$BACKUPS" "${SNAP[@]}" --json list std >"$WORK/list.json"
store_bytes=$(du_bytes "$STORE")
store_files=$(find "$STORE" -type f | wc -l)
# one full of the final tree, into a store of its own (same data, no history)
mkdir -p "$MNT/store1" "$MNT/state1"
"$SRC_DIR/$B/snapship" --host one --state-dir "$MNT/state1" --json backup "$SRC" --name std --to "$MNT/store1" --full >"$WORK/f.json"
final_full=$(jget "$WORK/f.json" 'd[0]["stored_bytes"]')
tree_bytes=$(find "$SRC" -type f -printf '%s\n' | awk '{s += $1} END {print s}')

python3 - "$WORK/backups" "$WORK/list.json" "$WORK/churn.jsonl" "$STEP" >"$WORK/summary" <<'EOF'
import json, sys, datetime
bk = [json.loads(l) for l in open(sys.argv[1])]
kept = json.load(open(sys.argv[2]))
churn = [json.loads(l) for l in open(sys.argv[3])] if len(bk) > 1 else []
step = int(sys.argv[4])
def idt(i):
    return datetime.datetime.strptime(i[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()
di = [idt(b["id"]) - idt(a["id"]) for a, b in zip(bk, bk[1:])]
dt = [b["time"] - a["time"] for a, b in zip(bk, bk[1:])]
ok = lambda d: all(abs(x - step) < 600 for x in d)
fulls = [b for b in bk if b["full"]]
inc = [b for b in bk if not b["full"]]
print("first %s, last %s" % (bk[0]["id"], bk[-1]["id"]))
print("clock check: backup ids advance %s-%s s per backup, snapshot times %s-%s s: %s" % (
    min(di, default=0), max(di, default=0), min(dt, default=0), max(dt, default=0),
    "steps of %d s as meant (the faked clock works)" % step if ok(di) and ok(dt) else "NOT the step asked for (%d s): the faked clock did not take" % step))
print("fulls made: %d (%s)" % (len(fulls), "; ".join("%s: %s" % (b["id"], b["why"]) for b in fulls)))
nxt = min(-(-30 * 86400 // step), 181)
print("  (the defaults full_every 30d, max_chain 180 restart the chain with a full at backup %d at this step%s)" % (
    nxt + 1, "" if nxt < len(bk) else ": after the last one simulated"))
print("kept: %d backups (%s ... %s)" % (len(kept), kept[0]["backup_id"] if kept else "-", kept[-1]["backup_id"] if kept else "-"))
print("pruned by the prunes after each backup: %d" % sum(b["pruned"] for b in bk))
if inc:
    print("incrementals: %d, stored bytes each: median %d, max %d; CPU s each: median %.2f; wall s median %.2f" % (
        len(inc), sorted(b["stored"] for b in inc)[len(inc) // 2], max(b["stored"] for b in inc),
        sorted(b["cpu"] for b in inc)[len(inc) // 2], sorted(b["wall"] for b in inc)[len(inc) // 2]))
if churn:
    w = sum(c["written_bytes"] for c in churn)
    print("churn per backup: written bytes median %d (%.2f %% of the tree), whole touched files median %d; all %d churns wrote %d bytes" % (
        sorted(c["written_bytes"] for c in churn)[len(churn) // 2],
        sorted(100.0 * c["written_bytes"] / c["tree_bytes"] for c in churn)[len(churn) // 2],
        sorted(c["touched_whole_bytes"] for c in churn)[len(churn) // 2], len(churn), w))
print("first_full_stored %d" % bk[0]["stored"])
EOF
first_full=$(awk '/^first_full_stored/ {print $2}' "$WORK/summary")

echo "30 simulated days (issue 14): $(git -C "$SRC_DIR" rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg), QUICK=$QUICK"
echo "dataset: gendata ${GARGS[*]}; at the end $tree_bytes bytes in regular files"
echo "$BACKUPS backups every $STEP s from $START UTC (libfaketime $(basename "$FTLIB") + the otime shim), each after"
echo "tools/churn.py${CARGS[*]:+ ${CARGS[*]}} (seed $SEED x 1000 + k), then snapship prune std; directory store on the same btrfs"
echo "retention: keep_last 2, max_age 90d (defaults) + keep_daily 30; full_every 30d, max_chain 180 (defaults)"
echo "ran in $elapsed s ($(awk -v e="$elapsed" -v n="$BACKUPS" 'BEGIN {printf "%.1f", e / n}') s per backup+churn+prune, real time)"
grep -v '^first_full_stored' "$WORK/summary"
echo
echo "stored bytes in the store (du -sb, $store_files files): $store_bytes"
echo "one full's stored bytes: the first backup $first_full; a --full of the final tree $final_full"
echo "store / one full: $(ratio "$store_bytes" "$first_full") of the first, $(ratio "$store_bytes" "$final_full") of the final tree's   [issue: <= 4 x; $BACKUPS fulls would be ~$BACKUPS x]"
echo "backups' CPU s in all: $(python3 -c 'import json,sys; print("%.1f" % sum(json.loads(l)["cpu"] for l in open(sys.argv[1])))' "$WORK/backups")"
if [ "$QUICK" = 1 ]; then
	echo
	echo "QUICK=1: $BACKUPS backups of a small dataset; these numbers say nothing about the targets."
fi
