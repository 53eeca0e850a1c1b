#!/usr/bin/env bash
# Incremental backups (issue 14, doc/BENCHMARKS.md "Incremental backups"):
# on the standard dataset (gendata defaults: 1 GiB of JSON segments + 20,000
# small files) in a loop btrfs, a full backup, then a churn of about 1 % by
# bytes (segment files appended and rewritten, 200 small files new, 200
# deleted, 200 renamed, 200 chmod'ed), then the incremental, each with a cold
# page cache.  Prints (does not assert) per backup: wall, CPU (user+sys),
# bytes read from the partition (the process's read_bytes), stored bytes,
# and the incremental's figures over the full's, and over the changed bytes.
#
#   bash tools/bench_incr.sh [BUILD_DIR]       (needs root)
#   QUICK=1: a small dataset (64 MiB of segments, 1,000 small files)
#   BENCH_DIR=/var/tmp: where the sparse loop image lives
set -euo pipefail

B=${1:-build}
SRC_DIR=$(cd "$(dirname "$0")/.." && pwd)
QUICK=${QUICK:-0}
BENCH_DIR=${BENCH_DIR:-/var/tmp}
if [ "$QUICK" = 1 ]; then
	ARGS=(--json-bytes 64M --json-file-size 16M --small-files 1000)
	IMG=4G
else
	ARGS=()
	IMG=8G
fi
log() { echo "bench_incr: $*" >&2; }
die() { log "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (loop btrfs, drop_caches)"
if [ ! -x "$SRC_DIR/$B/snapship" ] || [ ! -x "$SRC_DIR/$B/gendata" ]; then die "run make first"; fi

WORK=$(mktemp -d -p "$BENCH_DIR" snapship-bench-incr.XXXXXX)
MNT=$WORK/mnt
LOOP=
cleanup() {
	set +e
	mountpoint -q "$MNT" && umount "$MNT"
	[ -n "$LOOP" ] && losetup -d "$LOOP"
	rm -rf "$WORK"
}
trap cleanup EXIT
truncate -s "$IMG" "$WORK/img"
mkfs.btrfs -q "$WORK/img" >/dev/null 2>&1 || die "mkfs.btrfs failed"
LOOP=$(losetup --find --show "$WORK/img")
mkdir -p "$MNT"
mount "$LOOP" "$MNT"
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
max_chain = 180
[region a]
store = file
path = $STORE
primary = yes
[partition std]
path = $SRC
EOF

# run NAME [ARGS]: one backup, cold cache; "wall cpu read stored" into $NAME
run() {
	local name=$1 t0 t1 cpu rd stored
	shift
	rm -f "$WORK/pid"
	sync
	echo 3 >/proc/sys/vm/drop_caches
	t0=$(date +%s.%N)
	# shellcheck disable=SC2016 # expanded by the inner bash
	/usr/bin/time -f '%U %S' -o "$WORK/time" \
		bash -c 'echo $$ >"$1"; exec "$2" --config "$3" --json backup std "${@:5}" >"$4"' \
		_ "$WORK/pid" "$SRC_DIR/$B/snapship" "$WORK/conf" "$WORK/$name.json" "$@" &
	local bg=$! pid=""
	# read_bytes of the snapship process, sampled until it ends
	rd=0
	while kill -0 "$bg" 2>/dev/null; do
		[ -z "$pid" ] && [ -s "$WORK/pid" ] && pid=$(cat "$WORK/pid")
		if [ -n "$pid" ] && [ -r "/proc/$pid/io" ]; then
			rd=$(awk '/^read_bytes/ {print $2}' "/proc/$pid/io" 2>/dev/null || echo "$rd")
		fi
		sleep 0.05
	done
	wait "$bg"
	t1=$(date +%s.%N)
	cpu=$(awk '{print $1 + $2}' "$WORK/time")
	stored=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["stored_bytes"])' "$WORK/$name.json")
	echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}') $cpu $rd $stored" >"$WORK/$name"
	log "$name: wall cpu read stored = $(cat "$WORK/$name")"
}

run full --full
# the churn, about 1 % of the bytes
seg=$(find "$SRC/segments" -type f | sort)
nseg=$(echo "$seg" | wc -l)
segsize=$(stat -c %s "$(echo "$seg" | head -n1)")
changed=0
a=$(echo "$seg" | sed -n 1p)
head -c $((segsize / 16)) /dev/urandom | base64 -w 100 >>"$a"
changed=$((changed + $(stat -c %s "$a")))
if [ "$nseg" -gt 8 ]; then
	r=$(echo "$seg" | sed -n 2p)
	head -c $((segsize / 16)) /dev/urandom | base64 -w 100 |
		dd of="$r" bs=1M seek=1 conv=notrunc status=none iflag=fullblock
	changed=$((changed + $(stat -c %s "$r")))
fi
mapfile -t small < <(find "$SRC/small" -type f -name '*.json' | sort | head -n 600)
for i in $(seq 0 199); do
	head -c 8000 /dev/urandom | base64 >"$SRC/small/new-$i.json"
	changed=$((changed + $(stat -c %s "$SRC/small/new-$i.json")))
	rm "${small[$i]}"
	mv "${small[$((200 + i))]}" "${small[$((200 + i))]}.renamed"
	chmod 600 "${small[$((400 + i))]}"
done
run incr
sc=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))[0]; print(d["new_bytes"], d["changed"], d["new"], d["deleted"], d["renamed"], d["meta_only"])' "$WORK/incr.json")

read -r fw fc fr fs <"$WORK/full"
read -r iw ic ir is <"$WORK/incr"
ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b*100:.1f} %' if b else '-')" "$1" "$2"; }
echo "Incremental backups (issue 14): $(git -C "$SRC_DIR" rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), nproc $(nproc), QUICK=$QUICK"
echo "dataset: gendata ${ARGS[*]:-(defaults)}; churn: 1 segment appended (+1/16), $([ "$nseg" -gt 8 ] && echo "1 rewritten in part (1/16), ")200 small new, 200 deleted, 200 renamed, 200 chmod'ed"
echo "changed content: $changed bytes (whole files changed or new)"
echo "incremental: new_bytes changed new deleted renamed meta_only = $sc"
printf '%-12s %10s %10s %14s %14s\n' "" "wall s" "cpu s" "read bytes" "stored bytes"
printf '%-12s %10.2f %10.2f %14s %14s\n' full "$fw" "$fc" "$fr" "$fs"
printf '%-12s %10.2f %10.2f %14s %14s\n' incremental "$iw" "$ic" "$ir" "$is"
echo "incremental / full: wall $(ratio "$iw" "$fw"), cpu $(ratio "$ic" "$fc"), stored $(ratio "$is" "$fs")"
echo "read / changed content: $(ratio "$ir" "$changed")"
