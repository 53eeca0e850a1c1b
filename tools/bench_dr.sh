#!/usr/bin/env bash
# The DR figures of issue 13 (doc/BENCHMARKS.md, "DR drills and restore by
# time"), on the standard dataset backed up to a private Ceph RGW multisite
# (tools/rgw.sh: east primary, west replicated by the RGW, as in
# tools/bench.sh's geo suite), everything read from the secondary (west):
#
#   a) one ~16 KiB file with restore --path --region west: wall (median of
#      RUNS_FILE), bytes downloaded as restore counts them (bytes_read) and,
#      in one more run through tests/tools/s3proxy.py, as the RGW served
#      them (the proxy's log: every request, its Range, its body bytes),
#      frames read of the total;
#   b) a whole restore --region west: wall (median of RUNS_FULL), bytes;
#   c) when this snapship has a drill command (snapship drill --help): a
#      drill of the same backup from west (median of RUNS_FULL), and the
#      ratio drill / restore (goal <= 1.1).
#
#   bash tools/bench_dr.sh [BUILD_DIR]     (make bench-dr does this; needs root)
#
# Environment:
#   RUNS_FILE=5 RUNS_FULL=3   measured runs of (a) and of (b), (c)
#   QUICK=1                   a small dataset (64 MiB JSON + 1,000 small files)
#   BENCH_DIR=/var/tmp        where the sparse loop image and the RGW live
#   BENCH_DR_RGW_EAST_PORT=37680 BENCH_DR_RGW_WEST_PORT=37681
#   BENCH_DR_RGW_MON_PORT=36889 BENCH_DR_PROXY_PORT=37682  loopback ports
#   BENCH_DR_RGW_EAST_TLS_PORT=37683 BENCH_DR_RGW_WEST_TLS_PORT=37684
#   BENCH_DR_RGW_MEMSTORE=8G  the RGW's memstore (both zones' copies count)
#
# Cold page cache before every measured command; the objects live in the
# RGW's memory, so "cold" is the restore target's side.  The report goes to
# stdout, progress to stderr.  Cleans up after itself (RGW, proxy, mount,
# loop device, files).  Exit 0 when the benchmark ran.
set -euo pipefail

B=${1:-build}
SRC_DIR=$(cd "$(dirname "$0")/.." && pwd)
QUICK=${QUICK:-0}
RUNS_FILE=${RUNS_FILE:-5}
RUNS_FULL=${RUNS_FULL:-3}
BENCH_DIR=${BENCH_DIR:-/var/tmp}
PORTS=("${BENCH_DR_RGW_EAST_PORT:-37680}" "${BENCH_DR_RGW_WEST_PORT:-37681}"
	"${BENCH_DR_RGW_MON_PORT:-36889}" "${BENCH_DR_PROXY_PORT:-37682}"
	"${BENCH_DR_RGW_EAST_TLS_PORT:-37683}" "${BENCH_DR_RGW_WEST_TLS_PORT:-37684}")
RGW_MEM=${BENCH_DR_RGW_MEMSTORE:-8G}
if [ "$QUICK" = 1 ]; then
	IMG_SIZE=4G
	STD_ARGS=(--json-bytes 64M --json-file-size 16M --small-files 1000)
else
	IMG_SIZE=16G
	STD_ARGS=()                  # gendata's defaults: the standard dataset
fi
T_FILE_WALL=1.0                  # seconds, one 16 KiB file (issue 13)
T_FILE_FRAMES=2                  # frames read for it (plus the index)
T_DRILL_RATIO=1.1                # drill wall / restore wall

die() { echo "bench_dr: $*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

[[ "$RUNS_FILE" =~ ^[1-9][0-9]*$ ]] || die "RUNS_FILE must be a positive integer"
[[ "$RUNS_FULL" =~ ^[1-9][0-9]*$ ]] || die "RUNS_FULL must be a positive integer"
[ "$(id -u)" -eq 0 ] || die "needs root (loop btrfs, snapshots, drop_caches): sudo make bench-dr"
for c in btrfs mkfs.btrfs losetup python3 awk; do
	command -v "$c" >/dev/null 2>&1 || die "needs $c (make deps)"
done
[ -x /usr/bin/time ] || die "needs GNU time at /usr/bin/time (apt-get install time)"
if [ ! -x "$SRC_DIR/$B/snapship" ] || [ ! -x "$SRC_DIR/$B/gendata" ]; then
	die "no $SRC_DIR/$B/snapship or gendata: run make first"
fi
for p in "${PORTS[@]}"; do
	! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null ||
		die "port $p is in use (set BENCH_DR_RGW_EAST_PORT, _WEST_PORT, _MON_PORT, BENCH_DR_PROXY_PORT)"
done

WORK=$(mktemp -d "$BENCH_DIR/snapship-bench-dr.XXXXXX")
MNT=$WORK/mnt
RES=$WORK/results
RGWDIR=$WORK/rgw
LOOP=
RGW_STARTED=0
PROXY_PID=
cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	if [ -n "$PROXY_PID" ]; then
		kill "$PROXY_PID" 2>/dev/null
		wait "$PROXY_PID" 2>/dev/null
	fi
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

REV=$(git -C "$SRC_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)
mkdir -p "$WORK/bin" "$RES"
cp "$SRC_DIR/$B/snapship" "$SRC_DIR/$B/gendata" "$SRC_DIR/tools/rgw.sh" \
	"$SRC_DIR/tests/tools/s3proxy.py" "$WORK/bin/"
SNAPSHIP=$WORK/bin/snapship

# ---- helpers ------------------------------------------------------------------
median() { sort -g | awk '{v[NR] = $1} END {if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2); else print "nan"}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "nan"}'; }
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
jfield() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d[sys.argv[2]])' "$1" "$2"; }
quiesce() { sync; echo 3 > /proc/sys/vm/drop_caches; }
del_subvol() { [ -e "$1" ] && btrfs subvolume delete "$1" >/dev/null; return 0; }

# timed LABEL OUT CMD...: cold cache, CMD's stdout into OUT, its wall time
# appended to $RES/LABEL; a failing command is an error
timed() {
	local label=$1 out=$2
	shift 2
	quiesce
	/usr/bin/time -f '%e' -o "$RES/.time" "$@" >"$out" 2>"$RES/.err" ||
		{ cat "$RES/.err" "$out" >&2; die "$label failed: $*"; }
	tail -n 1 "$RES/.time" >>"$RES/$label"
}

# ---- the filesystem, the dataset, the RGW -------------------------------------
log "loop btrfs: $IMG_SIZE sparse image in $WORK"
truncate -s "$IMG_SIZE" "$WORK/btrfs.img"
mkfs.btrfs -q "$WORK/btrfs.img" >/dev/null 2>&1 || die "mkfs.btrfs failed"
mkdir -p "$MNT"
LOOP=$(losetup --find --show "$WORK/btrfs.img")
mount "$LOOP" "$MNT"
STD=$MNT/std
btrfs subvolume create "$STD" >/dev/null
log "standard dataset: gendata ${STD_ARGS[*]:-(defaults)}"
"$WORK/bin/gendata" "$STD" "${STD_ARGS[@]}" >/dev/null
DATA_BYTES=$(du -sb --apparent-size "$STD" | cut -f1)
DATA_FILES=$(find "$STD" -type f | wc -l)

log "starting a private RGW in $RGWDIR (ports ${PORTS[*]:0:3}, memstore $RGW_MEM)"
RGW_STARTED=1
RGW_EAST_PORT=${PORTS[0]} RGW_WEST_PORT=${PORTS[1]} RGW_MON_PORT=${PORTS[2]} \
	RGW_EAST_TLS_PORT=${PORTS[4]} RGW_WEST_TLS_PORT=${PORTS[5]} \
	RGW_MEMSTORE_BYTES=$RGW_MEM RGW_BUCKET=snapship-dr RGW_BUCKET_B=snapship-dr-b \
	bash "$WORK/bin/rgw.sh" start "$RGWDIR" >/dev/null
unset AWS_CA_BUNDLE AWS_PROFILE AWS_ENDPOINT_URL http_proxy https_proxy HTTP_PROXY HTTPS_PROXY
# shellcheck disable=SC1091
. "$RGWDIR/env"

# the fault proxy in front of west, with no rules: it only logs
python3 "$WORK/bin/s3proxy.py" --listen "127.0.0.1:${PORTS[3]}" --upstream "$RGW_WEST_ENDPOINT" \
	--log "$RES/proxy.jsonl" &
PROXY_PID=$!
for ((i = 0; i < 50; i++)); do
	(exec 3<>"/dev/tcp/127.0.0.1/${PORTS[3]}") 2>/dev/null && break
	sleep 0.1
done

# conf FILE WEST_ENDPOINT: east primary, west replicated by the RGW
conf() {
	cat >"$1" <<EOF
[agent]
state_dir = $MNT/state
host = bench
[partition std]
path = $STD
[region east]
store = s3
endpoint = $RGW_EAST_ENDPOINT
bucket = $RGW_BUCKET
prefix = dr/
sigv4_region = $RGW_REGION
access_key_id = $RGW_ACCESS_KEY_ID
secret_access_key_file = $RGW_SECRET_ACCESS_KEY_FILE
primary = yes
[region west]
store = s3
endpoint = $2
bucket = $RGW_BUCKET
prefix = dr/
sigv4_region = $RGW_REGION
access_key_id = $RGW_ACCESS_KEY_ID
secret_access_key_file = $RGW_SECRET_ACCESS_KEY_FILE
replication = server
replication_deadline = 30m
EOF
}
CONF=$WORK/dr.conf
conf "$CONF" "$RGW_WEST_ENDPOINT"
conf "$WORK/dr-proxy.conf" "http://127.0.0.1:${PORTS[3]}"
S=("$SNAPSHIP" -q --config "$CONF")

log "backup of the dataset to east, waiting until west holds it (geo-protected)"
"${S[@]}" --json backup >"$RES/backup.json" || die "backup failed: $(cat "$RES/backup.json")"
python3 - "$RES/backup.json" <<'EOF' || die "the backup is not geo-protected: $(cat "$RES/backup.json")"
import json, sys
d = json.load(open(sys.argv[1]))[0]
assert d["geo"] == "geo-protected", d["geo"]
EOF
ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["backup_id"])' "$RES/backup.json")
STORED=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["stored_bytes"])' "$RES/backup.json")

# the file closest to 16 KiB
read -r FSIZE FPATH < <(find "$STD" -type f -printf '%s %P\n' |
	awk '{d = $1 - 16384; if (d < 0) d = -d; print d, $1, $2}' | sort -n | head -n 1 | cut -d' ' -f2-)
log "backup $ID ($STORED bytes stored); the single file: $FPATH ($FSIZE bytes)"

# ---- a) one file from west ------------------------------------------------------
for ((r = 1; r <= RUNS_FILE; r++)); do
	log "a) one file from west, run $r/$RUNS_FILE"
	timed file "$RES/file-$r.json" "${S[@]}" --json restore std --region west --path "$FPATH" \
		--to "$MNT/one-$r"
	cmp -s "$STD/$FPATH" "$MNT/one-$r/$FPATH" || die "the restored $FPATH differs"
	echo "$(jfield "$RES/file-$r.json" bytes_read) $(jfield "$RES/file-$r.json" frames_read) $(jfield "$RES/file-$r.json" frames_total)" >>"$RES/file_counts"
	del_subvol "$MNT/one-$r"
done
log "a) one more through the proxy: what the RGW served"
: >"$RES/proxy.jsonl"
timed file_proxy "$RES/file-proxy.json" "$SNAPSHIP" -q --config "$WORK/dr-proxy.conf" --json \
	restore std --region west --path "$FPATH" --to "$MNT/one-p"
del_subvol "$MNT/one-p"
read -r P_REQ P_GET P_BYTES P_RANGES < <(python3 - "$RES/proxy.jsonl" <<'EOF'
import json, sys
reqs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
gets = [r for r in reqs if r["method"] == "GET"]
print(len(reqs), len(gets), sum(r.get("bytes") or 0 for r in gets),
      ",".join((r.get("range") or "whole").replace("bytes=", "") for r in gets) or "-")
EOF
)

# ---- b) a whole restore from west, c) a drill from west -------------------------
# interleaved, the order alternating per run, so that load on a shared
# machine falls on both alike
HAVE_DRILL=0
"$SNAPSHIP" drill --help >/dev/null 2>&1 && HAVE_DRILL=1
[ "$HAVE_DRILL" = 1 ] || log "c) this snapship has no drill command: skipped"
run_full() {
	log "b) whole restore from west, run $1/$RUNS_FULL"
	timed full "$RES/full-$1.json" "${S[@]}" --json restore std --region west --to "$MNT/full"
	got="$(find "$MNT/full" -type f | wc -l) $(du -sb --apparent-size "$MNT/full" | cut -f1)"
	[ "$got" = "$DATA_FILES $DATA_BYTES" ] ||
		die "the restore is incomplete: files/bytes $got, source $DATA_FILES $DATA_BYTES"
	jfield "$RES/full-$1.json" bytes_read >>"$RES/full_bytes"
	del_subvol "$MNT/full"
}
run_drill() {
	[ "$HAVE_DRILL" = 1 ] || return 0
	log "c) drill from west, run $1/$RUNS_FULL"
	timed drill "$RES/drill-$1.json" "${S[@]}" --json drill --region west --partition std
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["partitions"][0]["rto_seconds"])' \
		"$RES/drill-$1.json" >>"$RES/drill_rto"
}
for ((r = 1; r <= RUNS_FULL; r++)); do
	if ((r % 2)); then run_full "$r"; run_drill "$r"; else run_drill "$r"; run_full "$r"; fi
done

# ---- the report -----------------------------------------------------------------
FW=$(median <"$RES/file")
FB=$(awk '{print $1}' "$RES/file_counts" | median)
FF=$(awk '{print $2}' "$RES/file_counts" | median)
FT=$(awk 'NR == 1 {print $3}' "$RES/file_counts")
RW=$(median <"$RES/full")
RB=$(median <"$RES/full_bytes")
echo "snapship DR benchmark (tools/bench_dr.sh)"
echo "date      $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "commit    $REV"
echo "machine   $(nproc) CPUs ($(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo "dataset   $DATA_FILES files, $(mib "$DATA_BYTES") MiB (gendata ${STD_ARGS[*]:-defaults}); backup $ID, $(mib "$STORED") MiB stored"
echo "store     Ceph RGW multisite on loopback (memstore), east primary, read from west"
echo
printf '%-46s %14s %s\n' "measure" "value" "runs"
printf '%-46s %14s %s\n' "a) one file ($FSIZE B) --path, wall s (median)" "$FW" "$(paste -sd' ' "$RES/file")"
printf '%-46s %14s %s\n' "   bytes_read (restore's count, median)" "$FB" "$(awk '{print $1}' "$RES/file_counts" | paste -sd' ')"
printf '%-46s %14s %s\n' "   frames read / total" "$FF / $FT" ""
printf '%-46s %14s %s\n' "   RGW side (proxy): GET bytes" "$P_BYTES" "$P_GET GETs of $P_REQ requests; ranges $P_RANGES"
printf '%-46s %14s %s\n' "   through the proxy: wall s, bytes_read" "$(cat "$RES/file_proxy") $(jfield "$RES/file-proxy.json" bytes_read)" ""
printf '%-46s %14s %s\n' "b) whole restore from west, wall s (median)" "$RW" "$(paste -sd' ' "$RES/full")"
printf '%-46s %14s %s\n' "   bytes_read (MiB)" "$(mib "$RB")" "$(awk -v d="$DATA_BYTES" -v w="$RW" 'BEGIN {printf "%.0f MB/s of data", d / w / 1e6}')"
if [ "$HAVE_DRILL" = 1 ]; then
	DW=$(median <"$RES/drill")
	printf '%-46s %14s %s\n' "c) drill from west, wall s (median)" "$DW" "$(paste -sd' ' "$RES/drill")"
	printf '%-46s %14s %s\n' "   drill / restore" "$(ratio "$DW" "$RW")" "goal <= $T_DRILL_RATIO"
	# per run, drill over the restore next to it (same load), and the
	# drill's own RTO (its restore phase, without listing and removal)
	paste "$RES/drill" "$RES/full" | awk '{printf "%.3f\n", $1 / $2}' >"$RES/pair"
	printf '%-46s %14s %s\n' "   drill / restore per run (median)" "$(median <"$RES/pair")" "$(paste -sd' ' "$RES/pair")"
	printf '%-46s %14s %s\n' "   the drill's RTO, s (median)" "$(median <"$RES/drill_rto")" \
		"$(awk '{printf "%.2f ", $1}' "$RES/drill_rto")"
	printf '%-46s %14s\n' "   drill wall - RTO (listing, removal), s" \
		"$(paste "$RES/drill" "$RES/drill_rto" | awk '{printf "%.2f\n", $1 - $2}' | median)"
else
	printf '%-46s %14s %s\n' "c) drill from west" "-" "no drill command in this build"
fi
echo
echo "goals (issue 13): one 16 KiB file <= $T_FILE_WALL s: $(awk -v w="$FW" -v t="$T_FILE_WALL" 'BEGIN {print (w <= t ? "met" : "NOT met")}'); <= $T_FILE_FRAMES frames plus the index: $(awk -v f="$FF" -v t="$T_FILE_FRAMES" 'BEGIN {print (f <= t ? "met" : "NOT met")}')"
